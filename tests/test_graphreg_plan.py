"""Tests of notebook 07's plan, tables and numbers (mmsheaf.graphreg.plan, .tables, .numbers, .unsupervised)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from mmsheaf.graphreg import protocol
from mmsheaf.graphreg.numbers import CORA_GAIN_TARGET, best_row, graphreg_numbers
from mmsheaf.graphreg.plan import MLP_ROW, GraphRegPlan
from mmsheaf.graphreg.tables import TABLE_COLUMNS, accuracy_tex, result_rows, retrieval_rows
from mmsheaf.graphreg.unsupervised import knn_accuracy
from mmsheaf.runs.cache import RunCache
from test_graphreg import planted

ROWS = {
    "graph, L2": {"kind": "graph", "distance": "sq_l2"},
    "sheaf, diag": {"kind": "sheaf", "sheaf": "diag"},
}


@pytest.fixture
def toy_task(monkeypatch):
    data = planted(n=40, homophilic=False)
    monkeypatch.setitem(protocol.TASKS, "node", protocol.Task(
        lambda dataset, split, options: (data, data.train_mask, data.val_mask, data.test_mask),
        lambda dataset, options: dict(options)))  # fmt: skip
    return data


def plan(**kw) -> GraphRegPlan:
    args = {
        "task": "node",
        "datasets": ["ring"],
        "rows": ROWS,
        "alphas": [0.1, 1.0],
        "splits": [0, 1, 2],
        "select_splits": 2,
        "mlp": {"hidden_channels": 8},
        "train": {"epochs": 4, "patience": 4},
    } | kw
    return GraphRegPlan(**args)


def test_plan_validates() -> None:
    with pytest.raises(ValueError, match="select_splits"):
        plan(select_splits=4)
    with pytest.raises(ValueError, match="alpha"):
        plan(alphas=[0.0])
    with pytest.raises(ValueError, match="per_class"):
        plan(per_class=[10])
    with pytest.raises(ValueError, match="a row is a penalty"):
        plan(rows={"x": {"kind": "none"}})
    with pytest.raises(ValueError, match="unknown distance"):
        plan(rows={"x": {"kind": "graph", "distance": "emd"}})
    semi = GraphRegPlan("semi", ["mnist5k"], ROWS, [1.0], [0], 1, per_class=[10, 50])
    assert [s.name for s in semi.settings()] == ["mnist5k-10", "mnist5k-50"]
    assert semi.settings()[1].options == {"per_class": 50}


def test_alpha_is_chosen_on_validation_and_final_runs_reuse_the_selection(toy_task, tmp_path) -> None:
    p, cache = plan(), RunCache(tmp_path / "graphreg_runs")
    selection = p.run_selection(cache, progress=False)
    assert len(selection) == 2 * 2 * 2 and set(selection.split) == {0, 1}
    chosen = p.choose(selection)
    assert len(chosen) == 2 and set(chosen.alpha) <= {0.1, 1.0}
    means = selection.groupby(["row", "chosen_alpha"]).val_acc.mean()
    for r in chosen.itertuples():  # the best mean validation accuracy, ties to the smaller alpha
        assert r.val_acc == means[r.row].max()
        assert r.alpha == min(a for a, v in means[r.row].items() if v == means[r.row].max())
    final = p.run_final(chosen, cache, progress=False)
    assert len(final) == 3 * 3 and final[final.row == MLP_ROW].regulariser.eq("none").all()
    reused = final[(final.row != MLP_ROW) & (final.split < 2)]
    assert reused.cached.all() and not final[(final.row != MLP_ROW) & (final.split == 2)].cached.any()
    rows = result_rows(final)
    assert list(rows.columns[: len(TABLE_COLUMNS)]) == list(TABLE_COLUMNS) and len(rows) == 3
    mlp = rows[rows.row == MLP_ROW].iloc[0]
    assert mlp["mean"] == pytest.approx(100 * final[final.row == MLP_ROW].test_acc.mean())
    assert set(rows.regulariser) == {"none", "graph", "sheaf-diag"}
    tex = accuracy_tex(rows, ["ring"], [MLP_ROW, *ROWS])
    assert len(tex) == 3 and "textbf" in "".join(str(v) for v in tex["ring"])
    with pytest.raises(ValueError, match="no alpha chosen"):
        p.final_jobs(chosen.iloc[:1])


def test_retrieval_rows_score_the_best_epoch_embedding(toy_task, tmp_path) -> None:
    p, cache = plan(splits=[0, 1], select_splits=1), RunCache(tmp_path / "graphreg_runs")
    chosen = p.choose(p.run_selection(cache, progress=False))
    records = p.run_retrieval(chosen, "ring", rows=[MLP_ROW, "graph, L2"], cache=cache, progress=False)
    assert set(records.row) == {MLP_ROW, "graph, L2"} and records.split.nunique() == 2
    assert {"sq_l2", "cosine", "mahalanobis_pooled", "hist_intersection"} <= set(records.distance)
    assert records.map_at_r.between(0, 1).all()
    final = p.run_final(chosen, cache, progress=False)
    table = retrieval_rows(records, final)
    assert set(table.metric) == {"map_at_r", "p_at_1"} and set(table.regulariser) == {"none", "graph/sq_l2"}
    assert (table.n == 2).all() and len(records.attrs["keys"]) == 4


def frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["dataset", "model", "regulariser", "distance", "mean", "std", "val_acc", "infer_ms"]
    return pd.DataFrame(rows, columns=cols).assign(metric="test_acc")


def test_numbers_choose_rows_on_validation_and_quote_the_target() -> None:
    rows = frame([("cora", "mlp", "none", "", 70.0, 1.0, 71.0, 0.005),
                  ("cora", "mlp", "graph", "sq_l2", 73.0, 1.5, 74.0, 0.005),
                  ("cora", "mlp", "graph", "l1", 75.0, 1.0, 72.0, 0.005),  # best test, worse validation
                  ("cora", "gcn", "", "", 80.0, 1.0, float("nan"), 0.007),
                  ("cora", "diag-nsd", "", "", 85.0, 1.0, float("nan"), 0.03),
                  ("texas", "mlp", "none", "", 80.0, 5.0, 80.0, 0.002),
                  ("texas", "mlp", "graph", "sq_l2", 78.0, 4.0, 79.0, 0.002),
                  ("texas", "mlp", "sheaf-diag", "sq_l2", 81.0, 6.0, 81.0, 0.002)])  # fmt: skip
    assert best_row(rows, "cora", "graph").distance == "sq_l2"
    out = graphreg_numbers(rows, splits=10, alphas=4)
    assert out["GraphRegCoraGain"] == "3.0" and out["GraphRegCoraGraphName"] == "graph, sq l2"
    assert out["GraphRegCoraTargetMet"] == ("yes" if 3.0 >= CORA_GAIN_TARGET else "no")
    assert out["GraphRegCoraRecovered"] == "30" and out["GraphRegCoraInferNsd"] == "30.00"
    assert out["GraphRegTexasSheafMinusPlain"] == "3.0" and out["GraphRegTexasSpread"] == "6.0"
    assert out["GraphRegTexasPlainMinusMlp"] == "-2.0"
    assert (out["GraphRegSheafWins"], out["GraphRegHeterophilic"]) == (1, 1)
    worse = rows.assign(mean=rows["mean"].where(rows.regulariser != "graph", 71.0))
    assert graphreg_numbers(worse, splits=10, alphas=4)["GraphRegCoraTargetMet"] == "no"


def test_knn_accuracy_of_separated_clusters() -> None:
    emb = torch.tensor([[0.0], [0.1], [5.0], [5.1], [0.05], [5.05]])
    y = torch.tensor([0, 0, 1, 1, 0, 1])
    labelled = torch.tensor([True, True, True, True, False, False])
    assert knn_accuracy(emb, y, labelled, ~labelled, k=1) == 1.0
    swapped = torch.where(labelled, 1 - y, y)  # the labelled rows' labels swapped: every vote is wrong
    assert knn_accuracy(emb, swapped, labelled, ~labelled, k=1) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        knn_accuracy(emb, y, labelled & False, ~labelled)


def test_every_macro_is_defined_even_without_results() -> None:
    from mmsheaf.graphreg.numbers import MACROS

    out = graphreg_numbers(frame([]), splits=2, alphas=2)
    assert set(MACROS) <= set(out) and out["GraphRegCoraGain"] == "--"
    assert all(k.startswith("GraphReg") for k in out)


def test_review_rows_keep_the_variants_and_their_retrieval() -> None:
    from mmsheaf.graphreg.tables import review_rows

    rec = [
        {"distance": "cosine", "map_at_r": 0.5, "p_at_1": 0.8},
        {"distance": "l1", "map_at_r": 0.4, "p_at_1": 0.7},
    ]
    runs = pd.DataFrame({"variant": ["no-graph", "no-graph", "graph-reg", "graph-tower"], "alpha": [0, 0, 1.0, 0],
                         "distance": ["", "", "sq_l2", ""], "test_map_at_r": [0.5, 0.7, 0.6, 0.9],
                         "test_p_at_1": [0.8, 0.8, 0.8, 0.9], "test_accuracy": [0.7, 0.7, 0.7, 0.9],
                         "infer_ms": [0.02] * 4, "retrieval": [rec] * 4})  # fmt: skip
    rows = review_rows(runs)
    main = rows[rows.task == "reviews"].set_index(["row", "metric"])
    assert main.loc[("no-graph", "map_at_r"), "mean"] == pytest.approx(60.0)
    assert (
        main.loc[("no-graph", "map_at_r"), "std"] == pytest.approx(10.0)
        and main.loc[("no-graph", "map_at_r"), "n"] == 2
    )
    assert main.loc[("graph-reg", "knn_acc"), "regulariser"] == "graph"
    retrieval = rows[rows.task == "retrieval"]
    assert set(retrieval.regulariser) == {"none", "graph/sq_l2"} and set(retrieval.distance) == {
        "cosine",
        "l1",
    }


def test_protocol_macros_are_checked_and_settings_printed_as_given() -> None:
    out = graphreg_numbers(
        frame([]), splits=2, alphas=2, protocol={"GraphRegDropout": 0.5, "GraphRegHidden": 64}
    )
    assert (out["GraphRegDropout"], out["GraphRegHidden"]) == ("0.5", 64)
    with pytest.raises(ValueError, match="unknown protocol macro"):
        graphreg_numbers(frame([]), splits=2, alphas=2, protocol={"GraphRegWidth": 64})
