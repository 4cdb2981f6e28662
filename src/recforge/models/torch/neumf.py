"""NeuMF (He et al., WWW'17) with GMF and MLP pre-training, as the RecSys'19 paper ran it.

Networks (GMF in :mod:`recforge.models.torch.gmf`):

- MLP: user/item embeddings of size ``layers[0] / 2``, concatenated, ReLU layers of sizes
  ``layers[1:]``, then a logit.
- NeuMF: its own GMF and MLP branches (nothing shared); the GMF product and the MLP's last
  hidden vector are concatenated into one logit. With pre-training the branches start from a
  trained :class:`~recforge.models.torch.gmf.GMF` and :class:`MLP`, and the fused head from
  half of each head: weights ``[0.5·h_gmf ; 0.5·h_mlp]``, bias ``0.5·(b_gmf + b_mlp)``.

Training as in the original: binary cross-entropy over every positive plus ``n_negatives``
negatives re-drawn each epoch; every stage (GMF, MLP, NeuMF) early-stops on the experiment's
validation callback (the paper: HR@10 on the sampled validation, every 5 epochs, patience 5).
Initialisation as in the Keras port: embeddings N(0, ``init_std``²), hidden layers
Glorot-uniform, heads LeCun-uniform, biases zero.

Settings by name (``preset``; hyper-parameters left at None take the preset's value):

- ``"apr2019"`` (default; the April 2019 run behind the printed table): factors 8, layers
  [64, 32, 16, 8], Adam with lr 1e-3 for all three stages.
- ``"aug2019"`` (the August 2019 re-run with the NCF authors' recommended settings): factors 64,
  layers [4f, 2f, f], SGD (lr 1e-3) for NeuMF after Adam (lr 1e-3) pre-training. For Pinterest
  that run used factors 16: ``NeuMF(preset="aug2019", factors=16)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from recforge.data.interactions import Interactions
from recforge.models.iterative import EarlyStopping, TrainingRun
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.gmf import GMF, GMFNet, init_embedding, lecun_uniform_
from recforge.models.torch.pairs import (
    PairScoringRecommender,
    check_choice,
    make_optimizer,
    negative_sampler,
    pointwise_epoch,
)

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["MLP", "PRESETS", "MLPNet", "NeuMF", "NeuMFNet"]

Optimizer = Literal["adam", "sgd"]

PRESETS: dict[str, dict[str, Any]] = {
    "apr2019": {"factors": 8, "layers": None, "optimizer": "adam", "optimizer_pretrain": "adam",
                "learning_rate": 1e-3, "learning_rate_pretrain": 1e-3},
    "aug2019": {"factors": 64, "layers": None, "optimizer": "sgd", "optimizer_pretrain": "adam",
                "learning_rate": 1e-3, "learning_rate_pretrain": 1e-3},
}


def _default_layers(preset: str, factors: int) -> list[int]:
    return [64, 32, 16, 8] if preset == "apr2019" else [4 * factors, 2 * factors, factors]


def _keras_head(in_features: int) -> nn.Linear:
    head = nn.Linear(in_features, 1)
    lecun_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def check_layers(layers: Sequence[int], who: str) -> list[int]:
    """MLP widths: at least two positive ints, the first (the concatenation) even."""
    out = [int(w) for w in layers]
    if len(out) < 2 or out[0] % 2 or min(out) < 1 or out != list(layers):
        raise ValueError(
            f"{who}: layers must list >= 2 positive integer widths with an even first one "
            f"(the user and item embeddings are layers[0] / 2 each), got {list(layers)}"
        )
    return out


class MLPNet(nn.Module):
    """``head(tower([p'_u ; q'_i]))``: one logit per pair; ``layers[0]`` is the input width."""

    def __init__(self, n_users: int, n_items: int, layers: Sequence[int],
                 init_std: float = 0.05) -> None:
        super().__init__()
        layers = check_layers(layers, "MLPNet")
        half = layers[0] // 2
        self.user = nn.Embedding(n_users, half)
        self.item = nn.Embedding(n_items, half)
        init_embedding(self.user.weight, "normal", init_std)
        init_embedding(self.item.weight, "normal", init_std)
        hidden: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise(layers):
            lin = nn.Linear(w_in, w_out)
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
            hidden += [lin, nn.ReLU()]
        self.tower = nn.Sequential(*hidden)
        self.head = _keras_head(layers[-1])

    def hidden(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The last hidden vector, shape (batch, layers[-1])."""
        out: torch.Tensor = self.tower(torch.cat([self.user(users), self.item(items)], dim=-1))
        return out

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,)."""
        out: torch.Tensor = self.head(self.hidden(users, items)).squeeze(-1)
        return out

    def kernels(self) -> list[torch.Tensor]:
        """The hidden layers' weight matrices, in order."""
        return [m.weight for m in self.tower if isinstance(m, nn.Linear)]


