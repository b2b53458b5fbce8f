"""Tests of mmsheaf.evaluation.collapse: normalised std, spectra, RankMe, alpha-ReQ and effective dimensions
on embeddings with a known structure."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from mmsheaf.evaluation import (
    alpha_req,
    collapse_diagnostics,
    covariance_spectrum,
    effective_dims,
    normalised_std,
    rankme,
    singular_values,
)
from mmsheaf.evaluation.collapse import COLLAPSE_METRICS


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _orthonormal_centred(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """(n, d) float64 with orthonormal, zero-mean columns."""
    g = torch.randn(n, d, generator=_gen(seed), dtype=torch.float64)
    q, _ = torch.linalg.qr(g - g.mean(0))
    return q


@pytest.fixture(scope="module")
def gaussian() -> torch.Tensor:
    return torch.randn(20000, 64, generator=_gen(0))


# ---------------------------------------------------------------------------------------------------------
# Isotropic, collapsed and low-rank embeddings
# ---------------------------------------------------------------------------------------------------------


def test_isotropic_gaussian_is_not_collapsed(gaussian: torch.Tensor) -> None:
    assert normalised_std(gaussian) == pytest.approx(1.0, abs=0.05)
    assert 0.9 * 64 < rankme(gaussian) <= 64
    assert abs(alpha_req(gaussian)) < 0.2
    assert effective_dims(gaussian) == 64


def test_all_rows_equal_is_complete_collapse() -> None:
    z = torch.randn(1, 32, generator=_gen(1)).expand(500, 32)
    assert normalised_std(z) == pytest.approx(0.0, abs=1e-7)
    assert rankme(z) == pytest.approx(1.0, abs=1e-3)  # one non-zero singular value
    assert effective_dims(z) == 0  # the covariance is exactly zero
    assert math.isnan(alpha_req(z))  # no positive eigenvalue to fit
    assert torch.count_nonzero(covariance_spectrum(z)) == 0


def test_zero_embedding_is_handled() -> None:
    z = torch.zeros(10, 4)
    out = collapse_diagnostics(z)
    assert out["norm_std"] == 0.0 and out["effective_dims"] == 0 and math.isnan(out["alpha_req"])
    assert out["rankme"] == pytest.approx(1.0, abs=1e-3)


def test_rank_one_matrix() -> None:
    a = torch.randn(1000, 1, generator=_gen(2))
    v = torch.randn(1, 48, generator=_gen(3))
    z = a @ v
    assert rankme(z) == pytest.approx(1.0, abs=1e-3)
    assert effective_dims(z) == 1
    assert math.isnan(alpha_req(z))  # a single positive eigenvalue


def test_rank_one_spread_with_an_offset_rankme_sees_the_mean() -> None:
    # rows differ along v only, but the offset c (off v) is a second direction of the uncentred matrix
    a = torch.randn(1000, 1, generator=_gen(2))
    v = torch.zeros(1, 16)
    v[0, 0] = 1.0
    c = torch.zeros(1, 16)
    c[0, 1] = 2.0
    z = a @ v + c
    assert effective_dims(z) == 1  # the covariance has one non-zero eigenvalue
    assert math.isnan(alpha_req(z))
    assert (singular_values(z, center=True)[1:] < 1e-9).all()
    assert rankme(z - z.mean(0)) == pytest.approx(1.0, abs=1e-3)  # the centred matrix is rank 1
    # uncentred (as in the paper): sigma = (2 sqrt(1000), |a|) ~ (63.2, 31.6): two directions
    s = torch.linalg.svdvals(z.double())
    p = s[:2] / s.sum()
    assert rankme(z, eps=0.0) == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-9)
    assert rankme(z) > 1.8


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_k_dimensional_subspace(k: int) -> None:
    d = 64
    basis, _ = torch.linalg.qr(torch.randn(d, k, generator=_gen(4)))  # (D, k) orthonormal
    z = torch.randn(20000, k, generator=_gen(5)) @ basis.T  # float32: rounding noise off the subspace
    assert rankme(z) == pytest.approx(k, rel=0.1)
    assert effective_dims(z) == k
    if k > 1:
        # only the k eigenvalues above rounding enter the fit: a flat spectrum (the D - k rounding-level
        # eigenvalues would give alpha in the tens)
        assert abs(alpha_req(z)) < 0.2
    # the normalised std does not see a rotated subspace: coordinate j of u = B w (w uniform on the unit
    # sphere of R^k) has variance |B_j|^2 / k, about 1 / D each
    expected = (basis.double().norm(dim=1) / math.sqrt(k)).mean().item() * math.sqrt(d)
    assert normalised_std(z) == pytest.approx(expected, rel=0.05)
    assert normalised_std(z) > 0.7
    # an axis-aligned subspace: k coordinates of variance 1 / k, the rest 0: sqrt(D) * (k / D) / sqrt(k)
    aligned = torch.zeros_like(z)
    aligned[:, :k] = torch.randn(20000, k, generator=_gen(5))
    assert normalised_std(aligned) == pytest.approx(math.sqrt(k / d), rel=0.05)
    assert effective_dims(aligned) == k and rankme(aligned) == pytest.approx(k, rel=0.1)


def test_near_collapse_has_a_small_normalised_std() -> None:
    g = _gen(6)
    centre = torch.randn(1, 64, generator=g)
    z = centre + 1e-3 * torch.randn(5000, 64, generator=g)
    assert normalised_std(z) < 0.01
    assert normalised_std(torch.randn(5000, 64, generator=g)) > 0.95


def test_normalised_std_uses_the_unbiased_std() -> None:
    # rows e1, e2: each column is (1, 0) or (0, 1), unbiased std 1/sqrt(2); mean * sqrt(2) = 1
    # (the population std would give 0.71)
    assert normalised_std(torch.eye(2)) == pytest.approx(1.0, abs=1e-12)
    z = torch.tensor([[3.0, 4.0], [0.0, -2.0], [1.0, 1.0]])
    u = z.double() / z.double().norm(dim=1, keepdim=True)
    expected = np.std(u.numpy(), axis=0, ddof=1).mean() * math.sqrt(2)
    assert normalised_std(z) == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Power-law spectra
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_planted_power_law_exactly(alpha: float) -> None:
    n, d = 2000, 64
    ranks = torch.arange(1, d + 1, dtype=torch.float64)
    z = _orthonormal_centred(n, d) * ((n - 1) * ranks ** (-alpha)).sqrt()  # covariance = diag(k^-alpha)
    assert torch.allclose(covariance_spectrum(z), ranks ** (-alpha), rtol=1e-9, atol=0)
    assert alpha_req(z) == pytest.approx(alpha, abs=1e-8)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_planted_power_law_from_gaussian_columns(alpha: float) -> None:
    ranks = torch.arange(1, 65, dtype=torch.float32)
    z = torch.randn(20000, 64, generator=_gen(7)) * ranks ** (-alpha / 2)
    assert alpha_req(z) == pytest.approx(alpha, abs=0.1)
    # a random rotation changes nothing
    rotation, _ = torch.linalg.qr(torch.randn(64, 64, generator=_gen(8)))
    assert alpha_req(z @ rotation) == pytest.approx(alpha, abs=0.1)


def test_fit_range_selects_the_ranks() -> None:
    n, d = 2000, 64
    ranks = torch.arange(1, d + 1, dtype=torch.float64)
    spectrum = torch.where(ranks <= 32, ranks**-1.0, torch.tensor(1 / 32, dtype=torch.float64))  # flat tail
    z = _orthonormal_centred(n, d) * ((n - 1) * spectrum).sqrt()
    assert alpha_req(z, fit_range=(0.0, 0.5)) == pytest.approx(1.0, abs=1e-8)
    assert alpha_req(z, fit_range=(0.5, 1.0)) == pytest.approx(0.0, abs=1e-8)  # ranks 33..64: flat
    assert alpha_req(z) < 0.9  # the flat tail pulls the full fit down
    assert math.isnan(alpha_req(z, fit_range=(0.0, 1 / 64)))  # one rank only


def test_center_false_fits_the_second_moment() -> None:
    n, d = 2000, 16
    ranks = torch.arange(1, d + 1, dtype=torch.float64)
    z = _orthonormal_centred(n, d) * ((n - 1) * ranks**-1.5).sqrt()
    assert alpha_req(z, center=False) == pytest.approx(1.5, abs=1e-8)  # zero mean: the same
    assert alpha_req(z + 100.0, center=False) > 3  # the mean dominates the uncentred spectrum
    assert alpha_req(z + 100.0) == pytest.approx(1.5, abs=1e-6)


def test_rtol_excludes_small_eigenvalues() -> None:
    n, d = 2000, 8
    ranks = torch.arange(1, d + 1, dtype=torch.float64)
    spectrum = torch.cat([ranks[:4] ** -2.0, torch.full((4,), 1e-12, dtype=torch.float64)])
    z = _orthonormal_centred(n, d) * ((n - 1) * spectrum).sqrt()
    assert alpha_req(z, rtol=1e-6) == pytest.approx(2.0, abs=1e-8)
    assert alpha_req(z) > 5  # float64 default tolerance keeps the 1e-12 eigenvalues


# ---------------------------------------------------------------------------------------------------------
# Spectra and RankMe against references
# ---------------------------------------------------------------------------------------------------------


def test_singular_values_match_numpy() -> None:
    z = torch.randn(50, 12, generator=_gen(9)) + 3.0
    x = z.double().numpy()
    for center, ref in [(True, x - x.mean(0)), (False, x)]:
        s = singular_values(z, center=center)
        assert s.dtype == torch.float64 and s.shape == (12,)
        assert (s[:-1] >= s[1:]).all()
        np.testing.assert_allclose(s.numpy(), np.linalg.svd(ref, compute_uv=False), rtol=1e-10)


@pytest.mark.parametrize("shape", [(50, 12), (5, 12)])
def test_covariance_spectrum_matches_numpy_cov(shape: tuple[int, int]) -> None:
    z = torch.randn(*shape, generator=_gen(10)) * torch.linspace(0.1, 3.0, shape[1])
    eig = covariance_spectrum(z)
    ref = np.sort(np.linalg.eigvalsh(np.cov(z.double().numpy(), rowvar=False)))[::-1]
    assert eig.shape == (shape[1],) and (eig >= 0).all() and (eig[:-1] >= eig[1:]).all()
    np.testing.assert_allclose(eig.numpy(), ref, rtol=1e-9, atol=1e-12 * ref[0])
    if shape[0] <= shape[1]:  # rank at most N - 1: the rest are exact zeros
        assert torch.count_nonzero(eig[shape[0] - 1 :]) == 0


def test_rankme_hand_computed() -> None:
    z = torch.diag(torch.tensor([3.0, 1.0]))
    p = np.array([0.75, 0.25])
    assert rankme(z, eps=0.0) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)  # 1.7548
    pe = p + 1e-7
    assert rankme(z) == pytest.approx(math.exp(-(pe * np.log(pe)).sum()), rel=1e-12)
    assert rankme(torch.eye(5)) == pytest.approx(5.0, rel=1e-5)  # equal singular values: the full rank


def test_rankme_is_bounded_by_the_smaller_side() -> None:
    z = torch.randn(6, 40, generator=_gen(11))
    assert 1.0 <= rankme(z) <= 6.0 + 1e-4


def test_scale_invariance(gaussian: torch.Tensor) -> None:
    ranks = torch.arange(1, 65, dtype=torch.float32)
    z = gaussian[:4000] * ranks ** (-0.5)
    base = collapse_diagnostics(z)
    scaled = collapse_diagnostics(7 * z)
    assert scaled["rankme"] == pytest.approx(base["rankme"], rel=1e-9)
    assert scaled["norm_std"] == pytest.approx(base["norm_std"], rel=1e-9)
    assert scaled["alpha_req"] == pytest.approx(base["alpha_req"], rel=1e-9)
    assert scaled["effective_dims"] == base["effective_dims"]
    assert base["alpha_req"] > 0.5  # the fixture is not flat: the check has something to preserve


def test_collapse_diagnostics_agree_with_the_functions(gaussian: torch.Tensor) -> None:
    z = gaussian[:3000, :16] * torch.logspace(0.0, -3.0, 16)  # variances 10^(-6k/15), k = 0..15
    out = collapse_diagnostics(z)
    assert tuple(out) == COLLAPSE_METRICS
    assert out["norm_std"] == normalised_std(z)
    assert out["rankme"] == rankme(z)
    assert out["alpha_req"] == alpha_req(z)
    assert out["effective_dims"] == effective_dims(z) == 8  # 10^(-6k/15) > 1e-3 for k < 7.5
    assert all(type(v) is float for k, v in out.items() if k != "effective_dims")
    assert type(out["effective_dims"]) is int


def test_float64_and_numpy_inputs_agree(gaussian: torch.Tensor) -> None:
    z = gaussian[:500, :8]
    assert rankme(z.numpy()) == pytest.approx(rankme(z.double()), rel=1e-12)
    assert normalised_std(z.numpy()) == pytest.approx(normalised_std(z), rel=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------------------


FUNCTIONS = [normalised_std, singular_values, covariance_spectrum, rankme, alpha_req, effective_dims]


@pytest.mark.parametrize("fn", [*FUNCTIONS, collapse_diagnostics])
def test_malformed_embeddings_raise(fn: Callable[[torch.Tensor], object]) -> None:
    with pytest.raises(ValueError, match=r"\(N, D\) matrix"):
        fn(torch.randn(10))
    with pytest.raises(ValueError, match=r"\(N, D\) matrix"):
        fn(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="at least 2 rows"):
        fn(torch.randn(1, 8))
    for bad in (math.nan, math.inf):
        z = torch.randn(10, 4)
        z[3, 1] = bad
        with pytest.raises(ValueError, match="NaN/inf"):
            fn(z)


def test_bad_arguments_raise() -> None:
    z = torch.randn(10, 4)
    for fit_range in [(0.5, 0.5), (-0.1, 0.5), (0.2, 1.1), (0.6, 0.4)]:
        with pytest.raises(ValueError, match="fit_range"):
            alpha_req(z, fit_range=fit_range)
    with pytest.raises(ValueError, match="rtol"):
        alpha_req(z, rtol=1.0)
    with pytest.raises(ValueError, match="rtol"):
        effective_dims(z, rtol=-1e-3)
    with pytest.raises(ValueError, match="eps"):
        rankme(z, eps=-1e-7)
