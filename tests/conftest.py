"""Suite-wide: the one guard for paper data from the mirror.

A test that reads a dataset from the data mirror (``RECFORGE_DATA_MIRROR``, default
``../shared/data``) declares it, on the test or module-wide in ``pytestmark``::

    @pytest.mark.paper_data("spectralcf-ml-1m", "neumf-ml-1m")
    def test_x(paper_data: Path) -> None: ...          # paper_data = the mirror root

    @pytest.mark.paper_data(registered=True)            # every registered dataset

For a declared test the mirror variable is set and ``RECFORGE_CACHE`` points at one cache for
the session. A declared dataset missing from the mirror skips the test locally (with the
reason), but under CI (env ``CI`` set) it is an error: the session refuses to start when any
registered dataset is missing, and each declaring test fails in setup. So CI can never pass
by skipping the data tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

MIRROR_ENV = "RECFORGE_DATA_MIRROR"
DEFAULT_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


def mirror_root() -> Path:
    env = os.environ.get(MIRROR_ENV)
    return Path(env).expanduser() if env else DEFAULT_MIRROR


def registered_datasets() -> list[str]:
    """Registered datasets the mirror holds: those with a file whose sha256 was recorded from
    its bytes. Downloadable-only datasets (known by git blob ids or an archive's md5, e.g.
    movielens-20m, neumf-pinterest) and unobtainable ones are not in the mirror."""
    from recforge.data.registry import list_datasets

    return [d.name for d in list_datasets() if any(f.sha256 for f in d.files)]


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "paper_data(*names, registered=False): the test reads these datasets (or every "
        "registered one) from the data mirror; missing under CI is an error, else a skip",
    )
    if not _in_ci():
        return
    root = mirror_root()
    missing = [name for name in registered_datasets() if not (root / name).is_dir()]
    if missing:
        raise pytest.UsageError(
            f"CI is set but the data mirror {MIRROR_ENV}={os.environ.get(MIRROR_ENV)!r} "
            f"(looked in {root}) lacks {len(missing)} registered dataset(s): "
            f"{', '.join(missing)}; the tests that need them would not run. Point it at "
            "shared/data (as .ci/run does)."
        )


def declared_datasets(item: pytest.Item) -> list[str]:
    """The datasets ``item`` declares through its ``paper_data`` markers (in order, unique)."""
    names: list[str] = []
    for mark in item.iter_markers("paper_data"):
        unknown = set(mark.kwargs) - {"registered"}
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: paper_data takes no {sorted(unknown)}")
        if mark.kwargs.get("registered"):
            names += registered_datasets()
        for n in mark.args:
            if not isinstance(n, str) or not n:
                raise pytest.UsageError(f"{item.nodeid}: paper_data names must be strings")
            names.append(n)
    return list(dict.fromkeys(names))


@pytest.fixture(scope="session")
def _paper_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recforge-cache")


@pytest.fixture(autouse=True)
def _paper_data_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    names = declared_datasets(request.node)
    if not names:
        yield
        return
    root = mirror_root()
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        msg = (f"paper data {', '.join(missing)} not found in the mirror {root} "
               f"(set {MIRROR_ENV} to shared/data)")
        if _in_ci():
            pytest.fail(f"CI: {msg}; a declared dataset may not be skipped", pytrace=False)
        pytest.skip(msg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MIRROR_ENV, str(root))
        mp.setenv("RECFORGE_CACHE", str(request.getfixturevalue("_paper_cache")))
        yield


@pytest.fixture
def paper_data(request: pytest.FixtureRequest) -> Path:
    """The mirror root, for a test that declares its datasets with ``paper_data``."""
    if not declared_datasets(request.node):
        raise pytest.UsageError(
            f"{request.node.nodeid} uses the paper_data fixture without declaring its datasets "
            "(@pytest.mark.paper_data('name', ...))"
        )
    return mirror_root()


@pytest.fixture(scope="session")
def ray_head() -> Iterator[Any]:
    """One Ray head in a loopback-only network namespace for the session (tests/ray_netns.py):
    8 logical CPUs and 1 (logical) GPU, as the platform's example deployment declares, and the
    dashboard. Missing tools or Ray FAIL the test with the reason, never skip."""
    from ray_netns import RayUnavailable, start_ray_head, stop_ray_head

    try:
        head = start_ray_head(num_cpus=8, num_gpus=1)
    except RayUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield head
    stop_ray_head(head)


#: Debian's Chromium (scripts/test.sh installs it); Playwright never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium per test module, driven by Playwright (the report and UI tests;
    per module so no browser and no Playwright loop outlive the tests that use them).
    A missing browser or playwright FAILS the test with how to install it, never skips."""
    import shutil

    if not Path(CHROMIUM).is_file() or shutil.which("chromium") is None:
        pytest.fail(f"browser tests need Debian's chromium at {CHROMIUM} "
                    "(apt-get install chromium; scripts/test.sh does it)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("browser tests need playwright (pip install -e '.[dev]'; no browser "
                    "download: the system chromium is used)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