class NeuMFNet(nn.Module):
    """GMF and MLP branches fused by one head; the branches' own heads are not used."""

    def __init__(self, n_users: int, n_items: int, factors: int, layers: Sequence[int],
                 init_std: float = 0.05) -> None:
        super().__init__()
        self.gmf = GMFNet(n_users, n_items, factors, variant="ncf", init_std=init_std)
        self.mlp = MLPNet(n_users, n_items, layers, init_std=init_std)
        self.head = _keras_head(factors + int(layers[-1]))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,)."""
        fused = torch.cat([self.gmf.product(users, items), self.mlp.hidden(users, items)], dim=-1)
        out: torch.Tensor = self.head(fused).squeeze(-1)
        return out

    def fused_parameters(self) -> list[nn.Parameter]:
        """The parameters NeuMF trains (everything but the two unused branch heads)."""
        unused = {id(p) for p in (*self.gmf.head.parameters(), *self.mlp.head.parameters())}
        return [p for p in self.parameters() if id(p) not in unused]

    @torch.no_grad()
    def load_pretrained(self, gmf: GMFNet, mlp: MLPNet, alpha: float = 0.5) -> None:
        """Copy trained branches; fuse their heads as ``[α·h_gmf ; (1-α)·h_mlp]``."""
        self.gmf.load_state_dict(gmf.state_dict())
        self.mlp.load_state_dict(mlp.state_dict())
        self.head.weight.copy_(
            torch.cat([alpha * gmf.head.weight, (1.0 - alpha) * mlp.head.weight], dim=1)
        )
        b_gmf, b_mlp = gmf.head.bias, mlp.head.bias
        if b_gmf is None or b_mlp is None:
            raise ValueError("NeuMF pre-training needs GMF and MLP heads with biases (GMF 'ncf')")
        self.head.bias.copy_(alpha * b_gmf + (1.0 - alpha) * b_mlp)


def _l2(tensors: Sequence[torch.Tensor], lam: float) -> torch.Tensor | None:
    """Keras' L2 regulariser summed over ``tensors``: λ·Σw² (None when λ is 0)."""
    if not lam:
        return None
    return lam * torch.stack([(t * t).sum() for t in tensors]).sum()


