"""Tests of mmsheaf.evaluation.cross: Recall@K and MAP@R from one set of embeddings into another."""

from __future__ import annotations

import pytest
import torch

from mmsheaf.evaluation.cross import cross_retrieval_metrics
from mmsheaf.evaluation.embeddings import retrieval_metrics


def test_hand_computed_cross_set_case() -> None:
    # unit vectors at angles (degrees): queries 0 (class 0) and 95 (class 1); database 10 (c1), 80 (c0),
    # 100 (c1), 170 (c0); cosine order = angular distance order
    angle = torch.tensor([0.0, 95.0, 10.0, 80.0, 100.0, 170.0]).deg2rad()
    points = torch.stack([angle.cos(), angle.sin()], dim=1)
    q_labels, db_labels = torch.tensor([0, 1]), torch.tensor([1, 0, 1, 0])
    out = cross_retrieval_metrics(points[:2], q_labels, points[2:], db_labels, ks=(1, 2))
    # query 0: neighbours 10 (c1), 80 (c0), 100, 170: R@1 = 0, R@2 = 1; R = 2, MAP@R = (0 + 1/2) / 2 = 0.25
    # query 1: neighbours 100 (c1), 80 (c0), 170, 10: R@1 = 1, R@2 = 1; MAP@R = (1 + 0) / 2 = 0.5
    assert out["n_queries"] == 2
    assert out["r@1"] == pytest.approx(0.5) and out["r@2"] == pytest.approx(1.0)
    assert out["map_at_r"] == pytest.approx((0.25 + 0.5) / 2)


def test_within_one_set_it_agrees_with_pytorch_metric_learning() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g)
    y = torch.randint(0, 7, (300,), generator=g)
    ours = cross_retrieval_metrics(x, y, x, y, ks=(1,), same_rows=True, chunk_size=64)
    ref = retrieval_metrics(x, y)
    assert ours["map_at_r"] == pytest.approx(ref["map_at_r"], abs=1e-6)
    assert ours["r@1"] == pytest.approx(ref["p_at_1"], abs=1e-6)
    assert ours["n_queries"] == ref["n_queries"]


def test_the_paired_item_counts_across_modalities_but_self_never_within_one() -> None:
    x = torch.eye(3)
    y = torch.tensor([0, 1, 2])  # every class once: only the item itself is relevant
    assert cross_retrieval_metrics(x, y, x, y, ks=(1,))["r@1"] == 1.0  # the paired row is found
    with pytest.raises(ValueError, match="no query has a relevant"):
        cross_retrieval_metrics(x, y, x, y, ks=(1,), same_rows=True)


def test_bad_arguments_say_what_to_do() -> None:
    x = torch.randn(4, 3)
    y = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="same_rows needs"):
        cross_retrieval_metrics(x, y, x[:3], y[:3], same_rows=True)
    with pytest.raises(ValueError, match=r"\(Q, D\) and \(M, D\)"):
        cross_retrieval_metrics(x, y, torch.randn(4, 2), y)
    with pytest.raises(ValueError, match="ks must be positive"):
        cross_retrieval_metrics(x, y, x, y, ks=(0,))
