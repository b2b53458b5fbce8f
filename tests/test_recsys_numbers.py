"""Tests of the numbers the paper quotes from the recommendation study (mmsheaf.recsys.numbers) and of the
tables they are read from (mmsheaf.recsys.protocol)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys import numbers as rec_numbers
from mmsheaf.recsys import protocol as proto
from mmsheaf.recsys.numbers import paper_numbers
from mmsheaf.report import Latex

ABLATIONS = {
    "general maps (cross-modal blocks)": {"sheaf": "gen"},
    "orthogonal maps": {"sheaf": "orth"},
    "without text": {"modalities": ["id", "tabular"]},
    "titles only": {"data_options": {"text": "title"}},
}
MULTIMODAL = ["vbpr", "late-fusion", "mm-sheaf"]


def edges(n: int, num_users: int = 3) -> torch.Tensor:
    return torch.stack([torch.arange(n) % num_users, torch.arange(n) % 1200])


@pytest.fixture
def data() -> InteractionData:
    """3 users, 1,200 items, 1,000 + 200 + 117 = 1,317 interactions."""
    return InteractionData("toy", 3, 1200, edges(1000), edges(200), edges(117))


def summary(values: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "ndcg@20": v, "std_ndcg@20": s, "n_seeds": 2} for m, (v, s) in values.items()])


def ablation(values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"variant": k, "ndcg@20": v, "std_ndcg@20": 0.0} for k, v in values.items()])


def robustness() -> pd.DataFrame:
    """The sheaf's mean NDCG@20 is 0.25 with all text and 0.2 without; its tabular curve stops at 0.5."""
    rows = [("mm-sheaf", "text", 0.0, 0.2), ("mm-sheaf", "text", 0.0, 0.3), ("mm-sheaf", "text", 1.0, 0.2),
            ("mm-sheaf", "tabular", 0.0, 0.2), ("mm-sheaf", "tabular", 0.5, 0.1), ("vbpr", "text", 1.0, 0.9)]
    return pd.DataFrame([{"modality": mod, "fraction": f, "ndcg@20": v, "model": m, "seed": 0}
                         for m, mod, f, v in rows])  # fmt: skip


def numbers(data: InteractionData, cold: InteractionData | None = None, **changes) -> dict[str, Latex]:
    args = {
        "summary": summary({"mf": (0.1, 0.0), "lightgcn": (0.2, 0.01), "vbpr": (0.22, 0.0),
                            "late-fusion": (0.24, 0.0), "mm-sheaf": (0.25, 0.01)}),
        "ablation": ablation({proto.FULL_VARIANT: 0.25, "general maps (cross-modal blocks)": 0.2,
                              "orthogonal maps": 0.26, "without text": 0.3, "titles only": 0.2}),
        "robustness": robustness(),
        "cold_summary": summary({"vbpr": (0.1, 0.0), "mm-sheaf": (0.15, 0.0)}),
        "ablations": ABLATIONS,
        "multimodal": MULTIMODAL,
    }  # fmt: skip
    args.update(changes)
    cold = data.replace(candidates=torch.arange(168)) if cold is None else cold
    return paper_numbers(data, cold, args["summary"], args["ablation"], args["robustness"], args["cold_summary"],
                         num_seeds=5, trials=12, ablations=args["ablations"], multimodal=args["multimodal"],
                         cold_epochs=args.get("cold_epochs", 10))  # fmt: skip


def test_paper_numbers_closed_form(data) -> None:
    assert numbers(data) == {
        "RecNumUsers": "3",
        "RecNumItems": "1{,}200",
        "RecNumInteractions": "1{,}317",
        "RecNumSeeds": "5",
        "RecTrials": "12",
        "RecColdItems": "168",
        "RecGainLightGCN": "25.0",  # 100 (0.25 / 0.2 - 1)
        "RecBeatsLightGCNBySpread": "yes",  # 0.25 - 0.01 > 0.2 + 0.01
        "RecBestOtherMM": "Late-fusion GCN",
        "RecGainBestOtherMM": "4.2",  # 100 (0.25 / 0.24 - 1)
        "RecSheafNdcg": "0.2500",
        "RecLightGCNNdcg": "0.2000",
        "RecBestVariant": "without text",
        "RecBestVariantNdcg": "0.3000",
        "RecBestVariantGainLightGCN": "50.0",
        "RecCrossModalEffect": "-20.0",  # 100 (0.2 / 0.25 - 1): the general maps' blocks do not help
        "RecCrossModalVerdict": "do not help",
        "RecNoTextNdcg": "0.3000",
        "RecTitlesOnlyNdcg": "0.2000",
        "RecPlotsGain": "25.0",  # 100 (0.25 / 0.2 - 1): plots help
        "RecTextRemovedCost": "-20.0",  # 100 (0.2 / 0.25 - 1); the other model's curve is ignored
        "RecTabRemovedCost": "--",  # never removed from every item
        "RecColdBest": "MM-Sheaf",
        "RecColdBestNdcg": "0.1500",
        "RecColdSheafNdcg": "0.1500",
        "RecColdEpochs": "10",
    }
    assert all(isinstance(v, Latex) for v in numbers(data).values())


