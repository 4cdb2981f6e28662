"""Generalised matrix factorisation (He et al., WWW'17, §3.2): the scorer NeuMF and CMN share.

``GMF`` embeds a user and an item, multiplies the two vectors element-wise and maps the product
to one logit with a linear layer. NeuMF trains it point-wise (sigmoid + binary cross-entropy) and
fuses its last vector with the MLP's; CMN trains it pair-wise (BPR, ReLU on the logit) and copies
half of its embeddings into its memories. Both uses only differ in the head activation and in the
loss, which live with the model that trains it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["GMF", "init_embedding"]

Init = Literal["normal", "truncated_normal"]


def init_embedding(weight: torch.Tensor, init: Init, std: float) -> None:
    """Initialise an embedding table in place: N(0, std²), or truncated at ±2·std (TF's rule)."""
    with torch.no_grad():
        if init == "normal":
            nn.init.normal_(weight, 0.0, std)
        elif init == "truncated_normal":
            nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
        else:
            raise ValueError(f"init must be 'normal' or 'truncated_normal', got {init!r}")


class GMF(nn.Module):
    """``head(p_u ⊙ q_i)``: one logit per (user, item) pair.

    Args:
        n_users, n_items: table sizes.
        factors: embedding size d.
        init / std: embedding initialisation (NCF: N(0, 0.01); CMN: truncated normal, 0.01).
        bias: whether the head has a bias term.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        *,
        init: Init = "normal",
        std: float = 0.01,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, factors)
        self.item = nn.Embedding(n_items, factors)
        init_embedding(self.user.weight, init, std)
        init_embedding(self.item.weight, init, std)
        self.head = nn.Linear(factors, 1, bias=bias)

    def product(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The element-wise product p_u ⊙ q_i, shape (batch, factors)."""
        out: torch.Tensor = self.user(users) * self.item(items)
        return out

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch,)."""
        out: torch.Tensor = self.head(self.product(users, items)).squeeze(-1)
        return out
