"""``recforge recommend`` and ``recforge export``: what to do with a trained model and a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from recforge.cli._common import JsonOpt, echo, fail, print_json

__all__ = ["export_cmd", "recommend_cmd"]


def recommend_cmd(
    model_dir: Annotated[Path, typer.Argument(
        help="A saved model: `recforge run --keep-models` writes them under OUT/models/, "
        "or Recommender.save(dir).")],
    user: Annotated[list[str] | None, typer.Option(
        "--user", "-u", help="External user id (repeat for several).")] = None,
    users_file: Annotated[Path | None, typer.Option(
        help="A text file with one external user id per line.")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Every user the model knows.")
                         ] = False,
    k: Annotated[int, typer.Option(help="List length.", min=1)] = 10,
    include_seen: Annotated[bool, typer.Option(
        "--include-seen", help="Keep the users' training items in the lists.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Write the lists (user, rank, item, score) to a .csv or .parquet file.")] = None,
    device: Annotated[str | None, typer.Option(
        help="Score on this device (cpu, cuda, cuda:N) instead of the one the model was "
        "fitted on, e.g. --device cpu for a model trained on a GPU.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top-k recommendations with external ids from a saved model."""
    from recforge.experiments.exports import recommendations_table, table_format, write_table
    from recforge.models import load_model

    chosen = sum([bool(user), users_file is not None, all_users])
    if chosen != 1:
        fail("name the users with exactly one of --user, --users-file or --all")
    if out is not None:
        try:
            table_format(out)
        except ValueError as exc:
            fail(str(exc))
    try:
        # No data is given here: the model recommends from its own saved training state
        # (id maps, seen items), so there is nothing to check it against.
        model = load_model(model_dir, allow_other_data=True, device=device)
    except (LookupError, ValueError, OSError, RuntimeError) as exc:
        fail(f"{model_dir}: {exc}")
    known = model.user_ids_
    if all_users:
        ids = list(known)
    else:
        raw = user or [line.strip() for line in users_file.read_text().splitlines()  # type: ignore[union-attr]
                       if line.strip()]
        ids = _typed_ids(raw, known)
    try:
        recs = model.recommend(ids, k, exclude_seen=not include_seen)
    except (KeyError, ValueError, TypeError) as exc:
        fail(str(exc).strip('"'))
    table = recommendations_table(recs)
    if out is not None:
        write_table(table, out)
    if as_json:
        print_json({"model": type(model).name, "k": k, "exclude_seen": not include_seen,
                    "train_checksum": model.train_checksum_, "lists": recs.lists()})
    elif out is not None:
        echo(f"wrote {len(recs)} recommendations for {len(ids)} user(s) to {out}")
    else:
        t = Table("user", "rank", "item", "score")
        for u, r, i, s in zip(*(table[c].tolist() for c in ("user", "rank", "item", "score")),
                              strict=True):
            t.add_row(str(u), str(r), str(i), f"{s:.4f}")
        Console().print(t)


def _typed_ids(raw: list[str], known: object) -> list[object]:
    """Ids typed on the command line are text; the model's may be integers."""
    import numpy as np

    arr = np.asarray(known)
    if arr.dtype.kind in "iu":
        try:
            return [int(v) for v in raw]
        except ValueError:
            fail(f"this model's user ids are integers; got {raw!r}")
    return list(raw)


def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of `recforge run`.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Folder to write into (default: "
                                             "RUN_DIR/exports).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-user metrics of every finished model run, with external user ids."""
    from recforge.experiments.exports import export_run

    try:
        written = export_run(run_dir, fmt, out)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"files": [str(p) for p in written]})
    else:
        for p in written:
            echo(str(p))
