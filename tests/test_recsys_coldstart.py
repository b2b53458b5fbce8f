"""Tests of the item cold-start baselines (mmsheaf.recsys.coldstart): content-only, DropoutNet and CLCRec."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys import (
    CLCRec,
    ContentRec,
    DropoutNet,
    Recommender,
    RecTrainConfig,
    build_recommender,
    fit_recommender,
    planted_interactions,
    resolve_recommender,
)
from mmsheaf.recsys import train as rec_train
from mmsheaf.runs.keys import set_seed

MODELS = ["content", "dropoutnet", "clcrec"]
SMALL = {"content": {"dim": 8, "hidden": 16},
         "dropoutnet": {"dim": 8, "hidden": 16, "pretrain_dim": 6, "pretrain_epochs": 2},
         "clcrec": {"dim": 8, "hidden": 16, "num_neg": 5}}  # fmt: skip
U, I = 13, 17
COLD = torch.tensor([2, 5])  # items made cold in the `cold` fixture
CFG = RecTrainConfig(epochs=2, batch_size=16, lr=1e-2, ks=(5, 10), monitor="recall@10", seed=0)


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return planted_interactions(num_users=U, num_items=I, num_groups=3, interactions_per_user=6, seed=1)


@pytest.fixture(scope="module")
def partial(data) -> InteractionData:
    """Item text missing for 0, 3, 4, tabular for 1, 3; item 9's id masked (a cold item with interactions)."""
    out = data.drop_modality("item", "text", torch.tensor([0, 3, 4]))
    out = out.drop_modality("item", "tabular", torch.tensor([1, 3]))
    return out.drop_modality("item", "id", torch.tensor([9]))


@pytest.fixture(scope="module")
def cold(data) -> InteractionData:
    """``COLD`` items cold: no training interaction and their id masked."""
    keep = ~torch.isin(data.train[1], COLD)
    return data.replace(train=data.train[:, keep].clone()).drop_modality("item", "id", COLD)


def build(name: str, data: InteractionData, seed: int = 0, **extra) -> Recommender:
    set_seed(seed)
    return build_recommender(name, data, **{**SMALL[name], **extra})


def fill_preferences(model: Recommender, seed: int = 0) -> None:
    """Random preference buffers for DropoutNet (what :meth:`prepare` would fill), nothing for the others."""
    if isinstance(model, DropoutNet):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            model.user_pref.copy_(torch.randn(model.user_pref.shape, generator=g))
            model.item_pref.copy_(torch.randn(model.item_pref.shape, generator=g))


