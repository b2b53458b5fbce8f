"""Sheaf Laplacian: index, sparse operator vs the dense coboundary reference, spectra, kernels, gradients."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
import torch

from mmsheaf.sheaf import (
    SheafIndexCache,
    batched_sym_inv_sqrt,
    build_index,
    dense_sheaf_laplacian,
    dirichlet_energy,
    householder_orthogonal,
    sheaf_laplacian,
)

DT = torch.float64
KINDS = ("diag", "orth", "gen")
NORMS = (None, "sym", "deg")
FIXED = ((), (1.0,), (1.0, -1.0), (-1.0,))


def _edge_index(graph: nx.Graph) -> torch.Tensor:
    edges = torch.tensor(list(graph.edges()), dtype=torch.long).reshape(-1, 2).t()
    return torch.cat([edges, edges.flip(0)], 1)


def _atlas() -> list[nx.Graph]:
    """All graphs of the atlas with 2 to 6 nodes and at least one edge (connected or not)."""
    return [g for g in (nx.graph_atlas(i) for i in range(2, 209)) if g.number_of_edges() > 0]


def _random_maps(kind: str, num: int, d: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "diag":
        return torch.randn(num, d, generator=gen, dtype=DT)
    if kind == "orth":
        return householder_orthogonal(torch.randn(num, d * (d - 1) // 2, generator=gen, dtype=DT), d)
    return torch.randn(num, d, d, generator=gen, dtype=DT)


def _random_weights(index, gen: torch.Generator) -> torch.Tensor:
    w = torch.rand(index.num_edges, generator=gen, dtype=DT) + 0.1
    return torch.cat([w, w])


def _random_graph(n: int = 30, m: int = 70, seed: int = 0) -> torch.Tensor:
    return _edge_index(nx.gnm_random_graph(n, m, seed=seed))


# ----------------------------------------------------------------------------------------------------------
# Index
# ----------------------------------------------------------------------------------------------------------


def test_index_layout_and_reverse() -> None:
    ei = _random_graph()
    shuffled = ei[:, torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(1))]
    index = build_index(shuffled, 32)  # two isolated nodes
    e = index.num_edges
    src, dst = index.edge_index
    assert index.num_directed_edges == 2 * e == ei.size(1)
    assert bool((src[:e] < dst[:e]).all())
    assert torch.equal(index.edge_index[:, e:], index.edge_index[:, :e].flip(0))
    assert torch.equal(index.edge_index, shuffled[:, index.perm])
    assert torch.equal(index.edge_index[:, index.reverse], index.edge_index.flip(0))
    assert torch.equal(index.degree, torch.bincount(ei[0], minlength=32))
    keys = src[:e] * 32 + dst[:e]
    assert bool((keys[1:] > keys[:-1]).all())  # sorted undirected edges


@pytest.mark.parametrize(
    "edge_index, match",
    [
        (torch.tensor([[0, 1, 1], [1, 0, 1]]), "self-loop"),
        (torch.tensor([[0, 1, 1], [1, 2, 0]]), "not undirected"),
        (torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0]]), "duplicate"),
        (torch.tensor([[0, 1], [1, 0]], dtype=torch.float32), "integer"),
        (torch.tensor([0, 1, 1, 0]), r"shape \(2, E\)"),
        (torch.tensor([[0, 5], [5, 0]]), "num_nodes"),
        (torch.tensor([[0, 2, 1, 2], [2, 0, 2, 3]]), "not undirected"),
    ],
)
def test_index_rejects_bad_edge_index(edge_index: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_index(edge_index, 4)


def test_index_cache_builds_once_and_notices_in_place_changes() -> None:
    ei = _random_graph()
    cache = SheafIndexCache()
    first = cache(ei, 30)
    assert cache(ei, 30) is first
    assert cache(first, 30) is first
    other = cache(ei.clone(), 30)
    assert other is not first
    ei[:, [0, 1]] = ei[:, [1, 0]]  # in place: same memory, new version
    assert cache(ei, 30) is not first
    with pytest.raises(ValueError, match="nodes"):
        cache(first, 31)


# ----------------------------------------------------------------------------------------------------------
# Sparse operator vs dense reference
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, normalisation", list(itertools.product(KINDS, NORMS)))
def test_matches_dense_coboundary_reference_on_atlas(kind: str, normalisation: str | None) -> None:
    """Every atlas graph with 2-6 nodes; d, edge weights and fixed dimensions cycle over the graphs."""
    gen = torch.Generator().manual_seed(0)
    dims = (2, 3) if kind == "orth" else (1, 2, 3)
    variants = itertools.cycle(itertools.product(dims, (False, True), FIXED))
    for graph in _atlas():
        d, weighted, fixed = next(variants)
        index = build_index(_edge_index(graph), graph.number_of_nodes())
        maps = _random_maps(kind, index.num_directed_edges, d, gen)
        w = _random_weights(index, gen) if weighted else None
        lap = sheaf_laplacian(index, maps, kind, w, normalisation, fixed)
        dense = lap.to_dense()
        ref = dense_sheaf_laplacian(index, maps, kind, w, normalisation, fixed)
        assert dense.shape == ref.shape == (graph.number_of_nodes() * (d + len(fixed)),) * 2
        torch.testing.assert_close(dense, ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_symmetric_psd_and_normalised_spectrum_in_0_2(kind: str) -> None:
    gen = torch.Generator().manual_seed(1)
    for seed, (d, fixed) in enumerate(itertools.product((2, 3), FIXED)):
        index = build_index(_random_graph(25, 60, seed), 25)
        maps = _random_maps(kind, index.num_directed_edges, d, gen)
        for normalisation, w in itertools.product(NORMS, (None, _random_weights(index, gen))):
            dense = sheaf_laplacian(index, maps, kind, w, normalisation, fixed).to_dense()
            torch.testing.assert_close(dense, dense.t(), atol=1e-12, rtol=0)
            evals = torch.linalg.eigvalsh(dense)
            assert evals.min() >= -1e-8
            if normalisation == "sym":
                assert evals.max() <= 2.0 + 1e-8


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalisation", NORMS)
def test_constant_sheaf_kernel_is_d_times_components(kind: str, normalisation: str | None) -> None:
    for graph in _atlas()[::3]:
        index = build_index(_edge_index(graph), graph.number_of_nodes())
        components = nx.number_connected_components(graph)
        for d in (1, 2, 3):
            if kind == "orth" and d == 1:
                continue
            e2 = index.num_directed_edges
            maps = torch.ones(e2, d, dtype=DT) if kind == "diag" else torch.eye(d, dtype=DT).expand(e2, d, d)
            evals = torch.linalg.eigvalsh(sheaf_laplacian(index, maps, kind, None, normalisation).to_dense())
            assert int((evals.abs() < 1e-9).sum()) == d * components


def test_add_hp_dimension_is_the_normalised_graph_laplacian() -> None:
    ei = _random_graph()
    index = build_index(ei, 30)
    maps = torch.zeros(index.num_directed_edges, 1, dtype=DT)
    dense = sheaf_laplacian(index, maps, "diag", None, "sym", (-1.0, 1.0)).to_dense().view(30, 3, 30, 3)
    adj = torch.zeros(30, 30, dtype=DT)
    adj[ei[0], ei[1]] = 1.0
    deg = adj.sum(1)
    s = (deg + 1).rsqrt()
    torch.testing.assert_close(dense[:, 1, :, 1], s[:, None] * (torch.diag(deg) - adj) * s[None, :])
    torch.testing.assert_close(dense[:, 2, :, 2], s[:, None] * (torch.diag(deg) + adj) * s[None, :])


def test_apply_layouts_energy_and_dtype() -> None:
    index = build_index(_random_graph(), 30)
    gen = torch.Generator().manual_seed(2)
    for dtype in (torch.float32, torch.float64):
        maps = _random_maps("gen", index.num_directed_edges, 3, gen).to(dtype)
        lap = sheaf_laplacian(index, maps, "gen", None, "sym", (1.0,))
        x = torch.randn(30, 4, 5, generator=gen, dtype=DT).to(dtype)
        y = lap.apply(x)
        assert y.dtype == dtype and y.shape == x.shape
        torch.testing.assert_close(lap.apply(x.reshape(120, 5)), y.reshape(120, 5))
        dense = lap.to_dense()
        torch.testing.assert_close(y.reshape(120, 5), dense @ x.reshape(120, 5), atol=1e-5, rtol=1e-5)
        energy = dirichlet_energy(lap, x)
        flat = x.reshape(120, 5)
        torch.testing.assert_close(energy, torch.trace(flat.t() @ dense @ flat), atol=1e-4, rtol=1e-5)
        with pytest.raises(ValueError, match="shape"):
            lap.apply(torch.randn(30, 3, 5, dtype=dtype))


def test_sheaf_laplacian_rejects_bad_inputs() -> None:
    index = build_index(_random_graph(), 30)
    e2 = index.num_directed_edges
    with pytest.raises(ValueError, match="unknown sheaf type"):
        sheaf_laplacian(index, torch.randn(e2, 2), "bundle")
    with pytest.raises(ValueError, match="shape"):
        sheaf_laplacian(index, torch.randn(e2, 2), "gen")
    with pytest.raises(ValueError, match="shape"):
        sheaf_laplacian(index, torch.randn(e2 - 1, 2), "diag")
    with pytest.raises(ValueError, match="at least 1"):
        sheaf_laplacian(index, torch.randn(e2, 0), "diag")
    with pytest.raises(ValueError, match="symmetric"):
        sheaf_laplacian(index, torch.randn(e2, 2), "diag", torch.rand(e2))
    with pytest.raises(ValueError, match="normalisation"):
        sheaf_laplacian(index, torch.randn(e2, 2), "diag", normalisation="rw")


def test_edgeless_graph() -> None:
    index = build_index(torch.zeros(2, 0, dtype=torch.long), 3)
    lap = sheaf_laplacian(index, torch.zeros(0, 2, 2), "gen", fixed_signs=(1.0,))
    x = torch.randn(3, 3, 4, requires_grad=True)
    lap.apply(x).sum().backward()
    assert float(lap.to_dense().abs().sum()) == 0.0


# ----------------------------------------------------------------------------------------------------------
# Diffusion and gradients
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_diffusion_lowers_dirichlet_energy_monotonically(kind: str) -> None:
    gen = torch.Generator().manual_seed(3)
    index = build_index(_random_graph(40, 90, 3), 40)
    maps = _random_maps(kind, index.num_directed_edges, 3, gen)
    lap = sheaf_laplacian(index, maps, kind, _random_weights(index, gen), "sym", (1.0,))
    x = torch.randn(40, 4, 6, generator=gen, dtype=DT)
    energies = []
    for _ in range(25):
        energies.append(float(dirichlet_energy(lap, x)))
        x = x - 0.5 * lap.apply(x)
    assert all(b < a for a, b in itertools.pairwise(energies))
    assert energies[-1] < 0.1 * energies[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalisation", NORMS)
def test_gradcheck_apply(kind: str, normalisation: str | None) -> None:
    gen = torch.Generator().manual_seed(4)
    index = build_index(_edge_index(nx.graph_atlas(150)), 6)
    d = 2
    if kind == "orth":
        params = torch.randn(index.num_directed_edges, 1, generator=gen, dtype=DT, requires_grad=True)
    else:
        params = _random_maps(kind, index.num_directed_edges, d, gen).requires_grad_()
    w = (torch.rand(index.num_edges, generator=gen, dtype=DT) + 0.5).requires_grad_()
    x = torch.randn(6, d + 1, 3, generator=gen, dtype=DT, requires_grad=True)

    def fn(params: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        maps = householder_orthogonal(params, d) if kind == "orth" else params
        lap = sheaf_laplacian(index, maps, kind, torch.cat([w, w]), normalisation, (1.0,))
        return lap.apply(x)

    assert torch.autograd.gradcheck(fn, (params, w, x))


def test_gradcheck_sym_inv_sqrt_and_repeated_eigenvalues() -> None:
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(4, 3, 3, generator=gen, dtype=DT, requires_grad=True)

    def fn(a: torch.Tensor) -> torch.Tensor:
        return batched_sym_inv_sqrt(a @ a.transpose(-1, -2) + torch.eye(3, dtype=DT))

    assert torch.autograd.gradcheck(fn, (a,))
    spd = a.detach() @ a.detach().transpose(-1, -2) + torch.eye(3, dtype=DT)
    root = batched_sym_inv_sqrt(spd)
    torch.testing.assert_close(root @ spd @ root, torch.eye(3, dtype=DT).expand(4, 3, 3))
    eye = (2.0 * torch.eye(3, dtype=DT)).expand(2, 3, 3).clone().requires_grad_()  # repeated eigenvalues
    batched_sym_inv_sqrt(eye).sum().backward()
    assert torch.isfinite(eye.grad).all()
    # all eigenvalues equal: the derivative is f'(2) = -2**-1.5 / 2 times the (all-ones) upstream gradient
    torch.testing.assert_close(eye.grad, torch.full((2, 3, 3), -0.5 * 2.0**-1.5, dtype=DT))
