r"""Sheaf recommenders: sheaf diffusion over the user-item graph with multimodal stalks.

The multimodal sheaf recommender is this project's extension of sheaf diffusion (`Bodnar et al., NeurIPS
2022 <https://arxiv.org/abs/2202.04579>`_) and of the id-only sheaf recommender Sheaf4Rec (`Purificato et al.,
ACM TORS 2024 <https://doi.org/10.1145/3691070>`_) to several modalities.

**Stalks.** Every node :math:`v` (user or item) has a stalk :math:`\mathcal{F}(v) = \bigoplus_{m}
\mathbb{R}^{k_m}`: one block per modality :math:`m` (ids, text, tabular). Block :math:`m` of node :math:`v` is
an encoder of :math:`v`'s modality-:math:`m` features (an id embedding; a two-layer MLP, or a linear map, of
the text embedding or the tabular row). The observation mask :math:`\mu_v \in \{0, 1\}^M` says which blocks
are observed: users have no text, a cold item has no id (``item_mask["id"]``), an item without a plot no
text. With ``user_profiles`` a user also observes the mean content of its training items.

**Restriction maps** :math:`\mathcal{F}_{v \trianglelefteq e}` are learned per edge from the endpoints'
stalks and masks, :math:`\mathcal{F}_{v \trianglelefteq e} = I_{vu} + \tanh(W [x_v \| \mu_v \| x_u \| \mu_u])`,
where the identity offset :math:`I_{vu} = \operatorname{diag}(\mu_v \odot \mu_u)` transports modality
:math:`m` only where both endpoints observe it (an untrained model starts from the constant sheaf on each
modality: GCN-style propagation). ``sheaf="diag"`` (the default): diagonal maps, one learned weight per edge and
modality, so the content of both ends decides how much of each modality an edge carries; ``"gen"`` /
``"orth"``: :math:`M \times M` maps whose off-diagonal entries *mix* modalities across an edge (an item's text
can reach a user's id block). Masking, not zero-filling: an unobserved block neither sends anything nor is
compared with anything.

**Diffusion** is linear, as in LightGCN, with the normalised sheaf Laplacian
:math:`\Delta_\mathcal{F} = (D + I)^{-1/2} L_\mathcal{F} (D + I)^{-1/2}`, and the readout averages over steps:

.. math::
    X_{t+1} = X_t - \alpha\, \Delta_\mathcal{F} X_t, \qquad
    \bar{X}[v, m] = \frac{1}{T+1} \sum_{t=0}^{T} X_{t}[v, m], \qquad
    z_v = \sum_{m:\ \mu_{v,m} = 1} \bar{X}[v, m] \ (\texttt{readout="sum"})
    \ \text{ or } \ \Vert_{m} \mu_{v,m} \bar{X}[v, m] \ (\texttt{"concat"}),

and a user-item score is :math:`\langle z_u, z_i \rangle`, trained with BPR. With the summed readout a user's
diffused id block meets an item's content blocks in the score, so a cold item (no edge, no id) is ranked by
:math:`\langle z_u, \mathrm{enc}_{\text{text}}(t_i) + \mathrm{enc}_{\text{tab}}(f_i) \rangle`; ``id_dropout``
hides the id blocks of random items in training so that content learns to stand in (DropoutNet's idea).

**Cost.** With diagonal maps only the coordinates some user and some item both observe are diffused (with
users that have ids only, the id block alone), each as its own weighted graph with only its own per-edge
work: an epoch costs about one LightGCN per diffused coordinate plus the map learner's per-edge work (measured
in ``benchmarks/recsys_speed.py``); general maps cost :math:`M^2` times as many non-zeros.

With ``modalities=("id",)`` the stalk is one block and the maps are scalars: the id-only sheaf recommender
(Sheaf4Rec with :math:`d = 1`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmsheaf.data.interactions import MODALITIES, InteractionData
from mmsheaf.recsys.registry import Recommender, register_recommender
from mmsheaf.sheaf import MAP_LEARNERS, SheafIndex, build_index, sheaf_laplacian, validate_sheaf

__all__ = ["READOUTS", "MultimodalSheafRec", "IdSheafRec"]


READOUTS: tuple[str, ...] = ("sum", "concat")
"""How :class:`MultimodalSheafRec` turns a node's diffused blocks into its embedding."""


