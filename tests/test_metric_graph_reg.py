"""Experiment 3 of the graph-regularisation study (mmsheaf.metric.graph_reg): notebook 03's encoder on T2 with
the review graph in the loss only, without it, and as an input tower.

The trainer and the penalty are tested on synthetic inputs (no data needed); the runs on the real reviews
(``max_rows`` 600, the smoke encoder, 1-2 epochs) skip when the clothing reviews are not in the data folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from mmsheaf import paths
from mmsheaf.data import DatasetNotFoundError
from mmsheaf.encoders.fusion import EncoderConfig, MultimodalEncoder
from mmsheaf.encoders.inputs import synthetic_inputs
from mmsheaf.losses import build_loss
from mmsheaf.metric import graph_reg as rv
from mmsheaf.metric import protocol as metric
from mmsheaf.metric.plan import MetricPlan
from mmsheaf.metric.train import MetricTrainConfig, train_metric_encoder

SMALL = EncoderConfig(modalities=("text", "tabular"), token_dim=16, embedding_dim=16, text_hidden=32,
                      tab_channels=8, tab_layers=1, proj_hidden=32)  # fmt: skip
TINY = {"profile": "smoke", "data_options": {"max_rows": 600}, "train": {"epochs": 2}}


@pytest.fixture(scope="module")
def toy():
    """Synthetic rows with a homophilic graph; train / validation rows share classes (like T2)."""
    inputs, labels = synthetic_inputs(num_rows=300, num_classes=6, text_dim=24, signal=0.8, seed=3)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    return inputs, labels, perm[:200].sort().values, perm[200:].sort().values


def _build(toy, seed: int = 0):
    inputs, labels, train, _ = toy
    no_graph = dataclasses.replace(inputs, edge_index=None)
    torch.manual_seed(seed)
    encoder = MultimodalEncoder(no_graph, SMALL, train_idx=train)
    loss = build_loss("arcface", num_classes=int(labels[train].unique().numel()), embedding_size=16)
    return no_graph, encoder, loss


# -- the review graph ---------------------------------------------------------------------------------------


def test_graph_keeps_training_edges_and_finds_those_among_nodes(toy) -> None:
    inputs, _, train, _ = toy
    graph = rv.ReviewGraph.among(inputs.edge_index, train, inputs.num_rows)
    edges = {tuple(e) for e in inputs.edge_index.t().tolist()}
    in_train = set(train.tolist())
    kept = {tuple(e) for e in torch.stack([graph.row, graph.col]).t().tolist()}
    assert kept == {e for e in edges if e[0] in in_train and e[1] in in_train}
    nbrs = graph.sample(train[:40], 3, torch.Generator().manual_seed(0))
    assert set(nbrs.tolist()) <= in_train and nbrs.numel() <= 120
    nodes = torch.cat([train[:40], nbrs, train[:5]])  # repeated nodes: their first position
    among = rv.ReviewGraph.among(inputs.edge_index, train, inputs.num_rows).edges_among(nodes)
    first = {}
    for i, n in enumerate(nodes.tolist()):
        first.setdefault(n, i)
    expected = {(first[u], first[v]) for u, v in kept if u in first and v in first}
    assert {tuple(e) for e in among.t().tolist()} == expected and among.size(1) == len(expected)


# -- the penalty and the trainer ----------------------------------------------------------------------------


def test_penalty_alone_reaches_the_encoder_and_the_loss_changes_with_alpha(toy) -> None:
    inputs, labels, train, _ = toy
    no_graph, encoder, loss = _build(toy)
    graph = rv.ReviewGraph.among(inputs.edge_index, train, inputs.num_rows)
    rows, targets = train[:64], torch.unique(labels[train], return_inverse=True)[1][:64]
    totals = {}
    for alpha in (0.5, 2.0):
        cfg = rv.ReviewRegConfig(alpha=alpha, neighbours=2)
        encoder.eval()  # no dropout: the two alphas see the same embeddings
        penalty, sampler = rv.GraphPenalty(cfg, 16), torch.Generator().manual_seed(1)
        total, value, pen = rv.regularised_loss(encoder, loss, penalty, no_graph, rows, targets, graph, cfg,
                                                sampler=sampler)  # fmt: skip
        assert float(pen.detach()) > 0 and torch.allclose(total, value + alpha * pen)
        totals[alpha] = float(total.detach())
    assert totals[0.5] != totals[2.0]
    encoder.zero_grad()
    pen.backward()  # the penalty alone
    grads = {n: p.grad for n, p in encoder.named_parameters()}
    assert any(g is not None and float(g.abs().sum()) > 0 for n, g in grads.items() if n.startswith("fusion"))
    assert any(g is not None and float(g.abs().sum()) > 0 for n, g in grads.items() if "text" in n)


@pytest.mark.parametrize("distance", ["l1", "cosine", "mahalanobis", "hist_intersection"])
def test_every_embedding_distance_gives_a_finite_penalty(toy, distance: str) -> None:
    inputs, _labels, train, _ = toy
    no_graph, encoder, _ = _build(toy)
    cfg = rv.ReviewRegConfig(alpha=1.0, distance=distance)
    graph = rv.ReviewGraph.among(inputs.edge_index, train, inputs.num_rows)
    z = encoder(no_graph, train[:32])
    pen = rv.GraphPenalty(cfg, 16)(z, graph.edges_among(train[:32]))
    assert torch.isfinite(pen) and float(pen.detach()) >= 0


def test_trainer_at_alpha_zero_is_notebook_03s(toy) -> None:
    """The hand-written loop mirrors train_metric_encoder: at alpha 0 the same history and the same model."""
    inputs, labels, train, val = toy
    cfg = MetricTrainConfig(epochs=3, batch_size=32, patience=2, seed=4)
    runs = []
    for regularised in (False, True):
        no_graph, encoder, loss = _build(toy, seed=4)
        if regularised:
            graph = rv.ReviewGraph.among(inputs.edge_index, train, inputs.num_rows)
            res = rv.train_graph_regularised(encoder, loss, no_graph, labels, train, val, graph,
                                             rv.ReviewRegConfig(alpha=0.0), cfg)  # fmt: skip
        else:
            res = train_metric_encoder(encoder, loss, no_graph, labels, train, val, cfg)
        runs.append((res, encoder.encode(no_graph, val)))
    (a, za), (b, zb) = runs
    assert [h["val_map_at_r"] for h in a.history] == [h["val_map_at_r"] for h in b.history]
    assert a.best_epoch == b.best_epoch and torch.equal(za, zb)
    assert all(h["penalty"] == 0 for h in b.history)


def test_trainer_with_the_penalty_is_seeded_and_differs_from_alpha_zero(toy) -> None:
    inputs, labels, train, val = toy
    cfg = MetricTrainConfig(epochs=2, batch_size=32, patience=0, seed=1)
    out = []
    for alpha in (1.0, 1.0, 0.0):
        no_graph, encoder, loss = _build(toy, seed=1)
        graph = rv.ReviewGraph.among(inputs.edge_index, train, inputs.num_rows)
        res = rv.train_graph_regularised(encoder, loss, no_graph, labels, train, val, graph,
                                         rv.ReviewRegConfig(alpha=alpha), cfg)  # fmt: skip
        out.append((res.val["map_at_r"], encoder.encode(no_graph, val)))
    assert out[0][0] == out[1][0] and torch.equal(out[0][1], out[1][1])
    assert not torch.equal(out[0][1], out[2][1])


# -- specs --------------------------------------------------------------------------------------------------


def test_keys_differ_between_variants_and_are_equal_for_equal_specs() -> None:
    specs = [rv.ReviewRunSpec(v, seed=0, alpha=1.0) for v in rv.VARIANTS]
    assert len({s.key() for s in specs}) == 3
    assert rv.ReviewRunSpec("graph-reg", alpha=1.0).key() == rv.ReviewRunSpec("graph-reg", alpha=1.0).key()
    assert rv.ReviewRunSpec("graph-reg", alpha=1.0).key() != rv.ReviewRunSpec("graph-reg", alpha=0.5).key()
    assert rv.ReviewRunSpec("graph-reg", distance="l1").key() != rv.ReviewRunSpec("graph-reg").key()
    assert rv.ReviewRunSpec("graph-reg", seed=1).key() != rv.ReviewRunSpec("graph-reg").key()
    # settings a run does not read do not enter its key; a graph-reg run at alpha 0 is the no-graph run
    assert rv.ReviewRunSpec("no-graph", alpha=3.0, distance="l1").key() == rv.ReviewRunSpec("no-graph").key()
    assert rv.ReviewRunSpec("graph-reg", alpha=0.0).key() == rv.ReviewRunSpec("no-graph").key()
    assert rv.ReviewRunSpec("graph-reg", train={"epochs": 2}).key() != rv.ReviewRunSpec("graph-reg").key()
    assert rv.ReviewRunSpec("graph-reg", profile="smoke").key() != rv.ReviewRunSpec("graph-reg").key()


BAD_SPECS = [{"variant": "graph"}, {"distance": "kl"}, {"distance": "js"}, {"alpha": -1.0},
             {"neighbours": -1}, {"encoder": {"modalities": ["text"]}}, {"train": {"epoch": 3}},
             {"loss": "ntxent"}, {"profile": "full"}]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_SPECS)
def test_bad_specs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        rv.ReviewRunSpec(**{"variant": "graph-reg", **bad})


def test_graph_tower_is_notebook_03s_t2_run() -> None:
    """Same modalities, encoder, training, data and tuned loss as notebook 03's paper profile: the same key as
    its plan's run (and, where its run ledger is there, a run it made)."""
    p = rv.notebook03_settings("paper")
    plan = MetricPlan(["category"], ["arcface"], {"category": p["modalities"]}, [0, 1], encoder=p["encoder"],
                      train=p["train"], data_options={"category": p["data_options"]})  # fmt: skip
    tuned = {("category", "arcface"): rv.T2_TUNED["arcface"]}
    for seed in (0, 1):
        ours = rv.ReviewRunSpec("graph-tower", seed=seed).metric_spec()
        theirs = plan.specs(tuned, "category", "arcface", [seed], evaluate=())[0]
        assert ours.key() == theirs.key()
        assert ours.encoder_config().modalities == ("text", "tabular", "graph")
    no_graph = rv.ReviewRunSpec("no-graph").metric_spec()
    assert no_graph.encoder_config().modalities == ("text", "tabular")
    assert no_graph.key() == plan.specs(tuned, "category", "arcface", [0], modalities=["text", "tabular"],
                                        evaluate=())[0].key()  # its ablation row  # fmt: skip
    ledger = paths.repo_root() / "figures" / "runs" / "03_arcface_vs_contrastive.jsonl"
    if ledger.is_file():
        keys = {json.loads(line)["key"] for line in ledger.read_text().splitlines() if line.strip()}
        assert rv.ReviewRunSpec("graph-tower").metric_spec().key() in keys
        assert no_graph.key() in keys


