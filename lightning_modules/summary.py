"""Parameter counts of a model, per block (the data behind `optiscale model summary`)."""

from __future__ import annotations


def summary(name: str, width: int, points: int = 2001) -> dict:
    """Built on the meta device, so even the widest model costs no memory."""
    import torch

    from lightning_modules.optimetal import build_model, count_parameters

    with torch.device("meta"):
        model = build_model(name, width, points)
    blocks = {k: count_parameters(m) for k, m in model.named_children() if count_parameters(m)}
    return {
        "model": name,
        "width": width,
        "points": points,
        "parameters": count_parameters(model),
        "needs_triplets": model.needs_triplets,
        "blocks": blocks,
    }
