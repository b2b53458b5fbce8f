"""Tests of the graph-regularisation study's model and training (mmsheaf.graphreg.model, .train)."""

from __future__ import annotations

import math

import pytest
import torch
from mmsheaf.graphreg import protocol
from mmsheaf.graphreg.model import MLPConfig, RegConfig, RegularisedMLP, normalise_maps
from mmsheaf.graphreg.protocol import GraphRegRunSpec
from mmsheaf.graphreg.train import GraphRegTrainConfig, train_graphreg
from mmsheaf.losses.graph_reg import GraphRegulariser
from mmsheaf.runs.cache import RunCache
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

MLP = MLPConfig(hidden_channels=8, layers=2, dropout=0.0)


def planted(n: int = 40, homophilic: bool = True, seed: int = 0) -> Data:
    """Two classes on a ring; features are noisy class indicators; edges join same-class (homophilic) or
    different-class (heterophilic) neighbours."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.nn.functional.one_hot(y, 2).float() + 0.8 * torch.randn(n, 2, generator=g)
    x = torch.cat([x, torch.randn(n, 4, generator=g)], 1)
    step = 2 if homophilic else 1  # i -> i + 2 keeps the class, i -> i + 1 changes it
    src = torch.arange(n)
    edge_index = to_undirected(torch.stack([src, (src + step) % n]))
    masks = torch.zeros(3, n, dtype=torch.bool)
    masks[0, : n // 2], masks[1, n // 2 : 3 * n // 4], masks[2, 3 * n // 4 :] = True, True, True
    return Data(x=x, y=y, edge_index=edge_index, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])


def test_configs_validate() -> None:
    with pytest.raises(ValueError, match="unknown regulariser"):
        RegConfig(kind="ngm")
    with pytest.raises(ValueError, match="plain regulariser only"):
        RegConfig(kind="sheaf", distance="kl")
    with pytest.raises(ValueError, match="unknown distance"):
        RegConfig(kind="graph", distance="euclid")
    with pytest.raises(ValueError, match="layers >= 2"):
        MLPConfig(layers=1)
    with pytest.raises(ValueError, match="must divide"):
        RegularisedMLP(6, 2, MLPConfig(hidden_channels=9), RegConfig(kind="sheaf", d=2))


def test_normalised_maps_have_a_fixed_size_per_edge() -> None:
    g = torch.Generator().manual_seed(0)
    diag = torch.randn(10, 3, generator=g)  # 5 edges, d = 3
    out = normalise_maps(diag, 5, "diag")
    assert torch.allclose(out[:5].square() + out[5:].square(), torch.full((5, 3), 2.0), atol=1e-5)
    assert torch.equal(torch.sign(out), torch.sign(diag))
    gen = torch.randn(10, 3, 3, generator=g)
    out = normalise_maps(gen, 5, "gen")
    assert torch.allclose(out[:5].square().sum((1, 2)) + out[5:].square().sum((1, 2)), torch.full((5,), 6.0))
    assert torch.equal(normalise_maps(gen, 5, "orth"), gen)
    with pytest.raises(ValueError, match="must have shape"):
        normalise_maps(diag, 4, "diag")
    with pytest.raises(ValueError, match="unknown sheaf"):
        normalise_maps(diag, 5, "full")


@pytest.mark.parametrize("sheaf", ["diag", "orth", "gen"])
@pytest.mark.parametrize("distance", ["sq_l2", "l1", "cosine"])
def test_the_sheaf_penalty_starts_as_the_plain_one(sheaf: str, distance: str) -> None:
    """Zero map weights: identity maps (diag, gen) or one reflection on both ends (orth)."""
    data = planted(homophilic=False)
    torch.manual_seed(0)
    model = RegularisedMLP(6, 2, MLP, RegConfig(kind="sheaf", sheaf=sheaf, d=2, alpha=1.0, distance=distance))
    z, logits = model(data.x)
    plain = GraphRegulariser(distance, reduction="mean")(z, data.edge_index)
    torch.testing.assert_close(model.penalty(data.x, z, logits, data.edge_index), plain)
    assert bool((z < 0).any())  # the embedding is signed (pre-activation): a sign flip can match two nodes


def test_mahalanobis_penalties() -> None:
    data = planted()
    torch.manual_seed(0)
    learned = RegularisedMLP(6, 2, MLP, RegConfig(kind="graph", distance="mahalanobis", alpha=1.0))
    with torch.no_grad():
        learned.metric.L.zero_()
        learned.metric.L[0, 0] = 5.0  # all of LL^T on one (possibly dead) unit
    m = learned._distance_kwargs(torch.randn(3, 8), None, None)["matrix"].detach()
    eig = torch.linalg.eigvalsh(m)
    assert float(m.trace()) == pytest.approx(8.0) and float(eig.min()) == pytest.approx(0.5)
    pooled = RegularisedMLP(6, 2, MLP, RegConfig(kind="graph", distance="mahalanobis_pooled", alpha=1.0))
    z, logits = pooled(data.x)
    with pytest.raises(ValueError, match="needs the labels"):
        pooled.penalty(data.x, z, logits, data.edge_index)
    value = pooled.penalty(data.x, z, logits, data.edge_index, labelled=data.train_mask, y=data.y)
    from mmsheaf.losses.distances import class_pooled_precision

    p = class_pooled_precision(z[data.train_mask].detach(), data.y[data.train_mask])
    ref = GraphRegulariser("mahalanobis")(z, data.edge_index, matrix=p * (8 / p.trace()))
    torch.testing.assert_close(value, ref)
    value.backward()
    assert pooled.hidden[0].weight.grad.abs().sum() > 0


def test_penalties() -> None:
    data = planted()
    torch.manual_seed(0)
    none = RegularisedMLP(6, 2, MLP, RegConfig())
    h, logits = none(data.x)
    assert h.shape == (40, 8) and logits.shape == (40, 2)
    assert none.penalty(data.x, h, logits, data.edge_index) == 0
    graph = RegularisedMLP(6, 2, MLP, RegConfig(kind="graph", distance="sq_l2", alpha=1.0))
    h, logits = graph(data.x)
    ref = GraphRegulariser("sq_l2", reduction="mean")(h, data.edge_index)
    assert torch.allclose(graph.penalty(data.x, h, logits, data.edge_index), ref)
    js = RegularisedMLP(6, 2, MLP, RegConfig(kind="graph", distance="js", alpha=1.0))
    h, logits = js(data.x)
    assert 0 <= float(js.penalty(data.x, h, logits, data.edge_index).detach()) <= math.log(2)
    maha = RegularisedMLP(6, 2, MLP, RegConfig(kind="graph", distance="mahalanobis", alpha=1.0))
    with torch.no_grad():
        maha.metric.L.mul_(0.01)  # a shrunken matrix is rescaled to trace D: no trivial zero
    h, logits = maha(data.x)
    sq_l2 = GraphRegulariser("sq_l2", reduction="mean")(h, data.edge_index)  # M = 0.0001 I rescaled to I
    assert torch.allclose(maha.penalty(data.x, h, logits, data.edge_index), sq_l2, rtol=1e-4)


@pytest.mark.parametrize("sheaf", ["diag", "orth", "gen"])
def test_sheaf_penalty_reaches_the_map_learner_and_h(sheaf: str) -> None:
    data = planted(homophilic=False)
    torch.manual_seed(0)
    model = RegularisedMLP(6, 2, MLP, RegConfig(kind="sheaf", sheaf=sheaf, d=2, alpha=1.0))
    h, logits = model(data.x)
    pen = model.penalty(data.x, h, logits, data.edge_index, labelled=data.train_mask)
    pen.backward()
    learner = [p for n, p in model.named_parameters() if "sheaf_learner" in n]
    assert learner and all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner)
    assert model.hidden[0].weight.grad.abs().sum() > 0


def test_diag_maps_of_opposite_signs_cancel_a_heterophilic_edge() -> None:
    """h_v = -h_u on every edge: the plain penalty is large, the sheaf penalty with maps (1, -1) is 0."""
    from mmsheaf.losses.graph_reg import SheafRegulariser

    n = 6
    edge_index = to_undirected(torch.stack([torch.arange(n), (torch.arange(n) + 1) % n]))
    h = torch.tensor([[1.0, 2.0]]).repeat(n, 1) * torch.tensor([1.0, -1.0]).repeat(n // 2)[:, None]
    reg = SheafRegulariser(3, 2, "diag", "sq_l2", reduction="sum")
    index = reg.index(edge_index, n)
    e = index.num_edges
    maps = normalise_maps(torch.cat([torch.full((e, 2), 0.3), torch.full((e, 2), -0.3)]), e, "diag")
    assert float(reg(h, None, index, maps=maps)) == pytest.approx(0.0, abs=1e-6)
    assert float(GraphRegulariser("sq_l2", reduction="sum")(h, edge_index)) == pytest.approx(6 * 20.0)


def test_training_is_seeded_and_alpha_zero_is_the_plain_mlp() -> None:
    data = planted()
    cfg = GraphRegTrainConfig(epochs=30, patience=30, seed=0)

    def run(reg: RegConfig, seed: int = 0):
        torch.manual_seed(seed)
        model = RegularisedMLP(6, 2, MLP, reg)
        return train_graphreg(model, data, data.train_mask, data.val_mask, data.test_mask, cfg)

    a, b = run(RegConfig(kind="graph", alpha=0.5)), run(RegConfig(kind="graph", alpha=0.5))
    assert (a.test_acc, a.best_epoch, a.penalty) == (b.test_acc, b.best_epoch, b.penalty)
    plain, zero = run(RegConfig()), run(RegConfig(kind="graph", alpha=0.0))
    assert (plain.val_acc, plain.test_acc) == (zero.val_acc, zero.test_acc)
    sheaf_zero = run(RegConfig(kind="sheaf", alpha=0.0))  # same key as the MLP: must be the same training
    assert (plain.val_acc, plain.test_acc, plain.best_epoch) == (sheaf_zero.val_acc, sheaf_zero.test_acc,
                                                                 sheaf_zero.best_epoch)  # fmt: skip
    assert a.penalty > 0 and plain.penalty == 0 and a.infer_ms > 0 and 0 <= a.test_acc <= 1
    assert a.history[0]["epoch"] == 1 and a.epochs_run == 30
    with pytest.raises(ValueError, match="at least one node"):
        train_graphreg(RegularisedMLP(6, 2, MLP, RegConfig()), data, data.train_mask & False, data.val_mask,
                       data.test_mask, cfg)  # fmt: skip


def test_run_specs_cache_every_run_and_describe_the_whole_setting(tmp_path, monkeypatch) -> None:
    data = planted()
    monkeypatch.setitem(protocol.TASKS, "toy", protocol.Task(
        lambda dataset, split, options: (data, data.train_mask, data.val_mask, data.test_mask), lambda dataset, options: dict(options)))  # fmt: skip
    specs = [GraphRegRunSpec("toy", "ring", split, {"hidden_channels": 8}, {"kind": kind, "alpha": 0.5},
                             {"epochs": 5, "patience": 5}) for kind in ("none", "graph", "sheaf") for split in (0, 1)]  # fmt: skip
    cache = RunCache(tmp_path / "graphreg_runs")
    first = protocol.run_specs(specs, cache, progress=False)
    again = protocol.run_specs(specs, cache, progress=False)
    assert (
        not first.cached.any() and again.cached.all() and first.test_acc.tolist() == again.test_acc.tolist()
    )
    assert first.regulariser.tolist() == ["none"] * 2 + ["graph"] * 2 + ["sheaf"] * 2
    assert (first.distance == "").tolist() == [True, True, False, False, False, False]
    d = specs[4].describe()
    assert (
        d["reg"]["sheaf"] == "diag"
        and d["train"]["seed"] == 0
        and d["data_version"] == 1
        and d["mlp"]["layers"] == 2
    )
    assert specs[0].key() != specs[1].key() and specs[0].key() == GraphRegRunSpec(
        "toy", "ring", 0, {"hidden_channels": 8}, {"kind": "none", "alpha": 0.5}, {"epochs": 5, "patience": 5}).key()  # fmt: skip
    assert GraphRegRunSpec("node", "citeseer").describe()["data_version"] == 2  # notebook 01's preparation
    with pytest.raises(ValueError, match="unknown task"):
        GraphRegRunSpec("link", "cora")
    with pytest.raises(ValueError, match="unknown distance"):
        GraphRegRunSpec("node", "cora", reg={"kind": "graph", "distance": "emd"})


def test_run_keys_are_canonical_and_the_semi_task_options_resolved() -> None:
    none = GraphRegRunSpec("node", "cora", 0, reg={"kind": "none", "alpha": 0.3})
    assert none.key() == GraphRegRunSpec("node", "cora", 0).key()  # the plain MLP, whatever alpha says
    assert GraphRegRunSpec("node", "cora", reg={"kind": "graph", "alpha": 0.0}).key() == none.key()
    graph = GraphRegRunSpec("node", "cora", reg={"kind": "graph", "alpha": 1.0, "d": 4})
    assert graph.key() == GraphRegRunSpec("node", "cora", reg={"kind": "graph", "alpha": 1.0}).key()
    assert "d" not in graph.describe()["reg"] and GraphRegRunSpec(
        "node", "cora", reg={"kind": "sheaf", "alpha": 1.0}).describe()["reg"]["d"] == 2  # fmt: skip
    short = GraphRegRunSpec("semi", "mnist5k", 0, data_options={"per_class": 10})
    full = GraphRegRunSpec("semi", "mnist5k", 0, data_options={"per_class": 10, "k": 10, "metric": "cosine"})
    assert short.key() == full.key() and short.describe()["data_options"]["split_seed"] == 0
    with pytest.raises(ValueError, match="leave 'dataset' and 'seed' out"):
        GraphRegRunSpec("semi", "mnist5k", data_options={"seed": 3})
    with pytest.raises(ValueError, match="bad data_options"):
        GraphRegRunSpec("semi", "mnist5k", data_options={"per_clas": 10})
    with pytest.raises(ValueError, match="no data options"):
        GraphRegRunSpec("node", "cora", data_options={"k": 5})


@pytest.mark.data
def test_semi_task_builds_the_graph_once_and_draws_each_labelled_subset(data_mirror, real_data_root,
                                                                      monkeypatch) -> None:  # fmt: skip
    """The kNN graph is cached across labelled subsets; the masks are those of load_semi_supervised."""
    import functools

    from mmsheaf.data import fill_data_root
    from mmsheaf.data.semi_supervised import SemiSupervisedConfig, load_semi_supervised

    fill_data_root(data_mirror, real_data_root, only=["mnist5k"])
    monkeypatch.setattr(
        protocol, "load_semi_supervised", functools.partial(load_semi_supervised, root=real_data_root)
    )
    protocol._semi_graph.cache_clear()
    for seed, per_class in ((0, 5), (3, 5), (1, 2)):  # labelled subsets and label budgets share one graph
        options = {"per_class": per_class, "max_rows": 300}
        data, train, val, test = protocol._semi("mnist5k", seed, options)
        ref = load_semi_supervised(SemiSupervisedConfig(seed=seed, **options), root=real_data_root)
        assert torch.equal(train, ref.train_mask) and torch.equal(val, ref.val_mask)
        assert torch.equal(test, ref.test_mask) and torch.equal(data.edge_index, ref.edge_index)
    assert protocol._semi_graph.cache_info().misses == 1
    protocol._semi_graph.cache_clear()


def test_kl_penalty_is_symmetrised_over_both_directions() -> None:
    from mmsheaf.losses.distances import paired_distance

    data = planted(n=12)
    torch.manual_seed(0)
    model = RegularisedMLP(6, 2, MLP, RegConfig(kind="graph", distance="kl", alpha=1.0))
    z, logits = model(data.x)
    p = torch.softmax(logits, 1)
    u, v = data.edge_index[:, data.edge_index[0] < data.edge_index[1]]
    expected = 0.5 * (paired_distance("kl", p[u], p[v]) + paired_distance("kl", p[v], p[u])).mean()
    torch.testing.assert_close(model.penalty(data.x, z, logits, data.edge_index), expected)
    forward_only = GraphRegulariser("kl")(p, data.edge_index)
    assert not torch.allclose(forward_only, expected)


@pytest.mark.parametrize("reg", [RegConfig(kind="graph", alpha=1.0, distance="mahalanobis"),
                                 RegConfig(kind="sheaf", alpha=1.0, sheaf="gen")])  # fmt: skip
def test_every_penalty_starts_from_the_plain_mlps_weights(reg: RegConfig) -> None:
    """The penalty's parameters come from a forked generator: paired runs, same initial MLP and dropout masks."""
    torch.manual_seed(3)
    plain = RegularisedMLP(6, 2, MLP, RegConfig())
    after_plain = torch.rand(1)
    torch.manual_seed(3)
    penalised = RegularisedMLP(6, 2, MLP, reg)
    assert torch.equal(torch.rand(1), after_plain)
    for a, b in zip(plain.state_dict().items(), penalised.state_dict().items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_the_reported_epoch_is_the_models_state_after_training() -> None:
    data = planted(homophilic=False)
    torch.manual_seed(0)
    model = RegularisedMLP(6, 2, MLP, RegConfig(kind="graph", alpha=0.5))
    res = train_graphreg(model, data, data.train_mask, data.val_mask, data.test_mask,
                         GraphRegTrainConfig(epochs=60, patience=60, lr=0.05))  # fmt: skip
    assert res.best_epoch < res.epochs_run  # otherwise the test proves nothing
    model.eval()
    with torch.no_grad():
        _, logits = model(data.x)
    val = float((logits[data.val_mask].argmax(1) == data.y[data.val_mask]).float().mean())
    assert val == res.val_acc


def test_kl_symmetrisation_keeps_edge_types_and_weights() -> None:
    from mmsheaf.losses.distances import paired_distance

    data = planted(n=12)
    w = torch.rand(data.edge_index.size(1) // 2, generator=torch.Generator().manual_seed(1))
    u, v = data.edge_index[:, data.edge_index[0] < data.edge_index[1]]
    weight = torch.zeros(12, 12)
    weight[u, v] = w
    weight = weight + weight.T
    edge_weight = weight[data.edge_index[0], data.edge_index[1]]
    torch.manual_seed(0)
    model = RegularisedMLP(
        6, 2, MLP, RegConfig(kind="graph", distance="kl", alpha=1.0, weights=(1.0, 0.5, 0.25))
    )
    z, logits = model(data.x)
    p = torch.softmax(logits, 1)
    types = (~data.train_mask).long()[u] + (~data.train_mask).long()[v]
    coeff = torch.tensor([1.0, 0.5, 0.25])[types] * weight[u, v]
    expected = (coeff * 0.5 * (paired_distance("kl", p[u], p[v]) + paired_distance("kl", p[v], p[u]))).mean()
    got = model.penalty(data.x, z, logits, data.edge_index, edge_weight, data.train_mask)
    torch.testing.assert_close(got, expected)
