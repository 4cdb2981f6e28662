#!/usr/bin/env bash
# Fresh-machine test command: sets up .venv with every extra (torch==2.13.0 pinned; where only
# the CUDA build is on the index, install the CPU wheel first) and the system tools the tests
# start (PostgreSQL 15 binaries, iproute2/util-linux for Ray's loopback-only namespace, Chromium
# for the report test), then
# runs ruff and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
# Platform tests run replicas as unprivileged users, who cannot run an interpreter under /root:
# their job commands use Debian's python3.
[ -x /usr/bin/python3 ] || need+=(python3)
command -v useradd >/dev/null || need+=(passwd)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)  # Spark jobs' spark-submit
# The report test renders report.html in Debian's Chromium through Playwright (no browser
# download: tests launch /usr/bin/chromium).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "$(id -u)" = 0 ]; then  # the OS users the platform tests' groups run as (run_as)
  for u in rfjob-ml rfjob-cv; do
    id -u "$u" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"
  done
fi
bash scripts/setup.sh "dev,platform,postgres,ray,spark,kubernetes,torch"
source scripts/data-env.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy src/recforge
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
