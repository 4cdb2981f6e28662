"""The RecSys 2019 paper's numbers and one-command reproductions of its tables."""

from recforge.experiments.paper.numbers import PAPER_PARAMS, PAPER_TABLES
from recforge.experiments.paper.reproduce import TABLES, reproduce_table, toppop_checks

__all__ = ["PAPER_PARAMS", "PAPER_TABLES", "TABLES", "reproduce_table", "toppop_checks"]
