"""Incremental, resumable runs: an interrupted run (SIGINT, or killed) resumed into the same
--out gives the results.json of an uninterrupted run; --out guards against mixing runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from lab_helpers import sluggish_class
from lab_helpers import spec_dict as _spec
from lab_helpers import write_csv as _write_csv
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.experiments.artifacts import OutDirError
from recforge.experiments.runner import run_experiment
from recforge.experiments.spec import parse_spec
from recforge.models import MODELS

LAB_CLI = Path(__file__).parent / "lab_cli.py"
DEADLINE = 300.0  # seconds; generous for a loaded machine


def _resume_spec(csv: Path) -> dict[str, Any]:
    spec = _spec(csv, seeds=[0])
    spec["models"] = [
        {"model": "TopPopular"},
        {"model": "Sluggish", "search": {"n_trials": 10, "n_startup_trials": 3}},
        {"model": "ItemKNNCF", "params": {"top_k": 20}},
    ]
    return spec


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, str(LAB_CLI), *args], env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended (rc {proc.returncode}) before blocking: "
                                 f"{proc.stdout.read() if proc.stdout else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {DEADLINE} s")
        time.sleep(0.05)


def _interrupt_when_blocked(spec_path: Path, out: Path, gate: Path, block_at: int,
                           saved: Path) -> str:
    """Run the spec into ``out`` until the ``block_at``-th gate pass, check ``saved`` is there,
    interrupt it (SIGINT) and return its output."""
    proc = _cli(["run", str(spec_path), "--out", str(out)],
                {"RECFORGE_TEST_GATE": str(gate), "RECFORGE_TEST_BLOCK_AT": str(block_at)})
    _wait_for(Path(str(gate) + ".blocked"), proc)
    assert saved.is_file()
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 130, output
    return output


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The reference: the same spec run start to end in one go (in this process)."""
    root = tmp_path_factory.mktemp("reference")
    csv = _write_csv(root / "data.csv")
    spec_path = root / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_resume_spec(csv)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, "Sluggish", sluggish_class())
        run_experiment(parse_spec(_resume_spec(csv)), root / "out", log=lambda _m: None)
    return spec_path, root / "out"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigint", "kill"])
def test_interrupted_search_resumes_to_the_uninterrupted_results(
    tmp_path: Path, uninterrupted: tuple[Path, Path], how: str
) -> None:
    spec_path, reference = uninterrupted
    out = tmp_path / "out"
    gate = tmp_path / "gate"
    # Sluggish's 5th fit (its 5th search trial: TopPopular is another model) blocks.
    proc = _cli(["run", str(spec_path), "--out", str(out)],
                {"RECFORGE_TEST_GATE": str(gate), "RECFORGE_TEST_BLOCK_AT": "5"})
    _wait_for(Path(str(gate) + ".blocked"), proc)
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    output, _ = proc.communicate(timeout=DEADLINE)
    progress = json.loads((out / "progress.json").read_text())
    if how == "sigint":
        assert proc.returncode == 130, output
        assert "interrupted; 1 finished model run(s) are kept" in " ".join(output.split())
        assert progress["state"] == "interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL
        assert progress["state"] == "running"  # nobody could say otherwise
    assert progress["done"] == ["0/TopPopular"]
    assert (out / "runs" / "TopPopular__seed0.json").is_file()
    assert not (out / "results.json").exists()
    import optuna

    study = optuna.load_study(study_name="Sluggish__seed0",
                              storage=f"sqlite:///{out / 'studies.db'}")
    assert len(study.trials) == 4  # the four finished trials; the fifth was running

    resumed = _cli(["run", str(spec_path), "--out", str(out)])
    output, _ = resumed.communicate(timeout=DEADLINE)
    assert resumed.returncode == 0, output
    assert "TopPopular: finished before, kept" in output
    assert json.loads((out / "results.json").read_text()) == json.loads(
        (reference / "results.json").read_text())
    ours = json.loads((out / "trials" / "Sluggish__seed0.json").read_text())
    ref = json.loads((reference / "trials" / "Sluggish__seed0.json").read_text())
    assert [t["params"] for t in ours] == [t["params"] for t in ref]
    assert [t["score"] for t in ours] == [t["score"] for t in ref]
    a = np.load(out / "per_user" / "Sluggish__seed0.npz")
    b = np.load(reference / "per_user" / "Sluggish__seed0.npz")
    assert all(np.array_equal(a[k], b[k]) for k in b.files)
    assert json.loads((out / "progress.json").read_text())["state"] == "finished"
    assert len(json.loads((out / "progress.json").read_text())["resumed"]) == 1