def test_verdicts_turn_with_the_numbers(data) -> None:
    out = numbers(
        data,
        summary=summary({"lightgcn": (0.2, 0.03), "mm-sheaf": (0.21, 0.03)}),  # no other multimodal model
        ablation=ablation({proto.FULL_VARIANT: 0.21, "general maps (cross-modal blocks)": 0.3}),
        ablations={"general maps (cross-modal blocks)": {"sheaf": "gen"}},  # no ablation without text
        cold_summary=summary({"vbpr": (0.2, 0.0), "late-fusion": (0.1, 0.0)}),  # the sheaf has no cold runs
    )  # fmt: skip
    assert out["RecBeatsLightGCNBySpread"] == "no"  # 0.18 < 0.23
    assert (out["RecBestOtherMM"], out["RecGainBestOtherMM"]) == ("none", "0.0")
    assert (out["RecCrossModalEffect"], out["RecCrossModalVerdict"]) == ("42.9", "help")
    assert out["RecNoTextNdcg"] == "--" and out["RecPlotsGain"] == "--"
    assert (out["RecColdBest"], out["RecColdSheafNdcg"]) == ("VBPR", "--")
    assert numbers(data, cold_epochs=None)["RecColdEpochs"] == "--"


def test_paper_numbers_need_the_sheaf_and_lightgcn(data) -> None:
    with pytest.raises(ValueError, match="lightgcn"):
        numbers(data, summary=summary({"mm-sheaf": (0.2, 0.0)}))
    with pytest.raises(ValueError, match="cold-start"):
        numbers(data, cold=data)  # every item is a candidate: not the cold-start split


def test_every_macro_name_is_a_literal_of_the_module(data) -> None:
    source = Path(rec_numbers.__file__).read_text()
    literals = set(re.findall(r'"(Rec[A-Za-z]+)"', source))
    assert set(numbers(data)) == literals


# ------------------------------------------------------------------------------------------------ tables
def test_results_table_formats_mean_std_and_bolds_the_best() -> None:
    rows = [{"model": m, **{k: v for k in proto.RANKING_METRICS}, **{f"std_{k}": 0.01 for k in proto.RANKING_METRICS},
             "n_seeds": 2} for m, v in (("lightgcn", 0.2), ("mm-sheaf", 0.25))]  # fmt: skip
    tuned = {"lightgcn": {"hparams": {"dim": 64, "layers": 3}, "train": {"lr": 0.0012345, "epochs": 9}},
             "mm-sheaf": {"hparams": {"step": 0.5}, "train": {"reg_weight": 1e-4, "batch_size": 4096}}}  # fmt: skip
    table, tex = proto.results_table(pd.DataFrame(rows), tuned)
    assert list(table.columns) == ["model", *proto.RANKING_METRICS, "std_ndcg@20", "params"]
    assert list(table.params) == ["dim=64, layers=3, lr=0.0012", "batch_size=4096, reg_weight=0.0001, step=0.5"]
    assert list(tex.Model) == ["LightGCN", "MM-Sheaf"]
    assert list(tex["ndcg@20"]) == ["0.2000 $\\pm$ 0.0100", "\\textbf{0.2500 $\\pm$ 0.0100}"]
    assert tex["Tuned hyperparameters"].iloc[0] == "\\scriptsize dim=64, layers=3, lr=0.0012"
    with pytest.raises(ValueError, match="tuned settings"):
        proto.results_table(pd.DataFrame(rows), {"lightgcn": tuned["lightgcn"]})


def test_ablation_table_puts_the_tuned_model_first() -> None:
    def runs(model: str, values: list[float]) -> pd.DataFrame:
        return pd.DataFrame([{"model": model, "seed": s, "test_recall@20": v, "test_ndcg@20": v / 2,
                              **{f"test_{m}": 0.0 for m in ("recall@10", "ndcg@10")}}
                             for s, v in enumerate(values)])  # fmt: skip

    main = pd.concat([runs("lightgcn", [0.9]), runs("mm-sheaf", [0.2, 0.4])])
    table, tex = proto.ablation_table(main, {"diag": runs("mm-sheaf", [0.1, 0.1])})
    assert list(table.variant) == [proto.FULL_VARIANT, "diag"]
    assert list(tex["Recall@20"]) == ["0.3000 $\\pm$ 0.1000", "0.1000 $\\pm$ 0.0000"]
    assert list(tex["NDCG@20"]) == ["0.1500 $\\pm$ 0.0500", "0.0500 $\\pm$ 0.0000"]
    with pytest.raises(ValueError, match="no rows"):
        proto.ablation_table(runs("lightgcn", [0.1]), {})


def test_robustness_frame_is_long_and_filtered() -> None:
    curve = [{"modality": "text", "fraction": 0.0, "ndcg@20": 0.3}, {"modality": "text", "fraction": 1.0, "ndcg@20": 0.1}]
    runs = pd.DataFrame([{"model": "mf", "seed": 0, "result": {"robustness": curve}},
                         {"model": "vbpr", "seed": 1, "result": {"robustness": curve}},
                         {"model": "lightgcn", "seed": 0, "result": {}}])  # fmt: skip
    frame = proto.robustness_frame(runs, models=["vbpr"])
    assert list(frame.columns) == ["modality", "fraction", "ndcg@20", "model", "model_name", "seed"]
    assert list(frame.index) == [2, 3] and set(frame.model_name) == {"VBPR"} and set(frame.seed) == {1}
    assert len(proto.robustness_frame(runs)) == 4
    with pytest.raises(ValueError, match="robustness"):
        proto.robustness_frame(runs.iloc[2:])
