"""Tests of the kNN similarity graphs and the semi-supervised image graph (mmsheaf.data.semi_supervised)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmsheaf.data import (
    METRICS,
    ImageSplits,
    SemiSupervisedConfig,
    fill_data_root,
    knn_graph,
    labelled_subset,
    load_semi_supervised,
)
from mmsheaf.data import semi_supervised as knn_module
from torch import Tensor
from torch_geometric.utils import coalesce

# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def _edge_set(edge_index: Tensor) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in edge_index.t()}


def _undirected(pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    return {(i, j) for i, j in pairs} | {(j, i) for i, j in pairs}


def _dense(edge_index: Tensor, edge_weight: Tensor, n: int) -> Tensor:
    dense = torch.zeros(n, n, dtype=edge_weight.dtype)
    dense[edge_index[0], edge_index[1]] = edge_weight
    return dense


def _brute_force_knn(x: Tensor, k: int, metric: str) -> list[set[int]]:
    """Each row's k nearest other rows by a full sort (continuous random data: no ties)."""
    if metric == "cosine":
        dissimilarity = -F.normalize(x.double(), dim=1) @ F.normalize(x.double(), dim=1).t()
    else:
        dissimilarity = torch.cdist(x.double(), x.double())
    dissimilarity.fill_diagonal_(math.inf)
    return [set(row.tolist()) for row in dissimilarity.argsort(dim=1)[:, :k]]


def _random_points(n: int = 57, d: int = 6, seed: int = 0) -> Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------------------
# knn_graph: neighbours
# ------------------------------------------------------------------------------------------------------------


def test_points_on_a_line_get_their_hand_expected_neighbours() -> None:
    x = torch.arange(10.0).unsqueeze(1)
    edge_index, _ = knn_graph(x, 2, metric="euclidean")
    # k=2: every inner point takes its two adjacent points; the ends take the next two points inwards.
    expected = _undirected([(i, i + 1) for i in range(9)] + [(0, 2), (7, 9)])
    assert _edge_set(edge_index) == expected
    edge_index, _ = knn_graph(x, 3, metric="euclidean")
    expected = _undirected([(i, i + 1) for i in range(9)] + [(i, i + 2) for i in range(8)] + [(0, 3), (6, 9)])
    assert _edge_set(edge_index) == expected


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_ties_go_to_the_lower_row_index(metric: str) -> None:
    if metric == "euclidean":
        # Node 0 at 0 is equally far (2) from node 1 at 2 and node 2 at -2; every other node has a unique nearest.
        x = torch.tensor([[0.0], [2.0], [-2.0], [3.0], [-3.0]])
    else:
        # Node 0 along (1, 1) has equal cosine with node 1 (1, 0.2) and node 2 (0.2, 1).
        x = torch.tensor([[1.0, 1.0], [1.0, 0.2], [0.2, 1.0], [1.0, 0.0], [0.0, 1.0]])
    edge_index, _ = knn_graph(x, 1, metric=metric)
    assert _edge_set(edge_index) == _undirected([(0, 1), (1, 3), (2, 4)])  # not (0, 2)
    again, _ = knn_graph(x, 1, metric=metric)
    assert torch.equal(edge_index, again)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_two_separated_clusters_have_no_edge_between_them(metric: str) -> None:
    noise = 0.1 * _random_points(16, 4, seed=1)
    centres = torch.zeros(16, 4)
    centres[:8, 0], centres[8:, 1] = 10.0, 10.0  # orthogonal directions, far apart: both metrics separate
    edge_index, _ = knn_graph(centres + noise, 5, metric=metric)
    cluster = torch.arange(16) >= 8
    assert torch.equal(cluster[edge_index[0]], cluster[edge_index[1]])
    assert edge_index.shape[1] >= 16 * 5


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("k", [1, 4, 56])
def test_graph_is_the_symmetrised_brute_force_knn(metric: str, k: int) -> None:
    x = _random_points()
    n = x.shape[0]
    edge_index, edge_weight = knn_graph(x, k, metric=metric, chunk_size=10)
    # Sorted, without duplicates and without self-loops: coalesce leaves it unchanged.
    assert edge_index.dtype == torch.long and edge_index.shape[0] == 2
    assert torch.equal(coalesce(edge_index, num_nodes=n), edge_index)
    assert not bool((edge_index[0] == edge_index[1]).any())
    edges = _edge_set(edge_index)
    assert len(edges) == edge_index.shape[1]
    assert all((j, i) in edges for i, j in edges)
    # Exactly the union of the directed kNN relation and its reverse.
    neighbours = _brute_force_knn(x, k, metric)
    assert edges == _undirected([(i, j) for i in range(n) for j in neighbours[i]])
    degree = torch.bincount(edge_index[0], minlength=n)
    assert int(degree.min()) >= k and n * k <= edge_index.shape[1] <= 2 * n * k
    dense = _dense(edge_index, edge_weight, n)
    assert torch.equal(dense, dense.t())  # the same weight in both directions, bit for bit


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_chunk_size_does_not_change_the_graph(metric: str) -> None:
    x = _random_points(n=41)
    reference = knn_graph(x, 5, metric=metric, chunk_size=1024)
    for chunk_size in (1, 3, 16, 40, 41):
        edge_index, edge_weight = knn_graph(x, 5, metric=metric, chunk_size=chunk_size)
        assert torch.equal(edge_index, reference[0]) and torch.equal(edge_weight, reference[1]), chunk_size


