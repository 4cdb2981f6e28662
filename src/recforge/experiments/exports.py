"""Tables for other tools: recommendation lists and per-user metrics, with external ids.

Both are long tables written as CSV or parquet (chosen by the file suffix), atomically. Ids are
the ones of the source data (``Interactions.user_ids`` / ``item_ids``), never row positions,
so the tables join with the user's own data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recforge._files import atomic_path

if TYPE_CHECKING:
    from recforge.experiments.outcome import ModelRun
    from recforge.models.base import Recommendations

__all__ = [
    "FORMATS",
    "export_run",
    "per_user_table",
    "recommendations_table",
    "table_format",
    "write_table",
]

FORMATS = {".csv": "csv", ".parquet": "parquet"}


def table_format(path: str | Path) -> str:
    """``csv`` or ``parquet`` from the suffix of ``path``; another suffix is refused."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: write a table as {' or '.join(FORMATS)} (the suffix chooses the format)"
        )
    return fmt


def write_table(columns: Mapping[str, Any], path: str | Path) -> Path:
    """Write equally long columns as a CSV or parquet file (atomic)."""
    import pandas as pd

    path = Path(path)
    fmt = table_format(path)
    frame = pd.DataFrame({k: np.asarray(v) for k, v in columns.items()})
    with atomic_path(path) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def recommendations_table(recs: Recommendations) -> dict[str, np.ndarray]:
    """Columns user, rank, item, score (external ids, best first per user)."""
    return {"user": recs.user, "rank": recs.rank, "item": recs.item, "score": recs.score}


def per_user_table(run: ModelRun) -> dict[str, np.ndarray]:
    """Column user (external id) and one column per ``METRIC@k``."""
    users = run.user_ids if run.user_ids is not None else run.users
    return {"user": np.asarray(users), **{k: np.asarray(v) for k, v in run.per_user.items()}}


def export_run(run_dir: str | Path, fmt: str = "csv", out: str | Path | None = None,
               ) -> list[Path]:
    """Per-user metrics of every finished model run in ``run_dir`` (a ``recforge run --out``)
    as ``<out>/per_user/<stem>__seed<k>.<fmt>`` (``out`` defaults to ``run_dir/exports``)."""
    from recforge.experiments.artifacts import read_run

    run_dir = Path(run_dir)
    suffix = f".{fmt}"
    if suffix not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS.values())}, got {fmt!r}")
    records = sorted((run_dir / "runs").glob("*.json"))
    if not records:
        raise ValueError(f"{run_dir} holds no finished model run (no runs/*.json)")
    target = Path(out) if out is not None else run_dir / "exports"
    written = []
    for rec in records:
        run = read_run(run_dir, rec.stem)
        path = target / "per_user" / f"{rec.stem}{suffix}"
        written.append(write_table(per_user_table(run), path))
    return written
