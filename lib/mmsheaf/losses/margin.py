r"""Angular-margin classification heads (the ArcFace family), from pytorch-metric-learning.

Each loss owns a weight matrix :math:`W \in \mathbb{R}^{D \times C}` (one proxy per class, trained with
the model) and is a softmax cross-entropy over cosine logits :math:`\cos\theta_{c}` between the normalised
embedding and the normalised proxies, with a margin on the target class :math:`y`:

==========================  ======================================================================
loss                        target logit (other classes: :math:`s\cos\theta_c`)
==========================  ======================================================================
ArcFace                     :math:`s \cos(\theta_y + m)`, additive angular margin (PML: ``m`` in degrees)
Sub-center ArcFace          as ArcFace, :math:`\cos\theta_c = \max_k \cos\theta_{c,k}` over ``K`` sub-centers
CosFace                     :math:`s (\cos\theta_y - m)`, additive cosine margin
NormSoftmax                 :math:`\cos\theta_y / T`, no margin (temperature :math:`T = 1/s`)
==========================  ======================================================================

Papers: `ArcFace <https://arxiv.org/abs/1801.07698>`_ (Deng et al., CVPR 2019),
`Sub-center ArcFace <https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf>`_
(Deng et al., ECCV 2020), `CosFace <https://arxiv.org/abs/1801.09414>`_ (Wang et al., CVPR 2018),
`NormSoftmax <https://arxiv.org/abs/1811.12649>`_ (Zhai & Wu, BMVC 2019).

**Search ranges.** As in `A Metric Learning Reality Check <https://arxiv.org/abs/2003.08505>`_ (Musgrave
et al., ECCV 2020), every loss gets wide ranges around the values of its paper, searched with the same
trial budget: ArcFace margin 10-60 degrees (paper 28.6 = 0.5 rad), CosFace margin 0.05-0.6 (paper 0.35),
scales 8-128 on a log scale (papers 30-64), NormSoftmax temperature 0.01-1 on a log scale (paper 0.05),
2-5 sub-centers (paper 3). The bounds are ours, not the Reality Check's.
"""

from __future__ import annotations

from functools import partial

from pytorch_metric_learning import losses

from .registry import LossSpec, MetricLoss

__all__ = ["MARGIN_LOSSES", "arcface", "cosface", "normsoftmax", "subcenter_arcface"]

_SCALE = {"type": "float", "low": 8.0, "high": 128.0, "log": True}
_ARC_MARGIN = {"type": "float", "low": 10.0, "high": 60.0}  # degrees


def arcface(num_classes: int, embedding_size: int, *, margin: float, scale: float) -> MetricLoss:
    r"""`ArcFace <https://arxiv.org/abs/1801.07698>`_: :math:`-\log \frac{e^{s\cos(\theta_y + m)}}
    {e^{s\cos(\theta_y + m)} + \sum_{c \neq y} e^{s\cos\theta_c}}`.

    Args:
        num_classes: number of classes :math:`C`.
        embedding_size: embedding dimension :math:`D`.
        margin: additive angular margin :math:`m` in **degrees** (PML's unit; the paper's 0.5 rad = 28.6).
        scale: logit scale :math:`s`.

    **Shapes:** see :class:`~mmsheaf.losses.MetricLoss`; head ``loss.W`` :math:`(D, C)`.
    """
    loss = losses.ArcFaceLoss(num_classes, embedding_size, margin=margin, scale=scale)
    return MetricLoss("arcface", loss, hparams={"margin": margin, "scale": scale}, num_classes=num_classes)


