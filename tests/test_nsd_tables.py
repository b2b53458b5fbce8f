"""Tests of the node-classification study's tables (mmsheaf.nsd.tables) on small hand-made frames."""

from __future__ import annotations

import pandas as pd
import pytest

from mmsheaf.nsd.tables import accuracy_display, curve_ends, paper_checks, rows_against_paper, selection_display


def test_curve_ends_quotes_the_ends_and_extremes_of_each_curve() -> None:
    # two curves given out of order; curve b ties its best at 4 and 8 layers (the smaller depth is quoted)
    summary = pd.DataFrame({
        "dataset": ["a", "a", "a", "b", "b", "b"], "model": ["gcn"] * 6, "layers": [8, 2, 4, 4, 8, 2],
        "test_mean": [10.0, 30.0, 20.0, 50.0, 50.0, 5.0],
    })  # fmt: skip
    ends = curve_ends(summary, x="layers", by=("dataset", "model")).set_index("dataset")
    assert ends.loc["a", ["first_x", "first", "last_x", "last"]].tolist() == [2, 30.0, 8, 10.0]
    assert ends.loc["a", ["worst_x", "worst", "best_x", "best"]].tolist() == [8, 10.0, 2, 30.0]
    assert ends.loc["b", ["first", "last", "worst_x", "best_x", "best"]].tolist() == [5.0, 50.0, 2, 4, 50.0]
    one = curve_ends(summary[summary.dataset == "b"], x="layers", by=["model"])
    assert list(one.columns[:1]) == ["model"] and one["best_x"].item() == 4
    with pytest.raises(ValueError, match="lacks the columns"):
        curve_ends(summary, x="homophily", by=["model"])


def test_rows_against_paper_compares_each_sheaf_row_with_its_published_number() -> None:
    table = pd.DataFrame({
        "dataset": ["texas", "texas", "texas", "cornell"], "model": ["diag-nsd", "gen-nsd", "gcn", "diag-nsd"],
        "mean": [85.0, 80.0, 60.0, 70.0], "std": [5.0, 5.0, 5.0, 5.0], "n_splits": [10] * 4,
        "paper_mean": [85.95, 82.97, 55.14, None], "paper_std": [5.51, 2.41, 5.16, None],
    })  # fmt: skip
    rows = rows_against_paper(table)
    # the GCN row is no sheaf row, and cornell has no published number
    assert rows[["dataset", "model"]].values.tolist() == [["texas", "diag-nsd"], ["texas", "gen-nsd"]]
    assert rows.within.tolist() == [True, False]  # 85.0 >= 85.95 - 5.51; 80.0 < 82.97 - 2.41
    assert rows.gap.round(2).tolist() == [-0.95, -2.97]
    assert rows_against_paper(table, models=["gcn"]).within.tolist() == [True]


def test_accuracy_display_bolds_our_best_and_italicises_the_paper() -> None:
    table = pd.DataFrame({
        "dataset": ["texas", "texas", "cornell"], "model": ["diag-nsd", "gcn", "gcn"], "mean": [66.46, 60.0, 50.0],
        "std": [1.73, 2.0, 3.0], "n_splits": [10] * 3, "paper_mean": [85.67, 55.14, None],
        "paper_std": [6.95, 5.16, None],
    })  # fmt: skip
    shown = accuracy_display(table, ["texas", "cornell", "cora"], ["diag-nsd", "gcn"], {"diag-nsd": "D", "gcn": "G"})
    assert shown.values.tolist() == [
        ["Texas", r"\textbf{66.5$\pm$1.7}", r"60.0$\pm$2.0"],
        [r"\quad\textit{paper}", r"\textit{85.7$\pm$7.0}", r"\textit{55.1$\pm$5.2}"],
        ["Cornell", "--", r"\textbf{50.0$\pm$3.0}"],  # cora has no rows: no line
        [r"\quad\textit{paper}", "--", "--"],
    ]


def test_paper_checks_and_selection_display() -> None:
    table = pd.DataFrame({"dataset": ["texas", "texas", "cora", "cornell"], "model": ["diag-nsd", "gcn", "gcn", "diag-nsd"],
                          "mean": [84.0, 90.0, 86.0, 70.0]})  # fmt: skip
    checks = paper_checks(table, ["cornell", "cora", "texas"])
    # the paper's best sheaf type: O(d) on texas (85.95 ± 5.51); cora has no sheaf row of ours, cornell no number
    assert checks.values.tolist() == [["texas", 84.0, 85.95, 5.51, True]]
    selection = pd.DataFrame({"dataset": ["film", "film"], "candidate": [0, 1], "changes": ["{}", "{}"],
                              "label": ["base", "layers=4"], "val_mean": [50.0, 51.0], "val_std": [1.0, 2.0],
                              "n_splits": [3, 3], "chosen": [False, True]})  # fmt: skip
    assert selection_display(selection).values.tolist() == [["film", "base", 50.0, 1.0, ""],
                                                            ["film", "layers=4", 51.0, 2.0, "yes"]]  # fmt: skip
