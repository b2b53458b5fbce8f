"""Tests of the numbers the paper quotes from the metric-learning study (mmsheaf.metric.numbers) and of the
tables they are read from (mmsheaf.metric.tables)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmsheaf.metric import numbers as metric_numbers
from mmsheaf.metric import tables
from mmsheaf.metric.numbers import paper_numbers
from mmsheaf.report import Latex

REFERENCES = {"item": {"text": {"map_at_r": 0.023}}, "category": {"text": {"map_at_r": 0.473}}}


def summary() -> pd.DataFrame:
    """T1: CosFace wins by 0.1 point over SupCon, within the spread; T2: ArcFace by 2 points, beyond it."""
    rows = [("item", "arcface", 7.0, 0.1, 10.0), ("item", "cosface", 7.2, 0.2, 12.4),
            ("item", "supcon", 7.1, 0.05, 14.0), ("item", "multisimilarity", 6.0, 0.0, 14.0),
            ("category", "arcface", 87.2, 0.3, 54.0), ("category", "supcon", 85.2, 0.5, 77.0)]  # fmt: skip
    return pd.DataFrame([{"task": t, "loss": n, "map_at_r": m, "std_map_at_r": s, "train_seconds": sec, "n_seeds": 5}
                         for t, n, m, s, sec in rows])  # fmt: skip


def ablation_runs() -> pd.DataFrame:
    rows = [("item", "text", 0, 0.062), ("item", "tabular", 0, 0.01), ("item", "text + tabular", 0, 0.07),
            ("item", "text + tabular", 1, 0.08), ("category", "graph", 0, 0.5)]  # fmt: skip
    return pd.DataFrame([{"task": t, "loss": "cosface", "modalities": m, "seed": s, "seconds": 1.0,
                          "test_map_at_r": v, "test_p_at_1": v, "test_nmi": v} for t, m, s, v in rows])  # fmt: skip


def robustness() -> pd.DataFrame:
    """T1 MAP@R (in %) with 0 and 50 % of the test rows' text removed, with and without modality dropout."""
    rows = [(tables.NO_DROPOUT, "arcface", 0.0, 10.0), (tables.NO_DROPOUT, "arcface", 0.5, 8.73),
            (tables.NO_DROPOUT, "supcon", 0.0, 10.0), (tables.NO_DROPOUT, "supcon", 0.5, 8.7),
            ("modality dropout 0.3", "arcface", 0.0, 10.0), ("modality dropout 0.3", "arcface", 0.5, 8.9),
            ("modality dropout 0.3", "supcon", 0.0, 10.0), ("modality dropout 0.3", "supcon", 0.5, 8.97)]  # fmt: skip
    frame = pd.DataFrame([{"task": "item", "loss": n, "seed": 0, "condition": "text_removed", "level": lvl,
                           "map_at_r": v, "dropout": d} for d, n, lvl, v in rows])  # fmt: skip
    extra = pd.DataFrame([{"task": "item", "loss": "arcface", "seed": s, "condition": c, "level": 0.1,
                           "map_at_r": v, "dropout": tables.NO_DROPOUT}
                          for s, c, v in ((0, "text_present", 9.0), (1, "text_present", 10.0),
                                          (0, "text_really_missing", 4.0))])  # fmt: skip
    return pd.concat([frame, extra], ignore_index=True)


def data_efficiency() -> pd.DataFrame:
    rows = [(0.1, "arcface", 0.046), (0.1, "cosface", 0.04), (0.1, "supcon", 0.051),
            (1.0, "arcface", 0.074), (1.0, "supcon", 0.074), (0.5, "supcon", 0.06)]  # fmt: skip
    return pd.DataFrame([{"fraction": f, "loss": n, "test_map_at_r": v} for f, n, v in rows])


def numbers() -> dict[str, Latex]:
    ablation, _ = tables.ablation_table(ablation_runs())
    return paper_numbers(tables.verdicts(summary(), REFERENCES), ablation, tables.text_cost(robustness()),
                         tables.family_by_fraction(data_efficiency()), tables.family_seconds(summary()),
                         num_seeds=5, trials=6, epochs=12)  # fmt: skip


