r"""The baseline recommenders and LightGCN's propagation.

- ``"mf"``: :class:`MF`, matrix factorisation trained with BPR (Rendle et al., UAI 2009);
- ``"lightgcn"``: :class:`LightGCN` (He et al., SIGIR 2020);
- ``"vbpr"``: :class:`VBPR` (He & McAuley, AAAI 2016) on the items' content features;
- ``"late-fusion"``: :class:`LateFusionGCN`, one LightGCN tower per modality fused late.

Each is a :class:`~mmsheaf.recsys.registry.Recommender` registered by name
(:func:`~mmsheaf.recsys.registry.register_recommender`). :func:`lightgcn_propagate` (with
:func:`symmetric_spmm`, a sparse product with a fast backward) is the propagation every LightGCN-style model
shares. A node whose modality is unobserved gets a learned per-modality "missing" vector instead of its
feature row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import LGConv

from mmsheaf.data.interactions import MODALITIES, InteractionData
from mmsheaf.recsys.registry import Recommender, modality_mask, register_recommender

__all__ = [
    "FUSIONS",
    "MF",
    "VBPR",
    "LateFusionGCN",
    "LightGCN",
    "lightgcn_propagate",
    "symmetric_spmm",
]


class _SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a constant symmetric sparse ``adj``: the backward is ``adj @ grad`` (no transpose).

    Hand-written because torch's CSR backward is slow here: on MovieLens-100K (2,625 nodes, 160,048 non-zeros,
    width 64), three propagations forward + backward took 57 ms with ``adj @ x`` and 6.4 ms with this (one
    thread, this machine), and every BPR step of LightGCN-style models runs them.
    """

    @staticmethod
    def forward(ctx, x: Tensor, adj: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return ctx.adj @ grad, None


def symmetric_spmm(adj: Tensor, x: Tensor) -> Tensor:
    """``adj @ x`` for a constant symmetric sparse ``adj`` (e.g. :math:`D^{-1/2} A D^{-1/2}` of an undirected
    graph) with a fast backward; equal to ``LGConv(normalize=False)(x, adj)``."""
    return _SymmetricSpMM.apply(x, adj)


def lightgcn_propagate(x: Tensor, adj_t: Tensor, layers: int, conv: LGConv | None = None) -> Tensor:
    r"""LightGCN's layer combination :math:`\frac{1}{K+1}\sum_{k=0}^{K} \tilde{\mathbf{A}}^{k}\mathbf{X}`
    (Eq. 4 of He et al. 2020 with :math:`\alpha_k = 1/(K+1)`), with :math:`K` = ``layers`` propagations on the
    normalised, symmetric ``adj_t``: :func:`symmetric_spmm` (what PyG's
    :class:`~torch_geometric.nn.conv.LGConv` with ``normalize=False`` computes, with a faster backward), or
    ``conv`` when one is given.

    Shapes:
        - **input:** :math:`(N, D)`, sparse :math:`(N, N)`
        - **output:** :math:`(N, D)`
    """
    out = x
    for _ in range(layers):
        x = conv(x, adj_t) if conv is not None else symmetric_spmm(adj_t, x)
        out = out + x
    return out / (layers + 1)


def _check_positive(name: str, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: {key} must be an integer >= 1, got {value!r}.")


def _content_modalities(name: str, data: InteractionData, modalities: Sequence[str] | None,
                        sides: tuple[str, ...]) -> tuple[str, ...]:  # fmt: skip
    """The content (non-id) modalities to use: ``modalities`` (validated) or every one with features on one of
    ``sides``, in :data:`MODALITIES` order (others after, sorted)."""
    available = set()
    for side in sides:
        available |= set(data.user_features if side == "user" else data.item_features)
    available.discard("id")
    if modalities is None:
        return tuple(m for m in MODALITIES if m in available) + tuple(sorted(available - set(MODALITIES)))
    modalities = tuple(m for m in modalities if m != "id")
    missing = [m for m in modalities if m not in available]
    if missing or len(set(modalities)) != len(modalities):
        raise ValueError(f"{name}: modalities must be distinct names with {'/'.join(sides)} features in the data "
                         f"(available: {sorted(available)}), got {modalities}.")  # fmt: skip
    return modalities


# ----------------------------------------------------------------------------------------------- models
@register_recommender("mf", display="MF-BPR")
class MF(Recommender):
    r"""Matrix factorisation trained with BPR, from `"BPR: Bayesian Personalized Ranking from Implicit
    Feedback" <https://arxiv.org/abs/1205.2618>`_ (Rendle et al., UAI 2009).

    .. math::
        \hat{y}_{ui} = \langle \mathbf{p}_u, \mathbf{q}_i \rangle

    Args:
        data: The interactions (numbers of users and items).
        dim: Embedding size :math:`D`.
        init_std: Standard deviation of the normal initialisation.

    Shapes:
        - **output:** :math:`(U, D)`, :math:`(I, D)`
    """

    def __init__(self, data: InteractionData, dim: int = 64, init_std: float = 0.1) -> None:
        super().__init__()
        _check_positive("mf", dim=dim)
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.init_std = dim, init_std
        self.user_embedding = nn.Embedding(data.num_users, dim)
        self.item_embedding = nn.Embedding(data.num_items, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        nn.init.normal_(self.item_embedding.weight, std=self.init_std)

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        self.check_data(data)
        return self.user_embedding.weight, self.item_embedding.weight

    def extra_repr(self) -> str:
        return f"users={self.num_users}, items={self.num_items}, dim={self.dim}"


@register_recommender("lightgcn", display="LightGCN")
class LightGCN(MF):
    r"""LightGCN from `"LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ (He et al., SIGIR 2020); the propagation is PyG's
    :class:`~torch_geometric.nn.conv.LGConv` (:func:`symmetric_spmm`, with a faster backward).

    .. math::
        \mathbf{E}^{(k+1)} = \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}\mathbf{E}^{(k)}, \qquad
        \mathbf{E} = \frac{1}{K+1}\sum_{k=0}^{K}\mathbf{E}^{(k)}

    over the undirected user-item training graph (:math:`U + I` nodes), from id embeddings
    :math:`\mathbf{E}^{(0)}`.

    Args:
        data: The interactions (sizes and the training graph).
        dim: Embedding size :math:`D`.
        layers: Propagation steps :math:`K` (``0`` is MF).
        init_std: Standard deviation of the normal initialisation (0.1 as in the paper's code).

    Shapes:
        - **output:** :math:`(U, D)`, :math:`(I, D)`
    """

    def __init__(self, data: InteractionData, dim: int = 64, layers: int = 3, init_std: float = 0.1) -> None:
        if not isinstance(layers, int) or layers < 0:
            raise ValueError(f"lightgcn: layers must be an integer >= 0, got {layers!r}.")
        super().__init__(data, dim, init_std)  # the id embeddings of MF, initialised the same way
        self.layers = layers

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        self.check_data(data)
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        if self.layers:
            x = lightgcn_propagate(x, self.propagation_matrix(data, x.dtype), self.layers)
        return x[: self.num_users], x[self.num_users :]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layers={self.layers}"


class _MaskedFeatures(nn.Module):
    """Feature rows of one side and modality with the unobserved rows replaced by a learned vector."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.missing = nn.Parameter(torch.zeros(width))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.missing)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x.to(self.missing.dtype)
        return torch.where(mask.unsqueeze(1), x, self.missing.expand_as(x))


@register_recommender("vbpr", display="VBPR")
class VBPR(Recommender):
    r"""VBPR from `"VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback"
    <https://arxiv.org/abs/1510.01784>`_ (He & McAuley, AAAI 2016), on the items' content modalities
    (without the bias terms, as in MMRec).

    .. math::
        \hat{y}_{ui} = \langle [\boldsymbol{\gamma}_u \,\Vert\, \boldsymbol{\theta}_u],
        [\boldsymbol{\gamma}_i \,\Vert\, \mathbf{E}\mathbf{f}_i] \rangle, \qquad
        \mathbf{f}_i = \Vert_{m} \big(\mu_{i,m}\, \mathbf{x}_{i,m} + (1 - \mu_{i,m})\, \mathbf{c}_m\big)

    where :math:`\mathbf{x}_{i,m}` is item :math:`i`'s modality-:math:`m` feature row, :math:`\mu_{i,m}` its
    observation mask and :math:`\mathbf{c}_m` a learned "missing" vector (initialised at zero): a missing
    modality is not read as an observed row of zeros, and the features of unobserved rows never matter. A cold
    item (its id masked) has :math:`\boldsymbol{\gamma}_i = \mathbf{0}`: it is scored from its content alone.

    Args:
        data: The interactions (sizes and the item features).
        dim: Output embedding size :math:`D` (= :math:`\dim\boldsymbol{\gamma} + \dim\boldsymbol{\theta}`).
        content_dim: :math:`\dim\boldsymbol{\theta}_u` = rows of :math:`\mathbf{E}`; ``None`` = ``dim // 2``.
        modalities: Item content modalities to concatenate into :math:`\mathbf{f}_i`; ``None`` = all item
            feature modalities of ``data`` (ids are never content).
        init_std: Standard deviation of the normal initialisation of :math:`\boldsymbol{\gamma}`,
            :math:`\boldsymbol{\theta}`.

    Shapes:
        - **output:** :math:`(U, D)`, :math:`(I, D)`
    """

    def __init__(self, data: InteractionData, dim: int = 64, content_dim: int | None = None,
                 modalities: Sequence[str] | None = None, init_std: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        content_dim = dim // 2 if content_dim is None else content_dim
        _check_positive("vbpr", dim=dim, content_dim=content_dim)
        if content_dim >= dim:
            raise ValueError(f"vbpr: content_dim must be < dim (the rest are the latent factors), got "
                             f"content_dim={content_dim}, dim={dim}.")  # fmt: skip
        self.modalities = _content_modalities("vbpr", data, modalities, ("item",))
        if not self.modalities:
            raise ValueError("vbpr needs item content features (data.item_features has none besides ids): "
                             "use 'mf' for id-only data.")  # fmt: skip
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.content_dim, self.init_std = dim, content_dim, init_std
        self.user_embedding = nn.Embedding(data.num_users, dim)  # [gamma_u || theta_u]
        self.item_embedding = nn.Embedding(data.num_items, dim - content_dim)  # gamma_i
        self.features = nn.ModuleDict(
            {m: _MaskedFeatures(data.item_features[m].size(1)) for m in self.modalities}
        )
        width = sum(data.item_features[m].size(1) for m in self.modalities)
        self.content = nn.Linear(width, content_dim, bias=False)  # E
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        nn.init.normal_(self.item_embedding.weight, std=self.init_std)
        for module in self.features.values():
            module.reset_parameters()
        self.content.reset_parameters()

    def item_content(self, data: InteractionData) -> Tensor:
        r""":math:`\mathbf{f}_i` of every item, :math:`(I, \sum_m F_m)`, missing modalities filled in."""
        return torch.cat([self.features[m](data.item_features[m], modality_mask(data, "item", m))
                          for m in self.modalities], dim=1)  # fmt: skip

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        self.check_data(data)
        # A cold item (id masked) has no latent factors: gamma_i = 0, never its untrained random row.
        gamma = torch.where(modality_mask(data, "item", "id").unsqueeze(1), self.item_embedding.weight, 0.0)
        items = torch.cat([gamma, self.content(self.item_content(data))], dim=1)
        return self.user_embedding.weight, items

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, dim={self.dim}, content_dim={self.content_dim}"


FUSIONS: tuple[str, ...] = ("softmax", "concat")


@register_recommender("late-fusion", display="Late-fusion GCN")
class LateFusionGCN(Recommender):
    r"""Late-fusion multimodal GCN: one LightGCN tower per modality, fused after propagation (in the spirit of
    MMGCN, Wei et al., MM 2019, with LightGCN towers).

    Tower :math:`m` starts from :math:`\mathbf{H}^{(0)}_m`, whose row for node :math:`v` is its id embedding
    (``"id"``) or :math:`\mathbf{W}_{m,s}\mathbf{x}_{v,m} + \mathbf{b}_{m,s}` (content modality :math:`m`,
    node side :math:`s` = user or item, one projection per side since the widths differ) when :math:`v`
    observes :math:`m`, and a learned vector :math:`\mathbf{c}_{m,s}` when it does not (users have no text).
    Each tower is propagated as in :class:`LightGCN` on the training graph, and the towers are fused:

    .. math::
        \mathbf{z}_v = \sum_m \operatorname{softmax}(\mathbf{w})_m\, \mathbf{h}_{v,m}
        \quad (\texttt{fusion="softmax"}), \qquad
        \mathbf{z}_v = \Vert_m\, \mathbf{h}_{v,m} \quad (\texttt{fusion="concat"}).

    Args:
        data: The interactions (sizes, feature widths and the training graph).
        dim: Tower width :math:`D` (the output is :math:`D`, or :math:`MD` with ``"concat"``).
        layers: LightGCN propagation steps per tower.
        fusion: ``"softmax"`` (learned softmax-weighted sum) or ``"concat"``.
        modalities: Towers, e.g. ``("id", "text", "tabular")``; ``None`` = ids and every feature modality of
            ``data``.
        init_std: Standard deviation of the id embeddings and missing vectors at initialisation.

    Shapes:
        - **output:** :math:`(U, D')`, :math:`(I, D')` with :math:`D' = D` or :math:`MD`
    """

    def __init__(self, data: InteractionData, dim: int = 64, layers: int = 3, fusion: str = "softmax",
                 modalities: Sequence[str] | None = None, init_std: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        _check_positive("late-fusion", dim=dim)
        if not isinstance(layers, int) or layers < 0:
            raise ValueError(f"late-fusion: layers must be an integer >= 0, got {layers!r}.")
        if fusion not in FUSIONS:
            raise ValueError(f"late-fusion: fusion must be one of {FUSIONS}, got {fusion!r}.")
        use_id = modalities is None or "id" in modalities
        content = _content_modalities("late-fusion", data, modalities, ("user", "item"))
        self.modalities = (("id",) if use_id else ()) + content
        if not self.modalities:
            raise ValueError(
                "late-fusion: modalities is empty: give at least one of ids or a feature modality."
            )
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.layers, self.fusion, self.init_std = dim, layers, fusion, init_std
        if use_id:
            self.user_embedding = nn.Embedding(data.num_users, dim)
            self.item_embedding = nn.Embedding(data.num_items, dim)
        self.projections = nn.ModuleDict()
        self.missing = nn.ParameterDict()
        for side, feats in (("user", data.user_features), ("item", data.item_features)):
            for m in self.modalities:
                self.missing[f"{side}_{m}"] = nn.Parameter(torch.empty(dim))
                if m != "id" and m in feats:
                    self.projections[f"{side}_{m}"] = nn.Linear(feats[m].size(1), dim)
        self.fusion_logits = nn.Parameter(torch.zeros(len(self.modalities))) if fusion == "softmax" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if "id" in self.modalities:
            nn.init.normal_(self.user_embedding.weight, std=self.init_std)
            nn.init.normal_(self.item_embedding.weight, std=self.init_std)
        for proj in self.projections.values():
            proj.reset_parameters()
        for vec in self.missing.values():
            nn.init.normal_(vec, std=self.init_std)
        if self.fusion_logits is not None:
            nn.init.zeros_(self.fusion_logits)

    def _side(self, data: InteractionData, side: str, m: str) -> Tensor:
        """Layer-0 rows of tower ``m`` for the nodes of ``side``: observed features (or ids), else the missing
        vector."""
        n = data.num_users if side == "user" else data.num_items
        missing = self.missing[f"{side}_{m}"]
        if m == "id":
            x = (self.user_embedding if side == "user" else self.item_embedding).weight
            mask = modality_mask(data, side, m)
        elif f"{side}_{m}" in self.projections:
            feats = (data.user_features if side == "user" else data.item_features)[m].to(missing.dtype)
            mask = modality_mask(data, side, m)
            # Zero the unobserved rows first: whatever they hold (even NaN) must not reach the gradients.
            x = self.projections[f"{side}_{m}"](torch.where(mask.unsqueeze(1), feats, 0.0))
        else:  # this side has no such features at all (users have no text)
            return missing.expand(n, -1)
        return torch.where(mask.unsqueeze(1), x, missing.expand_as(x))

    def towers(self, data: InteractionData) -> Tensor:
        """The propagated towers, :math:`(M, U + I, D)` (users first)."""
        self.check_data(data)
        x0 = torch.stack([torch.cat([self._side(data, "user", m), self._side(data, "item", m)])
                          for m in self.modalities])  # fmt: skip
        if not self.layers:
            return x0
        adj_t = self.propagation_matrix(data, x0.dtype)
        # All towers in one propagation: (N, M * D) columns.
        M, N, D = x0.shape
        flat = x0.permute(1, 0, 2).reshape(N, M * D)
        flat = lightgcn_propagate(flat, adj_t, self.layers)
        return flat.reshape(N, M, D).permute(1, 0, 2)

    def fusion_weights(self) -> Tensor | None:
        """The softmax weights of the towers, :math:`(M,)` (``None`` with ``fusion="concat"``)."""
        return None if self.fusion_logits is None else torch.softmax(self.fusion_logits, 0)

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        h = self.towers(data)
        if self.fusion == "softmax":
            z = (self.fusion_weights().view(-1, 1, 1) * h).sum(0)
        else:
            z = h.permute(1, 0, 2).reshape(h.size(1), -1)
        return z[: self.num_users], z[self.num_users :]

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, dim={self.dim}, layers={self.layers}, fusion={self.fusion!r}"
