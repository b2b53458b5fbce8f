r"""Pair-based (contrastive) losses from pytorch-metric-learning: no class head, the batch is the signal.

For an anchor :math:`i` with positives :math:`P(i)` (same label) in the batch:

- **SupCon** (supervised contrastive):
  :math:`-\frac{1}{|P(i)|}\sum_{p \in P(i)} \log \frac{e^{s_{ip}/T}}{\sum_{a \neq i} e^{s_{ia}/T}}`;
- **NT-Xent** (SimCLR): the same softmax, the positive being the other augmented view of the row;
- **Triplet (semi-hard)**: :math:`[d_{ap} - d_{an} + m]_+` over the semi-hard triplets
  (:math:`d_{ap} < d_{an} \le d_{ap} + m`);
- **Multi-similarity**: soft weights of the positive and negative pairs kept by a pair miner.

:math:`s` is the cosine similarity and :math:`d` the Euclidean distance of L2-normalised embeddings (PML's
defaults for these losses: every one normalises its inputs).

Papers: `SupCon <https://arxiv.org/abs/2004.11362>`_ (Khosla et al., NeurIPS 2020),
`NT-Xent / SimCLR <https://arxiv.org/abs/2002.05709>`_ (Chen et al., ICML 2020),
`Triplet with semi-hard mining <https://arxiv.org/abs/1503.03832>`_ (FaceNet, Schroff et al., CVPR 2015),
`Multi-similarity <https://arxiv.org/abs/1904.06627>`_ (Wang et al., CVPR 2019).

**Search ranges.** In the spirit of `A Metric Learning Reality Check <https://arxiv.org/abs/2003.08505>`_
(wide ranges around each paper's values, the same trial budget for every loss): temperatures 0.01-1 on a
log scale (papers 0.07-0.5), triplet margin 0.01-1 on a log scale (distances on the unit sphere lie in
[0, 2]; FaceNet 0.2), multi-similarity alpha 0.1-20 and beta 1-100 on log scales, base 0-1, miner epsilon
0.01-0.5 (defaults: PML's 2, 50, 0.5 and 0.1). The bounds are ours, not the Reality Check's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.utils import common_functions as c_f
from torch import Tensor

from .registry import LossSpec, MetricLoss

__all__ = [
    "CONTRASTIVE_LOSSES",
    "DenseNTXentLoss",
    "multisimilarity",
    "ntxent",
    "stack_views",
    "supcon",
    "triplet",
]

_TEMPERATURE = {"type": "float", "low": 0.01, "high": 1.0, "log": True}


def stack_views(view1: Tensor, view2: Tensor) -> tuple[Tensor, Tensor]:
    """The input of a two-view loss (NT-Xent): ``(cat([view1, view2]), cat([ids, ids]))``, ``ids`` the
    row ids ``0 .. B-1``, so that the two views of a row are the only positives of each other.

    **Shapes:** inputs :math:`(B, D)` each; outputs :math:`(2B, D)` and :math:`(2B,)` (long).
    """
    if view1.shape != view2.shape or view1.dim() != 2:
        raise ValueError(
            f"The two views must be (B, D) tensors of the same shape, got {tuple(view1.shape)} and "
            f"{tuple(view2.shape)}"
        )
    ids = torch.arange(view1.shape[0], device=view1.device)
    return torch.cat([view1, view2]), torch.cat([ids, ids])


def supcon(num_classes: int, embedding_size: int, *, temperature: float) -> MetricLoss:
    r"""`Supervised contrastive loss <https://arxiv.org/abs/2004.11362>`_ over all pairs of the batch.

    Args:
        num_classes: unused (uniform signature).
        embedding_size: unused (uniform signature).
        temperature: :math:`T`.

    **Shapes:** see :class:`~mmsheaf.losses.MetricLoss`.
    """
    loss = losses.SupConLoss(temperature=temperature)
    return MetricLoss("supcon", loss, hparams={"temperature": temperature})


class DenseNTXentLoss(losses.NTXentLoss):
    r"""PML's :class:`~pytorch_metric_learning.losses.NTXentLoss`, computed on the similarity matrix.

    For every positive pair :math:`(a, p)` (same label) with negatives :math:`N(a)` (other labels):

    .. math::
        \ell_{ap} = -\log \frac{e^{s_{ap}/T}}{e^{s_{ap}/T} + \sum_{n \in N(a)} e^{s_{an}/T}},

    averaged over the positive pairs (PML's default reducer) -- the same values and gradients as PML's class
    (tested to float precision), with its distance, reducer and ``indices_tuple`` handling.

    Why hand-written: PML evaluates the loss on a (positive pairs :math:`\times` negative pairs) matrix, that
    is :math:`O(B^3)` time and memory in the batch size. At the batch of notebook 03 (two views of 256 rows)
    that is 512 x 261,632 entries per step: measured 2.3 s per step here, 710 s for a 4-epoch run against 8 s
    for SupCon. The sums over negatives only need one log-sum-exp per anchor row of the
    :math:`(B \times B)` matrix, which brings NT-Xent to SupCon's cost.

    **Shapes:** input ``embeddings`` :math:`(B, D)`, ``labels`` :math:`(B,)`; output a scalar.
    """

    def __init__(self, temperature: float = 0.07, **kwargs: Any) -> None:
        super().__init__(temperature=temperature, **kwargs)
        self.loss_method = self.mat_based_loss  # the (B, B) matrix and pair masks instead of pair lists

    def _compute_loss(self, mat: Tensor, pos_mask: Tensor, neg_mask: Tensor) -> dict[str, Any]:  # type: ignore[override]
        a1, p = pos_mask.nonzero(as_tuple=True)
        if a1.numel() == 0 or not bool(neg_mask.any()):
            return self.zero_losses()
        sim = (mat if self.distance.is_inverted else -mat) / self.temperature
        neg_lse = sim.masked_fill(neg_mask == 0, float("-inf")).logsumexp(dim=1)  # -inf: no negatives
        pos = sim[a1, p]
        ratio = torch.exp(pos - torch.logaddexp(pos, neg_lse[a1]))
        losses_ = -torch.log(ratio + c_f.small_val(sim.dtype))  # PML's guard, kept for identical values
        return {"loss": {"losses": losses_, "indices": (a1, p), "reduction_type": "pos_pair"}}


def ntxent(num_classes: int, embedding_size: int, *, temperature: float) -> MetricLoss:
    r"""`NT-Xent <https://arxiv.org/abs/2002.05709>`_ (SimCLR, InfoNCE): self-supervised, the positives of
    an embedding are the other views of its row. Call it on :func:`stack_views` output.

    Args:
        num_classes: unused (uniform signature).
        embedding_size: unused (uniform signature).
        temperature: :math:`T`.

    **Shapes:** input ``embeddings`` :math:`(2B, D)`, ``labels`` :math:`(2B,)` row ids; output a scalar.
    """
    loss = DenseNTXentLoss(temperature=temperature)
    return MetricLoss("ntxent", loss, hparams={"temperature": temperature})


def triplet(num_classes: int, embedding_size: int, *, margin: float) -> MetricLoss:
    r"""Triplet margin loss :math:`[d_{ap} - d_{an} + m]_+` on the semi-hard triplets of the batch
    (`FaceNet <https://arxiv.org/abs/1503.03832>`_), averaged over the triplets with a positive loss.

    Args:
        num_classes: unused (uniform signature).
        embedding_size: unused (uniform signature).
        margin: :math:`m`, shared by the loss and the miner.

    **Shapes:** see :class:`~mmsheaf.losses.MetricLoss`.
    """
    loss = losses.TripletMarginLoss(margin=margin)
    miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
    return MetricLoss("triplet", loss, miner, hparams={"margin": margin})


def multisimilarity(
    num_classes: int, embedding_size: int, *, alpha: float, beta: float, base: float, epsilon: float
) -> MetricLoss:
    r"""`Multi-similarity loss <https://arxiv.org/abs/1904.06627>`_ with its pair miner:

    .. math::
        \frac{1}{\alpha}\log\Big(1 + \sum_{p} e^{-\alpha (s_{ip} - \lambda)}\Big)
        + \frac{1}{\beta}\log\Big(1 + \sum_{n} e^{\beta (s_{in} - \lambda)}\Big)

    over the pairs kept by the miner (negatives with :math:`s_{in} > \min_p s_{ip} - \epsilon`, positives
    with :math:`s_{ip} < \max_n s_{in} + \epsilon`).

    Args:
        num_classes: unused (uniform signature).
        embedding_size: unused (uniform signature).
        alpha: positive weight :math:`\alpha`.
        beta: negative weight :math:`\beta`.
        base: similarity offset :math:`\lambda`.
        epsilon: miner margin :math:`\epsilon`.

    **Shapes:** see :class:`~mmsheaf.losses.MetricLoss`.
    """
    loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
    miner = miners.MultiSimilarityMiner(epsilon=epsilon)
    hparams = {"alpha": alpha, "beta": beta, "base": base, "epsilon": epsilon}
    return MetricLoss("multisimilarity", loss, miner, hparams=hparams)


_contrastive_loss = partial(LossSpec, family="contrastive", has_head=False, views=1)

CONTRASTIVE_LOSSES: tuple[LossSpec, ...] = (
    _contrastive_loss(
        name="supcon",
        display="SupCon",
        defaults={"temperature": 0.1},
        search={"temperature": _TEMPERATURE},
        factory=supcon,
    ),
    _contrastive_loss(
        name="ntxent",
        display="NT-Xent",
        views=2,
        defaults={"temperature": 0.1},
        search={"temperature": _TEMPERATURE},
        factory=ntxent,
    ),
    _contrastive_loss(
        name="triplet",
        display="Triplet (semi-hard)",
        defaults={"margin": 0.1},
        search={"margin": {"type": "float", "low": 0.01, "high": 1.0, "log": True}},
        factory=triplet,
    ),
    _contrastive_loss(
        name="multisimilarity",
        display="Multi-similarity",
        defaults={"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1},
        search={
            "alpha": {"type": "float", "low": 0.1, "high": 20.0, "log": True},
            "beta": {"type": "float", "low": 1.0, "high": 100.0, "log": True},
            "base": {"type": "float", "low": 0.0, "high": 1.0},
            "epsilon": {"type": "float", "low": 0.01, "high": 0.5},
        },
        factory=multisimilarity,
    ),
)
"""The pair-based losses, in registry order (registered by :mod:`mmsheaf.losses`)."""
