"""Fine-tuning: start a grid point from the weights of a finished run or of a checkpoint file.

`init_from` is a run key of the same tracking store (its `best.ckpt` artifact) or a checkpoint path.
Its identity in the run key and the `init_from` param: the run key itself, or `sha256:<hex>` of the
checkpoint's bytes. The source must be the same model at the same width (and architecture); a
source trained on another frequency grid loads everything but the last Linear of the spectral head,
which keeps its fresh initialisation (its output size is 2 x grid points, so no weight maps over).

`freeze` names what stays fixed, following the model's structure (lightning_modules/optimetal.py):
`encoder` = element/edge embeddings and the interaction blocks (everything before the pool);
`all_but_heads` = also the attention pool, so only `spectra_head` and `drude_head` train.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

RUN_KEY = re.compile(r"^[0-9a-f]{16}$")
HEADS = ("spectra_head.", "drude_head.")
READ_OUT = ("pool.", *HEADS)
TRAINABLE = {"none": None, "encoder": READ_OUT, "all_but_heads": HEADS}  # prefixes that keep training


def _is_key(init_from: str) -> bool:
    return bool(RUN_KEY.match(init_from)) and not Path(init_from).exists()


def source_identity(init_from: str) -> str:
    """The run key, or `sha256:<hex>` of a checkpoint file; ValueError naming a path that is neither."""
    if _is_key(init_from):
        return init_from
    path = Path(init_from)
    if not path.is_file():
        raise ValueError(f"init_from: {init_from!r} is neither a run key (16 hex digits) nor a checkpoint file")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class Source:
    identity: str
    checkpoint: str
    model: str
    width: int
    D: int | None  # the source's training materials; None when unknown


def find_source(init_from: str, client=None) -> Source:
    """Resolve `init_from` to its checkpoint and recorded model, width and D (ValueError, one line)."""
    identity = source_identity(init_from)
    if _is_key(init_from):
        if client is None:
            raise ValueError(f"init_from: run key {init_from} needs a tracking store")
        from experiments.stores import tracking

        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string=f"tags.{tracking.RUN_KEY_TAG} = '{init_from}' and attributes.status = 'FINISHED'",
        )
        if not runs:
            raise ValueError(f"init_from: no finished run with run key {init_from} in the tracking store")
        run = runs[0]
        from .train import _local

        ckpt = _local(f"{run.info.artifact_uri}/checkpoints/best.ckpt")
        if not Path(ckpt).is_file():  # the artifact store is remote or lost: the work dir's copy
            ckpt = str(Path(run.data.params.get("workdir", "")) / "best.ckpt")
        if not Path(ckpt).is_file():
            raise ValueError(f"init_from: run {init_from} has no best.ckpt (artifact or work dir)")
        p = run.data.params
        return Source(identity, ckpt, p["model"], int(p["width"]), _int_or_none(p.get("D")))
    c = _checkpoint_config(init_from)
    return Source(identity, init_from, str(c.get("model")), int(c.get("width", -1)), _int_or_none(c.get("D")))


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _checkpoint_config(path: str) -> dict:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or "model" not in config or "state_dict" not in ckpt:
        raise ValueError(f"init_from: {path} is not a checkpoint written by optiscale train (no config/state_dict)")
    return config


def check_compatible(source: Source, model: str, width: int) -> None:
    if (source.model, source.width) != (model, width):
        raise ValueError(
            f"init_from: source {source.identity} is {source.model} at width {source.width}, "
            f"this run is {model} at width {width}: fine-tuning needs the same model and width"
        )


def load_weights(model, checkpoint: str) -> list[str]:
    """Copy the source's weights into `model` (a built OptiMetal); returns the re-initialised
    parameters (spectral-head tensors whose shape differs: another frequency grid). Any other
    missing, extra or mis-shaped tensor is refused: the architectures differ."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    own = model.state_dict()
    reinit = sorted(k for k in own if k in state and own[k].shape != state[k].shape and k.startswith("spectra_head."))
    bad = sorted((set(own) ^ set(state)) | {k for k in own if k in state and own[k].shape != state[k].shape})
    bad = [k for k in bad if k not in reinit]
    if bad:
        raise ValueError(f"init_from: {checkpoint} does not fit this model's architecture (e.g. {bad[:3]})")
    model.load_state_dict({k: v for k, v in state.items() if k not in reinit}, strict=False)
    return reinit


def freeze(model, what: str) -> list[str]:
    """Stop gradients of the parts named by `what` and keep their BatchNorm layers in eval mode (their
    running statistics are weights of the source too); returns the frozen parameter names."""
    import torch

    keep = TRAINABLE[what]
    if keep is None:
        return []
    frozen = []
    for name, param in model.named_parameters():
        if not name.startswith(keep):
            param.requires_grad_(False)
            frozen.append(name)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not f"{name}.".startswith(keep):
            module.train = functools.partial(_always_eval, module)  # type: ignore[method-assign]  # Lightning switches train() per epoch
            module.eval()
    return frozen


def _always_eval(module, mode: bool = True):
    import torch

    return torch.nn.Module.train(module, False)


INIT_FROM_TAG = "optiscale.init_from"


def prepare(resolved: dict, cfg, client) -> dict[str, str]:
    """Resolve and check the source (before any run exists); records `pretrain_D` and the source's
    checkpoint in `resolved` and returns the run's tags."""
    source = find_source(cfg.init_from, client)
    check_compatible(source, cfg.model, cfg.width)
    resolved["pretrain_D"] = source.D
    resolved["init_from_checkpoint"] = source.checkpoint
    return {INIT_FROM_TAG: source.identity}


def setup_module(module, resolved: dict, what: str, load: bool, client=None, run_id=None) -> None:
    """Load the source's weights (`load`: a fresh start on rank 0; DDP broadcasts rank 0's weights)
    and freeze; the re-initialised parameters are printed and tagged."""
    if load:
        reinit = load_weights(module.model, resolved["init_from_checkpoint"])
        note = ", ".join(reinit) if reinit else "none"
        print(f"[finetune] weights of {resolved['init_from']} loaded; re-initialised (another grid): {note}")
        if client is not None and run_id is not None:
            client.set_tag(run_id, "optiscale.reinitialised", note[:500])
    frozen = freeze(module.model, what)
    if frozen:
        print(f"[finetune] freeze={what}: {len(frozen)} parameter tensors fixed")
