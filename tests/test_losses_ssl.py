"""Tests of mmsheaf.losses.ssl: the view distances, SimSiam/BYOL's prediction loss, Barlow Twins and VICReg,
against hand-computed values and straightforward reference implementations (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmsheaf.losses import VIEW_DISTANCES, BarlowTwinsLoss, PredictionLoss, VICRegLoss, view_distance
from torch import Tensor

NAMES = ["cosine", "normalised_l2", "l2", "dot"]
F64 = torch.float64


def _randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _two_views(n: int = 32, d: int = 6, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two correlated views with columns of different scales (some std below 1, some above)."""
    scales = torch.linspace(0.3, 2.0, d, dtype=F64)
    z1 = _randn(n, d, seed=seed) * scales
    return z1, z1 + 0.4 * _randn(n, d, seed=seed + 1)


# ---------------------------------------------------------------------------------------------- distances


def test_registry_names() -> None:
    assert list(VIEW_DISTANCES) == NAMES
    for name in NAMES:
        assert view_distance(name) is VIEW_DISTANCES[name]


# rows: a=[1,0] b=[0,2]; a=[3,4] b=[3,4]; a=[1,1] b=[-1,-1]
_A = torch.tensor([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]], dtype=F64)
_B = torch.tensor([[0.0, 2.0], [3.0, 4.0], [-1.0, -1.0]], dtype=F64)
_EXPECTED = {
    "cosine": [0.0, -1.0, 1.0],
    "normalised_l2": [2.0, 0.0, 4.0],
    "l2": [2.5, 0.0, 4.0],
    "dot": [0.0, -12.5, 1.0],
}


@pytest.mark.parametrize("name", NAMES)
def test_distance_hand_values(name: str) -> None:
    out = view_distance(name)(_A, _B)
    assert out.shape == (3,)
    torch.testing.assert_close(out, torch.tensor(_EXPECTED[name], dtype=F64), atol=1e-12, rtol=0)


def test_normalised_l2_is_two_plus_two_cosine() -> None:
    a, b = _randn(50, 7, seed=1), _randn(50, 7, seed=2)
    torch.testing.assert_close(VIEW_DISTANCES["normalised_l2"](a, b), 2 + 2 * VIEW_DISTANCES["cosine"](a, b))


def test_l2_is_mse_and_dot_is_unbounded() -> None:
    a, b = _randn(50, 7, seed=1), _randn(50, 7, seed=2)
    torch.testing.assert_close(VIEW_DISTANCES["l2"](a, b).mean(), F.mse_loss(a, b))
    # scale grows the dot "distance" without limit (towards -inf) while the cosine stays put
    dots = [VIEW_DISTANCES["dot"](s * a, s * a).mean().item() for s in (1.0, 10.0, 100.0)]
    assert dots[0] > dots[1] > dots[2] and dots[2] == pytest.approx(1e4 * dots[0])
    torch.testing.assert_close(VIEW_DISTANCES["cosine"](100 * a, b), VIEW_DISTANCES["cosine"](a, b))


def test_unknown_distance_lists_choices() -> None:
    choices = "unknown distance 'euclid': choose one of cosine, normalised_l2, l2, dot"
    with pytest.raises(ValueError, match=choices):
        view_distance("euclid")
    with pytest.raises(ValueError, match="unknown distance"):
        PredictionLoss(distance="euclid")
    with pytest.raises(ValueError, match="unknown distance"):
        VICRegLoss(distance="euclid")


# ---------------------------------------------------------------------------------------- PredictionLoss

# p1 pairs with z2, p2 with z1 (swapping them changes every value below)
_P1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
_Z2 = torch.tensor([[0.0, 3.0], [0.0, 1.0]], dtype=F64)
_P2 = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=F64)
_Z1 = torch.tensor([[2.0, 2.0], [-1.0, 0.0]], dtype=F64)
# cosine: D(p1, z2) = [0, -1], D(p2, z1) = [-1, 1] -> 0.5 * -0.5 + 0.5 * 0 = -0.25
# l2: [5, 0] and [1, 2] -> 0.5 * 2.5 + 0.5 * 1.5; dot: -[0, 0.5] and -[2, -0.5] -> 0.5 * -0.25 + 0.5 * -0.75
_PREDICTION_EXPECTED = {"cosine": -0.25, "normalised_l2": 1.5, "l2": 2.0, "dot": -0.5}


