"""Tests of the tables of the HUSE study (mmsheaf.huse.tables) on a hand-made runs frame: 2 seeds of every
row of the comparison, made-up numbers in % (seed 0 = mean - spread, seed 1 = mean + spread, so the
population std over the two seeds is the spread)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mmsheaf.huse import tables
from mmsheaf.huse.protocol import VARIANTS
from mmsheaf.report import booktabs

# {variant: {test key: mean or (mean, spread)}}; the fused baselines have no graph reading (no acc_graph)
ROWS: dict[str, dict[str, float | tuple[float, float]]] = {
    "huse": {"acc_text": 60.0, "acc_tabular": 50.0, "acc_graph": 45.0, "acc_fusion": (80.0, 1.0),
             "r@1_text_to_tabular": (40.0, 2.0), "r@1_tabular_to_text": (30.0, 2.0),
             "map_at_r_fused_to_fused": 55.0, "hp_at_2": (72.0, 1.0), "hp_at_5": (70.0, 1.0),
             "hp_at_10": 68.0},
    "huse-cls": {"acc_text": 59.0, "acc_tabular": 49.0, "acc_graph": 44.0, "acc_fusion": 78.0,
                 "r@1_text_to_tabular": 16.0, "r@1_tabular_to_text": 14.0, "map_at_r_fused_to_fused": 50.0,
                 "hp_at_2": 66.0, "hp_at_5": 65.0, "hp_at_10": 64.0},
    "huse-cls-gap": {"acc_text": 58.0, "acc_tabular": 48.0, "acc_graph": 43.0, "acc_fusion": 77.0,
                     "r@1_text_to_tabular": 32.0, "r@1_tabular_to_text": 28.0,
                     "map_at_r_fused_to_fused": 52.0,
                     "hp_at_2": 67.0, "hp_at_5": 66.0, "hp_at_10": 65.0},
    "huse-cls-graph": {"acc_text": 57.0, "acc_tabular": 47.0, "acc_graph": 46.0, "acc_fusion": 79.0,
                       "r@1_text_to_tabular": 17.0, "r@1_tabular_to_text": 15.0,
                       "map_at_r_fused_to_fused": 53.0,
                       "hp_at_2": 69.0, "hp_at_5": (68.0, 1.0), "hp_at_10": 67.0},
    "separate": {"acc_text": 56.0, "acc_tabular": 46.0, "acc_graph": 42.0, "acc_fusion": 76.0,
                 "r@1_text_to_tabular": 11.0, "r@1_tabular_to_text": 9.0, "map_at_r_fused_to_fused": 48.0,
                 "hp_at_2": 63.0, "hp_at_5": 62.0, "hp_at_10": 61.0},
    "arcface": {"acc_text": 58.0, "acc_tabular": 51.0, "acc_fusion": (81.5, 1.0),
                "r@1_text_to_tabular": 20.0, "r@1_tabular_to_text": 20.0, "map_at_r_fused_to_fused": 57.0,
                "hp_at_2": 61.0, "hp_at_5": (60.0, 0.5), "hp_at_10": 59.0},
    "supcon": {"acc_text": 57.5, "acc_tabular": 50.5, "acc_fusion": 79.0,
               "r@1_text_to_tabular": 18.0, "r@1_tabular_to_text": 18.0, "map_at_r_fused_to_fused": 56.0,
               "hp_at_2": 63.0, "hp_at_5": 62.0, "hp_at_10": 61.0},
}  # fmt: skip

MATRIX = {("text", "text"): 50.0, ("text", "tabular"): 38.0, ("tabular", "text"): 28.0,
          ("tabular", "tabular"): 44.0, ("fused", "fused"): 60.0}  # fmt: skip
"""HUSE's R@1 matrix of seed 0; seed 1 adds 4 to every cell (so the cross cells match ROWS)."""


