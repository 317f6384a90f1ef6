"""SpectraModule: the learning-rate schedule and exact per-material epoch means."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from lightning_modules.module import SpectraModule, WarmupCosine


def test_warmup_then_cosine_to_zero():
    f = WarmupCosine(warmup_steps=10, total_steps=110, start=0.01)
    assert [f(0), f(5), f(10)] == pytest.approx([0.01, 0.505, 1.0])
    assert [f(35), f(60), f(85), f(110), f(200)] == pytest.approx(
        [0.5 * (1 + np.cos(np.pi / 4)), 0.5, 0.5 * (1 + np.cos(3 * np.pi / 4)), 0.0, 0.0]
    )
    assert WarmupCosine(0, 4)(0) == 1.0  # no warm-up


def test_validation_loss_is_the_mean_over_materials_with_unequal_batches(surrogate_store, tmp_path):
    from datamodules.datamodule import GraphDataModule
    from experiments.training.config import load_config, resolve
    from lightning_modules.loss import joint_loss

    given = {"data": str(surrogate_store), "model": "2b-cgc", "width": 16, "seed": 0, "workdir": str(tmp_path)}
    cfg = load_config(given)
    L.seed_everything(0, verbose=False)
    module = SpectraModule(resolve(cfg))
    dm = GraphDataModule(surrogate_store, batch_size=2)  # 5 validation materials: batches of 2, 2, 1
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    got = trainer.validate(module, datamodule=dm, verbose=False)[0]

    one = GraphDataModule(surrogate_store, batch_size=1)
    module.eval()
    per_material = []
    with torch.no_grad():
        for batch in one.val_dataloader():
            eps, drude = module(batch)
            loss, parts = joint_loss(eps, drude, batch.y_eps, batch.y_drude)
            per_material.append([float(loss), float(parts["eps"]), float(parts["drude"])])
    expected = np.mean(per_material, axis=0)
    assert len(per_material) == 5
    assert [got["val_loss"], got["val_loss_eps"], got["val_loss_drude"]] == pytest.approx(expected, rel=1e-6)
