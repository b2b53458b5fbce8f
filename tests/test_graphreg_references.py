"""Tests of notebook 01's reference rows for the graph-regularisation study (mmsheaf.graphreg.references)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from mmsheaf import paths
from mmsheaf.data.nsd_graphs import load_graph
from mmsheaf.graphreg import references
from mmsheaf.graphreg.references import (
    notebook01_rows,
    reference_config,
    reference_inference_ms,
    reference_model,
    reference_rows,
)
from mmsheaf.nsd.protocol import NsdProtocol
from mmsheaf.nsd.tuning import choices_of
from mmsheaf.nsd.registry import build_node_model, node_model_config, resolve_node_model
from mmsheaf.report.notebooks import discover
from mmsheaf.runs.ledger import ledger_path

RUN_FIRST = "run notebook 01 first (python -m mmsheaf report 01_sheaf_diffusion)"
COLUMNS = "dataset,model,mean,std,n_splits,paper_mean,paper_std\n"


def write_table(folder: Path, lines: str) -> Path:
    path = folder / "tables" / "nsd_accuracy.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(COLUMNS + lines)
    return path


def test_rows_are_the_requested_ones_in_order(tmp_path: Path) -> None:
    path = write_table(tmp_path, "texas,gcn,60.0,5.0,10,,\ntexas,mlp,80.0,4.0,10,81.9,6.4\n"
                                 "cora,gcn,86.0,1.0,10,,\ncora,mlp,75.0,2.0,9,,\n")  # fmt: skip
    rows = notebook01_rows(["cora", "texas"], ["mlp", "gcn"], path=path)
    assert list(rows.columns) == ["dataset", "model", "mean", "std", "n"]
    order = [("cora", "mlp"), ("cora", "gcn"), ("texas", "mlp"), ("texas", "gcn")]
    assert list(zip(rows.dataset, rows.model)) == order
    assert rows["mean"].tolist() == [75.0, 86.0, 80.0, 60.0] and rows["n"].tolist() == [9, 10, 10, 10]


def test_a_missing_row_or_table_says_to_run_notebook_01(tmp_path: Path) -> None:
    path = write_table(tmp_path, "texas,gcn,60.0,5.0,10,,\n")
    with pytest.raises(ValueError, match=r"texas/diag-nsd") as err:
        notebook01_rows(["texas"], ["gcn", "diag-nsd"], path=path)
    assert RUN_FIRST in str(err.value)
    with pytest.raises(ValueError, match=r"missing") as err:
        notebook01_rows(["texas"], ["gcn"], path=tmp_path / "absent.csv")
    assert RUN_FIRST in str(err.value)


def ledger_line(model: str, split: int, test_acc: float, layers: int) -> str:
    resolved = {"dataset": "texas", "model": model, "split": split, "model_config": {"layers": layers},
                "train": {"lr": 0.01}}  # fmt: skip
    payload = {"resolved": resolved, "result": {"test_acc": test_acc}}
    key = f"k{model}{split}{layers}"
    return json.dumps({"folder": "node_classification", "key": key, "payload": payload})


def test_the_config_is_that_of_the_rows_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSHEAF_OUTPUT", str(tmp_path))
    monkeypatch.setattr(references, "outputs_of", lambda profile: tmp_path)
    write_table(tmp_path, "texas,gcn,55.0,5.0,2,,\ntexas,mlp,70.0,0.0,2,,\n")
    with pytest.raises(ValueError, match="ledger") as err:  # no ledger yet
        reference_config("texas", "gcn")
    assert RUN_FIRST in str(err.value)
    ledger = ledger_path("01_sheaf_diffusion", "paper")
    assert ledger.parent.parent == tmp_path
    ledger.parent.mkdir(parents=True)
    runs = [("gcn", 0, 0.5, 2), ("gcn", 1, 0.6, 2),  # the table's runs: mean 55 over 2 splits
            ("gcn", 0, 0.55, 4), ("gcn", 1, 0.56, 4), ("gcn", 2, 0.54, 4),  # depth sweep: 3 splits
            ("gcn", 0, 0.4, 8), ("gcn", 1, 0.7, 8),  # another config with the same count and mean: ambiguous
            ("mlp", 0, 0.7, 2), ("mlp", 1, 0.71, 2)]  # fmt: skip
    ledger.write_text("\n".join(ledger_line(*r) for r in runs[:5] + runs[7:]) + "\n")
    assert reference_config("texas", "gcn") == {"layers": 2}
    with pytest.raises(ValueError, match="0 configurations"):  # mean 70.5, not the table's 70.0
        reference_config("texas", "mlp")
    ledger.write_text("\n".join(ledger_line(*r) for r in runs) + "\n")
    with pytest.raises(ValueError, match="2 configurations"):
        reference_config("texas", "gcn")


# ------------------------------------------------------------------------- notebook 01's real outputs
TABLE = references.outputs_of("paper") / "tables" / "nsd_accuracy.csv"
needs_outputs = pytest.mark.skipif(
    not (TABLE.is_file() and ledger_path("01_sheaf_diffusion", "paper").is_file()),
    reason="notebook 01's paper outputs (figures/tables/nsd_accuracy.csv, figures/runs/*.jsonl) are missing",
)


def texas_graph() -> None:
    try:
        load_graph("texas")
    except FileNotFoundError as exc:
        pytest.skip(f"texas is not in the data root {paths.data_root()} ({str(exc).splitlines()[0]})")


def notebook01_protocol() -> NsdProtocol:
    """Notebook 01's protocol as its paper run resolves it: its parameters and the chosen candidates."""
    params = discover(names=["01_sheaf_diffusion"])[0].resolved_parameters("paper")
    protocol = NsdProtocol.from_params(params["TRAIN"], params["MODEL_DEFAULTS"], params["CONFIGS"])
    selection = pd.read_csv(TABLE.parent / "nsd_config_selection.csv")
    datasets = dict(protocol.datasets)
    for r in selection[selection["chosen"].astype(bool)].itertuples(index=False):
        candidate = protocol.dataset(r.dataset).candidates[r.candidate]
        assert candidate.changes == r.changes
        datasets[r.dataset] = protocol.dataset(r.dataset).with_candidate(candidate)
    protocol = dataclasses.replace(protocol, datasets=datasets)
    configs = TABLE.parent / "nsd_baseline_configs.csv"  # the tuned baselines (issue 19), once notebook 01 has them
    return protocol.with_baselines(choices_of(pd.read_csv(configs))) if configs.is_file() else protocol


