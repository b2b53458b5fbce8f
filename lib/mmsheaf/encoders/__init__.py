r"""Multimodal encoders: rows with text, tabular and graph inputs to one L2-normalised latent space.

* :mod:`~mmsheaf.encoders.inputs`: :class:`ModalityInputs` (per-row inputs and masks), :func:`synthetic_inputs`;
* :mod:`~mmsheaf.encoders.text`: the text token (MLP adapter on cached sentence embeddings, or a fine-tuned
  sentence-transformers model);
* :mod:`~mmsheaf.encoders.tabular`: the tabular token (pytorch-frame's FT-Transformer);
* :mod:`~mmsheaf.encoders.graph`: the graph token from the neighbours' content on per-row ego graphs (GraphSAGE,
  GCN or sheaf diffusion);
* :mod:`~mmsheaf.encoders.fusion`: :class:`EncoderConfig` and :class:`MultimodalEncoder`.
"""

from __future__ import annotations

from .fusion import EncoderConfig, MultimodalEncoder, modality_dropout_mask
from .graph import GRAPH_ENCODERS, EgoGraphs, NeighbourIndex, ego_graphs
from .inputs import MODALITIES, EmptyModalityError, ModalityInputs, synthetic_inputs
from .tabular import TabularEncoder, tabular_col_stats
from .text import TEXT_ENCODERS, FinetunedTextEncoder, TextAdapter, TextEncoder

__all__ = [
    "GRAPH_ENCODERS",
    "MODALITIES",
    "TEXT_ENCODERS",
    "EgoGraphs",
    "EmptyModalityError",
    "EncoderConfig",
    "FinetunedTextEncoder",
    "ModalityInputs",
    "MultimodalEncoder",
    "NeighbourIndex",
    "TabularEncoder",
    "TextAdapter",
    "TextEncoder",
    "ego_graphs",
    "modality_dropout_mask",
    "synthetic_inputs",
    "tabular_col_stats",
]
