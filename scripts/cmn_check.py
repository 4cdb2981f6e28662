"""Issue 7's open check: does CMN still collapse after the full GMF pre-training?

Table 2's CMN (CiteULike-a, the ``recforge reproduce table2 --fixed`` split, seed 0, train minus
validation) with the paper's settings. Two stages, run as one process or one at a time:

- ``pretrain``: CMN's pair-wise GMF with the reproduction's rule (up to ``--epochs`` epochs,
  stopped on the training loss every 5 epochs, patience 5), Adam lazy (ours) or dense (TF-1's
  ``AdamOptimizer``: every row moves at every step). One JSON line per epoch (loss, CPU and wall
  seconds, embedding sizes) and the weights as safetensors at a few epochs and at the best, so
  the pre-training is paid once and every CMN variant starts from the same state.
- ``selftest``: the numba replica of the GMF epoch (used by default, ``--engine``) against the
  torch model's own epoch, 600 steps each for lazy and dense Adam.
- ``cmn``: short CMN runs (``--steps`` steps of the paper's batch) from a saved GMF state, one
  per variant (memory scale x GMF, L2, target user in its own neighbourhood); per variant the
  loss every 100 steps, the output-weight norm, the score spread and HR@5 on the validation
  items of ``--eval-users`` users (ranked among their 100 negatives; ties rank the positive
  last, so a constant score gives 0).

    OMP_NUM_THREADS=1 nice -n 19 python scripts/cmn_check.py all --out out/cmn-check
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from recforge.data.split import Split
from recforge.experiments.paper.reproduce import build_table_spec
from recforge.experiments.runner import _load_data, prepare_split
from recforge.experiments.spec import parse_spec
from recforge.models.iterative import EarlyStopping, TrainingRun
from recforge.models.torch.cmn import CMN, CMNNet
from recforge.models.torch.gmf import GMF, GMFNet
from recforge.models.torch.optim import TFAdam

SNAPSHOTS = (1, 2, 5, 10, 20, 30, 50, 75, 100)

#: CMN variants: name -> (memory scale x GMF, reg_l2, include_target_user)
VARIANTS: dict[str, tuple[float, float, bool]] = {
    "paper": (0.5, 0.1, False),
    "paper+target-user": (0.5, 0.1, True),
    "scale-1x": (1.0, 0.1, False),
    "reg-0": (0.5, 0.0, False),
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def load_table2() -> tuple[Split, dict[str, Any], dict[str, str]]:
    spec = parse_spec(build_table_spec("table2", fixed=True, models=["CMN"]), source="cmn_check")
    data, _ = _load_data(spec)
    split = prepare_split(spec, data, 0)
    params = dict(spec.models[0].params)
    ids = {"split_fingerprint": split.fingerprint(), "train_checksum": split.train.checksum()}
    return split, params, ids


def _sizes(net: GMFNet) -> dict[str, float]:
    """Mean row L2 norm of each embedding table and the head's norm."""
    return {
        "user_norm": float(net.user.weight.detach().norm(dim=1).mean()),
        "item_norm": float(net.item.weight.detach().norm(dim=1).mean()),
        "head_norm": float(net.head.weight.detach().norm()),
    }


_B1, _B2, _EPS = 0.9, 0.999, 1e-8


@numba.njit(cache=True, fastmath=True)
def _decay_and_move(P: np.ndarray, M: np.ndarray, V: np.ndarray, skip: np.ndarray,
                    lr_t: np.float32) -> None:
    """TF-1's dense Adam on the rows without a gradient (``skip[r] >= 0``: a batch row, done):
    the moments decay and the row moves by lr_t·m/(sqrt(v)+ε)."""
    b1, b2, eps = np.float32(_B1), np.float32(_B2), np.float32(_EPS)
    for r in range(P.shape[0]):
        if skip[r] >= 0:
            continue
        for f in range(P.shape[1]):
            m = b1 * M[r, f]
            v = b2 * V[r, f]
            M[r, f] = m
            V[r, f] = v
            P[r, f] -= lr_t * m / (np.sqrt(v) + eps)


