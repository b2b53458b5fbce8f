r"""The multimodal encoder: text, tabular and graph tokens fused into one L2-normalised embedding.

.. code-block:: python

    inputs, labels = synthetic_inputs(num_rows=2000)
    encoder = MultimodalEncoder(inputs, EncoderConfig(graph="sheaf-diag"), train_idx=train_idx)
    z = encoder(inputs, batch_idx, noise_std=0.05)      # (B, 128), unit rows; train mode: augmented
    Z = encoder.encode(inputs)                          # (N, 128) in eval mode, e.g. for retrieval

Every row gets one ``token_dim`` token per modality of :attr:`EncoderConfig.modalities`
(:data:`~mmsheaf.encoders.inputs.MODALITIES` order): the text token (:mod:`~mmsheaf.encoders.text`), the
FT-Transformer's tabular token (:mod:`~mmsheaf.encoders.tabular`) and the graph token, which summarises the
*neighbours'* text and tabular tokens (:mod:`~mmsheaf.encoders.graph`). Where a row's modality is missing
(``inputs.mask(m)`` is ``False``) a learned per-modality "missing" token takes its place and the row's stored
features are never read. An MLP maps the concatenated tokens to the embedding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .graph import (
    GRAPH_ENCODERS,
    SHEAF_GRAPH_ENCODERS,
    NeighbourIndexCache,
    build_graph_encoder,
    ego_graphs,
)
from .inputs import MODALITIES, EmptyModalityError, ModalityInputs
from .tabular import TabularEncoder
from .text import TEXT_ENCODERS, build_text_encoder

__all__ = ["EncoderConfig", "MultimodalEncoder", "modality_dropout_mask"]

CONTENT_MODALITIES: tuple[str, ...] = ("text", "tabular")
"""The modalities whose tokens make up a neighbour's content for the graph token."""


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of :class:`MultimodalEncoder`.

    Args:
        modalities: Modalities to fuse, any non-empty subset of :data:`~mmsheaf.encoders.inputs.MODALITIES`
            (stored in that order).
        embedding_dim: Size of the output embedding.
        token_dim: Size of every modality token.
        text: Text encoder (:data:`~mmsheaf.encoders.text.TEXT_ENCODERS`): ``"adapter"`` (MLP on the cached
            embeddings) or ``"finetune"`` (a trained sentence-transformers model on ``inputs.texts``; slow).
        text_hidden: Hidden size of the text adapter.
        tab_channels: FT-Transformer width (a multiple of ``tab_heads``).
        tab_layers: FT-Transformer layers.
        tab_heads: FT-Transformer attention heads (4: heads of size 8 at width 32; 8 costs ~25 % more per step on
            a CPU).
        graph: Graph encoder (:data:`~mmsheaf.encoders.graph.GRAPH_ENCODERS`): ``"sage"``, ``"gcn"``,
            ``"sheaf-diag"``, ``"sheaf-orth"``, ``"sheaf-gen"``.
        graph_layers: Message-passing layers = hops of the neighbourhood.
        graph_max_neighbours: In training mode, sample at most this many neighbours per node and hop
            (GraphSAGE sampling: the neighbours are encoded in every step, so this bounds the cost); ``None``:
            all. Eval mode always uses all neighbours.
        sheaf_d: Stalk dimension of the sheaf options (``token_dim`` must be divisible by it).
        proj_hidden: Hidden size of the fusion MLP.
        dropout: Dropout in the adapter, the FT-Transformer, the graph encoder and the fusion MLP.
        modality_dropout: Training-time probability of replacing each observed (row, modality) token by the
            missing token; at least one observed modality of every row is kept (:func:`modality_dropout_mask`).

    Raises:
        ValueError: for an unknown or empty modality list, unknown encoder names, non-positive sizes or
            probabilities outside their range; the message names the field.
    """

    modalities: tuple[str, ...] = MODALITIES
    embedding_dim: int = 128
    token_dim: int = 128
    text: str = "adapter"
    text_hidden: int = 256
    tab_channels: int = 32
    tab_layers: int = 2
    tab_heads: int = 4
    graph: str = "sage"
    graph_layers: int = 1
    graph_max_neighbours: int | None = None
    sheaf_d: int = 2
    proj_hidden: int = 256
    dropout: float = 0.1
    modality_dropout: float = 0.0

    def __post_init__(self) -> None:
        given = (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        unknown = [m for m in given if m not in MODALITIES]
        if not given or unknown or len(set(given)) != len(given):
            raise ValueError(
                f"EncoderConfig.modalities must be a non-empty tuple of distinct names among {MODALITIES}, "
                f"got {self.modalities!r}."
            )
        object.__setattr__(self, "modalities", tuple(m for m in MODALITIES if m in given))
        if self.text not in TEXT_ENCODERS:
            raise ValueError(
                f"Unknown EncoderConfig.text {self.text!r}: choose one of {tuple(TEXT_ENCODERS)}."
            )
        if self.graph not in GRAPH_ENCODERS:
            raise ValueError(
                f"Unknown EncoderConfig.graph {self.graph!r}: choose one of {tuple(GRAPH_ENCODERS)}."
            )
        for name in (
            "embedding_dim",
            "token_dim",
            "text_hidden",
            "tab_channels",
            "tab_layers",
            "tab_heads",
            "graph_layers",
            "sheaf_d",
            "proj_hidden",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EncoderConfig.{name} must be a positive integer, got {value!r}.")
        if self.graph_max_neighbours is not None and (
            not isinstance(self.graph_max_neighbours, int) or self.graph_max_neighbours < 1
        ):
            raise ValueError(
                f"EncoderConfig.graph_max_neighbours must be None (all) or a positive integer, got "
                f"{self.graph_max_neighbours!r}."
            )
        if self.tab_channels % self.tab_heads:
            raise ValueError(
                f"EncoderConfig.tab_channels ({self.tab_channels}) must be a multiple of tab_heads "
                f"({self.tab_heads})."
            )
        if self.graph in SHEAF_GRAPH_ENCODERS and self.token_dim % self.sheaf_d:
            raise ValueError(
                f"EncoderConfig.token_dim ({self.token_dim}) must be divisible by sheaf_d ({self.sheaf_d}) for "
                f"graph={self.graph!r}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"EncoderConfig.dropout must lie in [0, 1), got {self.dropout}.")
        if not 0.0 <= self.modality_dropout <= 1.0:
            raise ValueError(
                f"EncoderConfig.modality_dropout must lie in [0, 1], got {self.modality_dropout}."
            )


def modality_dropout_mask(observed: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    r"""Which (row, modality) tokens to keep under modality dropout.

    Every observed entry is dropped with probability ``p``; a row that would lose all its observed modalities
    keeps one of them, drawn uniformly. Unobserved entries are never kept (they use the missing token anyway).

    Args:
        observed: :math:`(B, M)` bool, ``True`` where the row's modality is observed.
        p: Drop probability in :math:`[0, 1]` (``1``: every row keeps exactly one observed modality).
        generator: Random generator on ``observed``'s device (default: the global one).

    **Shapes:** ``observed`` :math:`(B, M)` -> keep mask :math:`(B, M)` bool, ``keep <= observed``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"modality dropout must lie in [0, 1], got {p}.")
    if p == 0.0:
        return observed.clone()
    keep = observed & (torch.rand(observed.shape, generator=generator, device=observed.device) >= p)
    lost = observed.any(1) & ~keep.any(1)
    score = torch.rand(observed.shape, generator=generator, device=observed.device).masked_fill(
        ~observed, -1.0
    )
    rescue = F.one_hot(score.argmax(1), observed.size(1)).bool() & lost.unsqueeze(1)
    return keep | rescue