def _block_widths(dim: int, modalities: Sequence[str], readout: str,
                  block_widths: Sequence[int] | None) -> tuple[int, ...]:  # fmt: skip
    """The width of every block: ``dim`` each (``"sum"``), or ``block_widths`` / ``dim`` split evenly (first
    blocks one wider) for ``"concat"``, summing to ``dim``."""
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}: choose one of {READOUTS}.")
    M = len(modalities)
    if readout == "sum":
        if block_widths is not None:
            raise ValueError("block_widths needs readout='concat' (summed blocks share one width, dim).")
        return (dim,) * M
    if block_widths is None:
        base, extra = divmod(dim, M)
        widths = tuple(base + (j < extra) for j in range(M))
    else:
        widths = tuple(int(w) for w in block_widths)
    if len(widths) != M or min(widths) < 1 or sum(widths) != dim:
        raise ValueError(f"block_widths must give each of the {M} modalities {modalities} a width >= 1, summing "
                         f"to dim={dim}; got {widths}.")  # fmt: skip
    return widths


def _encoder(in_features: int, width: int, hidden: int) -> nn.Module:
    """A content block's encoder: linear (``hidden=0``) or a two-layer MLP with a ReLU."""
    if hidden < 0:
        raise ValueError(f"encoder_hidden must be >= 0 (0: a linear encoder), got {hidden}.")
    if hidden == 0:
        return nn.Linear(in_features, width)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, width))


