"""MCRec (Hu, Shi, Zhao, Yu, KDD'18), as its released code builds it, on the shared torch base.

For a (user, item) pair the network reads up to ``N_PATHS`` = 5 instances of each of four
metapaths (:mod:`.mcrec_metapaths`, re-sampled from the training data: an approximation of the
unobtainable path files), every node a fixed 64-d BPR vector:

- each metapath has its own path encoder: a width-4 "valid" convolution over the 4 nodes, i.e.
  one linear map of the 4 x 64 node vectors to 128 values, ReLU, dropout 0.5; the 5 instances
  are max-pooled (the paper's path-level attention is not used by the code);
- metapath attention: Dense(128, ReLU) → Dense(1, ReLU) on [user; item; metapath vector],
  softmax over the 4 metapaths, weighted sum = the context vector;
- user and item co-attention: Dense(128, ReLU) on [user; context], softmax over the 128
  dimensions, times the user's (item's) latent vector;
- [user'; context; item'] → MLP [512, 256, 128, 64] (ReLU) → one logit; binary cross-entropy
  with 4 uniform negatives per training pair, L2 1e-3 on the attention and MLP kernels,
  Adam (lr 1e-3, Keras' per-step decay lr / (1 + 1e-4 t)), batches of 256 training pairs.

A missing instance is an all-zero input (as in the original's zero-filled arrays), so its
encoding is ReLU(bias). The path encoder is linear in the node vectors, so it is computed as a
sum of per-position tables ``features @ W_t`` gathered by node id, plus the bias, in one
``embedding_bag``: the same numbers (up to float rounding) as the convolution over gathered
vectors, without copying 64-d vectors per instance.

Scores are the logits (monotone in the original's sigmoid output; no float32 ties at 1.0).
Scoring every item for a user sends every pair through the network, so :meth:`MCRec.score`
works in blocks of ``score_batch`` pairs and the model declares candidate scoring.

``metapath_labels="original"`` names the four inputs as the original code did
(``umtm, umum, umtmum, uuum``), although its files — and ours — hold UMTM, UMUM, UUUM and UMMM
paths (its ``Dataset.py`` reads ``uuum_5_1`` into the slot called ``umtmum`` and ``ummm_5_1``
into ``uuum``). The slots are symmetric, so this only changes the names under which
:attr:`MCRec.metapath_names_` and :meth:`MCRec.metapath_attention` report; the default names
each input after the paths it holds.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import PositiveInt

from recforge.data.interactions import Interactions
from recforge.models.iterative import TrainingRun
from recforge.models.params import Param, check_params
from recforge.models.torch.base import TorchRecommender, torch
from recforge.models.torch.mcrec_metapaths import (
    METAPATHS,
    BprEmbeddings,
    instance_nodes,
    load_side_information,
    sample_metapaths,
    svd_node_vectors,
)
from recforge.models.torch.sampling import NegativeSampler

nn = torch.nn
F = torch.nn.functional

__all__ = ["ORIGINAL_LABELS", "MCRec", "MCRecNet", "bernoulli_mask"]

#: the names the original code gave its four inputs (holding UMTM, UMUM, UUUM, UMMM paths).
ORIGINAL_LABELS: tuple[str, ...] = ("umtm", "umum", "umtmum", "uuum")
_PATH_LEN = 4


def bernoulli_mask(shape: tuple[int, ...], keep: float, rng: np.random.Generator
                   ) -> torch.Tensor:
    """A 0/1 float mask with P(1) = ``keep``, drawn with numpy (for keep = 0.5 from random
    bits: on 2 cores ~10x faster than torch's CPU dropout, whose mask generation dominated the
    epoch time)."""
    n = math.prod(shape)
    if keep == 0.5:
        bits = np.unpackbits(rng.integers(0, 256, size=(n + 7) // 8, dtype=np.uint8))[:n]
        return torch.from_numpy(bits.reshape(shape)).to(torch.float32)
    return torch.from_numpy(rng.random(shape, dtype=np.float32) < keep).to(torch.float32)


def _glorot_normal(w: torch.Tensor, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    # Keras 2.2 glorot_normal: truncated normal (2 std), std = sqrt(2 / (fan_in + fan_out)).
    std = math.sqrt(2.0 / (fan_in + fan_out))
    nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std, generator=g)


class MCRecNet(nn.Module):
    """The network of the module docstring; ``features`` is a fixed (non-trained) buffer."""

    features: torch.Tensor

    def __init__(self, n_users: int, n_items: int, n_nodes: int, feature_dim: int,
                 latent_dim: int, n_metapaths: int, layers: list[int], conv_dim: int = 128,
                 att_dim: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.n_metapaths = n_metapaths
        self.conv_dim = conv_dim
        self.dropout = dropout
        self.register_buffer("features", torch.zeros(n_nodes, feature_dim))
        self.user_latent = nn.Embedding(n_users, latent_dim)
        self.item_latent = nn.Embedding(n_items, latent_dim)
        self.conv_weight = nn.Parameter(torch.empty(n_metapaths, _PATH_LEN, feature_dim,
                                                    conv_dim))
        self.conv_bias = nn.Parameter(torch.zeros(n_metapaths, conv_dim))
        self.att1 = nn.Linear(2 * latent_dim + conv_dim, att_dim)
        self.att2 = nn.Linear(att_dim, 1)
        self.user_att = nn.Linear(latent_dim + conv_dim, latent_dim)
        self.item_att = nn.Linear(latent_dim + conv_dim, latent_dim)
        widths = [2 * latent_dim + conv_dim, *layers]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], 1)

    def reset_parameters(self, g: torch.Generator) -> None:
        with torch.no_grad():
            for emb in (self.user_latent, self.item_latent):
                _glorot_normal(emb.weight, emb.weight.shape[0], emb.weight.shape[1], g)
            # Keras glorot_uniform of a Conv1D kernel: fans = kernel size x channels.
            _, k, f, c = self.conv_weight.shape
            limit = math.sqrt(6.0 / (k * f + k * c))
            self.conv_weight.uniform_(-limit, limit, generator=g)
            self.conv_bias.zero_()
            for lin in (self.att1, self.att2, self.user_att, self.item_att, *self.mlp):
                _glorot_normal(lin.weight, lin.in_features, lin.out_features, g)
                lin.bias.zero_()
            std = math.sqrt(1.0 / self.out.in_features)  # lecun_normal
            nn.init.trunc_normal_(self.out.weight, 0.0, std, -2 * std, 2 * std, generator=g)
            self.out.bias.zero_()

    def kernels(self) -> list[torch.Tensor]:
        """The weights under the original's L2 1e-3 (attention and MLP kernels)."""
        return [m.weight for m in (self.att1, self.att2, self.user_att, self.item_att,
                                   *self.mlp)]

    def path_tables(self) -> torch.Tensor:
        """Every node's contribution at every (metapath, position), then the biases: row
        ``node * M * 4 + m * 4 + p`` is ``features[node] @ conv_weight[m, p]``, row
        ``n_nodes * M * 4 + m`` is ``conv_bias[m]``."""
        m, p, f, c = self.conv_weight.shape
        w = self.conv_weight.permute(2, 0, 1, 3).reshape(f, m * p * c)
        return torch.cat([(self.features @ w).view(-1, c), self.conv_bias])

    def forward(self, users: torch.Tensor, items: torch.Tensor, nodes: torch.Tensor,
                tables: torch.Tensor | None = None, *, attention: bool = False,
                rng: np.random.Generator | None = None) -> torch.Tensor:
        """Logits (B,) for pairs ``users[b], items[b]`` with instance node ids ``nodes``
        (B, n_metapaths, N_PATHS, 4); ``attention=True`` returns the metapath weights instead.

        In training mode the path encodings are dropped out with masks from ``rng`` (the fit's
        seeded numpy generator; torch's own dropout when None)."""
        if tables is None:
            tables = self.path_tables()
        b, m, n, p = nodes.shape
        mp = m * p
        dev = nodes.device
        slots = torch.arange(mp, device=dev).view(1, m, 1, p)
        bias_rows = (self.features.shape[0] * mp + torch.arange(m, device=dev)).view(1, m, 1, 1)
        # one bag per instance: its 4 node rows and its metapath's bias row, summed by one
        # embedding_bag (forward and backward ~2x faster than four gathers plus a broadcast
        # bias, whose gradient is a strided sum over every instance)
        bags = torch.cat([nodes * mp + slots, bias_rows.expand(b, m, n, 1)], dim=-1)
        h = F.embedding_bag(bags.view(-1, p + 1), tables, mode="sum").view(b, m, n, -1)
        h = F.relu(h)
        if self.training and self.dropout > 0:
            if rng is None:
                h = F.dropout(h, self.dropout, True)
            else:
                keep = 1.0 - self.dropout
                h = h * (bernoulli_mask(tuple(h.shape), keep, rng).to(h.device) / keep)
        paths = h.amax(dim=2)  # (B, M, C): max over the instances
        u = self.user_latent(users)
        i = self.item_latent(items)
        # att1 on [u; i; path_m] = W_ui [u; i] + W_p path_m + b: the user-item part is shared
        # by the four metapaths, so it is computed once (same numbers, a third fewer FLOPs).
        d = u.shape[1] + i.shape[1]
        w = self.att1.weight
        shared = F.linear(torch.cat([u, i], 1), w[:, :d], self.att1.bias)
        hidden = F.relu(shared[:, None, :] + F.linear(paths, w[:, d:]))
        weights = torch.softmax(F.relu(self.att2(hidden)).squeeze(-1), dim=1)
        if attention:
            return weights
        ctx = (weights[..., None] * paths).sum(1)
        ua = u * torch.softmax(F.relu(self.user_att(torch.cat([u, ctx], 1))), dim=1)
        ia = i * torch.softmax(F.relu(self.item_att(torch.cat([i, ctx], 1))), dim=1)
        x = torch.cat([ua, ctx, ia], 1)
        for lin in self.mlp:
            x = F.relu(lin(x))
        return self.out(x).squeeze(-1)