def test_graph_of_features_that_require_grad() -> None:
    x = _random_points().requires_grad_()
    edge_index, edge_weight = knn_graph(x, 3)
    assert not edge_weight.requires_grad
    assert torch.equal(edge_index, knn_graph(x.detach().clone(), 3)[0])


# ------------------------------------------------------------------------------------------------------------
# knn_graph: weights
# ------------------------------------------------------------------------------------------------------------


def test_cosine_weights_on_a_hand_example() -> None:
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    edge_index, edge_weight = knn_graph(x, 1, metric="cosine")
    assert edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert torch.allclose(edge_weight, torch.full((4,), 1.0 / math.sqrt(2.0)))


def test_cosine_weights_are_the_clamped_cosine() -> None:
    x = _random_points()  # centred: about half of all pairs have a negative cosine
    edge_index, edge_weight = knn_graph(x, x.shape[0] - 1, metric="cosine")
    cosine = F.cosine_similarity(x[edge_index[0]], x[edge_index[1]], dim=1)
    assert bool((cosine < 0).any())
    assert float(edge_weight.min()) >= 0.0 and float(edge_weight.max()) <= 1.0
    assert torch.allclose(edge_weight, cosine.clamp_min(0.0), atol=1e-6)
    assert bool((edge_weight[cosine < -1e-6] == 0).all())


def test_euclidean_weights_are_the_gaussian_kernel_of_the_median_kth_distance() -> None:
    x = _random_points()
    k = 4
    edge_index, edge_weight = knn_graph(x, k, metric="euclidean")
    distances = torch.cdist(x.double(), x.double()).fill_diagonal_(math.inf)
    kth = distances.sort(dim=1).values[:, k - 1]
    sigma = kth.median()
    d = distances[edge_index[0], edge_index[1]]
    assert torch.allclose(edge_weight.double(), torch.exp(-(d**2) / sigma**2), atol=1e-6)
    assert float(edge_weight.min()) > 0.0 and float(edge_weight.max()) <= 1.0
    # On the line 0..9 with k=3, sigma is 2: adjacent points weigh exp(-1/4).
    edge_index, edge_weight = knn_graph(torch.arange(10.0).unsqueeze(1), 3, metric="euclidean")
    adjacent = (edge_index[0] - edge_index[1]).abs() == 1
    assert torch.allclose(edge_weight[adjacent], torch.tensor(math.exp(-0.25)))


