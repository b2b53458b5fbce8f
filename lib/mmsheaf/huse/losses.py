r"""The three losses of `HUSE <https://arxiv.org/abs/1911.05978>`_ (Narayana et al., "HUSE: Hierarchical
Universal Semantic Embeddings", 2019), for any number of modalities and with missing modalities.

HUSE maps every modality of an instance :math:`n` to a universal embedding :math:`U^m_n` (one tower per
modality, last layer L2-normalised) and trains with (paper, Eq. 5)

.. math::
    \mathcal{L} = \alpha\,\mathcal{L}_{cls} + \beta\,\mathcal{L}_{graph} + \gamma\,\mathcal{L}_{gap},

where :math:`d(x, y) = 1 - \frac{x^\top y}{\lVert x\rVert\,\lVert y\rVert}` is the **cosine distance**
(paper, Sec. 3.1; it lies in :math:`[0, 2]`, 0 for parallel vectors):

- :func:`classification_loss` (Sec. 3.4.1, *class level similarity*): softmax cross-entropy of the **shared**
  classification layer :math:`W`, applied to each modality's embedding separately;
- :func:`semantic_graph_loss` (Sec. 3.4.2, *semantic similarity*): the distance between any two embeddings,
  of any modalities, is pulled towards the distance :math:`A_{y_i y_j}` between their classes in the
  semantic graph of Sec. 3.3 (Eq. 4: :math:`A_{ij} = d(\psi(v_i), \psi(v_j))`, :math:`\psi` a sentence
  encoder of the class names; see :meth:`~mmsheaf.huse.hierarchy.ClassHierarchy.semantic_distance`), on the
  pairs the margin :math:`m` (``threshold``) selects, squared error;
- :func:`cross_modal_gap_loss` (Sec. 3.4.3, *cross-modal gap*): the cosine **distance** between the
  embeddings of the modalities of one instance.

**Signs.** Both distance-based losses use the cosine *distance* :math:`d`, never the similarity: minimising
:math:`\mathcal{L}_{gap}` brings an instance's modalities together (a public re-implementation that averages
the cosine *similarity* pushes them apart), and :math:`\mathcal{L}_{graph}` compares embedding *distances*
of the universal embeddings (not logits, not an early-fused vector) with class *distances*. The tests step
along the gradient and check the direction of motion.

**Generalisation beyond two modalities** (the paper has image and text only): the embeddings of all
modalities form one set for :math:`\mathcal{L}_{graph}` (the paper's "any two embeddings"), and
:math:`\mathcal{L}_{gap}` averages :math:`d` over every pair of modalities observed for the same row. An
``observed`` mask per row and modality removes a missing modality from all three losses: its embedding and
logits are never read (they may hold anything, NaN included) and receive an exact zero gradient. Values that
pass through a layer before the loss (the shared classifier) should still be finite, e.g. zeros: that layer's
weight gradient multiplies them.

**Where the paper leaves a choice** (arXiv v1 has image and text only), made here and tested:

1. :math:`\mathcal{L}_{cls}` is the *mean* over observed (row, modality) pairs, not the sum over modalities
   (a factor absorbed by :math:`\alpha`; the scale stays put when a modality is missing).
2. :math:`\mathcal{L}_{graph}` runs over all embeddings of the batch, every modality stacked, and divides by
   the square of their number (the paper's :math:`1/N^2`, the diagonal included, where the term is 0).
3. :math:`\sigma_{ij}` is 0 only when *both* the class distance and the current embedding distance exceed the
   margin; a value equal to the margin counts as selected. :math:`\sigma` carries no gradient.
4. :math:`\mathcal{L}_{gap}` averages over every observed pair of modalities of a row.
5. :math:`A` is the plain cosine distance of Eq. 4 (the distance of Sec. 3.1, in :math:`[0, 2]`), on the
   same scale as :math:`d(U_i, U_j)`; it is not rescaled.

**Shapes:** ``embeddings_by_modality`` / ``logits_by_modality``: ``{name: (B, D)}`` / ``{name: (B, C)}``;
``labels`` :math:`(B,)`; ``observed``: ``{name: (B,)}`` bool, or a :math:`(B, M)` bool tensor with the columns
in the order of the dict; ``class_distance`` :math:`(C, C)`; every loss returns a scalar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "HuseLoss",
    "HuseLossConfig",
    "HuseLossParts",
    "classification_loss",
    "cosine_distance",
    "cross_modal_gap_loss",
    "observed_matrix",
    "pairwise_cosine_distance",
    "semantic_graph_loss",
]

Observed = Mapping[str, Tensor] | Tensor | None


# ------------------------------------------------------------------------------------------- distances
def cosine_distance(x: Tensor, y: Tensor) -> Tensor:
    r"""Row-wise cosine distance :math:`d(x_i, y_i) = 1 - \cos(x_i, y_i)` (HUSE, Sec. 3.1).

    The rows need not have unit norm (they are normalised here; a zero row has distance 1 to everything).

    **Shapes:** ``x``, ``y`` :math:`(*, D)`; output :math:`(*)`, values in :math:`[0, 2]`.
    """
    return 1.0 - (F.normalize(x, dim=-1) * F.normalize(y, dim=-1)).sum(-1)


def pairwise_cosine_distance(x: Tensor, y: Tensor | None = None) -> Tensor:
    r"""All cosine distances :math:`D_{ij} = 1 - \cos(x_i, y_j)` (``y`` defaults to ``x``).

    **Shapes:** ``x`` :math:`(N, D)`, ``y`` :math:`(M, D)`; output :math:`(N, M)`.
    """
    xn = F.normalize(x, dim=-1)
    yn = xn if y is None else F.normalize(y, dim=-1)
    return 1.0 - xn @ yn.T


# --------------------------------------------------------------------------------------------- checks
def _check_modalities(by_modality: Mapping[str, Tensor], what: str) -> tuple[list[str], int]:
    """The modality names (dict order) and the batch size; every value a 2-D tensor of the same batch."""
    if not isinstance(by_modality, Mapping) or len(by_modality) == 0:
        raise ValueError(f"{what} must be a non-empty dict {{modality name: (B, D) tensor}}, got "
                         f"{type(by_modality).__name__}: pass at least one modality.")  # fmt: skip
    names = list(by_modality)
    shapes = {n: tuple(t.shape) for n, t in by_modality.items()}
    if any(len(s) != 2 for s in shapes.values()) or len({s[0] for s in shapes.values()}) != 1:
        raise ValueError(f"{what} must hold 2-D tensors with the same number of rows B, got shapes {shapes}: "
                         "give every modality one row per instance of the batch.")  # fmt: skip
    return names, next(iter(shapes.values()))[0]


def _check_labels(labels: Tensor, batch: int, num_classes: int | None = None) -> Tensor:
    """``labels`` as a ``(B,)`` long tensor, checked."""
    integer = not (labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool)
    if labels.dim() != 1 or labels.numel() != batch or not integer:
        raise ValueError(f"labels must be a (B,) integer tensor with B = {batch}, got shape "
                         f"{tuple(labels.shape)} and dtype {labels.dtype}: pass the class index of each row.")  # fmt: skip
    if num_classes is not None and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) (the rows of class_distance), got "
                         f"[{int(labels.min())}, {int(labels.max())}]: build class_distance over all "
                         "classes.")  # fmt: skip
    return labels.long()


def observed_matrix(names: list[str], batch: int, observed: Observed, device: torch.device) -> Tensor:
    """The ``(B, M)`` bool mask of observed (row, modality), columns in the order of ``names``.

    ``observed`` is ``None`` (everything observed), a ``{name: (B,) bool}`` dict (a modality absent from the
    dict is observed on every row) or a ``(B, M)`` bool tensor whose columns follow ``names``.
    """
    if observed is None:
        return torch.ones(batch, len(names), dtype=torch.bool, device=device)
    if isinstance(observed, Tensor):
        if tuple(observed.shape) != (batch, len(names)):
            raise ValueError(f"An observed tensor must be (B, M) = ({batch}, {len(names)}) with the columns "
                             f"in the order {names}, got {tuple(observed.shape)}; or pass a dict "
                             "{name: (B,) bool}.")  # fmt: skip
        return observed.to(device=device, dtype=torch.bool)
    unknown = sorted(set(observed) - set(names))
    if unknown:
        raise ValueError(f"observed names modalities {unknown} that are not among the embeddings {names}: "
                         "use the same keys as the embedding dict.")  # fmt: skip
    cols = []
    for n in names:
        mask = observed.get(n)
        if mask is None:
            cols.append(torch.ones(batch, dtype=torch.bool, device=device))
        elif tuple(mask.shape) != (batch,):
            raise ValueError(f"observed[{n!r}] must be a (B,) = ({batch},) bool mask, got {tuple(mask.shape)}.")
        else:
            cols.append(mask.to(device=device, dtype=torch.bool))
    return torch.stack(cols, dim=1)


def _masked(t: Tensor, mask: Tensor) -> Tensor:
    """``t`` with the rows where ``mask`` is False set to 0: never read, exact zero gradient (no NaN)."""
    return torch.where(mask[:, None], t, torch.zeros((), dtype=t.dtype, device=t.device))


# ------------------------------------------------------------------------------------------------ losses
def classification_loss(
    logits_by_modality: Mapping[str, Tensor], labels: Tensor, observed: Observed = None
) -> Tensor:
    r"""Class level similarity (HUSE, Sec. 3.4.1): softmax cross-entropy of the shared classification layer
    on each modality's embedding separately, averaged over the observed (row, modality) pairs:

    .. math::
        \mathcal{L}_{cls} = \frac{1}{|\Omega|} \sum_{(n, m) \in \Omega}
        -\log \operatorname{softmax}\big(W U^m_n\big)_{y_n},

    :math:`\Omega` the observed pairs. The paper sums the image and the text term; with every modality
    observed this is that sum divided by the number of modalities (a constant factor, absorbed by
    :math:`\alpha`), and it keeps the scale of the loss when a modality is missing.

    Args:
        logits_by_modality: ``{name: W U^m}``, the shared layer applied to each modality's embedding
            (not to an early-fused vector).
        labels: Class index of every row.
        observed: Which (row, modality) pairs exist (default: all).

    **Shapes:** logits :math:`(B, C)` each; ``labels`` :math:`(B,)`; output a scalar (0 when nothing is
    observed).
    """
    names, batch = _check_modalities(logits_by_modality, "logits_by_modality")
    labels = _check_labels(labels, batch)
    first = logits_by_modality[names[0]]
    mask = observed_matrix(names, batch, observed, first.device)
    total = first.new_zeros(())
    for j, n in enumerate(names):  # a loop over modalities, batched over rows
        ce = F.cross_entropy(_masked(logits_by_modality[n], mask[:, j]), labels, reduction="none")
        total = total + torch.where(mask[:, j], ce, torch.zeros_like(ce)).sum()
    return total / mask.sum().clamp(min=1)


def semantic_graph_loss(
    embeddings_by_modality: Mapping[str, Tensor],
    labels: Tensor,
    class_distance: Tensor,
    threshold: float,
    observed: Observed = None,
) -> Tensor:
    r"""Semantic similarity (HUSE, Sec. 3.4.2): the cosine distance of any two embeddings, across modalities
    too, regressed on the semantic-graph distance of their classes, on the pairs the margin selects:

    .. math::
        \mathcal{L}_{graph} = \frac{1}{M^2} \sum_{i=1}^{M} \sum_{j=1}^{M} \sigma_{ij}
        \big(d(U_i, U_j) - A_{y_i y_j}\big)^2,
        \qquad
        \sigma_{ij} = \begin{cases} 0 & \text{if } A_{y_i y_j} > m \text{ and } d(U_i, U_j) > m \\
        1 & \text{otherwise,} \end{cases}

    over the :math:`M` observed embeddings of the batch (all modalities stacked; the paper's :math:`N^2`).
    The margin :math:`m` (``threshold``) relaxes the constraint: pairs of semantically close classes
    (:math:`A \le m`) are held at their class distance, pairs of distant classes only need to be farther
    apart than :math:`m`, and stop counting once they are. :math:`\sigma` is a selection (no gradient);
    same-class pairs have :math:`A = 0` and are pulled together, an instance's own modalities included.

    Args:
        embeddings_by_modality: ``{name: U^m}`` universal embeddings (unit norm, or normalised here).
        labels: Class index of every row.
        class_distance: The semantic graph :math:`A` (HUSE Eq. 4), cosine distances of the class-name
            embeddings, e.g. :meth:`~mmsheaf.huse.hierarchy.ClassHierarchy.semantic_distance`.
        threshold: The margin :math:`m`, in :math:`[0, 2]` (the range of the cosine distance).
        observed: Which (row, modality) pairs exist (default: all); the others are left out of :math:`M`.

    **Shapes:** embeddings :math:`(B, D)` each; ``labels`` :math:`(B,)`; ``class_distance`` :math:`(C, C)`;
    output a scalar. Memory :math:`O(M^2)`, :math:`M \le B \cdot` (number of modalities).
    """
    names, batch = _check_modalities(embeddings_by_modality, "embeddings_by_modality")
    if class_distance.dim() != 2 or class_distance.size(0) != class_distance.size(1):
        raise ValueError(f"class_distance must be a square (C, C) matrix, got {tuple(class_distance.shape)}: "
                         "use ClassHierarchy.semantic_distance(class_embeddings).")  # fmt: skip
    labels = _check_labels(labels, batch, class_distance.size(0))
    if not (0.0 <= float(threshold) <= 2.0):
        raise ValueError(f"threshold must lie in [0, 2] (cosine distances do), got {threshold}.")
    first = embeddings_by_modality[names[0]]
    mask = observed_matrix(names, batch, observed, first.device)
    emb = torch.cat([embeddings_by_modality[n][mask[:, j]] for j, n in enumerate(names)])
    if emb.size(0) == 0:
        return emb.sum() * 0.0  # nothing observed: 0, connected to the graph (zero gradients)
    y = torch.cat([labels[mask[:, j]] for j in range(len(names))])
    dist = pairwise_cosine_distance(emb)
    target = class_distance.to(device=dist.device, dtype=dist.dtype)[y][:, y]
    with torch.no_grad():
        selected = (target <= threshold) | (dist <= threshold)
    sq = (dist - target).square()
    return torch.where(selected, sq, torch.zeros_like(sq)).sum() / emb.size(0) ** 2


def cross_modal_gap_loss(embeddings_by_modality: Mapping[str, Tensor], observed: Observed = None) -> Tensor:
    r"""Cross-modal gap (HUSE, Sec. 3.4.3): the cosine **distance** between the embeddings of the modalities
    of one instance, averaged over every observed pair:

    .. math::
        \mathcal{L}_{gap} = \frac{1}{|P|} \sum_{(n, a, b) \in P} d\big(U^a_n, U^b_n\big),

    :math:`P` the (row :math:`n`, modalities :math:`a < b`) with both modalities observed. With two
    modalities observed everywhere this is the paper's :math:`\frac{1}{N}\sum_n d(U^I_n, U^T_n)`. It is a
    distance: its gradient moves :math:`U^a_n` and :math:`U^b_n` towards each other. With one modality (or
    no row with two observed) it is 0.

    Args:
        embeddings_by_modality: ``{name: U^m}`` universal embeddings.
        observed: Which (row, modality) pairs exist (default: all).

    **Shapes:** embeddings :math:`(B, D)` each; output a scalar.
    """
    names, batch = _check_modalities(embeddings_by_modality, "embeddings_by_modality")
    first = embeddings_by_modality[names[0]]
    mask = observed_matrix(names, batch, observed, first.device)
    emb = [_masked(embeddings_by_modality[n], mask[:, j]) for j, n in enumerate(names)]
    total = torch.stack([e.sum() for e in emb]).sum() * 0.0  # connected to the graph even with no pair
    count = mask.new_zeros((), dtype=torch.long)
    for a in range(len(names)):  # a loop over the M(M-1)/2 pairs of modalities, batched over rows
        for b in range(a + 1, len(names)):
            both = mask[:, a] & mask[:, b]
            d = cosine_distance(emb[a], emb[b])
            total = total + torch.where(both, d, torch.zeros_like(d)).sum()
            count = count + both.sum()
    return total / count.clamp(min=1)  # 0 (connected, zero gradients) when no row has two modalities


# ------------------------------------------------------------------------------------------ the sum
@dataclass(frozen=True)
class HuseLossConfig:
    r"""Weights and margin of :math:`\mathcal{L} = \alpha\mathcal{L}_{cls} + \beta\mathcal{L}_{graph} +
    \gamma\mathcal{L}_{gap}` (HUSE Eq. 5). A weight of 0 removes its term (the ablations).

    Args:
        alpha: Weight of the classification loss.
        beta: Weight of the semantic-graph loss.
        gamma: Weight of the cross-modal gap loss.
        threshold: The margin :math:`m` of the semantic-graph loss, in :math:`[0, 2]`. The defaults are ours,
            not the paper's: tune all four on validation.
    """

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"HuseLossConfig.{name} must be a finite number >= 0, got {value!r}: use 0 "
                                 "to drop its term (an ablation).")  # fmt: skip
        if self.alpha == self.beta == self.gamma == 0:
            raise ValueError("HuseLossConfig: alpha, beta and gamma are all 0, so nothing is trained: give at "
                             "least one term a positive weight.")  # fmt: skip
        if not (isinstance(self.threshold, int | float) and 0.0 <= self.threshold <= 2.0):
            raise ValueError(f"HuseLossConfig.threshold must lie in [0, 2] (the range of the cosine distance), "
                             f"got {self.threshold!r}.")  # fmt: skip


class HuseLossParts(NamedTuple):
    """The value of :class:`HuseLoss`: the weighted total and the three unweighted parts."""

    total: Tensor
    cls: Tensor
    graph: Tensor
    gap: Tensor


class HuseLoss(nn.Module):
    r"""The HUSE objective (Eq. 5) :math:`\alpha\mathcal{L}_{cls} + \beta\mathcal{L}_{graph} +
    \gamma\mathcal{L}_{gap}` of :func:`classification_loss`, :func:`semantic_graph_loss` and
    :func:`cross_modal_gap_loss`, with the semantic graph :math:`A` kept as a buffer (it follows
    ``.to(device)``).

    .. code-block:: python

        loss_fn = HuseLoss(hierarchy.semantic_distance(class_emb), HuseLossConfig(beta=0.0))  # no graph term
        emb = {m: tower[m](x[m]) for m in towers}           # (B, D) each, L2-normalised
        logits = {m: shared_layer(e) for m, e in emb.items()}  # one layer for every modality
        out = loss_fn(emb, logits, y, observed)
        out.total.backward()  # out.cls, out.graph, out.gap for logging

    Args:
        class_distance: The semantic graph :math:`A`, :math:`(C, C)`.
        config: Weights and margin.

    **Shapes:** as the three losses; output a :class:`HuseLossParts` of scalars. A part whose weight is 0 is
    still computed (for logging) but without autograd, so it neither costs a backward pass nor moves anything.
    """

    class_distance: Tensor

    def __init__(self, class_distance: Tensor, config: HuseLossConfig | None = None) -> None:
        super().__init__()
        if class_distance.dim() != 2 or class_distance.size(0) != class_distance.size(1):
            raise ValueError(f"class_distance must be a square (C, C) matrix, got "
                             f"{tuple(class_distance.shape)}: use ClassHierarchy.semantic_distance.")  # fmt: skip
        self.config = config if config is not None else HuseLossConfig()
        self.register_buffer("class_distance", class_distance.detach().clone())

    def forward(
        self,
        embeddings_by_modality: Mapping[str, Tensor],
        logits_by_modality: Mapping[str, Tensor],
        labels: Tensor,
        observed: Observed = None,
    ) -> HuseLossParts:
        if set(embeddings_by_modality) != set(logits_by_modality):
            raise ValueError(f"embeddings and logits must have the same modalities, got "
                             f"{sorted(embeddings_by_modality)} and {sorted(logits_by_modality)}: apply the "
                             "shared layer to every modality's embedding.")  # fmt: skip
        c = self.config
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and c.alpha > 0):
            cls = classification_loss(logits_by_modality, labels, observed)
        with torch.set_grad_enabled(grad and c.beta > 0):
            graph = semantic_graph_loss(
                embeddings_by_modality, labels, self.class_distance, c.threshold, observed
            )
        with torch.set_grad_enabled(grad and c.gamma > 0):
            gap = cross_modal_gap_loss(embeddings_by_modality, observed)
        weighted = [w * p for w, p in ((c.alpha, cls), (c.beta, graph), (c.gamma, gap)) if w > 0]
        return HuseLossParts(torch.stack(weighted).sum(), cls, graph, gap)

    def extra_repr(self) -> str:
        c = self.config
        return (f"classes={self.class_distance.size(0)}, alpha={c.alpha}, beta={c.beta}, gamma={c.gamma}, "
                f"threshold={c.threshold}")  # fmt: skip
