"""Loss and per-material metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from lightning_modules.loss import joint_loss
from lightning_modules.metrics import METRIC_NAMES, material_metrics, r2_score, similarity


def test_joint_loss_is_the_weighted_sum_of_two_l1_means():
    eps = torch.zeros(2, 3, 2)
    y = torch.tensor([[[1.0, -1.0], [2.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 3.0], [0.0, 0.0]]])
    drude, y_drude = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 5.0])
    loss, parts = joint_loss(eps, drude, y, y_drude)
    assert parts["eps"].item() == pytest.approx(7 / 12)  # (1 + 1 + 2 + 3) / (2 * 3 * 2)
    assert parts["drude"].item() == pytest.approx(2.0)  # (1 + 3) / 2
    assert loss.item() == pytest.approx(7 / 12 + 2)
    weighted, _ = joint_loss(eps, drude, y, y_drude, w_spectral=2.0, w_drude=0.5)
    assert weighted.item() == pytest.approx(2 * 7 / 12 + 1)
    with pytest.raises(ValueError, match="shapes differ"):
        joint_loss(eps[:, :2], drude, y, y_drude)


def test_joint_loss_gradient_flows_and_parts_are_detached():
    eps = torch.zeros(1, 4, 2, requires_grad=True)
    loss, parts = joint_loss(eps, torch.zeros(1), torch.ones(1, 4, 2), torch.ones(1))
    loss.backward()
    assert torch.allclose(eps.grad, torch.full((1, 4, 2), -1 / 8))
    assert not parts["eps"].requires_grad


def test_r2_known_cases():
    true = torch.tensor([1.0, 2.0, 3.0])
    assert r2_score(true, true).item() == 1.0
    assert r2_score(torch.tensor([1.0, 2.0, 4.0]), true).item() == pytest.approx(0.5)  # 1 - 1 / 2
    assert r2_score(torch.full((3,), 2.0), true).item() == pytest.approx(0.0)  # predicting the mean


def test_similarity_coefficient_known_cases():
    w = torch.linspace(0, 2, 201)
    true = torch.sin(3 * w) + 2
    assert similarity(true, true, w).item() == 1.0
    assert similarity(torch.zeros_like(true), true, w).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity(2 * true, true, w).item() == pytest.approx(0.0, abs=1e-6)
    # constant target 1 on [0, 2], prediction off by 0.5 on half the range: 1 - 0.5 / 2
    flat = torch.ones(201)
    assert similarity(flat + 0.5 * (w >= 1), flat, w).item() == pytest.approx(0.75, abs=3e-3)


def _spectra(g=3, p=201):
    w = torch.linspace(0, 20, p)
    re = 1 + 5 * torch.exp(-((w - 3) ** 2)) * torch.arange(1, g + 1)[:, None]
    im = torch.exp(-((w - 4) ** 2)) * torch.arange(1, g + 1)[:, None]
    im[:, 0] = 0
    return torch.stack([re, im], -1), w


def test_material_metrics_of_identical_predictions():
    y, w = _spectra()
    drude = torch.tensor([3.0, 0.5, 8.0])
    m = material_metrics(y.clone(), drude.clone(), y, drude, w)
    assert set(m) == set(METRIC_NAMES) and all(v.shape == (3,) for v in m.values())
    for k in ("r2_re", "r2_im", "sc_re", "sc_im"):
        assert torch.allclose(m[k], torch.ones(3))
    for k in ("mae_re", "mae_im", "drude_abs_err", "drude_rel_err", "delta_e"):
        assert torch.allclose(m[k], torch.zeros(3), atol=1e-6)


def test_material_metrics_hand_values():
    y, w = _spectra(g=2)
    pred = y.clone()
    pred[..., 0] += 0.25  # Re off by a constant
    drude, y_drude = torch.tensor([4.0, 1.0]), torch.tensor([5.0, 0.0])
    m = material_metrics(pred, drude, y, y_drude, w)
    assert torch.allclose(m["mae_re"], torch.tensor([0.25, 0.25]))
    assert torch.allclose(m["mae_im"], torch.zeros(2))
    int_true = torch.trapezoid(y[..., 0].abs(), w, dim=-1)
    assert torch.allclose(m["sc_re"], 1 - 0.25 * 20 / int_true)
    assert torch.allclose(m["drude_abs_err"], torch.tensor([1.0, 1.0]))
    assert m["drude_rel_err"][0].item() == pytest.approx(0.2) and math.isnan(m["drude_rel_err"][1].item())
    assert (m["delta_e"] > 0).all()


def test_metrics_of_real_spectra_against_themselves(sample_batch, sample_store):
    from datamodules.store import GraphStore

    omega = GraphStore(sample_store).omega
    b = sample_batch
    m = material_metrics(b.y_eps, b.y_drude, b.y_eps, b.y_drude, omega)
    assert torch.allclose(m["sc_re"], torch.ones(2)) and torch.allclose(m["delta_e"], torch.zeros(2), atol=1e-6)
    shifted = b.y_eps.clone()
    shifted[..., 1] *= 1.1
    m = material_metrics(shifted, b.y_drude, b.y_eps, b.y_drude, omega)
    assert torch.allclose(m["sc_im"], torch.full((2,), 0.9), atol=1e-5)  # |0.1 true| / |true|
    assert np.isfinite(m["delta_e"].numpy()).all()
