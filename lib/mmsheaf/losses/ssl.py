r"""Non-contrastive self-supervised losses: two views of a batch, no negatives, no labels.

The study of issue 17 crosses a **similarity axis** (how the two views are compared, :data:`VIEW_DISTANCES`)
with the mechanisms that keep the embeddings from collapsing (stop-gradient and predictor, redundancy
reduction, variance regularisation). For two rows :math:`a, b \in \mathbb{R}^D`, each distance is a
quantity to **minimise**:

- ``cosine``: :math:`-\frac{\langle a, b\rangle}{\|a\|\,\|b\|}`, SimSiam's :math:`\mathcal{D}`;
- ``normalised_l2``: :math:`\big\|\frac{a}{\|a\|} - \frac{b}{\|b\|}\big\|^2 = 2 - 2\cos(a, b)`, BYOL's;
- ``l2``: :math:`\frac{1}{D}\|a - b\|^2`, VICReg's invariance;
- ``dot``: :math:`-\frac{1}{D}\langle a, b\rangle`, the plain dot product (unbounded below).

The losses (each a small :class:`~torch.nn.Module`, the distance injected by name):

- **SimSiam / BYOL** (:class:`PredictionLoss`), predictions :math:`p_k = h(z_k)` of the projections
  :math:`z_k` of view :math:`k`:

  .. math::
      \mathcal{L} = \tfrac{1}{2}\, d\big(p_1, \mathrm{sg}(z_2)\big)
      + \tfrac{1}{2}\, d\big(p_2, \mathrm{sg}(z_1)\big),

  averaged over the batch, :math:`\mathrm{sg}` the stop-gradient. SimSiam: Eq. 1 (:math:`\mathcal{D}`),
  Eq. 2 (symmetrised) and Eq. 4 / Algorithm 1 (with stop-gradient) of Chen & He, CVPR 2021,
  `arXiv:2011.10566 <https://arxiv.org/abs/2011.10566>`_. BYOL: Eq. 2 of Grill et al., NeurIPS 2020,
  `arXiv:2006.07733 <https://arxiv.org/abs/2006.07733>`_, :math:`\|\bar q - \bar z'\|^2 = 2 - 2\cos`, its
  target :math:`z'` from a momentum network (the caller's business) and the two directions *summed*
  (:math:`\mathcal{L}^{\mathrm{BYOL}} = \mathcal{L} + \tilde{\mathcal{L}}`): twice our value, a
  rescaling only.

- **Barlow Twins** (:class:`BarlowTwinsLoss`), Eq. 1-2 of Zbontar et al., ICML 2021,
  `arXiv:2103.03230 <https://arxiv.org/abs/2103.03230>`_, on the cross-correlation
  :math:`\mathcal{C} = \frac{1}{N}\hat z_1^{\top} \hat z_2` of the views standardised along the batch:

  .. math::
      \mathcal{L}_{BT} = \sum_i (1 - \mathcal{C}_{ii})^2 + \lambda \sum_i \sum_{j \neq i} \mathcal{C}_{ij}^2.

- **VICReg** (:class:`VICRegLoss`), Eq. 1-6 of Bardes et al., ICLR 2022,
  `arXiv:2105.04906 <https://arxiv.org/abs/2105.04906>`_, with the official implementation's averaging:

  .. math::
      \ell = \lambda\, s(Z, Z') + \mu\, \tfrac{1}{2}\big[v(Z) + v(Z')\big] + \nu \big[c(Z) + c(Z')\big],

  :math:`s = \frac{1}{N}\sum_b d(z_b, z'_b)`, :math:`v(Z) = \frac{1}{D}\sum_j \max\big(0, \gamma -
  \sqrt{\mathrm{Var}(z^j) + \epsilon}\big)` (unbiased variance), :math:`c(Z) = \frac{1}{D}\sum_{i \neq j}
  \mathrm{Cov}(Z)_{ij}^2`, :math:`\mathrm{Cov}(Z) = \frac{1}{N-1}(Z - \bar Z)^{\top}(Z - \bar Z)`.

Implementations follow the authors' code (`facebookresearch/simsiam`, `barlowtwins`, `vicreg`) and
`solo-learn <https://github.com/vturrisi/solo-learn>`_ for the defaults.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["VIEW_DISTANCES", "BarlowTwinsLoss", "PredictionLoss", "VICRegLoss", "view_distance"]

Distance = Callable[[Tensor, Tensor], Tensor]


def _neg_cosine(a: Tensor, b: Tensor) -> Tensor:
    return -F.cosine_similarity(a, b, dim=1, eps=1e-8)


def _normalised_l2(a: Tensor, b: Tensor) -> Tensor:
    return (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(dim=1)


def _l2(a: Tensor, b: Tensor) -> Tensor:
    return F.mse_loss(a, b, reduction="none").mean(dim=1)


def _neg_dot(a: Tensor, b: Tensor) -> Tensor:
    return -(a * b).sum(dim=1) / a.shape[1]


VIEW_DISTANCES: dict[str, Distance] = {
    "cosine": _neg_cosine,
    "normalised_l2": _normalised_l2,
    "l2": _l2,
    "dot": _neg_dot,
}
r"""The similarity axis: per-row distances to minimise, two :math:`(B, D)` tensors to :math:`(B,)`.

