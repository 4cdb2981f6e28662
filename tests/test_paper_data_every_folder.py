"""Issue 14: under CI, deleting ANY one dataset folder of the mirror makes the suite fail.

Three facts together show it for every folder of the real mirror, cheaply:

1. every dataset folder of the mirror is a registered dataset the guard knows
   (``conftest.registered_datasets``), so none can go missing unnoticed;
2. for each folder, the guard's session check (``conftest.pytest_configure``) run under CI on a
   copy of the mirror without that folder refuses to start the session, naming the folder
   (tests/test_paper_data_guard.py runs two such sessions end to end in a subprocess);
3. no test file skips on the mirror by itself: data tests declare their datasets with the
   ``paper_data`` marker, which is an error under CI, never a skip;
4. every registered dataset is declared by at least one test (so the suite really reads it).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

TESTS = Path(__file__).parent


def _guard() -> ModuleType:
    """A fresh instance of tests/conftest.py (the guard's functions are pure)."""
    spec = importlib.util.spec_from_file_location("paper_data_guard_copy", TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mirror_folders(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


@pytest.fixture
def real_mirror(paper_data: Path) -> Path:
    return paper_data


@pytest.mark.paper_data(registered=True)
def test_every_mirror_folder_is_a_registered_dataset(real_mirror: Path) -> None:
    folders = _mirror_folders(real_mirror)
    registered = set(_guard().registered_datasets())
    assert len(folders) >= 10
    assert [f for f in folders if f not in registered] == []
    assert registered <= set(folders)  # and the mirror holds every one of them


@pytest.mark.paper_data(registered=True)
def test_ci_refuses_the_session_without_any_one_folder(
    real_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = _guard()
    folders = _mirror_folders(real_mirror)
    monkeypatch.setenv("CI", "true")
    refused = {}
    for drop in folders:
        partial = tmp_path / f"without-{drop}"
        partial.mkdir()
        for name in folders:
            if name != drop:
                (partial / name).symlink_to(real_mirror / name)
        monkeypatch.setenv(guard.MIRROR_ENV, str(partial))
        with pytest.raises(pytest.UsageError) as info:
            guard.pytest_configure(_CONFIG)
        refused[drop] = str(info.value)
    for drop, message in refused.items():
        assert f"lacks 1 registered dataset(s): {drop};" in message, message
    # The full mirror is accepted (the check is not "always refuse").
    monkeypatch.setenv(guard.MIRROR_ENV, str(real_mirror))
    guard.pytest_configure(_CONFIG)


#: Just enough of a pytest config for the guard's ``pytest_configure``.
_CONFIG = SimpleNamespace(addinivalue_line=lambda _name, _line: None)


SKIP_ON_DATA = re.compile(
    r"(skipif|importorskip|pytest\.skip)\s*\((?:[^()]|\([^()]*\))*"
    r"(MIRROR|mirror|shared/data|shared\" / \"data|\.is_dir\(\))",
    re.S,
)


def test_no_test_skips_on_the_mirror_by_itself() -> None:
    own = {"conftest.py", Path(__file__).name, "test_paper_data_guard.py"}
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name in own or "platform" in path.parts:
            continue
        m = SKIP_ON_DATA.search(path.read_text())
        if m:
            offenders.append(f"{path.relative_to(TESTS)}: {m.group(0)[:80]!r}")
    assert offenders == [], "use @pytest.mark.paper_data(...) instead:\n" + "\n".join(offenders)


def test_every_registered_dataset_is_declared_by_some_test() -> None:
    declared: set[str] = set()
    registered_all = False
    marker = re.compile(r"paper_data\(([^)]*)\)")
    for path in TESTS.rglob("test_*.py"):
        if path.name in {Path(__file__).name, "test_paper_data_guard.py"}:
            continue
        for args in marker.findall(path.read_text()):
            declared |= set(re.findall(r"\"([a-z0-9-]+)\"", args))
            registered_all |= "registered=True" in args
    missing = sorted(set(_guard().registered_datasets()) - declared)
    assert registered_all or missing == [], missing
    assert declared, "no test declares a dataset"
