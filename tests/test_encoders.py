"""Tests of the multimodal encoders (mmsheaf.encoders): text, tabular (FT-Transformer), graph and fusion."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import k_hop_subgraph

from mmsheaf.encoders import (
    GRAPH_ENCODERS,
    MODALITIES,
    EncoderConfig,
    ModalityInputs,
    MultimodalEncoder,
    NeighbourIndex,
    TabularEncoder,
    ego_graphs,
    modality_dropout_mask,
    synthetic_inputs,
    tabular_col_stats,
)

# Small sizes keep every test fast; dropout 0 makes train-mode outputs depend only on what a test varies.
SMALL = {
    "token_dim": 16,
    "text_hidden": 32,
    "tab_channels": 8,
    "tab_heads": 2,
    "tab_layers": 1,
    "proj_hidden": 32,
    "embedding_dim": 12,
    "dropout": 0.0,
}
GRAPHS = tuple(GRAPH_ENCODERS)
SUBSETS = [s for r in range(1, 4) for s in itertools.combinations(MODALITIES, r)]


@pytest.fixture(scope="module")
def data() -> tuple[ModalityInputs, torch.Tensor]:
    return synthetic_inputs(num_rows=200, num_classes=5, seed=0)


def make(
    inputs: ModalityInputs, seed: int = 0, train_idx: torch.Tensor | None = None, **overrides: object
) -> MultimodalEncoder:
    torch.manual_seed(seed)
    return MultimodalEncoder(inputs, EncoderConfig(**{**SMALL, **overrides}), train_idx=train_idx).eval()


def replace(inputs: ModalityInputs, **fields: object) -> ModalityInputs:
    return dataclasses.replace(inputs, **fields)


def with_missing_graph(inputs: ModalityInputs, rows: list[int]) -> ModalityInputs:
    graph_mask = inputs.mask("graph").clone()
    graph_mask[rows] = False
    return replace(inputs, graph_mask=graph_mask)


def neighbours_of(inputs: ModalityInputs, v: int) -> torch.Tensor:
    assert inputs.edge_index is not None
    src, dst = inputs.edge_index
    return src[(dst == v) & (src != v)].unique()


# -- shapes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("graph", GRAPHS)
def test_shape_and_unit_norm_every_graph(data, graph: str) -> None:
    inputs, _ = data
    enc = make(inputs, graph=graph)
    z = enc(inputs, torch.arange(37))
    assert z.shape == (37, SMALL["embedding_dim"])
    torch.testing.assert_close(z.norm(dim=1), torch.ones(37))
    assert set(enc.modality_tokens(inputs, torch.arange(5))) == set(MODALITIES)


@pytest.mark.parametrize("modalities", SUBSETS, ids="+".join)
def test_shape_and_unit_norm_every_modality_subset(data, modalities: tuple[str, ...]) -> None:
    inputs, _ = data
    enc = make(inputs, modalities=modalities).train()
    z = enc(inputs, torch.tensor([3, 3, 150, 0]), noise_std=0.1, modality_dropout=0.5)
    assert z.shape == (4, SMALL["embedding_dim"])
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))
    tokens = enc.modality_tokens(inputs, torch.arange(6))
    assert tuple(tokens) == modalities and all(t.shape == (6, SMALL["token_dim"]) for t in tokens.values())


def test_default_config_gives_128_d_embeddings_and_encode_restores_mode(data) -> None:
    inputs, _ = data
    torch.manual_seed(0)
    enc = MultimodalEncoder(inputs)
    assert enc.modalities == MODALITIES and enc.training
    z = enc.encode(inputs, batch_size=64)
    assert enc.training  # restored
    assert z.shape == (200, 128) and torch.isfinite(z).all()
    torch.testing.assert_close(z.norm(dim=1), torch.ones(200))
    assert enc.encode(inputs, torch.zeros(0, dtype=torch.long)).shape == (0, 128)


def test_config_stores_modalities_in_canonical_order() -> None:
    assert EncoderConfig(modalities=("graph", "text")).modalities == ("text", "graph")


# -- missing modalities are never read ---------------------------------------------------------------------


@pytest.mark.parametrize("graph", ["sage", "sheaf-diag"])
def test_features_of_masked_rows_change_no_output(data, graph: str) -> None:
    inputs, _ = data
    inputs = with_missing_graph(inputs, [1, 2, 3])
    no_text = ~inputs.mask("text")
    no_tab = ~inputs.mask("tabular")
    assert no_text.sum() >= 5 and no_tab.sum() >= 3
    g = torch.Generator().manual_seed(1)
    assert inputs.text is not None and inputs.x_num is not None and inputs.x_cat is not None
    text = inputs.text.clone()
    text[no_text] = float("nan")  # a single read would poison the outputs
    x_num = inputs.x_num.clone()
    x_num[no_tab] = 1e6 * torch.randn(int(no_tab.sum()), x_num.size(1), generator=g)
    x_cat = inputs.x_cat.clone()
    x_cat[no_tab] = torch.randint(6, (int(no_tab.sum()), x_cat.size(1)), generator=g)
    assert inputs.edge_index is not None
    extra = torch.tensor([[10, 11, 12], [1, 2, 3]])  # new in-edges of graph-masked rows
    changed = replace(
        inputs, text=text, x_num=x_num, x_cat=x_cat, edge_index=torch.cat([inputs.edge_index, extra], dim=1)
    )
    train_idx = torch.arange(150)
    enc = make(inputs, graph=graph, train_idx=train_idx)
    before = enc.encode(inputs)
    after = enc.encode(changed)
    assert torch.isfinite(after).all()
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    enc.train()  # also with augmentation (same random draws)
    kwargs = {"noise_std": 0.3, "modality_dropout": 0.3}
    z = enc(inputs, torch.arange(200), generator=torch.Generator().manual_seed(0), **kwargs)
    z_changed = enc(changed, torch.arange(200), generator=torch.Generator().manual_seed(0), **kwargs)
    torch.testing.assert_close(z_changed, z, rtol=0, atol=0)
    # the column statistics skip masked rows too: an encoder built from the changed inputs is the same
    rebuilt = make(changed, graph=graph, train_idx=train_idx)
    torch.testing.assert_close(rebuilt.encode(changed), before, rtol=0, atol=0)


def test_missing_modality_uses_the_missing_token(data) -> None:
    inputs, _ = data
    inputs = with_missing_graph(inputs, [0])
    enc = make(inputs)
    no_text = int((~inputs.mask("text")).nonzero()[0, 0])
    no_tab = int((~inputs.mask("tabular")).nonzero()[0, 0])
    tokens = enc.modality_tokens(inputs, torch.tensor([no_text, no_tab, 0]))
    torch.testing.assert_close(tokens["text"][0], enc.missing["text"].detach())
    torch.testing.assert_close(tokens["tabular"][1], enc.missing["tabular"].detach())
    torch.testing.assert_close(tokens["graph"][2], enc.missing["graph"].detach())
    assert not torch.allclose(tokens["text"][1], enc.missing["text"].detach())


# -- missing cells -------------------------------------------------------------------------------------------


def test_nan_and_minus_one_cells_never_give_nan() -> None:
    inputs, _ = synthetic_inputs(num_rows=120, missing_cell=0.4, seed=3)
    assert inputs.x_num is not None and inputs.x_cat is not None
    x_num, x_cat = inputs.x_num.clone(), inputs.x_cat.clone()
    x_num[:, 1] = float("nan")  # a column without any observed cell
    x_num[5, 0] = float("inf")  # treated as missing
    x_num[6] = float("nan")  # all numerics missing, categories observed
    x_cat[7] = -1  # all categories missing, numerics observed
    x_cat[:, 2] = 0  # a constant column
    tab_mask = inputs.mask("tabular").clone()
    tab_mask[[6, 7]] = True
    inputs = replace(inputs, x_num=x_num, x_cat=x_cat, tabular_mask=tab_mask)
    for graph in ("sage", "sheaf-gen"):
        enc = make(inputs, graph=graph).train()
        z = enc(inputs, torch.arange(120), noise_std=0.5, modality_dropout=0.3)
        assert torch.isfinite(z).all()
        z.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
        assert torch.isfinite(enc.eval().encode(inputs)).all()
    tokens = make(inputs).modality_tokens(inputs, torch.arange(120))
    assert torch.isfinite(tokens["tabular"]).all()


def test_na_strategies_impute_training_mean_and_most_frequent_category() -> None:
    inputs, _ = synthetic_inputs(num_rows=300, missing_cell=0.2, missing_tabular=0.0, seed=4)
    assert inputs.x_num is not None and inputs.x_cat is not None
    train_idx = torch.arange(200)
    torch.manual_seed(0)
    enc = TabularEncoder(
        inputs, out_channels=8, channels=8, num_layers=1, heads=2, train_idx=train_idx
    ).eval()
    stats = tabular_col_stats(inputs, train_idx)
    train_num = inputs.x_num[:200, 0]
    assert stats.num_mean[0] == pytest.approx(float(train_num[~train_num.isnan()].double().mean()), rel=1e-6)
    # a categorical column whose most frequent training code is not 0 (pytorch-frame fills rank 0)
    modes = [int(torch.bincount(c[c >= 0], minlength=6).argmax()) for c in inputs.x_cat[:200].t()]
    j = next(j for j, mode in enumerate(modes) if mode != 0)
    row = int((inputs.x_num[:, 0].isnan() & (inputs.x_cat[:, j] == -1)).nonzero()[0, 0])
    filled_num, filled_cat = inputs.x_num.clone(), inputs.x_cat.clone()
    filled_num[row, 0] = stats.num_mean[0]
    filled_cat[row, j] = modes[j]
    filled = replace(inputs, x_num=filled_num, x_cat=filled_cat)
    with torch.no_grad():
        rows = torch.tensor([row])
        torch.testing.assert_close(enc(inputs, rows), enc(filled, rows))
        for code in range(6):  # any other fill value would change the token
            if code != modes[j]:
                other = filled_cat.clone()
                other[row, j] = code
                assert not torch.allclose(enc(inputs, rows), enc(replace(inputs, x_cat=other), rows))


def test_column_scales_are_standardised_with_training_stats(data) -> None:
    inputs, _ = data
    assert inputs.x_num is not None
    train_idx = torch.arange(120)
    stats = tabular_col_stats(inputs, train_idx)
    rows = train_idx[inputs.mask("tabular")[train_idx]]
    x = inputs.x_num[rows].double()
    for j in range(x.size(1)):
        col = x[:, j][~x[:, j].isnan()]
        assert stats.num_mean[j] == pytest.approx(float(col.mean()), rel=1e-6)
        assert stats.num_std[j] == pytest.approx(float(col.std(unbiased=False)), rel=1e-6)
    assert stats.num_std[2] / stats.num_std[0] > 20  # synthetic columns on scales 1 and 100
    encoder = make(inputs, train_idx=train_idx).encoders["tabular"].model.encoder.encoder_dict["numerical"]
    torch.testing.assert_close(encoder.mean.double(), torch.tensor(stats.num_mean, dtype=torch.float64))
    z = (inputs.x_num[rows] - encoder.mean) / encoder.std  # what the FT-Transformer sees
    spread = torch.stack([z[:, j][~z[:, j].isnan()].std() for j in range(z.size(1))])
    assert ((spread > 0.8) & (spread < 1.2)).all()


# -- graph token -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "layers"), [(g, 1) for g in GRAPHS] + [("sage", 2), ("gcn", 2), ("sheaf-diag", 2)]
)
def test_graph_token_reads_neighbours_not_the_row_itself(data, graph: str, layers: int) -> None:
    inputs, _ = data
    assert inputs.text is not None and inputs.x_num is not None
    enc = make(inputs, graph=graph, graph_layers=layers)
    observed = inputs.mask("text") & inputs.mask("tabular") & inputs.mask("graph")
    v = int(observed.nonzero()[0, 0])
    nbrs = neighbours_of(inputs, v)
    u = int(nbrs[inputs.mask("text")[nbrs]][0])
    rows = torch.tensor([v])
    base = enc.modality_tokens(inputs, rows)

    text, x_num = inputs.text.clone(), inputs.x_num.clone()
    text[v] = torch.randn(text.size(1))
    x_num[v] = x_num[v] + 5.0
    own = enc.modality_tokens(replace(inputs, text=text, x_num=x_num), rows)
    torch.testing.assert_close(own["graph"], base["graph"], rtol=0, atol=0)
    assert not torch.allclose(own["text"], base["text"]) and not torch.allclose(
        own["tabular"], base["tabular"]
    )

    text = inputs.text.clone()
    text[u] = torch.randn(text.size(1))
    neighbour = enc.modality_tokens(replace(inputs, text=text), rows)
    assert not torch.allclose(neighbour["graph"], base["graph"], atol=1e-6)
    torch.testing.assert_close(neighbour["text"], base["text"], rtol=0, atol=0)


@pytest.mark.parametrize("graph", ["sage", "gcn"])
def test_one_layer_graph_token_is_the_full_graph_pyg_layer_without_the_row(data, graph: str) -> None:
    inputs, _ = data
    assert inputs.edge_index is not None
    enc = make(inputs, graph=graph)
    conv = enc.encoders["graph"].convs[0]
    rows = torch.arange(200)
    with torch.no_grad():
        tokens = enc.modality_tokens(inputs, rows)
        content = torch.cat([tokens["text"], tokens["tabular"]], dim=1)
        for v in (0, 41, 199):
            x = content.clone()
            x[v] = 0.0  # the row's own content is left out
            if graph == "sage":
                expected = conv(x, inputs.edge_index)[v]
            else:
                edge_index, weight = gcn_norm(inputs.edge_index, num_nodes=200, add_self_loops=True)
                expected = conv(x, edge_index, weight)[v]
            torch.testing.assert_close(tokens["graph"][v], expected, atol=1e-5, rtol=1e-5)


def test_graph_token_of_a_row_does_not_depend_on_the_batch(data) -> None:
    inputs, _ = data
    for graph in ("sage", "gcn", "sheaf-orth"):
        enc = make(inputs, graph=graph, graph_layers=2)
        torch.testing.assert_close(enc.encode(inputs, batch_size=7), enc.encode(inputs), atol=1e-5, rtol=1e-5)


def test_ego_graphs_match_k_hop_subgraph(data) -> None:
    inputs, _ = data
    assert inputs.edge_index is not None
    index = NeighbourIndex.build(inputs.edge_index, inputs.num_rows)
    centres = torch.tensor([0, 17, 17, 99])
    for hops in (1, 2):
        ego = ego_graphs(index, centres, hops)
        assert ego.num_centres == 4 and ego.is_centre.sum() == 4
        for b, c in enumerate(centres.tolist()):
            subset, _, _, _ = k_hop_subgraph(c, hops, inputs.edge_index, num_nodes=inputs.num_rows)
            assert set(ego.node[ego.owner == b].tolist()) == set(subset.tolist())
            assert int(ego.node[ego.centre[b]]) == c
        src, dst = ego.edge_index
        assert (ego.owner[src] == ego.owner[dst]).all()  # no edge between two ego graphs
        assert (
            (
                (ego.node[src] * 1000 + ego.node[dst]).unsqueeze(1)
                == (inputs.edge_index[0] * 1000 + inputs.edge_index[1]).unsqueeze(0)
            )
            .any(1)
            .all()
        )


def test_neighbour_sampling_bounds_the_ego_graphs(data) -> None:
    inputs, _ = data
    assert inputs.edge_index is not None
    index = NeighbourIndex.build(inputs.edge_index, inputs.num_rows)
    centres = torch.arange(50)
    ego = ego_graphs(index, centres, 1, max_neighbours=3, generator=torch.Generator().manual_seed(0))
    sizes = torch.bincount(ego.owner, minlength=50)
    assert (sizes <= 4).all() and (sizes == torch.clamp(index.degree[centres], max=3) + 1).all()
    for b in range(50):
        assert set(ego.node[(ego.owner == b) & ~ego.is_centre].tolist()) <= set(
            neighbours_of(inputs, b).tolist()
        )
    enc = make(inputs, graph_max_neighbours=2).train()
    assert torch.isfinite(enc(inputs, centres)).all()


# -- gradients, equivariance, determinism ---------------------------------------------------------------------


@pytest.mark.parametrize("graph", GRAPHS)
def test_every_parameter_gets_a_gradient(data, graph: str) -> None:
    inputs, _ = data
    inputs = with_missing_graph(inputs, [0, 1])  # the batch needs rows with every kind of missing modality
    enc = make(inputs, graph=graph, graph_layers=2 if graph == "sage" else 1).train()
    z = enc(inputs, torch.arange(200))
    (z * torch.randn_like(z)).sum().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("graph", GRAPHS)
def test_permutation_equivariance(data, graph: str) -> None:
    inputs, _ = data
    enc = make(inputs, graph=graph, graph_layers=2 if graph in ("sage", "sheaf-diag") else 1)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(5))
    permuted = inputs.permute(perm)
    torch.testing.assert_close(enc.encode(permuted), enc.encode(inputs)[perm], atol=1e-5, rtol=1e-5)


def test_seeded_determinism(data) -> None:
    inputs, _ = data
    a, b, c = make(inputs, seed=7), make(inputs, seed=7), make(inputs, seed=8)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))
    index = torch.arange(64)
    torch.testing.assert_close(a.encode(inputs), b.encode(inputs), rtol=0, atol=0)
    a.train(), b.train()
    za = a(inputs, index, noise_std=0.3, modality_dropout=0.5, generator=torch.Generator().manual_seed(1))
    zb = b(inputs, index, noise_std=0.3, modality_dropout=0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(za, zb, rtol=0, atol=0)
    zc = b(inputs, index, noise_std=0.3, modality_dropout=0.5, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(za, zc)


# -- augmentation ------------------------------------------------------------------------------------------------


def test_modality_dropout_mask_keeps_an_observed_modality() -> None:
    g = torch.Generator().manual_seed(0)
    observed = torch.rand(500, 3, generator=g) < 0.6
    observed[:5] = False
    keep = modality_dropout_mask(observed, 1.0, g)
    assert not (keep & ~observed).any()
    assert (keep.sum(1) == observed.any(1).long()).all()  # exactly one kept where any is observed
    half = modality_dropout_mask(observed, 0.5, g)
    assert not (half & ~observed).any() and (half.any(1) == observed.any(1)).all()
    assert 0.45 < half.sum() / observed.sum() < 0.75  # 1/2 dropped, some rescued
    assert torch.equal(modality_dropout_mask(observed, 0.0, g), observed)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        modality_dropout_mask(observed, 1.5)


def test_modality_dropout_in_training_changes_outputs_but_keeps_a_modality(data) -> None:
    inputs, _ = data
    enc = make(inputs).train()
    index = torch.arange(200)
    plain = enc(inputs, index)
    dropped = enc(inputs, index, modality_dropout=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(dropped).all() and not torch.allclose(plain, dropped)
    all_missing = enc.fuse({m: enc.missing[m].expand(200, -1) for m in enc.modalities})
    assert ((dropped - all_missing).abs().amax(1) > 1e-4).all()  # no row lost all its modalities
    # the config's rate is used when no override is given
    cfg_enc = make(inputs, modality_dropout=1.0).train()
    assert not torch.allclose(cfg_enc(inputs, index), plain)


def test_duplicate_rows_are_independent_views_in_training(data) -> None:
    inputs, _ = data
    enc = make(inputs).train()
    index = torch.tensor([5, 5, 40, 40])
    z = enc(inputs, index, noise_std=0.5, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(z[0], z[1]) and not torch.allclose(z[2], z[3])
    z = enc(inputs, index)  # no augmentation: identical
    torch.testing.assert_close(z[0], z[1], rtol=0, atol=0)
    z = enc.eval()(inputs, index, noise_std=0.5)
    torch.testing.assert_close(z[2], z[3], rtol=0, atol=0)


def test_eval_mode_ignores_modality_dropout_and_noise(data) -> None:
    inputs, _ = data
    enc = make(inputs, modality_dropout=0.9)
    index = torch.arange(100)
    reference = enc(inputs, index)
    torch.testing.assert_close(
        enc(inputs, index, noise_std=2.0, modality_dropout=1.0), reference, rtol=0, atol=0
    )
    enc.train()
    assert not torch.allclose(enc(inputs, index, noise_std=2.0, modality_dropout=0.0), reference)


# -- configuration and input errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"graph": "gat"}, "Unknown EncoderConfig.graph"),
        ({"text": "bert"}, "Unknown EncoderConfig.text"),
        ({"modalities": ()}, "non-empty"),
        ({"modalities": ("text", "image")}, "non-empty"),
        ({"modalities": ("text", "text")}, "distinct"),
        ({"token_dim": 0}, "token_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"modality_dropout": -0.1}, "modality_dropout"),
        ({"tab_channels": 10, "tab_heads": 4}, "multiple of tab_heads"),
        ({"graph": "sheaf-orth", "token_dim": 15, "sheaf_d": 2}, "divisible by sheaf_d"),
        ({"graph": "sheaf-orth", "sheaf_d": 1}, "d >= 2"),
        ({"graph_max_neighbours": 0}, "graph_max_neighbours"),
    ],
)
def test_bad_config_raises(data, overrides: dict, match: str) -> None:
    inputs, _ = data
    with pytest.raises(ValueError, match=match):
        MultimodalEncoder(inputs, EncoderConfig(**{**SMALL, **overrides}))


def test_inputs_that_cannot_feed_a_modality_raise(data) -> None:
    inputs, _ = data
    with pytest.raises(ValueError, match="edge_index is None"):
        MultimodalEncoder(replace(inputs, edge_index=None), EncoderConfig(**SMALL))
    with pytest.raises(ValueError, match="text=..."):
        MultimodalEncoder(replace(inputs, text=None), EncoderConfig(**SMALL))
    with pytest.raises(ValueError, match="x_num=..., x_cat=..."):
        MultimodalEncoder(
            replace(inputs, x_num=None, x_cat=None), EncoderConfig(**{**SMALL, "modalities": ("tabular",)})
        )
    with pytest.raises(ValueError, match="pass ModalityInputs\\(texts=...\\)"):
        MultimodalEncoder(inputs, EncoderConfig(**{**SMALL, "text": "finetune"}))
    # without the graph modality, no edges are needed
    z = make(replace(inputs, edge_index=None), modalities=("text", "tabular")).encode(
        replace(inputs, edge_index=None)
    )
    assert z.shape == (200, SMALL["embedding_dim"])


def test_bad_forward_arguments_raise(data) -> None:
    inputs, _ = data
    enc = make(inputs)
    with pytest.raises(ValueError, match="outside"):
        enc(inputs, torch.tensor([0, 200]))
    with pytest.raises(ValueError, match="1-d long"):
        enc(inputs, torch.tensor([0.0]))
    other, _ = synthetic_inputs(num_rows=50, seed=0)
    with pytest.raises(ValueError, match="built for 200 rows"):
        enc(other, torch.arange(3))
    with pytest.raises(ValueError, match="edge_index"):
        enc(replace(inputs, edge_index=None), torch.arange(3))
    with pytest.raises(ValueError, match="train_idx"):
        MultimodalEncoder(inputs, EncoderConfig(**SMALL), train_idx=torch.tensor([500]))


# -- raw texts ---------------------------------------------------------------------------------------------------


def test_inputs_texts_are_validated_and_permuted() -> None:
    x_num = torch.arange(6.0).view(3, 2)
    inputs = ModalityInputs(x_num=x_num, texts=["a", "b", "c"])
    assert inputs.texts == ("a", "b", "c") and "text" in inputs.available()
    assert inputs.permute(torch.tensor([2, 0, 1])).texts == ("c", "a", "b")
    with pytest.raises(ValueError, match="texts must hold 3 strings"):
        ModalityInputs(x_num=x_num, texts=["a", "b"])
    with pytest.raises(ValueError, match="not a str"):
        ModalityInputs(x_num=x_num, texts="abc")


@pytest.mark.slow
def test_finetuned_text_encoder_trains_the_transformer() -> None:
    texts = ("A lovely dress, fits well.", "Too small in the shoulders.", "Great colour!", "")
    text_mask = torch.tensor([True, True, True, False])
    x_num = torch.tensor([[30.0, 5.0], [45.0, 2.0], [float("nan"), 4.0], [60.0, 1.0]])
    inputs = ModalityInputs(x_num=x_num, texts=texts, text_mask=text_mask)
    torch.manual_seed(0)
    cfg = EncoderConfig(**{**SMALL, "modalities": ("text", "tabular"), "text": "finetune"})
    enc = MultimodalEncoder(inputs, cfg)
    z = enc(inputs, torch.arange(4))
    assert z.shape == (4, SMALL["embedding_dim"]) and torch.isfinite(z).all()
    z.sum().backward()
    grads = [p.grad for n, p in enc.encoders["text"].model.named_parameters() if "encoder.layer.5" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    changed = replace(inputs, texts=texts[:3] + ("never read",))  # row 3's text is missing
    torch.testing.assert_close(enc.encode(changed), enc.encode(inputs), rtol=0, atol=0)
