"""Sheaf diffusion layer and NSD models: reference semantics, equivariance, gradients, determinism."""

from __future__ import annotations

import dataclasses

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

from mmsheaf.sheaf import (
    ContinuousNSD,
    ContinuousNSDConfig,
    DiscreteNSD,
    NSDConfig,
    SheafDiffusionConv,
    build_index,
    dense_sheaf_laplacian,
    dirichlet_energy,
    householder_orthogonal,
    sheaf_parameter_groups,
)

DT = torch.float64
SHEAVES = ("diag", "orth", "gen")
N, F_IN, CLASSES = 14, 6, 3


def _graph(n: int = N, m: int = 30, seed: int = 0) -> torch.Tensor:
    edges = torch.tensor(list(nx.gnm_random_graph(n, m, seed=seed).edges())).t()
    return torch.cat([edges, edges.flip(0)], 1)


def _features(dtype: torch.dtype = DT, seed: int = 0) -> torch.Tensor:
    return torch.randn(N, F_IN, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _full_config(sheaf: str, **overrides) -> NSDConfig:
    base = dict(
        sheaf=sheaf,
        d=3,
        layers=3,
        hidden_channels=4,
        add_lp=True,
        add_hp=True,
        edge_weights=True,
        second_linear=True,
        input_dropout=0.1,
        dropout=0.2,
    )
    return NSDConfig(**(base | overrides))


def _reference_maps(
    conv: SheafDiffusionConv, h: torch.Tensor, index
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reference's learners: a linear layer on [x_row || x_col] (+ tanh), per directed edge."""
    cat = torch.cat([h[index.src], h[index.dst]], dim=1)
    raw = torch.tanh(conv.sheaf_learner.lin(cat))
    d = conv.d
    maps = {"diag": raw, "gen": raw.view(-1, d, d)}.get(conv.sheaf)
    if maps is None:
        maps = householder_orthogonal(raw, d)
    w = None
    if conv.edge_weight_learner is not None:
        z = torch.sigmoid(conv.edge_weight_learner.lin(cat)).squeeze(1)
        w = z * z[index.reverse]
    return maps, w


def _reference_step(conv: SheafDiffusionConv, lap: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``L (I (x) W1) X W2`` with the reference's reshapes, on ``(N * d, C)`` stalks."""
    n, dt = h.size(0) // conv.total_d, conv.total_d
    z = h
    if conv.left_weight is not None:
        z = (z.t().reshape(-1, dt) @ conv.left_weight.t()).reshape(-1, n * dt).t()
    if conv.right_weight is not None:
        z = z @ conv.right_weight.t()
    return lap @ z


def _reference_encode(model, x: torch.Tensor) -> torch.Tensor:
    h = F.elu(model.lin1(x)) if model.config.use_act else model.lin1(x)
    return model.lin12(h) if model.lin12 is not None else h


def _reference_discrete(model: DiscreteNSD, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """Dense re-implementation of the reference's forward (eval mode), Laplacians from the coboundary."""
    cfg = model.config
    n, dt = x.size(0), cfg.total_d
    index = build_index(edge_index, n)
    h = _reference_encode(model, x).reshape(n * dt, -1)
    x0, lap = h, None
    for conv in model.convs:
        if conv.learns_sheaf:
            maps, w = _reference_maps(conv, h.reshape(n, -1), index)
            lap = dense_sheaf_laplacian(index, maps, cfg.sheaf, w, cfg.normalisation, conv.fixed_signs)
        z = _reference_step(conv, lap, h)
        if cfg.use_act:
            z = F.elu(z)
        coeff = (1 + torch.tanh(conv.epsilon)).view(-1, 1).tile(n, 1)
        x0 = coeff * x0 - z
        h = x0
    return model.lin2(h.reshape(n, -1))


def _perturb(model: torch.nn.Module, scale: float = 0.3) -> None:
    """Move the zero / identity initialisations (epsilon, W1) so that the checks see them."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "epsilon" in name or "left_weight" in name:
                param.add_(scale * torch.randn(param.shape, generator=gen, dtype=param.dtype))


# ----------------------------------------------------------------------------------------------------------
# Reference semantics
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sheaf", SHEAVES)
@pytest.mark.parametrize("variant", ["full", "plain", "linear", "deg", "unnormalised"])
def test_discrete_matches_dense_reference(sheaf: str, variant: str) -> None:
    overrides = {
        "full": {},
        "plain": dict(add_lp=False, add_hp=False, edge_weights=False, second_linear=False),
        "linear": dict(linear=True),
        "deg": dict(normalised=False, deg_normalised=True, use_act=False),
        "unnormalised": dict(normalised=False, left_weights=False, right_weights=False),
    }[variant]
    torch.manual_seed(0)
    model = DiscreteNSD(F_IN, CLASSES, _full_config(sheaf, **overrides)).double().eval()
    _perturb(model)
    x, ei = _features(), _graph()
    torch.testing.assert_close(model(x, ei), _reference_discrete(model, x, ei), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("sheaf", SHEAVES)
@pytest.mark.parametrize("linear", [False, True])
def test_continuous_matches_manual_euler(sheaf: str, linear: bool) -> None:
    torch.manual_seed(0)
    cfg = ContinuousNSDConfig(
        sheaf=sheaf,
        d=2,
        hidden_channels=3,
        add_lp=True,
        edge_weights=True,
        linear=linear,
        solver="euler",
        step_size=0.25,
        t=1.0,
    )
    model = ContinuousNSD(F_IN, CLASSES, cfg).double().eval()
    _perturb(model)
    x, ei = _features(), _graph()
    n, dt = N, cfg.total_d
    index = build_index(ei, n)
    func = model.odefunc
    h = _reference_encode(model, x).reshape(n * dt, -1)

    def laplacian(state: torch.Tensor) -> torch.Tensor:
        maps, w = _reference_maps(func, state.reshape(n, -1), index)
        return dense_sheaf_laplacian(index, maps, sheaf, w, "sym", func.fixed_signs)

    fixed = laplacian(h) if linear else None
    for _ in range(4):
        lap = fixed if linear else laplacian(h)
        h = h + 0.25 * F.elu(-_reference_step(func, lap, h))
    torch.testing.assert_close(model(x, ei), model.lin2(h.reshape(n, -1)), atol=1e-10, rtol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# Invariances, gradients, determinism
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sheaf", SHEAVES)
def test_discrete_nsd_is_permutation_equivariant(sheaf: str) -> None:
    torch.manual_seed(0)
    model = DiscreteNSD(F_IN, CLASSES, _full_config(sheaf)).double().eval()
    _perturb(model)
    x, ei = _features(), _graph()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(N)
    out = model(x, ei)
    torch.testing.assert_close(model(x[perm], inverse[ei]), out[perm], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("sheaf", SHEAVES)
def test_conv_is_permutation_equivariant(sheaf: str) -> None:
    torch.manual_seed(0)
    conv = SheafDiffusionConv(4, 2, sheaf, add_hp=True, edge_weights=True).double().eval()
    _perturb(conv)
    x = torch.randn(N, 12, dtype=DT)
    ei = _graph()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(N)
    out = conv(x, ei)
    assert out.shape == x.shape
    torch.testing.assert_close(conv(x[perm], inverse[ei]), out[perm], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("sheaf", SHEAVES)
@pytest.mark.parametrize(
    "overrides",
    [{}, dict(linear=True), dict(map_learner="mlp", orth="matrix_exp", sheaf_act="elu", normalised=False)],
    ids=["per-layer", "linear", "mlp"],
)
def test_every_parameter_gets_a_finite_gradient(sheaf: str, overrides: dict) -> None:
    torch.manual_seed(0)
    model = DiscreteNSD(F_IN, CLASSES, _full_config(sheaf, **overrides))
    model.train()
    x, ei = _features(torch.float32), _graph()
    F.cross_entropy(model(x, ei), torch.arange(N) % CLASSES).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("sheaf", SHEAVES)
@pytest.mark.parametrize("linear", [False, True])
def test_continuous_gradients_and_adjoint(sheaf: str, linear: bool) -> None:
    """Every parameter gets a gradient; the adjoint method gives the same gradients (float64, fine steps)."""
    x, ei = _features(), _graph()
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(0)
        cfg = ContinuousNSDConfig(
            sheaf=sheaf,
            d=2,
            hidden_channels=3,
            add_lp=True,
            add_hp=True,
            edge_weights=True,
            second_linear=True,
            linear=linear,
            solver="rk4",
            step_size=0.05,
            t=0.5,
            adjoint=adjoint,
        )
        model = ContinuousNSD(F_IN, CLASSES, cfg).double().train()
        _perturb(model)
        F.cross_entropy(model(x, ei), torch.arange(N) % CLASSES).backward()
        named = dict(model.named_parameters())
        for name, param in named.items():
            if linear or "sheaf_learner" not in name or not adjoint:
                assert param.grad is not None and torch.isfinite(param.grad).all(), name
        grads.append({k: (p.grad if p.grad is not None else torch.zeros_like(p)) for k, p in named.items()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-4, msg=name)


def test_continuous_adaptive_solver_and_zero_time() -> None:
    torch.manual_seed(0)
    x, ei = _features(torch.float32), _graph()
    model = ContinuousNSD(
        F_IN, CLASSES, ContinuousNSDConfig(sheaf="orth", d=2, hidden_channels=3, rtol=1e-4, atol=1e-5)
    )
    assert torch.isfinite(model(x, ei)).all()
    still = ContinuousNSD(F_IN, CLASSES, ContinuousNSDConfig(d=2, hidden_channels=3, t=0.0)).eval()
    torch.testing.assert_close(still(x, ei), still.lin2(_reference_encode(still, x)))


@pytest.mark.parametrize("sheaf", SHEAVES)
def test_seeded_determinism(sheaf: str) -> None:
    x, ei = _features(torch.float32), _graph()
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = DiscreteNSD(F_IN, CLASSES, _full_config(sheaf)).train()  # dropout on
        outputs.append(model(x, ei))
    assert torch.equal(outputs[0], outputs[1])


def test_float32_default_and_float64() -> None:
    x, ei = _features(torch.float32), _graph()
    model = DiscreteNSD(F_IN, CLASSES, _full_config("gen"))
    assert model(x, ei).dtype == torch.float32
    assert model.double()(x.double(), ei).dtype == torch.float64


# ----------------------------------------------------------------------------------------------------------
# Layer API, energies, caching, parameter groups, configs
# ----------------------------------------------------------------------------------------------------------


def test_conv_shared_laplacian_and_reset() -> None:
    torch.manual_seed(0)
    first = SheafDiffusionConv(3, 2, "gen", add_lp=True)
    shared = SheafDiffusionConv(3, 2, "gen", add_lp=True, learn_sheaf=False)
    assert shared.sheaf_learner is None and not shared.learns_sheaf
    x, ei = torch.randn(N, 9), _graph()
    with pytest.raises(ValueError, match="laplacian"):
        shared(x, ei)
    lap = first.sheaf_laplacian(x, ei)
    assert shared(x, ei, laplacian=lap).shape == x.shape
    with pytest.raises(ValueError, match="shape"):
        first(torch.randn(N, 8), ei)
    with pytest.raises(ValueError, match="stalks"):
        SheafDiffusionConv(3, 2, "gen", learn_sheaf=False)(torch.randn(N, 6), ei, laplacian=lap)
    with torch.no_grad():
        first.epsilon.fill_(1.0)
        first.left_weight.fill_(2.0)
    first.reset_parameters()
    assert torch.equal(first.epsilon, torch.zeros(3)) and torch.equal(first.left_weight, torch.eye(3))
    right = first.right_weight
    torch.testing.assert_close(right @ right.t(), torch.eye(3), atol=1e-5, rtol=0)


def test_dirichlet_energies() -> None:
    torch.manual_seed(0)
    model = DiscreteNSD(F_IN, CLASSES, _full_config("orth", layers=4)).train()
    x, ei = _features(torch.float32), _graph()
    energies = model.dirichlet_energies(x, ei)
    assert model.training
    assert len(energies) == 5 and all(e >= 0 and e == e for e in energies)
    model.eval()
    with torch.no_grad():
        h = model._encode(x)
        index = model.index(ei, N)
        lap = model.convs[0].sheaf_laplacian(h, index, normalisation="sym")
        expected = float(dirichlet_energy(lap, h.view(N, model.config.total_d, -1)))
    assert energies[0] == pytest.approx(expected, rel=1e-5)
    # the Rayleigh quotient: the same energies over the squared norm of the state, so 0 <= q < 2 (the
    # normalised Laplacian is below 2 D (D + I)^-1)
    quotients = model.dirichlet_energies(x, ei, rayleigh=True)
    assert quotients[0] == pytest.approx(expected / float(h.pow(2).sum()), rel=1e-5)
    assert all(0 <= q < 2 for q in quotients)


def test_index_built_once_per_graph() -> None:
    model = DiscreteNSD(F_IN, CLASSES, _full_config("diag"))
    x, ei = _features(torch.float32), _graph()
    model(x, ei)
    index = model.index(ei, N)
    model(x, ei)
    assert model.index(ei, N) is index
    assert len(model._index_cache._entries) == 1
    assert model(x, index).shape == (N, CLASSES)  # a prebuilt SheafIndex is accepted too


@pytest.mark.parametrize("sheaf", SHEAVES)
def test_sheaf_parameter_groups(sheaf: str) -> None:
    model = DiscreteNSD(F_IN, CLASSES, _full_config(sheaf))
    groups = sheaf_parameter_groups(model, weight_decay=5e-4, sheaf_decay=1e-3)
    names = [n for n, _ in model.named_parameters() if "sheaf_learner" in n]
    assert len(names) == 3 and len(groups[1]["params"]) == 3 and groups[1]["weight_decay"] == 1e-3
    assert len(groups[0]["params"]) + 3 == len(list(model.parameters()))
    torch.optim.Adam(groups, lr=0.01)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(sheaf="bundle"), "unknown sheaf type"),
        (dict(d=0), "d >= 1"),
        (dict(sheaf="orth", d=1), "d >= 2"),
        (dict(normalised=True, deg_normalised=True), "exclusive"),
        (dict(dropout=1.0), "dropout"),
        (dict(hidden_channels=0), "hidden_channels"),
        (dict(sheaf_act="swish"), "sheaf_act"),
        (dict(map_learner="attention"), "map_learner"),
        (dict(orth="cayley"), "orth"),
    ],
)
def test_config_validation(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NSDConfig(**overrides)


def test_continuous_config_validation_and_frozen() -> None:
    with pytest.raises(ValueError, match="solver"):
        ContinuousNSDConfig(solver="leapfrog")
    with pytest.raises(ValueError, match="t must"):
        ContinuousNSDConfig(t=-1.0)
    with pytest.raises(ValueError, match="ContinuousNSDConfig"):
        ContinuousNSD(F_IN, CLASSES, NSDConfig())
    with pytest.raises(dataclasses.FrozenInstanceError):
        NSDConfig().d = 3  # type: ignore[misc]
    cfg = NSDConfig(d=3, add_lp=True, add_hp=True, hidden_channels=5)
    assert (cfg.total_d, cfg.hidden_dim, cfg.normalisation) == (5, 25, "sym")


def test_model_rejects_bad_inputs() -> None:
    model = DiscreteNSD(F_IN, CLASSES, _full_config("diag"))
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(N, F_IN + 1), _graph())
    with pytest.raises(ValueError, match="self-loop"):
        model(torch.randn(N, F_IN), torch.tensor([[0, 1, 1], [1, 0, 1]]))
    with pytest.raises(ValueError, match="to_undirected"):
        model(torch.randn(N, F_IN), torch.tensor([[0, 1], [1, 2]]))
