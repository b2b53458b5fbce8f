r"""The loss registry: :class:`LossSpec` (one entry), :class:`MetricLoss` (a built loss) and the lookups.

Every loss is called the same way, ``loss(embeddings, labels) -> scalar``, whatever it needs inside (a
class-weight matrix, a miner, two views), so that a trainer and an Optuna study can loop over
:data:`METRIC_LOSSES`:

.. code-block:: python

    for name, spec in METRIC_LOSSES.items():
        space = {**trainer_space, **spec.search}              # the loss's own hyperparameters join the study
        loss = build_loss(name, num_classes=C, embedding_size=D, **loss_params)
        params = list(model.parameters()) + list(loss.parameters())   # empty unless loss.has_head

Importing :mod:`mmsheaf.losses` registers the angular-margin family
(:data:`mmsheaf.losses.margin.MARGIN_LOSSES`), then the pair-based losses
(:data:`mmsheaf.losses.contrastive.CONTRASTIVE_LOSSES`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.miners import BaseMiner
from torch import Tensor, nn

__all__ = [
    "FAMILIES",
    "METRIC_LOSSES",
    "LossSpec",
    "MetricLoss",
    "build_loss",
    "register_loss",
    "resolve_loss",
]

FAMILIES: tuple[str, ...] = ("angular-margin", "contrastive")
"""``LossSpec.family``: a classification head with an angular margin, or a loss on pairs of embeddings."""


@dataclass(frozen=True)
class LossSpec:
    """One registered loss: what it is, its hyperparameters and how to build it.

    Args:
        name: registry key (lower case), e.g. ``"arcface"``.
        display: name for tables and figures, e.g. ``"Sub-center ArcFace"``.
        family: ``"angular-margin"`` or ``"contrastive"`` (:data:`FAMILIES`).
        has_head: whether the loss owns a class-weight matrix (a proxy per class), trained with the model.
        views: embeddings per row in a batch: ``2`` for self-supervised losses that contrast two augmented
            views of each row (NT-Xent), else ``1``.
        defaults: the loss's own hyperparameters and their default values (keyword arguments of
            ``factory``).
        search: Optuna search space of those hyperparameters, in the format of
            :func:`mmsheaf.runs.space.parse_space`.
        factory: ``factory(num_classes, embedding_size, **hparams) -> MetricLoss`` with every key of
            ``defaults`` given (use :func:`build_loss`, which fills in the defaults and checks the names).
    """

    name: str
    display: str
    family: str
    has_head: bool
    views: int
    defaults: Mapping[str, Any]
    search: Mapping[str, Any]
    factory: Callable[..., MetricLoss]

    def __post_init__(self) -> None:
        if self.name != self.name.lower():
            raise ValueError(f"LossSpec name must be lower case, got {self.name!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"Unknown loss family {self.family!r}: choose one of {', '.join(FAMILIES)}")
        if self.views not in (1, 2):
            raise ValueError(f"LossSpec views must be 1 or 2, got {self.views!r}")
        if unknown := sorted(set(self.search) - set(self.defaults)):
            raise ValueError(
                f"Loss {self.name!r}: search space names {unknown} that are not hyperparameters; "
                f"use names from {sorted(self.defaults)}"
            )


METRIC_LOSSES: dict[str, LossSpec] = {}
"""Registered losses by name, in registration order: ``arcface, subcenter-arcface, cosface, normsoftmax``
(:mod:`~mmsheaf.losses.margin`), then ``supcon, ntxent, triplet, multisimilarity``
(:mod:`~mmsheaf.losses.contrastive`); :func:`register_loss` adds more."""


def register_loss(spec: LossSpec) -> LossSpec:
    """Add ``spec`` to :data:`METRIC_LOSSES` (replacing an entry of the same name, which keeps its place)
    and return it."""
    METRIC_LOSSES[spec.name] = spec
    return spec


def resolve_loss(name: str) -> LossSpec:
    """The :class:`LossSpec` registered as ``name`` (case-insensitive).

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered names).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in METRIC_LOSSES:
        raise ValueError(f"Unknown loss {name!r}: choose one of {', '.join(METRIC_LOSSES)}")
    return METRIC_LOSSES[key]


