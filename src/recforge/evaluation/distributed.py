"""Evaluation beyond one machine: users sharded over a Ray cluster, results identical.

:func:`evaluate_on_ray` cuts the evaluated users into blocks of whole evaluator batches
(:meth:`~recforge.evaluation.evaluator.Evaluator.blocks`), starts ``n_workers`` Ray actors
that each receive the evaluator and the fitted model **once** (one ``ray.put`` each, resolved
when the actor starts; numpy and scipy arrays are read zero-copy from the object store), and
hands the blocks to the actors as tasks (``ray.util.ActorPool``). Each block comes back as
per-user arrays plus beyond-accuracy counts; they are merged in user order
(:meth:`~recforge.evaluation.evaluator.Evaluator.combine`). Because every block holds the
same user batches a single pass scores, and float sums are added in batch order, the result
equals ``evaluator.evaluate(model)`` exactly (per-user values and summary).

Pointing it at a cluster: ``evaluate_on_ray(ev, model, address="ray://head:10001")`` (Ray
client) or ``address="auto"`` on a cluster node; with Ray already initialised in the process
the current connection is used and left open. Without an address and without a running Ray,
a local one is started for the call and shut down after it. The model and its data must
pickle (every registered recforge model does); workers need recforge and its dependencies
(``pip install recforge[ray]`` on every node, or a ``runtime_env``).
"""

from __future__ import annotations

import time
from typing import Any

from recforge.evaluation.evaluator import BlockResult, EvaluationResult, Evaluator
from recforge.models.base import Recommender

__all__ = ["evaluate_on_ray"]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"distributed evaluation needs Ray ({exc}); install the extra: "
            "pip install 'recforge[ray]'"
        ) from None
    return ray


class _BlockWorker:
    """Holds one copy of the evaluator and the model; evaluates blocks of users."""

    def __init__(self, evaluator: Evaluator, model: Recommender, threads: int | None) -> None:
        self.evaluator = evaluator
        self.model = model
        self.limits: Any = None
        if threads is not None:
            from threadpoolctl import threadpool_limits

            self.limits = threadpool_limits(threads)  # kept for the actor's lifetime
            try:  # the compiled top-k runs its rows in numba's thread pool
                import numba

                numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
            except ImportError:  # pragma: no cover - numba is a dependency
                pass

    def run(self, start: int, stop: int, backend: str) -> BlockResult:
        return self.evaluator.evaluate_block(self.model, start, stop,
                                             backend=backend)  # type: ignore[arg-type]

    def pid(self) -> int:
        import os

        return os.getpid()


def evaluate_on_ray(
    evaluator: Evaluator,
    model: Recommender,
    *,
    address: str | None = None,
    n_workers: int | None = None,
    batches_per_block: int = 2,
    threads_per_worker: int | None = 1,
    runtime_env: dict[str, Any] | None = None,
) -> EvaluationResult:
    """``evaluator.evaluate(model)``, with user blocks evaluated by Ray actors.

    Args:
        address: Ray cluster to connect to when Ray is not initialised (``None`` starts a
            local one for this call).
        n_workers: actors (each takes 1 CPU); default: the cluster's CPUs.
        batches_per_block: evaluator batches per task (smaller = finer load balancing).
        threads_per_worker: BLAS/OpenMP and numba threads inside each actor (``None``: leave
            as is).
        runtime_env: passed to the actors (e.g. ``{"pip": ["recforge[ray]"]}``).

    ``meta["distributed"]`` records the workers, blocks, their pids and the address.
    """
    ray = _ray()
    t_start = time.perf_counter()
    evaluator._check_model(model)
    own = not ray.is_initialized()
    if own:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        from recforge._kernels.topk import resolve_backend

        backend = resolve_backend(evaluator.backend)
        blocks = evaluator.blocks(batches_per_block, backend)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = max(1, min(n_workers or cpus, len(blocks)))
        if n_workers is not None and n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        ev_ref, model_ref = ray.put(evaluator), ray.put(model)
        actor_cls = ray.remote(num_cpus=1, runtime_env=runtime_env)(_BlockWorker)
        actors = [actor_cls.remote(ev_ref, model_ref, threads_per_worker)
                  for _ in range(workers)]
        pids = ray.get([a.pid.remote() for a in actors])
        from ray.util import ActorPool

        pool = ActorPool(actors)
        parts = list(pool.map(lambda a, b: a.run.remote(b[0], b[1], backend), blocks))
        for a in actors:
            ray.kill(a)
    finally:
        if own:
            ray.shutdown()
    res = evaluator.combine(model, parts, t_start)
    res.meta["distributed"] = {
        "backend": "ray", "workers": workers, "blocks": len(blocks),
        "batches_per_block": batches_per_block, "worker_pids": pids,
        "address": address if own else "(already initialised)",
        "threads_per_worker": threads_per_worker,
    }
    return res
