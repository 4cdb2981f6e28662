"""The one top-k of recforge, with one tie rule, for the models and the evaluator.

Every "keep the k best" in the code goes through this package:

- :mod:`recforge._kernels.topk` -- the API and the tie rule (``TIE_RULE``: higher value first,
  among equal values the lower index first): ``select_topk`` (dense score blocks with masks or
  candidate sets: the evaluator and ``Recommender.recommend``), ``select_rows`` (dense rows of
  any float dtype: similarity pruning, SLIM coefficients) and ``select_stored`` (stored entries
  of each column of a sparse matrix: the graph models).
- :mod:`recforge._kernels.heap` -- the compiled bounded heap with the same order, for kernels
  that fuse selection into their own loop (the similarity product).
- :mod:`recforge._kernels._select_numba` -- the compiled mask -> select -> hit-lookup kernels
  behind ``select_topk`` (loaded lazily, with a numpy fallback).
- :mod:`recforge._kernels.legacy` -- the named alternative ``"numpy-legacy"``: numpy <= 1.24's
  argpartition/quicksort order, which the RecSys'19 code's lists depend on where values tie.

Submodules are imported explicitly (this package imports nothing), so numba is only loaded by
the modules that need it.
"""
