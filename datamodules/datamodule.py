"""Streaming PyG batches from a store: dataset, fast collate, DDP-exact samplers, DataModule.

A batch (`torch_geometric.data.Batch`) holds
    z (N,) int64 atomic numbers          pos (N, 3)            lattice (G, 3, 3)
    edge_index (2, E) [neighbour j, centre i]                  edge_vec (E, 3) = r_j + shift - r_i
    triplet_index (2, T) edge pairs sharing a centre, both <= 4 Å (only with triplets=True)
    y_eps (G, P, 2) [Re, Im] on the store grid                 y_drude (G,)
    idx (G,) store indices               batch (N,), ptr (G + 1,)
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch_geometric.data import Batch

from .graphs import THREEBODY_CUTOFF, triplets
from .store import GraphStore


class StoreDataset(Dataset):
    """Materials `indices` of a store; items are dicts of numpy arrays."""

    def __init__(self, store: GraphStore, indices: np.ndarray):
        self.store, self.indices = store, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, k: int) -> dict:
        i = int(self.indices[k])
        rec: dict = self.store.read(i)  # plus the int "idx"
        rec["idx"] = i
        return rec


class Collate:
    """Concatenate records into one PyG batch (vectorised; triplets computed for the whole batch)."""

    def __init__(self, with_triplets: bool = False, threebody_cutoff: float = THREEBODY_CUTOFF):
        self.with_triplets, self.threebody_cutoff = with_triplets, threebody_cutoff

    def __call__(self, items: list[dict]) -> Batch:
        n_atoms = np.array([r["numbers"].size for r in items])
        n_edges = np.array([r["edge_index"].shape[1] for r in items])
        node_off = np.repeat(np.cumsum(n_atoms) - n_atoms, n_edges)
        edge_index = np.concatenate([r["edge_index"] for r in items], axis=1).astype(np.int64) + node_off
        edge_vec = np.concatenate([r["edge_vec"] for r in items])
        out = Batch(
            z=torch.from_numpy(np.concatenate([r["numbers"] for r in items]).astype(np.int64)),
            pos=torch.from_numpy(np.concatenate([r["pos"] for r in items])),
            lattice=torch.from_numpy(np.stack([r["lattice"] for r in items])),
            edge_index=torch.from_numpy(edge_index),
            edge_vec=torch.from_numpy(edge_vec),
            y_eps=torch.from_numpy(np.stack([r["eps"] for r in items])),
            y_drude=torch.from_numpy(np.concatenate([r["drude"] for r in items])),
            idx=torch.tensor([r["idx"] for r in items], dtype=torch.int64),
            batch=torch.from_numpy(np.repeat(np.arange(len(items)), n_atoms)),
            ptr=torch.from_numpy(np.concatenate([[0], np.cumsum(n_atoms)])),
        )
        if self.with_triplets:
            out.triplet_index = torch.from_numpy(triplets(edge_index, edge_vec, self.threebody_cutoff))
        out.num_nodes = int(n_atoms.sum())
        return out


class ShardSampler(Sampler[int]):
    """This rank's share of a list of positions.

    Evaluation (`train=False`): positions rank, rank + world, ... in order, no padding, so every
    material is evaluated exactly once over all ranks. Training: a permutation seeded by
    (seed, epoch), padded by wrap-around so all ranks take the same number of steps, and never
    leaving a last batch of one graph (BatchNorm cannot train on it).
    """

    def __init__(self, n: int, rank: int = 0, world: int = 1, train: bool = False, seed: int = 0, batch_size: int = 1):
        self.n, self.rank, self.world, self.train = n, rank, world, train
        self.seed, self.batch_size, self.epoch = seed, batch_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _positions(self) -> np.ndarray:
        if not self.train:
            return np.arange(self.rank, self.n, self.world)
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        per_rank = math.ceil(self.n / self.world)
        perm = np.resize(perm, per_rank * self.world)  # wrap-around padding
        mine = perm[self.rank :: self.world]
        if mine.size % self.batch_size == 1 and mine.size > 1:
            mine = mine[:-1]
        return mine

    def __iter__(self):
        return iter(self._positions().tolist())

    def __len__(self) -> int:
        return int(self._positions().size)


class GraphDataModule(L.LightningDataModule):
    """Train on the nested subset D of the train split; validate and test on the whole splits."""

    def __init__(
        self,
        store: str | Path,
        D: int | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        triplets: bool = False,
        seed: int = 0,
        pin_memory: bool = False,
    ):
        """`num_workers` > 0 builds batches (collate, triplets) in worker processes, `prefetch`
        batches ahead each; `pin_memory` (for a GPU) lets the host-to-device copy run asynchronously."""
        super().__init__()
        self.store_path, self.D, self.batch_size = str(store), D, batch_size
        self.num_workers, self.with_triplets, self.seed = num_workers, triplets, seed
        self.pin_memory = pin_memory
        self.store = GraphStore(self.store_path)
        self.points = self.store.points
        self.omega = self.store.omega
        self.collate = Collate(triplets, float(self.store.manifest["threebody_cutoff"]))
        self.subsets = {
            "train": self.store.subset(D),
            "val": self.store.indices("val"),
            "test": self.store.indices("test"),
        }
        # checksums of the shards in use, here (one clear error before training; workers inherit the result)
        self.store.verify(np.concatenate(list(self.subsets.values())))

    @property
    def content_hash(self) -> str:
        return self.store.manifest["content_hash"]

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        if trainer.world_size > 1 and trainer._accelerator_connector.use_distributed_sampler:
            raise ValueError("GraphDataModule shards the data itself: use Trainer(use_distributed_sampler=False)")
        return trainer.global_rank, trainer.world_size

    def loader(self, split: str, train: bool = False) -> DataLoader:
        rank, world = self._rank_world()
        idx = self.subsets[split]
        sampler = ShardSampler(len(idx), rank, world, train=train, seed=self.seed, batch_size=self.batch_size)
        return DataLoader(
            StoreDataset(self.store, idx),
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            prefetch_factor=4 if self.num_workers > 0 else None,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