def run(variant: str, seed: int, rows: dict | None = None) -> dict:
    values = (rows or ROWS)[variant]
    sign = 2 * seed - 1  # seed 0: mean - spread, seed 1: mean + spread
    out = {"variant": variant, "seed": seed, "seconds": 10.0 + seed, "best_epoch": 3, "epochs_run": 5,
           "val_map_at_r": 1.0, "test_n_test": 200, "test_classifier": "head",
           **{f"test_{k}": (v[0] + sign * v[1] if isinstance(v, tuple) else v)
              for k, v in values.items()}}  # fmt: skip
    out["retrieval"] = [{"query": q, "database": d, "r@1": v + 4 * seed, "r@5": 90.0, "r@10": 95.0,
                         "map_at_r": v / 2, "n_queries": 200} for (q, d), v in MATRIX.items()]  # fmt: skip
    out["robustness"] = ([{"fraction": f, "n_removed": int(100 * f), "map_at_r": 50.0 - 10 * f + seed,
                           "accuracy": 80.0 - 20 * f, "n_queries": 200} for f in (0.0, 0.5, 1.0)]
                         if variant in ("huse", "arcface") else None)  # fmt: skip
    return out


def make_runs(rows: dict | None = None, seeds: tuple[int, ...] = (0, 1)) -> pd.DataFrame:
    rows = rows or ROWS
    # the variants in reverse: the tables restore the table order
    return pd.DataFrame([run(v, s, rows) for s in seeds for v in reversed(list(rows))])


def test_comparison_table_has_the_csv_columns_in_table_order() -> None:
    table = tables.comparison_table(make_runs())
    assert list(table.columns) == ["model", "acc_text", "acc_tabular", "acc_graph", "acc_fusion",
                                   "r1_text_tabular", "r1_tabular_text", "map_at_r_fused", "hp_at_5",
                                   "std_acc_fusion", "std_r1_text_tabular"]  # fmt: skip
    assert list(table.model) == ["HUSE", "HUSE: L_cls only", "HUSE: L_cls + L_gap", "HUSE: L_cls + L_graph",
                                 "Separate models", "ArcFace (early fusion)",
                                 "SupCon (early fusion)"]  # fmt: skip
    huse = table.iloc[0]
    assert (huse.acc_fusion, huse.std_acc_fusion) == (80.0, 1.0)
    assert (huse.r1_text_tabular, huse.std_r1_text_tabular, huse.r1_tabular_text) == (40.0, 2.0, 30.0)
    assert (huse.map_at_r_fused, huse.hp_at_5, huse.acc_graph) == (55.0, 70.0, 45.0)
    assert table.acc_graph.iloc[5:].isna().all()  # the fused baselines have no graph reading
    assert table.std_acc_fusion.iloc[1] == 0.0


def test_summary_has_mean_std_of_every_test_number() -> None:
    s = tables.summary(make_runs()).set_index("variant")
    assert list(s.index) == list(VARIANTS)
    assert s.at["huse", "hp_at_2"] == 72.0 and s.at["huse", "std_hp_at_2"] == 1.0
    assert s.at["arcface", "std_hp_at_5"] == 0.5
    assert s.at["huse", "cross_r1"] == 35.0 and s.at["huse", "std_cross_r1"] == 2.0  # runs 33 and 37
    assert s.at["huse", "n_test"] == 200 and "classifier" not in s  # only numbers
    assert (s.at["huse", "train_seconds"], s.at["huse", "n_seeds"]) == (10.5, 2)
    assert math.isnan(s.at["supcon", "acc_graph"])


def test_summary_rejects_an_unknown_variant() -> None:
    runs = make_runs()
    runs.loc[0, "variant"] = "clip"
    with pytest.raises(ValueError, match="clip"):
        tables.summary(runs)