@pytest.mark.parametrize("name", NAMES)
def test_prediction_loss_hand_value(name: str) -> None:
    loss = PredictionLoss(distance=name)(_P1, _P2, _Z1, _Z2)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(_PREDICTION_EXPECTED[name], abs=1e-12)


def _leaves(seed: int = 0) -> list[Tensor]:
    return [_randn(8, 5, seed=seed + k).requires_grad_() for k in range(4)]


@pytest.mark.parametrize("name", NAMES)
def test_prediction_loss_stop_gradient(name: str) -> None:
    p1, p2, z1, z2 = _leaves()
    PredictionLoss(distance=name)(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p1.grad.abs().sum() > 0
    assert p2.grad is not None and p2.grad.abs().sum() > 0

    p1, p2, z1, z2 = _leaves()
    PredictionLoss(distance=name, stop_gradient=False)(p1, p2, z1, z2).backward()
    for t in (p1, p2, z1, z2):
        assert t.grad is not None and t.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_prediction_loss_gradient_sign(name: str) -> None:
    """A small step along -grad lowers the loss and moves p1 towards its target z2: a distance, not a
    similarity (a flipped sign would push p1 away from z2)."""
    p1, p2, z1, z2 = _leaves(seed=3)
    criterion = PredictionLoss(distance=name)
    before = criterion(p1, p2, z1, z2)
    before.backward()
    assert p1.grad is not None
    with torch.no_grad():
        stepped = p1 - 1e-2 * p1.grad
        after = criterion(stepped, p2, z1, z2)
        assert after < before
        assert F.cosine_similarity(stepped, z2).mean() > F.cosine_similarity(p1, z2).mean()
        if name == "l2":
            assert (stepped - z2).norm() < (p1 - z2).norm()


def test_prediction_loss_accepts_a_single_row() -> None:
    rows = [t[:1] for t in (_P1, _P2, _Z1, _Z2)]
    assert PredictionLoss()(*rows).item() == pytest.approx(0.5 * 0.0 + 0.5 * -1.0)


# --------------------------------------------------------------------------------------- BarlowTwinsLoss


def _barlow_numpy(z1: np.ndarray, z2: np.ndarray, lambd: float, eps: float = 1e-5) -> tuple[float, float]:
    """Zbontar et al. Eq. 1-2 directly: (invariance, redundancy)."""
    n = z1.shape[0]
    s1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)  # numpy's var is the biased one (ddof=0)
    s2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    c = s1.T @ s2 / n
    on = float(((1 - np.diag(c)) ** 2).sum())
    off = float((c**2).sum() - (np.diag(c) ** 2).sum())
    return on, off


def test_barlow_matches_numpy_and_batchnorm() -> None:
    z1, z2 = _two_views()
    criterion = BarlowTwinsLoss()
    terms = criterion.terms(z1, z2)
    on, off = _barlow_numpy(z1.numpy(), z2.numpy(), lambd=5e-3)
    assert terms["invariance"].item() == pytest.approx(on, rel=1e-12)
    assert terms["redundancy"].item() == pytest.approx(off, rel=1e-12)
    assert criterion(z1, z2).item() == pytest.approx(on + 5e-3 * off, rel=1e-12)
    # the official code's form: BatchNorm1d(affine=False) in training mode, then c / N
    bn = torch.nn.BatchNorm1d(z1.shape[1], affine=False).to(F64).train()
    torch.testing.assert_close(criterion.cross_correlation(z1, z2), bn(z1).T @ bn(z2) / z1.shape[0])


