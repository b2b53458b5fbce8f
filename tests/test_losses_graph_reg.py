"""Tests of mmsheaf.losses.graph_reg: the Neural Graph Machines regulariser against the graph Laplacian's
quadratic form, edge types and weights; the sheaf regulariser against the dense coboundary sheaf Laplacian
(float64, small graphs: a path, a triangle with a pendant, graphs of the networkx atlas)."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from mmsheaf.losses import (
    EDGE_TYPES,
    PAIRED_DISTANCES,
    PROBABILITY_DISTANCES,
    EdgeMaps,
    GraphRegulariser,
    SheafRegulariser,
    edge_types,
    paired_distance,
    restrict_stalks,
)
from mmsheaf.sheaf import (
    build_index,
    dense_sheaf_laplacian,
    dirichlet_energy,
    householder_orthogonal,
    sheaf_laplacian,
)
from torch import Tensor

F64 = torch.float64
KINDS = ("diag", "orth", "gen")
EMBEDDING_DISTANCES = tuple(name for name in PAIRED_DISTANCES if name not in PROBABILITY_DISTANCES)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _edge_index(graph: nx.Graph) -> Tensor:
    edges = torch.tensor(list(graph.edges()), dtype=torch.long).reshape(-1, 2).t()
    return torch.cat([edges, edges.flip(0)], 1)


def _triangle_pendant() -> nx.Graph:
    return nx.Graph([(0, 1), (1, 2), (0, 2), (2, 3)])


GRAPHS = {
    "path4": nx.path_graph(4),
    "triangle_pendant": _triangle_pendant(),
    "atlas20": nx.graph_atlas(20),
    "atlas52": nx.graph_atlas(52),
    "atlas150": nx.graph_atlas(150),
    "atlas208": nx.graph_atlas(208),
}


def _laplacian(graph: nx.Graph, weight: str | None = None) -> Tensor:
    n = graph.number_of_nodes()
    lap = torch.zeros(n, n, dtype=F64)
    for u, v, data in graph.edges(data=True):
        w = data[weight] if weight else 1.0
        lap[u, v] -= w
        lap[v, u] -= w
        lap[u, u] += w
        lap[v, v] += w
    return lap


def _random_maps(kind: str, num: int, d: int, seed: int = 0) -> Tensor:
    gen = _gen(seed)
    if kind == "diag":
        return torch.randn(num, d, generator=gen, dtype=F64)
    if kind == "orth":
        return householder_orthogonal(torch.randn(num, d * (d - 1) // 2, generator=gen, dtype=F64), d)
    return torch.randn(num, d, d, generator=gen, dtype=F64)


def _identity_maps(kind: str, num: int, d: int) -> Tensor:
    if kind == "diag":
        return torch.ones(num, d, dtype=F64)
    return torch.eye(d, dtype=F64).expand(num, d, d).clone()


def _inputs(name: str, n: int, dim: int, seed: int = 0) -> tuple[Tensor, dict]:
    """Rows for the distance ``name`` (softmax rows for kl/js) and its keyword arguments."""
    h = torch.randn(n, dim, generator=_gen(seed), dtype=F64)
    if name in PROBABILITY_DISTANCES:
        h = torch.softmax(h, dim=1)
    kwargs = {}
    if name == "mahalanobis":
        a = torch.randn(dim, dim, generator=_gen(seed + 1), dtype=F64)
        kwargs["matrix"] = a @ a.t()
    return h, kwargs


# ---------------------------------------------------------------------------------------- GraphRegulariser


@pytest.mark.parametrize("graph", list(GRAPHS), ids=list(GRAPHS))
def test_sq_l2_sum_is_graph_laplacian_quadratic_form(graph: str) -> None:
    g = GRAPHS[graph]
    ei = _edge_index(g)
    h = torch.randn(g.number_of_nodes(), 3, generator=_gen(), dtype=F64)
    expected = torch.trace(h.t() @ _laplacian(g) @ h)
    reg = GraphRegulariser("sq_l2", reduction="sum")
    torch.testing.assert_close(reg(h, ei), expected)
    shuffled = ei[:, torch.randperm(ei.size(1), generator=_gen(1))]  # column order is free
    torch.testing.assert_close(reg(h, shuffled), expected)


def test_mean_is_sum_over_undirected_edges() -> None:
    g = GRAPHS["atlas150"]
    ei = _edge_index(g)
    h = torch.randn(g.number_of_nodes(), 4, generator=_gen(), dtype=F64)
    total = GraphRegulariser("l1", reduction="sum")(h, ei)
    torch.testing.assert_close(GraphRegulariser("l1")(h, ei), total / g.number_of_edges())
    assert g.number_of_edges() * 2 == ei.size(1) and g.number_of_edges() > 1


def test_edge_weights_multiply() -> None:
    g = _triangle_pendant()
    for k, (u, v) in enumerate(g.edges()):
        g[u][v]["w"] = 0.5 + k
    ei = _edge_index(g)
    w = torch.tensor([g[u][v]["w"] for u, v in ei.t().tolist()], dtype=F64)
    h = torch.randn(4, 3, generator=_gen(), dtype=F64)
    reg = GraphRegulariser("sq_l2", reduction="sum")
    torch.testing.assert_close(reg(h, ei, w), torch.trace(h.t() @ _laplacian(g, "w") @ h))
    torch.testing.assert_close(reg(h, ei, 3 * w), 3 * reg(h, ei, w))
    with pytest.raises(ValueError, match="reverse"):
        reg(h, ei, torch.arange(ei.size(1), dtype=F64))
    with pytest.raises(ValueError, match="one entry per column"):
        reg(h, ei, w[:-1])


def test_edge_types_on_hand_labelled_graph() -> None:
    ei = torch.tensor([[0, 0, 1, 2, 1, 2, 2, 3], [1, 2, 2, 3, 0, 0, 1, 2]])
    labelled = torch.tensor([True, True, False, False])
    # (0,1) LL, (0,2) LU, (1,2) LU, (2,3) UU, then the reverses
    assert edge_types(ei, labelled).tolist() == [0, 1, 1, 2, 0, 1, 1, 2]
    assert EDGE_TYPES == ("LL", "LU", "UU")
    with pytest.raises(ValueError, match="boolean mask"):
        edge_types(ei, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one entry per node"):
        edge_types(ei, torch.tensor([True, False]))


def test_per_type_weights_select_and_combine_edge_types() -> None:
    ei = _edge_index(_triangle_pendant())
    labelled = torch.tensor([True, True, False, False])
    h = torch.randn(4, 3, generator=_gen(), dtype=F64)

    def sq(u: int, v: int) -> Tensor:
        return (h[u] - h[v]).pow(2).sum()

    parts = {"LL": sq(0, 1), "LU": sq(0, 2) + sq(1, 2), "UU": sq(2, 3)}
    for k, name in enumerate(EDGE_TYPES):
        weights = tuple(1.0 if j == k else 0.0 for j in range(3))
        reg = GraphRegulariser("sq_l2", weights=weights, reduction="sum")
        torch.testing.assert_close(reg(h, ei, labelled=labelled), parts[name])
    reg = GraphRegulariser("sq_l2", weights=(0.5, 2.0, 3.0), reduction="sum")
    torch.testing.assert_close(
        reg(h, ei, labelled=labelled), 0.5 * parts["LL"] + 2 * parts["LU"] + 3 * parts["UU"]
    )
    mean = GraphRegulariser("sq_l2", weights=(1.0, 0.0, 0.0))(h, ei, labelled=labelled)
    torch.testing.assert_close(mean, parts["LL"] / 4)  # mean over all E = 4 undirected edges


def test_without_labels_all_edges_use_the_common_weight() -> None:
    ei = _edge_index(_triangle_pendant())
    h = torch.randn(4, 3, generator=_gen(), dtype=F64)
    plain = GraphRegulariser("sq_l2")(h, ei)
    torch.testing.assert_close(GraphRegulariser("sq_l2", weights=(2.0, 2.0, 2.0))(h, ei), 2 * plain)
    with pytest.raises(ValueError, match="labelled"):
        GraphRegulariser("sq_l2", weights=(1.0, 0.5, 0.5))(h, ei)


@pytest.mark.parametrize("name", list(PAIRED_DISTANCES))
def test_every_distance_runs_is_nonnegative_and_matches_paired_distance(name: str) -> None:
    g = GRAPHS["atlas208"]
    ei = _edge_index(g)
    h, kwargs = _inputs(name, g.number_of_nodes(), 4)
    h.requires_grad_(True)
    value = GraphRegulariser(name, reduction="sum")(h, ei, **kwargs)
    assert torch.isfinite(value) and value >= 0
    value.backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    pairs = torch.tensor(sorted(g.edges()), dtype=torch.long).t()  # u < v, once per edge
    expected = paired_distance(name, h[pairs[0]], h[pairs[1]], **kwargs).sum()
    torch.testing.assert_close(value, expected)


def test_kl_compares_the_smaller_node_id_first() -> None:
    p = torch.softmax(torch.randn(2, 5, generator=_gen(), dtype=F64), 1)
    ei = torch.tensor([[1, 0], [0, 1]])
    value = GraphRegulariser("kl", reduction="sum")(p, ei)
    torch.testing.assert_close(value, paired_distance("kl", p[:1], p[1:])[0])
    assert not torch.allclose(value, paired_distance("kl", p[1:], p[:1])[0])


@pytest.mark.parametrize("name", PROBABILITY_DISTANCES)
def test_probability_distances_reject_non_probability_rows(name: str) -> None:
    ei = _edge_index(nx.path_graph(3))
    reg = GraphRegulariser(name)
    p = torch.softmax(torch.randn(3, 4, generator=_gen(), dtype=F64), 1)
    assert reg(p, ei) >= 0
    with pytest.raises(ValueError, match="softmax"):
        reg(torch.randn(3, 4, generator=_gen(), dtype=F64), ei)  # negative entries
    with pytest.raises(ValueError, match="softmax"):
        reg(2 * p, ei)  # non-negative, rows summing to 2


def test_graph_regulariser_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="unknown distance"):
        GraphRegulariser("l3")
    with pytest.raises(ValueError, match="unknown reduction"):
        GraphRegulariser(reduction="max")
    with pytest.raises(ValueError, match="non-negative"):
        GraphRegulariser(weights=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="not undirected"):
        GraphRegulariser()(torch.zeros(3, 2), torch.tensor([[0, 1], [1, 2]]))


def test_edgeless_graph_gives_zero() -> None:
    h = torch.randn(3, 2, dtype=F64)
    ei = torch.zeros(2, 0, dtype=torch.long)
    for reduction in ("mean", "sum"):
        assert GraphRegulariser(reduction=reduction)(h, ei) == 0
        assert SheafRegulariser(2, 2, reduction=reduction).double()(h, h, ei) == 0


# ---------------------------------------------------------------------------------------- SheafRegulariser


@pytest.mark.parametrize("graph", ["path4", "triangle_pendant", "atlas52", "atlas208"])
@pytest.mark.parametrize("kind", KINDS)
def test_sheaf_sq_l2_sum_is_unnormalised_sheaf_dirichlet_energy(kind: str, graph: str) -> None:
    g = GRAPHS[graph]
    n, d, c = g.number_of_nodes(), 3, 2
    ei = _edge_index(g)
    index = build_index(ei, n)
    maps = _random_maps(kind, index.num_directed_edges, d)
    h = torch.randn(n, d * c, generator=_gen(2), dtype=F64)
    reg = SheafRegulariser(4, d, kind, reduction="sum")
    value = reg(h, None, ei, maps=maps)
    hv = h.reshape(n * d, c)
    lap = dense_sheaf_laplacian(index, maps, kind)  # normalisation=None: L = delta^T delta
    torch.testing.assert_close(value, torch.trace(hv.t() @ lap @ hv))
    sparse = sheaf_laplacian(index, maps, kind, normalisation=None)
    torch.testing.assert_close(value, dirichlet_energy(sparse, hv))


@pytest.mark.parametrize("learner", ["linear", "mlp"])
@pytest.mark.parametrize("kind", KINDS)
def test_learned_maps_match_the_dense_reference_built_from_them(kind: str, learner: str) -> None:
    g = GRAPHS["atlas150"]
    n, d, c, f = g.number_of_nodes(), 2, 3, 5
    ei = _edge_index(g)
    torch.manual_seed(0)
    reg = SheafRegulariser(f, d, kind, map_learner=learner, reduction="sum").double()
    x = torch.randn(n, f, generator=_gen(1), dtype=F64)
    h = torch.randn(n, d * c, generator=_gen(2), dtype=F64)
    edge_maps = reg.maps(x, ei)
    lap = dense_sheaf_laplacian(edge_maps.index, edge_maps.maps.detach(), kind)
    hv = h.reshape(n * d, c)
    torch.testing.assert_close(reg(h, x, ei), torch.trace(hv.t() @ lap @ hv))


def test_maps_layout_and_activation() -> None:
    g = _triangle_pendant()
    ei = _edge_index(g)
    x = torch.randn(4, 3, generator=_gen(), dtype=F64)
    reg = SheafRegulariser(3, 2, "diag").double()
    edge_maps = reg.maps(x, ei)
    assert isinstance(edge_maps, EdgeMaps)
    index = edge_maps.index
    e = index.num_edges
    u, v = index.edge_index[:, :e]
    assert bool((u < v).all()) and e == 4
    w = reg.sheaf_learner.lin.weight  # (d, 2F): F_{u<e} = tanh(W [x_u || x_v])
    torch.testing.assert_close(edge_maps.source, torch.tanh(torch.cat([x[u], x[v]], 1) @ w.t()))
    torch.testing.assert_close(edge_maps.target, torch.tanh(torch.cat([x[v], x[u]], 1) @ w.t()))
    assert reg.index(ei, 4) is index  # built once per graph
    assert reg.maps(x, index).index is index  # a prebuilt index is used as is


def test_sheaf_edge_weights_scale_linearly() -> None:
    g = GRAPHS["atlas52"]
    n, d = g.number_of_nodes(), 2
    ei = _edge_index(g)
    index = build_index(ei, n)
    w_und = torch.rand(index.num_edges, generator=_gen(), dtype=F64) + 0.1
    w = torch.empty(ei.size(1), dtype=F64)
    w[index.perm] = torch.cat([w_und, w_und])  # aligned with the columns of ei
    maps = _random_maps("gen", index.num_directed_edges, d)
    h = torch.randn(n, 2 * d, generator=_gen(1), dtype=F64)
    value = SheafRegulariser(1, d, "gen", reduction="sum")(h, None, ei, w, maps=maps)
    # the dense reference scales the maps by its edge weights: L ~ w^2, so pass sqrt(w)
    lap = dense_sheaf_laplacian(index, maps, "gen", edge_weights=torch.cat([w_und, w_und]).sqrt())
    hv = h.reshape(n * d, 2)
    torch.testing.assert_close(value, torch.trace(hv.t() @ lap @ hv))


@pytest.mark.parametrize("name", EMBEDDING_DISTANCES)
@pytest.mark.parametrize("kind", KINDS)
def test_identity_maps_give_the_plain_graph_regulariser(kind: str, name: str) -> None:
    g = GRAPHS["atlas208"]
    n, d = g.number_of_nodes(), 2
    ei = _edge_index(g)
    h, kwargs = _inputs(name, n, 3 * d)
    labelled = torch.arange(n) % 2 == 0
    weights = (1.0, 0.5, 0.25)
    maps = _identity_maps(kind, ei.size(1), d)
    sheaf = SheafRegulariser(1, d, kind, distance=name, weights=weights)(
        h, None, ei, labelled=labelled, maps=maps, **kwargs
    )
    plain = GraphRegulariser(name, weights=weights)(h, ei, labelled=labelled, **kwargs)
    torch.testing.assert_close(sheaf, plain)


@pytest.mark.parametrize("learner", ["linear", "mlp"])
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_learner_parameter_and_h(kind: str, learner: str) -> None:
    g = GRAPHS["atlas150"]
    n, d = g.number_of_nodes(), 3
    ei = _edge_index(g)
    torch.manual_seed(0)
    reg = SheafRegulariser(4, d, kind, map_learner=learner).double()
    x = torch.randn(n, 4, generator=_gen(1), dtype=F64)
    h = torch.randn(n, 2 * d, generator=_gen(2), dtype=F64, requires_grad=True)
    reg(h, x, ei).backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    params = dict(reg.named_parameters())
    assert params and all(name.startswith("sheaf_learner.") for name in params)  # NSD's sheaf_decay group
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name", ["sq_l2", "l1", "cosine"])
@pytest.mark.parametrize("kind", KINDS)
def test_permutation_equivariance(kind: str, name: str) -> None:
    g = GRAPHS["atlas208"]
    n, d = g.number_of_nodes(), 2
    ei = _edge_index(g)
    torch.manual_seed(0)
    reg = SheafRegulariser(3, d, kind, distance=name, weights=(1.0, 0.3, 2.0)).double()
    plain = GraphRegulariser(name, weights=(1.0, 0.3, 2.0))
    x = torch.randn(n, 3, generator=_gen(1), dtype=F64)
    h = torch.randn(n, 2 * d, generator=_gen(2), dtype=F64)
    labelled = torch.arange(n) % 3 == 0
    w = torch.rand(ei.size(1) // 2, generator=_gen(3), dtype=F64).repeat(2)  # column k and its reverse k + E
    perm = torch.randperm(n, generator=_gen(4))  # new node j is old node perm[j]
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    ei_new = inv[ei]
    assert bool(((ei[0] < ei[1]) != (ei_new[0] < ei_new[1])).any())  # some edges change orientation
    before = reg(h, x, ei, w, labelled)
    after = reg(h[perm], x[perm], ei_new, w, labelled[perm])
    torch.testing.assert_close(before, after)
    torch.testing.assert_close(plain(h, ei, w, labelled), plain(h[perm], ei_new, w, labelled[perm]))


def _alternating_cycle(n: int = 6, d: int = 2, c: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """A cycle with two alternating classes (signs s) and embeddings h_u = s_u * z: h_u = -h_v on every edge."""
    src = torch.arange(n)
    dst = (src + 1) % n
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    s = torch.tensor([1.0, -1.0], dtype=F64).repeat(n // 2)
    z = torch.randn(d * c, generator=_gen(), dtype=F64)
    return ei, s, s[:, None] * z


def test_heterophilic_cycle_signed_maps_give_exactly_zero() -> None:
    ei, s, h = _alternating_cycle()
    d = 2
    plain = GraphRegulariser("sq_l2", reduction="sum")(h, ei)
    torch.testing.assert_close(plain, 6 * (2 * h[0]).pow(2).sum())  # every edge: ||2 z||^2
    reg = SheafRegulariser(1, d, "diag", reduction="sum")
    index = reg.index(ei, 6)
    maps = s[index.src].unsqueeze(1).expand(-1, d)  # F_{u<e} = s_u: +1 on one class, -1 on the other
    assert reg(h, None, ei, maps=maps) == 0
    assert reg(h, None, ei, maps=torch.ones_like(maps)) == plain  # the constant sheaf is the plain one


def test_heterophilic_cycle_adam_on_orthogonal_maps_drives_the_penalty_to_zero() -> None:
    ei, s, h = _alternating_cycle()
    x = torch.stack([s, torch.ones_like(s)], 1)  # the class sign and a constant
    torch.manual_seed(1)
    reg = SheafRegulariser(2, 2, "orth", sheaf_act="id").double()  # orthogonal maps cannot shrink to 0
    plain = GraphRegulariser("sq_l2")(h, ei)
    opt = torch.optim.Adam(reg.parameters(), lr=0.05)
    start = reg(h, x, ei).item()
    for _ in range(200):
        opt.zero_grad()
        loss = reg(h, x, ei)
        loss.backward()
        opt.step()
    final = reg(h, x, ei).item()
    assert start > 0.1 * plain and final < 1e-4 * plain
    index = reg.index(ei, 6)
    ru, rv = restrict_stalks(h, reg.maps(x, ei).maps.detach(), index, "orth")
    torch.testing.assert_close(ru.norm(dim=1), h.norm(dim=1)[index.src[: index.num_edges]])  # norms kept
    assert torch.allclose(ru, rv, atol=1e-2)


def test_sheaf_regulariser_rejects_bad_inputs() -> None:
    ei = _edge_index(nx.path_graph(3))
    reg = SheafRegulariser(2, 2, "diag")
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="divisible"):
        reg(torch.randn(3, 5), x, ei)
    with pytest.raises(ValueError, match="probability"):
        SheafRegulariser(2, 2, distance="kl")
    with pytest.raises(ValueError, match="needs an integer stalk dimension"):
        SheafRegulariser(2, 1, "orth")
    with pytest.raises(ValueError, match="unknown map learner"):
        SheafRegulariser(2, 2, map_learner="gat")
    with pytest.raises(ValueError, match="x .* is needed"):
        reg(torch.randn(3, 4), None, ei)
    with pytest.raises(ValueError, match="in_features"):
        reg(torch.randn(3, 4), torch.randn(3, 3), ei)
    with pytest.raises(ValueError, match="shape"):
        reg(torch.randn(3, 4), None, ei, maps=torch.ones(3, 2))
