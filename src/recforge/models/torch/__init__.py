"""Neural recommenders on PyTorch (extra ``recforge[torch]``).

- :mod:`.base`: :class:`~.base.TorchRecommender` (seeding, thread pinning, device choice, the
  shared training loop of :mod:`recforge.models.iterative`, best-state copies), helpers.
- :mod:`.sampling`: vectorised negative sampling and minibatches (numpy only).
- :mod:`.checkpoint`: safetensors weights + JSON parameters (no pickle).
- one module per model (:mod:`.multvae`, ...).

Importing this package does not import torch; importing :mod:`.base`, :mod:`.checkpoint` or a
model module without torch raises :class:`~._require.MissingTorchError`, naming the extra.
"""
