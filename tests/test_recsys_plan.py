"""Tests of notebook 02's plan (mmsheaf.recsys.plan): the runs it lists are, key for key and in order, those
the notebook's own loops listed before they moved into the library (so the paper's run ledger still replays),
and its searches are the protocol's studies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mmsheaf.recsys import protocol as proto
from mmsheaf.recsys.plan import RecPlan, RecTuning
from mmsheaf.report.notebooks import Notebook
from mmsheaf.runs.hpo import complete_trial_attrs, study_frame

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAME = "02_multimodal_sheaf"


def notebook_params(profile: str) -> dict[str, Any]:
    return Notebook(NAME, NOTEBOOKS).resolved_parameters(profile)


def plan_of(p: dict[str, Any]) -> RecPlan:
    """The plan the notebook builds from its parameters."""
    return RecPlan(p["MODELS"], p["SEEDS"], hparams=p["HPARAMS"], train=p["TRAIN"], search=p["SEARCH"],
                   model_search=p["MODEL_SEARCH"], trials=p["HPO_TRIALS"], data_options=p["DATA_OPTIONS"],
                   robustness=p["ROBUSTNESS"], map_model=p["MAP_MODEL"], ablated="mm-sheaf",
                   ablations=p["ABLATIONS"], cold_models=p["COLD_MODELS"],
                   cold_epochs=p["COLD_EPOCHS"])  # fmt: skip


def fake_tuned(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Distinct tuned settings per model, shaped like tune()'s."""
    return {name: {"hparams": {**p["HPARAMS"], "layers": 1 + i % 3},
                   "train": {**p["TRAIN"], "lr": 0.001 * (i + 1), "reg_weight": 1e-4 / (i + 1)}}
            for i, name in enumerate(p["MODELS"])}  # fmt: skip


def old_notebook_specs(p: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The run lists as the notebook's cells built them before the plan (copied from its last version)."""
    DATA_OPTIONS, MODELS, SEEDS, ROBUSTNESS = p["DATA_OPTIONS"], p["MODELS"], p["SEEDS"], p["ROBUSTNESS"]
    MAP_MODEL, ABLATIONS, COLD_MODELS = p["MAP_MODEL"], p["ABLATIONS"], p["COLD_MODELS"]

    def specs_for(name, seeds, dataset="ml100k", extra=None, data=None, **kw):  # noqa: ANN001, ANN003, ANN202
        best = tuned[name]
        return [proto.RecRunSpec(dataset, name, {**best["hparams"], **(extra or {})}, best["train"], seed,
                                 {**DATA_OPTIONS, **(data or {})}, **kw) for seed in seeds]  # fmt: skip

    main_specs = [s for name in MODELS
                  for s in specs_for(name, SEEDS, robustness=tuple(ROBUSTNESS), save_embeddings=name == MAP_MODEL)]  # fmt: skip
    ablations = {label: specs_for("mm-sheaf", SEEDS, extra={k: v for k, v in change.items() if k != "data_options"},
                                  data=change.get("data_options"))  # a data ablation changes the loader's options
                 for label, change in ABLATIONS.items()}  # fmt: skip
    cold_specs = [s for name in COLD_MODELS for s in specs_for(name, SEEDS, dataset="ml100k-cold")]
    umap = specs_for(MAP_MODEL, SEEDS[:1], robustness=tuple(ROBUSTNESS), save_embeddings=True)[0]
    return {"main": main_specs, "ablations": ablations, "cold": cold_specs, "map": umap}


def keys(specs: list[proto.RecRunSpec]) -> list[str]:
    return [s.key() for s in specs]


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_the_plan_lists_the_runs_of_the_old_notebook_cells(profile: str) -> None:
    p = notebook_params(profile)
    tuned = fake_tuned(p)
    plan, old = plan_of(p), old_notebook_specs(p, tuned)
    assert keys(plan.main_specs(tuned)) == keys(old["main"])
    new_abl = plan.ablation_specs(tuned)
    assert list(new_abl) == list(old["ablations"]) == list(p["ABLATIONS"])
    assert {k: keys(v) for k, v in new_abl.items()} == {k: keys(v) for k, v in old["ablations"].items()}
    # the cold-start runs are the old ones but for their epochs: the cold split has no validation user, so the
    # old runs trained until patience ran out (patience epochs); COLD_EPOCHS now says so explicitly
    assert p["COLD_EPOCHS"] == p["TRAIN"]["patience"]
    cold_old = [proto.RecRunSpec(s.dataset, s.model, s.hparams, {**s.train, "epochs": p["COLD_EPOCHS"]}, s.seed,
                                 s.data_options) for s in old["cold"]]  # fmt: skip
    assert keys(plan.cold_specs(tuned)) == keys(cold_old)
    assert plan.map_spec(tuned).key() == old["map"].key()
    assert plan.main_specs(tuned) == old["main"]  # field by field too, not only the hashes


def test_the_smoke_plan_in_order() -> None:
    p = notebook_params("smoke")
    tuned = fake_tuned(p)
    plan = plan_of(p)
    main = plan.main_specs(tuned)
    assert [(s.model, s.seed) for s in main] == [(m, s) for m in p["MODELS"] for s in p["SEEDS"]]
    assert all(s.dataset == "ml100k" and s.robustness == tuple(p["ROBUSTNESS"]) for s in main)
    assert [s.model for s in main if s.save_embeddings] == [p["MAP_MODEL"]] * len(p["SEEDS"])
    assert main[0].hparams == tuned["mf"]["hparams"] and main[0].train == tuned["mf"]["train"]
    assert main[0].data_options == {"num_users": 120}
    # the map's run is the map model's first final run: its embeddings come with the table's runs
    assert plan.map_spec(tuned).key() == next(s for s in main if s.model == p["MAP_MODEL"]).key()
    abl = plan.ablation_specs(tuned)
    gen = abl["general maps (cross-modal blocks)"]
    assert [s.seed for s in gen] == p["SEEDS"] and {s.model for s in gen} == {"mm-sheaf"}
    assert gen[0].hparams == {**tuned["mm-sheaf"]["hparams"], "sheaf": "gen"} and not gen[0].robustness
    titles = abl["titles only (no plots)"]  # a data ablation: the loader's options change, not the model's
    assert titles[0].hparams == tuned["mm-sheaf"]["hparams"]
    assert titles[0].data_options == {"num_users": 120, "text": "title"}
    assert abl["without text"][0].hparams["modalities"] == ["id", "tabular"]
    assert len({s.key() for specs in abl.values() for s in specs}) == len(abl) * len(p["SEEDS"])
    cold = plan.cold_specs(tuned)
    assert [(s.dataset, s.model, s.seed) for s in cold] == [("ml100k-cold", m, s) for m in p["COLD_MODELS"]
                                                            for s in p["SEEDS"]]  # fmt: skip
    assert plan.space("mm-sheaf") == {**p["SEARCH"], **p["MODEL_SEARCH"]["mm-sheaf"]}
    assert plan.space("mf") == p["SEARCH"]


def test_the_plan_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="Unknown|unknown"):
        RecPlan(["mf", "netflix-prize"], [0])
    with pytest.raises(ValueError, match="not in models"):
        RecPlan(["mf"], [0], map_model="mm-sheaf")
    with pytest.raises(ValueError, match="not in models"):
        RecPlan(["mf"], [0], cold_models=["vbpr"])
    with pytest.raises(ValueError, match="cold_epochs must be at least 1"):
        RecPlan(["mf"], [0], cold_epochs=0)
    with pytest.raises(ValueError, match="not in models"):
        RecPlan(["mf"], [0], ablations={"diag": {"sheaf": "diag"}})  # ablates mm-sheaf, which is not run
    with pytest.raises(ValueError, match="model_search"):
        RecPlan(["mf"], [0], model_search={"lightgcn": {}})
    with pytest.raises(ValueError, match="distinct"):
        RecPlan(["mf", "mf"], [0])
    with pytest.raises(ValueError, match="no tuned settings"):
        RecPlan(["mf", "lightgcn"], [0]).specs({"mf": {"hparams": {}, "train": {}}}, "lightgcn")


