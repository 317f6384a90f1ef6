"""Building blocks of the OptiMetal models (docs/reference.md, sections Graphs and Models).

Radial basis with a smooth envelope, real spherical harmonics (m = 0), MLPs, graph LayerNorm,
vector-attention pooling, and `Segments` (rows -> graph) shared by the per-graph operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.utils import softmax

from datamodules.elements import onehot_table
from datamodules.graphs import CUTOFF


def envelope(d: torch.Tensor) -> torch.Tensor:
    """Smooth cutoff 1 - 15 d^4 + 24 d^5 - 10 d^6 for d = r / r_c < 1, zero beyond."""
    d4 = d.pow(4)
    poly = 1 - 15 * d4 + 24 * d4 * d - 10 * d4 * d * d
    return torch.where(d < 1, poly, torch.zeros_like(d))


class GaussianRBF(nn.Module):
    centres: torch.Tensor
    """`n` Gaussians on r with centres linspace(0, cutoff, n), sigma = width x spacing, times the envelope."""

    def __init__(self, n: int = 32, cutoff: float = CUTOFF, width: float = 4.0):
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("centres", torch.linspace(0.0, cutoff, n), persistent=False)
        sigma = width * cutoff / (n - 1)
        self.coeff = -0.5 / sigma**2

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        g = torch.exp(self.coeff * (r.unsqueeze(-1) - self.centres) ** 2)
        return g * envelope(r / self.cutoff).unsqueeze(-1)


_Y0 = [math.sqrt((2 * l + 1) / (4 * math.pi)) for l in range(4)]


def spherical_harmonics_m0(cos: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics Y_l0(theta), l = 0..3, of cos(theta): (..., 4)."""
    p2 = 1.5 * cos * cos - 0.5
    p3 = (2.5 * cos * cos - 1.5) * cos
    return torch.stack([torch.full_like(cos, _Y0[0]), _Y0[1] * cos, _Y0[2] * p2, _Y0[3] * p3], dim=-1)


class MLP(nn.Sequential):
    """`depth` hidden layers Linear -> BatchNorm -> ReLU of width `hidden`, then a plain Linear."""

    def __init__(self, d_in: int, hidden: int, d_out: int, depth: int = 2):
        layers: list[nn.Module] = []
        for k in range(depth):
            layers += [nn.Linear(d_in if k == 0 else hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden if depth else d_in, d_out))
        super().__init__(*layers)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The input to the last Linear (self[-1])."""
        for layer in list(self)[:-1]:
            x = layer(x)
        return x


class ElementEncoding(nn.Module):
    table: torch.Tensor
    """Atomic numbers -> the 24-dim one-hot of periodic-table group and period."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.from_numpy(onehot_table()), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.table[z]


@dataclass
class Segments:
    """Which graph each row (node, edge or triplet) belongs to."""

    index: torch.Tensor  # (rows,) graph of each row
    size: int  # number of graphs
    count: torch.Tensor  # (size,) rows per graph, float

    @classmethod
    def of(cls, index: torch.Tensor, size: int) -> Segments:
        count = torch.bincount(index, minlength=size).to(torch.float32)
        return cls(index, size, count)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((self.size,) + x.shape[1:]).index_add_(0, self.index, x)


class GraphLayerNorm(nn.Module):
    """One mean and variance per graph over all its rows and channels, with a per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, seg: Segments) -> torch.Tensor:
        x = x.float()  # statistics in float32, also under autocast
        n = (seg.count * x.shape[1]).clamp_min(1).to(x.dtype)
        mean = seg.sum(x.sum(dim=1)) / n
        xc = x - mean.index_select(0, seg.index).unsqueeze(1)
        var = seg.sum(torch.linalg.vector_norm(xc, dim=1).square()) / n
        scale = torch.rsqrt(var + self.eps).index_select(0, seg.index).unsqueeze(1)
        return torch.addcmul(self.bias, xc * scale, self.weight)


class VectorAttentionPool(nn.Module):
    """Per-channel softmax over a graph's nodes of Linear(x), then the sum of x * weights."""

    def __init__(self, channels: int):
        super().__init__()
        self.lin = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, seg: Segments) -> torch.Tensor:
        w = softmax(self.lin(x).float(), seg.index, num_nodes=seg.size, dim=0)
        return seg.sum(x * w)
