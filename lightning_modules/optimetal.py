"""OptiMetal2B (CGConv or TransformerConv) and OptiMetal3B (triplet block): docs/reference.md, Models.

    model = build_model("2b-tc", width=64, points=2001)
    eps, drude = model(batch)      # eps (G, P, 2) [Re, Im]; drude (G,) >= 0 eV

The width h is the only capacity knob (spectra head width 4h). Configured this way the parameter
counts equal the reference table at every width (tests/lightning_modules/test_optimetal.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.elements import N_FEATURES

from .convs import FastCGConv, FastTransformerConv
from .layers import (
    MLP,
    ElementEncoding,
    GaussianRBF,
    GraphLayerNorm,
    Segments,
    VectorAttentionPool,
    spherical_harmonics_m0,
)
from .registry import get_model, model_names

MODEL_NAMES = model_names()
N_RBF = 32
N_ANGLE = 4


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of a built module."""
    return sum(p.numel() for p in model.parameters())


class ConvBlock(nn.Module):
    """conv -> x + MLP(h -> 6h -> h) -> graph LayerNorm."""

    def __init__(self, width: int, conv: str, heads: int = 2):
        super().__init__()
        if conv == "cgc":
            self.conv = FastCGConv(width, dim=width)
        elif conv == "tc":
            if width % heads:
                raise ValueError(f"width {width} is not divisible by the {heads} attention heads")
            self.conv = FastTransformerConv(width, width // heads, heads=heads, beta=True, edge_dim=width)
        else:
            raise ValueError(f"unknown convolution {conv!r} (cgc or tc)")
        self.mlp = MLP(width, 6 * width, width, depth=1)
        self.norm = GraphLayerNorm(width)

    def forward(self, x, edge_index, edge_attr, seg: Segments, edge_term=None):
        x = self.conv(x, edge_index, edge_attr, edge_term)
        return self.norm(x + self.mlp(x), seg)


class PairUpdate(nn.Module):
    """r <- graph LayerNorm(r + Linear([u_a, u_b, r])), with u_a = u[ia], u_b = u[ib] gathered rows.

    Computed as (u W_a)[ia] + (u W_b)[ib] + r (1 + W_r) + b: the products on u run once per row of u,
    and the residual rides in the product on r. With `lin` given, r = lin(y) is never formed: `y`
    is passed instead and (1 + W_r) is composed with lin's weight (one product on the rows, not two).
    """

    def __init__(self, width: int):
        super().__init__()
        self.lin = nn.Linear(3 * width, width)
        self.norm = GraphLayerNorm(width)

    def forward(self, u, ia, ib, r, seg: Segments, lin: nn.Linear | None = None):
        h = u.shape[1]
        w = self.lin.weight
        w_r = w[:, 2 * h :] + torch.eye(h, dtype=w.dtype, device=w.device)
        if lin is None:
            upd = F.linear(r, w_r, self.lin.bias)
        else:
            upd = F.linear(r, w_r @ lin.weight, w_r @ lin.bias + self.lin.bias)
        u_a, u_b = F.linear(u, torch.cat([w[:, :h], w[:, h : 2 * h]])).chunk(2, dim=1)
        upd = upd + u_a.index_select(0, ia) + u_b.index_select(0, ib)
        return self.norm(upd, seg)


class TripletLayer(nn.Module):
    """Edges from [x_src, x_dst, e], triplets from [e_1, e_2, a], then TransformerConv blocks (8 heads)
    on the line graph (nodes = edges, edges = triplets with features a) and on the atom graph."""

    def __init__(self, width: int, heads: int = 8):
        super().__init__()
        self.edge_update = PairUpdate(width)
        self.triplet_update = PairUpdate(width)
        self.line_block = ConvBlock(width, "tc", heads)
        self.atom_block = ConvBlock(width, "tc", heads)

    def forward(self, x, e, a, edge_index, triplet_index, segs, e_lin=None, a_lin=None):
        """With e_lin / a_lin (the first layer), e and a are the hidden inputs of those Linears."""
        seg_n, seg_e, seg_t = segs
        e = self.edge_update(x, edge_index[0], edge_index[1], e, seg_e, e_lin)
        a = self.triplet_update(e, triplet_index[0], triplet_index[1], a, seg_t, a_lin)
        e = self.line_block(e, triplet_index, a, seg_e)
        x = self.atom_block(x, edge_index, e, seg_n)
        return x, e, a


class OptiMetal(nn.Module):
    """Shared embeddings and read-out; subclasses define the interaction part."""

    needs_triplets = False

    def __init__(self, width: int, points: int = 2001):
        super().__init__()
        if width < 1 or points < 1:
            raise ValueError(f"width ({width}) and points ({points}) must be positive")
        self.width, self.points = width, points
        self.encode = ElementEncoding()
        self.rbf = GaussianRBF(N_RBF)
        self.node_mlp = MLP(N_FEATURES, width, width)
        self.edge_mlp = MLP(N_RBF, width, width)
        self.pool = VectorAttentionPool(width)
        self.spectra_head = MLP(width, 4 * width, 2 * points)
        self.drude_head = MLP(width, width, 1)

    def embed(self, batch):
        """Node features, the edge MLP's last hidden layer (its last Linear is composed into the next
        products by the subclasses), distances r and the node segments."""
        g = int(batch.num_graphs)
        seg_n = Segments.of(batch.batch, g)
        r = torch.linalg.vector_norm(batch.edge_vec, dim=-1)
        x = self.node_mlp(self.encode(batch.z))
        y = self.edge_mlp.hidden(self.rbf(r))
        return x, y, r, seg_n

    def read_out(self, x, seg_n: Segments):
        pooled = self.pool(x, seg_n)
        eps = self.spectra_head(pooled).view(-1, self.points, 2)
        drude = torch.relu(self.drude_head(pooled)).squeeze(-1)
        return eps, drude


class OptiMetal2B(OptiMetal):
    """Two message-passing blocks (CGConv or TransformerConv with 2 heads); edges are not updated."""

    def __init__(self, width: int, points: int = 2001, conv: str = "tc", blocks: int = 2, heads: int = 2):
        super().__init__(width, points)
        self.blocks = nn.ModuleList(ConvBlock(width, conv, heads) for _ in range(blocks))

    def forward(self, batch):
        x, y, _, seg_n = self.embed(batch)
        for block, term in zip(self.blocks, self.edge_terms(y), strict=True):
            x = block(x, batch.edge_index, None, seg_n, edge_term=term)
        return self.read_out(x, seg_n)

    def edge_terms(self, y):
        """Each block's edge term W_k e + b_k with e = W y + b the edge MLP's last Linear, composed
        into one product on y: the edges never need e itself, as they are not updated."""
        last = self.edge_mlp[-1]
        ws, bs = zip(*(block.conv.edge_linear() for block in self.blocks), strict=True)
        w = torch.cat(ws)
        terms = F.linear(y, w @ last.weight, w @ last.bias + torch.cat(bs))
        return terms.split([len(b) for b in bs], dim=1)


class OptiMetal3B(OptiMetal):
    """Angle MLP on Y_l0(cos theta) of the triplets, then a triplet block of `layers` TripletLayers."""

    needs_triplets = True

    def __init__(self, width: int, points: int = 2001, layers: int = 2, heads: int = 8):
        super().__init__(width, points)
        self.angle_mlp = MLP(N_ANGLE, width, width)
        self.layers = nn.ModuleList(TripletLayer(width, heads) for _ in range(layers))

    def forward(self, batch):
        if getattr(batch, "triplet_index", None) is None:
            raise ValueError("OptiMetal3B needs triplets: build the batches with GraphDataModule(triplets=True)")
        x, e, r, seg_n = self.embed(batch)
        t = batch.triplet_index
        unit = batch.edge_vec / r.clamp_min(1e-9).unsqueeze(-1)
        cos = (unit.index_select(0, t[0]) * unit.index_select(0, t[1])).sum(-1).clamp(-1.0, 1.0)
        a = self.angle_mlp.hidden(spherical_harmonics_m0(cos))
        edge_graph = batch.batch[batch.edge_index[1]]
        seg_e = Segments.of(edge_graph, seg_n.size)
        seg_t = Segments.of(edge_graph.index_select(0, t[0]), seg_n.size)
        lins = (self.edge_mlp[-1], self.angle_mlp[-1])  # composed into the first layer's updates
        for k, layer in enumerate(self.layers):
            x, e, a = layer(x, e, a, batch.edge_index, t, (seg_n, seg_e, seg_t), *(lins if k == 0 else ()))
        return self.read_out(x, seg_n)


def build_2b_cgc(width: int, points: int, blocks: int | None = None) -> OptiMetal2B:
    return OptiMetal2B(width, points, conv="cgc", **_depth("blocks", blocks))


def build_2b_tc(width: int, points: int, blocks: int | None = None, heads: int | None = None) -> OptiMetal2B:
    return OptiMetal2B(width, points, conv="tc", **_depth("blocks", blocks), **_attn(heads))


def build_3b_tc(width: int, points: int, blocks: int | None = None, heads: int | None = None) -> OptiMetal3B:
    return OptiMetal3B(width, points, **_depth("layers", blocks), **_attn(heads))


def _depth(key: str, blocks: int | None) -> dict:
    if blocks is not None and int(blocks) < 1:
        raise ValueError(f"blocks must be positive, got {blocks}")
    return {} if blocks is None else {key: int(blocks)}


def _attn(heads: int | None) -> dict:
    return {} if heads is None else {"heads": int(heads)}


def build_model(
    name: str, width: int, points: int = 2001, blocks: int | None = None, heads: int | None = None
) -> OptiMetal:
    """A registered model (lightning_modules/registry.py) at width h, predicting eps on `points` frequencies.

    Optional capacity knobs (None = the reference architecture): `blocks`, the message-passing
    blocks of a 2B model or the triplet layers of 3B-TC (2); `heads`, the attention heads of the
    TransformerConvs (2 in 2B-TC, 8 in 3B-TC; CGConv has none).
    """
    return get_model(name).build(width, points, blocks=blocks, heads=heads)