@register_recommender("mm-sheaf", display="MM-Sheaf")
class MultimodalSheafRec(Recommender):
    r"""Multimodal sheaf diffusion recommender (this project; see the module docstring for the model).

    Args:
        data: The interactions (sizes, feature widths and the training graph are read from it).
        dim: The embedding size of scores: every block's width with ``readout="sum"``, their total with
            ``"concat"``.
        layers: Diffusion steps :math:`T`.
        sheaf: ``"diag"`` (no cross-modal blocks, the default), ``"orth"`` (orthogonal :math:`M \times M`
            maps) or ``"gen"`` (general maps).
        modalities: Blocks of the stalk, a subset of ``("id", "text", "tabular")`` in that order.
        step: Diffusion step :math:`\alpha` (the normalised Laplacian's spectrum is in :math:`[0, 2]`).
        map_learner: ``"linear"`` (NSD's) or ``"mlp"``.
        map_hidden: Hidden width of the ``"mlp"`` learner.
        identity_offset: Maps are :math:`I + \sigma(\cdot)` (``"diag"``, ``"gen"``) so that training starts
            from the constant sheaf; ``False`` gives NSD's :math:`\sigma(\cdot)`.
        zero_init_maps: Start the map learner's output layer at zero, so that (with ``identity_offset``)
            training starts from the constant sheaf on each modality *exactly*: no cross-modal mixing at
            initialisation, only what the BPR gradients add (``"diag"`` and ``"gen"`` maps only).
        modality_dropout: During training, the probability of hiding each content block (text, tabular) of
            each item, to teach the model to score items with a missing modality.
        init_std: Standard deviation of the id embeddings at initialisation (LightGCN: 0.1).
        user_profiles: Give users a block for each item content modality they lack: the mean of that
            modality's features over the user's training items (a content profile), encoded like the items'. Users
            then observe text, so diagonal maps carry it along user-item edges and a cold item's text is compared
            with the texts its users watched.
        encoder_hidden: Hidden width of the content blocks' encoders: ``0`` for a linear map of the features,
            else a two-layer MLP with a ReLU.
        readout: ``"sum"``: a node's embedding is the sum of its observed diffused blocks, each of width
            ``dim``; ``"concat"``: the blocks side by side, of widths ``block_widths`` summing to ``dim`` (so the
            embedding size, and the cost of diffusion, is that of one ``dim``-wide LightGCN), and a score is the
            sum of per-modality inner products.
        block_widths: The width of each modality's block with ``readout="concat"`` (default: ``dim`` split
            evenly); unequal widths need diagonal maps.
        id_dropout: During training, the probability of hiding the id block of each item, as DropoutNet
            (Volkovs et al., NeurIPS 2017) drops preference inputs: the item is then scored, and its maps are
            learned, from its content blocks, as a cold item is at test time.

    **Shapes:** ``forward(data)`` returns user :math:`(U, k)` and item :math:`(I, k)` embeddings.
    """

    def __init__(
        self,
        data: InteractionData,
        dim: int = 64,
        layers: int = 2,
        sheaf: str = "diag",
        modalities: Sequence[str] = MODALITIES,
        step: float = 1.0,
        map_learner: str = "linear",
        map_hidden: int = 32,
        identity_offset: bool = True,
        modality_dropout: float = 0.0,
        init_std: float = 0.1,
        zero_init_maps: bool = False,
        id_dropout: float = 0.0,
        user_profiles: bool = False,
        readout: str = "sum",
        block_widths: Sequence[int] | None = None,
        encoder_hidden: int = 256,
    ) -> None:
        super().__init__()
        modalities = tuple(modalities)
        if not modalities or len(set(modalities)) != len(modalities) or set(modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be distinct names from {MODALITIES}, got {modalities}.")
        for m in modalities:
            if m != "id" and m not in data.user_features and m not in data.item_features:
                raise ValueError(f"modality {m!r} is in neither data.user_features nor data.item_features: "
                                 f"drop it from modalities (the data has {sorted({*data.user_features, *data.item_features})}).")  # fmt: skip
        if sheaf == "orth" and len(modalities) < 2:
            raise ValueError("sheaf='orth' needs at least two modalities (O(1) maps are +-1): use sheaf='diag'.")
        validate_sheaf(sheaf, len(modalities))
        if map_learner not in MAP_LEARNERS:
            raise ValueError(f"unknown map_learner {map_learner!r}: choose one of {sorted(MAP_LEARNERS)}.")
        if zero_init_maps and (sheaf == "orth" or not identity_offset):
            raise ValueError("zero_init_maps needs identity_offset=True and sheaf 'diag' or 'gen' (zero maps "
                             "would cut every edge otherwise).")  # fmt: skip
        if layers < 0 or dim < 1 or not 0.0 <= modality_dropout < 1.0 or not 0.0 <= id_dropout < 1.0:
            raise ValueError(f"mm-sheaf needs layers >= 0, dim >= 1, 0 <= modality_dropout < 1 and 0 <= id_dropout "
                             f"< 1, got layers={layers}, dim={dim}, modality_dropout={modality_dropout}, "
                             f"id_dropout={id_dropout}.")  # fmt: skip
        if id_dropout > 0 and "id" not in modalities:
            raise ValueError("id_dropout hides id blocks, but 'id' is not in modalities: leave it at 0.")
        widths = _block_widths(dim, modalities, readout, block_widths)
        if len(set(widths)) > 1 and sheaf != "diag":
            raise ValueError(f"sheaf={sheaf!r} maps mix blocks, which needs equal block widths; got {widths}: use "
                             "sheaf='diag' or equal widths.")  # fmt: skip
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.layers, self.sheaf, self.modalities = dim, layers, sheaf, modalities
        self.step, self.identity_offset, self.modality_dropout = step, identity_offset, modality_dropout
        self.init_std, self.zero_init_maps, self.id_dropout = init_std, zero_init_maps, id_dropout
        self.user_profiles, self.readout, self.widths = user_profiles, readout, widths
        width = dict(zip(modalities, widths))
        self.id_embedding = nn.Embedding(data.num_nodes, width["id"]) if "id" in modalities else None
        self.encoders = nn.ModuleDict()
        for side, feats in (("user", data.user_features), ("item", data.item_features)):
            for m in modalities:
                if m != "id" and m in feats:
                    self.encoders[f"{side}_{m}"] = _encoder(feats[m].size(1), width[m], encoder_hidden)
                elif m != "id" and side == "user" and user_profiles and m in data.item_features:
                    self.encoders[f"user_{m}"] = _encoder(data.item_features[m].size(1), width[m], encoder_hidden)
        M = len(modalities)
        self._profiles: dict[str, tuple[Tensor, int, Tensor, Tensor]] = {}
        kwargs = {"hidden_channels": map_hidden} if map_learner == "mlp" else {}
        self.map_learner = MAP_LEARNERS[map_learner](sum(widths) + M, M, sheaf=sheaf, act="tanh", **kwargs)
        self._index: tuple[Tensor, int, SheafIndex] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=self.init_std)
        for enc in self.encoders.values():
            for layer in enc.modules():
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        self.map_learner.reset_parameters()
        if self.zero_init_maps:
            nn.init.zeros_(self.map_learner.output_layer.weight)

    # ---------------------------------------------------------------------------------------------- graph
    def graph_index(self, data: InteractionData) -> SheafIndex:
        """The :class:`~mmsheaf.sheaf.SheafIndex` of ``data``'s training graph, built once per graph."""
        train = data.train
        if self._index is None or self._index[0] is not train or self._index[1] != train._version:
            self._index = (train, train._version, build_index(data.edge_index("train"), data.num_nodes))
        return self._index[2]

    # ---------------------------------------------------------------------------------------------- stalks
    def _block(self, data: InteractionData, side: str, m: str) -> tuple[Tensor, Tensor]:
        """Block ``m`` of every node on ``side``, :math:`(n, k)`, and its bool observation mask :math:`(n,)`."""
        n = data.num_users if side == "user" else data.num_items
        ref = self.map_learner.output_layer.weight  # device and dtype of new tensors
        if m == "id":
            offset = 0 if side == "user" else data.num_users
            masks = data.user_mask if side == "user" else data.item_mask
            mask = masks.get("id", torch.ones(n, dtype=torch.bool, device=ref.device)).to(ref.device)
            if self.training and self.id_dropout > 0 and side == "item":  # DropoutNet-style: content must stand in
                mask = mask & (torch.rand(n, device=mask.device) >= self.id_dropout)
            return self.id_embedding.weight[offset : offset + n], mask
        key = f"{side}_{m}"
        if key not in self.encoders:  # e.g. users have no text: the block is unobserved everywhere
            width = self.widths[self.modalities.index(m)]
            return ref.new_zeros(n, width), torch.zeros(n, dtype=torch.bool, device=ref.device)
        if side == "user" and m not in data.user_features:  # a profile (the encoder exists: user_profiles)
            profile, mask = self.user_profile(data, m)
            return self.encoders[key](profile), mask
        feats = data.user_features if side == "user" else data.item_features
        mask = data.has(side, m)
        # Unobserved rows are zeroed before the encoder: whatever they hold (even NaN) never reaches a block.
        x = torch.where(mask.unsqueeze(1), feats[m], 0.0)
        if self.training and self.modality_dropout > 0 and side == "item":
            mask = mask & (torch.rand(n, device=mask.device) >= self.modality_dropout)
        return self.encoders[key](x), mask

    def user_profile(self, data: InteractionData, m: str) -> tuple[Tensor, Tensor]:
        r"""The users' modality-``m`` profiles :math:`\bar{\mathbf{x}}_u = \frac{1}{|N_u|}\sum_{i \in N_u}
        \mathbf{x}_{i,m}` over their *training* items that observe ``m``, :math:`(U, F_m)`, and the mask of users
        with at least one such item; computed once per training graph."""
        train = data.train
        cached = self._profiles.get(m)
        if cached is None or cached[0] is not train or cached[1] != train._version:
            users, items = train[0], train[1]
            seen = data.has("item", m).to(train.device)[items]
            users, items = users[seen], items[seen]
            feats = data.item_features[m]
            sums = feats.new_zeros(data.num_users, feats.size(1)).index_add_(0, users, feats[items])
            counts = torch.bincount(users, minlength=data.num_users)
            cached = (train, train._version, sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype), counts > 0)
            self._profiles[m] = cached
        return cached[2], cached[3]

    def initial_blocks(self, data: InteractionData) -> tuple[list[Tensor], Tensor]:
        """Layer-0 blocks, one :math:`(U + I, k_m)` tensor per modality (users first, unobserved rows zero),
        and the float mask :math:`(U + I, M)`."""
        blocks, masks = [], []
        for m in self.modalities:
            (xu, mu), (xi, mi) = self._block(data, "user", m), self._block(data, "item", m)
            blocks.append(torch.cat([xu, xi]))
            masks.append(torch.cat([mu, mi]))
        mu = torch.stack([m.to(blocks[0].dtype) for m in masks], dim=1)
        return [b * mu[:, j : j + 1] for j, b in enumerate(blocks)], mu

    def initial_stalks(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        """Layer-0 stalks :math:`(U + I, M, k)` (users first) and their float mask :math:`(U + I, M)`; equal
        block widths only."""
        if len(set(self.widths)) > 1:
            raise ValueError(f"blocks of widths {self.widths} do not stack into stalks: use initial_blocks.")
        blocks, mu = self.initial_blocks(data)
        return torch.stack(blocks, dim=1), mu

    def carried(self, mu: Tensor) -> Tensor:
        """The stalk coordinates an edge may carry under diagonal maps, ``(c,)`` long: those observed by some
        user and some item (every edge joins a user and an item; a coordinate with no such pair has zero maps
        on every edge, and diffusion leaves it as it is)."""
        u = self.num_users
        return (mu[:u].amax(0) * mu[u:].amax(0)).nonzero().flatten()

    def restriction_maps(self, x: Tensor, mu: Tensor, index: SheafIndex, rows: Tensor | None = None) -> Tensor:
        r"""Masked restriction maps of every directed edge: :math:`(2E, M)` (diag) or :math:`(2E, M, M)`;
        with ``rows`` (diag only), only those coordinates, :math:`(2E, c)`. ``x``: the stalks :math:`(N, M, k)`
        or the blocks side by side, :math:`(N, \sum_m k_m)`."""
        maps = self.map_learner(torch.cat([x.flatten(1), mu], dim=1), index, rows)
        src, dst = index.src, index.dst
        if self.sheaf == "diag":
            if self.identity_offset:
                maps = 1.0 + maps
            m = (mu if rows is None else mu[:, rows]).t()  # (c, N): gathered edge-last, the fast way
            return maps * (m.index_select(1, src) * m.index_select(1, dst)).t()
        maps = maps * mu[src].unsqueeze(1)  # zero the columns of the source's unobserved blocks
        if self.identity_offset and self.sheaf == "gen":  # transport modality m only where both ends observe it
            maps = maps + torch.diag_embed(mu[src] * mu[dst])
        return maps

    def diffuse(self, data: InteractionData) -> tuple[list[Tensor], Tensor]:
        r"""Run the diffusion: the time-averaged blocks :math:`\frac{1}{T+1}\sum_t X_t[:, m]`, one
        :math:`(U + I, k_m)` tensor per modality, and the float mask :math:`(U + I, M)`."""
        index = self.graph_index(data)
        blocks, mu = self.initial_blocks(data)
        if not (self.layers and index.num_edges):
            return blocks, mu
        if self.sheaf == "diag":
            # Diffuse only the coordinates some edge carries (text never crosses a user-item edge when users
            # have no text): the other coordinates have zero Laplacian rows and stay as they are, so the result
            # is the same, with a CSR product of fewer non-zeros and no per-edge work for the rest.
            rows = self.carried(mu)
            if rows.numel() == 0:
                return blocks, mu
            # Diagonal maps never mix coordinates: each carried coordinate is its own weighted graph, diffused
            # with its own Laplacian at its own block width. (Measured on ML-1M: one joint Laplacian over the
            # carried coordinates, node-major, makes the gradient of its values 1.7x slower, and slicing one set
            # of maps per coordinate costs a zero-filled copy of them all in the backward pass.)
            features = torch.cat(blocks, dim=1)
            out = list(blocks)
            for row in rows.split(1):
                r = int(row)
                maps = self.restriction_maps(features, mu, index, row)  # (2E, 1)
                lap = sheaf_laplacian(index, maps, sheaf="diag", normalisation="sym")
                h = blocks[r].unsqueeze(1)
                total = h
                for _ in range(self.layers):
                    h = h - self.step * lap.apply(h)
                    total = total + h
                out[r] = total[:, 0] / (self.layers + 1)
            return out, mu
        x = torch.stack(blocks, dim=1)
        maps = self.restriction_maps(x, mu, index)
        # Masked orthogonal maps are no longer orthogonal: build their Laplacian as general maps.
        kind = "gen" if self.sheaf == "orth" and not bool((mu > 0).all()) else self.sheaf
        lap = sheaf_laplacian(index, maps, sheaf=kind, normalisation="sym")
        h, total = x, x
        for _ in range(self.layers):
            h = h - self.step * lap.apply(h)
            total = total + h
        return list((total / (self.layers + 1)).unbind(1)), mu

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        blocks, mu = self.diffuse(data)
        masked = [b * mu[:, j : j + 1] for j, b in enumerate(blocks)]  # readout over the observed blocks
        z = torch.stack(masked).sum(0) if self.readout == "sum" else torch.cat(masked, dim=1)
        return z[: data.num_users], z[data.num_users :]

    def extra_repr(self) -> str:
        return (f"modalities={self.modalities}, sheaf={self.sheaf!r}, dim={self.dim}, layers={self.layers}, "
                f"step={self.step}, readout={self.readout!r}, widths={self.widths}")  # fmt: skip


@register_recommender("sheaf-id", display="Sheaf (ids)")
class IdSheafRec(MultimodalSheafRec):
    r"""The id-only sheaf recommender (Sheaf4Rec, Purificato et al. 2024, with scalar maps, :math:`d = 1`).

    :class:`MultimodalSheafRec` with ``modalities=("id",)`` and diagonal maps: one learned scalar restriction
    map per (node, edge), identity-offset so it starts as LightGCN-style propagation.

    Args: as :class:`MultimodalSheafRec` without ``modalities``, ``sheaf`` and ``modality_dropout``.
    """

    def __init__(self, data: InteractionData, dim: int = 64, layers: int = 2, step: float = 1.0,
                 map_learner: str = "linear", map_hidden: int = 32, identity_offset: bool = True,
                 init_std: float = 0.1) -> None:  # fmt: skip
        super().__init__(data, dim=dim, layers=layers, sheaf="diag", modalities=("id",), step=step,
                         map_learner=map_learner, map_hidden=map_hidden, identity_offset=identity_offset,
                         init_std=init_std)  # fmt: skip
