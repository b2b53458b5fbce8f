r"""Label-free diagnostics of collapse in an embedding matrix :math:`Z \in \mathbb{R}^{N \times D}`.

Non-contrastive self-supervised learning (SimSiam, BYOL, Barlow Twins, VICReg) can reach a trivial minimum
where every input maps to the same point (*complete collapse*) or where the embeddings span only a few of
the :math:`D` dimensions (*dimensional collapse*). These diagnostics need no labels, so they can be logged
during training:

- **normalised std** (:func:`normalised_std`), `SimSiam <https://arxiv.org/abs/2011.10566>`_ (Chen & He,
  CVPR 2021), Section 4.1: the per-dimension std of the L2-normalised rows, averaged over dimensions and
  multiplied by :math:`\sqrt{D}`,

  .. math::
      \text{std}_n = \frac{\sqrt{D}}{D}\sum_{j=1}^{D} \operatorname{std}_i\!\left(
      \frac{z_{ij}}{\lVert z_i \rVert_2}\right),

  about 1 for an isotropic Gaussian embedding (a uniform random unit vector has coordinates of variance
  exactly :math:`1/D`) and 0 at complete collapse (it does not see dimensional collapse into a rotated
  subspace: see :func:`normalised_std`);
- **spectra** (:func:`singular_values`, :func:`covariance_spectrum`), `Understanding Dimensional Collapse in
  Contrastive Self-supervised Learning <https://arxiv.org/abs/2110.09348>`_ (Jing et al., ICLR 2022),
  Fig. 2: the sorted eigenvalues :math:`\lambda_1 \ge \dots \ge \lambda_D \ge 0` of the covariance
  :math:`C = \frac{1}{N-1}\sum_i (z_i - \bar z)(z_i - \bar z)^\top`; collapsed dimensions show as
  eigenvalues that drop to (numerically) zero on a log scale;
- **RankMe** (:func:`rankme`), `RankMe <https://arxiv.org/abs/2210.02885>`_ (Garrido et al., ICML 2023),
  Definition 1 / Eq. 1: the exponential of the entropy of the normalised singular values
  :math:`\sigma_k` of :math:`Z` itself (not centred),

  .. math::
      \text{RankMe}(Z) = \exp\Big(-\sum_{k=1}^{\min(N, D)} p_k \log p_k\Big), \qquad
      p_k = \frac{\sigma_k(Z)}{\lVert \sigma(Z) \rVert_1} + \varepsilon,

  a smooth rank in :math:`[1, \min(N, D)]` (up to terms of order :math:`\varepsilon`);
- **α-ReQ** (:func:`alpha_req`), `α-ReQ: Assessing Representation Quality in Self-Supervised Learning by
  measuring eigenspectrum decay <https://arxiv.org/abs/2202.13040>`_ (Agrawal et al., NeurIPS 2022): the
  exponent of a power law :math:`\lambda_k \propto k^{-\alpha}` fitted by least squares to
  :math:`\log \lambda_k` against :math:`\log k`,

  .. math::
      \log \lambda_k = c - \alpha \log k, \qquad
      \hat\alpha = -\frac{\sum_k (\log k - \overline{\log k})(\log \lambda_k - \overline{\log \lambda})}
      {\sum_k (\log k - \overline{\log k})^2},

  about 0 for a flat (isotropic) spectrum and large when the variance sits in a few directions;
- **effective dimensions** (:func:`effective_dims`): the number of covariance eigenvalues above
  :math:`10^{-3}\lambda_1`.

Everything is computed in float64 on the embedding's device; scores come back as Python floats.

.. code-block:: python

    collapse_diagnostics(z)  # {"norm_std", "rankme", "alpha_req", "effective_dims"}
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import Tensor

__all__ = [
    "COLLAPSE_METRICS",
    "EFFECTIVE_DIMS_RTOL",
    "alpha_req",
    "collapse_diagnostics",
    "covariance_spectrum",
    "effective_dims",
    "normalised_std",
    "rankme",
    "singular_values",
]

COLLAPSE_METRICS: tuple[str, ...] = ("norm_std", "rankme", "alpha_req", "effective_dims")
EFFECTIVE_DIMS_RTOL: float = 1e-3
"""A covariance eigenvalue counts as an effective dimension above this fraction of the largest."""


def _check(z: Tensor | ArrayLike) -> tuple[Tensor, float]:
    """The embedding as a detached float64 ``(N, D)`` tensor, checked, and the machine epsilon of its
    dtype."""
    x = torch.as_tensor(z)
    if x.dim() != 2:
        raise ValueError(
            f"The embedding must be an (N, D) matrix, one row per sample, got shape {tuple(x.shape)}: "
            "flatten a batch of feature maps to (N, D) first, e.g. z.flatten(1)"
        )
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(
            f"Collapse diagnostics need at least 2 rows (samples) and 1 column, got shape {tuple(x.shape)}: "
            "pass the embeddings of a batch or of a held-out set"
        )
    if x.is_complex():
        raise ValueError(f"The embedding must be real, got {x.dtype}")
    x = x.detach()
    if not torch.isfinite(x).all():
        raise ValueError(
            "The embedding has NaN/inf values (a diverged run?): collapse diagnostics are undefined; "
            "check the model and its learning rate, or stop logging once the loss is non-finite"
        )
    eps = torch.finfo(x.dtype if x.is_floating_point() else torch.float64).eps
    return x.to(torch.float64), eps


def _singular_values(x: Tensor, center: bool) -> Tensor:
    """Descending singular values of the float64 ``x``, centred over rows when asked."""
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    return torch.linalg.svdvals(x)


def _covariance_spectrum(x: Tensor, center: bool = True) -> Tensor:
    """:math:`\\sigma_k^2 / (N - 1)` of the float64 ``x``, padded with zeros to ``D`` values."""
    n, d = x.shape
    eig = _singular_values(x, center).square() / (n - 1)
    if center:  # rank at most N - 1: a last singular value when N <= D is rounding only
        eig = eig[: n - 1]
    return torch.cat([eig, eig.new_zeros(d - eig.numel())])


# --------------------------------------------------------------------------------------------------------
# Complete collapse: the normalised std
# --------------------------------------------------------------------------------------------------------


def normalised_std(z: Tensor | ArrayLike) -> float:
    r"""SimSiam's collapse indicator: the std over rows of each dimension of the L2-normalised embedding,
    averaged over dimensions and multiplied by :math:`\sqrt{D}` (`SimSiam
    <https://arxiv.org/abs/2011.10566>`_, Section 4.1).

    .. math::
        \text{std}_n = \frac{\sqrt{D}}{D}\sum_{j=1}^{D} \sqrt{\frac{1}{N-1}\sum_{i=1}^{N}
        \big(u_{ij} - \bar u_j\big)^2}, \qquad u_i = \frac{z_i}{\lVert z_i \rVert_2}.

    The std is the unbiased sample std (divisor :math:`N - 1`, ``torch.std``'s default). SimSiam plots the
    plain average, which is :math:`1/\sqrt{D}` for a zero-mean isotropic Gaussian :math:`z`; the factor
    :math:`\sqrt{D}` makes that reference 1 for every :math:`D` (each coordinate of a uniform random unit
    vector has variance exactly :math:`1/D`). It is 0 at complete collapse (all rows equal up to a positive
    scale) and unchanged by scaling :math:`Z`. A zero row stays zero (it is not normalised). SimSiam
    applies it to the projector output :math:`z`, before the predictor.

    It detects *complete* collapse, not *dimensional* collapse in a rotated subspace: unit vectors
    :math:`u = Bw` spread in a random :math:`k`-dimensional subspace (orthonormal :math:`B \in
    \mathbb{R}^{D \times k}`) have coordinate variances :math:`\lVert B_{j\cdot} \rVert^2 / k \approx 1/D`,
    so the score stays near 1 (about 0.8 even for :math:`k = 1` with random signs); only an axis-aligned
    subspace gives :math:`\sqrt{k/D}`. Use :func:`rankme`, :func:`effective_dims` or :func:`alpha_req`
    for dimensional collapse.

    Args:
        z: the embedding matrix, one row per sample.

    Returns:
        The normalised std, in :math:`[0, \sqrt{N/(N-1)}]`; about 1 for an isotropic Gaussian embedding.

    Raises:
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or has NaN/inf values.

    **Shapes:** input ``z`` :math:`(N, D)`.
    """
    x, _ = _check(z)
    return _normalised_std(x)


def _normalised_std(x: Tensor) -> float:
    return float(F.normalize(x, dim=1).std(dim=0, correction=1).mean() * math.sqrt(x.shape[1]))


# --------------------------------------------------------------------------------------------------------
# Dimensional collapse: spectra, RankMe, alpha-ReQ, effective dimensions
# --------------------------------------------------------------------------------------------------------


def singular_values(z: Tensor | ArrayLike, center: bool = True) -> Tensor:
    r"""Singular values of the (centred) embedding matrix, in descending order (``torch.linalg.svdvals``).

    With ``center=True`` they are those of :math:`Z - \mathbf{1}\bar z^\top`, whose squares divided by
    :math:`N - 1` are the covariance eigenvalues (:func:`covariance_spectrum`); with ``center=False`` they
    are those of :math:`Z` itself, as :func:`rankme` uses them.

    Args:
        z: the embedding matrix, one row per sample.
        center: subtract the mean row first.

    Returns:
        The :math:`\min(N, D)` singular values, float64, descending.

    Raises:
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or has NaN/inf values.

    **Shapes:** input ``z`` :math:`(N, D)`; output :math:`(\min(N, D),)`.
    """
    x, _ = _check(z)
    return _singular_values(x, center)


def covariance_spectrum(z: Tensor | ArrayLike) -> Tensor:
    r"""Eigenvalues of the embedding covariance, in descending order (`Jing et al.
    <https://arxiv.org/abs/2110.09348>`_, Fig. 2, plot their logarithm against the rank).

    .. math::
        C = \frac{1}{N-1}\sum_{i=1}^{N} (z_i - \bar z)(z_i - \bar z)^\top, \qquad
        \lambda_k(C) = \frac{\sigma_k(Z - \mathbf{1}\bar z^\top)^2}{N - 1},

    the same normalisation as ``numpy.cov`` (Jing et al. divide by :math:`N`, which only shifts the log
    spectrum). Computed from the singular values of the centred :math:`Z` rather than by an eigensolver on
    :math:`C`: that does not square the condition number, and the eigenvalues are :math:`\ge 0` by
    construction (no clamping needed). The centred :math:`Z` has rank at most :math:`N - 1`: when
    :math:`N \le D` the last :math:`D - N + 1` eigenvalues are exact zeros.

    Args:
        z: the embedding matrix, one row per sample.

    Returns:
        The :math:`D` eigenvalues, float64, descending, non-negative.

    Raises:
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or has NaN/inf values.

    **Shapes:** input ``z`` :math:`(N, D)`; output :math:`(D,)`.
    """
    x, _ = _check(z)
    return _covariance_spectrum(x)


def _rankme(x: Tensor, eps: float) -> float:
    s = _singular_values(x, center=False)
    total = s.sum()
    p = (s / total if total > 0 else torch.zeros_like(s)) + eps
    return float(torch.exp(-torch.xlogy(p, p).sum()))


def rankme(z: Tensor | ArrayLike, eps: float = 1e-7) -> float:
    r"""RankMe, the exponential of the entropy of the normalised singular values of :math:`Z` (`Garrido et
    al. <https://arxiv.org/abs/2210.02885>`_, Definition 1 / Eq. 1).

    .. math::
        \text{RankMe}(Z) = \exp\Big(-\sum_{k=1}^{\min(N, D)} p_k \log p_k\Big), \qquad
        p_k = \frac{\sigma_k(Z)}{\lVert \sigma(Z) \rVert_1} + \varepsilon.

    As in the paper, the singular values are those of the embedding matrix itself, **not centred**: a
    constant offset off the directions the rows vary in adds a singular value (use :func:`effective_dims`
    or :func:`covariance_spectrum` for the centred view). It is scale invariant, 1 for a rank-1 matrix and
    :math:`\min(N, D)` for a matrix with equal singular values, up to terms of order :math:`\varepsilon`.
    The zero matrix gets the formula's value with :math:`\sigma / \lVert\sigma\rVert_1 := 0`, about 1.
    The paper estimates it on 25,600 samples; few rows bound it by :math:`N`.

    Args:
        z: the embedding matrix, one row per sample.
        eps: :math:`\varepsilon`, the paper's guard against :math:`\log 0` (``0`` is allowed:
            :math:`0 \log 0 = 0`).

    Returns:
        RankMe, in :math:`[1, \min(N, D)]` up to terms of order :math:`\varepsilon`.

    Raises:
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or has NaN/inf values; ``eps`` is negative.

    **Shapes:** input ``z`` :math:`(N, D)`.
    """
    if not eps >= 0:
        raise ValueError(f"eps must be non-negative (the paper uses 1e-7), got {eps}")
    x, _ = _check(z)
    return _rankme(x, eps)


def _alpha_fit(eig: Tensor, rtol: float, fit_range: tuple[float, float] | None) -> float:
    """Least-squares power-law exponent of the descending ``eig`` (see :func:`alpha_req`)."""
    d = eig.numel()
    ranks = torch.arange(1, d + 1, dtype=eig.dtype, device=eig.device)
    keep = eig > rtol * eig[0] if eig[0] > 0 else torch.zeros_like(eig, dtype=torch.bool)
    if fit_range is not None:
        start, stop = fit_range
        window = torch.zeros_like(keep)
        window[math.floor(start * d) : math.ceil(stop * d)] = True
        keep &= window
    if int(keep.sum()) < 2:
        return math.nan
    log_k, log_eig = ranks[keep].log(), eig[keep].log()
    dk = log_k - log_k.mean()
    return float(-(dk * (log_eig - log_eig.mean())).sum() / dk.square().sum())


def alpha_req(
    z: Tensor | ArrayLike,
    center: bool = True,
    fit_range: tuple[float, float] | None = None,
    rtol: float | None = None,
) -> float:
    r"""α-ReQ: the decay exponent :math:`\alpha` of the covariance eigenspectrum, :math:`\lambda_k \propto
    k^{-\alpha}` (`Agrawal et al. <https://arxiv.org/abs/2202.13040>`_, NeurIPS 2022).

    A least-squares line through :math:`(\log k, \log \lambda_k)`,

    .. math::
        \log \lambda_k = c - \alpha \log k, \qquad
        \hat\alpha = -\frac{\sum_k (\log k - \overline{\log k})(\log \lambda_k - \overline{\log \lambda})}
        {\sum_k (\log k - \overline{\log k})^2},

    over the eigenvalues of :func:`covariance_spectrum`. Only eigenvalues that are positive beyond rounding
    enter the fit: :math:`\lambda_k > \text{rtol}\cdot\lambda_1`, by default
    :math:`\text{rtol} = (\max(N, D)\,\epsilon)^2` with :math:`\epsilon` the machine epsilon of ``z``'s
    dtype, i.e. the singular values that ``torch.linalg.matrix_rank``'s default tolerance counts. A
    rank-:math:`r` embedding is thus fitted on its :math:`r` non-zero eigenvalues. The default is
    conservative and grows with :math:`N`: for float32 and :math:`N = 20{,}000` it is about
    :math:`6 \cdot 10^{-6}`, but for bfloat16/float16 embeddings it cuts most of the spectrum (pass
    ``rtol`` explicitly, or compute the embedding in float32). Scale invariant; about 0
    for an isotropic embedding, larger the faster the variance decays (the paper relates good linear-probe
    accuracy to :math:`\alpha` near 1).

    Args:
        z: the embedding matrix, one row per sample.
        center: use the covariance (centred :math:`Z`); ``False``: the eigenvalues of the second-moment
            matrix :math:`Z^\top Z / (N - 1)` instead (the mean counts as a direction).
        fit_range: ``(start, stop)``, fractions of the rank range with :math:`0 \le` start :math:`<` stop
            :math:`\le 1`: fit only the ranks :math:`\lfloor \text{start}\cdot D\rfloor < k \le \lceil
            \text{stop}\cdot D\rceil` (e.g. ``(0.0, 0.5)`` for the top half), still only positive ones.
            ``None``: every rank.
        rtol: relative tolerance on the eigenvalues (see above); ``None``: the default.

    Returns:
        :math:`\hat\alpha`, or NaN when fewer than 2 eigenvalues enter the fit (complete collapse, a rank-1
        embedding, or too narrow a ``fit_range``).

    Raises:
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or has NaN/inf values; malformed
            ``fit_range`` or ``rtol``.

    **Shapes:** input ``z`` :math:`(N, D)`.
    """
    _check_fit_range(fit_range)
    if rtol is not None and not 0 <= rtol < 1:
        raise ValueError(f"rtol must lie in [0, 1), got {rtol}; pass None for the matrix-rank default")
    x, eps = _check(z)
    if rtol is None:
        rtol = _default_rtol(x, eps)
    return _alpha_fit(_covariance_spectrum(x, center), rtol, fit_range)


def _default_rtol(x: Tensor, eps: float) -> float:
    return (max(x.shape) * eps) ** 2


def _check_fit_range(fit_range: tuple[float, float] | None) -> None:
    if fit_range is None:
        return
    if len(fit_range) != 2 or not 0.0 <= fit_range[0] < fit_range[1] <= 1.0:
        raise ValueError(
            f"fit_range must be (start, stop) fractions of the rank range with 0 <= start < stop <= 1, got "
            f"{fit_range!r}; e.g. (0.0, 0.5) fits the top half of the spectrum"
        )


def _effective_dims(eig: Tensor, rtol: float) -> int:
    return int((eig > rtol * eig[0]).sum()) if eig[0] > 0 else 0


def effective_dims(z: Tensor | ArrayLike, rtol: float = EFFECTIVE_DIMS_RTOL) -> int:
    r"""The number of covariance eigenvalues above ``rtol`` times the largest,
    :math:`\#\{k : \lambda_k > \text{rtol}\cdot\lambda_1\}`, a hard count of the dimensions in use.

    With the default :math:`10^{-3}` a direction counts when its std is above about 3 % of the leading
    one. All rows equal (a zero covariance) gives 0. Scale invariant.

    Args:
        z: the embedding matrix, one row per sample.
        rtol: the relative threshold, in :math:`[0, 1)`.

    Returns:
        An integer in :math:`[0, \min(N - 1, D)]`.

    Raises:
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or has NaN/inf values; ``rtol`` outside
            :math:`[0, 1)`.

    **Shapes:** input ``z`` :math:`(N, D)`.
    """
    if not 0 <= rtol < 1:
        raise ValueError(f"rtol must lie in [0, 1), got {rtol}; the default is {EFFECTIVE_DIMS_RTOL}")
    x, _ = _check(z)
    return _effective_dims(_covariance_spectrum(x), rtol)


def collapse_diagnostics(z: Tensor | ArrayLike) -> dict[str, float]:
    r"""All the diagnostics of one embedding at once, for logging during training (one check, one
    covariance spectrum).

    Args:
        z: the embedding matrix, one row per sample.

    Returns:
        ``{"norm_std", "rankme", "alpha_req", "effective_dims"}`` (:data:`COLLAPSE_METRICS`): the
        :func:`normalised_std`, :func:`rankme` (:math:`\varepsilon = 10^{-7}`), :func:`alpha_req` (centred,
        every rank, default tolerance; NaN below 2 positive eigenvalues) and :func:`effective_dims`
        (eigenvalues above :math:`10^{-3}\lambda_1`, an int).

    Raises:
        ValueError: ``z`` is not 2-D, has fewer than 2 rows, or has NaN/inf values (a diverged run).

    **Shapes:** input ``z`` :math:`(N, D)`.
    """
    x, eps = _check(z)
    eig = _covariance_spectrum(x)
    return {
        "norm_std": _normalised_std(x),
        "rankme": _rankme(x, 1e-7),
        "alpha_req": _alpha_fit(eig, _default_rtol(x, eps), None),
        "effective_dims": _effective_dims(eig, EFFECTIVE_DIMS_RTOL),
    }