def test_barlow_whitened_identical_views_give_zero() -> None:
    n, d, eps = 64, 8, 1e-5
    x = _randn(n, d, seed=4)
    q, _ = torch.linalg.qr(x - x.mean(0))  # orthonormal, zero-mean columns
    z = math.sqrt(n) * q  # standardised columns, mutually uncorrelated: C = I / (1 + eps)
    terms = BarlowTwinsLoss(eps=eps).terms(z, z.clone())
    assert terms["invariance"].item() == pytest.approx(d * (eps / (1 + eps)) ** 2, rel=1e-6)
    assert terms["redundancy"].item() < 1e-20
    assert BarlowTwinsLoss()(z, z.clone()).item() < 1e-8


def test_barlow_collapsed_batch() -> None:
    z = _randn(1, 5, seed=5).expand(16, 5)
    terms = BarlowTwinsLoss().terms(z, z)
    assert terms["invariance"].item() == pytest.approx(5.0)  # C = 0: every diagonal term is 1
    assert terms["redundancy"].item() == 0.0


def test_barlow_off_diagonal_false_is_invariance_only() -> None:
    z1, z2 = _two_views(seed=6)
    terms = BarlowTwinsLoss().terms(z1, z2)
    assert terms["redundancy"] > 0
    invariance_only = BarlowTwinsLoss(off_diagonal=False)(z1, z2)
    torch.testing.assert_close(invariance_only, terms["invariance"])
    assert BarlowTwinsLoss()(z1, z2) > invariance_only


def test_barlow_lambd_scales_only_the_redundancy() -> None:
    z1, z2 = _two_views(seed=7)
    small, large = BarlowTwinsLoss(lambd=1e-3), BarlowTwinsLoss(lambd=0.5)
    t_small, t_large = small.terms(z1, z2), large.terms(z1, z2)
    for key in ("invariance", "redundancy"):
        torch.testing.assert_close(t_small[key], t_large[key])
    torch.testing.assert_close(large(z1, z2) - small(z1, z2), (0.5 - 1e-3) * t_small["redundancy"])


# -------------------------------------------------------------------------------------------- VICRegLoss


