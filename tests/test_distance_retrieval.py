"""Retrieval metrics under each distance measure (issue 18, experiment 4): ``mmsheaf.evaluation.distance_retrieval``."""

from __future__ import annotations

import pytest
import torch
from mmsheaf.evaluation.distance_retrieval import (
    RETRIEVAL_DISTANCES,
    LibraryDistance,
    distance_retrieval_metrics,
    fit_distance,
    retrieval_by_distance,
)
from mmsheaf.evaluation.embeddings import retrieval_metrics
from mmsheaf.losses.distances import pairwise_distance

KEYS = ("map_at_r", "r_precision", "p_at_1")


def _metrics(x: torch.Tensor, y: torch.Tensor, name: str, **kwargs) -> dict[str, float]:
    return distance_retrieval_metrics(x, y, fit_distance(name, **kwargs), chunk_size=3)


def _anisotropic(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes 1 apart along y (within-class std 0.05) with std-5 noise along x, n rows each."""
    y = torch.arange(2).repeat_interleave(n)
    noise = torch.randn(2 * n, 2, generator=generator) * torch.tensor([5.0, 0.05])
    return noise + torch.stack([torch.zeros(2 * n), y.float()], dim=1), y


@pytest.fixture
def anisotropic() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return (*_anisotropic(30, g), *_anisotropic(20, g))  # train_x, train_y, test_x, test_y


def test_the_distance_is_the_library_matrix_for_pml() -> None:
    g = torch.Generator().manual_seed(1)
    q, r = torch.randn(5, 3, generator=g), torch.randn(7, 3, generator=g)
    distance = fit_distance("l1")
    assert isinstance(distance, LibraryDistance)
    assert not distance.is_inverted and not distance.normalize_embeddings
    torch.testing.assert_close(distance(q, r), pairwise_distance("l1", q, r))
    torch.testing.assert_close(distance.pairwise_distance(q, r[:5]), (q - r[:5]).abs().sum(1))


def test_cosine_equals_the_existing_retrieval_metrics() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(41, 6, generator=g)
    y = torch.cat([torch.randint(0, 5, (40,), generator=g), torch.tensor([99])])  # 99: a lone row, no query
    ours = distance_retrieval_metrics(x, y, fit_distance("cosine"), chunk_size=7)
    theirs = retrieval_metrics(x, y, chunk_size=7)
    assert ours["n_queries"] == theirs["n_queries"] == 40
    for key in KEYS:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9)
    assert 0 < ours["map_at_r"] < 1


def test_sq_l2_separated_clusters_are_perfect() -> None:
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.2], [10.0, 10.0], [10.3, 10.0], [10.0, 10.1]])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    scores = _metrics(x, y, "sq_l2")
    assert scores == {"map_at_r": 1.0, "r_precision": 1.0, "p_at_1": 1.0, "n_queries": 6}


def test_sq_l2_closed_form_map_at_r() -> None:
    # Points p_i = 2^i - 1 on a line (0, 1, 3, 7, 15, 31): from p_i every left point (at distance
    # 2^i - 2^j <= 2^i - 1) is nearer than every right one (>= 2^i), so the neighbours of i are
    # i-1, i-2, ..., 0, then i+1, ..., 5 -- no ties. Labels A B A A B B, so R = 2 for every query:
    #   q0 A: 1(B) 2(A) -> rel 0 1: AP@R = (0 + 1/2)/2 = 1/4, R-Prec 1/2, P@1 0
    #   q1 B: 0(A) 2(A) -> rel 0 0: 0, 0, 0
    #   q2 A: 1(B) 0(A) -> rel 0 1: 1/4, 1/2, 0
    #   q3 A: 2(A) 1(B) -> rel 1 0: AP@R = (1 + 0)/2 = 1/2, 1/2, 1
    #   q4 B: 3(A) 2(A) -> rel 0 0: 0, 0, 0
    #   q5 B: 4(B) 3(A) -> rel 1 0: 1/2, 1/2, 1
    # MAP@R = (1/4 + 1/4 + 1/2 + 1/2)/6 = 1/4; R-Precision = 2/6 = 1/3; P@1 = 2/6 = 1/3.
    x = torch.tensor([[2.0**i - 1, 0.0] for i in range(6)])
    y = torch.tensor([0, 1, 0, 0, 1, 1])
    scores = _metrics(x, y, "sq_l2")
    assert scores["map_at_r"] == pytest.approx(1 / 4)
    assert scores["r_precision"] == pytest.approx(1 / 3)
    assert scores["p_at_1"] == pytest.approx(1 / 3)


def test_l2_and_cosine_rank_rays_differently() -> None:
    # Class A on the ray (1, 0) at norms 1 and 5, class B on the ray (0.6, 0.8) at norms 1 and 5.
    # Cosine: a row's own ray is at distance 0, the other at 1 - 0.6 = 0.4 -> P@1 = 1.
    # sq_l2: (1,0) and (0.6,0.8) are 0.8 apart, their norm-5 partners 16 -> both wrong; (5,0) to (3,4)
    # is 4 + 16 = 20 > 16 to (1,0) -> right, and (3,4) likewise -> P@1 = 2/4.
    x = torch.tensor([[1.0, 0.0], [5.0, 0.0], [0.6, 0.8], [3.0, 4.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert _metrics(x, y, "cosine")["p_at_1"] == 1.0
    assert _metrics(x, y, "sq_l2")["p_at_1"] == 0.5


def test_pooled_mahalanobis_fixes_anisotropic_noise(anisotropic) -> None:
    train_x, train_y, test_x, test_y = anisotropic
    plain = distance_retrieval_metrics(test_x, test_y, fit_distance("sq_l2"))
    pooled = distance_retrieval_metrics(test_x, test_y, fit_distance("mahalanobis_pooled", train_x, train_y))
    assert plain["map_at_r"] < 0.5  # the std-5 axis swamps the class gap of 1
    # Whitened, the gap is 1 / sqrt(0.05^2 + shrinkage 1e-3 * (5^2 + 0.05^2) / 2) ~ 8 within-class stds
    # along y (the shrinkage, relative to the trace, dominates the small variance), which is still perfect.
    assert pooled["map_at_r"] == pooled["p_at_1"] == 1.0


def test_learned_mahalanobis_is_psd_deterministic_and_helps(anisotropic) -> None:
    train_x, train_y, test_x, test_y = anisotropic
    first = fit_distance("mahalanobis_learned", train_x, train_y, seed=3)
    again = fit_distance("mahalanobis_learned", train_x, train_y, seed=3)
    assert first.matrix is not None and first.matrix.shape == (2, 2)
    torch.testing.assert_close(first.matrix, first.matrix.T)
    assert torch.linalg.eigvalsh(first.matrix.double()).min() >= -1e-6
    torch.testing.assert_close(first.matrix, again.matrix, rtol=0, atol=0)
    assert first.matrix[1, 1] > 10 * first.matrix[0, 0]  # NCA weights the informative axis up
    plain = distance_retrieval_metrics(test_x, test_y, fit_distance("sq_l2"))["map_at_r"]
    learned = distance_retrieval_metrics(test_x, test_y, first)["map_at_r"]
    assert learned > plain + 0.1


def test_hist_intersection_ignores_positive_row_scales() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(30, 5, generator=g).abs()
    y = torch.randint(0, 3, (30,), generator=g)
    scaled = x * torch.exp(2 * torch.randn(30, 1, generator=g))
    hist = _metrics(x, y, "hist_intersection")
    assert _metrics(scaled, y, "hist_intersection") == pytest.approx(hist, abs=1e-9)
    # the scales do matter to sq_l2: the check has teeth
    assert _metrics(scaled, y, "sq_l2") != pytest.approx(_metrics(x, y, "sq_l2"))


def test_errors() -> None:
    x, y = torch.randn(6, 2), torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="unknown retrieval distance.*'euclid'.*mahalanobis_pooled"):
        fit_distance("euclid")
    for name in ("mahalanobis_pooled", "mahalanobis_learned"):
        with pytest.raises(ValueError, match="training set: pass train_emb and train_labels"):
            fit_distance(name)
        with pytest.raises(ValueError, match="training set"):
            fit_distance(name, x)
    with pytest.raises(ValueError, match="unknown retrieval distance"):
        retrieval_by_distance(x, y, x, y, distances=("sq_l2", "euclid"))
    with pytest.raises(ValueError, match="training set"):
        retrieval_by_distance(x, y, None, None, distances=("cosine", "mahalanobis_pooled"))
    with pytest.raises(ValueError, match="No valid query"):
        distance_retrieval_metrics(x, torch.arange(6), fit_distance("sq_l2"))


def test_retrieval_by_distance_table(anisotropic) -> None:
    train_x, train_y, test_x, test_y = anisotropic
    table = retrieval_by_distance(test_x, test_y, train_x, train_y)
    assert list(table.columns) == ["distance", "map_at_r", "p_at_1", "r_precision", "n_queries"]
    assert list(table["distance"]) == list(RETRIEVAL_DISTANCES) == [
        "sq_l2", "l1", "cosine", "mahalanobis_learned", "mahalanobis_pooled", "hist_intersection"
    ]  # fmt: skip
    assert (table["n_queries"] == 40).all()
    pooled = table.set_index("distance").loc["mahalanobis_pooled"]
    assert pooled["map_at_r"] == 1.0
    few = retrieval_by_distance(test_x, test_y, None, None, distances=("cosine", "l1"))
    assert list(few["distance"]) == ["cosine", "l1"] and len(few) == 2