def batch(data: InteractionData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return data.train[0], data.train[1], torch.randint(data.num_items, (data.train.size(1),), generator=g)


def seeded_loss(model: Recommender, data: InteractionData, seed: int = 1,
                reg_weight: float = 0.0) -> torch.Tensor:  # fmt: skip
    set_seed(seed)  # the same dropout / negatives / hybrid draws every time
    return model.training_loss(data, *batch(data), reg_weight=reg_weight)


# ----------------------------------------------------------------------------------------------- all models
def test_registered_with_the_briefed_defaults() -> None:
    specs = {name: resolve_recommender(name.upper()) for name in MODELS}
    assert {name: (spec.cls, spec.display) for name, spec in specs.items()} == {
        "content": (ContentRec, "Content only"), "dropoutnet": (DropoutNet, "DropoutNet"),
        "clcrec": (CLCRec, "CLCRec")}  # fmt: skip
    assert resolve_recommender("content").defaults() == {"dim": 64, "hidden": 256, "modalities": None,
                                                         "init_std": 0.1, "dropout": 0.0}  # fmt: skip
    assert resolve_recommender("dropoutnet").defaults() == {"dim": 64, "hidden": 256, "dropout": 0.5,
                                                            "pretrain_epochs": 30, "pretrain_dim": 64,
                                                            "modalities": None}  # fmt: skip
    assert resolve_recommender("clcrec").defaults() == {"dim": 64, "hidden": 256, "temperature": 0.1,
                                                        "lam": 0.5, "sample_ratio": 0.5, "num_neg": 64,
                                                        "modalities": None, "init_std": 0.1}  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
def test_output_shapes(name: str, data) -> None:
    model = build(name, data)
    user_emb, item_emb = model(data)
    assert user_emb.shape == (U, 8) and item_emb.shape == (I, 8)
    assert build(name, data, modalities=("text",)).modalities == ("text",)
    with pytest.raises(ValueError, match="build the model from this data"):
        model(planted_interactions(num_users=U + 1, num_items=I, num_groups=3, interactions_per_user=6))


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient_from_the_training_loss(name: str, partial) -> None:
    model = build(name, partial)
    fill_preferences(model)
    model.train()
    seeded_loss(model, partial, reg_weight=1e-2).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    if name == "dropoutnet":  # the pretrained preferences are frozen buffers
        assert {"user_pref", "item_pref"} <= dict(model.named_buffers()).keys()
        assert not any("pref" in pname for pname, _ in model.named_parameters())


@pytest.mark.parametrize("name", MODELS)
def test_the_loss_decreases_under_adam(name: str, data) -> None:
    model = build(name, data)
    fill_preferences(model)
    model.train()
    before = float(seeded_loss(model, data).detach())
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(30):
        optimizer.zero_grad()
        seeded_loss(model, data, seed=100 + step).backward()
        optimizer.step()
    assert float(seeded_loss(model, data).detach()) < 0.9 * before


@pytest.mark.parametrize("name", MODELS)
def test_a_seeded_fit_is_deterministic(name: str, cold) -> None:
    results, states = [], []
    for _ in range(2):
        model = build(name, cold)
        results.append(fit_recommender(model, cold, CFG))
        states.append(model.state_dict())
    assert results[0].test == results[1].test or all(
        (math.isnan(a) and math.isnan(b)) or a == b
        for a, b in zip(results[0].test.values(), results[1].test.values(), strict=True)
    )
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("name", MODELS)
def test_a_cold_item_never_reads_its_id(name: str, cold) -> None:
    model = build(name, cold)
    fill_preferences(model)
    model.eval()
    _, items = (x.detach().clone() for x in model(cold))
    loss = float(seeded_loss(model, cold).detach())
    if name == "content":  # no per-item table at all: only the content scores an item
        assert not any(t.dim() and t.size(0) == I for t in model.state_dict().values())
        feats = {k: v.clone() for k, v in cold.item_features.items()}
        feats["text"][0] += 1.0  # ... and a warm item's content does matter
        assert not torch.allclose(model(cold.replace(item_features=feats))[1][0], items[0])
        return
    table = model.item_pref if name == "dropoutnet" else model.item_embedding.weight
    with torch.no_grad():
        table[COLD] += 5.0  # perturb the cold items' id rows
    assert torch.equal(model(cold)[1], items)
    assert float(seeded_loss(model, cold).detach()) == pytest.approx(loss, abs=0, rel=1e-6)
    if name == "clcrec":
        model.zero_grad()
        seeded_loss(model, cold).backward()
        assert torch.all(model.item_embedding.weight.grad[COLD] == 0)
    with torch.no_grad():
        table[0] += 5.0  # a warm item's row does matter (the test can fail)
    assert not torch.allclose(model(cold)[1][0], items[0])


@pytest.mark.parametrize("name", MODELS)
def test_missing_content_uses_the_learned_vector_and_never_reads_the_row(name: str, partial) -> None:
    model = build(name, partial)
    fill_preferences(model)
    missing = ~partial.has("item", "text")
    text_width = partial.item_features["text"].size(1)
    before = model.item_content(partial)
    with torch.no_grad():
        model.content.features["text"].missing.fill_(0.5)
    content = model.item_content(partial)
    assert torch.all(content[missing, :text_width] == 0.5)
    assert torch.equal(content[~missing], before[~missing])
    feats = {k: v.clone() for k, v in partial.item_features.items()}
    feats["text"][missing] = float("nan")
    nan_rows = partial.replace(item_features=feats)
    model.eval()
    assert all(torch.equal(a, b) for a, b in zip(model(partial), model(nan_rows), strict=True))
    model.train()
    loss = seeded_loss(model, nan_rows)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.content.features["text"].missing.grad.abs().sum() > 0


def test_bad_hyperparameters_are_rejected(data) -> None:
    bad = [("content", {"dropout": 1.0}, "dropout must lie in"), ("content", {"dropout": -0.1}, "dropout"),
           ("content", {"hidden": 0}, "hidden must be"), ("content", {"init_std": 0.0}, "init_std"),
           ("dropoutnet", {"dropout": 1.0}, "dropout must lie in"),
           ("dropoutnet", {"pretrain_epochs": 0}, "pretrain"),
           ("dropoutnet", {"pretrain_dim": 2.5}, "pretrain_dim"), ("dropoutnet", {"dim": 0}, "dim must be"),
           ("clcrec", {"num_neg": 0}, "num_neg must be"), ("clcrec", {"temperature": 0.0}, "temperature"),
           ("clcrec", {"temperature": float("nan")}, "temperature"), ("clcrec", {"lam": 1.5}, "lam must lie"),
           ("clcrec", {"sample_ratio": -0.1}, "sample_ratio"),
           ("clcrec", {"modalities": ("audio",)}, "modalities"),
           ("clcrec", {"margin": 1.0}, "Unknown hyperparameter")]  # fmt: skip
    for name, hparams, match in bad:
        with pytest.raises(ValueError, match=match):
            build_recommender(name, data, **hparams)
    for name in MODELS:
        with pytest.raises(ValueError, match="needs item content"):
            build_recommender(name, data.replace(item_features={}))


# ----------------------------------------------------------------------------------------------- DropoutNet
def test_dropoutnet_prepare_pretrains_mf_on_the_training_split_only(cold, monkeypatch) -> None:
    calls = []
    original = rec_train.fit_recommender

    def spy(model, data, cfg, **kwargs):
        calls.append((type(model).__name__, data, cfg))
        return original(model, data, cfg, **kwargs)

    monkeypatch.setattr(rec_train, "fit_recommender", spy)
    model = build("dropoutnet", cold)
    assert not model.user_pref.any() and not model.item_pref.any()
    model.prepare(cold, CFG)
    [(kind, pre_data, pre_cfg)] = calls
    assert kind == "MF" and pre_data.val.shape == (2, 0) and pre_data.test.shape == (2, 0)
    assert torch.equal(pre_data.train, cold.train)
    assert pre_cfg == dataclasses.replace(CFG, epochs=2, eval_every=2)  # cfg's lr, batch size, L2, seed
    warm = cold.has("item", "id")
    assert model.user_pref.abs().sum(1).gt(0).all() and model.item_pref[warm].abs().sum(1).gt(0).all()
    assert torch.all(model.item_pref[~warm] == 0)
    assert not model.user_pref.requires_grad and not model.item_pref.requires_grad


def test_dropoutnet_loss_is_the_squared_error_to_the_pretrained_scores(cold) -> None:
    model = build("dropoutnet", cold, dropout=0.0)
    fill_preferences(model, seed=3)
    users, pos, neg = torch.tensor([0, 4, 7]), torch.tensor([1, 3, 8]), torch.tensor([6, COLD[0], 10])
    reg = 0.3
    loss = model.training_loss(cold, users, pos, neg, reg_weight=reg)
    # By hand: the (user, item) pairs with a warm item; U_u V_v^T against f_U(U_u) f_V(V_v, Phi_v)^T.
    uu, ii = torch.cat([users, users]), torch.cat([pos, neg])
    warm = cold.has("item", "id")[ii]
    U_, V_ = model.user_pref[uu], model.item_pref[ii]
    phi = torch.tanh(model.content_layer(model.item_content(cold)[ii]))
    w1, w2 = model.item_mlp[0], model.item_mlp[2]
    v_hat = w2(torch.tanh(w1(torch.cat([V_ * warm[:, None], phi], 1))))
    u_hat = model.user_mlp[2](torch.tanh(model.user_mlp[0](U_)))
    error = ((u_hat * v_hat).sum(1) - (U_ * V_).sum(1)) ** 2
    expected = error[warm].mean() + reg * (u_hat.pow(2).sum() + v_hat.pow(2).sum()) / (2 * 3)
    assert not warm.all() and torch.allclose(loss, expected, atol=1e-6)
    # Input dropout: training mode with p > 0 drops some items' V (global RNG); evaluation mode never does.
    model.dropout = 0.9
    model.eval()
    assert torch.allclose(model.training_loss(cold, users, pos, neg, reg_weight=reg), expected, atol=1e-6)
    model.train()
    set_seed(0)
    assert not torch.allclose(model.training_loss(cold, users, pos, neg, reg_weight=reg), expected)


# ----------------------------------------------------------------------------------------------- CLCRec
def info_nce(anchor: torch.Tensor, candidates: list[torch.Tensor], tau: float, cosine: bool) -> torch.Tensor:
    """-log(exp(s_0 / tau) / sum_k exp(s_k / tau)) with the positive first, by hand."""
    sim = (lambda a, b: torch.dot(a, b) / (a.norm() * b.norm())) if cosine else torch.dot
    scores = [torch.exp(sim(anchor, c) / tau) for c in candidates]
    return -torch.log(scores[0] / sum(scores))


def test_clcrec_terms_are_the_papers_info_nce(cold) -> None:
    model = build("clcrec", cold, temperature=0.5, num_neg=4)
    users, pos = torch.tensor([0, 3]), torch.tensor([1, COLD[1]])  # the second positive is a cold item
    negs = torch.tensor([4, 1, 9, 12])  # shared; 1 is row 0's positive, user 0 trained on 9 and user 3 on 12
    replace = torch.tensor([[False, True, False, False, True], [False, False, True, False, False]])
    ui, re, sq = model.contrastive_terms(cold, users, pos, negs, replace)
    emb, user = model.item_embedding.weight, model.user_embedding.weight
    reps = model.represent(cold)
    warm = cold.has("item", "id")
    trained = set(map(tuple, cold.train.t().tolist()))
    ui_terms, re_terms = [], []
    for b in range(2):
        u, p = int(users[b]), int(pos[b])
        kept = [k for k, j in enumerate(negs.tolist()) if j != p and (u, j) not in trained]  # U-I's negatives
        assert kept == ([0, 3] if b == 0 else [0, 1, 2])  # own positive and trained items left out
        z = lambda k, j: reps[j] if (replace[b, k] or not warm[j]) else emb[j]  # noqa: E731
        zs = [z(0, p)] + [z(k + 1, negs[k].item()) for k in kept]
        ui_terms.append(info_nce(user[u], zs, 0.5, cosine=False))
        if warm[p]:  # a cold positive is no R-E anchor; R-E drops only the positive itself
            re_terms.append(info_nce(emb[p], [reps[p]] + [reps[j] for j in negs.tolist() if j != p], 0.5, cosine=True))
        expected = torch.zeros(5)
        expected[0] = zs[0].pow(2).sum()
        for i, k in enumerate(kept):
            expected[k + 1] = zs[i + 1].pow(2).sum()
        assert torch.allclose(sq[b], expected)
    assert torch.allclose(ui, torch.stack(ui_terms).mean(), atol=1e-6)
    assert len(re_terms) == 1 and torch.allclose(re, re_terms[0], atol=1e-6)
    # The training loss: lam * R-E + (1 - lam) * U-I + the BPR-style L2 term, on the draws of the global RNG.
    model = build("clcrec", cold, lam=0.3, num_neg=4)
    users, pos, neg = cold.train[0][:6], cold.train[1][:6], torch.zeros(6, dtype=torch.long)
    set_seed(5)
    loss = model.training_loss(cold, users, pos, neg, reg_weight=0.2)
    set_seed(5)
    negs = model.sample_negatives(cold)
    replace = torch.rand(6, 5) < model.sample_ratio
    ui, re, sq = model.contrastive_terms(cold, users, pos, negs, replace)
    reg = user[users].pow(2).sum() + sq[:, 0].sum() + sq[:, 1:].sum() / 4
    assert torch.allclose(loss, 0.3 * re + 0.7 * ui + 0.2 * reg / 12, atol=1e-6)


def test_clcrec_negatives_are_warm_items(cold) -> None:
    model = build("clcrec", cold, num_neg=400)
    set_seed(0)
    negs = model.sample_negatives(cold)
    assert negs.shape == (400,) and cold.has("item", "id")[negs].all()
    assert set(negs.tolist()) == set(cold.has("item", "id").nonzero().flatten().tolist())  # all of them come up
    with pytest.raises(ValueError, match="no item has an observed id"):
        model.sample_negatives(cold.drop_modality("item", "id", torch.arange(I)))


@pytest.mark.parametrize("term", ["ui", "re"])
def test_clcrec_a_step_down_the_gradient_favours_the_positive(term: str, data) -> None:
    model = build("clcrec", data, lam=0.0 if term == "ui" else 1.0, sample_ratio=0.0, num_neg=3)
    users, pos, negs = torch.tensor([2]), torch.tensor([5]), torch.tensor([1, 9, 12])
    replace = torch.zeros(1, 4, dtype=torch.bool)

    def margins() -> torch.Tensor:
        with torch.no_grad():
            if term == "ui":  # the ranking scores <e_u, e_i> of model(data)
                user_emb, item_emb = model(data)
                scores = item_emb[torch.cat([pos, negs])] @ user_emb[users[0]]
            else:  # cos(e_i, r_j) of the positive's embedding with its own and the negatives' content
                reps = F.normalize(model.represent(data, torch.cat([pos, negs])), dim=1)
                scores = reps @ F.normalize(model.item_embedding.weight[pos[0]], dim=0)
        return scores[0] - scores[1:]

    before = margins()
    ui, re, _ = model.contrastive_terms(data, users, pos, negs, replace)
    model.zero_grad()
    (ui if term == "ui" else re).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    assert torch.all(margins() > before)


# ----------------------------------------------------------------------------------------------- end to end
def test_fit_on_a_cold_split_gives_finite_metrics() -> None:
    data = planted_interactions(num_users=30, num_items=40, num_groups=4, interactions_per_user=10, seed=2)
    cold_items = torch.arange(0, 40, 7)  # 6 cold items, spread over the groups
    edges = torch.cat([data.train, data.val, data.test], dim=1)
    is_cold = torch.isin(edges[1], cold_items)
    odd = edges[0] % 2 == 1
    split = data.replace(train=data.train[:, ~torch.isin(data.train[1], cold_items)].clone(),
                         val=edges[:, is_cold & ~odd].clone(), test=edges[:, is_cold & odd].clone(),
                         candidates=cold_items).drop_modality("item", "id", cold_items)  # fmt: skip
    assert not torch.isin(split.train[1], cold_items).any()
    for name in MODELS:
        model = build(name, split)
        result = fit_recommender(model, split, CFG)
        assert result.epochs_run == 2 and result.test["num_users"] > 0
        assert all(math.isfinite(v) for v in result.test.values()), (name, result.test)
        assert all(math.isfinite(v) for v in result.val.values()), (name, result.val)
