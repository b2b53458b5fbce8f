"""Tests of the HUSE test-time scoring (mmsheaf.huse.evaluate)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from sklearn.metrics import f1_score

from mmsheaf.encoders.fusion import EncoderConfig
from mmsheaf.encoders.inputs import ModalityInputs, synthetic_inputs
from mmsheaf.evaluation.cross import cross_retrieval_metrics
from mmsheaf.evaluation.embeddings import classification_metrics
from mmsheaf.huse.evaluate import (
    classification_scores,
    evaluate_huse,
    hierarchical_scores,
    missing_text_curve,
    retrieval_matrix,
    text_removal_order,
)
from mmsheaf.huse.hierarchy import ClassHierarchy, hierarchical_precision
from mmsheaf.huse.model import HuseModel, HuseOutput

CFG = EncoderConfig(modalities=("text", "tabular", "graph"), embedding_dim=16, token_dim=16, text_hidden=32,
                    tab_channels=8, tab_layers=1, tab_heads=2, proj_hidden=32)  # fmt: skip
TABLE = [("General", "Tops", "Blouses"), ("General", "Tops", "Knits"),
         ("Intimate", "Intimates", "Lounge"), ("Intimate", "Intimates", "Sleep")]  # fmt: skip


def _unit(*degrees: float) -> torch.Tensor:
    angle = torch.tensor(degrees).deg2rad()
    return torch.stack([angle.cos(), angle.sin()], dim=1)


def _log(*probs: tuple[float, float]) -> torch.Tensor:
    """Logits whose softmax is exactly ``probs``."""
    return torch.tensor(probs).log()


@pytest.fixture()
def hand() -> tuple[HuseOutput, torch.Tensor]:
    """Four rows, classes [0, 0, 1, 1]; row 3 has no text (its text logits would fix the fusion there)."""
    out = HuseOutput(
        embeddings={"text": _unit(0, 60, 90, 100), "tabular": _unit(10, 80, 95, 160)},
        logits={"text": _log((0.9, 0.1), (0.2, 0.8), (0.3, 0.7), (0.01, 0.99)),
                "tabular": _log((0.6, 0.4), (0.7, 0.3), (0.45, 0.55), (0.6, 0.4))},
        observed={"text": torch.tensor([True, True, True, False]),
                  "tabular": torch.ones(4, dtype=torch.bool)},
    )  # fmt: skip
    return out, torch.tensor([0, 0, 1, 1])


@pytest.fixture(scope="module")
def toy():
    inputs, labels = synthetic_inputs(num_rows=200, num_classes=4, text_dim=24, avg_degree=4)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    train, test = perm[:140].sort().values, perm[140:].sort().values
    torch.manual_seed(0)
    model = HuseModel.from_inputs(inputs, CFG, num_classes=4, train_idx=train)
    return model, inputs, labels, train, test


class Spy:
    """Wraps a model and records the text mask of every ``encode`` call."""

    def __init__(self, model: HuseModel) -> None:
        self.model, self.masks = model, []

    def encode(self, inputs: ModalityInputs, index: torch.Tensor) -> HuseOutput:
        self.masks.append(inputs.mask("text").clone())
        return self.model.encode(inputs, index)


class Headless:
    """A model without a class head (like a contrastive baseline): its output has no logits."""

    def __init__(self, model: HuseModel) -> None:
        self.model = model

    def encode(self, inputs: ModalityInputs, index: torch.Tensor) -> HuseOutput:
        out = self.model.encode(inputs, index)
        return HuseOutput(out.embeddings, {}, out.observed)


# ---------------------------------------------------------------------------------------- classification
def test_modality_accuracy_counts_observed_rows_and_fusion_averages_observed_probabilities(hand) -> None:
    out, labels = hand
    s = classification_scores(out, labels)
    assert s["classifier"] == "head"
    assert s["acc_text"] == pytest.approx(100 * 2 / 3)  # rows 0-2 predict 0, 1, 1; row 3 (unobserved) ignored
    assert s["acc_tabular"] == pytest.approx(75.0)  # 0, 0, 1, 0
    # fusion: [.75 .25] -> 0, [.45 .55] -> 1, [.375 .625] -> 1, row 3 tabular only [.6 .4] -> 0 (wrong; with
    # its unobserved text [.01 .99] it would be right)
    assert s["acc_fusion"] == pytest.approx(50.0)
    expected_f1 = 100 * f1_score([0, 0, 1, 1], [0, 1, 1, 0], average="macro")
    assert s["macro_f1_fusion"] == pytest.approx(expected_f1) and expected_f1 == pytest.approx(50.0)


def test_a_modality_observed_nowhere_has_nan_accuracy_and_labels_are_checked(hand) -> None:
    out, labels = hand
    none = dataclasses.replace(out, observed={**out.observed, "text": torch.zeros(4, dtype=torch.bool)})
    s = classification_scores(none, labels)
    assert math.isnan(s["acc_text"]) and s["acc_fusion"] == pytest.approx(75.0)  # fusion = tabular alone
    with pytest.raises(ValueError, match="labels"):
        classification_scores(out, labels[:3])


def test_knn_fallback_kicks_in_without_logits(hand) -> None:
    out, labels = hand
    headless = HuseOutput(out.embeddings, {}, out.observed)
    with pytest.raises(ValueError, match="knn_reference"):
        classification_scores(headless, labels)
    # reference: class 0 around 0-30 degrees, class 1 around 80-120; every modality, every row observed
    ref_emb = _unit(0, 15, 30, 80, 100, 120)
    ref = HuseOutput({"text": ref_emb, "tabular": ref_emb}, {},
                     {"text": torch.ones(6, dtype=torch.bool), "tabular": torch.ones(6, dtype=torch.bool)})
    ref_labels = torch.tensor([0, 0, 0, 1, 1, 1])
    s = classification_scores(headless, labels, knn_reference=(ref, ref_labels), k=3)
    assert s["classifier"] == "knn"
    # text rows 0-2 (0, 60, 90 degrees): 3-NN votes 0, 0 (15, 30 vs 80), 1; row 3 is not observed
    assert s["acc_text"] == pytest.approx(100 * 2 / 3)
    direct = classification_metrics(ref_emb, ref_labels, out.embeddings["tabular"], labels, k=3)
    assert s["acc_tabular"] == pytest.approx(100 * direct["accuracy"])
    fused = classification_metrics(ref_emb, ref_labels, HuseModel.fused(out), labels, k=3)
    assert s["acc_fusion"] == pytest.approx(100 * fused["accuracy"])
    assert s["macro_f1_fusion"] == pytest.approx(100 * fused["macro_f1"])
    # with logits, k-NN is used only when asked for
    forced = classification_scores(out, labels, knn_reference=(ref, ref_labels), classifier="knn", k=3)
    assert forced["classifier"] == "knn" and forced["acc_text"] == s["acc_text"]


# --------------------------------------------------------------------------------------------- retrieval
def test_retrieval_matrix_keeps_the_paired_item_across_modalities_and_excludes_self_within(hand) -> None:
    out, labels = hand
    m = retrieval_matrix(out, labels).set_index(["query", "database"])
    assert list(m.index) == [("text", "text"), ("text", "tabular"), ("tabular", "text"),
                             ("tabular", "tabular"), ("fused", "fused")]  # fmt: skip
    assert list(m.columns) == ["r@1", "r@5", "r@10", "map_at_r", "n_queries"]
    # text -> tabular: queries text rows 0-2 (0, 60, 90 deg), database all tabular rows (10, 80, 95, 160).
    # q0: 10 (c0), 80 (c0): AP 1. q1: 80 (c0), 95 (c1): AP 1/2. q2: its own item 95 (c1), 80 (c0): AP 1/2, and
    # R@1 = 1 only because its paired item stays in the database.
    row = m.loc[("text", "tabular")]
    assert row["n_queries"] == 3 and row["r@1"] == pytest.approx(100.0)
    assert row["map_at_r"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)
    # tabular -> text: database text rows 0-2 only (0, 60, 90). q0: AP 1; q1 (80): 90 (c1), 60 (c0): AP 1/4;
    # q2 (95) and q3 (160): 90 (c1) first, R = 1: AP 1.
    row = m.loc[("tabular", "text")]
    assert row["n_queries"] == 4 and row["r@1"] == pytest.approx(75.0)
    assert row["map_at_r"] == pytest.approx(100 * (1 + 0.25 + 1 + 1) / 4)
    # text -> text: rows 0-2, self excluded. q0 (0): 60 (c0) first: AP 1. q1 (60): 90 (c1) before 0 (c0):
    # AP 0.
    # q2 (class 1) has no other observed text of its class: not a query.
    row = m.loc[("text", "text")]
    assert row["n_queries"] == 2 and row["r@1"] == pytest.approx(50.0) and row["r@5"] == pytest.approx(100.0)
    assert row["map_at_r"] == pytest.approx(50.0)
    fused = HuseModel.fused(out)
    direct = cross_retrieval_metrics(fused, labels, fused, labels, same_rows=True)
    assert m.loc[("fused", "fused"), "map_at_r"] == pytest.approx(100 * direct["map_at_r"])


def test_a_modality_observed_nowhere_leaves_the_matrix(hand) -> None:
    out, labels = hand
    none = dataclasses.replace(out, observed={**out.observed, "text": torch.zeros(4, dtype=torch.bool)})
    m = retrieval_matrix(none, labels, ks=(1,))
    assert list(zip(m["query"], m["database"])) == [("tabular", "tabular"), ("fused", "fused")]
    assert list(m.columns) == ["query", "database", "r@1", "map_at_r", "n_queries"]


# ------------------------------------------------------------------------------------------- hierarchy
def test_hp_at_k_matches_hierarchical_precision() -> None:
    h = ClassHierarchy.from_table(TABLE)
    g = torch.Generator().manual_seed(0)
    emb = {m: torch.nn.functional.normalize(torch.randn(30, 3, generator=g), dim=1) for m in ("a", "b")}
    observed = {"a": torch.rand(30, generator=g) > 0.3, "b": torch.ones(30, dtype=torch.bool)}
    out, labels = HuseOutput(emb, {}, observed), torch.randint(0, 4, (30,), generator=g)
    s = hierarchical_scores(out, labels, h, ks=(1, 2, 3))
    fused = HuseModel.fused(out)
    direct = hierarchical_precision(fused, labels, fused, labels, h, (1, 2, 3), exclude_self=True)
    assert s == pytest.approx({k: 100 * v for k, v in direct.items()})
    assert set(s) == {"hp_at_1", "hp_at_2", "hp_at_3"}


# --------------------------------------------------------------------------------------- missing text
def test_missing_text_curve_starts_at_the_clean_scores_and_removes_nested_sets(toy) -> None:
    model, inputs, labels, _, test = toy
    spy = Spy(model)
    fractions = (0.0, 0.25, 0.5, 1.0)
    curve = missing_text_curve(spy, inputs, labels, test, fractions, seed=3)
    clean = model.encode(inputs, test)
    fused_row = retrieval_matrix(clean, labels[test]).iloc[-1]
    assert curve.loc[0, "map_at_r"] == pytest.approx(fused_row["map_at_r"])
    assert curve.loc[0, "accuracy"] == pytest.approx(classification_scores(clean, labels[test])["acc_fusion"])
    assert curve.loc[0, "n_queries"] == fused_row["n_queries"]
    # the first call encodes the clean database, then one call per fraction
    assert len(spy.masks) == 1 + len(fractions) and torch.equal(spy.masks[0], inputs.mask("text"))
    removed = [set(torch.nonzero(inputs.mask("text") & ~mask).squeeze(1).tolist()) for mask in spy.masks[1:]]
    with_text = set(test[inputs.mask("text")[test]].tolist())
    assert removed[0] == set() and removed[-1] == with_text  # all of the query rows' texts at fraction 1
    assert all(a <= b for a, b in zip(removed, removed[1:], strict=False))  # nested
    assert [len(r) for r in removed] == [round(p * len(with_text)) for p in fractions]
    assert curve["n_removed"].tolist() == [len(r) for r in removed]
    order = text_removal_order(inputs, test, seed=3)
    assert removed[1] == set(order[: len(removed[1])].tolist())
    with pytest.raises(ValueError, match="fractions"):
        missing_text_curve(model, inputs, labels, test, (0.0, 1.5))


# ------------------------------------------------------------------------------------------- one run
def test_evaluate_huse_end_to_end_is_json_serialisable(toy) -> None:
    model, inputs, labels, train, test = toy
    h = ClassHierarchy.from_table(TABLE)
    result = evaluate_huse(model, inputs, labels, test, h)
    back = json.loads(json.dumps(result))
    assert back["classifier"] == "head" and back["n_test"] == 60
    assert len(back["retrieval"]) == 3 * 3 + 1
    assert set(back["retrieval"][0]) == {"query", "database", "r@1", "r@5", "r@10", "map_at_r", "n_queries"}
    for key in ("acc_text", "acc_tabular", "acc_graph", "acc_fusion", "macro_f1_fusion", "hp_at_2", "hp_at_5",
                "hp_at_10", "map_at_r_fused_to_fused", "r@1_text_to_tabular"):  # fmt: skip
        assert 0.0 <= back[key] <= 100.0, key
    out = model.encode(inputs, test)
    assert back["hp_at_5"] == pytest.approx(hierarchical_scores(out, labels[test], h)["hp_at_5"])
    assert back["acc_fusion"] == pytest.approx(classification_scores(out, labels[test])["acc_fusion"])

    with pytest.raises(ValueError, match="train_idx"):
        evaluate_huse(Headless(model), inputs, labels, test, h)
    knn = evaluate_huse(Headless(model), inputs, labels, test, h, train_idx=train)
    json.dumps(knn)
    assert knn["classifier"] == "knn" and knn["hp_at_2"] == pytest.approx(result["hp_at_2"])
    train_fused = HuseModel.fused(model.encode(inputs, train))
    direct = classification_metrics(train_fused, labels[train], HuseModel.fused(out), labels[test], k=10)
    assert knn["acc_fusion"] == pytest.approx(100 * direct["accuracy"])
