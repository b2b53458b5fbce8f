"""Tests of notebook 03's plan (mmsheaf.metric.plan): the runs it lists are, key for key and in order, those
the notebook's own loops listed before they moved into the library (so the paper's run ledger still replays),
and its searches call the protocol's tune as the notebook's loop did, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from mmsheaf.losses import resolve_loss
from mmsheaf.metric import plan as plan_module
from mmsheaf.metric import protocol as proto
from mmsheaf.metric.plan import MetricPlan, MetricTuning
from mmsheaf.report.notebooks import Notebook
from mmsheaf.runs.hpo import complete_trial_attrs

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAME = "03_arcface_vs_contrastive"


def notebook_params(profile: str) -> dict[str, Any]:
    return Notebook(NAME, NOTEBOOKS).resolved_parameters(profile)


def plan_of(p: dict[str, Any]) -> MetricPlan:
    """The plan the notebook builds from its parameters."""
    return MetricPlan(p["TASKS"], p["LOSSES"], p["MODALITIES"], p["SEEDS"], encoder=p["ENCODER"], train=p["TRAIN"],
                      trials=p["HPO_TRIALS"], hpo_train=p["HPO_TRAIN"], data_options=p["DATA_OPTIONS"],
                      robust_losses=p["ROBUST_LOSSES"], fraction_task="item", fractions=p["FRACTIONS"],
                      fraction_seeds=p["FRACTION_SEEDS"], modality_dropout=p["MODALITY_DROPOUT"],
                      dropout_seeds=p["DROPOUT_SEEDS"], ablation_sets=p["ABLATION_SETS"],
                      ablation_seeds=p["ABLATION_SEEDS"])  # fmt: skip


def fake_tuned(p: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Distinct tuned hyperparameters per (task, loss), by the losses' own parameter names."""
    out = {}
    for i, (t, name) in enumerate((t, n) for t in p["TASKS"] for n in p["LOSSES"]):
        space = resolve_loss(name).search
        out[(t, name)] = {k: (0.1 * (i + 1) if v.get("type") == "float" else v.get("low", v.get("choices", [0])[0]))
                          for k, v in space.items()}  # fmt: skip
    return out


def winners_of(p: dict[str, Any]) -> pd.Series:
    """A winner per task, as the notebook reads them from the verdicts (a Series indexed by task)."""
    return pd.Series({t: p["LOSSES"][-1 - i % len(p["LOSSES"])] for i, t in enumerate(p["TASKS"])}, name="winner")


def old_notebook_specs(p: dict[str, Any], tuned: dict[tuple[str, str], Any], winners: pd.Series) -> dict[str, Any]:
    """The run lists as the notebook's cells built them before the plan (copied from its last version)."""
    TASKS, LOSSES, MODALITIES, ENCODER, TRAIN = p["TASKS"], p["LOSSES"], p["MODALITIES"], p["ENCODER"], p["TRAIN"]
    DATA_OPTIONS, SEEDS, FRACTIONS, FRACTION_SEEDS = p["DATA_OPTIONS"], p["SEEDS"], p["FRACTIONS"], p["FRACTION_SEEDS"]
    ROBUST_LOSSES, DROPOUT_SEEDS, MODALITY_DROPOUT = p["ROBUST_LOSSES"], p["DROPOUT_SEEDS"], p["MODALITY_DROPOUT"]
    ABLATION_SETS, ABLATION_SEEDS, UMAP_TASK = p["ABLATION_SETS"], p["ABLATION_SEEDS"], p["UMAP_TASK"]

    def encoder_for(task, modalities=None, **extra):  # noqa: ANN001, ANN003, ANN202
        return {**ENCODER, "modalities": list(modalities or MODALITIES[task]), **extra}

    def specs_for(t, name, seeds, modalities=None, data_extra=None, evaluate=None, **enc_extra):  # noqa: ANN001, ANN003, ANN202
        evaluate = ("robustness",) if evaluate is None and name in ROBUST_LOSSES else evaluate or ()
        return [proto.MetricRunSpec(t, name, tuned[(t, name)], encoder_for(t, modalities, **enc_extra), TRAIN, seed,
                                    {**DATA_OPTIONS.get(t, {}), **(data_extra or {})}, tuple(evaluate))
                for seed in seeds]  # fmt: skip

    main = [s for t in TASKS for n in LOSSES for s in specs_for(t, n, SEEDS)]
    frac_specs = [s for n in LOSSES for f in FRACTIONS
                  for s in specs_for("item", n, FRACTION_SEEDS, data_extra={"train_fraction": f} if f < 1 else None,
                                     evaluate=())]  # fmt: skip
    drop_specs = [s for t in TASKS for n in ROBUST_LOSSES
                  for s in specs_for(t, n, DROPOUT_SEEDS, modality_dropout=MODALITY_DROPOUT)]  # fmt: skip
    abl = []
    for t in TASKS:
        win = winners[t]
        for mods in ABLATION_SETS:
            if not set(mods) <= set(MODALITIES[t]):
                continue
            abl.append((t, f"{t} {'+'.join(mods)}", " + ".join(mods), specs_for(t, win, ABLATION_SEEDS, modalities=mods,
                                                                                evaluate=())))  # fmt: skip
    umap = specs_for(UMAP_TASK, winners[UMAP_TASK], SEEDS[:1])[0]
    return {"main": main, "fractions": frac_specs, "dropout": drop_specs, "ablations": abl, "umap": umap,
            "encoder": encoder_for}  # fmt: skip


