"""Tests of the sheaf recommenders (mmsheaf.recsys.sheaf): shapes, masking, gradients, equivariance, references."""

from __future__ import annotations

import pytest
import torch
from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys import (
    IdSheafRec,
    MultimodalSheafRec,
    RecTrainConfig,
    bpr_loss,
    build_recommender,
    fit_recommender,
    planted_interactions,
)
from mmsheaf.nsd.train import set_seed
from mmsheaf.sheaf import sheaf_laplacian
from test_recsys_models import bpr_batch, permute, permute_node_tables

U, I = 13, 17
SHEAVES = ["diag", "orth", "gen"]


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return planted_interactions(num_users=U, num_items=I, num_groups=3, interactions_per_user=6, seed=1)


@pytest.fixture(scope="module")
def partial(data) -> InteractionData:
    out = data.drop_modality("item", "text", torch.tensor([0, 3, 4]))
    out = out.drop_modality("item", "tabular", torch.tensor([1, 3]))
    out = out.drop_modality("user", "tabular", torch.tensor([2, 5]))
    return out.drop_modality("item", "id", torch.tensor([9]))


def build(data: InteractionData, seed: int = 0, **hp) -> MultimodalSheafRec:
    set_seed(seed)
    return build_recommender("mm-sheaf", data, **{"dim": 8, "layers": 2, **hp})


def perturb_maps(model: MultimodalSheafRec, scale: float = 0.5) -> None:
    """Give the map learner weights large enough that the learned maps differ visibly from the identity."""
    with torch.no_grad():
        for p in model.map_learner.parameters():
            p.normal_(0.0, scale)


# ---------------------------------------------------------------------------------------------- interface
def test_registered_and_validates(data) -> None:
    assert isinstance(build_recommender("sheaf-id", data, dim=4), IdSheafRec)
    with pytest.raises(ValueError, match="modalities must be distinct"):
        build(data, modalities=("id", "audio"))
    with pytest.raises(ValueError, match="use sheaf='diag'"):
        build(data, modalities=("id",), sheaf="orth")
    with pytest.raises(ValueError, match="drop it from modalities"):
        build(data.replace(item_features={}, user_features={}), modalities=("id", "text"))
    with pytest.raises(ValueError, match="map_learner"):
        build(data, map_learner="attention")


@pytest.mark.parametrize("sheaf", SHEAVES)
@pytest.mark.parametrize("modalities", [("id", "text", "tabular"), ("id", "text"), ("text", "tabular")])
def test_output_shapes(sheaf: str, modalities: tuple[str, ...], partial) -> None:
    model = build(partial, sheaf=sheaf, modalities=modalities)
    user_emb, item_emb = model(partial)
    assert user_emb.shape == (U, 8) and item_emb.shape == (I, 8)
    assert torch.isfinite(user_emb).all() and torch.isfinite(item_emb).all()


def test_id_only_model_has_scalar_maps(data) -> None:
    model = build_recommender("sheaf-id", data, dim=8, layers=2)
    x, mu = model.initial_stalks(data)
    maps = model.restriction_maps(x, mu, model.graph_index(data))
    assert x.shape == (U + I, 1, 8) and maps.shape == (model.graph_index(data).num_directed_edges, 1)


# ---------------------------------------------------------------------------------------------- references
def test_zero_learner_gives_per_modality_gcn_propagation_with_layer_mean(partial) -> None:
    """Learner weights at zero: the maps are diag(mu_u * mu_v), so block m diffuses with the normalised Laplacian
    of the subgraph of edges whose two endpoints observe m (users have no text: text blocks stay put)."""
    model = build(partial, sheaf="gen", layers=3)
    with torch.no_grad():
        for p in model.map_learner.parameters():
            p.zero_()
    x, mu = model.initial_stalks(partial)
    ei = partial.edge_index("train")
    states = [x.detach()]
    deltas = []
    for m in range(mu.size(1)):
        a = torch.zeros(partial.num_nodes, partial.num_nodes)
        a[ei[0], ei[1]] = mu[ei[0], m] * mu[ei[1], m]
        deg = a.sum(1)
        s = (deg + 1).pow(-0.5)
        deltas.append(s[:, None] * (torch.diag(deg) - a) * s[None, :])
    for _ in range(3):
        h = states[-1]
        states.append(h - torch.stack([deltas[m] @ h[:, m] for m in range(mu.size(1))], dim=1))
    z = (torch.stack(states).mean(0) * mu.unsqueeze(-1)).sum(1)
    user_emb, item_emb = model(partial)
    assert torch.allclose(torch.cat([user_emb, item_emb]), z, atol=1e-5)
    assert torch.equal(states[-1][partial.num_users :, 1], x[partial.num_users :, 1])  # text never moved