def _vicreg_reference(x: Tensor, y: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> dict[str, Tensor]:
    """The official main_vicreg.py written out (unbiased variance, off-diagonals by a mask)."""
    n, d = x.shape
    repr_loss = ((x - y) ** 2).sum() / (n * d)
    x, y = x - x.mean(0), y - y.mean(0)
    std_x = torch.sqrt((x**2).sum(0) / (n - 1) + eps)
    std_y = torch.sqrt((y**2).sum(0) / (n - 1) + eps)
    std_loss = torch.clamp(gamma - std_x, min=0).mean() / 2 + torch.clamp(gamma - std_y, min=0).mean() / 2
    mask = ~torch.eye(d, dtype=torch.bool)
    cov_x, cov_y = x.T @ x / (n - 1), y.T @ y / (n - 1)
    cov_loss = (cov_x[mask] ** 2).sum() / d + (cov_y[mask] ** 2).sum() / d
    return {"invariance": repr_loss, "variance": std_loss, "covariance": cov_loss}


def test_vicreg_matches_reference() -> None:
    z1, z2 = _two_views(seed=8)
    criterion = VICRegLoss()
    terms, ref = criterion.terms(z1, z2), _vicreg_reference(z1, z2)
    for key in ("invariance", "variance", "covariance"):
        assert ref[key] > 0
        torch.testing.assert_close(terms[key], ref[key], rtol=1e-12, atol=1e-14)
    expected = 25 * ref["invariance"] + 25 * ref["variance"] + 1 * ref["covariance"]
    torch.testing.assert_close(criterion(z1, z2), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(terms["invariance"], F.mse_loss(z1, z2))


def test_vicreg_gamma_and_distance() -> None:
    z1, z2 = _two_views(seed=9)
    terms = VICRegLoss(gamma=3.0, distance="cosine").terms(z1, z2)
    torch.testing.assert_close(terms["variance"], _vicreg_reference(z1, z2, gamma=3.0)["variance"])
    torch.testing.assert_close(terms["invariance"], -F.cosine_similarity(z1, z2).mean())


@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_vicreg_collapsed_batch(gamma: float) -> None:
    z = _randn(1, 6, seed=10).expand(16, 6)
    terms = VICRegLoss(gamma=gamma).terms(z, z.clone())
    assert terms["variance"].item() == pytest.approx(gamma - math.sqrt(1e-4), abs=1e-12)
    assert terms["covariance"].item() == 0.0
    assert terms["invariance"].item() == 0.0


def test_vicreg_without_variance_term() -> None:
    z1, z2 = _two_views(seed=11)
    terms = VICRegLoss().terms(z1, z2)
    assert terms["variance"] > 0
    ablated = VICRegLoss(std_coeff=0.0)(z1, z2)
    torch.testing.assert_close(ablated, 25 * terms["invariance"] + terms["covariance"])
    assert VICRegLoss()(z1, z2) > ablated


def test_vicreg_gradient_signs() -> None:
    """A step along -grad of the invariance brings the views together; of the variance, spreads the
    columns whose std is below gamma."""
    z1, z2 = _two_views(seed=12)
    z1.requires_grad_()
    criterion = VICRegLoss()
    invariance = criterion.terms(z1, z2)["invariance"]
    (grad,) = torch.autograd.grad(invariance, z1)
    with torch.no_grad():
        stepped = z1 - 0.1 * grad
        assert criterion.terms(stepped, z2)["invariance"] < invariance
        assert (stepped - z2).norm() < (z1 - z2).norm()

    variance = criterion.terms(z1, z2)["variance"]
    (grad,) = torch.autograd.grad(variance, z1)
    with torch.no_grad():
        stepped = z1 - 0.1 * grad
        low = z1.std(0) < 1.0
        assert low.any()
        assert (stepped.std(0)[low] > z1.std(0)[low]).all()
        assert criterion.terms(stepped, z2)["variance"] < variance


def test_negative_weights_raise() -> None:
    with pytest.raises(ValueError, match="lambd must be >= 0"):
        BarlowTwinsLoss(lambd=-1.0)
    with pytest.raises(ValueError, match="std_coeff must be >= 0"):
        VICRegLoss(std_coeff=-1.0)


# ---------------------------------------------------------------------------------------------- shapes

_BAD_PAIRS = {
    "1-d": (torch.zeros(4), torch.zeros(4)),
    "3-d": (torch.zeros(4, 3, 2), torch.zeros(4, 3, 2)),
    "mismatch": (torch.zeros(4, 3), torch.zeros(4, 2)),
    "rows mismatch": (torch.zeros(4, 3), torch.zeros(5, 3)),
    "no dimension": (torch.zeros(4, 0), torch.zeros(4, 0)),
}


@pytest.mark.parametrize("criterion", [BarlowTwinsLoss(), VICRegLoss()], ids=["barlow", "vicreg"])
@pytest.mark.parametrize("case", list(_BAD_PAIRS))
def test_batch_losses_reject_bad_shapes(criterion: torch.nn.Module, case: str) -> None:
    z1, z2 = _BAD_PAIRS[case]
    with pytest.raises(ValueError, match="expected"):
        criterion(z1, z2)


@pytest.mark.parametrize("criterion", [BarlowTwinsLoss(), VICRegLoss()], ids=["barlow", "vicreg"])
def test_batch_losses_need_two_rows(criterion: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="at least 2 row"):
        criterion(torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="at least 2 row"):
        criterion.terms(torch.ones(1, 3), torch.ones(1, 3))


@pytest.mark.parametrize("case", list(_BAD_PAIRS))
def test_prediction_loss_rejects_bad_shapes(case: str) -> None:
    p, z = _BAD_PAIRS[case]
    with pytest.raises(ValueError, match="expected"):
        PredictionLoss()(p, p, z, z)
    good = torch.ones(4, 3)
    with pytest.raises(ValueError, match="expected"):
        PredictionLoss()(good, good, good, torch.ones(4, 2))
