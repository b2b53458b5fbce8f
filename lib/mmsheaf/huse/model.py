r"""HUSE's model: one tower per modality, each ending in an L2-normalised embedding, and one shared classifier.

`"HUSE: Hierarchical Universal Semantic Embeddings" <https://arxiv.org/abs/1911.05978>`_ (Narayana et al.,
2019), Section 3 and Figure 2: every modality :math:`m` has its own tower :math:`f_m`, whose output is
L2-normalised into the universal embedding :math:`u_m = f_m(x_m) / \lVert f_m(x_m) \rVert`; one classification
layer :math:`W` (shared by all towers) maps each :math:`u_m` to class logits :math:`W u_m`, which is what
puts the modalities in one space. Prediction from several modalities averages their softmax outputs.

The towers here are the encoders of notebook 03, one modality each: the text adapter on the cached sentence
embeddings, the FT-Transformer on the tabular columns, and the review-graph encoder (which summarises the
neighbours' text and tabular content), each a :class:`~mmsheaf.encoders.fusion.MultimodalEncoder` restricted
to one modality (:class:`EncoderTower`). Any other modality comes in as a tower, not a new model: e.g.
:class:`FeatureTower` on precomputed image features.

.. code-block:: python

    model = HuseModel.from_inputs(inputs, EncoderConfig(modalities=("text", "tabular")), num_classes=20)
    out = model(inputs, batch)          # out.embeddings["text"]: (B, 128) unit rows; out.logits["text"]: (B, 20)
    fused = model.fused(out)            # (B, 128): normalised mean of the observed modalities' embeddings
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmsheaf.encoders.fusion import EncoderConfig, MultimodalEncoder
from mmsheaf.encoders.inputs import ModalityInputs

__all__ = ["EncoderTower", "FeatureTower", "HuseModel", "HuseOutput"]


class EncoderTower(nn.Module):
    """The tower of one modality of :class:`ModalityInputs`: notebook 03's encoder restricted to it.

    Args:
        inputs: All rows (to size the encoders).
        cfg: The encoder settings; ``cfg.modalities`` is replaced by ``(modality,)``.
        modality: ``"text"``, ``"tabular"`` or ``"graph"``.
        train_idx: Training rows (the tabular encoder's statistics come from them only).
    """

    def __init__(self, inputs: ModalityInputs, cfg: EncoderConfig, modality: str,
                 train_idx: Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.modality = modality
        self.encoder = MultimodalEncoder(inputs, dataclasses.replace(cfg, modalities=(modality,)), train_idx)
        # Where the modality is missing the encoder outputs its learned "missing" token, but the HUSE losses
        # mask those rows out (and fusion skips them), so the token is never trained: freeze it.
        self.encoder.missing[modality].requires_grad_(False)

    @property
    def embedding_dim(self) -> int:
        return self.encoder.cfg.embedding_dim

    def observed(self, inputs: ModalityInputs, index: Tensor) -> Tensor:
        """:math:`(B,)` bool: rows of ``index`` whose modality is present."""
        return inputs.mask(self.modality)[index]

    def forward(self, inputs: ModalityInputs, index: Tensor, *, noise_std: float = 0.0,
                generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
        """:math:`(B, D)` unit rows (the encoder's learned missing token where the modality is absent)."""
        return self.encoder(inputs, index, noise_std=noise_std, generator=generator)


class FeatureTower(nn.Module):
    """A tower on a precomputed feature matrix (e.g. image features): an MLP, then L2 normalisation.

    Args:
        features: :math:`(N, F)` features, one row per row of the inputs.
        embedding_dim: Output size.
        hidden: Hidden size of the MLP.
        observed: :math:`(N,)` bool, ``False`` where the modality is missing (default: all present).
        dropout: Dropout of the MLP.
    """

    def __init__(self, features: Tensor, embedding_dim: int, hidden: int = 256, observed: Tensor | None = None,
                 dropout: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        if features.dim() != 2 or features.size(0) == 0 or features.size(1) == 0:
            raise ValueError(f"features must be a non-empty (N, F) matrix, got shape {tuple(features.shape)}.")
        if observed is not None and observed.shape != (features.size(0),):
            raise ValueError(f"observed must have shape ({features.size(0)},), got {tuple(observed.shape)}.")
        self.register_buffer("features", features.float())
        self.register_buffer("present", torch.ones(features.size(0), dtype=torch.bool)
                             if observed is None else observed.bool())  # fmt: skip
        self.embedding_dim = embedding_dim
        self.mlp = nn.Sequential(nn.Linear(features.size(1), hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, embedding_dim))  # fmt: skip

    def observed(self, inputs: ModalityInputs, index: Tensor) -> Tensor:
        return self.present[index]

    def forward(self, inputs: ModalityInputs, index: Tensor, *, noise_std: float = 0.0,
                generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
        x = self.features[index]
        if self.training and noise_std > 0:
            x = x + noise_std * torch.randn(x.shape, generator=generator, device=x.device)
        return F.normalize(self.mlp(x), dim=1)


@dataclass(frozen=True)
class HuseOutput:
    """What :class:`HuseModel` returns for a batch, each by modality (in the model's order).

    Attributes:
        embeddings: :math:`(B, D)` unit-norm universal embeddings.
        logits: :math:`(B, C)` class logits of the (shared) classifier on each embedding.
        observed: :math:`(B,)` bool, where the modality is present.
        fused: A model's own fused embedding :math:`(B, D)` (an early-fusion baseline); ``None``: the mean of
            the observed modalities' embeddings (:meth:`HuseModel.fused`).
        fused_logits: A model's own logits of the fused embedding :math:`(B, C)`; ``None``: the mean of the
            observed modalities' softmax (:meth:`HuseModel.fused_probabilities`).
    """

    embeddings: dict[str, Tensor]
    logits: dict[str, Tensor]
    observed: dict[str, Tensor]
    fused: Tensor | None = None
    fused_logits: Tensor | None = None


class HuseModel(nn.Module):
    r"""Towers and the shared classification layer of HUSE (Narayana et al., 2019, Section 3).

    Args:
        towers: One tower per modality (name -> module with ``forward(inputs, index, noise_std=, generator=)``
            returning unit-norm rows, ``observed(inputs, index)`` and ``embedding_dim``); any number, at least
            one.
        num_classes: Number of classes :math:`C`.
        shared: One classification layer for every tower (HUSE); ``False`` gives each tower its own layer
            (the "separate models" ablation).

    Shapes:
        - input ``index``: :math:`(B,)` row indices
        - output: :class:`HuseOutput` with :math:`(B, D)` embeddings and :math:`(B, C)` logits per modality
    """

    def __init__(self, towers: Mapping[str, nn.Module], num_classes: int, shared: bool = True) -> None:
        super().__init__()
        if not towers:
            raise ValueError("HuseModel needs at least one tower (one per modality).")
        dims = {name: int(tower.embedding_dim) for name, tower in towers.items()}
        if len(set(dims.values())) != 1:
            raise ValueError(f"every tower must have the same embedding_dim (one shared space), got {dims}.")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.towers = nn.ModuleDict(dict(towers))
        self.embedding_dim = next(iter(dims.values()))
        self.shared = shared
        if shared:
            self.classifier: nn.Module = nn.Linear(self.embedding_dim, num_classes)
        else:
            self.classifier = nn.ModuleDict({m: nn.Linear(self.embedding_dim, num_classes) for m in towers})

    @classmethod
    def from_inputs(cls, inputs: ModalityInputs, cfg: EncoderConfig, num_classes: int,
                    train_idx: Tensor | None = None, shared: bool = True,
                    extra_towers: Mapping[str, nn.Module] | None = None) -> HuseModel:  # fmt: skip
        """One :class:`EncoderTower` per modality of ``cfg.modalities`` (plus ``extra_towers``)."""
        towers: dict[str, nn.Module] = {m: EncoderTower(inputs, cfg, m, train_idx) for m in cfg.modalities}
        towers.update(extra_towers or {})
        return cls(towers, num_classes, shared=shared)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.towers)

    def head_parameters(self) -> list[nn.Parameter]:
        """The classification layer(s) (trained with ``HuseTrainConfig.head_lr``)."""
        return list(self.classifier.parameters())

    def classify(self, modality: str, embedding: Tensor) -> Tensor:
        """Logits of ``embedding`` (of ``modality``) by the shared layer (or the modality's own)."""
        layer = self.classifier if self.shared else self.classifier[modality]
        return layer(embedding)

    def forward(self, inputs: ModalityInputs, index: Tensor, *, noise_std: float = 0.0,
                generator: torch.Generator | None = None) -> HuseOutput:  # fmt: skip
        emb, logits, observed = {}, {}, {}
        for m, tower in self.towers.items():
            emb[m] = tower(inputs, index, noise_std=noise_std, generator=generator)
            logits[m] = self.classify(m, emb[m])
            observed[m] = tower.observed(inputs, index)
        return HuseOutput(emb, logits, observed)

    @staticmethod
    def fused(out: HuseOutput) -> Tensor:
        """:math:`(B, D)`: the L2-normalised mean of the observed modalities' embeddings of each row (or the
        model's own fused embedding, :attr:`HuseOutput.fused`)."""
        if out.fused is not None:
            return out.fused
        stack = torch.stack([out.embeddings[m] for m in out.embeddings], dim=1)
        weight = torch.stack([out.observed[m] for m in out.observed], dim=1).to(stack.dtype)
        weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, torch.ones_like(weight))
        return F.normalize((stack * weight.unsqueeze(2)).sum(1), dim=1)

    @staticmethod
    def fused_probabilities(out: HuseOutput) -> Tensor:
        """:math:`(B, C)`: the mean of the observed modalities' softmax outputs (HUSE's fusion, Section 4), or the
        softmax of the model's own fused logits (:attr:`HuseOutput.fused_logits`)."""
        if out.fused_logits is not None:
            return out.fused_logits.softmax(dim=1)
        probs = torch.stack([out.logits[m].softmax(dim=1) for m in out.logits], dim=1)
        weight = torch.stack([out.observed[m] for m in out.observed], dim=1).to(probs.dtype)
        weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, torch.ones_like(weight))
        return (probs * weight.unsqueeze(2)).sum(1) / weight.sum(1, keepdim=True)

    def encode_fused(self, inputs: ModalityInputs, index: Tensor) -> Tensor:
        """Eval-mode fused embeddings of rows ``index`` (:meth:`fused` of :meth:`encode`)."""
        return self.fused(self.encode(inputs, index))

    @torch.no_grad()
    def encode(self, inputs: ModalityInputs, index: Tensor | None = None, batch_size: int = 2048) -> HuseOutput:
        """Eval-mode outputs of rows ``index`` (default all), in batches; the module's mode is restored."""
        if index is None:
            index = torch.arange(inputs.num_rows, device=inputs.device)
        was_training = self.training
        self.eval()
        try:
            parts = [self(inputs, chunk) for chunk in index.split(batch_size)]
        finally:
            self.train(was_training)
        return HuseOutput(*({m: torch.cat([getattr(p, f)[m] for p in parts]) for m in self.modalities}
                            for f in ("embeddings", "logits", "observed")))  # fmt: skip
