"""Tests of the baseline node classifiers (mmsheaf.nsd.baselines), their configurations
(mmsheaf.nsd.baseline_configs) and the model registry (mmsheaf.nsd.registry)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch_geometric.utils import to_dense_adj

from mmsheaf.data import CSBMConfig, contextual_sbm
from mmsheaf.nsd import baseline_configs, baselines
from mmsheaf.nsd.registry import (
    NODE_MODELS,
    build_node_model,
    node_model_config,
    node_model_names,
    resolve_node_model,
)

BASELINES = node_model_names("baseline")

# Small widths keep every test in milliseconds; dropout off where a test needs a deterministic forward.
SMALL = {name: {"hidden_channels": 8} for name in BASELINES}
SMALL["gat"] = {"hidden_channels": 4, "heads": 2, "output_heads": 2}
SMALL["gprgnn"] = {"hidden_channels": 8, "K": 4}
NO_DROPOUT = {name: {"dropout": 0.0, "input_dropout": 0.0} for name in BASELINES}
NO_DROPOUT["gat"]["attention_dropout"] = 0.0
NO_DROPOUT["gprgnn"]["dprate"] = 0.0


def square_graph() -> tuple[torch.Tensor, torch.Tensor]:
    """A 4-node cycle 0-1-2-3-0 with the chord 0-2, both directions, and 3 random features per node."""
    pairs = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]
    edge_index = torch.tensor(pairs + [(v, u) for u, v in pairs]).t()
    return torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), edge_index


@pytest.fixture(scope="module")
def csbm():
    return contextual_sbm(
        CSBMConfig(num_nodes=30, num_classes=3, mean_degree=3.0, num_features=5, num_splits=1)
    )


def build(name: str, in_channels: int = 5, out_channels: int = 3, **extra):
    return build_node_model(name, in_channels, out_channels, **{**SMALL[name], **extra})


# ----------------------------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name", BASELINES)
def test_output_shape_on_4_node_graph(name: str) -> None:
    x, edge_index = square_graph()
    model = build(name, in_channels=3, out_channels=2)
    assert model(x, edge_index).shape == (4, 2)
    model.eval()
    assert model(x, edge_index).shape == (4, 2)


@pytest.mark.parametrize("name", BASELINES)
def test_every_parameter_gets_a_finite_gradient(name: str, csbm) -> None:
    torch.manual_seed(0)
    model = build(name, **NO_DROPOUT[name])
    out = model(csbm.x, csbm.edge_index)
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} has an all-zero gradient"


@pytest.mark.parametrize("name", BASELINES)
def test_permutation_equivariance(name: str, csbm) -> None:
    torch.manual_seed(0)
    model = build(name).double().eval()
    x, edge_index = csbm.x.double(), csbm.edge_index
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(1))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())  # new index of old node v
    out = model(x, edge_index)
    out_perm = model(x[perm], inverse[edge_index])
    torch.testing.assert_close(out_perm, out[perm], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", BASELINES)
def test_seeded_initialisation_and_reset_are_deterministic(name: str, csbm) -> None:
    torch.manual_seed(3)
    a = build(name)
    torch.manual_seed(3)
    b = build(name)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    a.eval(), b.eval()
    assert torch.equal(a(csbm.x, csbm.edge_index), b(csbm.x, csbm.edge_index))

    before = {k: v.clone() for k, v in a.state_dict().items()}
    torch.manual_seed(4)
    a.reset_parameters()
    after = a.state_dict()
    weights = [k for k, v in before.items() if v.dim() >= 2]
    assert any(not torch.equal(before[k], after[k]) for k in weights), "reset_parameters changed nothing"
    torch.manual_seed(4)
    b.reset_parameters()
    for k, v in b.state_dict().items():
        assert torch.equal(v, after[k])


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("layers", [1, 8])
def test_any_depth_works(name: str, layers: int, csbm) -> None:
    torch.manual_seed(0)
    model = build(name, layers=layers)
    out = model(csbm.x, csbm.edge_index)
    assert out.shape == (30, 3) and torch.isfinite(out).all()
    out.sum().backward()


def test_gcn_32_layers(csbm) -> None:
    model = build("gcn", layers=32)
    assert len(model.convs) == 32
    assert model(csbm.x, csbm.edge_index).shape == (30, 3)


def test_depth_counts_layers(csbm) -> None:
    assert len(build("mlp", layers=3).convs) == 3
    assert len(build("gcn", layers=3).convs) == 3
    assert len(build("gat", layers=3).convs) == 3
    assert len(build("sage", layers=3).convs) == 3
    assert len(build("gcnii", layers=3).convs) == 3  # plus the input and output linear layers
    assert len(build("gprgnn", layers=3).lins) == 3  # MLP depth; K propagation steps on top


def test_mlp_ignores_the_graph(csbm) -> None:
    model = build("mlp").eval()
    empty = torch.empty(2, 0, dtype=torch.long)
    assert torch.equal(model(csbm.x, csbm.edge_index), model(csbm.x, empty))


def _dense_propagation(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """(D+I)^-1/2 (A+I) (D+I)^-1/2 as a dense matrix."""
    a = to_dense_adj(edge_index, max_num_nodes=n)[0].double() + torch.eye(n, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


def test_one_layer_gcn_matches_dense_formula() -> None:
    x, edge_index = square_graph()
    model = build_node_model("gcn", 3, 2, layers=1).double().eval()
    conv = model.convs[0]
    expected = _dense_propagation(edge_index, 4) @ x.double() @ conv.lin.weight.t() + conv.bias
    torch.testing.assert_close(model(x.double(), edge_index), expected)


def test_gpr_propagation_matches_dense_formula_and_ppr_init() -> None:
    x, edge_index = square_graph()
    K, alpha = 3, 0.2
    prop = baselines.GPRProp(K, alpha).double()
    expected_gamma = torch.tensor(
        [alpha * (1 - alpha) ** k for k in range(K)] + [(1 - alpha) ** K], dtype=torch.float64
    )
    torch.testing.assert_close(prop.gamma.detach(), expected_gamma)
    with torch.no_grad():
        prop.gamma.copy_(torch.tensor([0.5, -1.0, 2.0, 0.25]))
    p = _dense_propagation(edge_index, 4)
    h = x.double()
    expected = sum(g * torch.linalg.matrix_power(p, k) @ h for k, g in enumerate(prop.gamma.detach()))
    torch.testing.assert_close(prop(h, edge_index), expected)


@pytest.mark.parametrize(
    ("config_cls", "kwargs"),
    [
        (baseline_configs.MLPConfig, {"layers": 0}),
        (baseline_configs.GCNConfig, {"dropout": 1.0}),
        (baseline_configs.GATConfig, {"heads": 0}),
        (baseline_configs.SAGEConfig, {"aggr": "median"}),
        (baseline_configs.GCNIIConfig, {"alpha": 1.5}),
        (baseline_configs.GPRGNNConfig, {"init": "nope"}),
        (baseline_configs.GPRGNNConfig, {"K": 0}),
    ],
)
def test_configs_reject_bad_values(config_cls, kwargs) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        config_cls(**kwargs)


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        baseline_configs.GCNConfig().layers = 3  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------- registry
def test_registry_names_and_families() -> None:
    assert list(NODE_MODELS) == [
        "mlp", "gcn", "gat", "sage", "gcnii", "gprgnn",
        "diag-nsd", "orth-nsd", "gen-nsd", "cont-diag-nsd", "cont-orth-nsd", "cont-gen-nsd",
    ]  # fmt: skip
    assert node_model_names("baseline") == ["mlp", "gcn", "gat", "sage", "gcnii", "gprgnn"]
    assert all(NODE_MODELS[n].family == "sheaf" for n in node_model_names("sheaf"))
    assert {NODE_MODELS[n].fixed["sheaf"] for n in node_model_names("sheaf")} == {"diag", "orth", "gen"}
    assert NODE_MODELS["orth-nsd"].display == "O(d)-NSD"
    for name in BASELINES:
        spec = NODE_MODELS[name]
        assert dataclasses.is_dataclass(spec.config_cls)
        assert isinstance(build_node_model(name, 5, 3), spec.model_cls)
    assert resolve_node_model("GCN").name == "gcn"


def test_unknown_model_lists_the_names() -> None:
    with pytest.raises(ValueError, match="gcnii") as info:
        build_node_model("gnc", 5, 3)
    assert "diag-nsd" in str(info.value)


def test_unknown_hyperparameter_lists_the_valid_keys() -> None:
    with pytest.raises(ValueError, match="hidden_channels") as info:
        build_node_model("gcn", 5, 3, hiden_channels=16)
    assert "hiden_channels" in str(info.value) and "layers" in str(info.value)


def test_hyperparameters_reach_the_config() -> None:
    model = build_node_model("gat", 5, 3, heads=3, hidden_channels=4, layers=3)
    assert model.config == baseline_configs.GATConfig(heads=3, hidden_channels=4, layers=3)
    assert node_model_config("gcnii", alpha=0.3).alpha == 0.3


def test_invalid_value_raises_value_error() -> None:
    with pytest.raises(ValueError, match="layers"):
        build_node_model("sage", 5, 3, layers=0)


def test_sheaf_entries_fix_the_sheaf_type() -> None:
    pytest.importorskip("mmsheaf.sheaf.models")
    assert node_model_config("orth-nsd").sheaf == "orth"
    assert node_model_config("cont-gen-nsd").sheaf == "gen"
    assert "sheaf" not in NODE_MODELS["diag-nsd"].hparam_names()
    with pytest.raises(ValueError, match="orth-nsd"):
        node_model_config("diag-nsd", sheaf="orth")


@pytest.mark.parametrize("name", ["gcn", "sage", "gcnii"])
def test_sparse_operator_matches_pyg_on_edge_index(name):
    """The cached CSR operator gives PyG's own edge_index result (the speed path changes no numbers)."""
    from torch_geometric.nn import GCN2Conv, GCNConv, SAGEConv

    torch.manual_seed(0)
    data = contextual_sbm(CSBMConfig(num_nodes=40, num_classes=3, mean_degree=4.0, num_features=5, seed=1))
    model = build(name, layers=2, hidden_channels=6, dropout=0.0, input_dropout=0.0).double().eval()
    x = data.x.double()
    conv = model.convs[0]
    if name == "gcn":
        ref = GCNConv(5, 6).double()
        ref.lin.weight.data, ref.bias.data = conv.lin.weight.data, conv.bias.data
        expected = ref(x, data.edge_index)
        got = conv(x, model.operator(data.edge_index, data.num_nodes, torch.float64))
    elif name == "sage":
        ref = SAGEConv(5, 6).double()
        ref.load_state_dict(conv.state_dict())
        expected = ref(x, data.edge_index)
        got = conv(x, model.operator(data.edge_index, data.num_nodes, torch.float64))
    else:
        h = torch.relu(model.lin_in(x))
        ref = GCN2Conv(6, alpha=conv.alpha, theta=0.5, layer=1).double()
        ref.load_state_dict(conv.state_dict())
        expected = ref(h, h, data.edge_index)
        from mmsheaf.sheaf.operators import gcn_adjacency

        got = conv(h, h, gcn_adjacency(data.edge_index, data.num_nodes, dtype=torch.float64))
    torch.testing.assert_close(got, expected)