@numba.njit(cache=True, fastmath=True)
def _gmf_steps(U: np.ndarray, E: np.ndarray, w: np.ndarray, state: np.ndarray,
               mU: np.ndarray, vU: np.ndarray, mE: np.ndarray, vE: np.ndarray,
               mw: np.ndarray, vw: np.ndarray, users: np.ndarray, pos: np.ndarray,
               neg: np.ndarray, batch: int, lr: float, reg: float, clip: float,
               dense: bool) -> np.ndarray:
    """Every step of one GMF epoch (triples in training order), in place; returns batch losses.

    The arithmetic of ``GMFNet(variant="cmn")`` + ``bpr_loss`` + ½·reg·|w|² +
    ``TFAdam(clip_norm=clip, lazy=not dense)``: score relu(w·(u⊙e)), mean BPR per batch,
    each tensor's (duplicate-summed) gradient clipped to norm ``clip``, Adam(0.9, 0.999, 1e-8)
    with TF-1's bias correction; ``dense``: every row's moments decay and every row moves
    (TF-1's ``AdamOptimizer``). ``state[0]`` is Adam's step counter t.
    """
    n, d = users.size, w.size
    n_steps = (n + batch - 1) // batch
    losses = np.empty(n_steps)
    slot_u = np.full(U.shape[0], -1, np.int64)
    slot_e = np.full(E.shape[0], -1, np.int64)
    rows_u = np.empty(batch, np.int64)
    rows_e = np.empty(2 * batch, np.int64)
    gu = np.zeros((batch, d))
    ge = np.zeros((2 * batch, d))
    gw = np.zeros(d)
    for step in range(n_steps):
        lo, hi = step * batch, min(n, (step + 1) * batch)
        bsz = hi - lo
        t_prev = int(state[0])
        nu, ne = 0, 0
        for k in range(lo, hi):  # the batch's rows, each once (gradients are summed per row)
            u = users[k]
            if slot_u[u] < 0:
                slot_u[u] = nu
                rows_u[nu] = u
                gu[nu, :] = 0.0
                nu += 1
            for r in (pos[k], neg[k]):
                if slot_e[r] < 0:
                    slot_e[r] = ne
                    rows_e[ne] = r
                    ge[ne, :] = 0.0
                    ne += 1
        gw[:] = 0.0
        total = 0.0
        for k in range(lo, hi):
            u, i, j = users[k], pos[k], neg[k]
            ap, an = 0.0, 0.0
            for f in range(d):
                ap += w[f] * U[u, f] * E[i, f]
                an += w[f] * U[u, f] * E[j, f]
            diff = max(ap, 0.0) - max(an, 0.0)
            total += np.log1p(np.exp(-diff)) if diff > -30 else -diff
            coef = -1.0 / (1.0 + np.exp(diff)) / bsz  # d mean(-log σ(diff)) / d diff
            gp = coef if ap > 0 else 0.0
            gn = -coef if an > 0 else 0.0
            su, si, sj = slot_u[u], slot_e[i], slot_e[j]
            for f in range(d):
                gw[f] += gp * U[u, f] * E[i, f] + gn * U[u, f] * E[j, f]
                gu[su, f] += gp * w[f] * E[i, f] + gn * w[f] * E[j, f]
                ge[si, f] += gp * w[f] * U[u, f]
                ge[sj, f] += gn * w[f] * U[u, f]
        pen = 0.0
        for f in range(d):
            pen += w[f] * w[f]
            gw[f] += reg * w[f]
        losses[step] = total / bsz + 0.5 * reg * pen
        for g2, m in ((gw.reshape(1, d), 1), (gu, nu), (ge, ne)):  # per-tensor clip
            sq = 0.0
            for q in range(m):
                for f in range(d):
                    sq += g2[q, f] * g2[q, f]
            if np.sqrt(sq) > clip:
                g2[:m] *= clip / np.sqrt(sq)
        state[0] += 1.0
        t = t_prev + 1
        lr_t = lr * np.sqrt(1.0 - _B2 ** t) / (1.0 - _B1 ** t)
        for f in range(d):
            mw[f] = _B1 * mw[f] + (1 - _B1) * gw[f]
            vw[f] = _B2 * vw[f] + (1 - _B2) * gw[f] * gw[f]
            w[f] -= lr_t * mw[f] / (np.sqrt(vw[f]) + _EPS)
        for P, M, V, G, slot, rows, m in ((U, mU, vU, gu, slot_u, rows_u, nu),
                                          (E, mE, vE, ge, slot_e, rows_e, ne)):
            for q in range(m):  # the batch's rows (lazy and dense alike)
                r = rows[q]
                for f in range(d):
                    g = G[q, f]
                    M[r, f] = _B1 * M[r, f] + (1 - _B1) * g
                    V[r, f] = _B2 * V[r, f] + (1 - _B2) * g * g
                    P[r, f] -= lr_t * M[r, f] / (np.sqrt(V[r, f]) + _EPS)
            if dense:
                _decay_and_move(P, M, V, slot, np.float32(lr_t))
            for q in range(m):
                slot[rows[q]] = -1
    return losses