def test_euclidean_weights_stay_positive_for_a_far_outlier() -> None:
    x = torch.cat([_random_points(20, 3), torch.full((1, 3), 1e4)])
    edge_index, edge_weight = knn_graph(x, 3, metric="euclidean")
    assert float(edge_weight.min()) > 0.0 and float(edge_weight.max()) <= 1.0
    assert int((edge_index[0] == 20).sum()) == 3


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (torch.zeros(5, 2), {"k": 2, "metric": "manhattan"}, "choose one of cosine, euclidean"),
        (torch.zeros(5, 2), {"k": 5}, "1 <= k <= N - 1 = 4"),
        (torch.zeros(5, 2), {"k": 0}, "1 <= k <= N - 1"),
        (torch.zeros(5, 2), {"k": 2, "chunk_size": 0}, "chunk_size must be"),
        (torch.zeros(5, 2, 2), {"k": 2}, "flatten"),
        (torch.tensor([[0.0], [1.0], [math.nan]]), {"k": 1}, "NaN or infinite"),
        (torch.zeros(5, 2), {"k": 2, "metric": "euclidean"}, "median distance to the k-th"),
    ],
)
def test_knn_graph_rejects_bad_input(x: Tensor, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        knn_graph(x, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# labelled_subset
# ------------------------------------------------------------------------------------------------------------


def _class_labels(seed: int = 0) -> Tensor:
    labels = torch.arange(4).repeat_interleave(torch.tensor([30, 12, 25, 8]))
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))]


def test_labelled_subset_draws_per_class_rows_of_every_class() -> None:
    labels = _class_labels()
    mask = labelled_subset(labels, 5, seed=0)
    assert mask.dtype == torch.bool and mask.shape == labels.shape
    assert torch.bincount(labels[mask], minlength=4).tolist() == [5, 5, 5, 5]


def test_labelled_subset_only_among_candidates() -> None:
    labels = _class_labels()
    candidates = torch.arange(20, labels.numel())  # per class: 23, 9, 20 and 3 candidates
    counts = torch.bincount(labels[candidates], minlength=4)
    per_class = int(counts.min())
    for seed in range(5):
        mask = labelled_subset(labels, per_class, seed=seed, candidates=candidates)
        assert set(mask.nonzero().flatten().tolist()) <= set(candidates.tolist())
        assert torch.bincount(labels[mask], minlength=4).tolist() == [per_class] * 4
        assert bool(mask[candidates[labels[candidates] == int(counts.argmin())]].all())  # all of the smallest
    # The order in which the candidates are passed does not matter.
    shuffled = candidates[torch.randperm(candidates.numel(), generator=torch.Generator().manual_seed(1))]
    assert torch.equal(
        labelled_subset(labels, per_class, seed=3, candidates=candidates),
        labelled_subset(labels, per_class, seed=3, candidates=shuffled),
    )


def test_labelled_subset_is_seeded_and_uniform() -> None:
    labels = _class_labels()
    first = labelled_subset(labels, 3, seed=7)
    assert torch.equal(first, labelled_subset(labels, 3, seed=7))
    assert not torch.equal(first, labelled_subset(labels, 3, seed=8))
    # Uniform: over many seeds every row of the smallest class (8 rows, 3 drawn) is picked ~3/8 of the time.
    hits = torch.stack([labelled_subset(labels, 3, seed=s) for s in range(400)]).float().mean(dim=0)
    smallest = labels == 3
    assert torch.allclose(hits[smallest], torch.full((8,), 3 / 8), atol=0.1)


def test_labelled_subset_errors() -> None:
    labels = _class_labels()
    with pytest.raises(ValueError, match=r"fewer candidates \(class: count\) 3: 8"):
        labelled_subset(labels, 9, seed=0)
    only_class_0 = (labels == 0).nonzero().flatten()
    with pytest.raises(ValueError, match="1: 0, 2: 0, 3: 0"):
        labelled_subset(labels, 1, seed=0, candidates=only_class_0)
    with pytest.raises(ValueError, match="per_class must be"):
        labelled_subset(labels, 0, seed=0)
    with pytest.raises(ValueError, match="row indices in 0 .. 74"):
        labelled_subset(labels, 1, seed=0, candidates=torch.tensor([0, 75]))


# ------------------------------------------------------------------------------------------------------------
# SemiSupervisedConfig and load_semi_supervised (scikit-learn's digits: no files)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("dataset", "cifar", "dataset must be one of mnist5k, digits"),
        ("per_class", 0, "per_class must be >= 1"),
        ("k", 0, "k must be >= 1"),
        ("metric", "l1", "metric must be one of cosine, euclidean"),
        ("seed", -1, "seed must be >= 0"),
        ("split_seed", -1, "split_seed must be >= 0"),
        ("max_rows", 0, "max_rows must be a positive"),
    ],
)
def test_config_is_validated(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=f"SemiSupervisedConfig: {match}"):
        SemiSupervisedConfig(**{field: value})