def test_paper_numbers_closed_form() -> None:
    assert numbers() == {
        "MetricNumSeeds": "5",
        "MetricTrials": "6",
        "MetricEpochs": "12",
        "MetricWinnerOne": "CosFace",
        "MetricWinnerMapOne": "7.2",
        "MetricRunnerUpOne": "SupCon",
        "MetricGapOne": "0.1",
        "MetricBeyondSpreadOne": "less",  # 7.2 - 0.2 < 7.1 + 0.05
        "MetricBestAngularOne": "CosFace",
        "MetricBestAngularMapOne": "7.2",
        "MetricBestContrastiveOne": "SupCon",
        "MetricBestContrastiveMapOne": "7.1",
        "MetricFamilyGapOne": "0.1",
        "MetricFamilyBeyondSpreadOne": "less",  # 0.1 < 0.2 + 0.05
        "MetricTextRefOne": "2.3",
        "MetricGainOverTextOne": "213",  # 100 (7.2 / 2.3 - 1) = 213.04
        "MetricWinnerTwo": "ArcFace",
        "MetricWinnerMapTwo": "87.2",
        "MetricRunnerUpTwo": "SupCon",
        "MetricGapTwo": "2.0",
        "MetricBeyondSpreadTwo": "more",  # 87.2 - 0.3 > 85.2 + 0.5
        "MetricBestAngularTwo": "ArcFace",
        "MetricBestAngularMapTwo": "87.2",
        "MetricBestContrastiveTwo": "SupCon",
        "MetricBestContrastiveMapTwo": "85.2",
        "MetricFamilyGapTwo": "2.0",
        "MetricFamilyBeyondSpreadTwo": "more",
        "MetricTextRefTwo": "47.3",
        "MetricGainOverTextTwo": "84",  # 100 (87.2 / 47.3 - 1) = 84.36
        "MetricBestSingleModality": "6.2",  # T1's text alone
        "MetricTextRatioOne": "3.13",  # 7.2 / 2.3
        "MetricBeatsSingle": "beats",
        "MetricTextCostNoDrop": "12.7",  # ArcFace loses 1.27 of 10, SupCon 1.3
        "MetricTextCostDrop": "10.3",
        "MetricTextCostDropLoss": "SupCon",
        "MetricSmallFraction": "10",
        "MetricSmallAngular": "4.6",
        "MetricSmallContrastive": "5.1",
        "MetricFullAngular": "7.4",
        "MetricFullContrastive": "7.4",
        "MetricSmallWinnerFamily": "contrastive",
        "MetricSecondsAngularOne": "11",  # (10 + 12.4) / 2 = 11.2
        "MetricSecondsContrastiveOne": "14",
        "MetricSecondsAngularTwo": "54",
        "MetricSecondsContrastiveTwo": "77",
    }
    assert all(isinstance(v, Latex) for v in numbers().values())


def test_paper_numbers_without_t2_or_ablation() -> None:
    one = summary()[lambda d: d.task == "item"]
    no_ablation = pd.DataFrame(columns=["task", "n_modalities", "map_at_r"])
    out = paper_numbers(tables.verdicts(one, REFERENCES), no_ablation, tables.text_cost(robustness()),
                        tables.family_by_fraction(data_efficiency()), tables.family_seconds(one),
                        num_seeds=1, trials=1, epochs=1)  # fmt: skip
    assert not [k for k in out if k.endswith("Two")]
    assert (out["MetricBestSingleModality"], out["MetricBeatsSingle"]) == ("--", "does not beat")


def test_paper_numbers_reject_frames_without_both_families() -> None:
    seconds = tables.family_seconds(summary()).drop(columns="contrastive")
    with pytest.raises(ValueError, match="seconds"):
        paper_numbers(tables.verdicts(summary(), REFERENCES), tables.ablation_table(ablation_runs())[0],
                      tables.text_cost(robustness()), tables.family_by_fraction(data_efficiency()), seconds,
                      num_seeds=1, trials=1, epochs=1)  # fmt: skip


def test_every_macro_name_is_a_literal_of_the_module() -> None:
    source = Path(metric_numbers.__file__).read_text()
    assert set(numbers()) == set(re.findall(r'"(Metric[A-Za-z]+)"', source))


# ------------------------------------------------------------------------------------------------ tables
def test_verdicts() -> None:
    v = tables.verdicts(summary(), REFERENCES).set_index("task")
    assert list(v.index) == ["item", "category"]
    assert (v.loc["item", "winner"], v.loc["item", "runner_up"]) == ("cosface", "supcon")
    assert v.loc["item", "gap"] == pytest.approx(0.1) and not v.loc["item", "beyond_spread"]
    assert v.loc["category", "family_beyond_spread"] and v.loc["category", "text_reference"] == pytest.approx(47.3)
    with pytest.raises(ValueError, match="each family"):
        tables.verdicts(summary()[lambda d: d.loss.isin(["arcface", "cosface"])], REFERENCES)


