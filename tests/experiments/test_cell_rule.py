"""The pass rule of a reproduced cell (``reproduce.check_cell``) against the rule held in the
tests (paper_cells.cell_tolerance: 0.01 absolute or 3 % relative, the larger), at its edges."""

from __future__ import annotations

import pytest
from paper_cells import cell_tolerance

from recforge.experiments.paper.reproduce import check_cell

# paper values on both sides of the 1/3 switch point between the absolute and relative parts
PAPERS = [0.0054, 0.1, 1 / 3, 0.5, 0.8213]


@pytest.mark.parametrize("paper", PAPERS)
def test_fixed_cells_pass_within_the_tolerance_and_fail_outside(paper: float) -> None:
    tol = cell_tolerance(paper)
    for ours, ok in ((paper, True), (paper + 0.98 * tol, True), (paper - 0.98 * tol, True),
                     (paper + 1.02 * tol, False), (paper - 1.02 * tol, False)):
        c = check_cell("d", "m", "X@10", paper, ours, fixed=True)
        assert c.ok is ok, (paper, ours, tol)
        assert c.tolerance == pytest.approx(tol, abs=1e-12)
        assert c.delta == pytest.approx(ours - paper, abs=1e-6)
        assert c.ours == pytest.approx(ours, abs=1e-6) and c.paper == paper


@pytest.mark.parametrize("paper", PAPERS)
def test_searched_cells_must_reach_the_paper_minus_the_tolerance(paper: float) -> None:
    tol = cell_tolerance(paper)
    assert check_cell("d", "m", "X", paper, paper + 10 * tol, fixed=False).ok  # far above: fine
    assert check_cell("d", "m", "X", paper, paper - 0.98 * tol, fixed=False).ok
    assert not check_cell("d", "m", "X", paper, paper - 1.02 * tol, fixed=False).ok
    assert not check_cell("d", "m", "X", paper, paper + 1.02 * tol, fixed=True).ok


def test_the_rule_itself() -> None:
    assert cell_tolerance(0.1) == pytest.approx(0.01)
    assert cell_tolerance(0.5) == pytest.approx(0.015)
    assert cell_tolerance(0.0) == pytest.approx(0.01)
