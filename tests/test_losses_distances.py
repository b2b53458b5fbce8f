"""Tests of mmsheaf.losses.distances: the paired distances on hand-computed values, the pairwise (retrieval)
form against the paired one, the learned and class-pooled Mahalanobis matrices, gradients and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmsheaf.losses import (
    PAIRED_DISTANCES,
    PROBABILITY_DISTANCES,
    LearnedMahalanobis,
    class_pooled_precision,
    cosine,
    hist_intersection,
    histogram,
    js,
    kl,
    l1,
    mahalanobis,
    paired_distance,
    pairwise_distance,
    sq_l2,
)
from mmsheaf.losses import distances as distances_module
from torch import Tensor

F64 = torch.float64
NAMES = ["sq_l2", "l1", "cosine", "mahalanobis", "hist_intersection", "kl", "js"]
RETRIEVAL = ["sq_l2", "l1", "cosine", "mahalanobis", "hist_intersection"]


def _t(rows: list[list[float]]) -> Tensor:
    return torch.tensor(rows, dtype=F64)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _singular_psd(d: int, rank: int, seed: int = 5) -> Tensor:
    a = _randn(d, rank, seed=seed)
    return a @ a.T


def _kwargs(name: str, d: int) -> dict[str, Tensor]:
    return {"matrix": _singular_psd(d, max(1, d - 2))} if name == "mahalanobis" else {}


# ---------------------------------------------------------------------------------------------- registry


def test_registry() -> None:
    assert list(PAIRED_DISTANCES) == NAMES
    assert PROBABILITY_DISTANCES == ("kl", "js")
    expected = [sq_l2, l1, cosine, mahalanobis, hist_intersection, kl, js]
    assert [PAIRED_DISTANCES[n] for n in NAMES] == expected


# ---------------------------------------------------------------------------------------------- hand values


def test_orthogonal_unit_vectors() -> None:
    a, b = _t([[1.0, 0.0, 0.0]]), _t([[0.0, 1.0, 0.0]])
    assert sq_l2(a, b).tolist() == [2.0]
    assert l1(a, b).tolist() == [2.0]
    assert cosine(a, b).tolist() == pytest.approx([1.0])
    assert hist_intersection(a, b).tolist() == pytest.approx([1.0])  # disjoint histograms
    assert cosine(a, -a).tolist() == pytest.approx([2.0])


def test_equal_rows_are_at_distance_zero() -> None:
    a = _t([[3.0, 4.0]])
    for name in NAMES:
        if name in PROBABILITY_DISTANCES:
            continue
        kwargs = {"matrix": _t([[2.0, 1.0], [1.0, 1.0]])} if name == "mahalanobis" else {}
        assert paired_distance(name, a, a.clone(), **kwargs).tolist() == pytest.approx([0.0], abs=1e-12), name
    p = _t([[0.2, 0.3, 0.5]])
    assert kl(p, p.clone()).tolist() == pytest.approx([0.0], abs=1e-15)
    assert js(p, p.clone()).tolist() == pytest.approx([0.0], abs=1e-15)


def test_batched_rows_are_independent() -> None:
    a = _t([[1.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    b = _t([[0.0, 1.0, 0.0], [3.0, 4.0, 0.0]])
    assert sq_l2(a, b).tolist() == [2.0, 0.0]
    assert l1(a, b).tolist() == [2.0, 0.0]
    assert cosine(a, b).tolist() == pytest.approx([1.0, 0.0])


def test_mahalanobis_hand_values() -> None:
    a, b = _t([[2.0, 3.0]]), _t([[1.0, 2.0]])  # a - b = [1, 1]
    assert mahalanobis(a, b, torch.diag(_t([[2.0, 1.0]])[0])).tolist() == pytest.approx([3.0])
    assert mahalanobis(a, b, _t([[2.0, 1.0], [1.0, 1.0]])).tolist() == pytest.approx([5.0])  # 2 + 1 + 1 + 1
    eye = torch.eye(2, dtype=F64)
    assert paired_distance("mahalanobis", a, b, matrix=eye).tolist() == pytest.approx([2.0])


def test_mahalanobis_with_identity_is_sq_l2() -> None:
    a, b = _randn(6, 5, seed=1), _randn(6, 5, seed=2)
    torch.testing.assert_close(mahalanobis(a, b, torch.eye(5, dtype=F64)), sq_l2(a, b))


def test_histogram_and_intersection_hand_values() -> None:
    a, b = _t([[1.0, 1.0]]), _t([[1.0, 3.0]])
    torch.testing.assert_close(histogram(torch.cat([a, b])), _t([[0.5, 0.5], [0.25, 0.75]]))
    assert hist_intersection(a, b).tolist() == pytest.approx([0.25])  # 1 - (0.25 + 0.5)
    assert hist_intersection(2 * a, b).tolist() == pytest.approx([0.25])  # scale-free
    negative = _t([[1.0, -5.0]])  # relu: the same histogram as [2, 0]
    assert hist_intersection(negative, _t([[2.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-9)


def test_zero_rows_are_zero_histograms_at_distance_one() -> None:
    zero = _t([[0.0, 0.0, 0.0], [-1.0, -2.0, 0.0]])
    assert histogram(zero).abs().sum().item() == 0.0
    other = _t([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    assert hist_intersection(zero, other).tolist() == pytest.approx([1.0, 1.0])
    assert pairwise_distance("hist_intersection", zero, other).flatten().tolist() == pytest.approx([1.0] * 4)


def test_cosine_of_a_zero_row_is_one() -> None:
    zero, b = _t([[0.0, 0.0]]), _t([[1.0, 2.0]])
    assert cosine(zero, b).tolist() == pytest.approx([1.0])
    assert pairwise_distance("cosine", zero, b).item() == pytest.approx(1.0)


def test_kl_hand_value() -> None:
    p, q = _t([[0.5, 0.5]]), _t([[0.25, 0.75]])
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert kl(p, q).tolist() == pytest.approx([expected], rel=1e-12)
    reverse = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert kl(q, p).tolist() == pytest.approx([reverse], rel=1e-12)  # not symmetric
    assert expected != pytest.approx(reverse)


def test_kl_zero_entries_are_finite() -> None:
    p, q = _t([[1.0, 0.0]]), _t([[0.5, 0.5]])
    assert kl(p, q).tolist() == pytest.approx([math.log(2.0)])  # 0 log 0 = 0
    assert torch.isfinite(kl(q, p)).all()  # log 0 clamped at log 1e-12
    assert kl(q, p).item() == pytest.approx(0.5 * math.log(0.5) + 0.5 * (math.log(0.5) - math.log(1e-12)))


def test_js_hand_value_symmetry_and_bounds() -> None:
    p, q = _t([[0.5, 0.5]]), _t([[0.25, 0.75]])
    expected = 0.5 * (0.5 * math.log(0.5 / 0.375) + 0.5 * math.log(0.5 / 0.625)) + 0.5 * (
        0.25 * math.log(0.25 / 0.375) + 0.75 * math.log(0.75 / 0.625)
    )
    assert js(p, q).tolist() == pytest.approx([expected], rel=1e-12)
    assert js(_t([[1.0, 0.0]]), _t([[0.0, 1.0]])).tolist() == pytest.approx([math.log(2.0)])  # disjoint
    ps = torch.softmax(3 * _randn(50, 6, seed=3), dim=1)
    qs = torch.softmax(3 * _randn(50, 6, seed=4), dim=1)
    torch.testing.assert_close(js(ps, qs), js(qs, ps))
    values = js(ps, qs)
    assert (values >= 0).all() and (values <= math.log(2.0) + 1e-12).all()
    assert (kl(ps, qs) >= 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(name: str) -> None:
    a, b = _randn(4, 3, seed=1, dtype=torch.float32), _randn(4, 3, seed=2, dtype=torch.float32)
    if name in PROBABILITY_DISTANCES:
        a, b = torch.softmax(a, dim=1), torch.softmax(b, dim=1)
    kwargs = {"matrix": torch.eye(3)} if name == "mahalanobis" else {}
    out = paired_distance(name, a, b, **kwargs)
    assert out.dtype == torch.float32 and out.shape == (4,)
    if name not in PROBABILITY_DISTANCES:
        assert pairwise_distance(name, a, b, **kwargs).dtype == torch.float32


# ---------------------------------------------------------------------------------------------- pairwise


@pytest.mark.parametrize("name", RETRIEVAL)
def test_pairwise_matches_paired(name: str) -> None:
    n, m, d = 7, 5, 4
    queries, database = _randn(n, d, seed=10), _randn(m, d, seed=11)
    database[1] = queries[2]  # one exact match: distance 0 in both forms
    kwargs = _kwargs(name, d)
    if name == "mahalanobis":
        assert torch.linalg.matrix_rank(kwargs["matrix"]).item() == d - 2  # PSD but singular
    out = pairwise_distance(name, queries, database, chunk_size=3, **kwargs)
    assert out.shape == (n, m) and out.dtype == F64
    expected = torch.zeros(n, m, dtype=F64)
    for i in range(n):
        for j in range(m):
            expected[i, j] = paired_distance(name, queries[i : i + 1], database[j : j + 1], **kwargs)[0]
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert (out >= 0).all()
    assert out[2, 1].item() == pytest.approx(0.0, abs=1e-9)
    torch.testing.assert_close(pairwise_distance(name, queries, database, chunk_size=1, **kwargs), out)


def test_pairwise_hist_intersection_inner_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    queries, database = _randn(9, 4, seed=12).exp(), _randn(6, 4, seed=13).exp()
    whole = pairwise_distance("hist_intersection", queries, database)
    monkeypatch.setattr(distances_module, "_HIST_BLOCK", 2 * 6 * 4)  # two query rows per inner block
    torch.testing.assert_close(pairwise_distance("hist_intersection", queries, database), whole)
    monkeypatch.setattr(distances_module, "_HIST_BLOCK", 1)  # one row at a time
    torch.testing.assert_close(pairwise_distance("hist_intersection", queries, database, chunk_size=4), whole)


def test_pairwise_empty_queries() -> None:
    out = pairwise_distance("sq_l2", torch.zeros(0, 3, dtype=F64), _randn(4, 3))
    assert out.shape == (0, 4)


# ---------------------------------------------------------------------------------------------- learned metric


def test_learned_mahalanobis_starts_at_identity_and_learns() -> None:
    metric = LearnedMahalanobis(4).double()
    assert metric.L.shape == (4, 4)
    torch.testing.assert_close(metric.matrix(), torch.eye(4, dtype=F64))
    a, b = _randn(5, 4, seed=1), _randn(5, 4, seed=2)
    out = metric(a, b)
    torch.testing.assert_close(out, sq_l2(a, b))
    out.sum().backward()
    assert metric.L.grad is not None and metric.L.grad.abs().sum() > 0
    # d/dL sum_b ||(a - b) L||^2 = 2 (a - b)^T (a - b) L, with L = I
    diff = a - b
    torch.testing.assert_close(metric.L.grad, 2 * diff.T @ diff)


def test_learned_mahalanobis_low_rank() -> None:
    metric = LearnedMahalanobis(4, rank=2).double()
    assert metric.L.shape == (4, 2)
    torch.testing.assert_close(metric.matrix(), torch.diag(_t([[1.0, 1.0, 0.0, 0.0]])[0]))
    with pytest.raises(ValueError, match="must be >= 1"):
        LearnedMahalanobis(4, rank=0)


# ---------------------------------------------------------------------------------------------- class-pooled precision


def _reference_precision(x: np.ndarray, y: np.ndarray, shrinkage: float) -> np.ndarray:
    classes = np.unique(y)
    scatter = np.zeros((x.shape[1], x.shape[1]))
    for c in classes:
        centred = x[y == c] - x[y == c].mean(axis=0)
        for row in centred:
            scatter += np.outer(row, row)
    scatter /= len(x) - len(classes)
    scatter += shrinkage * np.trace(scatter) / x.shape[1] * np.eye(x.shape[1])
    return np.linalg.inv(scatter)


def test_class_pooled_precision_recovers_the_within_class_covariance() -> None:
    d, n = 3, 20_000
    covariance = _t([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])
    labels = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(0)) * 7 + 3  # 3, 10, 17, 24
    means = 10 * _randn(25, d, seed=1)  # far-apart class means: must not leak into the pooled covariance
    x = _randn(n, d, seed=2) @ torch.linalg.cholesky(covariance).T + means[labels]
    precision = class_pooled_precision(x, labels)
    torch.testing.assert_close(precision, precision.T, rtol=0, atol=0)
    torch.testing.assert_close(precision @ covariance, torch.eye(d, dtype=F64), rtol=0, atol=0.05)


@pytest.mark.parametrize("shrinkage", [0.0, 1e-3, 0.5])
def test_class_pooled_precision_matches_numpy(shrinkage: float) -> None:
    x = _randn(40, 5, seed=3)
    labels = torch.tensor([0, 1, 2] * 13 + [2])
    precision = class_pooled_precision(x, labels, shrinkage=shrinkage)
    expected = _reference_precision(x.numpy(), labels.numpy(), shrinkage)
    np.testing.assert_allclose(precision.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_class_pooled_precision_shrinks_a_rank_deficient_scatter() -> None:
    x = _randn(5, 8, seed=4)  # N - C = 3 < D = 8: S_w singular, the shrinkage makes it invertible
    precision = class_pooled_precision(x, torch.tensor([0, 0, 1, 1, 1]), shrinkage=0.1)
    assert torch.isfinite(precision).all()
    assert torch.linalg.eigvalsh(precision).min() > 0


def test_class_pooled_precision_errors() -> None:
    x = _randn(4, 2, seed=5)
    with pytest.raises(ValueError, match="need N > C"):
        class_pooled_precision(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="need N > C"):
        class_pooled_precision(x[:2], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one label per row"):
        class_pooled_precision(x, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="shrinkage must be >= 0"):
        class_pooled_precision(x, torch.tensor([0, 0, 1, 1]), shrinkage=-1.0)
    with pytest.raises(ValueError, match="singular"):  # no variation within the classes
        class_pooled_precision(_t([[1.0, 2.0], [1.0, 2.0], [3.0, 0.0]]), torch.tensor([0, 0, 1]))


# ---------------------------------------------------------------------------------------------- gradients


def _grad_inputs(name: str) -> tuple[Tensor, ...]:
    a = _randn(3, 4, seed=20)
    if name == "l1":  # a - b far from 0 in every coordinate
        signs = torch.where(_randn(3, 4, seed=21) > 0, 1.0, -1.0).to(F64)
        b = a + signs * (0.5 + _randn(3, 4, seed=22).abs())
    elif name == "hist_intersection":  # positive entries, no ties between the histograms
        a = 0.5 + torch.rand(3, 4, generator=torch.Generator().manual_seed(23), dtype=F64)
        b = 0.5 + torch.rand(3, 4, generator=torch.Generator().manual_seed(24), dtype=F64)
        assert (histogram(a) - histogram(b)).abs().min() > 1e-3
    elif name in PROBABILITY_DISTANCES:
        a, b = torch.softmax(a, dim=1), torch.softmax(_randn(3, 4, seed=25), dim=1)
    else:
        b = _randn(3, 4, seed=26)
    inputs: tuple[Tensor, ...] = (a, b)
    if name == "mahalanobis":
        inputs = (a, b, _singular_psd(4, 4, seed=27))
    return tuple(t.clone().requires_grad_(True) for t in inputs)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name: str) -> None:
    inputs = _grad_inputs(name)
    assert torch.autograd.gradcheck(PAIRED_DISTANCES[name], inputs)
    out = PAIRED_DISTANCES[name](*inputs)
    out.sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in inputs)


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_names() -> None:
    a = _randn(2, 3)
    with pytest.raises(ValueError, match="unknown distance 'l2': choose one of sq_l2, l1, cosine"):
        paired_distance("l2", a, a)
    with pytest.raises(ValueError, match="unknown distance 'euclid'"):
        pairwise_distance("euclid", a, a)


@pytest.mark.parametrize("name", PROBABILITY_DISTANCES)
def test_pairwise_refuses_probability_distances(name: str) -> None:
    p = torch.softmax(_randn(2, 3), dim=1)
    with pytest.raises(ValueError, match="kl/js compare probability distributions, not embeddings"):
        pairwise_distance(name, p, p)


def test_mahalanobis_needs_its_matrix() -> None:
    a = _randn(2, 3)
    with pytest.raises(ValueError, match="pass matrix="):
        paired_distance("mahalanobis", a, a)
    with pytest.raises(ValueError, match="pass matrix="):
        paired_distance("mahalanobis", a, a, matrix=None)
    with pytest.raises(ValueError, match="pass matrix="):
        pairwise_distance("mahalanobis", a, a)
    with pytest.raises(ValueError, match=r"expected a \(3, 3\) matrix"):
        paired_distance("mahalanobis", a, a, matrix=torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match=r"expected a \(3, 3\) matrix"):
        pairwise_distance("mahalanobis", a, a, matrix=torch.eye(2, dtype=F64))


def test_stray_keywords() -> None:
    a = _randn(2, 3)
    eye = torch.eye(3, dtype=F64)
    assert paired_distance("sq_l2", a, a, matrix=None).shape == (2,)  # None is ignored
    with pytest.raises(ValueError, match="mahalanobis distance only"):
        paired_distance("sq_l2", a, a, matrix=eye)
    with pytest.raises(ValueError, match="mahalanobis distance only"):
        pairwise_distance("cosine", a, a, matrix=eye)
    with pytest.raises(ValueError, match="unexpected keyword"):
        paired_distance("mahalanobis", a, a, matrix=eye, metric=eye)


@pytest.mark.parametrize("name", NAMES)
def test_paired_shape_errors(name: str) -> None:
    kwargs = _kwargs(name, 3)
    with pytest.raises(ValueError, match="same shape"):
        paired_distance(name, _randn(2, 3), _randn(2, 4), **kwargs)
    with pytest.raises(ValueError, match="same shape"):
        paired_distance(name, _randn(2, 3), _randn(3, 3), **kwargs)
    with pytest.raises(ValueError, match="same shape"):
        paired_distance(name, _randn(3), _randn(3), **kwargs)
    with pytest.raises(ValueError, match="same shape"):
        paired_distance(name, _randn(2, 3, 1), _randn(2, 3, 1), **kwargs)


def test_pairwise_shape_and_chunk_errors() -> None:
    with pytest.raises(ValueError, match="one embedding dimension"):
        pairwise_distance("l1", _randn(2, 3), _randn(4, 2))
    with pytest.raises(ValueError, match="one embedding dimension"):
        pairwise_distance("l1", _randn(3), _randn(4, 3))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        pairwise_distance("l1", _randn(2, 3), _randn(4, 3), chunk_size=0)
    with pytest.raises(ValueError, match=r"expected a \(B, D\) tensor"):
        histogram(_randn(3))
