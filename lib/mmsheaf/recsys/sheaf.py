r"""Sheaf recommenders: sheaf diffusion over the user-item graph with multimodal stalks.

The multimodal sheaf recommender is this project's extension of sheaf diffusion (`Bodnar et al., NeurIPS
2022 <https://arxiv.org/abs/2202.04579>`_) and of the id-only sheaf recommender Sheaf4Rec (`Purificato et al.,
ACM TORS 2024 <https://doi.org/10.1145/3691070>`_) to several modalities.

Every node :math:`v` (user or item) has a stalk :math:`\mathcal{F}(v) = \bigoplus_{m} \mathbb{R}^{k}`: one
:math:`k`-dimensional block per modality :math:`m` (ids, text, tabular), in the layout of NSD with stalk
dimension :math:`M` (the number of modalities) and :math:`k` channels. Block :math:`m` of node :math:`v` is
an encoder of :math:`v`'s modality-:math:`m` features (an id embedding, a linear map of the text embedding or
of the tabular row). The observation mask :math:`\mu_v \in \{0, 1\}^M` says which blocks are observed.

Restriction maps :math:`\mathcal{F}_{v \trianglelefteq e} \in \mathbb{R}^{M \times M}` are learned per edge
from the endpoints' stalks and masks, :math:`\mathcal{F}_{v \trianglelefteq e} = I_{vu} + \sigma(W [x_v \| x_u])`,
where the identity offset :math:`I_{vu} = \operatorname{diag}(\mu_v \odot \mu_u)` transports modality
:math:`m` only where both endpoints observe it (so an untrained model starts from the constant sheaf on each
modality, i.e. from GCN-style propagation). Their diagonal entries *transport* a modality along the edge, their off-diagonal entries *mix*
modalities across it (an item's text block can reach a user's id block; users have no text). With
``sheaf="diag"`` there are no cross-modal blocks. Masking, not zero-filling: the columns of a node's
unobserved blocks are zeroed, so an unobserved block neither sends anything nor is compared with anything,
and for diagonal maps an edge coordinate is dropped unless both endpoints observe it.

Diffusion is linear, as in LightGCN, with the normalised sheaf Laplacian
:math:`\Delta_\mathcal{F} = (D + I)^{-1/2} L_\mathcal{F} (D + I)^{-1/2}`:

.. math::
    X_{t+1} = X_t - \alpha\, \Delta_\mathcal{F} X_t, \qquad
    z_v = \sum_{m:\ \mu_{v,m} = 1} \frac{1}{T+1} \sum_{t=0}^{T} X_{t}[v, m],

and a user-item score is :math:`\langle z_u, z_i \rangle`, trained with BPR. With ``modalities=("id",)`` the
stalk is one block and the maps are scalars: the id-only sheaf recommender (Sheaf4Rec with :math:`d = 1`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmsheaf.data.interactions import MODALITIES, InteractionData
from mmsheaf.recsys.registry import Recommender, register_recommender
from mmsheaf.sheaf import MAP_LEARNERS, SheafIndex, build_index, sheaf_laplacian, validate_sheaf

__all__ = ["MultimodalSheafRec", "IdSheafRec", "stalks"]


def stalks(blocks: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    r"""Stack per-modality blocks into masked stalks.

    Args:
        blocks: :math:`M` tensors of shape :math:`(N, k)`.
        masks: :math:`M` bool tensors of shape :math:`(N,)`, ``True`` where observed.

    Returns:
        ``(x, mu)``: stalks :math:`(N, M, k)` with unobserved blocks set to zero and the float mask
        :math:`(N, M)`.
    """
    mu = torch.stack([m.to(blocks[0].dtype) for m in masks], dim=1)
    x = torch.stack(list(blocks), dim=1) * mu.unsqueeze(-1)
    return x, mu


@register_recommender("mm-sheaf", display="MM-Sheaf")
class MultimodalSheafRec(Recommender):
    r"""Multimodal sheaf diffusion recommender (this project; see the module docstring for the model).

    Args:
        data: The interactions (sizes, feature widths and the training graph are read from it).
        dim: Block width :math:`k` (the embedding size of scores).
        layers: Diffusion steps :math:`T`.
        sheaf: ``"diag"`` (no cross-modal blocks), ``"orth"`` (orthogonal :math:`M \times M` maps) or
            ``"gen"`` (general maps).
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
        sheaf: str = "gen",
        modalities: Sequence[str] = MODALITIES,
        step: float = 1.0,
        map_learner: str = "linear",
        map_hidden: int = 32,
        identity_offset: bool = True,
        modality_dropout: float = 0.0,
        init_std: float = 0.1,
        zero_init_maps: bool = False,
        id_dropout: float = 0.0,
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
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.layers, self.sheaf, self.modalities = dim, layers, sheaf, modalities
        self.step, self.identity_offset, self.modality_dropout = step, identity_offset, modality_dropout
        self.init_std, self.zero_init_maps, self.id_dropout = init_std, zero_init_maps, id_dropout
        self.id_embedding = nn.Embedding(data.num_nodes, dim) if "id" in modalities else None
        self.encoders = nn.ModuleDict()
        for side, feats in (("user", data.user_features), ("item", data.item_features)):
            for m in modalities:
                if m != "id" and m in feats:
                    self.encoders[f"{side}_{m}"] = nn.Linear(feats[m].size(1), dim)
        M = len(modalities)
        kwargs = {"hidden_channels": map_hidden} if map_learner == "mlp" else {}
        self.map_learner = MAP_LEARNERS[map_learner](M * dim + M, M, sheaf=sheaf, act="tanh", **kwargs)
        self._index: tuple[Tensor, int, SheafIndex] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=self.init_std)
        for enc in self.encoders.values():
            enc.reset_parameters()
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
            return ref.new_zeros(n, self.dim), torch.zeros(n, dtype=torch.bool, device=ref.device)
        feats = data.user_features if side == "user" else data.item_features
        mask = data.has(side, m)
        if self.training and self.modality_dropout > 0 and side == "item":
            mask = mask & (torch.rand(n, device=mask.device) >= self.modality_dropout)
        return self.encoders[key](feats[m]), mask

    def initial_stalks(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        """Layer-0 stalks :math:`(U + I, M, k)` (users first) and their float mask :math:`(U + I, M)`."""
        blocks, masks = [], []
        for m in self.modalities:
            (xu, mu), (xi, mi) = self._block(data, "user", m), self._block(data, "item", m)
            blocks.append(torch.cat([xu, xi]))
            masks.append(torch.cat([mu, mi]))
        return stalks(blocks, masks)

    def restriction_maps(self, x: Tensor, mu: Tensor, index: SheafIndex) -> Tensor:
        r"""Masked restriction maps of every directed edge: :math:`(2E, M)` (diag) or :math:`(2E, M, M)`."""
        maps = self.map_learner(torch.cat([x.flatten(1), mu], dim=1), index)
        src, dst = index.src, index.dst
        if self.sheaf == "diag":
            if self.identity_offset:
                maps = 1.0 + maps
            return maps * mu[src] * mu[dst]
        maps = maps * mu[src].unsqueeze(1)  # zero the columns of the source's unobserved blocks
        if self.identity_offset and self.sheaf == "gen":  # transport modality m only where both ends observe it
            maps = maps + torch.diag_embed(mu[src] * mu[dst])
        return maps

    def diffuse(self, data: InteractionData) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Run the diffusion: returns the layer-0 stalks, the mask and the list of :math:`T+1` states."""
        index = self.graph_index(data)
        x, mu = self.initial_stalks(data)
        states = [x]
        if self.layers and index.num_edges:
            maps = self.restriction_maps(x, mu, index)
            # Masked orthogonal maps are no longer orthogonal: build their Laplacian as general maps.
            kind = "gen" if self.sheaf == "orth" and not bool((mu > 0).all()) else self.sheaf
            if self.sheaf == "diag":
                # A coordinate that no edge carries (both ends must observe it: text on a user-item graph,
                # where users have no text) has a zero Laplacian row, so diffusion leaves it as it is. Diffuse
                # only the carried ones: the same states, and a CSR product with fewer non-zeros.
                carried = (maps != 0).any(0).nonzero().flatten()
                if carried.numel() < maps.size(1):
                    lap = sheaf_laplacian(index, maps[:, carried], sheaf="diag", normalisation="sym")
                    h = x[:, carried]
                    for _ in range(self.layers):
                        h = h - self.step * lap.apply(h)
                        states.append(x.index_copy(1, carried, h))
                    return x, mu, states
            lap = sheaf_laplacian(index, maps, sheaf=kind, normalisation="sym")
            h = x
            for _ in range(self.layers):
                h = h - self.step * lap.apply(h)
                states.append(h)
        return x, mu, states

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        _, mu, states = self.diffuse(data)
        z = torch.stack(states).mean(0)  # (N, M, k)
        z = (z * mu.unsqueeze(-1)).sum(1)  # readout over the observed blocks
        return z[: data.num_users], z[data.num_users :]

    def extra_repr(self) -> str:
        return (f"modalities={self.modalities}, sheaf={self.sheaf!r}, dim={self.dim}, layers={self.layers}, "
                f"step={self.step}")  # fmt: skip


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
