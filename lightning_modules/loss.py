"""The joint spectral / Drude loss of the reference (docs/reference.md, section Loss and training recipe).

loss = w_spectral * L1(eps) + w_drude * L1(w_D): the L1 of eps is averaged over all materials x
frequencies x (Re, Im), the L1 of w_D over materials, in eV; no target normalisation. The
scaling-law y value is the best validation loss over epochs (the same quantity on the val split).
"""

from __future__ import annotations

import torch


def joint_loss(
    eps: torch.Tensor,
    drude: torch.Tensor,
    y_eps: torch.Tensor,
    y_drude: torch.Tensor,
    w_spectral: float = 1.0,
    w_drude: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, {"eps": L1 of eps, "drude": L1 of w_D}) for eps (G, P, 2), drude (G,) and their targets.

    The parts are detached (for logging); the loss carries the gradient. Computed in float32.
    """
    if eps.shape != y_eps.shape or drude.shape != y_drude.shape:
        raise ValueError(
            f"prediction/target shapes differ: eps {tuple(eps.shape)} vs {tuple(y_eps.shape)}, "
            f"drude {tuple(drude.shape)} vs {tuple(y_drude.shape)}"
        )
    l_eps = (eps.float() - y_eps.float()).abs().mean()
    l_drude = (drude.float() - y_drude.float()).abs().mean()
    loss = w_spectral * l_eps + w_drude * l_drude
    return loss, {"eps": l_eps.detach(), "drude": l_drude.detach()}
