"""Tests of the contextual SBM (mmsheaf.data.synthetic)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch_geometric.utils import coalesce, contains_self_loops, homophily, is_undirected

from mmsheaf.data import CSBMConfig, contextual_sbm, load_node_dataset, random_split_masks
from mmsheaf.data.stats import graph_stats


@pytest.mark.parametrize("target", [0.0, 0.3, 0.7, 1.0])
def test_edge_homophily_hits_target(target: float) -> None:
    data = contextual_sbm(CSBMConfig(num_nodes=1000, mean_degree=8.0, edge_homophily=target, seed=1))
    assert data.edge_index.size(1) == 2 * 4000
    measured = homophily(data.edge_index, data.y, method="edge")
    assert abs(measured - target) < 0.03


def test_graph_is_undirected_simple_and_has_exact_edge_count() -> None:
    config = CSBMConfig(num_nodes=300, num_classes=3, mean_degree=6.0, edge_homophily=0.5)
    data = contextual_sbm(config)
    ei = data.edge_index
    assert is_undirected(ei, num_nodes=data.num_nodes)
    assert not contains_self_loops(ei)
    assert torch.equal(coalesce(ei, num_nodes=data.num_nodes), ei)  # sorted, no duplicates
    stats = graph_stats(data)
    assert stats["edges"] == config.num_edges == 900
    assert stats["mean_degree"] == pytest.approx(6.0)


def test_shapes_dtypes_and_balanced_labels() -> None:
    config = CSBMConfig(num_nodes=103, num_classes=4, num_features=7, mean_degree=3.0, num_splits=3)
    data = contextual_sbm(config)
    assert data.name == "csbm"
    assert data.x.shape == (103, 7) and data.x.dtype == torch.float32
    assert data.y.shape == (103,) and data.y.dtype == torch.long
    counts = torch.bincount(data.y, minlength=4)
    assert int(counts.max() - counts.min()) <= 1
    for key in ("train_mask", "val_mask", "test_mask"):
        assert data[key].shape == (103, 3) and data[key].dtype == torch.bool


def test_features_carry_the_class_signal() -> None:
    data = contextual_sbm(num_nodes=4000, num_classes=2, num_features=4, feature_signal=3.0, mean_degree=2.0)
    means = torch.stack([data.x[data.y == c].mean(0) for c in range(2)])
    assert torch.allclose(means.norm(dim=1), torch.full((2,), 3.0), atol=0.15)
    pure_noise = contextual_sbm(num_nodes=4000, num_classes=2, feature_signal=0.0, mean_degree=2.0)
    assert pure_noise.x[pure_noise.y == 0].mean(0).norm() < 0.2


def test_masks_disjoint_cover_and_proportions() -> None:
    data = contextual_sbm(num_nodes=500, mean_degree=4.0)
    train, val, test = data.train_mask, data.val_mask, data.test_mask
    assert train.shape == (500, 10)
    total = train.int() + val.int() + test.int()
    assert bool((total == 1).all())  # disjoint and covering, in every split
    assert train.sum(0).tolist() == [math.floor(0.48 * 500)] * 10
    assert val.sum(0).tolist() == [math.floor(0.32 * 500)] * 10
    assert test.sum(0).tolist() == [500 - 240 - 160] * 10
    assert not torch.equal(train[:, 0], train[:, 1])  # splits differ


def test_random_split_masks_rejects_empty_sets() -> None:
    with pytest.raises(ValueError, match="empty"):
        random_split_masks(3, 2, 0.1, 0.1)


def test_seeded_determinism() -> None:
    a = contextual_sbm(seed=3, num_nodes=200, mean_degree=4.0)
    b = contextual_sbm(seed=3, num_nodes=200, mean_degree=4.0)
    c = contextual_sbm(seed=4, num_nodes=200, mean_degree=4.0)
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a.x, c.x)
    assert not torch.equal(a.y, c.y)
    assert a.edge_index.shape != c.edge_index.shape or not torch.equal(a.edge_index, c.edge_index)


def test_overrides_equal_config() -> None:
    config = CSBMConfig(num_nodes=120, edge_homophily=0.9, mean_degree=2.0)
    assert torch.equal(
        contextual_sbm(config).edge_index,
        contextual_sbm(num_nodes=120, edge_homophily=0.9, mean_degree=2.0).edge_index,
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"edge_homophily": -0.1},
        {"edge_homophily": 1.5},
        {"num_classes": 1},
        {"num_nodes": 5},
        {"mean_degree": 0.0},
        {"mean_degree": 500.0},
        {"num_features": 0},
        {"feature_signal": -1.0},
        {"num_splits": 0},
        {"train_frac": 0.7, "val_frac": 0.4},
    ],
)
def test_invalid_config_raises(bad: dict) -> None:
    with pytest.raises(ValueError, match="CSBMConfig"):
        CSBMConfig(**bad)
    with pytest.raises(ValueError):
        contextual_sbm(**bad)


def test_unknown_override_and_frozen() -> None:
    with pytest.raises(ValueError, match="edge_homophily"):
        contextual_sbm(homophily=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CSBMConfig().seed = 1  # type: ignore[misc]


def test_registered_as_node_dataset(tmp_path) -> None:
    data = load_node_dataset("csbm", root=tmp_path / "nowhere", download=False)
    assert data.name == "csbm"
    assert torch.equal(data.edge_index, contextual_sbm().edge_index)
    assert data.train_mask.shape == (CSBMConfig().num_nodes, 10)
