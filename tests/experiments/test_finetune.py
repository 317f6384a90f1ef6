"""Fine-tuning (init_from, freeze, finetune_lr): weights restored exactly, refusals before any run,
run keys, recorded source."""

from __future__ import annotations

import hashlib
import json

import lightning as L
import pytest
import torch

from datamodules.datamodule import GraphDataModule
from experiments.stores import tracking
from experiments.training.config import load_config, resolve
from experiments.training.train import train
from lightning_modules.module import SpectraModule

# the key's fields before fine-tuning existed: scratch keys must still hash exactly these
OLD_KEY_FIELDS = (
    "model", "width", "D", "seed", "data_hash", "grid_points", "grid_start", "grid_stop", "epochs", "batch_size",
    "warmup_epochs", "warmup_start_factor", "gradient_clip", "precision", "w_spectral", "w_drude", "lr", "weight_decay",
)  # fmt: skip


def _batch(store, seed=1):
    dm = GraphDataModule(str(store), D=None, batch_size=5, num_workers=0, triplets=False, seed=seed)
    dm.setup("fit")
    return next(iter(dm.val_dataloader()))


def _loss(module, batch) -> float:
    module.eval()
    with torch.no_grad():
        loss = float(module._loss(batch)[0])
    module.train()
    return loss


class Probe(L.Callback):
    """The loss on a fixed batch and the weights when fit starts (after loading and freezing)."""

    def __init__(self, batch):
        self.batch, self.loss, self.start = batch, None, None

    def on_fit_start(self, trainer, module):
        self.loss = _loss(module, self.batch)
        self.start = {k: v.detach().clone() for k, v in module.model.state_dict().items()}


def test_scratch_run_keys_are_the_old_hash_and_a_fine_tune_key_differs(trained, tiny_config, store201, tmp_path):
    result, _, cfg = trained
    scratch = resolve(load_config(cfg))
    payload = {"version": 1, **{k: scratch[k] for k in OLD_KEY_FIELDS}}
    old = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert scratch["run_key"] == old == result["run_key"]
    ft = resolve(load_config({**cfg, "init_from": result["run_key"]}))
    ft_frozen = resolve(load_config({**cfg, "init_from": result["run_key"], "freeze": "encoder"}))
    ft_ckpt = resolve(load_config({**cfg, "init_from": result["best_checkpoint"]}))
    assert ft_ckpt["init_from"].startswith("sha256:")
    assert len({old, ft["run_key"], ft_frozen["run_key"], ft_ckpt["run_key"]}) == 4
    assert resolve(load_config({**cfg, "init_from": result["run_key"], "finetune_lr": 1e-5}))["lr"] == 1e-5


def test_mismatched_width_is_refused_before_any_run(trained, tiny_config, store201, tmp_path):
    result, uri, _ = trained
    cfg = tiny_config(store201, tmp_path / "w", width=32, init_from=result["run_key"])
    with pytest.raises(ValueError, match=r"is 2b-tc at width 16, this run is 2b-tc at width 32"):
        train(cfg, tracking_uri=uri, experiment="ft-refused")
    client = tracking.client_for(uri)
    exp = client.get_experiment_by_name("ft-refused")
    assert client.search_runs([exp.experiment_id]) == []
    with pytest.raises(ValueError, match="freeze: 'encoder' needs init_from"):
        load_config(tiny_config(store201, tmp_path, freeze="encoder"))


def test_fine_tune_restores_the_source_weights_freezes_the_encoder_and_records_the_source(
    trained, tiny_config, store201, tmp_path
):
    result, uri, _ = trained
    batch = _batch(store201)
    source = SpectraModule.load_from_checkpoint(result["best_checkpoint"], map_location="cpu")
    probe = Probe(batch)
    cfg = tiny_config(store201, tmp_path / "ft", epochs=1, init_from=result["run_key"], freeze="encoder")
    out = train(cfg, extra_callbacks=[probe], tracking_uri=uri, experiment="ft")
    assert probe.loss == _loss(source, batch)  # exactly the source's loss before the first step
    after = torch.load(tmp_path / "ft" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    after = {k[len("model.") :]: v for k, v in after.items() if k.startswith("model.")}
    encoder = [k for k in probe.start if k.startswith(("node_mlp.", "edge_mlp.", "blocks."))]
    assert encoder and all(torch.equal(after[k], probe.start[k]) for k in encoder)
    heads = [k for k in probe.start if k.startswith("spectra_head.") and k.endswith("weight")]
    assert any(not torch.equal(after[k], probe.start[k]) for k in heads)  # the heads did train
    run = tracking.client_for(uri).get_run(out["run_id"])
    assert run.data.params["init_from"] == result["run_key"]
    assert run.data.params["pretrain_D"] == "32"
    assert run.data.params["freeze"] == "encoder"
    assert run.data.tags["optiscale.init_from"] == result["run_key"]
    assert out["run_key"] != result["run_key"]


class Crash(L.Callback):
    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated crash")


def test_a_resumed_fine_tune_continues_from_its_own_checkpoint(trained, tiny_config, store201, tmp_path, capsys):
    result, uri, _ = trained
    cfg = tiny_config(store201, tmp_path / "ft", epochs=2, seed=5, init_from=result["run_key"])
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[Crash()], tracking_uri=uri, experiment="ft-resume")
    assert "[finetune] weights of" in capsys.readouterr().out
    out = train(cfg, tracking_uri=uri, experiment="ft-resume")
    assert out["status"] == "resumed"
    assert "[finetune] weights of" not in capsys.readouterr().out  # the source was not loaded again


def test_a_source_on_another_grid_reinitialises_only_the_spectral_output_layer(
    trained, tiny_config, surrogate_store, tmp_path, capsys
):
    result, uri, _ = trained
    source = torch.load(result["best_checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    probe = Probe(_batch(surrogate_store))
    cfg = tiny_config(surrogate_store, tmp_path / "ft", epochs=1, init_from=result["best_checkpoint"])
    out = train(cfg, extra_callbacks=[probe], tracking_uri=uri, experiment="ft-grid")
    differ = sorted(k for k, v in probe.start.items() if v.shape != source[f"model.{k}"].shape)
    assert differ and all(k.startswith("spectra_head.") for k in differ)
    same = [k for k in probe.start if k not in differ]
    assert all(torch.equal(probe.start[k], source[f"model.{k}"]) for k in same)
    assert f"re-initialised (another grid): {', '.join(differ)}" in capsys.readouterr().out
    params = tracking.client_for(uri).get_run(out["run_id"]).data.params
    assert params["init_from"].startswith("sha256:") and params["pretrain_D"] == "32"  # from the checkpoint