@pytest.mark.parametrize("learner", ["linear", "mlp"])
def test_zero_initialised_maps_start_from_the_constant_sheaf_and_still_learn(learner: str, partial) -> None:
    model = build(partial, sheaf="gen", layers=2, map_learner=learner, zero_init_maps=True)
    manual = build(partial, sheaf="gen", layers=2, map_learner=learner)
    manual.load_state_dict(model.state_dict())  # same blocks; zero every learner weight by hand
    with torch.no_grad():
        for p in manual.map_learner.parameters():
            p.zero_()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model(partial), manual(partial)))
    bpr_loss(*model(partial), *bpr_batch(partial), reg_weight=1e-2).backward()
    last = model.map_learner.lin2 if learner == "mlp" else model.map_learner.lin
    assert last.weight.grad.abs().sum() > 0  # the cross-modal blocks can grow from zero
    with pytest.raises(ValueError, match="zero_init_maps"):
        build(partial, sheaf="orth", zero_init_maps=True)


def test_orthogonal_maps_are_orthogonal_when_everything_is_observed(data) -> None:
    model = build(data, sheaf="orth")
    perturb_maps(model)
    x, mu = model.initial_stalks(data)
    assert bool((mu[: data.num_users, 1] == 0).all())  # users have no text, so this data is masked...
    full = data.replace(user_features={**data.user_features, "text": torch.randn(U, 8)},
                        user_mask={**data.user_mask, "text": torch.ones(U, dtype=torch.bool)})  # fmt: skip
    model = build(full, sheaf="orth")
    perturb_maps(model)
    x, mu = model.initial_stalks(full)
    maps = model.restriction_maps(x, mu, model.graph_index(full))
    eye = torch.eye(3).expand_as(maps)
    assert torch.allclose(maps @ maps.transpose(1, 2), eye, atol=1e-5)


# ---------------------------------------------------------------------------------------------- masking
@pytest.mark.parametrize("sheaf", SHEAVES)
def test_masked_out_features_are_never_read(sheaf: str, partial) -> None:
    model = build(partial, sheaf=sheaf)
    perturb_maps(model)
    user_emb, item_emb = model(partial)
    item_feats = {k: v.clone() for k, v in partial.item_features.items()}
    user_feats = {k: v.clone() for k, v in partial.user_features.items()}
    item_feats["text"][~partial.has("item", "text")] = float("nan")  # even NaN is never read
    item_feats["tabular"][~partial.has("item", "tabular")] = -50.0
    user_feats["tabular"][~partial.has("user", "tabular")] = 7.0
    user_2, item_2 = model(partial.replace(item_features=item_feats, user_features=user_feats))
    assert torch.allclose(user_emb, user_2, atol=1e-6) and torch.allclose(item_emb, item_2, atol=1e-6)
    # an observed row does matter, and so does the mask
    item_feats["text"][partial.has("item", "text")] += 1.0
    assert not torch.allclose(model(partial.replace(item_features=item_feats))[1], item_emb)
    assert not torch.allclose(model(partial.drop_modality("item", "text", torch.tensor([1])))[1], item_emb)


@pytest.mark.parametrize("sheaf", SHEAVES)
def test_an_unobserved_block_is_not_compared_as_zero(sheaf: str, data) -> None:
    """A missing block must act as absent, not as an observed zero: give it any value, nothing changes."""
    model = build(data, sheaf=sheaf)
    perturb_maps(model)
    x, mu = model.initial_stalks(data)
    index = model.graph_index(data)
    maps = model.restriction_maps(x, mu, index)
    missing = mu == 0  # users' text blocks
    assert missing.any()
    cols = maps if sheaf == "diag" else maps.abs().sum(1)  # (2E, M): the weight each source block gets
    assert torch.all(cols[missing[index.src]] == 0)
    if sheaf == "diag":  # and the partner's coordinate is dropped too
        assert torch.all(maps[missing[index.dst]] == 0)


def test_modality_dropout_only_in_training(data) -> None:
    model = build(data, modality_dropout=0.5)
    model.eval()
    a, b = model(data), model(data)
    assert torch.equal(a[1], b[1])
    model.train()
    torch.manual_seed(0)
    c = model(data)
    assert not torch.allclose(c[1], a[1])