@needs_outputs
@pytest.mark.parametrize("dataset", ["texas", "cora"])
@pytest.mark.parametrize("model", ["gcn", "diag-nsd"])
def test_real_configs_build_and_are_notebook_01s(dataset: str, model: str) -> None:
    if dataset not in set(pd.read_csv(TABLE)["dataset"]):
        pytest.skip(f"{dataset} is not in {TABLE}")
    config = reference_config(dataset, model)
    net = build_node_model(model, 10, 3, **config)
    assert isinstance(net, resolve_node_model(model).model_cls)
    hparams, _ = notebook01_protocol().resolve(dataset, model)
    assert config == dataclasses.asdict(node_model_config(model, **hparams))


@needs_outputs
@pytest.mark.parametrize("model", ["mlp", "diag-nsd"])
def test_inference_time_is_a_positive_number(model: str) -> None:
    texas_graph()
    ms = reference_inference_ms("texas", model, repeats=1, build=build_node_model)
    assert isinstance(ms, float) and math.isfinite(ms) and ms > 0


@needs_outputs
@pytest.mark.parametrize("model", ["gcn", "diag-nsd", "mlp"])
def test_the_timed_model_is_the_registrys_with_notebook_01s_config(model: str) -> None:
    texas_graph()
    net, data = reference_model("texas", model, build=build_node_model)
    assert type(net) is resolve_node_model(model).model_cls and not net.training
    assert net.config == node_model_config(model, **reference_config("texas", model))
    assert data.num_nodes == load_graph("texas").num_nodes


@needs_outputs
def test_reference_rows_add_the_time_and_a_fresh_graph_is_timed_too() -> None:
    texas_graph()
    rows = reference_rows("texas", ["mlp", "gcn"], repeats=1, build=build_node_model)
    assert list(rows.columns) == ["dataset", "model", "mean", "std", "n", "infer_ms"]
    assert (rows["infer_ms"] > 0).all()
    assert reference_inference_ms("texas", "gcn", 1, build=build_node_model, fresh_graph=True) > 0
