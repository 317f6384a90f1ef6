"""The models: parameter counts of the reference table, shapes, invariances, PyG-equivalent convs."""

import math

import pytest
import torch
from torch_geometric.nn import CGConv, TransformerConv

from lightning_modules.convs import FastCGConv, FastTransformerConv
from lightning_modules.optimetal import MODEL_NAMES, build_model, count_parameters

# docs/reference.md, Models, points = 2001: (2B-CGC, 2B-TC, 3B-TC)
REFERENCE_COUNTS = {
    16: (278_627, 278_275, 291_827),
    64: (1_296_035, 1_288_483, 1_490_147),
    256: (8_268_707, 8_140_195, 11_306_147),
    1024: (82_608_035, 80_521_123, 130_933_667),
}


@pytest.mark.parametrize("width", sorted(REFERENCE_COUNTS))
def test_parameter_counts_equal_the_reference_table(width):
    with torch.device("meta"):  # really built modules, without allocating 130 M parameters
        counts = tuple(count_parameters(build_model(name, width, points=2001)) for name in MODEL_NAMES)
    assert counts == REFERENCE_COUNTS[width]


def test_the_spectra_head_follows_the_grid():
    small, full = build_model("2b-tc", 16, points=201), build_model("2b-tc", 16, points=2001)
    # only the last Linear (4h -> 2P) depends on P: (4h + 1) * 2 * (2001 - 201) parameters
    assert count_parameters(full) - count_parameters(small) == (4 * 16 + 1) * 2 * 1800


def test_unknown_names_and_bad_widths_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("4b", 16)
    with pytest.raises(ValueError, match="divisible"):
        build_model("3b-tc", 12)  # 8 heads


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes_and_gradients(name, graph_batch):
    torch.manual_seed(0)
    model = build_model(name, 16, points=2001)
    assert model.needs_triplets == name.startswith("3b")
    eps, drude = model(graph_batch)
    g = graph_batch.num_graphs
    assert eps.shape == (g, 2001, 2) and drude.shape == (g,)
    assert torch.isfinite(eps).all() and (drude >= 0).all()
    (eps.square().mean() + drude.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


def _rotate_and_permute(batch):
    """The same crystals rotated and with the atoms of each graph in reverse order."""
    b = batch.clone()
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3)))
    b.edge_vec = batch.edge_vec @ q.T
    perm = torch.cat([torch.arange(hi - 1, lo - 1, -1) for lo, hi in zip(batch.ptr[:-1], batch.ptr[1:], strict=True)])
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    b.z = batch.z[perm]
    b.edge_index = inverse[batch.edge_index]
    return b


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predictions_are_invariant_to_rotation_and_atom_order(name, graph_batch):
    torch.manual_seed(1)
    model = build_model(name, 16, points=201).eval()
    with torch.no_grad():
        eps, drude = model(graph_batch)
        eps2, drude2 = model(_rotate_and_permute(graph_batch))
    assert torch.allclose(eps, eps2, atol=1e-4) and torch.allclose(drude, drude2, atol=1e-4)


def test_graphs_in_a_batch_do_not_interact(graph_store, graph_batch):
    from datamodules.datamodule import Collate
    from datamodules.store import GraphStore

    torch.manual_seed(2)
    model = build_model("3b-tc", 16, points=201).eval()
    single = Collate(with_triplets=True)([GraphStore(graph_store).read(1) | {"idx": 1}])
    with torch.no_grad():
        eps, _ = model(graph_batch)
        eps1, _ = model(single)
    assert torch.allclose(eps[1], eps1[0], atol=1e-4)