def test_results_table_and_its_latex() -> None:
    runs = pd.DataFrame([{"task": "item", "loss": n, "seed": s, "seconds": 12.0, "test_map_at_r": v,
                          "test_r_precision": v, "test_p_at_1": v, "test_nmi": v}
                         for n, s, v in (("arcface", 0, 0.1), ("arcface", 1, 0.2), ("supcon", 0, 0.3))])  # fmt: skip
    summary_ = tables.loss_summary(runs)
    refs = {"item": {"text": {"map_at_r": 0.02, "r_precision": 0.02, "p_at_1": 0.02, "nmi": 0.02, "ami": 0.5}}}
    table = tables.results_table(summary_, refs)
    assert list(table.columns) == [*tables.CSV_COLUMNS, "std_r_precision", "std_p_at_1", "std_nmi", "n_seeds"]
    assert list(table.loss) == ["arcface", "supcon", "reference: text"]
    tex = tables.results_tex(table)
    assert list(tex.columns) == ["Task", "Loss", "MAP@R", "R-Prec.", "P@1", "NMI", "Train s"]
    assert list(tex.Loss) == ["ArcFace", "SupCon", "ref.: text"]
    assert list(tex["MAP@R"]) == ["15.0 $\\pm$ 5.0", "\\textbf{30.0 $\\pm$ 0.0}", "2.0"]  # no spread: the mean
    assert list(tex["Train s"]) == ["12", "12", "0"]
    with pytest.raises(ValueError, match="nmi"):
        tables.results_table(summary_.drop(columns=["nmi", "std_nmi"]), {})


def test_ablation_table_sorts_and_shows_no_spread_for_one_seed() -> None:
    table, tex = tables.ablation_table(ablation_runs())
    assert list(zip(table.task, table.modalities)) == [("item", "tabular"), ("item", "text"),
                                                       ("item", "text + tabular"), ("category", "graph")]
    assert list(table.n_modalities) == [1, 1, 2, 1]
    assert list(tex.Task) == ["T1", "T1", "T1", "T2"] and set(tex.Loss) == {"CosFace"}
    assert list(tex["MAP@R"]) == ["1.0", "6.2", "7.5 $\\pm$ 0.5", "50.0"]


def test_text_cost_and_really_missing() -> None:
    cost = tables.text_cost(robustness())
    assert list(cost.columns) == ["no modality dropout", "with modality dropout"]
    assert np.allclose(cost.loc[["arcface", "supcon"]].to_numpy(), [[12.7, 11.0], [13.0, 10.3]])
    really, tex = tables.really_missing_table(robustness())
    assert really.loc[("item", "arcface", tables.NO_DROPOUT)].to_dict() == {"text_present": 9.5,
                                                                            "text_really_missing": 4.0}
    assert list(tex.columns) == ["Task", "Loss", "Training", "Text present", "Text really missing"]
    assert (tex.Task.iloc[0], tex.Loss.iloc[0]) == ("T1", "ArcFace")


def test_hparams_table() -> None:
    table, tex = tables.hparams_table({("item", "arcface"): {"scale": 64.0, "margin": 0.28571},
                                       ("category", "triplet"): {"margin": 0.1, "k": 3}})  # fmt: skip
    assert list(table.params) == ["margin=0.286, scale=64", "k=3, margin=0.1"]
    assert list(tex.columns) == ["Task", "Loss", "Tuned hyperparameters"]
    assert list(tex.Loss) == ["ArcFace", "Triplet (semi-hard)"] and list(tex.Task) == ["T1", "T2"]


def test_family_tables() -> None:
    by_family = tables.family_by_fraction(data_efficiency())
    assert list(by_family.index) == [0.1, 0.5, 1.0]
    assert by_family.loc[0.1].to_dict() == pytest.approx({"angular-margin": 4.6, "contrastive": 5.1})
    assert np.isnan(by_family.loc[0.5, "angular-margin"])
    seconds = tables.family_seconds(summary())
    assert seconds.loc["item"].to_dict() == pytest.approx({"angular-margin": 11.2, "contrastive": 14.0})
