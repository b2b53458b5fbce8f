"""Tests of the recommenders (mmsheaf.recsys.models) and their registry (mmsheaf.recsys.registry)."""

from __future__ import annotations

import pytest
import torch
from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys import (
    RECOMMENDERS,
    LightGCN,
    Recommender,
    bpr_loss,
    build_recommender,
    modality_mask,
    planted_interactions,
    recommender_names,
    register_recommender,
    resolve_recommender,
)
from mmsheaf.recsys import models as rec_models
from mmsheaf.recsys import registry as rec_registry
from mmsheaf.recsys.registry import _REGISTRY
from mmsheaf.nsd.train import set_seed
from torch import nn

BASELINES = ["mf", "lightgcn", "vbpr", "late-fusion"]
SMALL = {"mf": {"dim": 8}, "lightgcn": {"dim": 8, "layers": 2}, "vbpr": {"dim": 8, "content_dim": 3},
         "late-fusion": {"dim": 8, "layers": 2}}  # fmt: skip
U, I = 13, 17  # U, I and U + I differ, so the equivariance test can tell per-node tables apart


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return planted_interactions(num_users=U, num_items=I, num_groups=3, interactions_per_user=6, seed=1)


@pytest.fixture(scope="module")
def partial(data) -> InteractionData:
    """Some modalities missing: item text and tabular, user tabular, and a few ids."""
    out = data.drop_modality("item", "text", torch.tensor([0, 3, 4]))
    out = out.drop_modality("item", "tabular", torch.tensor([1, 3]))
    out = out.drop_modality("user", "tabular", torch.tensor([2, 5]))
    out = out.drop_modality("user", "id", torch.tensor([7]))
    return out.drop_modality("item", "id", torch.tensor([9]))


def build(name: str, data: InteractionData, seed: int = 0, **extra) -> Recommender:
    set_seed(seed)
    return build_recommender(name, data, **{**SMALL[name], **extra})