# ---------------------------------------------------------------------------------------------- autograd, symmetry
@pytest.mark.parametrize("sheaf", SHEAVES)
@pytest.mark.parametrize("learner", ["linear", "mlp"])
def test_every_parameter_gets_a_gradient(sheaf: str, learner: str, partial) -> None:
    model = build(partial, sheaf=sheaf, map_learner=learner)
    bpr_loss(*model(partial), *bpr_batch(partial), reg_weight=1e-2).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("sheaf", SHEAVES)
def test_equivariant_under_relabelling_users_and_items(sheaf: str, partial) -> None:
    g = torch.Generator().manual_seed(3)
    pu, pi = torch.randperm(U, generator=g), torch.randperm(I, generator=g)
    model = build(partial, sheaf=sheaf)
    perturb_maps(model)
    model.eval()
    user_emb, item_emb = (t.detach().clone() for t in model(partial))
    permute_node_tables(model, pu, pi, U)
    user_p, item_p = model(permute(partial, pu, pi))
    assert torch.allclose(user_p, user_emb[pu], atol=1e-5) and torch.allclose(item_p, item_emb[pi], atol=1e-5)


def test_seeded_initialisation_is_deterministic(data) -> None:
    a, b, c = build(data, seed=4), build(data, seed=4), build(data, seed=5)
    assert torch.equal(a(data)[1], b(data)[1]) and not torch.equal(a(data)[1], c(data)[1])