def keys(specs: list[proto.MetricRunSpec]) -> list[str]:
    return [s.key() for s in specs]


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_the_plan_lists_the_runs_of_the_old_notebook_cells(profile: str) -> None:
    p = notebook_params(profile)
    tuned, winners = fake_tuned(p), winners_of(p)
    plan, old = plan_of(p), old_notebook_specs(p, tuned, winners)
    assert keys(plan.main_specs(tuned)) == keys(old["main"])
    assert keys(plan.fraction_specs(tuned)) == keys(old["fractions"])
    assert keys(plan.dropout_specs(tuned)) == keys(old["dropout"])
    new_abl = plan.ablation_specs(tuned, winners)
    assert [(t, keys(specs)) for t, _, specs in new_abl] == [(t, keys(specs)) for t, _, _, specs in old["ablations"]]
    assert plan.specs(tuned, p["UMAP_TASK"], winners[p["UMAP_TASK"]], p["SEEDS"][:1])[0].key() == old["umap"].key()
    assert all(plan.encoder_for(t) == old["encoder"](t) for t in p["TASKS"])
    assert plan.main_specs(tuned) == old["main"]  # field by field too, not only the hashes


def test_the_smoke_plan_in_order() -> None:
    p = notebook_params("smoke")
    tuned, winners = fake_tuned(p), winners_of(p)
    plan = plan_of(p)
    main = plan.main_specs(tuned)
    assert [(s.task, s.loss, s.seed) for s in main] == [(t, n, s) for t in p["TASKS"] for n in p["LOSSES"]
                                                        for s in p["SEEDS"]]  # fmt: skip
    assert [s.loss for s in main if s.evaluate] == ["arcface"] * len(p["TASKS"]) * len(p["SEEDS"])
    assert main[0].encoder["modalities"] == ["text", "tabular"] and main[0].data_options == {"max_rows": 1200}
    assert main[0].train == p["TRAIN"] and main[0].loss_hparams == tuned[("item", p["LOSSES"][0])]
    frac = plan.fraction_specs(tuned)
    assert [(s.loss, s.data_options.get("train_fraction")) for s in frac] == [
        (n, f if f < 1 else None) for n in p["LOSSES"] for f in p["FRACTIONS"]]  # fmt: skip
    assert {s.task for s in frac} == {"item"} and not any(s.evaluate for s in frac)
    drop = plan.dropout_specs(tuned)
    assert [(s.task, s.seed) for s in drop] == [(t, s) for t in p["TASKS"] for s in p["DROPOUT_SEEDS"]]
    assert all(s.encoder["modality_dropout"] == 0.3 and s.evaluate == ("robustness",) for s in drop)
    abl = plan.ablation_specs(tuned, winners)
    # T1 has no graph: its ablations are the sets without one; T2 has all three
    assert [(t, mods) for t, mods, _ in abl] == [("item", ("text",)), ("category", ("text",)),
                                                 ("category", ("tabular", "graph")),
                                                 ("category", ("text", "tabular", "graph"))]  # fmt: skip
    assert all(s.loss == winners[t] and s.encoder["modalities"] == list(mods) for t, mods, specs in abl for s in specs)
    assert plan.searches() == [(t, n) for t in p["TASKS"] for n in p["LOSSES"]]


def fake_run_specs(calls: list[dict[str, Any]]):  # noqa: ANN201
    def run(specs, cache=None, progress=True, desc="runs"):  # noqa: ANN001, ANN202
        calls.append({"keys": keys(specs), "desc": desc, "progress": progress, "cache": cache})
        return pd.DataFrame({"task": [s.task for s in specs], "loss": [s.loss for s in specs],
                             "seed": [s.seed for s in specs], "key": keys(specs)})  # fmt: skip

    return run


