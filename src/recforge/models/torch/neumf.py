"""NeuMF (He et al., WWW'17) with GMF and MLP pre-training, as run by the RecSys'19 paper.

Networks (``GMF`` in :mod:`recforge.models.torch.gmf`):

- MLP: separate user/item embeddings of size ``layers[0] / 2``, concatenated, then ReLU layers of
  sizes ``layers[1:]``, then one logit.
- NeuMF: its own GMF and MLP branches (no shared embeddings); the GMF product and the MLP's last
  hidden vector are concatenated and mapped to one logit. With pre-training the branches start
  from the separately trained GMF and MLP and the fused head from half of each head:
  ``[0.5·h_gmf ; 0.5·h_mlp]`` and bias ``0.5·(b_gmf + b_mlp)``.

Initialisation as in the original Keras code: embeddings N(0, 0.01²), hidden layers Glorot
uniform, heads LeCun uniform, biases zero.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from recforge.models.torch.gmf import GMF, init_embedding

__all__ = ["MLP", "NeuMFNet", "lecun_uniform_"]


def lecun_uniform_(weight: torch.Tensor) -> None:
    """Keras' ``lecun_uniform``: U(-sqrt(3 / fan_in), sqrt(3 / fan_in))."""
    bound = math.sqrt(3.0 / weight.shape[1])
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def _keras_head(in_features: int) -> nn.Linear:
    head = nn.Linear(in_features, 1)
    lecun_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class MLP(nn.Module):
    """``head(tower([p'_u ; q'_i]))``: one logit per pair; ``layers[0]`` is the input width."""

    def __init__(self, n_users: int, n_items: int, layers: Sequence[int]) -> None:
        super().__init__()
        layers = [int(w) for w in layers]
        if len(layers) < 2 or layers[0] % 2 or min(layers) < 1:
            raise ValueError(
                f"layers must list >= 2 positive widths with an even first one, got {layers}"
            )
        half = layers[0] // 2
        self.user = nn.Embedding(n_users, half)
        self.item = nn.Embedding(n_items, half)
        init_embedding(self.user.weight, "normal", 0.01)
        init_embedding(self.item.weight, "normal", 0.01)
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


class NeuMFNet(nn.Module):
    """GMF and MLP branches fused by one head; the branches' own heads are not used."""

    def __init__(self, n_users: int, n_items: int, factors: int, layers: Sequence[int]) -> None:
        super().__init__()
        self.gmf = GMF(n_users, n_items, factors)
        self.mlp = MLP(n_users, n_items, layers)
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
    def load_pretrained(self, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> None:
        """Copy trained branches; fuse their heads as ``[α·h_gmf ; (1-α)·h_mlp]``."""
        self.gmf.load_state_dict(gmf.state_dict())
        self.mlp.load_state_dict(mlp.state_dict())
        self.head.weight.copy_(
            torch.cat([alpha * gmf.head.weight, (1.0 - alpha) * mlp.head.weight], dim=1)
        )
        assert gmf.head.bias is not None and mlp.head.bias is not None
        self.head.bias.copy_(alpha * gmf.head.bias + (1.0 - alpha) * mlp.head.bias)
