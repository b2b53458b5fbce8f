"""Restriction-map learners, orthogonal parametrisations and edge weights."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from mmsheaf.sheaf import (
    MAP_LEARNERS,
    ORTHOGONAL_MAPS,
    SHEAF_TYPES,
    EdgeWeightLearner,
    LinearMapLearner,
    MLPMapLearner,
    build_index,
    householder_orthogonal,
    matrix_exp_orthogonal,
)

DT = torch.float64


def _index(n: int = 12, m: int = 25, seed: int = 0):
    edges = torch.tensor(list(nx.gnm_random_graph(n, m, seed=seed).edges())).t()
    return build_index(torch.cat([edges, edges.flip(0)], 1), n)


@pytest.mark.parametrize("orth", sorted(ORTHOGONAL_MAPS))
@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_orthogonal_maps_are_orthogonal(orth: str, d: int) -> None:
    gen = torch.Generator().manual_seed(d)
    params = 3.0 * torch.randn(500, d * (d - 1) // 2, generator=gen)  # float32, large parameters too
    q = ORTHOGONAL_MAPS[orth](params, d)
    assert q.shape == (500, d, d) and q.dtype == torch.float32
    eye = torch.eye(d).expand(500, d, d)
    torch.testing.assert_close(q.transpose(1, 2) @ q, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(q @ q.transpose(1, 2), eye, atol=1e-5, rtol=0)
    batched = ORTHOGONAL_MAPS[orth](params.view(20, 25, -1), d)  # arbitrary batch shape
    torch.testing.assert_close(batched.reshape(500, d, d), q)


def test_determinants_and_zero_parameters() -> None:
    params = torch.randn(50, 3, dtype=DT)
    assert torch.allclose(torch.linalg.det(matrix_exp_orthogonal(params, 3)), torch.ones(50, dtype=DT))
    # d - 1 reflections: determinant (-1)^(d-1); zero parameters give reflections of the axes
    assert torch.allclose(torch.linalg.det(householder_orthogonal(params, 3)), torch.ones(50, dtype=DT))
    assert torch.allclose(
        torch.linalg.det(householder_orthogonal(torch.randn(5, 1, dtype=DT), 2)), -torch.ones(5, dtype=DT)
    )
    torch.testing.assert_close(matrix_exp_orthogonal(torch.zeros(2, 3), 3), torch.eye(3).expand(2, 3, 3))
    torch.testing.assert_close(householder_orthogonal(torch.zeros(2, 0), 1), torch.ones(2, 1, 1))


@pytest.mark.parametrize("orth", sorted(ORTHOGONAL_MAPS))
@pytest.mark.parametrize("d", [2, 3, 4])
def test_gradcheck_orthogonal_maps(orth: str, d: int) -> None:
    params = torch.randn(6, d * (d - 1) // 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    params.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: ORTHOGONAL_MAPS[orth](p, d), (params,))


def test_orthogonal_maps_reject_wrong_parameter_count() -> None:
    with pytest.raises(ValueError, match="d\\(d-1\\)/2"):
        householder_orthogonal(torch.randn(4, 2), 3)
    with pytest.raises(ValueError, match="d\\(d-1\\)/2"):
        matrix_exp_orthogonal(torch.randn(4, 2), 3)


@pytest.mark.parametrize("learner", sorted(MAP_LEARNERS))
@pytest.mark.parametrize("sheaf", sorted(SHEAF_TYPES))
def test_learner_shapes_and_concatenation_semantics(learner: str, sheaf: str) -> None:
    """The node-projection implementation equals the paper's layer on the concatenation [x_u || x_v]."""
    torch.manual_seed(0)
    index = _index()
    d, f = 3, 8
    module = MAP_LEARNERS[learner](f, d, sheaf).double()
    x = torch.randn(12, f, dtype=DT)
    maps = module(x, index)
    e2 = index.num_directed_edges
    assert maps.shape == ((e2, d) if sheaf == "diag" else (e2, d, d))
    assert module.num_params == {"diag": d, "orth": d * (d - 1) // 2, "gen": d * d}[sheaf]
    cat = torch.cat([x[index.src], x[index.dst]], dim=1)  # (2E, 2F)
    if learner == "linear":
        raw = module.lin(cat)
    else:
        raw = module.lin2(torch.nn.functional.elu(module.lin1(cat)))
    raw = torch.tanh(raw)
    if sheaf == "diag":
        expected = raw
    elif sheaf == "gen":
        expected = raw.view(e2, d, d)
    else:
        expected = householder_orthogonal(raw, d)
        torch.testing.assert_close(maps.transpose(1, 2) @ maps, torch.eye(d, dtype=DT).expand(e2, d, d))
    torch.testing.assert_close(maps, expected)


def test_learner_activation_and_orth_options() -> None:
    index = _index()
    x = torch.randn(12, 4)
    ident = LinearMapLearner(4, 2, "gen", act="id")
    cat = torch.cat([x[index.src], x[index.dst]], dim=1)
    torch.testing.assert_close(ident(x, index), ident.lin(cat).view(-1, 2, 2))
    rot = LinearMapLearner(4, 3, "orth", orth="matrix_exp")
    assert torch.allclose(torch.linalg.det(rot(x, index)), torch.ones(index.num_directed_edges), atol=1e-5)
    assert MLPMapLearner(4, 2, "diag", hidden_channels=5).lin1.out_features == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sheaf="bundle"), "unknown sheaf type"),
        (dict(d=0), "d >= 1"),
        (dict(sheaf="orth", d=1), "sheaf='diag' for d=1"),
        (dict(act="swish"), "unknown activation"),
        (dict(sheaf="orth", orth="cayley"), "unknown orthogonal"),
    ],
)
def test_learner_rejects_bad_options(kwargs: dict, match: str) -> None:
    args = dict(in_channels=4, d=2, sheaf="diag") | kwargs
    with pytest.raises(ValueError, match=match):
        LinearMapLearner(**args)


def test_edge_weights_symmetric_in_unit_interval() -> None:
    index = _index()
    learner = EdgeWeightLearner(6)
    x = torch.randn(12, 6)
    w = learner(x, index)
    assert w.shape == (index.num_directed_edges,)
    assert bool(((w > 0) & (w < 1)).all())
    torch.testing.assert_close(w, w[index.reverse])
    cat = torch.cat([x[index.src], x[index.dst]], dim=1)
    z = torch.sigmoid(learner.lin(cat)).squeeze(1)
    torch.testing.assert_close(w, z * z[index.reverse])