class TracedGMF(GMF):
    """CMN's GMF that logs every epoch and saves snapshots (``adam="dense"``: TF-1's Adam).

    ``engine="numba"`` runs each epoch through :func:`_gmf_steps` (the same sampler, the same
    shuffle and the same arithmetic as the torch epoch; ``selftest`` compares the two): the
    lazy epoch costs a fraction of torch's step overhead, the dense one is bound by its
    full-table update either way. ``"torch"`` runs the model's own epoch.
    """

    def __init__(self, *, adam: str, out: Path, ids: dict[str, str], engine: str = "numba",
                 check: Any = None, check_at: tuple[int, ...] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self._adam, self._out, self._ids, self._engine = adam, out, ids, engine
        self._check, self._check_at = check, check_at

    def _numba_epoch(self) -> float:
        net = self.module_
        assert isinstance(net, GMFNet)
        u, p, n = self._sampler.pairwise(self.n_negatives)
        order = self._rng.permutation(u.size)  # the draw of pairs._shuffled_batches
        params = [net.user.weight, net.item.weight, net.head.weight]
        if not hasattr(self, "_nb"):
            self._nb = [np.zeros(1)] + [np.zeros(tuple(q.shape), np.float32)
                                        for q in params for _ in (0, 1)]
        U, E, w = (q.detach().numpy() for q in params)  # views: updated in place
        t, mU, vU, mE, vE, mw, vw = self._nb
        losses = _gmf_steps(U, E, w.reshape(-1), t, mU, vU, mE, vE, mw.reshape(-1),
                            vw.reshape(-1), u[order].astype(np.int64),
                            p[order].astype(np.int64), n[order].astype(np.int64),
                            int(self.batch_size), float(self.learning_rate), float(self.reg),
                            5.0, self._adam == "dense")
        return float(losses.astype(np.float32).mean())

    def _prepare(self, train: Any, run: TrainingRun) -> None:
        super()._prepare(train, run)
        self._opt = TFAdam(self.module_.parameters(), lr=self.learning_rate, clip_norm=5.0,
                           lazy=self._adam == "lazy")

    def _train_epoch(self, epoch: int) -> float:
        c0, w0 = _cpu(), time.perf_counter()
        loss = self._numba_epoch() if self._engine == "numba" else super()._train_epoch(epoch)
        net = self.module_
        assert isinstance(net, GMFNet)
        _log(self._out / f"gmf-{self._adam}.jsonl", {
            "stage": "gmf", "adam": self._adam, "engine": self._engine, "epoch": epoch,
            "loss": loss,
            "cpu_s": round(_cpu() - c0, 2), "wall_s": round(time.perf_counter() - w0, 2),
            **_sizes(net), **self._ids})
        if epoch in SNAPSHOTS:
            save_file(dict(net.state_dict()), self._out / f"gmf-{self._adam}-e{epoch}.safetensors")
        if self._check is not None and epoch in self._check_at:
            # CMN from this epoch's GMF (its own seeded fit: the GMF's generators are untouched)
            self._check(net, f"gmf-{self._adam}-e{epoch}")
        return loss


class _TruncGMF(TracedGMF):
    def _prepare(self, train: Any, run: TrainingRun) -> None:
        super()._prepare(train, run)
        self._sampler = _Truncated(  # type: ignore[assignment]  # duck-typed: pairwise only
            self._sampler, 300 * int(self.batch_size), self._rng)


def selftest(split: Split, params: dict[str, Any], ids: dict[str, str], out: Path) -> bool:
    """The numba epoch against the torch one: 2 epochs of 300 steps each, same seed."""
    (out / "selftest").mkdir(parents=True, exist_ok=True)
    nets = {}
    for adam in ("lazy", "dense"):
        for engine in ("torch", "numba"):
            gmf = _TruncGMF(adam=adam, out=out / "selftest", ids=ids, engine=engine,
                            factors=int(params["factors"]), variant="cmn", epochs=2,
                            batch_size=int(params["batch_size"]),
                            n_negatives=int(params["n_negatives"]),
                            reg=float(params["reg_l2_gmf"]), seed=0, n_threads=1)
            gmf.fit(split.train)
            nets[adam, engine] = {k: v.detach().clone() for k, v in
                                  gmf.module_.state_dict().items()}
    ok = True
    for adam in ("lazy", "dense"):
        a, b = nets[adam, "torch"], nets[adam, "numba"]
        diff = {k: float((a[k] - b[k]).abs().max()) for k in a}
        scale = {k: float(a[k].abs().max()) for k in a}
        close = all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-5) for k in a)
        ok = ok and close
        _log(out / "selftest.jsonl", {"stage": "selftest", "adam": adam, "steps": 600,
                                      "max_abs_diff": diff, "max_abs": scale,
                                      "allclose_rtol1e-3_atol1e-5": close, **ids})
    return ok