- ``cosine``: :math:`-\cos(a, b)` in :math:`[-1, 1]`, SimSiam's :math:`\mathcal{D}` (Eq. 1 of
  `arXiv:2011.10566 <https://arxiv.org/abs/2011.10566>`_); scale-invariant.
- ``normalised_l2``: :math:`\|a/\|a\| - b/\|b\|\|^2 = 2 - 2\cos(a, b)` in :math:`[0, 4]`, BYOL's loss (Eq. 2
  of `arXiv:2006.07733 <https://arxiv.org/abs/2006.07733>`_); the same gradient direction as ``cosine``,
  twice its size.
- ``l2``: :math:`\frac{1}{D}\|a - b\|^2`, VICReg's invariance (``F.mse_loss`` per row); sensitive to scale,
  minimised by shrinking both rows towards each other (and to zero: collapse unless regularised).
- ``dot``: :math:`-\langle a, b\rangle / D`, **unbounded below**: for aligned rows it decreases without limit
  as the norms grow, so the embedding scale can grow without bound; an ablation, not a loss to train with
  alone.
"""


def view_distance(name: str) -> Distance:
    """The distance of :data:`VIEW_DISTANCES` called ``name``.

    Args:
        name: one of ``cosine``, ``normalised_l2``, ``l2``, ``dot``.

    Raises:
        ValueError: for an unknown name, listing the choices.
    """
    try:
        return VIEW_DISTANCES[name]
    except KeyError:
        raise ValueError(f"unknown distance {name!r}: choose one of {', '.join(VIEW_DISTANCES)}") from None


def _check_views(min_rows: int, **views: Tensor) -> None:
    """Raise a :class:`ValueError` unless the ``views`` are (B, D) tensors of one shape, B >= ``min_rows``."""
    shapes = {name: tuple(v.shape) for name, v in views.items()}
    listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
    first = next(iter(shapes.values()))
    if any(len(s) != 2 for s in shapes.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"expected (B, D) tensors of the same shape, got {listed}: pass one row per example")
    if first[0] < min_rows or first[1] < 1:
        raise ValueError(
            f"expected at least {min_rows} row(s) and 1 dimension, got {listed}: this loss is computed over "
            f"the batch, pass a larger batch"
        )


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}: pass a non-negative weight")


def _off_diagonal(m: Tensor) -> Tensor:
    """The off-diagonal entries of a square matrix, flattened (the authors' ``off_diagonal``)."""
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


class PredictionLoss(nn.Module):
    r"""SimSiam's and BYOL's symmetric prediction loss:

    .. math::
        \mathcal{L} = \frac{1}{2B}\sum_b d\big(p_{1,b}, \mathrm{sg}(z_{2,b})\big)
        + \frac{1}{2B}\sum_b d\big(p_{2,b}, \mathrm{sg}(z_{1,b})\big),

    SimSiam Eq. 4 / Algorithm 1 (`arXiv:2011.10566 <https://arxiv.org/abs/2011.10566>`_; without the
    stop-gradient: Eq. 2) with ``distance="cosine"``; BYOL Eq. 2
    (`arXiv:2006.07733 <https://arxiv.org/abs/2006.07733>`_) with ``distance="normalised_l2"``, except that
    BYOL sums the two directions where SimSiam averages them: the factor 1/2 only rescales the loss (and the
    learning rate it pairs with). BYOL's targets come from a momentum encoder, which is the caller's: pass
    its projections as ``z1, z2``. The "no predictor" ablation is the caller passing ``p1, p2 = z1, z2``.

    Args:
        distance: a name of :data:`VIEW_DISTANCES`.
        stop_gradient: detach the targets :math:`z` (:math:`\mathrm{sg}`); ``False`` is the SimSiam ablation
            that collapses.

    **Shapes:** inputs ``p1, p2, z1, z2`` :math:`(B, D)` each; output a scalar.
    """

    def __init__(self, distance: str = "cosine", stop_gradient: bool = True) -> None:
        super().__init__()
        self.distance_name = distance
        self.distance = view_distance(distance)
        self.stop_gradient = stop_gradient

    def extra_repr(self) -> str:
        return f"distance={self.distance_name!r}, stop_gradient={self.stop_gradient}"

    def forward(self, p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
        _check_views(1, p1=p1, p2=p2, z1=z1, z2=z2)
        if self.stop_gradient:
            z1, z2 = z1.detach(), z2.detach()
        return 0.5 * self.distance(p1, z2).mean() + 0.5 * self.distance(p2, z1).mean()


class BarlowTwinsLoss(nn.Module):
    r"""`Barlow Twins <https://arxiv.org/abs/2103.03230>`_ redundancy reduction (Zbontar et al., Eq. 1-2):

    .. math::
        \mathcal{L}_{BT} = \underbrace{\sum_i (1 - \mathcal{C}_{ii})^2}_{\text{invariance}}
        + \lambda \underbrace{\sum_i \sum_{j \neq i} \mathcal{C}_{ij}^2}_{\text{redundancy}},
        \qquad \mathcal{C} = \frac{1}{N} \hat z_1^{\top} \hat z_2,

    :math:`\hat z_k` the view standardised along the batch, :math:`\hat z = (z - \bar z) /
    \sqrt{\sigma^2 + \epsilon}` with the biased variance :math:`\sigma^2` (the official code's
    ``BatchNorm1d(affine=False)`` in training mode), so that :math:`\mathcal{C}_{ij}` is the correlation
    of Eq. 2 up to :math:`\epsilon`. The loss is 0 when the two views are equal and their dimensions
    decorrelated (:math:`\mathcal{C} = I`); a collapsed batch has :math:`\hat z = 0`, invariance :math:`D`.

    Args:
        lambd: weight :math:`\lambda` of the redundancy term; 5e-3, the paper's and solo-learn's default.
        off_diagonal: keep the redundancy term; ``False`` drops it (invariance only: the collapse ablation).
        eps: :math:`\epsilon` added to the variance, ``BatchNorm1d``'s default.

    **Shapes:** inputs ``z1, z2`` :math:`(N, D)`, :math:`N \ge 2`; output a scalar (:meth:`terms`: a dict of
    scalars).
    """

    def __init__(self, lambd: float = 5e-3, off_diagonal: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        _check_nonnegative(lambd=lambd, eps=eps)
        self.lambd = lambd
        self.off_diagonal = off_diagonal
        self.eps = eps

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}, off_diagonal={self.off_diagonal}, eps={self.eps}"

    def _standardise(self, z: Tensor) -> Tensor:
        centred = z - z.mean(dim=0)
        return centred / torch.sqrt(centred.pow(2).mean(dim=0) + self.eps)

    def cross_correlation(self, z1: Tensor, z2: Tensor) -> Tensor:
        r"""The :math:`(D, D)` matrix :math:`\mathcal{C} = \hat z_1^{\top} \hat z_2 / N`."""
        _check_views(2, z1=z1, z2=z2)
        return self._standardise(z1).T @ self._standardise(z2) / z1.shape[0]

    def terms(self, z1: Tensor, z2: Tensor) -> dict[str, Tensor]:
        """The unweighted terms: ``{"invariance": sum_i (1 - C_ii)^2, "redundancy": sum_{i != j} C_ij^2}``."""
        c = self.cross_correlation(z1, z2)
        return {
            "invariance": (1 - torch.diagonal(c)).pow(2).sum(),
            "redundancy": _off_diagonal(c).pow(2).sum(),
        }

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        terms = self.terms(z1, z2)
        if not self.off_diagonal:
            return terms["invariance"]
        return terms["invariance"] + self.lambd * terms["redundancy"]


class VICRegLoss(nn.Module):
    r"""`VICReg <https://arxiv.org/abs/2105.04906>`_ (Bardes et al., Eq. 1-6), official implementation:

    .. math::
        \ell = \lambda\, s(Z, Z') + \mu\, \tfrac{1}{2}\big[v(Z) + v(Z')\big] + \nu\big[c(Z) + c(Z')\big],

    - invariance :math:`s = \frac{1}{N}\sum_b d(z_b, z'_b)`; with the default ``l2`` this is
      ``F.mse_loss(z1, z2)`` (the code's mean over the :math:`N D` entries; the paper's Eq. 5 sums over
      dimensions instead, a factor :math:`D` folded into :math:`\lambda`);
    - variance (Eq. 1-2) :math:`v(Z) = \frac{1}{D}\sum_j \mathrm{ReLU}\big(\gamma - \sqrt{\mathrm{Var}(z^j) +
      \epsilon}\big)`, unbiased variance along the batch; the code halves the sum of the two views;
    - covariance (Eq. 3-4) :math:`c(Z) = \frac{1}{D}\sum_{i \neq j}\mathrm{Cov}(Z)_{ij}^2`,
      :math:`\mathrm{Cov}(Z) = \frac{1}{N-1}(Z - \bar Z)^{\top}(Z - \bar Z)`.

    A collapsed batch (all rows equal) has variance term :math:`\gamma - \sqrt{\epsilon}` and covariance 0.

    Args:
        sim_coeff: :math:`\lambda`, weight of the invariance (25, the paper's and solo-learn's default).
        std_coeff: :math:`\mu`, weight of the variance term (25); 0 is the "without variance" ablation.
        cov_coeff: :math:`\nu`, weight of the covariance term (1).
        distance: the invariance's distance, a name of :data:`VIEW_DISTANCES`.
        gamma: target standard deviation :math:`\gamma`.
        eps: :math:`\epsilon` added to the variance before the square root.

    **Shapes:** inputs ``z1, z2`` :math:`(N, D)`, :math:`N \ge 2`; output a scalar (:meth:`terms`: a dict of
    scalars).
    """

    def __init__(
        self,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        distance: str = "l2",
        gamma: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        _check_nonnegative(
            sim_coeff=sim_coeff, std_coeff=std_coeff, cov_coeff=cov_coeff, gamma=gamma, eps=eps
        )
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff
        self.distance_name = distance
        self.distance = view_distance(distance)
        self.gamma = gamma
        self.eps = eps

    def extra_repr(self) -> str:
        return (
            f"sim_coeff={self.sim_coeff}, std_coeff={self.std_coeff}, cov_coeff={self.cov_coeff}, "
            f"distance={self.distance_name!r}, gamma={self.gamma}, eps={self.eps}"
        )

    def _variance(self, z: Tensor) -> Tensor:
        std = torch.sqrt(z.var(dim=0, unbiased=True) + self.eps)
        return F.relu(self.gamma - std).mean()

    @staticmethod
    def _covariance(z: Tensor) -> Tensor:
        centred = z - z.mean(dim=0)
        cov = centred.T @ centred / (z.shape[0] - 1)
        return _off_diagonal(cov).pow(2).sum() / z.shape[1]

    def terms(self, z1: Tensor, z2: Tensor) -> dict[str, Tensor]:
        """The unweighted terms: ``{"invariance": s, "variance": (v(Z) + v(Z')) / 2,
        "covariance": c(Z) + c(Z')}``."""
        _check_views(2, z1=z1, z2=z2)
        return {
            "invariance": self.distance(z1, z2).mean(),
            "variance": 0.5 * self._variance(z1) + 0.5 * self._variance(z2),
            "covariance": self._covariance(z1) + self._covariance(z2),
        }

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        terms = self.terms(z1, z2)
        return (
            self.sim_coeff * terms["invariance"]
            + self.std_coeff * terms["variance"]
            + self.cov_coeff * terms["covariance"]
        )