def test_comparison_latex_bolds_the_best_of_each_column() -> None:
    tex = tables.comparison_latex(make_runs())
    assert list(tex.columns) == ["Model", *tables.HEADS.values()]
    assert list(tex["Acc.\\ fusion"])[0] == "80.0 $\\pm$ 1.0"
    assert list(tex["Acc.\\ fusion"])[5] == "\\textbf{81.5 $\\pm$ 1.0}"  # ArcFace has the best fused accuracy
    assert list(tex["HP@5"])[0] == "\\textbf{70.0 $\\pm$ 1.0}"
    assert list(tex["Acc.\\ graph"])[3] == "\\textbf{46.0 $\\pm$ 0.0}"
    assert list(tex["Acc.\\ graph"])[5:] == ["--", "--"]
    assert sum("textbf" in c for c in tex["Acc.\\ text"]) == 1
    latex = booktabs(tex, escape=False)
    for label in ("HUSE & ", "HUSE: $\\mathcal{L}_{\\mathrm{cls}}$ only", "Separate models",
                  "HUSE: $\\mathcal{L}_{\\mathrm{cls}}$ + $\\mathcal{L}_{\\mathrm{graph}}$",
                  "ArcFace (early fusion)", "SupCon (early fusion)", "R@1 T$\\to$Tab"):  # fmt: skip
        assert label in latex
    assert latex.count("\\textbf") == 8


def test_one_seed_gives_the_mean_alone() -> None:
    tex = tables.comparison_latex(make_runs(seeds=(0,)))
    assert list(tex["Acc.\\ fusion"])[0] == "79.0"


def test_retrieval_frame_and_matrix_mean() -> None:
    runs = make_runs()
    runs.loc[runs.variant == "supcon", "retrieval"] = None
    frame = tables.retrieval_frame(runs)
    assert list(frame.columns) == ["variant", "seed", "query", "database", "r@1", "r@5", "r@10", "map_at_r",
                                   "n_queries"]  # fmt: skip
    assert len(frame) == 6 * 2 * len(MATRIX) and "supcon" not in set(frame.variant)
    matrix = tables.retrieval_matrix_mean(runs, "huse")
    assert list(matrix.index) == ["text", "tabular", "fused"]
    assert list(matrix.columns) == ["text", "tabular", "fused"]
    assert matrix.loc["text", "tabular"] == 40.0 and matrix.loc["tabular", "text"] == 30.0
    assert matrix.loc["fused", "fused"] == 62.0 and np.isnan(matrix.loc["fused", "text"])
    assert tables.retrieval_matrix_mean(runs, "huse", "map_at_r").loc["text", "text"] == 25.0
    with pytest.raises(ValueError, match="supcon"):
        tables.retrieval_matrix_mean(runs, "supcon")
    with pytest.raises(ValueError, match="r@50"):
        tables.retrieval_matrix_mean(runs, "huse", "r@50")


def test_hp_curve() -> None:
    curve = tables.hp_curve(make_runs())
    assert list(curve.columns) == ["variant", "k", "mean", "std"]
    assert len(curve) == 3 * len(VARIANTS)
    huse = curve[curve.variant == "huse"]
    assert list(huse.k) == [2, 5, 10]
    assert list(huse["mean"]) == [72.0, 70.0, 68.0] and list(huse["std"]) == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="hp_at"):
        tables.hp_curve(make_runs().drop(columns=["test_hp_at_2", "test_hp_at_5", "test_hp_at_10"]))


def test_robustness_frame() -> None:
    frame = tables.robustness_frame(make_runs())
    assert list(frame.columns) == ["variant", "seed", "fraction", "n_removed", "map_at_r", "accuracy",
                                   "n_queries"]  # fmt: skip
    assert set(frame.variant) == {"huse", "arcface"} and len(frame) == 2 * 2 * 3
    mean = frame[frame.variant == "huse"].groupby("fraction").map_at_r.mean()
    assert list(mean) == [50.5, 45.5, 40.5]
    runs = make_runs()
    runs["robustness"] = None
    assert tables.robustness_frame(runs).empty


def test_absent_variants_are_left_out() -> None:
    rows = {k: v for k, v in ROWS.items() if k not in ("huse-cls", "supcon")}
    table = tables.comparison_table(make_runs(rows))
    assert list(table.model) == ["HUSE", "HUSE: L_cls + L_gap", "HUSE: L_cls + L_graph", "Separate models",
                                 "ArcFace (early fusion)"]  # fmt: skip
    only_fused = {k: v for k, v in ROWS.items() if k in ("arcface", "supcon")}
    assert tables.comparison_table(make_runs(only_fused)).acc_graph.isna().all()  # no run has a graph reading