class MLP(PairScoringRecommender):
    """NCF's multi-layer perceptron (point-wise, as NeuMF pre-trains it).

    Args:
        layers: widths; ``layers[0]`` is the concatenated embedding size (each ``layers[0]/2``).
        reg_layers: Keras L2 per layer, ``reg_layers[0]`` for the embeddings (None: all 0).
        epochs, batch_size, n_negatives, learning_rate, optimizer, init_std, seed, device,
        n_threads: as in :class:`~recforge.models.torch.gmf.GMF`.
    """

    name: ClassVar[str] = "MLP"
    resumable = True
    _resume_attrs = ("_opt",)
    _test_params: ClassVar[dict[str, Any]] = {
        "layers": [8, 4], "epochs": 2, "batch_size": 64, "n_threads": 1,
    }

    def __init__(
        self,
        layers: Sequence[int] = (64, 32, 16, 8),
        reg_layers: Sequence[float] | None = None,
        epochs: int = 100,
        batch_size: int = 256,
        n_negatives: int = 4,
        learning_rate: float = 1e-3,
        optimizer: Optimizer = "adam",
        init_std: float = 0.05,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.layers = layers
        self.reg_layers = reg_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.n_negatives = n_negatives
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.init_std = init_std
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    def _check_params(self) -> None:
        check_layers(self.layers, type(self).__name__)
        check_choice(self, "optimizer", ("adam", "sgd"))
        _reg_layers(self.reg_layers, self.layers, type(self).__name__)

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        return {"n_users": self.n_users_, "n_items": self.n_items_,
                "layers": [int(w) for w in self.layers], "init_std": float(self.init_std)}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return MLPNet(config["n_users"], config["n_items"], config["layers"], config["init_std"])

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        self._sampler = negative_sampler(train, self._rng, False)
        self._opt = make_optimizer(self.optimizer, self.module_.parameters(), self.learning_rate)

    def _end_training(self) -> None:
        super()._end_training()
        for attr in ("_sampler", "_opt"):
            vars(self).pop(attr, None)

    def _penalty(self) -> torch.Tensor | None:
        net = self.module_
        assert isinstance(net, MLPNet)
        regs = _reg_layers(self.reg_layers, self.layers, type(self).__name__)
        terms = [_l2([net.user.weight, net.item.weight], regs[0])]
        terms += [_l2([w], lam) for w, lam in zip(net.kernels(), regs[1:], strict=True)]
        kept = [t for t in terms if t is not None]
        return torch.stack(kept).sum() if kept else None

    def _train_epoch(self, epoch: int) -> float:
        return pointwise_epoch(self.module_, self._opt, self._sampler, self.n_negatives,
                               self.batch_size, self._rng, self.device_, self._penalty)

    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module_(users, items)
        return out


def _reg_layers(reg: Sequence[float] | None, layers: Sequence[int], who: str) -> list[float]:
    if reg is None:
        return [0.0] * len(layers)
    out = [float(r) for r in reg]
    if len(out) != len(layers) or min(out) < 0:
        raise ValueError(
            f"{who}: reg_layers must give one value >= 0 per entry of layers ({len(layers)}), "
            f"got {list(reg)}"
        )
    return out


class NeuMF(PairScoringRecommender):
    """NeuMF with GMF and MLP pre-training (see the module docstring for the presets).

    Args:
        preset: "apr2019" (default) or "aug2019"; fills the hyper-parameters left at None.
        factors: GMF embedding size. layers: MLP widths.
        reg_mf: Keras L2 on the GMF embeddings. reg_layers: Keras L2 per MLP layer.
        epochs, epochs_gmf, epochs_mlp: maximum epochs of NeuMF and of each pre-training.
        batch_size, n_negatives: per step / per positive (all stages).
        learning_rate, optimizer: NeuMF's; learning_rate_pretrain, optimizer_pretrain: GMF's
            and MLP's.
        pretrain: start NeuMF from the trained GMF and MLP (else from scratch).
        init_std, seed, device, n_threads: as in :class:`~recforge.models.torch.gmf.GMF`
            (the MLP stage is seeded with ``seed + 1``).

    After ``fit``: ``epochs_best_`` (NeuMF), ``epochs_gmf_best_``, ``epochs_mlp_best_``,
    ``pretrain_history_`` (each stage's per-epoch history) and ``settings_`` (the resolved
    preset values).
    """

    name: ClassVar[str] = "NeuMF"
    resumable = True
    _resume_attrs = ("_opt",)
    _test_params: ClassVar[dict[str, Any]] = {
        "factors": 4, "layers": [8, 4], "epochs": 2, "epochs_gmf": 1, "epochs_mlp": 1,
        "batch_size": 64, "n_threads": 1,
    }

    def __init__(
        self,
        preset: Literal["apr2019", "aug2019"] = "apr2019",
        factors: int | None = None,
        layers: Sequence[int] | None = None,
        reg_mf: float = 0.0,
        reg_layers: Sequence[float] | None = None,
        epochs: int = 100,
        epochs_gmf: int = 100,
        epochs_mlp: int = 100,
        batch_size: int = 256,
        n_negatives: int = 4,
        learning_rate: float | None = None,
        learning_rate_pretrain: float | None = None,
        optimizer: Optimizer | None = None,
        optimizer_pretrain: Optimizer | None = None,
        pretrain: bool = True,
        init_std: float = 0.05,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.preset = preset
        self.factors = factors
        self.layers = layers
        self.reg_mf = reg_mf
        self.reg_layers = reg_layers
        self.epochs = epochs
        self.epochs_gmf = epochs_gmf
        self.epochs_mlp = epochs_mlp
        self.batch_size = batch_size
        self.n_negatives = n_negatives
        self.learning_rate = learning_rate
        self.learning_rate_pretrain = learning_rate_pretrain
        self.optimizer = optimizer
        self.optimizer_pretrain = optimizer_pretrain
        self.pretrain = pretrain
        self.init_std = init_std
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    def resolved_settings(self) -> dict[str, Any]:
        """The preset's values with the explicitly given hyper-parameters on top."""
        check_choice(self, "preset", tuple(PRESETS))
        out = dict(PRESETS[self.preset])
        for key in out:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if out["layers"] is None:
            out["layers"] = _default_layers(self.preset, int(out["factors"]))
        out["layers"] = check_layers(out["layers"], type(self).__name__)
        for key in ("optimizer", "optimizer_pretrain"):
            if out[key] not in ("adam", "sgd"):
                raise ValueError(f"NeuMF: {key} must be 'adam' or 'sgd', got {out[key]!r}")
        _reg_layers(self.reg_layers, out["layers"], type(self).__name__)
        return out

    def _check_params(self) -> None:
        self.settings_ = self.resolved_settings()

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        s = self.settings_
        return {"n_users": self.n_users_, "n_items": self.n_items_, "factors": int(s["factors"]),
                "layers": list(s["layers"]), "init_std": float(self.init_std)}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return NeuMFNet(config["n_users"], config["n_items"], config["factors"],
                        config["layers"], config["init_std"])

    def _stage_kwargs(self) -> dict[str, Any]:
        s = self.settings_
        return {"batch_size": self.batch_size, "n_negatives": self.n_negatives,
                "learning_rate": s["learning_rate_pretrain"],
                "optimizer": s["optimizer_pretrain"], "init_std": self.init_std,
                "device": self.device, "n_threads": self.n_threads}

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        s = self.settings_
        net = self.module_
        assert isinstance(net, NeuMFNet)
        self.pretrain_history_: dict[str, list[dict[str, Any]]] = {}
        self.epochs_gmf_best_: int | None = None
        self.epochs_mlp_best_: int | None = None
        if self.pretrain:
            kw = self._stage_kwargs()
            gmf = GMF(factors=int(s["factors"]), variant="ncf", epochs=self.epochs_gmf,
                      reg=self.reg_mf, seed=self.seed, **kw)
            mlp = MLP(layers=s["layers"], reg_layers=self.reg_layers, epochs=self.epochs_mlp,
                      seed=self.seed + 1, **kw)
            for label, stage in (("GMF", gmf), ("MLP", mlp)):
                rule = _stage_rule(run, stage.epochs)
                stage.fit(train, validation=run.validation, early_stopping=rule,
                          stage=f"NeuMF: {label} pre-training", progress=run.progress)
                self.pretrain_history_[label] = [h.to_dict() for h in stage.history_]
            self.epochs_gmf_best_ = int(gmf.epochs_best_)
            self.epochs_mlp_best_ = int(mlp.epochs_best_)
            gmf_net, mlp_net = gmf.module_, mlp.module_
            assert isinstance(gmf_net, GMFNet) and isinstance(mlp_net, MLPNet)
            net.load_pretrained(gmf_net, mlp_net)
        self._sampler = negative_sampler(train, self._rng, False)
        self._opt = make_optimizer(s["optimizer"], net.fused_parameters(), s["learning_rate"])

    def _end_training(self) -> None:
        super()._end_training()
        for attr in ("_sampler", "_opt"):
            vars(self).pop(attr, None)

    def _penalty(self) -> torch.Tensor | None:
        net = self.module_
        assert isinstance(net, NeuMFNet)
        regs = _reg_layers(self.reg_layers, self.settings_["layers"], type(self).__name__)
        terms = [_l2([net.gmf.user.weight, net.gmf.item.weight], self.reg_mf),
                 _l2([net.mlp.user.weight, net.mlp.item.weight], regs[0])]
        terms += [_l2([w], lam) for w, lam in zip(net.mlp.kernels(), regs[1:], strict=True)]
        kept = [t for t in terms if t is not None]
        return torch.stack(kept).sum() if kept else None

    def _train_epoch(self, epoch: int) -> float:
        return pointwise_epoch(self.module_, self._opt, self._sampler, self.n_negatives,
                               self.batch_size, self._rng, self.device_, self._penalty)

    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module_(users, items)
        return out


def _stage_rule(run: TrainingRun, epochs: int) -> EarlyStopping | None:
    """A pre-training stage stops by the run's rule, capped by its own ``epochs`` and by the
    run's epoch cap (an experiment's quick-look limit), not by NeuMF's ``epochs``."""
    es = run.early_stopping
    if es is None:
        return None
    cap = epochs if es.max_epochs is None else min(epochs, es.max_epochs)
    return es.model_copy(update={"max_epochs": cap, "min_epochs": min(es.min_epochs, cap)})
