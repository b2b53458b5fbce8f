"""Tests of the node-classification training loop (mmsheaf.nsd.train)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from mmsheaf.data import CSBMConfig, contextual_sbm
from mmsheaf.nsd.registry import build_node_model
from mmsheaf.nsd.train import (
    TrainConfig,
    TrainResult,
    make_optimizer,
    set_seed,
    split_masks,
    train_node_classifier,
)


@pytest.fixture(scope="module")
def easy():
    """300 nodes, 3 classes, homophilous edges and informative features: both MLP and GCN can learn it."""
    return contextual_sbm(
        CSBMConfig(num_nodes=300, num_classes=3, edge_homophily=0.9, mean_degree=5.0, num_features=16,
                   feature_signal=2.5, num_splits=3, seed=0)
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    return contextual_sbm(
        CSBMConfig(num_nodes=40, num_classes=3, mean_degree=3.0, num_features=6, num_splits=2)
    )


FAST = TrainConfig(lr=0.01, weight_decay=5e-4, epochs=150, patience=50, seed=0)


@pytest.mark.parametrize("name", ["mlp", "gcn"])
def test_learns_an_easy_csbm_well_above_chance(name: str, easy) -> None:
    result = train_node_classifier(name, easy, split=0, model_hparams={"hidden_channels": 16}, cfg=FAST)
    assert result.test_acc > 0.6  # chance is 1/3
    assert 1 <= result.best_epoch <= result.epochs_run <= FAST.epochs
    assert result.seconds > 0 and result.ms_per_epoch == pytest.approx(
        1000 * result.seconds / result.epochs_run
    )
    assert all(0.0 <= a <= 1.0 for a in (result.train_acc, result.val_acc, result.test_acc))


def test_early_stopping_stops_after_patience(tiny) -> None:
    cfg = TrainConfig(lr=0.05, epochs=500, patience=3, seed=0)
    result = train_node_classifier("gcn", tiny, 0, {"hidden_channels": 8}, cfg)
    assert result.epochs_run < cfg.epochs
    assert result.epochs_run == result.best_epoch + cfg.patience


def test_no_early_stopping_when_patience_exceeds_epochs(tiny) -> None:
    cfg = TrainConfig(epochs=12, patience=100, seed=0)
    assert train_node_classifier("mlp", tiny, 0, {}, cfg).epochs_run == 12


@pytest.mark.parametrize("stop_strategy", ["loss", "acc"])
def test_same_seed_same_result(stop_strategy: str, tiny) -> None:
    cfg = TrainConfig(epochs=30, patience=10, seed=5, stop_strategy=stop_strategy)
    a = train_node_classifier("gat", tiny, 1, {"hidden_channels": 4, "heads": 2}, cfg)
    b = train_node_classifier("gat", tiny, 1, {"hidden_channels": 4, "heads": 2}, cfg)
    timing = {"seconds", "ms_per_epoch"}
    strip = lambda r: {k: v for k, v in dataclasses.asdict(r).items() if k not in timing}
    assert strip(a) == strip(b)


def test_a_given_module_is_trained_in_place(tiny) -> None:
    torch.manual_seed(0)
    model = build_node_model("gcn", 6, 3, hidden_channels=8)
    before = [p.detach().clone() for p in model.parameters()]
    result = train_node_classifier(model, tiny, 0, None, TrainConfig(epochs=5, seed=0))
    assert isinstance(result, TrainResult) and result.epochs_run == 5
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="model_hparams"):
        train_node_classifier(model, tiny, 0, {"layers": 3}, TrainConfig(epochs=1))


class _ToySheafModel(nn.Module):
    """A stand-in with a restriction-map learner under an attribute named like NSD's."""

    def __init__(self) -> None:
        super().__init__()
        self.sheaf_learners = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 2)])
        self.lin = nn.Linear(4, 3)
        self.frozen = nn.Parameter(torch.zeros(1), requires_grad=False)


def test_sheaf_decay_makes_a_separate_param_group() -> None:
    model = _ToySheafModel()
    opt = make_optimizer(model, TrainConfig(lr=0.1, weight_decay=1e-3, sheaf_decay=0.5))
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"sheaf_learner", "other"}
    assert groups["sheaf_learner"]["weight_decay"] == 0.5 and groups["other"]["weight_decay"] == 1e-3
    sheaf_ids = {id(p) for p in model.sheaf_learners.parameters()}
    assert {id(p) for p in groups["sheaf_learner"]["params"]} == sheaf_ids
    assert {id(p) for p in groups["other"]["params"]} == {id(p) for p in model.lin.parameters()}
    assert all(g["lr"] == 0.1 for g in opt.param_groups)

    single = make_optimizer(model, TrainConfig(weight_decay=1e-3))  # sheaf_decay=None: same decay for all
    assert len(single.param_groups) == 1 and single.param_groups[0]["weight_decay"] == 1e-3
    assert len(single.param_groups[0]["params"]) == 6  # the frozen parameter is left out
    baseline = make_optimizer(build_node_model("gcn", 4, 3), TrainConfig(sheaf_decay=0.5))
    assert len(baseline.param_groups) == 1  # no sheaf learner: nothing to separate


def test_set_seed_is_reproducible() -> None:
    set_seed(11)
    a = torch.rand(5)
    set_seed(11)
    assert torch.equal(a, torch.rand(5))


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": 0.0}, {"weight_decay": -1.0}, {"epochs": 0}, {"patience": 0}, {"stop_strategy": "f1"},
     {"sheaf_decay": -0.1}],
)  # fmt: skip
def test_train_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TrainConfig(**kwargs)


def test_train_config_canonicalises_numbers() -> None:
    assert TrainConfig(lr=1) == TrainConfig(lr=1.0) and isinstance(TrainConfig(lr=1).lr, float)


def test_split_out_of_range_and_missing_masks(tiny) -> None:
    with pytest.raises(ValueError, match=r"split must lie in \[0, 1\]"):
        split_masks(tiny, 2)
    bare = tiny.clone()
    del bare.val_mask
    with pytest.raises(ValueError, match="val_mask"):
        train_node_classifier("mlp", bare, 0, {}, TrainConfig(epochs=1))
    train, val, test = split_masks(tiny, 1)
    assert not (train & val).any() and not (val & test).any() and bool((train | val | test).all())


def test_unknown_model_name_raises(tiny) -> None:
    with pytest.raises(ValueError, match="choose among"):
        train_node_classifier("transformer", tiny, 0, {}, TrainConfig(epochs=1))


def test_diag_nsd_trains_if_available(tiny) -> None:
    pytest.importorskip("mmsheaf.sheaf.models")
    model = build_node_model("diag-nsd", 6, 3, d=2, layers=2, hidden_channels=4)
    assert any("sheaf_learner" in n for n, _ in model.named_parameters())
    result = train_node_classifier("diag-nsd", tiny, 0, {"d": 2, "layers": 2, "hidden_channels": 4},
                                   TrainConfig(epochs=3, sheaf_decay=1e-3, seed=0))  # fmt: skip
    assert result.epochs_run == 3 and 0.0 <= result.test_acc <= 1.0
