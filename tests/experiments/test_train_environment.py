"""Every run records what determines its numbers besides the configuration, and trains with the
thread count it records."""

from __future__ import annotations

import lightning as L
import torch
from mlflow.tracking import MlflowClient

from experiments.training.train import train


class Threads(L.Callback):
    """torch's thread count inside the training loop."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen = torch.get_num_threads()


def test_a_run_records_its_environment_and_trains_with_its_thread_count(tiny_config, store201, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    probe = Threads()
    result = train(tiny_config(store201, tmp_path / "w", epochs=1, threads=wanted), [probe], tracking_uri=uri)
    assert probe.seen == wanted and torch.get_num_threads() == before  # applied, then restored
    run = MlflowClient(uri).get_run(result["run_id"])
    tags, params = run.data.tags, run.data.params
    assert params["threads"] == tags["env.torch_threads"] == str(wanted)
    for name in ("torch", "lightning", "torch_geometric", "numpy"):
        assert tags[f"env.{name}"] not in ("", "absent"), name
    assert tags["env.torch"] == torch.__version__ and tags["env.lightning"] == L.__version__
    assert tags["env.cpu"] and tags["env.cpu_isa"] and tags["env.torch_cpu_capability"]
    assert tags["env.cuda_device"] == ("none" if not torch.cuda.is_available() else torch.cuda.get_device_name())