def test_finished_models_are_kept_when_a_later_one_fails(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    # ItemKNNCBF needs item features, which the CSV has none of: it fails when it is fitted.
    spec = parse_spec(_spec(csv, seeds=[0], models=[{"model": "TopPopular"},
                                                    {"model": "ItemKNNCBF"}]))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="item_features"):
        run_experiment(spec, out, log=lambda _m: None)
    progress = json.loads((out / "progress.json").read_text())
    assert progress["state"] == "failed" and "item_features" in progress["error"]
    assert progress["done"] == ["0/TopPopular"]
    record = json.loads((out / "runs" / "TopPopular__seed0.json").read_text())
    assert record["summary"]["RECALL@10"] > 0
    assert (out / "per_user" / "TopPopular__seed0.npz").is_file()
    logs: list[str] = []
    with pytest.raises(ValueError, match="item_features"):
        run_experiment(spec, out, log=logs.append)
    assert "  TopPopular: finished before, kept" in logs


def test_out_holding_another_spec_is_refused_unless_forced(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = _spec(csv, seeds=[0])
    spec["models"] = [{"model": "TopPopular"}]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    first = (out / "results.json").read_text()
    # The same spec again: resumes, every model kept, identical results.
    res = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 0 and "finished before, kept" in res.output
    assert (out / "results.json").read_text() == first

    spec["report"] = {"metrics": ["RECALL"], "cutoffs": [3]}
    path.write_text(yaml.safe_dump(spec))
    res = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "holds the results of a different spec" in text and "report.cutoffs" in text
    assert (out / "results.json").read_text() == first  # nothing was touched

    res = runner.invoke(app, ["run", str(path), "--out", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert set(json.loads((out / "results.json").read_text())["rows"]["TopPopular"]) == {
        "RECALL@3"}


def test_foreign_and_unwritable_out_are_refused_before_work(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_spec(csv, seeds=[0], models=[{"model": "TopPopular"}]))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutDirError, match="holds no recforge run"):
        run_experiment(spec, foreign, log=lambda _m: None)
    run_experiment(spec, foreign, log=lambda _m: None, force=True)
    assert (foreign / "notes.txt").read_text() == "mine"  # force removes only run files
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutDirError, match="not writable"):
        run_experiment(spec, blocker / "out", log=lambda _m: None)


def test_a_folder_in_use_by_another_run_is_refused_before_work(tmp_path: Path) -> None:
    """Two runs on one --out would sample the same seeded trials twice into one store."""
    from recforge.experiments.artifacts import LOCK_FILE, RunDir

    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_spec(csv, seeds=[0], models=[{"model": "TopPopular"}]))
    out = tmp_path / "out"
    first = RunDir.open(out, spec)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(OutDirError, match=rf"in use by another recforge run \(pid {os.getpid()}"):
        run_experiment(spec, out, log=lambda _m: None)
    with pytest.raises(OutDirError, match="in use"):
        run_experiment(spec, out, log=lambda _m: None, force=True)  # force does not take it
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written or removed
    first.close()
    outcome = run_experiment(spec, out, log=lambda _m: None)  # free again: resumes and ends
    assert outcome.rows and (out / "results.json").is_file()
    run_experiment(spec, out, log=lambda _m: None)  # a finished run released the lock too
    # a refused foreign folder is left exactly as it was (no lock file added)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutDirError, match="holds no recforge run"):
        run_experiment(spec, foreign, log=lambda _m: None)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert (out / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} ")  # who held it