def _check_masks(data, per_class: int) -> None:
    masks = torch.stack([data.train_mask, data.unlabelled_mask, data.val_mask, data.test_mask])
    assert masks.dtype == torch.bool and torch.equal(masks.sum(dim=0), torch.ones(data.num_nodes).long())
    assert (
        torch.bincount(data.y[data.train_mask], minlength=data.num_classes).tolist()
        == [per_class] * data.num_classes
    )
    # Node order: training rows (labelled and unlabelled), then validation, then test rows.
    train_rows = (data.train_mask | data.unlabelled_mask).nonzero().flatten()
    num_train, num_val = train_rows.numel(), int(data.val_mask.sum())
    assert torch.equal(train_rows, torch.arange(num_train))
    assert torch.equal(data.val_mask.nonzero().flatten(), torch.arange(num_train, num_train + num_val))


def test_load_semi_supervised_on_digits_ignores_held_out_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = SemiSupervisedConfig(dataset="digits", per_class=5, k=6, max_rows=300)
    data = load_semi_supervised(cfg)
    assert data.x.shape == (300, 784) and data.y.shape == (300,) and data.labelled_per_class == 5
    assert data.num_classes == 10 and data.edge_weight.shape == (data.edge_index.shape[1],)
    _check_masks(data, 5)
    assert torch.equal(data.edge_index, knn_graph(data.x, 6)[0])  # a function of the pixels alone

    real_load_images = knn_module.load_images
    relabelled: list[str] = []

    def load_relabelled(*args, **kwargs) -> ImageSplits:
        splits = real_load_images(*args, **kwargs)
        g = torch.Generator().manual_seed(123)
        changed = {}
        for split in relabelled:
            y = getattr(splits, f"{split}_y")
            changed[f"{split}_y"] = (
                y + torch.randint(1, 10, y.shape, generator=g)
            ) % 10  # every label changes
        return dataclasses.replace(splits, **changed)

    monkeypatch.setattr(knn_module, "load_images", load_relabelled)
    graph_fields = ("x", "edge_index", "edge_weight", "val_mask", "test_mask")
    relabelled[:] = ["val", "test"]
    other = load_semi_supervised(cfg)
    held_out = other.val_mask | other.test_mask
    assert bool((other.y[held_out] != data.y[held_out]).all())  # every validation and test label changed ...
    for name in (*graph_fields, "train_mask", "unlabelled_mask"):
        assert torch.equal(getattr(other, name), getattr(data, name)), name  # ... and nothing else did
    relabelled[:] = ["train", "val", "test"]
    other = load_semi_supervised(cfg)
    assert bool((other.y != data.y).all())
    for name in graph_fields:  # with the training labels changed too only the labelled subset may move
        assert torch.equal(getattr(other, name), getattr(data, name)), name
    _check_masks(other, 5)


# ------------------------------------------------------------------------------------------------------------
# MNIST-5k (copied from the mirror into a temporary data root)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.data
def test_real_mnist5k_semi_supervised_graph(data_mirror: Path, real_data_root: Path) -> None:
    fill_data_root(data_mirror, real_data_root, only=["mnist5k"])
    cfg = SemiSupervisedConfig(per_class=10, k=10, metric="cosine", max_rows=500)
    data = load_semi_supervised(cfg, root=real_data_root)
    assert data.x.shape == (500, 784) and float(data.x.min()) >= 0.0 and float(data.x.max()) <= 1.0
    assert int(data.val_mask.sum()) == 50 and int(data.test_mask.sum()) == 100
    _check_masks(data, 10)
    assert int(data.unlabelled_mask.sum()) == 350 - 100
    assert int(torch.bincount(data.edge_index[0], minlength=500).min()) >= 10
    homophily = float((data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).float().mean())
    # Chance is about 0.1. Measured: 0.66 on these 500 images (50 per class), 0.88 on all 5,000 (k=10, cosine).
    assert homophily > 0.6, homophily
