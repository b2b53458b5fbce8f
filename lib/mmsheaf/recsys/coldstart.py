r"""Item cold-start baselines: recommenders that score an item from its content when its id is unknown.

- ``"content"``: :class:`ContentRec`, user id embeddings against an MLP of the item content (no item ids);
- ``"dropoutnet"``: :class:`DropoutNet` (Volkovs et al., NeurIPS 2017), content towers trained to reproduce a
  pretrained MF-BPR with the item preference input dropped;
- ``"clcrec"``: :class:`CLCRec` (Wei et al., ACM MM 2021), id embeddings and a content encoder trained
  with the U-I and R-E contrastive terms.

A *cold* item is one whose ``item_mask["id"]`` is ``False``: it has no training interaction and its id must
never be read. Every model here scores it from its content only, at training and at evaluation, whatever its
id-embedding (or preference) row holds; the item content is that of :class:`~mmsheaf.recsys.models.VBPR`
(every item feature modality concatenated, an unobserved modality replaced by a learned vector, never read as
zeros). Users are all warm in the item cold-start protocol: the user id mask is not used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys.models import _check_positive, _content_modalities, _MaskedFeatures
from mmsheaf.recsys.registry import Recommender, build_recommender, modality_mask, register_recommender

__all__ = ["CLCRec", "ContentRec", "DropoutNet"]


def _check_unit(name: str, key: str, value: float, closed: bool = False) -> None:
    """``ValueError`` unless ``0 <= value < 1`` (``<= 1`` when ``closed``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value
    ok = ok and (value <= 1.0 if closed else value < 1.0)
    if not ok:
        raise ValueError(f"{name}: {key} must lie in [0, 1{']' if closed else ')'}, got {value!r}.")


def _check_positive_float(name: str, **values: float) -> None:
    for key, value in values.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: {key} must be a finite number > 0, got {value!r}.")


class _ItemContent(nn.Module):
    r"""Item content
    :math:`\mathbf{f}_i = \Vert_m (\mu_{i,m}\, \mathbf{x}_{i,m} + (1 - \mu_{i,m})\, \mathbf{c}_m)`.

    Unobserved rows are zeroed before anything else (whatever they hold, even NaN, never reaches the output or
    the gradients); with ``normalize`` the observed rows are L2-normalised per modality (CLCRec).
    """

    def __init__(self, name: str, data: InteractionData, modalities: Sequence[str] | None,
                 normalize: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.modalities = _content_modalities(name, data, modalities, ("item",))
        if not self.modalities:
            raise ValueError(f"{name} needs item content features (data.item_features has none besides "
                             "ids): cold items are scored from their content; use 'mf' for id-only "
                             "data.")  # fmt: skip
        self.normalize = normalize
        widths = {m: data.item_features[m].size(1) for m in self.modalities}
        self.features = nn.ModuleDict({m: _MaskedFeatures(w) for m, w in widths.items()})
        self.width = sum(widths.values())

    def reset_parameters(self) -> None:
        for module in self.features.values():
            module.reset_parameters()

    def forward(self, data: InteractionData, items: Tensor | None = None) -> Tensor:
        parts = []
        for m in self.modalities:
            x, mask = data.item_features[m], modality_mask(data, "item", m)
            if items is not None:
                x, mask = x[items], mask[items]
            x = torch.where(mask.unsqueeze(1), x, 0.0)
            parts.append(self.features[m](F.normalize(x, dim=1) if self.normalize else x, mask))
        return torch.cat(parts, dim=1)


def _id_mask(data: InteractionData) -> Tensor:
    """``(I,)`` bool: ``True`` for the warm items (observed id)."""
    return modality_mask(data, "item", "id")


# ----------------------------------------------------------------------------------------------- content
@register_recommender("content", display="Content only")
class ContentRec(Recommender):
    r"""Content-only recommender: user id embeddings against a 2-layer MLP of the item content, trained with
    BPR.

    .. math::
        \hat{y}_{ui} = \langle \mathbf{p}_u,\ \mathbf{W}_2\, \operatorname{ReLU}(\mathbf{W}_1 \mathbf{f}_i
        + \mathbf{b}_1) + \mathbf{b}_2 \rangle

    with :math:`\mathbf{f}_i` the masked item content (see the module docstring). No item id is used at all,
    so warm and cold items are scored alike.

    Args:
        data: The interactions (number of users, item features).
        dim: Embedding size :math:`D`.
        hidden: Hidden width of the item MLP.
        modalities: Item content modalities; ``None`` = every item feature modality of ``data``.
        init_std: Standard deviation of the normal initialisation of the user embeddings.
        dropout: Dropout on the MLP's hidden layer (training only), in :math:`[0, 1)`.

    Shapes:
        - **output:** :math:`(U, D)`, :math:`(I, D)`
    """

    def __init__(self, data: InteractionData, dim: int = 64, hidden: int = 256,
                 modalities: Sequence[str] | None = None, init_std: float = 0.1,
                 dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        _check_positive("content", dim=dim, hidden=hidden)
        _check_positive_float("content", init_std=init_std)
        _check_unit("content", "dropout", dropout)
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.hidden, self.init_std, self.dropout = dim, hidden, init_std, dropout
        self.content = _ItemContent("content", data, modalities)
        self.modalities = self.content.modalities
        self.user_embedding = nn.Embedding(data.num_users, dim)
        self.mlp = nn.Sequential(nn.Linear(self.content.width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        self.content.reset_parameters()
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def item_content(self, data: InteractionData, items: Tensor | None = None) -> Tensor:
        r""":math:`\mathbf{f}_i` of ``items`` (all items by default), :math:`(n, \sum_m F_m)`."""
        return self.content(data, items)

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        self.check_data(data)
        return self.user_embedding.weight, self.mlp(self.content(data))

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, dim={self.dim}, hidden={self.hidden}"


# ----------------------------------------------------------------------------------------------- DropoutNet
@register_recommender("dropoutnet", display="DropoutNet")
class DropoutNet(Recommender):
    r"""DropoutNet from `"DropoutNet: Addressing Cold Start in Recommender Systems"
    <https://papers.nips.cc/paper/2017/hash/dbd22ba3bd0df8f385bdac3e9f8be207-Abstract.html>`_ (Volkovs, Yu &
    Poutanen, NeurIPS 2017), for item cold start.

    A pretrained latent model gives preference vectors :math:`\mathbf{U}_u, \mathbf{V}_v` (frozen buffers);
    two towers map them, with the item content :math:`\Phi_v`, to
    :math:`\hat{\mathbf{U}}_u = f_U(\mathbf{U}_u)` and :math:`\hat{\mathbf{V}}_v = f_V(\mathbf{V}_v, \Phi_v)`,
    trained to reproduce the pretrained relevance scores (the paper's objective, its Eq. 2) with *input
    dropout*: the preference input of an item is set to zero with probability :math:`p`, so the content has to
    stand in for it:

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{B}|}\sum_{(u, v) \in \mathcal{B}}
        \big(\mathbf{U}_u \mathbf{V}_v^\top
        - f_U(\mathbf{U}_u)\, f_V(\delta_v \mathbf{V}_v, \Phi_v)^\top\big)^2
        + \lambda\,\frac{\sum_{(u, v)} \lVert\hat{\mathbf{U}}_u\rVert^2
        + \lVert\hat{\mathbf{V}}_v\rVert^2}{2B},
        \qquad \delta_v \sim \operatorname{Bernoulli}(1 - p),

    over the batch's pairs :math:`\mathcal{B}` = (user, positive) and (user, negative) whose item is warm
    (:math:`B` users), plus the L2 term of BPR on the output embeddings of the :math:`2B` pairs
    (:math:`\lambda` = the training config's ``reg_weight``).
    Towers (the paper's Figure 1 with tanh layers): the content passes through its own dense layer, is
    concatenated with the (dropped) :math:`\mathbf{V}_v` and passes through a tanh MLP,
    :math:`f_V = \mathbf{W}_3 \tanh(\mathbf{W}_2 [\delta_v\mathbf{V}_v \,\Vert\,
    \tanh(\mathbf{W}_1 \mathbf{f}_v + \mathbf{b}_1)] + \mathbf{b}_2) + \mathbf{b}_3`; :math:`f_U` is the
    same MLP on :math:`\mathbf{U}_u` alone. At evaluation there is no dropout and a cold item gets
    :math:`\mathbf{V}_v = \mathbf{0}` (its row is zeroed by :meth:`prepare` and masked again in
    :meth:`forward`).

    Differences from the paper: the pretrained model is MF-BPR trained here on ``data.train``
    (:meth:`prepare`) instead of WMF; only items are dropped (the users of the item cold-start protocol are
    all warm and have no content, so there is no user dropout nor the "transform" input of the paper's
    Algorithm 1); no batch normalisation nor standardisation of the preference inputs; pairs whose item is
    cold (id mask ``False``) are left out of the loss (their target would read the cold item's preference
    row); Adam instead of SGD.

    Args:
        data: The interactions (sizes, item features).
        dim: Output embedding size :math:`D`.
        hidden: Width of the content layer and of the towers' hidden layers.
        dropout: Probability :math:`p` that an item's preference input is dropped in training, in
            :math:`[0, 1)` (the paper uses 0.5).
        pretrain_epochs: Epochs of MF-BPR pretraining in :meth:`prepare`.
        pretrain_dim: Rank of the pretrained MF-BPR (width of :math:`\mathbf{U}, \mathbf{V}`).
        modalities: Item content modalities; ``None`` = every item feature modality of ``data``.

    Shapes:
        - **output:** :math:`(U, D)`, :math:`(I, D)`
    """

    def __init__(self, data: InteractionData, dim: int = 64, hidden: int = 256, dropout: float = 0.5,
                 pretrain_epochs: int = 30, pretrain_dim: int = 64,
                 modalities: Sequence[str] | None = None) -> None:  # fmt: skip
        super().__init__()
        _check_positive("dropoutnet", dim=dim, hidden=hidden, pretrain_epochs=pretrain_epochs,
                        pretrain_dim=pretrain_dim)  # fmt: skip
        _check_unit("dropoutnet", "dropout", dropout)
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.hidden, self.dropout = dim, hidden, dropout
        self.pretrain_epochs, self.pretrain_dim = pretrain_epochs, pretrain_dim
        self.content = _ItemContent("dropoutnet", data, modalities)
        self.modalities = self.content.modalities
        self.register_buffer("user_pref", torch.zeros(data.num_users, pretrain_dim))  # U (frozen)
        self.register_buffer("item_pref", torch.zeros(data.num_items, pretrain_dim))  # V (frozen)
        self.content_layer = nn.Linear(self.content.width, hidden)
        self.item_mlp = nn.Sequential(nn.Linear(pretrain_dim + hidden, hidden), nn.Tanh(),
                                      nn.Linear(hidden, dim))  # fmt: skip
        self.user_mlp = nn.Sequential(nn.Linear(pretrain_dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the towers (the preference buffers are kept: :meth:`prepare` refills them)."""
        self.content.reset_parameters()
        for module in (self.content_layer, *self.item_mlp, *self.user_mlp):
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def prepare(self, data: InteractionData, cfg: Any) -> None:
        """Pretrain the preference model: MF-BPR of rank ``pretrain_dim`` fit by
        :func:`~mmsheaf.recsys.train.fit_recommender` on the training interactions alone (validation and test
        emptied: no selection on them) for ``pretrain_epochs`` epochs with ``cfg``'s lr, batch size, L2 weight
        and seed; its embeddings become :math:`\\mathbf{U}, \\mathbf{V}`, with :math:`\\mathbf{V}_v = 0` for
        every cold item."""
        from mmsheaf.recsys.train import fit_recommender  # local: train sits above the models (no cycle)

        self.check_data(data)
        empty = torch.empty(2, 0, dtype=torch.long, device=data.train.device)
        mf = build_recommender("mf", data, dim=self.pretrain_dim)
        pre_cfg = dataclasses.replace(cfg, epochs=self.pretrain_epochs, eval_every=self.pretrain_epochs)
        fit_recommender(mf, data.replace(val=empty, test=empty), pre_cfg, name="dropoutnet pretraining (mf)")
        with torch.no_grad():
            self.user_pref.copy_(mf.user_embedding.weight)
            warm = _id_mask(data).to(self.item_pref.device).unsqueeze(1)
            self.item_pref.copy_(torch.where(warm, mf.item_embedding.weight, 0.0))

    def item_content(self, data: InteractionData, items: Tensor | None = None) -> Tensor:
        r""":math:`\Phi_v` of ``items`` (all items by default), :math:`(n, \sum_m F_m)`."""
        return self.content(data, items)

    def _preference(self, data: InteractionData, items: Tensor | None = None) -> Tensor:
        r""":math:`\mathbf{V}` of ``items`` (all by default), zero for a cold item (its row is never read)."""
        pref = self.item_pref if items is None else self.item_pref[items]
        warm = _id_mask(data) if items is None else _id_mask(data)[items]
        return torch.where(warm.unsqueeze(1), pref, 0.0)

    def _content_code(self, data: InteractionData, items: Tensor | None = None) -> Tensor:
        """The item tower's content layer of ``items`` (all by default)."""
        return torch.tanh(self.content_layer(self.content(data, items)))

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        self.check_data(data)
        items = self.item_mlp(torch.cat([self._preference(data), self._content_code(data)], dim=1))
        return self.user_mlp(self.user_pref), items

    def training_loss(self, data: InteractionData, users: Tensor, pos: Tensor, neg: Tensor,
                      reg_weight: float = 0.0) -> Tensor:  # fmt: skip
        """The squared error of the class docstring on the pairs (user, positive) and (user, negative); each
        pair's item preference input is dropped with probability ``dropout`` in training mode (global RNG).

        Each tower runs once per distinct user or item of the batch (an item's input is one of two, its
        preference kept or dropped, so both are computed and each pair picks its own): the same loss as per
        pair, with a fraction of the work (measured: 4.5 s to 0.7 s per ML-100K epoch)."""
        self.check_data(data)
        users2, items = torch.cat([users, users]), torch.cat([pos, neg])
        warm_all = _id_mask(data)
        keep = warm_all[items]
        if self.training and self.dropout > 0:
            keep = keep & (torch.rand(items.shape, device=items.device) >= self.dropout)
        uniq_items, item_inv = torch.unique(items, return_inverse=True)
        uniq_users, user_inv = torch.unique(users2, return_inverse=True)
        content = self._content_code(data, uniq_items)
        pref_v = self._preference(data, uniq_items)  # a cold item's V is never read
        kept = self.item_mlp(torch.cat([pref_v, content], dim=1))
        dropped = self.item_mlp(torch.cat([torch.zeros_like(pref_v), content], dim=1))
        item_out = torch.where(keep.unsqueeze(1), kept[item_inv], dropped[item_inv])
        user_out = self.user_mlp(self.user_pref[uniq_users])[user_inv]
        warm = warm_all[items]
        target = (self.user_pref[users2] * pref_v[item_inv]).sum(-1)
        error = ((user_out * item_out).sum(-1) - target).pow(2)
        weight = warm.to(error.dtype)  # cold pairs are left out
        loss = (error * weight).sum() / weight.sum().clamp(min=1.0)
        if reg_weight:
            loss = loss + reg_weight * (user_out.pow(2).sum() + item_out.pow(2).sum()) / (2 * users.numel())
        return loss

    def extra_repr(self) -> str:
        return (f"modalities={self.modalities}, dim={self.dim}, hidden={self.hidden}, "
                f"dropout={self.dropout}, pretrain_dim={self.pretrain_dim}")  # fmt: skip


# ----------------------------------------------------------------------------------------------- CLCRec
@register_recommender("clcrec", display="CLCRec")
class CLCRec(Recommender):
    r"""CLCRec from `"Contrastive Learning for Cold-Start Recommendation" <https://arxiv.org/abs/2107.05315>`_
    (Wei et al., ACM MM 2021).

    Collaborative embeddings :math:`\mathbf{e}_u, \mathbf{e}_i` (id embeddings, the MF choice of the paper's
    CF encoder) and a content encoder :math:`\mathbf{r}_i = g(\mathbf{x}_i)`, a 2-layer MLP with leaky ReLU
    over the concatenated, L2-normalised item features (missing modality: a learned vector). The paper's
    objective (Sec. 3, "Contrastive Optimization") combines two InfoNCE terms over the contrastive pairs of
    its "Contrastive Pair Organization" (a positive and :math:`K` sampled negatives :math:`j_1..j_K`):

    .. math::
        \mathcal{L}_{UI} = -\mathbb{E}_{(u,i)}\log\frac{\exp(\mathbf{e}_u^\top \mathbf{z}_i / \tau)}
        {\exp(\mathbf{e}_u^\top \mathbf{z}_i / \tau)
        + \sum_{k=1}^{K} \exp(\mathbf{e}_u^\top \mathbf{z}_{j_k} / \tau)},
        \qquad
        \mathcal{L}_{RE} = -\mathbb{E}_{i}\log\frac{\exp(\cos(\mathbf{e}_i, \mathbf{r}_i) / \tau)}
        {\exp(\cos(\mathbf{e}_i, \mathbf{r}_i) / \tau)
        + \sum_{k=1}^{K} \exp(\cos(\mathbf{e}_i, \mathbf{r}_{j_k}) / \tau)},

    .. math::
        \mathcal{L} = \lambda\, \mathcal{L}_{RE} + (1 - \lambda)\, \mathcal{L}_{UI}
        + \eta\,\frac{\sum_{u} \lVert\mathbf{e}_u\rVert^2 + \lVert\mathbf{z}_i\rVert^2
        + \frac{1}{K}\sum_k \lVert\mathbf{z}_{j_k}\rVert^2}{2B}.

    U-I (user-item mutual information): the item side :math:`\mathbf{z}` is the collaborative embedding,
    replaced by the content representation :math:`\mathbf{r}` with probability :math:`\rho` =
    ``sample_ratio`` per (user, item) entry (the paper's hybrid contrastive training, so that users learn to
    score content); it is a plain dot product, the score used for ranking. R-E (representation-embedding
    mutual information): the anchor is the positive item's collaborative embedding, its positive its own
    content representation, its negatives the representations of the same :math:`K` sampled items, compared
    by cosine similarity. :math:`\lambda` = ``lam`` weights R-E; :math:`\eta` is the training config's
    ``reg_weight`` (the batch L2 term of BPR on the U-I embeddings). Negatives: :math:`K` = ``num_neg`` items drawn
    uniformly among the warm items (``torch.randint``, global RNG) and shared by the rows of a batch, each row
    leaving out, in U-I, the items its user has a training interaction with, and its own positive (the paper
    draws them per pair; sharing them keeps the uniform distribution and makes every score a product with
    :math:`K` items). Inference: a warm item is scored by
    :math:`\mathbf{e}_i`, a cold item (id mask ``False``) by :math:`\mathbf{r}_i`. A positive whose id is
    masked enters U-I with :math:`\mathbf{r}_i` and is no R-E anchor.

    Differences from the authors' code (the objective follows the paper): the hybrid replacement is a
    Bernoulli(:math:`\rho`) draw per entry, where the code replaces a with-replacement sample of
    :math:`\rho n` entries (about 39% of them for :math:`\rho = 0.5`); the L2 term is BPR's squared norm, not
    the code's mean norm; the id embeddings start from a normal of std ``init_std``, not Xavier.

    Args:
        data: The interactions (sizes, item features).
        dim: Embedding size :math:`D`.
        hidden: Hidden width of the content encoder (256 in the paper).
        temperature: :math:`\tau` > 0.
        lam: :math:`\lambda \in [0, 1]`, the weight of :math:`\mathcal{L}_{RE}` (:math:`1 - \lambda` weights
            :math:`\mathcal{L}_{UI}`).
        sample_ratio: Probability that an item entry of U-I uses its content representation, in
            :math:`[0, 1]`.
        num_neg: Negatives :math:`K \ge 1` per positive.
        modalities: Item content modalities; ``None`` = every item feature modality of ``data``.
        init_std: Standard deviation of the normal initialisation of the id embeddings.

    Shapes:
        - **output:** :math:`(U, D)`, :math:`(I, D)`
    """

    def __init__(self, data: InteractionData, dim: int = 64, hidden: int = 256, temperature: float = 0.1,
                 lam: float = 0.5, sample_ratio: float = 0.5, num_neg: int = 64,
                 modalities: Sequence[str] | None = None, init_std: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        _check_positive("clcrec", dim=dim, hidden=hidden, num_neg=num_neg)
        _check_positive_float("clcrec", temperature=temperature, init_std=init_std)
        _check_unit("clcrec", "lam", lam, closed=True)
        _check_unit("clcrec", "sample_ratio", sample_ratio, closed=True)
        self.num_users, self.num_items = data.num_users, data.num_items
        self.dim, self.hidden, self.temperature, self.lam = dim, hidden, float(temperature), float(lam)
        self.sample_ratio, self.num_neg, self.init_std = float(sample_ratio), num_neg, init_std
        self.content = _ItemContent("clcrec", data, modalities, normalize=True)
        self.modalities = self.content.modalities
        self.user_embedding = nn.Embedding(data.num_users, dim)
        self.item_embedding = nn.Embedding(data.num_items, dim)
        self.encoder = nn.Sequential(nn.Linear(self.content.width, hidden), nn.LeakyReLU(),
                                     nn.Linear(hidden, dim))  # fmt: skip
        self._train_keys: tuple[Tensor, int, Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_embedding.weight, std=self.init_std)
        nn.init.normal_(self.item_embedding.weight, std=self.init_std)
        self.content.reset_parameters()
        for layer in self.encoder:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def item_content(self, data: InteractionData, items: Tensor | None = None) -> Tensor:
        r"""The encoder's input of ``items`` (all by default): normalised, masked features, :math:`(n, F)`."""
        return self.content(data, items)

    def represent(self, data: InteractionData, items: Tensor | None = None) -> Tensor:
        r"""Content representations :math:`\mathbf{r}_i = g(\mathbf{x}_i)` of ``items`` (all by default)."""
        return self.encoder(self.content(data, items))

    def forward(self, data: InteractionData) -> tuple[Tensor, Tensor]:
        self.check_data(data)
        warm = _id_mask(data).unsqueeze(1)
        return self.user_embedding.weight, torch.where(warm, self.item_embedding.weight, self.represent(data))

    def _is_training_pair(self, data: InteractionData, users: Tensor, items: Tensor) -> Tensor:
        train = data.train
        cached = self._train_keys
        if cached is None or cached[0] is not train or cached[1] != train._version:
            keys = torch.unique(train[0] * self.num_items + train[1])  # sorted
            self._train_keys = cached = (train, train._version, keys)
        keys, query = cached[2], users * self.num_items + items
        if keys.numel() == 0:
            return torch.zeros_like(query, dtype=torch.bool)
        return keys[torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)] == query

    def sample_negatives(self, data: InteractionData) -> Tensor:
        """``num_neg`` uniform draws among the warm items, :math:`(K,)`, shared by the batch's rows (each row
        drops those it trained on: :meth:`contrastive_terms`)."""
        warm = _id_mask(data).nonzero().flatten()
        if warm.numel() == 0:
            raise ValueError("clcrec: no item has an observed id (item_mask['id'] is all False): there are "
                             "no negatives to contrast with; keep the training items' ids.")  # fmt: skip
        return warm[torch.randint(warm.numel(), (self.num_neg,), device=warm.device)]

    def contrastive_terms(self, data: InteractionData, users: Tensor, pos: Tensor, negs: Tensor,
                          replace: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        r""":math:`(\mathcal{L}_{UI}, \mathcal{L}_{RE})` of the class docstring for given negatives and hybrid
        replacements, and the squared norms :math:`\lVert\mathbf{z}\rVert^2` of the U-I item embeddings (zero
        where a negative is dropped).

        The :math:`K` negatives are shared by the batch's rows (a sampled softmax): a row drops, in U-I, the
        negatives its user has a training interaction with (they are positives) and, in both terms, its own
        positive item. Every score is then a product with :math:`K` items: per-row negatives needed
        ``(B, 1 + K, D)`` gathers (measured: 22 s per ML-100K epoch, 43 s per ML-1M epoch with products over
        the distinct items) where this takes a LightGCN epoch's order of time.

        Shapes:
            - **input:** ``users``, ``pos`` :math:`(B,)`; ``negs`` :math:`(K,)`; ``replace`` bool
              :math:`(B, 1 + K)` (``True``: the entry uses its content representation)
            - **output:** two scalars and :math:`(B, 1 + K)`
        """
        k = negs.numel()
        warm_all = _id_mask(data)
        unique, inverse = torch.unique(torch.cat([pos, negs]), return_inverse=True)
        warm_u = warm_all[unique]
        rep = self.represent(data, unique)[inverse]  # (B + K, D): the encoder runs once per distinct item
        warm = warm_u[inverse]
        emb = torch.where(warm_u.unsqueeze(1), self.item_embedding(unique), 0.0)[inverse]  # cold ids never read
        b = pos.numel()
        rep_pos, rep_neg, emb_pos, emb_neg = rep[:b], rep[b:], emb[:b], emb[b:]
        use_rep = replace | ~torch.cat([warm[:b].unsqueeze(1), warm[b:].expand(b, k)], 1)
        e_u = self.user_embedding(users)
        pos_logit = torch.where(use_rep[:, 0], (e_u * rep_pos).sum(1), (e_u * emb_pos).sum(1))
        neg_logit = torch.where(use_rep[:, 1:], e_u @ rep_neg.t(), e_u @ emb_neg.t())
        same = pos.unsqueeze(1) == negs.unsqueeze(0)  # (B, K): a row's own positive
        drop_ui = same | self._is_training_pair(data, users.unsqueeze(1).expand(-1, k), negs.expand(b, -1))
        logits = torch.cat([pos_logit.unsqueeze(1), neg_logit.masked_fill(drop_ui, float("-inf"))], 1)
        logits = logits / self.temperature
        ui = (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()
        anchor = F.normalize(emb_pos, dim=-1)  # e_i of the positive
        unit_pos, unit_neg = F.normalize(rep_pos, dim=-1), F.normalize(rep_neg, dim=-1)
        cos_neg = (anchor @ unit_neg.t()).masked_fill(same, float("-inf"))
        cos = torch.cat([(anchor * unit_pos).sum(1, keepdim=True), cos_neg], 1) / self.temperature
        per_anchor = torch.logsumexp(cos, dim=1) - cos[:, 0]
        is_anchor = warm[:b].to(per_anchor.dtype)  # a cold positive has no collaborative embedding
        re = (per_anchor * is_anchor).sum() / is_anchor.sum().clamp(min=1.0)
        sq_pos = torch.where(use_rep[:, 0], rep_pos.pow(2).sum(1), emb_pos.pow(2).sum(1))
        sq_neg = torch.where(use_rep[:, 1:], rep_neg.pow(2).sum(1), emb_neg.pow(2).sum(1)).masked_fill(drop_ui, 0.0)
        return ui, re, torch.cat([sq_pos.unsqueeze(1), sq_neg], 1)

    def training_loss(self, data: InteractionData, users: Tensor, pos: Tensor, neg: Tensor,
                      reg_weight: float = 0.0) -> Tensor:  # fmt: skip
        r""":math:`\lambda\mathcal{L}_{RE} + (1 - \lambda)\mathcal{L}_{UI}` + L2 (class docstring), with
        ``num_neg`` fresh negatives per positive (the batch's single negative ``neg`` is not used)."""
        self.check_data(data)
        negs = self.sample_negatives(data)
        replace = torch.rand(users.numel(), negs.numel() + 1, device=negs.device) < self.sample_ratio
        ui, re, sq = self.contrastive_terms(data, users, pos, negs, replace)
        loss = self.lam * re + (1.0 - self.lam) * ui
        if reg_weight:
            reg = self.user_embedding(users).pow(2).sum() + sq[:, 0].sum() + sq[:, 1:].sum() / self.num_neg
            loss = loss + reg_weight * reg / (2 * users.numel())
        return loss

    def extra_repr(self) -> str:
        return (f"modalities={self.modalities}, dim={self.dim}, hidden={self.hidden}, "
                f"tau={self.temperature}, lam={self.lam}, sample_ratio={self.sample_ratio}, "
                f"num_neg={self.num_neg}")  # fmt: skip
