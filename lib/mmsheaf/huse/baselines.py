r"""The non-HUSE rows of the comparison: notebook 03's early-fused encoder trained with a metric loss.

The best angular-margin loss of notebook 03 (ArcFace on T2) and SupCon train notebook 03's
:class:`~mmsheaf.encoders.fusion.MultimodalEncoder` (all modalities fused into one embedding) in HUSE's own
loop (:func:`~mmsheaf.huse.train.train_huse`), so every row of the comparison shares the encoders, embedding
size, optimiser, epochs and early stopping. :class:`FusedModel` returns a
:class:`~mmsheaf.huse.model.HuseOutput` with the single modality ``"fused"``; :meth:`FusedModel.encode_modalities`
reads a per-modality embedding "the same way as HUSE's": the fused encoder applied to a row with every other
modality marked missing (its learned missing tokens), so retrieval across modalities can be measured for
these rows too. The graph modality cannot be read alone this way (its token summarises the neighbours' text
and tabular content, which marking them missing removes), so only text and tabular are read.

:class:`MetricObjective` adapts a :class:`~mmsheaf.losses.registry.MetricLoss` to the signature of
:class:`~mmsheaf.huse.losses.HuseLoss`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from mmsheaf.encoders.fusion import EncoderConfig, MultimodalEncoder
from mmsheaf.encoders.inputs import ModalityInputs
from mmsheaf.huse.losses import HuseLossParts
from mmsheaf.huse.model import HuseOutput
from mmsheaf.losses import build_loss

__all__ = ["READABLE_ALONE", "FusedModel", "MetricObjective", "only_modality"]

READABLE_ALONE: tuple[str, ...] = ("text", "tabular")
"""Modalities whose embedding the fused encoder can produce alone (every other modality marked missing)."""

_MASK_FIELD = {"text": "text_mask", "tabular": "tabular_mask", "graph": "graph_mask"}


def only_modality(inputs: ModalityInputs, keep: str) -> ModalityInputs:
    """``inputs`` with every modality but ``keep`` marked missing in every row (the features are untouched)."""
    if keep not in _MASK_FIELD:
        raise ValueError(f"unknown modality {keep!r}: choose one of {tuple(_MASK_FIELD)}.")
    n = inputs.num_rows
    masks = {field: torch.zeros(n, dtype=torch.bool, device=inputs.device)
             for m, field in _MASK_FIELD.items() if m != keep}  # fmt: skip
    masks[_MASK_FIELD[keep]] = inputs.mask(keep)
    return dataclasses.replace(inputs, **masks)


class FusedModel(nn.Module):
    """Notebook 03's early-fused encoder with a metric loss (whose class proxies, if any, train with it).

    Args:
        inputs: All rows (to size the encoders).
        cfg: The encoder settings (all of ``cfg.modalities`` are fused).
        loss: A registered metric loss (:func:`~mmsheaf.losses.build_loss`), e.g. ``"arcface"``, ``"supcon"``.
        num_classes: Number of classes (for a loss with a class head).
        train_idx: Training rows (the tabular encoder's statistics).
        loss_hparams: The loss's own hyperparameters (margin, scale, temperature).
    """

    def __init__(self, inputs: ModalityInputs, cfg: EncoderConfig, loss: str, num_classes: int,
                 train_idx: Tensor | None = None, **loss_hparams: float) -> None:  # fmt: skip
        super().__init__()
        self.encoder = MultimodalEncoder(inputs, cfg, train_idx)
        self.metric_loss = build_loss(loss, num_classes=num_classes, embedding_size=cfg.embedding_dim,
                                      **loss_hparams)  # fmt: skip
        if self.metric_loss.spec.views != 1:
            raise ValueError(f"loss {loss!r} contrasts two views of each row, which this comparison does not "
                             "train: choose a supervised loss (e.g. arcface, supcon).")  # fmt: skip
        self.to(inputs.device)

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("fused",)

    def head_parameters(self) -> list[nn.Parameter]:
        """The loss's class proxies (empty for a pair-based loss)."""
        return list(self.metric_loss.parameters())

    def _logits(self, z: Tensor) -> Tensor | None:
        return self.metric_loss.logits(z) if self.metric_loss.has_head else None

    def forward(self, inputs: ModalityInputs, index: Tensor, *, noise_std: float = 0.0,
                generator: torch.Generator | None = None) -> HuseOutput:  # fmt: skip
        """The fused embedding as the single modality ``"fused"`` (what :class:`MetricObjective` trains)."""
        z = self.encoder(inputs, index, noise_std=noise_std, generator=generator)
        logits = self._logits(z)
        return HuseOutput({"fused": z}, {"fused": logits} if logits is not None else {},
                          {"fused": torch.ones(z.size(0), dtype=torch.bool, device=z.device)}, z, logits)  # fmt: skip

    def encode_fused(self, inputs: ModalityInputs, index: Tensor) -> Tensor:
        """Eval-mode fused embeddings of rows ``index`` (all their modalities)."""
        return self.encoder.encode(inputs, index)

    @torch.no_grad()
    def encode(self, inputs: ModalityInputs, index: Tensor | None = None, batch_size: int = 2048) -> HuseOutput:
        """Eval-mode outputs as HUSE's are read: per-modality embeddings (:data:`READABLE_ALONE` among the fused
        ones), each with every other modality marked missing, their class logits when the loss has a head, and
        the fused embedding (and logits) of the rows with all their modalities."""
        rows = index if index is not None else torch.arange(inputs.num_rows, device=inputs.device)
        z = self.encoder.encode(inputs, rows, batch_size)
        emb, logits, observed = {}, {}, {}
        for m in (m for m in READABLE_ALONE if m in self.encoder.modalities):
            emb[m] = self.encoder.encode(only_modality(inputs, m), rows, batch_size)
            observed[m] = inputs.mask(m)[rows]
            if (head := self._logits(emb[m])) is not None:
                logits[m] = head
        return HuseOutput(emb, logits, observed, z, self._logits(z))


class MetricObjective(nn.Module):
    """A metric loss on the ``"fused"`` embedding, with :class:`~mmsheaf.huse.losses.HuseLoss`'s signature.

    Returns :class:`~mmsheaf.huse.losses.HuseLossParts` whose ``cls`` part is the metric loss (``graph`` and
    ``gap`` are 0), so the training loop logs every row alike.
    """

    def __init__(self, model: FusedModel) -> None:
        super().__init__()
        self.model = [model]  # not a submodule: the loss's parameters belong to (and train with) the model

    def forward(self, embeddings: dict[str, Tensor], logits: dict[str, Tensor], labels: Tensor,
                observed: dict[str, Tensor] | None = None) -> HuseLossParts:  # fmt: skip
        value = self.model[0].metric_loss(embeddings["fused"], labels)
        zero = value.new_zeros(())
        return HuseLossParts(value, value.detach(), zero, zero)