OPTS = {"num_users": 30, "num_items": 40, "interactions_per_user": 8}
TRAIN = {"epochs": 2, "batch_size": 128, "patience": 1, "lr": 0.01}
SPACE = {"lr": {"type": "float", "low": 0.001, "high": 0.05, "log": True}}


def test_tune_all_runs_the_studies_of_the_old_notebook_loop(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    cache = proto.RecRunCache(tmp_path / "runs")
    models = ["mf", "lightgcn"]
    plan = RecPlan(models, [0], hparams={"dim": 8}, train=TRAIN, search=SPACE,
                   model_search={"lightgcn": {"layers": {"type": "int", "low": 1, "high": 2}}}, trials=2,
                   data_options=OPTS, dataset="planted")  # fmt: skip
    lines: list[str] = []
    tuning = plan.tune_all(cache, log=lines.append)
    assert isinstance(tuning, RecTuning) and list(tuning.best) == models and len(lines) == 2
    assert lines[0].startswith("mf ") and "best val Recall@20" in lines[1]
    assert len(tuning.trial_keys) == 4 and len(cache) == 4  # every trial a cached run
    assert tuning.best["lightgcn"]["hparams"]["layers"] in (1, 2) and tuning.best["mf"]["hparams"] == {"dim": 8}

    # the old notebook loop, on the same storage: the same study names (so it resumes them, training nothing)
    tuned, histories, trial_keys, studies, values = {}, [], [], [], {}
    for name in models:
        space = {**SPACE, **({"layers": {"type": "int", "low": 1, "high": 2}} if name == "lightgcn" else {})}
        study, best = proto.tune(name, "planted", space, 2, hparams={"dim": 8}, train=TRAIN, data_options=OPTS,
                                 cache=cache, progress=False)  # fmt: skip
        tuned[name], values[name] = best, study.best_value
        trial_keys += complete_trial_attrs(study, "run_key")
        studies.append(study.study_name)
        trials = study_frame(study).sort_values("number")
        trials["model"], trials["best so far"] = {"mf": "MF-BPR", "lightgcn": "LightGCN"}[name], trials["value"].cummax()
        histories.append(trials)
    histories = pd.concat(histories, ignore_index=True)
    assert len(cache) == 4  # nothing trained again
    assert tuning.studies == studies and studies[0].startswith("planted-mf-")
    assert tuning.trial_keys == trial_keys and tuning.best == tuned and tuning.best_values == values
    pd.testing.assert_frame_equal(tuning.histories, histories)
    table = tuning.trials_table()
    assert not [c for c in table if c.startswith("datetime")] and {"model", "best so far", "value"} <= set(table)