def subcenter_arcface(
    num_classes: int, embedding_size: int, *, margin: float, scale: float, sub_centers: int
) -> MetricLoss:
    r"""`Sub-center ArcFace <https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf>`_:
    ArcFace with :math:`K` proxies per class, :math:`\cos\theta_c = \max_k \cos\theta_{c,k}`, so that
    noisy or multi-modal classes do not pull one proxy between their modes.

    Args:
        num_classes: number of classes :math:`C`.
        embedding_size: embedding dimension :math:`D`.
        margin: additive angular margin in **degrees**.
        scale: logit scale :math:`s`.
        sub_centers: proxies per class :math:`K`.

    **Shapes:** see :class:`~mmsheaf.losses.MetricLoss`; head ``loss.W`` :math:`(D, C K)`.
    """
    loss = losses.SubCenterArcFaceLoss(
        num_classes=num_classes,
        embedding_size=embedding_size,
        margin=margin,
        scale=scale,
        sub_centers=int(sub_centers),
    )
    hparams = {"margin": margin, "scale": scale, "sub_centers": int(sub_centers)}
    return MetricLoss("subcenter-arcface", loss, hparams=hparams, num_classes=num_classes)


def cosface(num_classes: int, embedding_size: int, *, margin: float, scale: float) -> MetricLoss:
    r"""`CosFace <https://arxiv.org/abs/1801.09414>`_ (large-margin cosine loss): target logit
    :math:`s(\cos\theta_y - m)`.

    Args:
        num_classes: number of classes :math:`C`.
        embedding_size: embedding dimension :math:`D`.
        margin: additive cosine margin :math:`m`.
        scale: logit scale :math:`s`.

    **Shapes:** see :class:`~mmsheaf.losses.MetricLoss`; head ``loss.W`` :math:`(D, C)`.
    """
    loss = losses.CosFaceLoss(num_classes, embedding_size, margin=margin, scale=scale)
    return MetricLoss("cosface", loss, hparams={"margin": margin, "scale": scale}, num_classes=num_classes)


def normsoftmax(num_classes: int, embedding_size: int, *, temperature: float) -> MetricLoss:
    r"""`NormSoftmax <https://arxiv.org/abs/1811.12649>`_ (classification is a strong baseline): softmax
    over :math:`\cos\theta_c / T`, normalised embeddings and proxies, no margin.

    Args:
        num_classes: number of classes :math:`C`.
        embedding_size: embedding dimension :math:`D`.
        temperature: :math:`T`.

    **Shapes:** see :class:`~mmsheaf.losses.MetricLoss`; head ``loss.W`` :math:`(D, C)`.
    """
    loss = losses.NormalizedSoftmaxLoss(num_classes, embedding_size, temperature=temperature)
    return MetricLoss("normsoftmax", loss, hparams={"temperature": temperature}, num_classes=num_classes)


_margin_loss = partial(LossSpec, family="angular-margin", has_head=True, views=1)

MARGIN_LOSSES: tuple[LossSpec, ...] = (
    _margin_loss(
        name="arcface",
        display="ArcFace",
        defaults={"margin": 28.6, "scale": 64.0},
        search={"margin": _ARC_MARGIN, "scale": _SCALE},
        factory=arcface,
    ),
    _margin_loss(
        name="subcenter-arcface",
        display="Sub-center ArcFace",
        defaults={"margin": 28.6, "scale": 64.0, "sub_centers": 3},
        search={"margin": _ARC_MARGIN, "scale": _SCALE, "sub_centers": {"type": "int", "low": 2, "high": 5}},
        factory=subcenter_arcface,
    ),
    _margin_loss(
        name="cosface",
        display="CosFace",
        defaults={"margin": 0.35, "scale": 64.0},
        search={"margin": {"type": "float", "low": 0.05, "high": 0.6}, "scale": _SCALE},
        factory=cosface,
    ),
    _margin_loss(
        name="normsoftmax",
        display="NormSoftmax",
        defaults={"temperature": 0.05},
        search={"temperature": {"type": "float", "low": 0.01, "high": 1.0, "log": True}},
        factory=normsoftmax,
    ),
)
"""The angular-margin family, in registry order (registered by :mod:`mmsheaf.losses`)."""
