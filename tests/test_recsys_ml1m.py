"""Tests of the MovieLens-1M cold-start study's plan, tables and numbers (mmsheaf.recsys.ml1m)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys.ml1m import (
    ColdStartStudy,
    coldstart_numbers,
    fraction_frame,
    protocol_table,
    speed_numbers,
)
from mmsheaf.recsys.protocol import FULL_VARIANT

TUNED = {"hparams": {"dim": 64, "layers": 2}, "train": {"lr": 0.005, "reg_weight": 1e-4, "epochs": 3}}


def study(**kw) -> ColdStartStudy:
    base = dict(protocols={"cold": ["content", "mm-sheaf"], "warm": ["lightgcn", "mm-sheaf"]}, seeds=[0, 1],
                hparams={"dim": 8}, trials=2, ablations={"no profiles": {"user_profiles": False}},
                fractions=[0.25, 1.0], fraction_models=["lightgcn", "mm-sheaf"],
                model_search={"lightgcn": {"layers": {"type": "int", "low": 1, "high": 2}}})  # fmt: skip
    return ColdStartStudy(**{**base, **kw})


def summary(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "recall@20": v + 0.01, "ndcg@20": v, "std_recall@20": s, "std_ndcg@20": s,
                          "n_seeds": 2} for m, (v, s) in rows.items()])  # fmt: skip


def test_each_protocol_is_a_plan_on_its_own_dataset_with_the_ablations_on_cold_only() -> None:
    s = study()
    cold, warm = s.plan("cold"), s.plan("warm")
    assert (cold.dataset, warm.dataset) == ("ml1m-cold", "ml1m-warm")
    assert cold.ablations and not warm.ablations
    assert "lightgcn" in warm.model_search and "lightgcn" not in cold.model_search
    with pytest.raises(ValueError, match="not 'hybrid'"):
        s.plan("hybrid")
    with pytest.raises(ValueError, match="unknown protocols"):
        study(protocols={"temporal": ["mf"]})
    with pytest.raises(ValueError, match="warm protocol"):
        study(fraction_models=["content"])


def test_fraction_specs_change_only_the_share_of_training_interactions() -> None:
    s = study()
    tuned = {m: TUNED for m in ("lightgcn", "mm-sheaf")}
    specs = s.fraction_specs(tuned)
    assert len(specs) == 2 * 2 * 2  # fractions x models x seeds
    assert [sp.data_options for sp in specs[:4]] == [{"train_fraction": 0.25}] * 4
    assert specs[-1].data_options == {}  # fraction 1: the main runs' own spec (the same cache key)
    main = s.plan("warm").specs(tuned, "mm-sheaf")
    assert specs[-1].key() == main[-1].key()


def test_protocol_table_has_the_issue_columns_and_bolds_each_protocols_best() -> None:
    sums = {"cold": summary({"content": (0.30, 0.01), "mm-sheaf": (0.32, 0.005)}),
            "warm": summary({"lightgcn": (0.40, 0.01), "mm-sheaf": (0.39, 0.01)})}  # fmt: skip
    tuned = {p: {m: TUNED for m in s.model} for p, s in sums.items()}
    table, tex = protocol_table(sums, tuned)
    assert list(table.columns) == ["protocol", "model", "recall@20", "ndcg@20", "std_ndcg@20", "params"]
    assert table.protocol.tolist() == ["cold", "cold", "warm", "warm"]
    assert table.params[0] == "dim=64, layers=2, lr=0.005, reg_weight=0.0001"
    bold = [r"\textbf" in str(c) for c in tex["NDCG@20"]]
    assert bold == [False, True, True, False]


def test_numbers_report_the_targets_honestly() -> None:
    sums = {"cold": summary({"content": (0.30, 0.004), "clcrec": (0.29, 0.004), "mm-sheaf": (0.32, 0.004)}),
            "warm": summary({"lightgcn": (0.40, 0.01), "mm-sheaf": (0.39, 0.01)})}  # fmt: skip
    n = coldstart_numbers({}, sums, None, None, coverage={"exact": 1, "normalised": 2, "title ±1 year": 3,
                          "none": 4, "with_plot": 5}, num_seeds=2, trials=3)  # fmt: skip
    assert (n["CsColdBest"], n["CsColdGain"], n["CsColdBeyondSpread"], n["CsColdTargetMet"]) == (
        "Content only", "6.7", "yes", "yes")  # fmt: skip
    assert (n["CsWarmGain"], n["CsWarmTargetMet"]) == ("-2.5", "no")
    assert n["CsJoined"] == "6" and n["CsUnjoined"] == "4"
    # a gain within the spread is not a win, however large the mean
    sums["cold"] = summary({"content": (0.30, 0.02), "mm-sheaf": (0.32, 0.02)})
    n = coldstart_numbers({}, sums, None, None, coverage={"none": 0, "with_plot": 0}, num_seeds=2, trials=3)
    assert (n["CsColdBeyondSpread"], n["CsColdTargetMet"]) == ("no", "no")
    with pytest.raises(ValueError, match="needs 'mm-sheaf'"):
        coldstart_numbers({}, {"cold": summary({"content": (0.3, 0.0)})}, None, None,
                          coverage={"none": 0, "with_plot": 0}, num_seeds=1, trials=1)  # fmt: skip


def test_data_numbers_and_the_fraction_curve() -> None:
    d = InteractionData("ml1m-cold", 3, 4, torch.tensor([[0, 1], [0, 1]]), torch.tensor([[0], [2]]),
                        torch.tensor([[1], [3]]), item_mask={"id": torch.tensor([True, True, False, False])},
                        candidates=torch.tensor([3]), val_candidates=torch.tensor([2]))  # fmt: skip
    frame = pd.DataFrame({"model": ["lightgcn", "mm-sheaf"] * 2, "fraction": [0.1, 0.1, 1.0, 1.0],
                          "ndcg@20": [0.10, 0.12, 0.40, 0.38]})  # fmt: skip
    sums = {"cold": summary({"content": (0.3, 0.0), "mm-sheaf": (0.31, 0.0)})}
    n = coldstart_numbers({"cold": d}, sums, None, frame, coverage={"none": 0, "with_plot": 0}, num_seeds=1,
                          trials=1)  # fmt: skip
    assert (n["CsWarmItems"], n["CsColdValItems"], n["CsColdTestItems"], n["CsTrain"]) == ("2", "1", "1", "2")
    assert (n["CsFracLow"], n["CsFracLowGain"], n["CsFracFullGain"]) == ("10", "20.0", "-5.0")
    assert n["CsFracAhead"] == r"10\,\%"
    behind = frame.assign(**{"ndcg@20": [0.10, 0.09, 0.40, 0.38]})
    n = coldstart_numbers({}, sums, None, behind, coverage={"none": 0, "with_plot": 0}, num_seeds=1, trials=1)
    assert n["CsFracAhead"] == "none"


def test_ablation_numbers_are_changes_against_the_tuned_model() -> None:
    ablations = {"maps": {"sheaf": "gen"}, "no text": {"modalities": ["id", "tabular"]},
                 "profiles": {"user_profiles": True}}  # fmt: skip
    table = pd.DataFrame({"variant": [FULL_VARIANT, "maps", "no text", "profiles"],
                          "ndcg@20": [0.20, 0.22, 0.10, 0.20]})  # fmt: skip
    sums = {"cold": summary({"content": (0.15, 0.0), "mm-sheaf": (0.20, 0.0)})}
    n = coldstart_numbers({}, sums, table, None, coverage={"none": 0, "with_plot": 0}, num_seeds=1, trials=1,
                          ablations=ablations)  # fmt: skip
    assert (n["CsGenMapsGain"], n["CsNoTextGain"], n["CsProfilesGain"]) == ("10.0", "-50.0", "0.0")
    assert (n["CsNoTabGain"], n["CsLinearEncodersGain"]) == ("--", "--")
    assert (n["CsBestVariant"], n["CsBestVariantNdcg"]) == ("maps", "0.2200")


def test_fraction_frame_joins_the_curve_runs_with_the_main_runs() -> None:
    s = study()
    tuned = {m: TUNED for m in ("lightgcn", "mm-sheaf")}
    specs = s.fraction_specs(tuned)[:4]
    runs = pd.DataFrame({"model": [sp.model for sp in specs], "seed": [sp.seed for sp in specs],
                         "test_recall@20": 0.1, "test_ndcg@20": [0.1, 0.2, 0.3, 0.4]})  # fmt: skip
    main = pd.DataFrame({"model": ["lightgcn", "mm-sheaf", "vbpr"], "seed": [0, 0, 0], "test_recall@20": 0.5,
                         "test_ndcg@20": 0.5})  # fmt: skip
    frame = fraction_frame(specs, runs, main)
    assert set(frame.fraction) == {0.25, 1.0} and "vbpr" not in set(frame.model)
    assert frame.model_name.tolist()[0] == "LightGCN"
    with pytest.raises(ValueError, match="specs but"):
        fraction_frame(specs[:2], runs, main)


def test_speed_numbers_read_the_benchmark() -> None:
    speed = pd.DataFrame({"dataset": ["ml1m-cold"] * 3 + ["ml100k"] * 3,
                          "model": ["lightgcn", "mm-sheaf", "mm-sheaf[sheaf=gen]"] * 2,
                          "ms_per_epoch": [1000.0, 2500.0, 16000.0, 200.0, 900.0, 3000.0]})  # fmt: skip
    n = speed_numbers(speed)
    assert (n["CsSpeedRatio"], n["CsSpeedGenRatio"], n["CsSpeedMs"]) == ("2.5", "16.0", "2{,}500")
    assert (n["CsSpeedRatioHundredK"], n["CsSpeedGenRatioHundredK"]) == ("4.5", "15.0")
    assert (n["CsSpeedTargetMet"], n["CsSpeedTargetMetHundredK"]) == ("yes", "no")
    with pytest.raises(ValueError, match="run benchmarks/recsys_speed.py"):
        speed_numbers(speed[speed.dataset == "ml100k"])