class MCRec(TorchRecommender):
    """MCRec on ML-100k with re-sampled metapaths (see the module docstring).

    Args:
        epochs: maximum epochs (100 in the RecSys'19 run at 024dc15).
        latent_dim: user / item latent width (128).
        layers: MLP widths ([512, 256, 128, 64]).
        l2: L2 weight on the attention and MLP kernels (the code's 1e-3).
        learning_rate, lr_decay: Adam step size and Keras' per-update decay (1e-3, 1e-4).
        batch_size: training pairs per batch, each with ``num_negatives`` negatives (256, 4).
        dropout: on every path encoding (0.5).
        side_data: registered dataset holding the BPR vector files and the 19 genres
            (``None``: the genres are ``train.item_features``).
        node_vectors: "released" (the authors' fixed BPR vectors from ``side_data``) or "svd"
            (from the training matrix alone, see
            :func:`~.mcrec_metapaths.svd_node_vectors`: no outside data, no possible leak).
        knn, threshold: metapath sampling rules (50-NN graphs, cosine cut 0.7).
        metapath_labels: "paths" (default; each input named after its paths) or "original"
            (the original code's mislabelled names, see the module docstring).
        score_batch: pairs per forward pass when scoring (bounds the memory of full ranking).
    """

    name = "MCRec"
    epochs_param = "epochs"
    supports_candidates = True
    resumable = True
    _resume_attrs = ("_opt", "_sched")
    _fixed_buffers = ("features",)  # the node vectors: from side_data, rebuilt by every fit
    param_rules: ClassVar[dict[str, Param]] = {
        "epochs": Param(ge=1), "latent_dim": Param(ge=1), "l2": Param(ge=0),
        "learning_rate": Param(gt=0), "lr_decay": Param(ge=0), "batch_size": Param(ge=1),
        "num_negatives": Param(ge=1), "dropout": Param(ge=0, lt=1), "knn": Param(ge=1),
        "threshold": Param(ge=-1, lt=1), "node_vectors": Param(choices=("released", "svd")),
        "metapath_labels": Param(choices=("paths", "original")), "score_batch": Param(ge=1),
        "n_threads": Param(ge=1),
    }
    _test_params: ClassVar[dict[str, Any]] = {
        "epochs": 2, "latent_dim": 8, "layers": (16, 8), "batch_size": 64, "n_threads": 1,
        "score_batch": 500, "side_data": None, "node_vectors": "svd", "knn": 5,
        "threshold": 0.3,
    }

    def __init__(
        self,
        epochs: int = 100,
        latent_dim: int = 128,
        layers: tuple[PositiveInt, ...] = (512, 256, 128, 64),
        l2: float = 1e-3,
        learning_rate: float = 1e-3,
        lr_decay: float = 1e-4,
        batch_size: int = 256,
        num_negatives: int = 4,
        dropout: float = 0.5,
        side_data: str | None = "mcrec-ml-100k",
        node_vectors: str = "released",
        knn: int = 50,
        threshold: float = 0.7,
        metapath_labels: str = "paths",
        score_batch: int = 4096,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.latent_dim = latent_dim
        self.layers = layers
        self.l2 = l2
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.dropout = dropout
        self.side_data = side_data
        self.node_vectors = node_vectors
        self.knn = knn
        self.threshold = threshold
        self.metapath_labels = metapath_labels
        self.score_batch = score_batch
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    # ------------------------------------------------------------------ hooks
    def _check_params(self) -> None:
        check_params(type(self), self.get_params())
        if not list(self.layers):
            raise ValueError("MCRec: layers must hold at least one width")
        if self.node_vectors == "released" and self.side_data is None:
            raise ValueError("MCRec: node_vectors='released' reads the BPR files of side_data; "
                             "name a registered dataset or use node_vectors='svd'")

    def _side_information(self, train: Interactions) -> tuple[BprEmbeddings, sp.csr_matrix]:
        if self.side_data is None:
            if train.item_features is None:
                raise ValueError("MCRec: side_data=None takes the genres from "
                                 "train.item_features, but the training data has none")
            genres = sp.csr_matrix(train.item_features)
            return svd_node_vectors(train, genres, seed=int(self.seed)), genres
        emb, genres = load_side_information(train, self.side_data)
        if self.node_vectors == "svd":
            emb = svd_node_vectors(train, genres, dim=emb.dim, seed=int(self.seed))
        return emb, genres

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        self._side = self._side_information(train)
        emb, genres = self._side
        n_nodes = train.n_users + train.n_items + genres.shape[1] + 1  # + the padding row
        return {"n_users": int(train.n_users), "n_items": int(train.n_items),
                "n_nodes": int(n_nodes), "feature_dim": int(emb.dim),
                "latent_dim": int(self.latent_dim), "n_metapaths": len(METAPATHS),
                "layers": [int(w) for w in self.layers], "dropout": float(self.dropout)}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return MCRecNet(**config)

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        net = self.module_
        assert isinstance(net, MCRecNet)
        net.reset_parameters(self._generator)
        emb, genres = self._side
        say = run.progress
        mp = sample_metapaths(train, emb, genres=genres, knn=int(self.knn),
                              threshold=float(self.threshold), log_fn=say)
        with torch.no_grad():
            net.features.copy_(torch.from_numpy(mp.features))
        self.path_mids_ = mp.mids
        self.path_counts_ = mp.counts
        self.metapath_names_ = list(METAPATHS if self.metapath_labels == "paths"
                                    else ORIGINAL_LABELS)
        self.metapath_coverage_ = {n: v for n, v in zip(self.metapath_names_,
                                                        mp.coverage().values(), strict=True)}
        m = sp.csr_matrix(train.matrix)
        self._pos_users = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        self._pos_items = m.indices.astype(np.int64)
        self._sampler = NegativeSampler(train, self._rng)
        self._opt = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate), eps=1e-7)
        decay = float(self.lr_decay)
        self._sched = torch.optim.lr_scheduler.LambdaLR(self._opt,
                                                        lambda t: 1.0 / (1.0 + decay * t))

    def _nodes(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """Instance node ids (B, M, N_PATHS, 4) of pairs, from the stored instances."""
        assert isinstance(self.module_, MCRecNet)
        pad = int(self.module_.features.shape[0]) - 1
        ids = instance_nodes(self.path_mids_, self.path_counts_, users, items, pad)
        return torch.from_numpy(ids).to(self.device_)

    def _train_epoch(self, epoch: int) -> float:
        net = self.module_
        assert isinstance(net, MCRecNet)
        net.train()  # validation in between leaves the module in eval mode (no dropout)
        dev = self.device_
        k = int(self.num_negatives)
        order = self._rng.permutation(len(self._pos_users))
        total, n_batches = 0.0, 0
        kernels = net.kernels()
        for start in range(0, len(order), int(self.batch_size)):
            idx = order[start:start + int(self.batch_size)]
            u, i = self._pos_users[idx], self._pos_items[idx]
            neg = self._sampler.negatives(u, k)
            users = np.repeat(u, k + 1)
            items = np.concatenate([i[:, None], neg], axis=1).ravel()  # [pos, neg x k] per pair
            labels = np.tile(np.r_[1.0, np.zeros(k)], len(u)).astype(np.float32)
            logits = net(torch.from_numpy(users).to(dev), torch.from_numpy(items).to(dev),
                         self._nodes(users, items), rng=self._rng)
            loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels).to(dev))
            if self.l2:
                loss = loss + float(self.l2) * sum(w.square().sum() for w in kernels)
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
            self._sched.step()
            total += float(loss.detach())
            n_batches += 1
        value = total / max(n_batches, 1)
        if not math.isfinite(value):
            raise FloatingPointError(f"MCRec: loss became {value} at epoch {epoch}")
        return value

    def _end_training(self) -> None:
        super()._end_training()
        for name in ("_opt", "_sched", "_sampler", "_pos_users", "_pos_items", "_side"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ scoring
    def _pair_logits(self, users: np.ndarray, items: np.ndarray, *,
                     attention: bool = False) -> torch.Tensor:
        net = self.module_
        assert isinstance(net, MCRecNet)
        dev = self.device_
        out = []
        with torch.no_grad():
            was_training = net.training
            net.eval()
            tables = net.path_tables()
            step = int(self.score_batch)
            for s in range(0, len(users), step):
                u, i = users[s:s + step], items[s:s + step]
                out.append(net(torch.from_numpy(u).to(dev), torch.from_numpy(i).to(dev),
                               self._nodes(u, i), tables, attention=attention))
            net.train(was_training)
        if not out:
            return torch.zeros((0, len(self.metapath_names_)) if attention else (0,),
                               device=dev)
        return torch.cat(out)

    def _predict(self, users: torch.Tensor) -> torch.Tensor:
        u = users.cpu().numpy().astype(np.int64)
        n_items = int(self.path_mids_.shape[1])
        flat = self._pair_logits(np.repeat(u, n_items), np.tile(np.arange(n_items), len(u)))
        return flat.reshape(len(u), n_items)

    def _score_candidates(self, users: np.ndarray, items: sp.csr_matrix) -> np.ndarray:
        from recforge.models.torch.base import thread_limits

        rows = np.repeat(np.asarray(users, dtype=np.int64), np.diff(items.indptr))
        with thread_limits(self.n_threads):
            out = self._pair_logits(rows, items.indices.astype(np.int64))
        return self._to_numpy(out)

    def metapath_attention(self, users: np.ndarray, items: np.ndarray) -> dict[str, float]:
        """Mean metapath attention weight over the given pairs, by :attr:`metapath_names_`."""
        w = self._pair_logits(np.asarray(users, dtype=np.int64),
                              np.asarray(items, dtype=np.int64), attention=True)
        mean = w.mean(0).cpu().numpy() if len(w) else np.zeros(len(self.metapath_names_))
        return {n: float(v) for n, v in zip(self.metapath_names_, mean, strict=True)}
