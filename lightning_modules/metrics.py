"""Per-material metrics of docs/reference.md, section Loss and training recipe, as (G,) tensors.

mae_re, mae_im    mean |pred - true| over the frequencies
r2_re, r2_im      1 - sum (pred - true)^2 / sum (true - mean true)^2 over the frequencies
sc_re, sc_im      similarity coefficient 1 - int |pred - true| dw / int |true| dw (trapezoid on omega)
drude_abs_err     |pred w_D - true w_D| (eV);  drude_rel_err: that / true w_D (NaN where true w_D = 0)
delta_e           CIEDE2000 between the colours of predicted and true eps_inter + Drude term (colour.py)
"""

from __future__ import annotations

import torch

from .colour import delta_e, lab_colour

METRIC_NAMES = (
    "mae_re",
    "mae_im",
    "r2_re",
    "r2_im",
    "sc_re",
    "sc_im",
    "drude_abs_err",
    "drude_rel_err",
    "delta_e",
)


def r2_score(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination over the last axis (NaN for a constant target)."""
    ss_res = (pred - true).square().sum(-1)
    ss_tot = (true - true.mean(-1, keepdim=True)).square().sum(-1)
    return 1 - ss_res / ss_tot


def similarity(pred: torch.Tensor, true: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """1 - int |pred - true| dw / int |true| dw over the last axis."""
    return 1 - torch.trapezoid((pred - true).abs(), omega, dim=-1) / torch.trapezoid(true.abs(), omega, dim=-1)


@torch.no_grad()
def material_metrics(
    eps: torch.Tensor,
    drude: torch.Tensor,
    y_eps: torch.Tensor,
    y_drude: torch.Tensor,
    omega,
    gamma: float = 0.1,
) -> dict[str, torch.Tensor]:
    """Metrics per material for eps (G, P, 2) [Re, Im], drude (G,) and targets on omega (P,) eV."""
    if eps.shape != y_eps.shape or eps.shape[-2] != len(omega):
        raise ValueError(f"eps {tuple(eps.shape)}, y_eps {tuple(y_eps.shape)} and omega ({len(omega)},) disagree")
    eps, y_eps = eps.float(), y_eps.float()
    drude, y_drude = drude.float(), y_drude.float()
    w = torch.as_tensor(omega, dtype=torch.float32, device=eps.device)
    out = {}
    for k, part in enumerate(("re", "im")):
        p, t = eps[..., k], y_eps[..., k]
        out[f"mae_{part}"] = (p - t).abs().mean(-1)
        out[f"r2_{part}"] = r2_score(p, t)
        out[f"sc_{part}"] = similarity(p, t, w)
    err = (drude - y_drude).abs()
    out["drude_abs_err"] = err
    out["drude_rel_err"] = torch.where(y_drude > 0, err / y_drude.clamp_min(1e-12), torch.full_like(err, float("nan")))
    lab_pred = lab_colour(torch.complex(eps[..., 0], eps[..., 1]), drude, w, gamma)
    lab_true = lab_colour(torch.complex(y_eps[..., 0], y_eps[..., 1]), y_drude, w, gamma)
    out["delta_e"] = torch.as_tensor(delta_e(lab_pred, lab_true), dtype=torch.float32, device=eps.device)
    return out
