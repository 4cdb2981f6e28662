"""The paper-data guard in tests/conftest.py: declared datasets skip locally, fail under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()

USES_DATA = """
import os
from pathlib import Path
import pytest

@pytest.mark.paper_data("mcrec-ml-100k")
def test_reads(paper_data: Path) -> None:
    assert (paper_data / "mcrec-ml-100k").is_dir()
    assert os.environ["RECFORGE_DATA_MIRROR"] == str(paper_data)

def test_plain() -> None:
    pass
"""


def _partial_mirror(tmp: Path, real: Path, drop: str) -> Path:
    """A mirror holding links to every real dataset folder except ``drop``."""
    mirror = tmp / "mirror"
    mirror.mkdir()
    for d in real.iterdir():
        if d.is_dir() and d.name != drop:
            (mirror / d.name).symlink_to(d)
    return mirror


@pytest.fixture
def real_mirror() -> Path:
    env = os.environ.get("RECFORGE_DATA_MIRROR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (root / "mcrec-ml-100k").is_dir():
        pytest.fail(f"this test needs the data mirror at {root}", pytrace=False)
    return root


def _run(pytester: pytest.Pytester, mirror: Path, ci: bool) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_uses=USES_DATA)
    env = {"RECFORGE_DATA_MIRROR": str(mirror)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        if ci:
            mp.setenv("CI", "true")
        else:
            mp.delenv("CI", raising=False)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")


def test_declared_dataset_present_runs(pytester: pytest.Pytester, real_mirror: Path) -> None:
    result = _run(pytester, real_mirror, ci=True)
    result.assert_outcomes(passed=2)


def test_missing_dataset_skips_locally_with_reason(
    pytester: pytest.Pytester, real_mirror: Path, tmp_path: Path
) -> None:
    mirror = _partial_mirror(tmp_path, real_mirror, drop="mcrec-ml-100k")
    result = _run(pytester, mirror, ci=False)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*paper data mcrec-ml-100k not found in the mirror*"])


@pytest.mark.parametrize("drop", ["mcrec-ml-100k", "mcrec-yelp"])
def test_under_ci_any_missing_dataset_fails_the_suite(
    pytester: pytest.Pytester, real_mirror: Path, tmp_path: Path, drop: str
) -> None:
    """Deleting any one registered dataset folder makes a CI run fail instead of skip."""
    mirror = _partial_mirror(tmp_path, real_mirror, drop=drop)
    result = _run(pytester, mirror, ci=True)
    assert result.ret != 0
    assert "skipped" not in result.stdout.str()
    result.stderr.fnmatch_lines([f"*lacks 1 registered dataset(s): {drop}*"])


def test_under_ci_a_declared_unregistered_dataset_is_an_error(
    pytester: pytest.Pytester, real_mirror: Path
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x="""
import pytest

@pytest.mark.paper_data("no-such-dataset")
def test_x() -> None:
    pass
""")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECFORGE_DATA_MIRROR", str(real_mirror))
        mp.setenv("CI", "1")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CI: paper data no-such-dataset not found*"])


def test_fixture_without_declaration_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_y="""
def test_y(paper_data) -> None:
    pass
""")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CI", raising=False)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    assert "without declaring its datasets" in result.stdout.str() + result.stderr.str()