def build_loss(name: str, num_classes: int, embedding_size: int, **hparams: Any) -> MetricLoss:
    """Build the loss registered as ``name`` with its default hyperparameters, updated by ``hparams``.

    Args:
        name: registry key (case-insensitive), see :data:`METRIC_LOSSES`.
        num_classes: number of classes :math:`C` (labels are ``0 .. C-1``); used by losses with a head.
        embedding_size: embedding dimension :math:`D`; used by losses with a head.
        **hparams: the loss's own hyperparameters (keys of ``LossSpec.defaults``), e.g. ``margin=20.0``.

    Returns:
        A :class:`MetricLoss` (move it to the model's device with ``.to(device)``).

    Raises:
        ValueError: unknown loss name, unknown hyperparameter, or sizes below 1.
    """
    spec = resolve_loss(name)
    if unknown := sorted(set(hparams) - set(spec.defaults)):
        allowed = ", ".join(spec.defaults) or "none"
        raise ValueError(
            f"Unknown hyperparameter(s) {', '.join(unknown)} for loss {spec.name!r}: it takes {allowed}"
        )
    for what, value in (("num_classes", num_classes), ("embedding_size", embedding_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive int, got {value!r}")
    return spec.factory(num_classes, embedding_size, **{**spec.defaults, **hparams})


class MetricLoss(nn.Module):
    r"""One loss of `pytorch-metric-learning <https://kevinmusgrave.github.io/pytorch-metric-learning/>`_
    (and its miner, if any) behind a uniform call ``loss(embeddings, labels) -> scalar``.

    Embeddings are usually L2-normalised upstream, but no loss relies on it: every PML distance used here
    normalises its inputs. When the loss has a miner, the miner picks the pairs or triplets of the batch
    (:math:`\text{loss}(x, y, \text{miner}(x, y))`).

    For a two-view loss (``spec.views == 2``, NT-Xent) the caller passes ``cat([view1, view2])`` and
    ``labels = cat([ids, ids])``, ``ids`` being row ids (see :func:`mmsheaf.losses.stack_views`): the
    positives of an embedding are the other views of the same row.

    Build instances with :func:`build_loss`.

    Args:
        name: registry key of the loss (``spec`` is looked up from it).
        loss: the PML loss module.
        miner: the PML miner, or ``None``.
        hparams: the hyperparameters it was built with.
        num_classes: number of classes for losses with a head (labels are checked against it), else
            ``None``.

    Attributes:
        spec: the :class:`LossSpec` (property).
        hparams: dict of the hyperparameters.
        loss: the PML loss module.
        miner: the PML miner or ``None``.

    **Shapes:** input ``embeddings`` :math:`(B, D)`, ``labels`` :math:`(B,)` (long); output a scalar.
    """

    def __init__(
        self,
        name: str,
        loss: BaseMetricLossFunction,
        miner: BaseMiner | None = None,
        hparams: Mapping[str, Any] | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.loss = loss
        self.miner = miner
        self.hparams = dict(hparams or {})
        self.num_classes = num_classes

    @property
    def spec(self) -> LossSpec:
        return resolve_loss(self.name)

    @property
    def has_head(self) -> bool:
        """Whether the loss has trainable parameters (a class-weight matrix) to optimise with the model."""
        return any(p.requires_grad for p in self.parameters())

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be (B, D), got shape {tuple(embeddings.shape)}")
        if labels.shape != embeddings.shape[:1]:
            raise ValueError(
                f"labels must be (B,) = ({embeddings.shape[0]},) like the embeddings, got shape "
                f"{tuple(labels.shape)}"
            )
        if labels.dtype != torch.long:
            raise ValueError(f"labels must be a long tensor, got {labels.dtype}; use labels.long()")
        if self.spec.views == 2 and embeddings.shape[0] % 2:
            raise ValueError(
                f"Loss {self.name!r} contrasts two views per row: pass cat([view1, view2]) with labels "
                f"cat([ids, ids]) (an even batch), got {embeddings.shape[0]} rows"
            )
        if self.num_classes is not None and labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                raise ValueError(
                    f"Loss {self.name!r} has a head of {self.num_classes} classes: labels must lie in "
                    f"0..{self.num_classes - 1}, got {low}..{high}; build it with the right num_classes"
                )
        indices = None if self.miner is None else self.miner(embeddings, labels)
        return self.loss(embeddings, labels, indices)

    def logits(self, embeddings: Tensor) -> Tensor:
        r"""Class logits of a loss with a head: the scaled cosine similarity to each class proxy
        (:math:`s \cos\theta_c` for ArcFace / CosFace, the best sub-center for Sub-center ArcFace,
        :math:`\cos\theta_c / T` for NormSoftmax), without the margin; ``argmax`` predicts the class.

        **Shapes:** input :math:`(B, D)`; output :math:`(B, C)`.

        Raises:
            ValueError: the loss has no class head (a pair-based loss).
        """
        get_logits = getattr(self.loss, "get_logits", None)
        if get_logits is None:
            heads = [name for name, spec in METRIC_LOSSES.items() if spec.has_head]
            raise ValueError(
                f"Loss {self.name!r} has no class head, so no logits: classify its embeddings with "
                f"mmsheaf.evaluation.embeddings.classification_metrics, or use one of {', '.join(heads)}"
            )
        return get_logits(embeddings)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, hparams={self.hparams}"
