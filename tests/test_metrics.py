"""Tests of mmsheaf.evaluation.embeddings: Reality Check retrieval metrics, k-means NMI/AMI, classification probes."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from mmsheaf.evaluation.embeddings import (
    RETRIEVAL_METRICS,
    classification_metrics,
    clustering_metrics,
    evaluate_embeddings,
    retrieval_metrics,
)


def _on_arc(degrees: list[float]) -> torch.Tensor:
    """Unit vectors at the given angles: cosine similarity decreases with the angle between them (< 180)."""
    t = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(t), torch.sin(t)], dim=1).float()


def _brute_force(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The Reality Check definitions, one query at a time."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)  # a query is not its own neighbour
    maps, rps, p1s = [], [], []
    for i in range(len(x)):
        r = int((y == y[i]).sum()) - 1
        if r == 0:
            continue
        rel = (y[np.argsort(-sim[i], kind="stable")[:r]] == y[i]).astype(float)
        precision = np.cumsum(rel) / np.arange(1, r + 1)
        maps.append((precision * rel).sum() / r)
        rps.append(rel.sum() / r)
        p1s.append(rel[0])
    means = {"map_at_r": np.mean(maps), "r_precision": np.mean(rps), "p_at_1": np.mean(p1s)}
    return {**means, "n_queries": len(maps)}


def _blobs(
    n_classes: int = 4, per_class: int = 20, dim: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    x = 5.0 * torch.eye(dim)[labels] + 0.3 * torch.randn(len(labels), dim, generator=g)
    return x, labels


# --------------------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------------------


def test_retrieval_hand_computed() -> None:
    # Six unit vectors at angles (degrees) and labels:
    #   row:   0    1    2    3    4    5
    #   angle: 0    15   35   43   75   31
    #   label: B    A    A    A    B    C      A: R = 2, B: R = 1, C occurs once (no query, still a neighbour)
    # Neighbours by angle difference, relevance of the first R:
    #   q0 (B):  1(15) 5(31) 2(35) ...  R=1: [A]      -> RP 0,   MAP 0,                     P@1 0
    #   q1 (A):  0(15) 5(16) 2(20) ...  R=2: [B, C]   -> RP 0,   MAP 0,                     P@1 0
    #   q2 (A):  5(4)  3(8)  1(20) ...  R=2: [C, A]   -> RP 1/2, MAP (1/2)(0 + 1/2) = 1/4,   P@1 0
    #   q3 (A):  2(8)  5(12) 1(28) ...  R=2: [A, C]   -> RP 1/2, MAP (1/2)(1 + 0) = 1/2,     P@1 1
    #   q4 (B):  3(32) 2(40) 5(44) ...  R=1: [A]      -> RP 0,   MAP 0,                     P@1 0
    # Means over the 5 queries: MAP@R = (1/4 + 1/2) / 5 = 3/20, R-Precision = 1/5, P@1 = 1/5.
    # (Dropping row 5 as a neighbour would give q1 [B, A], q2 [A, A], q3 [A, A]: different numbers.)
    x = _on_arc([0, 15, 35, 43, 75, 31])
    labels = torch.tensor([1, 0, 0, 0, 1, 2])
    got = retrieval_metrics(x, labels)
    assert got["n_queries"] == 5
    assert got["map_at_r"] == pytest.approx(float(Fraction(3, 20)))
    assert got["r_precision"] == pytest.approx(float(Fraction(1, 5)))
    assert got["p_at_1"] == pytest.approx(float(Fraction(1, 5)))
    assert set(got) == {*RETRIEVAL_METRICS, "n_queries"}
    assert all(isinstance(got[k], float) for k in RETRIEVAL_METRICS)


def test_retrieval_perfect_embedding() -> None:
    x, labels = _blobs()
    got = retrieval_metrics(x, labels)
    assert got == {"map_at_r": 1.0, "r_precision": 1.0, "p_at_1": 1.0, "n_queries": len(labels)}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_retrieval_matches_brute_force(seed: int, chunk_size: int) -> None:
    rng = np.random.default_rng(seed)
    n = 50
    x = rng.normal(size=(n, 5))
    y = rng.integers(0, 5, size=n)
    y[:3] = [10, 11, 12]  # singleton labels: references only
    got = retrieval_metrics(torch.tensor(x, dtype=torch.float32), torch.tensor(y), chunk_size=chunk_size)
    want = _brute_force(x, y)
    assert got["n_queries"] == want["n_queries"] == n - 3
    for key in RETRIEVAL_METRICS:
        assert got[key] == pytest.approx(want[key], abs=1e-9), key


def test_retrieval_matches_one_pml_call() -> None:
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.normal(size=(40, 6)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, size=40))
    calc = AccuracyCalculator(
        include=("mean_average_precision_at_r", "r_precision", "precision_at_1"),
        k="max_bin_count",
        knn_func=CustomKNN(CosineSimilarity()),
        device=torch.device("cpu"),
    )
    want = calc.get_accuracy(x, y, x, y, ref_includes_query=True)
    got = retrieval_metrics(x, y, chunk_size=9)
    assert got["map_at_r"] == pytest.approx(want["mean_average_precision_at_r"])
    assert got["r_precision"] == pytest.approx(want["r_precision"])
    assert got["p_at_1"] == pytest.approx(want["precision_at_1"])


def test_retrieval_without_queries_is_an_error() -> None:
    with pytest.raises(ValueError, match="every label occurs once"):
        retrieval_metrics(torch.randn(4, 3), torch.arange(4))
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        retrieval_metrics(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))


# --------------------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------------------


def test_clustering_perfect_and_permuted() -> None:
    x, labels = _blobs()
    assert clustering_metrics(x, labels) == pytest.approx({"nmi": 1.0, "ami": 1.0})
    permuted = torch.tensor([7, 3, 0, 5])[labels]  # other label ids, same partition
    assert clustering_metrics(x, permuted) == pytest.approx({"nmi": 1.0, "ami": 1.0})


def test_clustering_of_unrelated_labels_is_low() -> None:
    x, labels = _blobs()
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    got = clustering_metrics(x, shuffled)
    assert got["ami"] < 0.2 and got["nmi"] < 0.3
    with pytest.raises(ValueError, match="n_clusters must lie in 1..80"):
        clustering_metrics(x, labels, n_clusters=81)


# --------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["knn", "linear"])
def test_classification_separable(method: str) -> None:
    train_x, train_y = _blobs(seed=0)
    test_x, test_y = _blobs(per_class=5, seed=1)
    got = classification_metrics(train_x, train_y, test_x, test_y, method=method)
    assert got == {"accuracy": 1.0, "macro_f1": 1.0}


def test_macro_f1_hand_computed() -> None:
    # 1-NN on three training rows e0 (label 0), e1 (label 1), e2 (label 2); test truth [0, 1, 1, 0] and
    # predictions [0, 0, 1, 2]. Class 0: TP 1, FP 1, FN 1 -> F1 1/2; class 1: TP 1, FP 0, FN 1 ->
    # P 1, R 1/2, F1 2/3; class 2 is not a test label, so it does not count (it would add an F1 of 0).
    # Macro-F1 = (1/2 + 2/3) / 2 = 7/12, accuracy 2/4.
    train_x = torch.eye(3)
    train_y = torch.tensor([0, 1, 2])
    test_x = torch.tensor([[1.0, 0.1, 0.0], [1.0, 0.0, 0.2], [0.1, 1.0, 0.0], [0.0, 0.2, 1.0]])
    test_y = torch.tensor([0, 1, 1, 0])
    got = classification_metrics(train_x, train_y, test_x, test_y, k=1)
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["macro_f1"] == pytest.approx(float(Fraction(7, 12)))


def test_knn_majority_and_ties() -> None:
    train_x = _on_arc([0, 80, 85])
    train_y = torch.tensor([0, 1, 1])
    test_x = _on_arc([10, 30, 60])
    # k=3: two votes for 1 beat the nearest neighbour's 0
    got = classification_metrics(train_x, train_y, test_x, torch.tensor([1, 1, 1]), k=3)
    assert got["accuracy"] == 1.0
    # k=2 on rows {0 (0 deg), 1 (80 deg)}: a 1-1 tie goes to the most similar neighbour's class
    got = classification_metrics(train_x[:2], train_y[:2], test_x, torch.tensor([0, 0, 1]), k=2)
    assert got["accuracy"] == 1.0
    # k larger than the training set: all of it votes
    got = classification_metrics(train_x, train_y, test_x, torch.tensor([1, 1, 1]), k=50)
    assert got["accuracy"] == 1.0


def test_classification_bad_input() -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match="Unknown classification method 'svm': choose one of knn, linear"):
        classification_metrics(x, y, x, y, method="svm")
    with pytest.raises(ValueError, match="same size D"):
        classification_metrics(x, y, x[:, :4], y)


def test_evaluate_embeddings_keys() -> None:
    train_x, train_y = _blobs(seed=0)
    test_x, test_y = _blobs(per_class=5, seed=1)
    got = evaluate_embeddings(test_x, test_y, train_x, train_y)
    assert set(got) == {*RETRIEVAL_METRICS, "n_queries", "nmi", "ami", "accuracy", "macro_f1"}
    assert set(evaluate_embeddings(test_x, test_y)) == {*RETRIEVAL_METRICS, "n_queries", "nmi", "ami"}


def test_query_mask_averages_over_the_chosen_queries_only() -> None:
    import torch

    from mmsheaf.evaluation.embeddings import retrieval_metrics

    g = torch.Generator().manual_seed(3)
    emb, labels = torch.randn(40, 4, generator=g), torch.randint(4, (40,), generator=g)
    mask = torch.zeros(40, dtype=torch.bool)
    mask[::3] = True
    subset = retrieval_metrics(emb, labels, query_mask=mask)
    singles = [retrieval_metrics(emb, labels, query_mask=torch.arange(40) == i)["map_at_r"] for i in range(0, 40, 3)]
    assert subset["n_queries"] == len(singles)
    assert abs(subset["map_at_r"] - sum(singles) / len(singles)) < 1e-9
    full = retrieval_metrics(emb, labels)
    assert subset["map_at_r"] != full["map_at_r"]
