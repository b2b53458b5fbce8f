"""Tests of the numbers the paper quotes from the HUSE study (mmsheaf.huse.numbers), on the hand-made runs of
tests/test_huse_tables.py (2 seeds of every row, numbers in %)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pandas as pd
from mmsheaf.huse import numbers as huse_numbers
from mmsheaf.huse.numbers import paper_numbers
from mmsheaf.report import Latex

# {variant: {test key: mean or (mean, spread)}}, seed 0 = mean - spread, seed 1 = mean + spread (so the
# population std over the seeds is the spread); the fused baselines have no graph reading. The numbers of
# tests/test_huse_tables.py.
ROWS: dict[str, dict[str, float | tuple[float, float]]] = {
    "huse": {"acc_graph": 45.0, "acc_fusion": (80.0, 1.0), "r@1_text_to_tabular": (40.0, 2.0),
             "r@1_tabular_to_text": (30.0, 2.0), "hp_at_5": (70.0, 1.0)},
    "huse-cls": {"acc_graph": 44.0, "acc_fusion": 78.0, "r@1_text_to_tabular": 16.0,
                 "r@1_tabular_to_text": 14.0, "hp_at_5": 65.0},
    "huse-cls-gap": {"acc_graph": 43.0, "acc_fusion": 77.0, "r@1_text_to_tabular": 32.0,
                     "r@1_tabular_to_text": 28.0, "hp_at_5": 66.0},
    "huse-cls-graph": {"acc_graph": 46.0, "acc_fusion": 79.0, "r@1_text_to_tabular": 17.0,
                       "r@1_tabular_to_text": 15.0, "hp_at_5": (68.0, 1.0)},
    "separate": {"acc_graph": 42.0, "acc_fusion": 76.0, "r@1_text_to_tabular": 11.0,
                 "r@1_tabular_to_text": 9.0, "hp_at_5": 62.0},
    "arcface": {"acc_fusion": (81.5, 1.0), "r@1_text_to_tabular": 20.0, "r@1_tabular_to_text": 20.0,
                "hp_at_5": (60.0, 0.5)},
    "supcon": {"acc_fusion": 79.0, "r@1_text_to_tabular": 18.0, "r@1_tabular_to_text": 18.0, "hp_at_5": 62.0},
}  # fmt: skip


def make_runs(rows: dict | None = None) -> pd.DataFrame:
    """One row per (seed, variant) as :func:`~mmsheaf.huse.protocol.run_specs` gives them."""
    return pd.DataFrame([{"variant": v, "seed": seed, "seconds": 1.0, "test_classifier": "head",
                          "retrieval": None,
                          **{f"test_{k}": x[0] + (2 * seed - 1) * x[1] if isinstance(x, tuple) else x
                             for k, x in values.items()}}
                         for seed in (0, 1) for v, values in (rows or ROWS).items()])  # fmt: skip


def numbers(runs: pd.DataFrame | None = None) -> dict[str, Latex]:
    return paper_numbers(make_runs() if runs is None else runs, num_seeds=2, trials=1200, epochs=50,
                         num_classes=14)  # fmt: skip


def changed(**cells: dict[str, float | tuple[float, float]]) -> pd.DataFrame:
    """The runs with some test numbers of some variants replaced (``variant={key: value}``)."""
    rows = copy.deepcopy(ROWS)
    for variant, values in cells.items():
        rows[variant.replace("_", "-")].update(values)
    return make_runs(rows)


def test_paper_numbers_closed_form() -> None:
    out = numbers()
    assert out == {
        "HuseSeeds": "2",
        "HuseTrials": "1{,}200",
        "HuseEpochs": "50",
        "HuseClasses": "14",
        "HuseFusionAcc": "80.0",
        "HuseFusionAccStd": "1.0",
        "HuseArcFaceFusionAcc": "81.5",
        "HuseArcFaceFusionAccStd": "1.0",
        "HuseSeparateFusionAcc": "76.0",
        "HuseSupConFusionAcc": "79.0",
        "HuseHPFive": "70.0",
        "HuseHPFiveStd": "1.0",
        "HuseArcFaceHPFive": "60.0",
        "HuseArcFaceHPFiveStd": "0.5",
        "HuseVsArcFaceAcc": "within the spread of",  # |80 - 81.5| <= 1 + 1
        "HuseVsArcFaceHP": "above",  # 70 - 60 > 1 + 0.5
        "HuseCrossROne": "35.0",  # (40 + 30) / 2
        "HuseClsCrossROne": "15.0",  # (16 + 14) / 2
        "HuseCrossRatio": "2.33",  # 35 / 15
        "HuseCrossClaim": "holds",
        "HuseGapGainCross": "15.0",  # (32 + 28) / 2 - 15
        "HuseGraphGainHP": "3.0",  # 68 - 65
        "HuseSharedGainCross": "5.0",  # 15 - (11 + 9) / 2
    }
    assert all(isinstance(v, Latex) for v in out.values())


def test_the_cross_modal_claim_flips_from_holds_to_misses() -> None:
    at_two = numbers(changed(huse_cls={"r@1_text_to_tabular": 17.5, "r@1_tabular_to_text": 17.5}))
    # 35 / 17.5: the bound itself holds
    assert (at_two["HuseCrossRatio"], at_two["HuseCrossClaim"]) == ("2.00", "holds")
    below = numbers(changed(huse_cls={"r@1_text_to_tabular": 20.0, "r@1_tabular_to_text": 16.0}))
    assert (below["HuseClsCrossROne"], below["HuseCrossRatio"]) == ("18.0", "1.94")  # 35 / 18
    assert below["HuseCrossClaim"] == "misses"
    zero = numbers(changed(huse_cls={"r@1_text_to_tabular": 0.0, "r@1_tabular_to_text": 0.0}))
    assert (zero["HuseCrossRatio"], zero["HuseCrossClaim"]) == ("--", "--")  # no ratio to a zero R@1


def test_huse_against_arcface_turns_with_the_numbers() -> None:
    out = numbers(changed(arcface={"acc_fusion": (84.0, 1.0), "hp_at_5": (71.0, 0.5)}))
    # |80 - 84| = 4 > 1 + 1; |70 - 71| = 1 <= 1 + 0.5
    assert (out["HuseVsArcFaceAcc"], out["HuseVsArcFaceHP"]) == ("below", "within the spread of")
    out = numbers(changed(arcface={"acc_fusion": (77.0, 0.5), "hp_at_5": (73.0, 0.5)}))
    assert (out["HuseVsArcFaceAcc"], out["HuseVsArcFaceHP"]) == ("above", "below")


def test_a_variant_not_run_gives_dashes() -> None:
    runs = make_runs()
    out = numbers(runs[~runs.variant.isin(["huse-cls", "arcface"])])
    dashed = {k for k, v in out.items() if v == "--"}
    assert dashed == {"HuseClsCrossROne", "HuseCrossRatio", "HuseCrossClaim", "HuseGapGainCross",
                      "HuseGraphGainHP", "HuseSharedGainCross", "HuseArcFaceFusionAcc",
                      "HuseArcFaceFusionAccStd", "HuseArcFaceHPFive", "HuseArcFaceHPFiveStd",
                      "HuseVsArcFaceAcc", "HuseVsArcFaceHP"}  # fmt: skip
    assert (out["HuseFusionAcc"], out["HuseCrossROne"]) == ("80.0", "35.0")
    only_huse = numbers(runs[runs.variant == "huse"])
    assert only_huse["HuseSupConFusionAcc"] == "--" and only_huse["HuseHPFive"] == "70.0"


def test_every_macro_name_is_a_literal_of_the_module() -> None:
    source = Path(huse_numbers.__file__).read_text()
    literals = set(re.findall(r'"(Huse[A-Za-z]+)"', source))
    assert set(numbers()) == literals