def test_the_runs_of_fractions_and_ablations_carry_their_labels(monkeypatch) -> None:
    p = notebook_params("smoke")
    tuned, winners = fake_tuned(p), winners_of(p)
    plan, old = plan_of(p), old_notebook_specs(p, tuned, winners)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(plan_module, "run_specs", fake_run_specs(calls))
    frac = plan.run_fractions(tuned, cache="the cache")
    assert list(frac.key) == keys(old["fractions"]) and calls[0]["desc"] == "data efficiency"
    assert list(frac.fraction) == [f for _ in p["LOSSES"] for f in p["FRACTIONS"]]
    assert list(frac.columns) == ["task", "loss", "seed", "key", "fraction"]
    calls.clear()
    abl = plan.run_ablations(tuned, winners, cache="the cache")
    assert [c["desc"] for c in calls] == [desc for _, desc, _, _ in old["ablations"]]
    assert not any(c["progress"] for c in calls) and {c["cache"] for c in calls} == {"the cache"}
    assert list(abl.key) == [k for *_, specs in old["ablations"] for k in keys(specs)]
    assert list(abl.modalities) == [m for _, _, m, specs in old["ablations"] for _ in specs]
    assert list(abl.n_modalities) == [len(m.split(" + ")) for m in abl.modalities]
    assert abl.index.tolist() == list(range(len(abl)))


def fake_tune(calls: list[tuple[Any, ...]]):  # noqa: ANN201
    """A stand-in for protocol.tune: records its call and returns a finished in-memory study."""

    def tune(loss, task, n_trials, *, encoder=None, train=None, data_options=None, storage=None, cache=None,
             progress=True):  # noqa: ANN001, ANN202
        calls.append((loss, task, n_trials, encoder, train, data_options))
        study = optuna.create_study(study_name=f"clothing-{task}-{loss}", direction="maximize")
        study.optimize(lambda tr: (tr.set_user_attr("run_key", f"{task}/{loss}/{tr.number}"), 0.1 * tr.number)[1],
                       n_trials=2)  # fmt: skip
        return study, {"margin": len(calls)}

    return tune


def test_tune_all_calls_tune_as_the_old_notebook_loop(monkeypatch) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    p = notebook_params("smoke")
    plan = plan_of(p)
    new_calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(plan_module, "tune", fake_tune(new_calls))
    lines: list[str] = []
    tuning = plan.tune_all(log=lines.append)
    assert isinstance(tuning, MetricTuning) and len(lines) == len(new_calls)

    # the old loop of the notebook with the same stand-in
    old_calls: list[tuple[Any, ...]] = []
    tune = fake_tune(old_calls)
    TASKS, LOSSES, HPO_TRIALS, TRAIN, HPO_TRAIN = p["TASKS"], p["LOSSES"], p["HPO_TRIALS"], p["TRAIN"], p["HPO_TRAIN"]
    DATA_OPTIONS = p["DATA_OPTIONS"]
    encoder_for = old_notebook_specs(p, fake_tuned(p), winners_of(p))["encoder"]
    searches = [(t, name) for t in TASKS for name in LOSSES]
    tuned, studies, used_keys = {}, [], []
    for t, name in searches:
        study, best = tune(name, t, HPO_TRIALS, encoder=encoder_for(t), train={**TRAIN, **HPO_TRAIN},
                           data_options=DATA_OPTIONS.get(t, {}), progress=False)  # fmt: skip
        tuned[(t, name)] = best
        used_keys += complete_trial_attrs(study, "run_key")
        studies.append(study.study_name)
    tuned = {pair: tuned[pair] for pair in searches}

    assert new_calls == old_calls
    assert tuning.studies == studies and tuning.trial_keys == used_keys
    assert list(tuning.best.items()) == list(tuned.items())  # the table's order
    assert list(tuning.best_values) == searches and set(tuning.best_values.values()) == {0.1}
    first = ("item", LOSSES[0])
    assert studies[0] == f"clothing-{first[0]}-{first[1]}" and tuning.best[first] == {"margin": 1}


def test_the_plan_rejects_inconsistent_settings() -> None:
    mods = {"item": ["text"]}
    with pytest.raises(ValueError, match="Unknown loss"):
        MetricPlan(["item"], ["arcface", "nope"], mods, [0])
    with pytest.raises(ValueError, match="no modalities"):
        MetricPlan(["item", "category"], ["arcface"], mods, [0])
    with pytest.raises(ValueError, match="robust_losses"):
        MetricPlan(["item"], ["arcface"], mods, [0], robust_losses=["supcon"])
    with pytest.raises(ValueError, match="fraction_task"):
        MetricPlan(["category"], ["arcface"], {"category": ["text"]}, [0], fractions=[0.5])
    with pytest.raises(ValueError, match="fractions"):
        MetricPlan(["item"], ["arcface"], mods, [0], fractions=[0.0, 1.0])
    with pytest.raises(ValueError, match="distinct"):
        MetricPlan(["item"], ["arcface", "arcface"], mods, [0])
    with pytest.raises(ValueError, match="no tuned"):
        MetricPlan(["item"], ["arcface"], mods, [0]).specs({}, "item", "arcface")