# -- runs on the reviews ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reviews():
    try:
        return metric.load_task("category", max_rows=600)
    except DatasetNotFoundError as exc:
        pytest.skip(f"the clothing reviews are not in the data folder ({exc})")


@pytest.mark.data
def test_graph_reg_encoder_has_no_graph_tower_and_never_reads_edges(reviews) -> None:
    spec = rv.ReviewRunSpec("graph-reg", alpha=1.0, **TINY)
    task, inputs, encoder, _ = rv._fit_regularised(spec)
    assert inputs.edge_index is None and "graph" not in encoder.modalities
    assert not [n for n, _ in encoder.named_parameters() if "graph" in n]
    edges = task.edge_index
    perm = torch.randperm(edges.size(1), generator=torch.Generator().manual_seed(0))
    shuffled = torch.stack([edges[0], edges[1][perm]])  # the targets of the edges shuffled
    z = encoder.encode(inputs, task.test_idx)
    for ei in (shuffled, edges[:, :0], edges):
        assert torch.equal(encoder.encode(dataclasses.replace(inputs, edge_index=ei), task.test_idx), z)


@pytest.mark.data
def test_runs_of_each_variant_are_scored_stored_and_seeded(reviews, tmp_path: Path) -> None:
    specs = [rv.ReviewRunSpec(v, seed=0, alpha=1.0, **TINY) for v in rv.VARIANTS]
    caches = [rv.ReviewRunCache(tmp_path / name) for name in ("a", "b")]
    runs = [rv.run_review_specs(specs, cache, progress=False) for cache in caches]
    df = runs[0]
    assert df["variant"].tolist() == list(rv.VARIANTS) and not df["cached"].any()
    for col in ("val_map_at_r", "val_p_at_1", "test_map_at_r", "test_p_at_1", "test_accuracy", "seconds",
                "infer_ms"):  # fmt: skip
        assert df[col].between(0, float("inf")).all(), col
    assert df["graph_params"].tolist()[:2] == [0, 0] and df["graph_params"].iloc[2] > 0
    assert df["modalities"].tolist() == ["text + tabular", "text + tabular", "text + tabular + graph"]
    assert df["val_map_at_r"].tolist() == runs[1]["val_map_at_r"].tolist()  # seeded: the same numbers
    emb = [rv.review_embeddings(specs[1], cache) for cache in caches]
    n = {s: task_rows.numel() for s, task_rows in (("train", reviews.train_idx), ("test", reviews.test_idx))}
    assert emb[0]["train"].shape == (n["train"], 128) and emb[0]["test_labels"].shape == (n["test"],)
    assert torch.equal(emb[0]["test_labels"], reviews.labels[reviews.test_idx])
    assert all(torch.equal(emb[0][k], emb[1][k]) for k in emb[0])
    assert rv.run_review_specs(specs, caches[0], progress=False)["cached"].all()
    caches[0].embeddings_path(specs[1]).unlink()  # as after a ledger restore: results kept, embeddings remade
    assert rv.run_review_specs(specs, caches[0], progress=False)["cached"].all()
    again = rv.review_embeddings(specs[1], caches[0])
    assert all(torch.equal(again[k], emb[0][k]) for k in emb[0])


def test_alpha_is_chosen_on_validation_map_at_r() -> None:
    runs = pd.DataFrame({"variant": ["graph-reg"] * 4 + ["no-graph"], "alpha": [0.1, 0.1, 1.0, 1.0, 0.0],
                         "val_map_at_r": [0.5, 0.7, 0.6, 0.6, 0.9]})  # fmt: skip
    assert rv.choose_alpha(runs) == 0.1  # 0.6 each: the tie goes to the smaller weight; no-graph is ignored
    assert rv.choose_alpha(runs.assign(val_map_at_r=[0.5, 0.6, 0.6, 0.7, 0.9])) == 1.0
    with pytest.raises(ValueError, match="no graph-reg runs"):
        rv.choose_alpha(runs[runs.variant == "no-graph"])