def test_fast_convs_equal_pyg_forward():
    torch.manual_seed(4)
    n, e, h = 7, 40, 16
    x, ea = torch.randn(n, h), torch.randn(e, h)
    edge_index = torch.randint(0, n, (2, e))
    cg = FastCGConv(h, dim=h)
    assert torch.allclose(cg(x, edge_index, ea), CGConv.forward(cg, x, edge_index, ea), atol=1e-5)
    for heads in (2, 8):
        tc = FastTransformerConv(h, h // heads, heads=heads, beta=True, edge_dim=h)
        ref = TransformerConv.forward(tc, x, edge_index, ea)
        assert torch.allclose(tc(x, edge_index, ea), ref, atol=1e-5)


def _plain_forward(model, batch):
    """The reference network written out plainly: whole MLPs, PyG's own conv forwards, and the pair
    updates as one Linear on the concatenation [u_a, u_b, r], so that nothing is composed or fused."""
    from lightning_modules.layers import Segments, spherical_harmonics_m0

    def block(b, x, ei, ea, seg):
        conv = CGConv.forward if isinstance(b.conv, CGConv) else TransformerConv.forward
        x = conv(b.conv, x, ei, ea)
        return b.norm(x + b.mlp(x), seg)

    def pair(p, u, ia, ib, r, seg):
        return p.norm(r + p.lin(torch.cat([u[ia], u[ib], r], dim=1)), seg)

    seg_n = Segments.of(batch.batch, batch.num_graphs)
    r = batch.edge_vec.norm(dim=-1)
    x, e = model.node_mlp(model.encode(batch.z)), model.edge_mlp(model.rbf(r))
    if not model.needs_triplets:
        for b in model.blocks:
            x = block(b, x, batch.edge_index, e, seg_n)
        return model.read_out(x, seg_n)
    t, ei = batch.triplet_index, batch.edge_index
    unit = batch.edge_vec / r.unsqueeze(-1)
    a = model.angle_mlp(spherical_harmonics_m0((unit[t[0]] * unit[t[1]]).sum(-1)))
    graph_of_edge = batch.batch[ei[1]]
    seg_e = Segments.of(graph_of_edge, batch.num_graphs)
    seg_t = Segments.of(graph_of_edge[t[0]], batch.num_graphs)
    for layer in model.layers:
        e = pair(layer.edge_update, x, ei[0], ei[1], e, seg_e)
        a = pair(layer.triplet_update, e, t[0], t[1], a, seg_t)
        e = block(layer.line_block, e, t, a, seg_e)
        x = block(layer.atom_block, x, ei, e, seg_n)
    return model.read_out(x, seg_n)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_composed_products_equal_the_plain_network(name, graph_batch):
    """The fast forward (edge MLP's last Linear composed into the convs or the first pair updates,
    residuals inside the products) computes the same function as the network written out plainly."""
    torch.manual_seed(5)
    model = build_model(name, 16, points=51).eval()
    with torch.no_grad():
        for p in model.parameters():  # away from the initialisation's symmetries (zero biases, unit norms)
            p.add_(0.1 * torch.randn_like(p))
        eps, drude = model(graph_batch)
        eps0, drude0 = _plain_forward(model, graph_batch)
    assert torch.allclose(eps, eps0, atol=1e-4, rtol=1e-4) and torch.allclose(drude, drude0, atol=1e-4, rtol=1e-4)
    assert eps.abs().max() > 1e-2  # a real, non-trivial output was compared


def test_radial_basis_and_angles_against_closed_forms():
    from lightning_modules.layers import GaussianRBF, envelope, spherical_harmonics_m0

    rbf = GaussianRBF(32)
    r = torch.tensor([1.3, 5.5, 6.0])
    sigma = 4.0 * 5.5 / 31
    mu = 5.5 * 7 / 31
    d = 1.3 / 5.5
    expected = math.exp(-((1.3 - mu) ** 2) / (2 * sigma**2)) * (1 - 15 * d**4 + 24 * d**5 - 10 * d**6)
    assert rbf(r)[0, 7].item() == pytest.approx(expected, rel=1e-5)
    assert torch.all(rbf(r)[1:] == 0)  # the envelope vanishes at and beyond the cutoff
    assert envelope(torch.tensor(0.0)).item() == 1.0
    # Y_l0(theta) for theta = 60 degrees
    y = spherical_harmonics_m0(torch.tensor(0.5))
    closed = [
        1 / math.sqrt(4 * math.pi),
        math.sqrt(3 / (4 * math.pi)) * 0.5,
        math.sqrt(5 / (4 * math.pi)) * (3 * 0.25 - 1) / 2,
        math.sqrt(7 / (4 * math.pi)) * (5 * 0.125 - 1.5) / 2,
    ]
    assert y.tolist() == pytest.approx(closed, rel=1e-6)


def test_graph_layer_norm_normalises_each_graph_over_rows_and_channels():
    from lightning_modules.layers import GraphLayerNorm, Segments

    gen = torch.Generator().manual_seed(6)
    x = torch.cat([torch.randn(3, 4, generator=gen) * 5 + 2, torch.randn(5, 4, generator=gen) * 0.1 - 7])
    seg = Segments.of(torch.tensor([0] * 3 + [1] * 5), 2)
    y = GraphLayerNorm(4, eps=1e-5)(x, seg)
    for raw, part in ((x[:3], y[:3]), (x[3:], y[3:])):
        v = raw.double().var(unbiased=False).item()
        assert part.mean().item() == pytest.approx(0, abs=1e-5)
        assert part.var(unbiased=False).item() == pytest.approx(v / (v + 1e-5), rel=1e-4)  # eps in the denominator


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_run_under_bf16_autocast(name, graph_batch):
    """The GPU recipe trains in bf16 autocast: mixed dtypes must not break the index operations."""
    torch.manual_seed(5)
    model = build_model(name, 16, points=201)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eps, drude = model(graph_batch)
    assert torch.isfinite(eps.float()).all() and torch.isfinite(drude.float()).all()
    eps.float().mean().backward()
