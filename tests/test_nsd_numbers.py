"""The node-classification study's quoted numbers (mmsheaf.nsd.numbers): closed-form values on small frames."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from mmsheaf.nsd import numbers
from mmsheaf.data.nsd_graphs import csbm_name
from mmsheaf.nsd.numbers import accuracy_numbers, csbm_numbers, depth_numbers, energy_numbers, run_numbers
from mmsheaf.report import Latex


def literals() -> set[str]:
    """Every string literal of mmsheaf/nsd/numbers.py."""
    tree = ast.parse(Path(numbers.__file__).read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def check_names(out: dict[str, Latex]) -> None:
    """Every name is a LaTeX control word written as a literal in the module, every value LaTeX text."""
    names = literals()
    assert all(re.fullmatch(r"Nsd[A-Za-z]+", k) and k in names for k in out), sorted(set(out) - names)
    assert all(isinstance(v, Latex) for v in out.values())


# -------------------------------------------------------------------------------------------------- depth
def depth_runs() -> pd.DataFrame:
    """One split per point; test accuracies (and training accuracies of the sheaf models) per depth 2, 4, 8."""
    test = {
        ("texas", "gcn"): [0.60, 0.55, 0.50], ("texas", "diag-nsd"): [0.80, 0.70, 0.62],
        ("texas", "orth-nsd"): [0.78, 0.75, 0.64],
        ("cora", "gcn"): [0.88, 0.50, 0.30], ("cora", "diag-nsd"): [0.87, 0.80, 0.40],
        ("cora", "orth-nsd"): [0.86, 0.84, 0.35],
    }  # fmt: skip
    train = {
        ("texas", "diag-nsd"): [1.0, 0.9, 0.5], ("texas", "orth-nsd"): [0.99, 0.9, 0.6],
        ("cora", "diag-nsd"): [0.95, 0.9, 0.7], ("cora", "orth-nsd"): [0.97, 0.9, 0.45],
    }  # fmt: skip
    rows = [
        {"dataset": ds, "model": m, "split": 0, "hparams": json.dumps({"layers": depth}),
         "train_acc": train.get((ds, m), [0.9] * 3)[i], "val_acc": acc, "test_acc": acc}
        for (ds, m), accs in test.items() for i, (depth, acc) in enumerate(zip([2, 4, 8], accs))
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_depth_numbers_closed_form() -> None:
    out = depth_numbers(depth_runs(), {"texas": 0.06, "cora": 0.81, "film": 0.0})  # film: not in the sweep
    check_names(out)
    assert (out["NsdDepthMin"], out["NsdDepthNext"], out["NsdDepthMax"]) == ("2", "4", "8")
    # highest sheaf training accuracy at 8 layers (cora diag 0.7), lowest at 2 layers (cora diag 0.95)
    assert (out["NsdDepthDeepTrainMax"], out["NsdDepthShallowTrainMin"]) == ("70.0", "95.0")
    hetero = {k[len("NsdDepthHetero"):]: v for k, v in out.items() if k.startswith("NsdDepthHetero")}
    assert hetero == {
        "Name": "Texas", "Homophily": "0.06", "GcnShallow": "60.0", "GcnNext": "55.0", "GcnDeep": "50.0",
        "SheafModel": "O(d)-NSD", "SheafShallow": "78.0", "SheafDeep": "64.0",  # best at 8 layers
        "SheafNextMin": "70.0", "SheafNextMax": "75.0",
    }  # fmt: skip
    homo = {k[len("NsdDepthHomo"):]: v for k, v in out.items() if k.startswith("NsdDepthHomo")}
    assert homo == {
        "Name": "Cora", "Homophily": "0.81", "GcnShallow": "88.0", "GcnNext": "50.0", "GcnDeep": "30.0",
        "SheafModel": "Diag-NSD", "SheafShallow": "87.0", "SheafDeep": "40.0",
        "SheafNextMin": "80.0", "SheafNextMax": "84.0",
    }  # fmt: skip
    assert len(out) == 5 + 2 * 10


def test_depth_numbers_need_gcn_a_sheaf_type_and_two_depths() -> None:
    runs = depth_runs()
    with pytest.raises(ValueError, match="add them to the sweep's models"):
        depth_numbers(runs[runs.model != "gcn"], {"texas": 0.06, "cora": 0.81})
    with pytest.raises(ValueError, match="at least two depths"):
        depth_numbers(runs[runs.hparams == json.dumps({"layers": 2})], {"texas": 0.06, "cora": 0.81})


# --------------------------------------------------------------------------------------------------- CSBM
def csbm_runs() -> pd.DataFrame:
    test = {
        0.6: {"mlp": [0.30, 0.30, 0.30], "gcn": [0.20, 0.50, 0.95], "diag-nsd": [0.25, 0.40, 0.80],
              "gen-nsd": [0.28, 0.26, 0.70]},
        2.0: {"mlp": [0.70, 0.80, 0.90], "gcn": [0.45, 0.40, 0.99], "diag-nsd": [0.78, 0.75, 0.98],
              "gen-nsd": [0.60, 0.70, 0.97]},
    }  # fmt: skip
    rows = [
        {"dataset": csbm_name(h, num_nodes=50, feature_signal=signal), "model": m, "split": 0, "val_acc": acc,
         "test_acc": acc}
        for signal, curves in test.items() for m, accs in curves.items() for h, acc in zip([0.0, 0.5, 1.0], accs)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_csbm_numbers_closed_form() -> None:
    out = csbm_numbers(csbm_runs())
    check_names(out)
    assert out["NsdCsbmLevels"] == "3"
    weak = {k[len("NsdCsbmWeak"):]: v for k, v in out.items() if k.startswith("NsdCsbmWeak")}
    assert weak == {
        "Signal": "0.6", "GcnLow": "20.0", "GcnHigh": "95.0", "GcnWorst": "20.0", "GcnWorstAt": "0.0",
        "MlpMean": "30.0",
        # Gen-NSD's worst point (26.0, at 0.5) is above Diag-NSD's (25.0)
        "SheafModel": "Gen-NSD", "SheafLow": "28.0", "SheafHigh": "70.0", "SheafWorst": "26.0",
        "SheafWorstAt": "0.5",
        "SheafOverGcn": "1",  # the better sheaf type beats GCN at homophily 0 only
    }  # fmt: skip
    strong = {k[len("NsdCsbmStrong"):]: v for k, v in out.items() if k.startswith("NsdCsbmStrong")}
    assert strong == {
        "Signal": "2.0", "GcnLow": "45.0", "GcnHigh": "99.0", "GcnWorst": "40.0", "GcnWorstAt": "0.5",
        "MlpMean": "80.0", "SheafModel": "Diag-NSD", "SheafLow": "78.0", "SheafHigh": "98.0",
        "SheafWorst": "75.0", "SheafWorstAt": "0.5", "SheafOverGcn": "2",
    }  # fmt: skip
    with pytest.raises(ValueError, match="mlp"):
        csbm_numbers(csbm_runs().query("model != 'mlp'"))


# ------------------------------------------------------------------------------------------------- energy
def test_energy_numbers_closed_form() -> None:
    quotients = {"diag-nsd": [1e-18, 1e-9, 0.2], "gen-nsd": [0.03, 0.1, 0.5], "orth-nsd": [0.02, 0.05, 0.01]}
    energy = pd.DataFrame([{"model": m, "layer": i, "rayleigh": q} for m, qs in quotients.items()
                           for i, q in enumerate(qs)])  # fmt: skip
    out = energy_numbers(energy, "texas")
    check_names(out)
    assert out == {
        "NsdEnergyName": "Texas", "NsdEnergyModels": "3", "NsdEnergyRises": "2",  # O(d)-NSD ends lower
        "NsdEnergyFirstMax": "0.030", "NsdEnergyLastMin": "0.01", "NsdEnergyLastMax": "0.50",
        "NsdEnergyNearZero": "Diag-NSD at points 0, 1",
    }  # fmt: skip
    one = energy.assign(rayleigh=energy.rayleigh.where(energy.layer != 1, 0.5))
    assert energy_numbers(one, "texas")["NsdEnergyNearZero"] == "Diag-NSD at point 0"
    assert energy_numbers(energy.assign(rayleigh=0.1), "texas")["NsdEnergyNearZero"] == "none"
    with pytest.raises(ValueError, match="energy_profiles"):
        energy_numbers(energy.iloc[:0], "texas")


# --------------------------------------------------------------------------------------------- accuracy
def accuracy_rows() -> pd.DataFrame:
    rows = [  # dataset, model, our mean, published mean and std (NSD Table 2; cornell: none)
        ("texas", "diag-nsd", 80.0, 85.67, 6.95), ("texas", "orth-nsd", 84.0, 85.95, 5.51),
        ("texas", "gcn", 62.0, 55.14, 5.16), ("texas", "mlp", 81.0, 80.81, 4.75),
        ("cora", "diag-nsd", 86.0, 87.14, 1.06), ("cora", "gcn", 80.0, 86.98, 1.27),
        ("cora", "mlp", 76.0, 75.69, 2.00),
        ("cornell", "diag-nsd", 70.0, None, None), ("cornell", "gcn", 72.0, None, None),
    ]  # fmt: skip
    return pd.DataFrame([{"dataset": d, "model": m, "mean": x, "std": 1.0, "n_splits": 10, "paper_mean": pm,
                          "paper_std": ps} for d, m, x, pm, ps in rows])  # fmt: skip


def test_accuracy_numbers_closed_form() -> None:
    out = accuracy_numbers(accuracy_rows(), ["texas", "cora", "cornell"])
    check_names(out)
    assert out == {
        "NsdNumDatasets": "3", "NsdNumSplits": "10",
        "NsdSheafWins": "2",  # texas 84 > 81, cora 86 > 80; cornell 70 < 72
        # best sheaf type against the paper's best: texas 84.0 >= 85.95 - 5.51; cora 86.0 < 87.30 - 1.15
        "NsdComparable": "2", "NsdMeetsPaper": "1", "NsdShortOfPaper": "cora",
        # each sheaf row: texas diag 80.0 >= 85.67 - 6.95, texas orth within, cora diag 86.0 < 87.14 - 1.06
        "NsdRowsCompared": "3", "NsdRowsWithin": "2", "NsdRowsShort": r"Diag-NSD on Cora: 86.0 against 87.1$\pm$1.1",
        "NsdBaselineRows": "4", "NsdBaselineBelow": "1", "NsdBaselineAbove": "1",
        "NsdBaselineMostBelow": r"GCN on Cora: 80.0 against 87.0$\pm$1.3",
        "NsdBaselineMostAbove": r"GCN on Texas: 62.0 against 55.1$\pm$5.2",
    }  # fmt: skip


def test_accuracy_numbers_without_baselines_or_shortfalls_say_none() -> None:
    table = accuracy_rows()
    out = accuracy_numbers(table[table.model.isin(["orth-nsd"])], ["texas"])
    assert (out["NsdShortOfPaper"], out["NsdRowsShort"]) == ("none", "none")
    assert (out["NsdBaselineRows"], out["NsdBaselineMostBelow"], out["NsdBaselineMostAbove"]) == ("0", "none", "none")
    with pytest.raises(ValueError, match="accuracy_table"):
        accuracy_numbers(table.iloc[:0], [])


# --------------------------------------------------------------------------------------------------- runs
def test_run_numbers_count_distinct_runs_and_escape_names() -> None:
    runs = [pd.DataFrame({"key": [f"k{i}" for i in range(1000)]}),
            pd.DataFrame({"key": [f"k{i}" for i in range(500, 1317)]})]  # fmt: skip
    selection = pd.DataFrame({"dataset": ["film", "film", "cite_seer"]})
    out = run_numbers(runs, selection, ["pubmed"])
    check_names(out)
    assert out == {"NsdRuns": "1{,}317", "NsdSelected": r"film, cite\_seer", "NsdMissing": "pubmed"}
    assert run_numbers([], selection.iloc[:0], [])["NsdSelected"] == "none"
    assert run_numbers([], selection, [])["NsdMissing"] == "none"