def _encodable(inputs: ModalityInputs, cfg: EncoderConfig) -> dict[str, bool]:
    """Which modalities the inputs can feed (empty ones, with no observed row, included)."""
    return {
        "text": (inputs.texts if cfg.text == "finetune" else inputs.text) is not None,
        "tabular": inputs.has_tabular,
        "graph": inputs.edge_index is not None,
    }


_MISSING_INPUT_HINT = {
    "text": "pass ModalityInputs(text=...) (cached sentence embeddings)",
    "texts": "text='finetune' embeds raw strings: pass ModalityInputs(texts=...) (one string per row)",
    "tabular": "pass ModalityInputs(x_num=..., x_cat=...) with at least one column",
    "graph": "inputs.edge_index is None: pass ModalityInputs(edge_index=...)",
}

_TOKEN_ENCODERS: dict[str, Callable[[ModalityInputs, EncoderConfig, Tensor | None], nn.Module]] = {
    "text": lambda inputs, cfg, train_idx: build_text_encoder(
        cfg.text, inputs, cfg.text_hidden, cfg.token_dim, cfg.dropout
    ),
    "tabular": lambda inputs, cfg, train_idx: TabularEncoder(
        inputs, cfg.token_dim, cfg.tab_channels, cfg.tab_layers, cfg.tab_heads, cfg.dropout, train_idx
    ),
}
"""Builders of the per-row token encoders (``forward(inputs, rows, noise_std, generator)``) by modality."""


