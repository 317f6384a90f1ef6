"""The recipe's `compile` switch: the compiled model computes the eager model's loss and gradients."""

from __future__ import annotations

import pytest
import torch

from datamodules.datamodule import GraphDataModule
from lightning_modules.module import SpectraModule

CONFIG = {
    "grid_points": 51, "grid_start": 0.0, "grid_stop": 10.0, "w_spectral": 1.0, "w_drude": 1.0,
    "gradient_clip": 100.0, "lr": 1e-3, "weight_decay": 0.0, "warmup_epochs": 0, "warmup_start_factor": 1e-3,
}  # fmt: skip


def loss_and_grads(module: SpectraModule, batch):
    module.zero_grad(set_to_none=True)
    loss, _, _ = module._loss(batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "model", ["2b-cgc", pytest.param("2b-tc", marks=pytest.mark.slow), pytest.param("3b-tc", marks=pytest.mark.slow)]
)
def test_the_compiled_model_computes_the_eager_loss_and_gradients(model, surrogate_store):
    torch.manual_seed(0)
    module = SpectraModule({**CONFIG, "model": model, "width": 16, "compile": True})
    module.train()
    dm = GraphDataModule(surrogate_store, batch_size=8, triplets=module.needs_triplets)
    batches = [b for _, b in zip(range(3), dm.loader("train", train=True), strict=False)]
    assert len({int(b.edge_index.shape[1]) for b in batches}) > 1  # the shapes vary from batch to batch
    eager = [loss_and_grads(module, b) for b in batches]
    module.setup("fit")
    assert module._compiled is not None
    assert "_compiled" not in dict(module.named_modules())  # checkpoints keep the plain keys
    for b, (loss0, grads0) in zip(batches, eager, strict=True):
        loss, grads = loss_and_grads(module, b)
        assert float(loss) == pytest.approx(float(loss0), rel=1e-5)
        assert grads.keys() == grads0.keys()
        # relative to the largest gradient: biases ahead of a normalisation have ~0 gradient (noise)
        scale = max(float(g.abs().max()) for g in grads0.values())
        for name, g in grads.items():
            assert float((g - grads0[name]).abs().max()) < 1e-4 * scale, name
    module.teardown("fit")
    assert module._compiled is None