def test_graph_index_is_built_once_per_graph(data, monkeypatch) -> None:
    from mmsheaf.recsys import sheaf as sheaf_module

    calls = []
    real = sheaf_module.build_index
    monkeypatch.setattr(sheaf_module, "build_index", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = build(data)
    model(data), model(data)
    assert len(calls) == 1
    model(data.replace(train=data.train.clone()))
    assert len(calls) == 2


# ---------------------------------------------------------------------------------------------- training
def test_training_beats_random_ranking() -> None:
    planted = planted_interactions(num_users=60, num_items=80, num_groups=4, interactions_per_user=12, seed=0)
    set_seed(0)
    model = build_recommender("mm-sheaf", planted, dim=16, layers=2, sheaf="gen")
    res = fit_recommender(model, planted, RecTrainConfig(lr=0.01, epochs=40, batch_size=256, patience=10))
    # a random ranking retrieves about 20/70 of a user's held-out items in the top 20
    assert res.test["recall@20"] > 0.45


# ---------------------------------------------------------------------------------------------- cold items, speed path
def cold_split(data: InteractionData, cold: torch.Tensor) -> InteractionData:
    """``data`` with the items ``cold`` held out: their training edges removed and their ids masked."""
    keep = ~torch.isin(data.train[1], cold)
    return data.replace(train=data.train[:, keep]).drop_modality("item", "id", cold)


@pytest.mark.parametrize("sheaf", SHEAVES)
def test_a_cold_items_score_does_not_depend_on_its_id_embedding(sheaf: str, data) -> None:
    cold = torch.tensor([2, 7, 11])
    split = cold_split(data, cold)
    model = build(split, sheaf=sheaf, id_dropout=0.3)
    model.eval()
    users, items = model(split)
    with torch.no_grad():  # new id embeddings for the cold items, and for one warm item
        model.id_embedding.weight[U + cold] += torch.randn(len(cold), model.dim)
    users2, items2 = model(split)
    assert torch.equal(items2[cold], items[cold])
    assert torch.equal(users2, users)  # nor do anyone's scores of them
    with torch.no_grad():
        model.id_embedding.weight[U + 0] += 1.0
    assert not torch.allclose(model(split)[1][0], items[0])  # a warm item's does: the test can fail


def test_id_dropout_hides_item_ids_in_training_only(data) -> None:
    model = build(data, id_dropout=0.5)
    model.eval()
    assert torch.equal(model(data)[1], model(data)[1])
    model.train()
    torch.manual_seed(0)
    _, mask = model._block(data, "item", "id")
    assert 0 < int(mask.sum()) < I  # some hidden, some kept
    _, user_mask = model._block(data, "user", "id")
    assert user_mask.all()  # users are never dropped
    with pytest.raises(ValueError, match="id_dropout"):
        build(data, id_dropout=1.0)
    with pytest.raises(ValueError, match="'id' is not in modalities"):
        build(data, id_dropout=0.2, modalities=("text", "tabular"))


def test_diagonal_maps_skip_the_coordinates_no_edge_carries_with_the_same_result(data, monkeypatch) -> None:
    """Users have no text: no user-item edge carries the text coordinate, which diffusion leaves unchanged."""
    import mmsheaf.recsys.sheaf as sheaf_module

    widths = []
    real = sheaf_module.sheaf_laplacian

    def spy(index, maps, **kw):
        widths.append(maps.size(1))
        return real(index, maps, **kw)

    monkeypatch.setattr(sheaf_module, "sheaf_laplacian", spy)
    model = build(data, sheaf="diag", layers=3)
    fast = model(data)
    assert widths == [1, 1]  # one Laplacian per carried coordinate: ids and tabular, not text
    x, mu = model.initial_stalks(data)
    index = model.graph_index(data)
    lap = real(index, model.restriction_maps(x, mu, index), sheaf="diag", normalisation="sym")
    h, states = x, [x]
    for _ in range(model.layers):  # the dense reference: every coordinate diffused
        h = h - model.step * lap.apply(h)
        states.append(h)
    z = (torch.stack(states).mean(0) * mu.unsqueeze(-1)).sum(1)
    torch.testing.assert_close(fast[0], z[:U])
    torch.testing.assert_close(fast[1], z[U:])
    bpr_loss(*fast, *bpr_batch(data)).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_concat_readout_blocks_of_their_own_widths_match_padded_joint_diffusion(partial) -> None:
    """Per-modality widths (readout="concat"): each block diffuses on its own, as the joint diagonal Laplacian
    diffuses it when the blocks are zero-padded to one width; the embedding is the blocks side by side."""
    model = build(partial, dim=9, sheaf="diag", layers=2, readout="concat", block_widths=(5, 3, 1),
                  user_profiles=True)  # fmt: skip
    users, items = model(partial)
    assert users.shape == (U, 9) and items.shape == (I, 9)
    blocks, mu = model.initial_blocks(partial)
    assert [b.size(1) for b in blocks] == [5, 3, 1] and mu[:U, 1].all()  # users observe their text profile
    index = model.graph_index(partial)
    maps = model.restriction_maps(torch.cat(blocks, 1), mu, index)
    lap = sheaf_laplacian(index, maps, sheaf="diag", normalisation="sym")
    h = torch.stack([torch.nn.functional.pad(b, (0, 5 - b.size(1))) for b in blocks], dim=1)
    total = h
    for _ in range(model.layers):
        h = h - model.step * lap.apply(h)
        total = total + h
    z = torch.cat([total[:, j, :w] / 3 * mu[:, j : j + 1] for j, w in enumerate((5, 3, 1))], dim=1)
    torch.testing.assert_close(torch.cat([users, items]), z)
    with pytest.raises(ValueError, match="summing to dim=9"):
        build(partial, dim=9, readout="concat", block_widths=(5, 3, 2), sheaf="diag")
    with pytest.raises(ValueError, match="equal block widths"):
        build(partial, dim=9, readout="concat", block_widths=(5, 3, 1), sheaf="gen")
    with pytest.raises(ValueError, match="readout='concat'"):
        build(partial, block_widths=(5, 3, 1))


def test_user_profiles_are_means_of_the_training_items_content(partial) -> None:
    model = build(partial, user_profiles=True, encoder_hidden=0)
    profile, mask = model.user_profile(partial, "text")
    u, i = partial.train
    has = partial.has("item", "text")
    for user in range(U):
        seen = i[(u == user) & has[i]]
        assert bool(mask[user]) == (seen.numel() > 0)
        if seen.numel():
            torch.testing.assert_close(profile[user], partial.item_features["text"][seen].mean(0))
    assert "user_text" in model.encoders and "user_tabular" in model.encoders  # tabular: users have their own
    assert model.encoders["user_tabular"].in_features == partial.user_features["tabular"].size(1)


def test_content_encoders_are_mlps_by_default_or_linear(data) -> None:
    mlp, linear = build(data), build(data, encoder_hidden=0)
    assert isinstance(mlp.encoders["item_text"], torch.nn.Sequential)
    assert isinstance(linear.encoders["item_text"], torch.nn.Linear)
    assert mlp.encoders["item_text"][0].out_features == 256
    with pytest.raises(ValueError, match="encoder_hidden"):
        build(data, encoder_hidden=-1)