class MultimodalEncoder(nn.Module):
    r"""Embeds rows with up to three modalities into one L2-normalised latent space:

    .. math::
        \mathbf{z}_i = \operatorname{normalise}\Big(\operatorname{MLP}\big(\big\Vert_{m \in \mathcal{M}}
        \tilde{\mathbf{t}}^{m}_i\big)\Big),\qquad
        \tilde{\mathbf{t}}^{m}_i = \begin{cases} \mathbf{t}^{m}_i & \text{modality } m \text{ of row } i
        \text{ observed (and kept)} \\ \mathbf{t}^{m}_{\text{missing}} & \text{otherwise,}\end{cases}

    with the text token :math:`\mathbf{t}^{text}_i` (:mod:`~mmsheaf.encoders.text`), the FT-Transformer's
    tabular token :math:`\mathbf{t}^{tab}_i` (:mod:`~mmsheaf.encoders.tabular`) and the graph token
    :math:`\mathbf{t}^{graph}_i = \operatorname{GNN}\big(\{[\tilde{\mathbf{t}}^{text}_u \Vert
    \tilde{\mathbf{t}}^{tab}_u]\}_{u \in \text{ego}(i) \setminus i}\big)` over row :math:`i`'s ego graph with
    its own content neutralised (:mod:`~mmsheaf.encoders.graph`); the MLP is
    ``Linear -> LayerNorm -> GELU -> Dropout -> Linear``. The neighbours' content uses every content modality
    the inputs have (text, tabular), also those not in ``cfg.modalities``.

    **Augmentation** (training mode only; eval mode, :meth:`encode` and :meth:`modality_tokens` never apply
    it, whatever is passed): Gaussian noise of std ``noise_std`` on the text embeddings and on the standardised
    numerical cells of every encoded row (the batch and its neighbours), modality dropout
    (:func:`modality_dropout_mask`) on the batch rows' tokens and, with ``cfg.graph_max_neighbours``, neighbour
    sampling.

    **Cost** per batch: the text and tabular encoders run once on the union of the batch rows and their
    ``graph_layers``-hop neighbours (for ``B = 256`` and about 10 neighbours, some 2,800 rows); nothing is
    computed for the other rows.

    Args:
        inputs: The data the encoder is for: sizes, category counts and (tabular) column statistics are read
            from it.
        cfg: :class:`EncoderConfig`.
        train_idx: Rows for the column statistics (default: all rows); only rows with an observed tabular
            record are used.

    Raises:
        ValueError: a modality of ``cfg.modalities`` the inputs cannot feed (e.g. ``"graph"`` with
            ``inputs.edge_index`` ``None``), or a bad ``train_idx``.
        EmptyModalityError: a modality of ``cfg.modalities`` that no row observes (e.g. text embeddings with 0
            columns because every text is blank); the message says to drop it.

    **Shapes:**
        - input ``index``: :math:`(B,)` long row indices
        - output: :math:`(B, \text{embedding\_dim})`, unit L2 norm
    """

    def __init__(
        self, inputs: ModalityInputs, cfg: EncoderConfig = EncoderConfig(), train_idx: Tensor | None = None
    ) -> None:
        super().__init__()
        if not isinstance(cfg, EncoderConfig):
            raise ValueError(f"cfg must be an EncoderConfig, got {type(cfg).__name__}.")
        self.cfg = cfg
        self.num_rows = inputs.num_rows
        encodable = _encodable(inputs, cfg)
        for m in cfg.modalities:
            if not encodable[m]:
                raise ValueError(
                    f"EncoderConfig.modalities has {m!r} but the inputs cannot feed it: "
                    f"{_MISSING_INPUT_HINT['texts' if m == 'text' and cfg.text == 'finetune' else m]}, or drop "
                    f"{m!r} from modalities."
                )
            if (reason := inputs.empty_reason(m)) is not None:
                raise EmptyModalityError(m, reason, f"EncoderConfig.modalities has {m!r} but no row of the inputs "
                                                    f"observes it: {reason}. Drop {m!r} from modalities.")  # fmt: skip
        if train_idx is not None:
            train_idx = self._check_index(train_idx, "train_idx")
        self.content_modalities: tuple[str, ...] = ()
        if "graph" in cfg.modalities:
            self.content_modalities = tuple(m for m in CONTENT_MODALITIES
                                            if encodable[m] and inputs.empty_reason(m) is None)  # fmt: skip
            if not self.content_modalities:
                raise ValueError(
                    "The graph token summarises the neighbours' text and tabular content, but the inputs have "
                    "neither: pass text or tabular columns, or drop 'graph' from modalities."
                )
        self.token_modalities = tuple(
            m for m in CONTENT_MODALITIES if m in cfg.modalities or m in self.content_modalities
        )
        self.encoders = nn.ModuleDict(
            {m: _TOKEN_ENCODERS[m](inputs, cfg, train_idx) for m in self.token_modalities}
        )
        if "graph" in cfg.modalities:
            self.encoders["graph"] = build_graph_encoder(
                cfg.graph,
                cfg.token_dim * len(self.content_modalities),
                cfg.token_dim,
                cfg.graph_layers,
                cfg.dropout,
                cfg.sheaf_d,
            )
        self.missing = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(cfg.token_dim)) for m in MODALITIES if m in self.encoders}
        )
        self.fusion = nn.Sequential(
            nn.Linear(cfg.token_dim * len(cfg.modalities), cfg.proj_hidden),
            nn.LayerNorm(cfg.proj_hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.proj_hidden, cfg.embedding_dim),
        )
        self._neighbours = NeighbourIndexCache()
        self.reset_parameters()
        self.to(inputs.device)

    def reset_parameters(self) -> None:
        for encoder in self.encoders.values():
            encoder.reset_parameters()
        for token in self.missing.values():
            nn.init.normal_(token, std=0.02)
        for layer in self.fusion:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()

    @property
    def modalities(self) -> tuple[str, ...]:
        """The fused modalities, in :data:`~mmsheaf.encoders.inputs.MODALITIES` order."""
        return self.cfg.modalities

    # -- checks --------------------------------------------------------------------------------------------

    def _check_index(self, index: Tensor, name: str = "index") -> Tensor:
        if not isinstance(index, Tensor) or index.dim() != 1 or index.dtype not in (torch.long, torch.int32):
            raise ValueError(f"{name} must be a 1-d long tensor of row indices, got {index!r:.80}.")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.num_rows):
            raise ValueError(f"{name} holds rows outside [0, {self.num_rows}): index rows of the inputs.")
        return index.long()

    def check_inputs(self, inputs: ModalityInputs) -> None:
        """``ValueError`` unless ``inputs`` matches the data the encoder was built for (sizes and columns)."""
        if not isinstance(inputs, ModalityInputs):
            raise ValueError(f"inputs must be a ModalityInputs, got {type(inputs).__name__}.")
        if inputs.num_rows != self.num_rows:
            raise ValueError(
                f"The encoder was built for {self.num_rows} rows, the inputs have {inputs.num_rows}: pass the "
                "ModalityInputs of all rows and select a batch with index."
            )
        for m in self.token_modalities:
            self.encoders[m].check_inputs(inputs)
        if "graph" in self.encoders and inputs.edge_index is None:
            raise ValueError(f"The encoder fuses the graph modality: {_MISSING_INPUT_HINT['graph']}.")

    # -- tokens --------------------------------------------------------------------------------------------

    def _rows_tokens(
        self,
        m: str,
        inputs: ModalityInputs,
        rows: Tensor,
        noise_std: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        """(U, token_dim) tokens of modality ``m`` for ``rows``: the encoder on observed rows only."""
        observed = inputs.mask(m)[rows]
        where = observed.nonzero().squeeze(1)
        missing = self.missing[m].unsqueeze(0)
        if where.numel() == 0:
            return missing.expand(rows.numel(), -1)
        tokens = self.encoders[m](inputs, rows[where], noise_std, generator)
        full = tokens.new_zeros(rows.numel(), tokens.size(1)).index_copy(0, where, tokens)
        return torch.where(observed.unsqueeze(1), full, missing)

    def _tokens(
        self,
        inputs: ModalityInputs,
        index: Tensor,
        noise_std: float,
        generator: torch.Generator | None,
        sample: bool = False,
    ) -> dict[str, Tensor]:
        cfg = self.cfg
        b = index.numel()
        ego = centre_pos = None
        context = index.new_zeros(0)
        if "graph" in cfg.modalities:
            assert inputs.edge_index is not None
            centre_pos = inputs.mask("graph")[index].nonzero().squeeze(1)
            if centre_pos.numel():
                neighbours = self._neighbours(inputs.edge_index, inputs.num_rows)
                limit = cfg.graph_max_neighbours if sample else None
                ego = ego_graphs(neighbours, index[centre_pos], cfg.graph_layers, limit, generator)
                context = ego.node
        # Every row is encoded once; with noise, every entry of ``index`` gets its own draw, so that
        # duplicates in a batch are independent views.
        if noise_std > 0:
            unique, inverse = torch.unique(context, return_inverse=True)
            rows = torch.cat([index, unique])
            own, neighbour = torch.arange(b, device=index.device), inverse + b
        else:
            rows, inverse = torch.unique(torch.cat([index, context]), return_inverse=True)
            own, neighbour = inverse[:b], inverse[b:]
        row_tokens = {
            m: self._rows_tokens(m, inputs, rows, noise_std, generator) for m in self.token_modalities
        }
        out = {m: row_tokens[m][own] for m in cfg.modalities if m in CONTENT_MODALITIES}
        if "graph" in cfg.modalities:
            graph = self.missing["graph"].unsqueeze(0).expand(b, -1)
            if ego is not None and centre_pos is not None:
                content = torch.cat([row_tokens[m] for m in self.content_modalities], dim=1)[neighbour]
                tokens = self.encoders["graph"](content, ego)
                full = tokens.new_zeros(b, tokens.size(1)).index_copy(0, centre_pos, tokens)
                observed = torch.zeros(b, dtype=torch.bool, device=index.device)
                observed[centre_pos] = True
                graph = torch.where(observed.unsqueeze(1), full, graph)
            out["graph"] = graph
        return {m: out[m] for m in cfg.modalities}

    def modality_tokens(self, inputs: ModalityInputs, index: Tensor) -> dict[str, Tensor]:
        """Each fused modality's :math:`(B, \\text{token\\_dim})` tokens of rows ``index``, missing tokens where
        the modality is missing; no noise, no modality dropout and all neighbours (dropout layers follow the
        module's mode)."""
        self.check_inputs(inputs)
        return self._tokens(inputs, self._check_index(index), 0.0, None)

    # -- embeddings ----------------------------------------------------------------------------------------

    def forward(
        self,
        inputs: ModalityInputs,
        index: Tensor,
        *,
        noise_std: float = 0.0,
        modality_dropout: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""The embeddings of rows ``index``.

        Args:
            inputs: All rows (the kind of :class:`ModalityInputs` the encoder was built from).
            index: :math:`(B,)` rows to embed. Duplicates are independent views in training mode (own noise
                draws and modality dropout), e.g. ``torch.cat([idx, idx])`` for a contrastive pair.
            noise_std: Std of the Gaussian noise on text embeddings and standardised numerical cells, **training
                mode only** (ignored in eval mode).
            modality_dropout: Overrides ``cfg.modality_dropout``, **training mode only** (ignored in eval mode).
            generator: Random generator on the inputs' device for the noise and the modality dropout (dropout
                layers use the global generator).

        Returns:
            :math:`(B, \text{embedding\_dim})` L2-normalised embeddings.
        """
        self.check_inputs(inputs)
        index = self._check_index(index)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}.")
        p = self.cfg.modality_dropout if modality_dropout is None else float(modality_dropout)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"modality_dropout must lie in [0, 1], got {p}.")
        if not self.training:
            noise_std, p = 0.0, 0.0
        tokens = self._tokens(inputs, index, noise_std, generator, sample=self.training)
        if p > 0:
            observed = torch.stack([inputs.mask(m)[index] for m in self.modalities], dim=1)
            keep = modality_dropout_mask(observed, p, generator)
            for j, m in enumerate(self.modalities):
                tokens[m] = torch.where(keep[:, j : j + 1], tokens[m], self.missing[m].unsqueeze(0))
        return self.fuse(tokens)

    def fuse(self, tokens: dict[str, Tensor]) -> Tensor:
        """The L2-normalised embeddings of per-modality tokens (all of ``self.modalities``)."""
        z = self.fusion(torch.cat([tokens[m] for m in self.modalities], dim=1))
        return F.normalize(z, dim=1)

    @torch.no_grad()
    def encode(self, inputs: ModalityInputs, index: Tensor | None = None, batch_size: int = 2048) -> Tensor:
        r"""Eval-mode embeddings :math:`(B, \text{embedding\_dim})` of rows ``index`` (default: all rows), in
        batches of ``batch_size``; the module's previous mode is restored."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if index is None:
            index = torch.arange(inputs.num_rows, device=inputs.device)
        index = self._check_index(index)
        was_training = self.training
        self.eval()
        try:
            parts = [self(inputs, chunk) for chunk in index.split(batch_size)]
        finally:
            self.train(was_training)
        if not parts:
            return torch.zeros(0, self.cfg.embedding_dim, device=inputs.device)
        return torch.cat(parts)

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, text={self.cfg.text!r}, graph={self.cfg.graph!r}"