def pretrain(split: Split, params: dict[str, Any], ids: dict[str, str], adam: str,
             epochs: int, out: Path, check: Any = None,
             check_at: tuple[int, ...] = (), engine: str = "numba") -> GMFNet:
    gmf = TracedGMF(adam=adam, out=out, ids=ids, engine=engine, check=check, check_at=check_at,
                    factors=int(params["factors"]), variant="cmn", epochs=epochs,
                    batch_size=int(params["batch_size"]), n_negatives=int(params["n_negatives"]),
                    learning_rate=float(params.get("learning_rate", 1e-3)),
                    reg=float(params["reg_l2_gmf"]), seed=0, n_threads=1)
    gmf.fit(split.train, early_stopping=EarlyStopping(validate_every=5, patience=5,
                                                      max_epochs=epochs, monitor="loss"))
    best = out / f"gmf-{adam}-best.safetensors"
    net = gmf.module_
    assert isinstance(net, GMFNet)
    save_file(dict(net.state_dict()), best)
    _log(out / f"gmf-{adam}.jsonl", {"stage": "gmf-best", "adam": adam,
                                     "epochs_best": gmf.epochs_best_,
                                     "epochs_run": gmf.epochs_run_, **_sizes(net), **ids})
    return net


class _Truncated:
    """A sampler whose epoch is ``n`` random triples of the full epoch's draw."""

    def __init__(self, sampler: Any, n: int, rng: np.random.Generator) -> None:
        self._s, self._n, self._rng = sampler, n, rng

    def pairwise(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u, p, n = self._s.pairwise(k)
        sel = self._rng.choice(u.size, min(self._n, u.size), replace=False)
        return u[sel], p[sel], n[sel]


class CMNFromGMF(CMN):
    """CMN whose memories start from a saved GMF state; ``chunk`` steps per "epoch"."""

    def __init__(self, *, gmf: GMFNet, scale: float, chunk: int, **kw: Any) -> None:
        super().__init__(**kw)
        self._gmf, self._scale, self._chunk = gmf, scale, chunk

    def _prepare(self, train: Any, run: TrainingRun) -> None:
        super()._prepare(train, run)  # pretrain=False: no GMF here
        net = self.module_
        assert isinstance(net, CMNNet)
        net.load_pretrained(self._gmf, self._scale)
        self._sampler = _Truncated(  # type: ignore[assignment]  # duck-typed: pairwise only
            self._sampler, self._chunk * int(self.batch_size), self._rng)


def _hr5(model: CMN, split: Split, n_users: int) -> float:
    """HR@5 of the validation item among its 100 negatives (ties: the positive ranks last)."""
    assert split.validation is not None and split.validation_negatives is not None
    val = split.validation.matrix.tocsr()
    neg = split.validation_negatives.tocsr()
    users = np.flatnonzero(np.diff(val.indptr) == 1)
    users = np.random.default_rng(0).choice(users, min(n_users, users.size), replace=False)
    rows = [np.concatenate([val[u].indices, neg[u].indices]) for u in users]
    cand = sp.csr_matrix((np.ones(sum(r.size for r in rows), dtype=np.float32),
                          np.concatenate(rows), np.cumsum([0] + [r.size for r in rows])),
                         shape=(users.size, val.shape[1]))
    flat = model.score_candidates(users, cand)
    hits = 0
    for k in range(users.size):
        s = flat[cand.indptr[k]:cand.indptr[k + 1]]
        hits += int((s[1:] >= s[0]).sum() < 5)
    return hits / users.size


def load_gmf(split: Split, params: dict[str, Any], gmf_file: Path) -> GMFNet:
    n_users, n_items = split.train.shape
    gmf = GMFNet(n_users, n_items, int(params["factors"]), variant="cmn")
    gmf.load_state_dict(load_file(gmf_file))
    return gmf


def run_cmn(split: Split, params: dict[str, Any], ids: dict[str, str], gmf: GMFNet, label: str,
            steps: int, eval_users: int, variants: list[str], out: Path) -> None:
    n_users, n_items = split.train.shape
    chunk = 100
    for name in variants:
        scale, reg, target = VARIANTS[name]
        c0, w0 = _cpu(), time.perf_counter()
        p = {k: v for k, v in params.items() if k in CMN().get_params()}
        p.update(epochs=max(1, steps // chunk), pretrain=False, reg_l2=reg,
                 include_target_user=target, seed=0, n_threads=1)
        model = CMNFromGMF(gmf=gmf, scale=scale, chunk=chunk, **p).fit(split.train)
        net = model.module_
        assert isinstance(net, CMNNet)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            u = torch.randint(0, n_users, (2048,), generator=g)
            i = torch.randint(0, n_items, (2048,), generator=g)
            score_sd = float(model._forward_pairs(u, i).std())
        train_cpu = _cpu() - c0
        hr5 = _hr5(model, split, eval_users)
        _log(out / "cmn-variants.jsonl", {
            "stage": "cmn", "gmf": label, "variant": name, "scale": scale,
            "reg_l2": reg, "include_target_user": target, "steps": steps,
            "loss_per_100_steps": [round(float(h.loss or 0.0), 4) for h in model.history_],
            "out_norm": round(float(net.out.weight.detach().norm()), 4),
            "score_sd": score_sd, "val_hr5": round(hr5, 4), "eval_users": eval_users,
            "train_cpu_s": round(train_cpu, 1), "wall_s": round(time.perf_counter() - w0, 1),
            **ids})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("selftest", "pretrain", "cmn", "all"))
    ap.add_argument("--engine", choices=("numba", "torch"), default="numba",
                    help="GMF epochs through the numba replica or the torch model")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--adam", choices=("lazy", "dense"), default="lazy")
    ap.add_argument("--epochs", type=int, default=100, help="GMF epoch cap (paper: 100)")
    ap.add_argument("--gmf", type=Path, help="a saved GMF state (stage cmn)")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--eval-users", type=int, default=1000)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--dense-epochs", type=int, default=100,
                    help="stage all: epoch cap of the dense-Adam ablation after ours (0: skip)")
    ap.add_argument("--check-at", default="2,5,10,20,30,50,75,100",
                    help="GMF epochs after which CMN (paper settings) runs from that state")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        ap.error(f"--variants: unknown {unknown}; known: {sorted(VARIANTS)}")
    if args.stage == "cmn" and args.gmf is None:
        ap.error("stage cmn needs --gmf FILE")
    if args.gmf is not None and not args.gmf.is_file():
        ap.error(f"--gmf: no such file {args.gmf}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    split, params, ids = load_table2()
    print(f"train {split.train.shape} nnz {split.train.matrix.nnz}; {ids}", flush=True)
    check_at = tuple(int(e) for e in args.check_at.split(",") if e)

    def check(net: GMFNet, label: str) -> None:
        run_cmn(split, params, ids, net, label, args.steps, args.eval_users, ["paper"], args.out)

    if args.stage == "selftest":
        return 0 if selftest(split, params, ids, args.out) else 1
    if args.stage == "pretrain":
        pretrain(split, params, ids, args.adam, args.epochs, args.out, check, check_at,
                 args.engine)
    elif args.stage == "cmn":
        run_cmn(split, params, ids, load_gmf(split, params, args.gmf), args.gmf.name,
                args.steps, args.eval_users, variants, args.out)
    else:  # ours (lazy Adam) for the full length, then the dense-Adam ablation (~2x the CPU)
        best = pretrain(split, params, ids, "lazy", args.epochs, args.out, check, check_at,
                        args.engine)
        run_cmn(split, params, ids, best, "gmf-lazy-best", args.steps, args.eval_users,
                variants, args.out)
        if args.dense_epochs:
            best = pretrain(split, params, ids, "dense", args.dense_epochs, args.out, check,
                            check_at, args.engine)
            run_cmn(split, params, ids, best, "gmf-dense-best", args.steps, args.eval_users,
                    variants, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