def bpr_batch(data: InteractionData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return data.train[0], data.train[1], torch.randint(data.num_items, (data.train.size(1),), generator=g)


# ----------------------------------------------------------------------------------------------- registry
def test_registry_lists_the_baselines() -> None:
    assert set(BASELINES) <= set(recommender_names())
    assert list(RECOMMENDERS)[:4] == BASELINES
    assert resolve_recommender("LightGCN").display == "LightGCN"
    assert resolve_recommender("mf").cls is rec_models.MF
    assert resolve_recommender("lightgcn").defaults() == {"dim": 64, "layers": 3, "init_std": 0.1}
    assert resolve_recommender("vbpr").hparam_names() == ["content_dim", "dim", "init_std", "modalities"]


def test_unknown_name_or_hparam_lists_the_valid_ones(data) -> None:
    with pytest.raises(ValueError, match="choose among mf, lightgcn, vbpr, late-fusion"):
        build_recommender("ngcf", data)
    with pytest.raises(ValueError, match=r"\['hidden'\].*valid keys are dim, init_std, layers"):
        build_recommender("lightgcn", data, hidden=3)
    with pytest.raises(ValueError, match="layers must be"):
        build_recommender("lightgcn", data, layers=-1)
    with pytest.raises(ValueError, match="fusion must be one of"):
        build_recommender("late-fusion", data, fusion="mean")
    with pytest.raises(ValueError, match="content_dim must be < dim"):
        build_recommender("vbpr", data, dim=4, content_dim=4)
    with pytest.raises(ValueError, match="modalities"):
        build_recommender("vbpr", data, modalities=("audio",))
    with pytest.raises(ValueError, match="use 'mf'"):
        build_recommender("vbpr", data.replace(item_features={}))


def test_register_a_new_model(data) -> None:
    @register_recommender("tmp-rec", display="Tmp")
    class TmpRec(Recommender):
        def __init__(self, data: InteractionData, dim: int = 4) -> None:
            super().__init__()
            self.num_users, self.num_items = data.num_users, data.num_items
            self.emb = nn.Embedding(data.num_nodes, dim)

        def reset_parameters(self) -> None:
            self.emb.reset_parameters()

        def forward(self, data: InteractionData) -> tuple[torch.Tensor, torch.Tensor]:
            return self.emb.weight[: data.num_users], self.emb.weight[data.num_users :]

    try:
        assert RECOMMENDERS["tmp-rec"].display == "Tmp" and "tmp-rec" in recommender_names()
        model = build_recommender("TMP-REC", data, dim=3)
        assert isinstance(model, TmpRec) and model(data)[0].shape == (U, 3)
        register_recommender("tmp-rec")(TmpRec)  # the same class again (a module reload) is fine
        with pytest.raises(ValueError, match="already registered"):
            register_recommender("tmp-rec")(type("Other", (TmpRec,), {}))
        with pytest.raises(TypeError, match="must subclass"):
            register_recommender("bad")(nn.Linear)
        with pytest.raises(ValueError, match="`data` as its first argument"):
            register_recommender("bad")(
                type("NoData", (Recommender,), {"__init__": lambda self, dim=3: None})
            )
    finally:
        _REGISTRY.pop("tmp-rec", None)
    assert "bad" not in RECOMMENDERS and "tmp-rec" not in RECOMMENDERS


# ----------------------------------------------------------------------------------------------- all models
@pytest.mark.parametrize("name", BASELINES)
def test_output_shapes(name: str, data) -> None:
    model = build(name, data)
    user_emb, item_emb = model(data)
    assert user_emb.shape == (U, 8) and item_emb.shape == (I, 8)
    if name == "late-fusion":
        concat = build(name, data, fusion="concat")
        assert concat(data)[0].shape == (U, 8 * 3) and concat(data)[1].shape == (
            I,
            8 * 3,
        )  # id, text, tabular
    with pytest.raises(ValueError, match="build the model from this data"):
        model(planted_interactions(num_users=U + 1, num_items=I, num_groups=3, interactions_per_user=6))


@pytest.mark.parametrize("name", BASELINES)
def test_every_parameter_gets_a_gradient_from_bpr(name: str, partial) -> None:
    extra = {"fusion": "concat"} if name == "late-fusion" else {}
    for kwargs in ({}, extra):
        model = build(name, partial, **kwargs)
        loss = bpr_loss(*model(partial), *bpr_batch(partial), reg_weight=1e-2)
        loss.backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, pname


def permute(data: InteractionData, pu: torch.Tensor, pi: torch.Tensor) -> InteractionData:
    """Relabel users and items: new user ``j`` is old user ``pu[j]``, new item ``j`` is old item ``pi[j]``."""
    inv_u, inv_i = torch.argsort(pu), torch.argsort(pi)
    edges = lambda e: torch.stack([inv_u[e[0]], inv_i[e[1]]])
    return data.replace(
        train=edges(data.train), val=edges(data.val), test=edges(data.test),
        user_features={k: v[pu] for k, v in data.user_features.items()},
        item_features={k: v[pi] for k, v in data.item_features.items()},
        user_mask={k: v[pu] for k, v in data.user_mask.items()},
        item_mask={k: v[pi] for k, v in data.item_mask.items()},
        candidates=None if data.candidates is None else inv_i[data.candidates],
    )  # fmt: skip


def permute_node_tables(model: nn.Module, pu: torch.Tensor, pi: torch.Tensor, num_users: int) -> None:
    """Permute the rows of every per-node ``nn.Embedding`` (by user, by item, or by node with users first)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                w = module.weight
                if w.size(0) == pu.numel():
                    w.copy_(w[pu])
                elif w.size(0) == pi.numel():
                    w.copy_(w[pi])
                elif w.size(0) == pu.numel() + pi.numel():
                    w.copy_(torch.cat([w[:num_users][pu], w[num_users:][pi]]))


@pytest.mark.parametrize("name", BASELINES)
def test_equivariant_under_relabelling_users_and_items(name: str, partial) -> None:
    g = torch.Generator().manual_seed(3)
    pu, pi = torch.randperm(U, generator=g), torch.randperm(I, generator=g)
    model = build(name, partial)
    model.eval()
    user_emb, item_emb = (x.detach().clone() for x in model(partial))  # MF returns its tables themselves
    permute_node_tables(model, pu, pi, U)
    user_perm, item_perm = model(permute(partial, pu, pi))
    assert torch.allclose(user_perm, user_emb[pu], atol=1e-5)
    assert torch.allclose(item_perm, item_emb[pi], atol=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_seeded_initialisation_is_deterministic(name: str, data) -> None:
    a, b, c = build(name, data, seed=4), build(name, data, seed=4), build(name, data, seed=5)
    for x, y in zip(a(data), b(data), strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a(data)[0], c(data)[0])
    before = [p.detach().clone() for p in a.parameters()]
    for model in (a, b):
        set_seed(9)
        model.reset_parameters()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(before, a.parameters(), strict=True))


@pytest.mark.parametrize("name", ["vbpr", "late-fusion"])
def test_masked_out_features_are_never_read(name: str, partial) -> None:
    model = build(name, partial)
    user_emb, item_emb = model(partial)
    item_feats = {k: v.clone() for k, v in partial.item_features.items()}
    user_feats = {k: v.clone() for k, v in partial.user_features.items()}
    item_feats["text"][~partial.has("item", "text")] = 1e3
    item_feats["tabular"][~partial.has("item", "tabular")] = float("nan")
    user_feats["tabular"][~partial.has("user", "tabular")] = -7.0
    changed = partial.replace(item_features=item_feats, user_features=user_feats)
    user_2, item_2 = model(changed)
    assert torch.equal(user_emb, user_2) and torch.equal(item_emb, item_2)
    loss = bpr_loss(user_2, item_2, *bpr_batch(changed))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # ... while an observed row does matter, and so does the mask itself.
    item_feats["text"][partial.has("item", "text")] += 1.0
    assert not torch.equal(model(partial.replace(item_features=item_feats))[1], item_emb)
    assert not torch.equal(model(partial.drop_modality("item", "text", torch.tensor([1])))[1], item_emb)


def test_vbpr_missing_modality_uses_the_learned_vector_not_zeros(partial) -> None:
    model = build("vbpr", partial)
    f = model.item_content(partial)
    text_width = partial.item_features["text"].size(1)
    with torch.no_grad():
        model.features["text"].missing.fill_(0.5)
    g = model.item_content(partial)
    missing = ~partial.has("item", "text")
    assert torch.all(g[missing, :text_width] == 0.5) and torch.equal(g[~missing], f[~missing])
    user_emb, item_emb = model(partial)
    assert user_emb.shape == (U, 8) and item_emb.shape == (I, 8)  # [gamma_u || theta_u], [gamma_i || E f_i]
    warm = partial.has("item", "id").unsqueeze(1)  # item 9's id is masked: no latent factors
    assert torch.equal(item_emb[:, :5], torch.where(warm, model.item_embedding.weight, 0.0))
    assert torch.allclose(item_emb[:, 5:], model.content(g))


def test_ids_are_observed_unless_masked(data) -> None:
    no_id = data.replace(user_mask={k: v for k, v in data.user_mask.items() if k != "id"})
    assert modality_mask(no_id, "user", "id").all()
    assert not modality_mask(no_id, "user", "text").any()  # users have no text
    assert modality_mask(data, "item", "text").all()


# ----------------------------------------------------------------------------------------------- graph models
def test_lightgcn_matches_a_dense_reference(data) -> None:
    model = build("lightgcn", data, layers=3)
    a = torch.zeros(data.num_nodes, data.num_nodes)
    ei = data.edge_index("train")
    a[ei[0], ei[1]] = 1.0
    deg = a.sum(1)
    d = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    norm = d[:, None] * a * d[None, :]
    x = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    layers = [x]
    for _ in range(3):
        layers.append(norm @ layers[-1])
    expected = torch.stack(layers).mean(0)
    user_emb, item_emb = model(data)
    assert torch.allclose(torch.cat([user_emb, item_emb]), expected, atol=1e-6)
    zero = build("lightgcn", data, layers=0)
    assert torch.equal(zero(data)[0], zero.user_embedding.weight)
    mf = build("mf", data, dim=SMALL["lightgcn"]["dim"])  # same seed: LightGCN with 0 layers is MF exactly
    assert all(torch.equal(a, b) for a, b in zip(zero(data), mf(data)))


def test_propagation_matrix_is_built_once_per_graph(data, monkeypatch) -> None:
    calls = []
    original = rec_registry.gcn_adjacency
    monkeypatch.setattr(rec_registry, "gcn_adjacency", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = build("late-fusion", data)
    for _ in range(3):
        bpr_loss(*model(data), *bpr_batch(data)).backward()
    assert len(calls) == 1  # one graph, all towers, three forwards
    model(data.drop_modality("item", "text", torch.tensor([0])))  # same training graph
    assert len(calls) == 1
    other = data.replace(train=data.train[:, :-5].clone())
    out = model(other)
    assert len(calls) == 2 and out[0].shape == (U, 8)
    model(other)
    assert len(calls) == 2


def test_late_fusion_weights_are_a_softmax(data) -> None:
    model = build("late-fusion", data)
    assert model.modalities == ("id", "text", "tabular")
    w = model.fusion_weights()
    assert w.shape == (3,) and torch.allclose(w.sum(), torch.tensor(1.0))
    towers = model.towers(data)
    user_emb, _ = model(data)
    assert torch.allclose(user_emb, (w.view(-1, 1, 1) * towers).sum(0)[:U])
    ids_only = build("late-fusion", data, modalities=("id",))
    assert ids_only.modalities == ("id",) and not list(ids_only.projections)
    assert build("late-fusion", data, fusion="concat").fusion_weights() is None
    assert isinstance(build("lightgcn", data), LightGCN)


def test_symmetric_spmm_matches_lgconv_forward_and_backward(data) -> None:
    from mmsheaf.recsys import symmetric_spmm
    from torch_geometric.nn import LGConv

    adj = build("lightgcn", data).propagation_matrix(data, torch.float64)
    x = torch.randn(data.num_nodes, 5, dtype=torch.float64, requires_grad=True)
    ref = LGConv(normalize=False)(x, adj)
    out = symmetric_spmm(adj, x)
    assert torch.allclose(out, ref)
    w = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    (g_out,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.allclose(g_out, g_ref)
    assert torch.autograd.gradcheck(lambda t: symmetric_spmm(adj, t), (x,))


def test_vbpr_scores_a_cold_item_from_its_content_alone() -> None:
    data = planted_interactions(num_users=20, num_items=30, num_groups=3, seed=4)
    cold = torch.tensor([3, 8])
    split = data.replace(train=data.train[:, ~torch.isin(data.train[1], cold)]).drop_modality("item", "id", cold)
    set_seed(0)
    model = build_recommender("vbpr", split, dim=8)
    _, items = model(split)
    with torch.no_grad():
        model.item_embedding.weight[cold] += 5.0  # its latent factors are never read
        model.item_embedding.weight[0] += 5.0
    _, again = model(split)
    assert torch.equal(again[cold], items[cold]) and not torch.equal(again[0], items[0])
    assert (items[cold, : 8 - model.content_dim] == 0).all()