def test_an_interrupted_fit_of_a_resumable_model_goes_on_from_its_resume_point(
        tmp_path: Path) -> None:
    from lab_helpers import stepper_class

    csv = _write_csv(tmp_path / "data.csv")
    spec = _spec(csv, seeds=[0])
    spec["models"] = [{"model": "TopPopular"}, {"model": "Stepper", "params": {"epochs": 12}}]
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, "Stepper", stepper_class())
        run_experiment(parse_spec(spec), tmp_path / "reference", log=lambda _m: None)
    reference = tmp_path / "reference"
    assert not (reference / "resume").exists() or not any((reference / "resume").iterdir())

    out = tmp_path / "out"
    # Stepper's 8th epoch blocks; validation ran at epoch 5, so its resume point is epoch 5's.
    point = out / "resume" / "Stepper__seed0.fit.npz"
    output = _interrupt_when_blocked(spec_path, out, tmp_path / "gate", 8, point)
    assert ("1 finished model run(s) are kept in " + str(out)
            + " and the fit in progress is saved (Stepper__seed0.fit.npz)") in " ".join(
                output.split()), output

    resumed = _cli(["run", str(spec_path), "--out", str(out)])
    output, _ = resumed.communicate(timeout=DEADLINE)
    assert resumed.returncode == 0, output
    assert "Stepper: resumed after epoch 5" in output
    assert not point.exists()  # the finished fit removed it
    ours = json.loads((out / "runs" / "Stepper__seed0.json").read_text())
    ref = json.loads((reference / "runs" / "Stepper__seed0.json").read_text())
    assert ours["summary"] == ref["summary"] and ours["params"] == ref["params"]
    assert ours["training"]["resumed_from_epoch"] == 5
    assert "resumed_from_epoch" not in ref["training"]
    assert [(h["epoch"], h["loss"], h["validation"]) for h in ours["training"]["history"]] == [
        (h["epoch"], h["loss"], h["validation"]) for h in ref["training"]["history"]]
    a = np.load(out / "per_user" / "Stepper__seed0.npz")
    b = np.load(reference / "per_user" / "Stepper__seed0.npz")
    assert all(np.array_equal(a[k], b[k]) for k in b.files)


@pytest.mark.slow
def test_a_run_interrupted_in_its_refit_keeps_the_finished_early_stopped_fit(
        tmp_path: Path) -> None:
    from lab_helpers import stepper_class

    csv = _write_csv(tmp_path / "data.csv")
    spec = _spec(csv, seeds=[0])
    spec["split"]["validation"]["refit"] = True  # type: ignore[index]
    spec["models"] = [{"model": "Stepper", "params": {"epochs": 12}}]
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, "Stepper", stepper_class())
        run_experiment(parse_spec(spec), tmp_path / "reference", log=lambda _m: None)
    ref = json.loads((tmp_path / "reference" / "runs" / "Stepper__seed0.json").read_text())
    fit_epochs, refit_epochs = ref["training"]["epochs_run"], ref["training"]["refit_epochs"]
    assert refit_epochs == ref["training"]["epochs_best"] >= 2

    out = tmp_path / "out"
    # Every epoch passes the gate: block in the refit's second epoch.
    kept = out / "resume" / "Stepper__seed0.fit.done.json"
    output = _interrupt_when_blocked(spec_path, out, tmp_path / "gate", fit_epochs + 2, kept)
    assert "Stepper__seed0.fit.done.json" in output

    resumed = _cli(["run", str(spec_path), "--out", str(out)])
    output, _ = resumed.communicate(timeout=DEADLINE)
    assert resumed.returncode == 0, output
    assert (f"Stepper: the early-stopped fit finished before (best epoch {refit_epochs} of "
            f"{fit_epochs}), kept; refitting") in output
    assert "Stepper epoch 5/12" not in output  # the early-stopped fit did not run again
    assert not kept.exists()  # the finished refit removed it
    ours = json.loads((out / "runs" / "Stepper__seed0.json").read_text())
    assert ours["summary"] == ref["summary"] and ours["params"] == ref["params"]
    def untimed(training: dict[str, Any]) -> dict[str, Any]:
        return {**training, "history": [{k: v for k, v in h.items() if "seconds" not in k}
                                        for h in training["history"]]}

    assert untimed(ours["training"]) == untimed(ref["training"])
    a = np.load(out / "per_user" / "Stepper__seed0.npz")
    b = np.load(tmp_path / "reference" / "per_user" / "Stepper__seed0.npz")
    assert all(np.array_equal(a[k], b[k]) for k in b.files)
