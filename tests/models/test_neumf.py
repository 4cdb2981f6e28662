"""NeuMF: the networks, the pre-trained fusion, and the model on tiny data."""

from __future__ import annotations

import pytest
import torch

from recforge.models.torch.gmf import GMFNet
from recforge.models.torch.neumf import MLPNet, NeuMFNet


def test_pretrained_fusion_starts_at_the_mean_of_the_two_branch_logits() -> None:
    torch.manual_seed(0)
    gmf, mlp = GMFNet(7, 5, 4), MLPNet(7, 5, [8, 4, 2])
    with torch.no_grad():  # trained-looking branches: non-zero biases, spread-out embeddings
        for p in (*gmf.parameters(), *mlp.parameters()):
            p.normal_(0.0, 0.7)
    net = NeuMFNet(7, 5, 4, [8, 4, 2])
    net.load_pretrained(gmf, mlp)
    users = torch.arange(7).repeat_interleave(5)
    items = torch.arange(5).repeat(7)
    torch.testing.assert_close(net(users, items), 0.5 * (gmf(users, items) + mlp(users, items)))


def test_branches_have_their_own_embeddings() -> None:
    net = NeuMFNet(7, 5, 4, [8, 4])
    assert net.gmf.user.weight.shape == (7, 4)
    assert net.mlp.user.weight.shape == (7, 4)  # layers[0] / 2
    assert net.gmf.user.weight.data_ptr() != net.mlp.user.weight.data_ptr()
    trained = {id(p) for p in net.fused_parameters()}
    assert id(net.gmf.head.weight) not in trained and id(net.mlp.head.weight) not in trained
    assert id(net.head.weight) in trained and id(net.mlp.user.weight) in trained


def test_mlp_tower_widths_follow_layers() -> None:
    mlp = MLPNet(3, 4, [64, 32, 16, 8])
    widths = [m.out_features for m in mlp.tower if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 8]
    assert mlp(torch.tensor([0, 2]), torch.tensor([3, 1])).shape == (2,)


@pytest.mark.parametrize("layers", [[7, 4], [8], [8, 0]])
def test_bad_layers_are_named(layers: list[int]) -> None:
    with pytest.raises(ValueError, match="layers"):
        MLPNet(3, 3, layers)
