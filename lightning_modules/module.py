"""SpectraModule: one OptiMetal model trained on the joint spectral + Drude loss.

Epoch metrics are torchmetrics means whose weighted sum and weight are summed over DDP ranks, so
`val_loss` is the exact mean over all validation materials whatever the number of processes — not
a mean of per-rank means. (Lightning's own `self.log(..., batch_size=n, sync_dist=True)` averages
the per-rank material counts as integers, which truncates, e.g. 3 + 2 materials count as 2 x 2.)
Under DDP, validation first broadcasts rank 0's BatchNorm statistics, so all ranks evaluate the
model that rank 0 checkpoints.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torchmetrics import CatMetric, MeanMetric

from .loss import joint_loss
from .metrics import METRIC_NAMES, material_metrics
from .optimetal import build_model
from .recipe import ModuleRecipe
from .registry import get_model


class WarmupCosine:
    """Learning-rate factor per optimiser step: linear warm-up from `start`, then cosine to 0."""

    def __init__(self, warmup_steps: int, total_steps: int, start: float = 1e-3):
        self.warmup_steps, self.total_steps, self.start = int(warmup_steps), int(total_steps), float(start)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.start + (1.0 - self.start) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class SpectraModule(L.LightningModule):
    """`config` is the resolved training configuration (experiments.training.config.resolve); it is stored
    in every checkpoint, so `SpectraModule.load_from_checkpoint(path)` rebuilds the same model."""

    model: torch.nn.Module
    means: dict[str, MeanMetric]  # torch ModuleDicts, typed by what they hold
    per_material: dict[str, CatMetric]

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters()
        self.config = dict(config)
        self.recipe = r = ModuleRecipe.from_config(self.config)
        self.model = build_model(r.model, r.width, r.grid_points, blocks=r.blocks, heads=r.heads)
        omega = torch.linspace(r.grid_start, r.grid_stop, r.grid_points)
        self.register_buffer("omega", omega, persistent=False)
        names = ["train_loss", "val_loss", "val_loss_eps", "val_loss_drude", "test_loss"]
        names += [f"test_{m}" for m in METRIC_NAMES]
        self.means = torch.nn.ModuleDict(  # type: ignore[assignment]
            {n: MeanMetric(nan_strategy="ignore").set_dtype(torch.float64) for n in names}
        )
        cat = {n: CatMetric(nan_strategy="disable").set_dtype(torch.float64) for n in ("idx", *METRIC_NAMES)}
        self.per_material = torch.nn.ModuleDict(cat)  # type: ignore[assignment]
        self.test_table: dict = {}
        self._train_sum, self._train_n = 0.0, 0  # this epoch's sum of loss x materials, and materials
        self.__dict__["_compiled"] = None  # set by setup("fit") when the recipe compiles

    @property
    def needs_triplets(self) -> bool:
        return get_model(self.recipe.model).needs_triplets

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """eps (G, P, 2) [Re, Im] and drude (G,), in float32 also under bf16 autocast."""
        model = self.model if self._compiled is None else self._compiled
        eps, drude = model(batch)  # type: ignore[operator]  # a Module (or its compiled wrapper)
        return eps.float(), drude.float()

    def setup(self, stage: str) -> None:
        """Compile for training (the recipe's `compile`); dynamic shapes, since every batch differs
        in atoms, edges and triplets. Kept out of the module tree, so checkpoints hold the plain
        model's keys; testing and prediction run the eager model on the same weights."""
        if stage == "fit" and self.recipe.compile and self._compiled is None:
            self.__dict__["_compiled"] = torch.compile(self.model, dynamic=True)

    def teardown(self, stage: str) -> None:
        self.__dict__["_compiled"] = None

    def _loss(self, batch):
        eps, drude = self(batch)
        r = self.recipe
        loss, parts = joint_loss(eps, drude, batch.y_eps, batch.y_drude, w_spectral=r.w_spectral, w_drude=r.w_drude)
        return loss, parts, (eps, drude)

    def _log_mean(self, name: str, values: torch.Tensor | float, weight: int | None = None) -> None:
        """Accumulate per-material values (or a batch mean with weight = its materials) for the epoch."""
        metric = self.means[name]
        values = torch.as_tensor(values)
        if weight is None:
            metric.update(values.detach().double())
        else:
            metric.update(values.detach().double(), weight)
        self.log(name, metric, on_step=False, on_epoch=True)

    def training_step(self, batch, _):
        loss, _, _ = self._loss(batch)
        # a running sum, handed to the epoch metric once: a metric update and self.log per step
        # cost ~1.3 ms (bench train), most of the Lightning loop's overhead on small models
        self._train_sum = self._train_sum + loss.detach().double() * batch.num_graphs
        self._train_n += int(batch.num_graphs)
        if self.trainer.is_last_batch:
            self._flush_train_loss()
        return loss

    def _flush_train_loss(self) -> None:
        if self._train_n:
            self._log_mean("train_loss", self._train_sum / self._train_n, self._train_n)
        self._train_sum, self._train_n = 0.0, 0

    def on_train_epoch_end(self) -> None:
        self._flush_train_loss()  # where the last batch went unnoticed
        opt = self.optimizers()
        assert not isinstance(opt, list)  # one optimiser (configure_optimizers)
        lr = torch.tensor(float(opt.param_groups[0]["lr"]), dtype=torch.float64, device=self.device)
        self.log("lr", lr, on_step=False, on_epoch=True, sync_dist=True)  # identical on every rank

    def on_validation_epoch_start(self) -> None:
        self._broadcast_buffers()

    def _broadcast_buffers(self) -> None:
        """Give every DDP rank rank 0's buffers (BatchNorm running statistics).

        Parameters are identical on all ranks, but each rank's BatchNorm statistics have seen its own
        last batch; evaluating with rank 0's (the ones saved in checkpoints) makes a DDP validation
        equal to a single-process one on the checkpointed model.
        """
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            for buf in self.model.buffers():
                torch.distributed.broadcast(buf, src=0)

    def validation_step(self, batch, _):
        loss, parts, _ = self._loss(batch)
        n = batch.num_graphs
        self._log_mean("val_loss", loss, n)
        self._log_mean("val_loss_eps", parts["eps"], n)
        self._log_mean("val_loss_drude", parts["drude"], n)

    def test_step(self, batch, _):
        loss, _, (eps, drude) = self._loss(batch)
        n = batch.num_graphs
        self._log_mean("test_loss", loss, n)
        self.per_material["idx"].update(batch.idx.double())
        for name, values in material_metrics(eps, drude, batch.y_eps, batch.y_drude, self.omega).items():
            self._log_mean(f"test_{name}", values)  # per material; NaN (e.g. relative error at w_D = 0) ignored
            self.per_material[name].update(values.detach().double())

    def on_test_epoch_start(self) -> None:
        for metric in self.per_material.values():
            metric.reset()

    def on_test_epoch_end(self) -> None:
        """`self.test_table`: store index and every metric per test material, gathered from all ranks."""
        table = {k: m.compute().cpu().numpy() for k, m in self.per_material.items()}
        order = table["idx"].argsort()
        self.test_table = {k: (v[order].astype(int) if k == "idx" else v[order]) for k, v in table.items()}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip the global gradient norm at the recipe's `gradient_clip` ourselves.

        Lightning's mixed-precision plugin refuses to clip for a fused optimiser (it assumes the
        optimiser unscales gradients itself). The precisions allowed here (32-true, bf16-mixed) have
        no loss scaler, so the gradients seen here are the true ones and this is the same arithmetic.
        """
        clip = self.recipe.gradient_clip
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), clip, foreach=True)

    def configure_optimizers(self):
        r = self.recipe
        # fused: one kernel for all tensors, ~4x faster than the default loop on CPU (bench train)
        trainable = [p for p in self.parameters() if p.requires_grad]  # a fine-tune may freeze parts
        opt = torch.optim.AdamW(trainable, lr=r.lr, weight_decay=r.weight_decay, fused=True)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = total / max(1, int(self.trainer.max_epochs))
        warmup = round(r.warmup_epochs * per_epoch)
        schedule = WarmupCosine(warmup, total, r.warmup_start_factor)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
