# Sourced by scripts/main.sh and scripts/test.sh: where the datasets come from.
# - RECFORGE_DATA_MIRROR given: read datasets from that folder (<dataset>/<file>), no network.
# - else ../shared/data present (this workplace): use it as the mirror.
# - else: no mirror; recforge downloads each file from its original source (progress shown),
#   verifies it against the identifiers the source publishes and caches it for reuse.
# RECFORGE_CACHE defaults to .cache/recforge in the repository.
_recforge_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${RECFORGE_DATA_MIRROR:-}" ]; then
  if [ ! -d "$RECFORGE_DATA_MIRROR" ]; then
    echo "data: RECFORGE_DATA_MIRROR=$RECFORGE_DATA_MIRROR is not a folder" >&2
    return 2 2>/dev/null || exit 2
  fi
  echo "data: mirror $RECFORGE_DATA_MIRROR (given)" >&2
elif [ -d "$_recforge_root/../shared/data" ]; then
  export RECFORGE_DATA_MIRROR="$(cd "$_recforge_root/../shared/data" && pwd)"
  echo "data: mirror $RECFORGE_DATA_MIRROR (found next to the repository)" >&2
else
  unset RECFORGE_DATA_MIRROR
  echo "data: no mirror; files are downloaded from their original sources and verified" >&2
fi
export RECFORGE_CACHE="${RECFORGE_CACHE:-$_recforge_root/.cache/recforge}"
echo "data: cache $RECFORGE_CACHE" >&2
unset _recforge_root
