"""What notebook 02 runs, built from its parameters: one search per model, the final runs over seeds, the
ablations of the multimodal sheaf, the cold-start runs and the run behind the item map.

.. code-block:: python

    plan = RecPlan(models=["mf", "mm-sheaf"], seeds=[0, 1], hparams={"dim": 64}, train={"epochs": 150},
                   search={"lr": {"type": "float", "low": 1e-3, "high": 2e-2, "log": True}}, trials=12,
                   ablations={"diagonal maps": {"sheaf": "diag"}}, cold_models=["mm-sheaf"])
    tuning = plan.tune_all(cache)                                 # one Optuna study per model
    runs = run_specs(plan.main_specs(tuning.best), cache)         # every model, every seed
    ablations = plan.run_ablations(tuning.best, cache)            # {label: runs}

A plan only lists runs: every run is a :class:`~mmsheaf.recsys.protocol.RecRunSpec` and every search a
:func:`~mmsheaf.recsys.protocol.tune`, so the run keys and study names are those of the protocol, and the
order of the lists is fixed (models, then seeds), which is what the run ledgers of the paper profile replay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mmsheaf.recsys.protocol import RecRunCache, RecRunSpec, run_specs, tune
from mmsheaf.recsys.registry import resolve_recommender
from mmsheaf.runs.hpo import complete_trial_attrs, study_frame

__all__ = ["RecPlan", "RecTuning", "Tuned"]

Tuned = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""Each model's tuned settings by name: ``{"hparams": {...}, "train": {...}}`` (the ``best`` of
:func:`~mmsheaf.recsys.protocol.tune`)."""


@dataclass(frozen=True, eq=False)
class RecTuning:
    """What :meth:`RecPlan.tune_all` found.

    Attributes:
        best: Each model's tuned settings (``{"hparams", "train"}``), in the plan's model order.
        best_values: Each model's best validation Recall@20.
        studies: The Optuna study names, in the plan's model order.
        trial_keys: The run keys behind the complete trials, model by model and trial by trial (what the run
            ledger keeps).
        histories: One row per trial of every study (:func:`~mmsheaf.runs.hpo.study_frame`, by trial number),
            with ``model`` (its display name) and ``best so far`` (the running maximum of ``value``).
    """

    best: dict[str, dict[str, Any]]
    best_values: dict[str, float]
    studies: list[str]
    trial_keys: list[str]
    histories: pd.DataFrame

    def trials_table(self) -> pd.DataFrame:
        """:attr:`histories` without the wall-clock columns (``datetime_*``): the table of the trials."""
        return self.histories.drop(columns=[c for c in self.histories if c.startswith("datetime")])


@dataclass(frozen=True)
class RecPlan:
    """The runs of the recommendation study, from the notebook's parameters.

    Args:
        models: Registered recommenders, in the order of the searches and the tables.
        seeds: Seeds of the final, ablation and cold-start runs.
        hparams: Model hyperparameters shared by every model (e.g. ``{"dim": 64}``).
        train: :class:`~mmsheaf.recsys.train.RecTrainConfig` settings shared by every model.
        search: The search space of every model (:mod:`mmsheaf.runs.space`).
        model_search: Each model's own additions to ``search``, by model name.
        trials: Optuna trials per model.
        data_options: Options of the dataset loaders.
        robustness: Fractions of items whose content is removed at test time in the final runs.
        map_model: The model whose item embeddings are kept (its final runs save them), or ``None``.
        ablated: The model the ablations change.
        ablations: Changes to ``ablated``'s tuned hyperparameters, by label (e.g. ``{"sheaf": "diag"}``).
        cold_models: The models run on the cold-start split (content models: they score unseen items).
        cold_epochs: Epochs of every cold-start run (``None``: the tuned ones). The cold-start split has no
            validation interaction among its candidates (the held-out items' interactions are all in test),
            so no epoch can be selected: each run trains exactly this many and its final model is scored.
        dataset: The dataset of the searches and the final runs.
        cold_dataset: The cold-start dataset.
    """

    models: Sequence[str]
    seeds: Sequence[int]
    hparams: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    search: Mapping[str, Any] = field(default_factory=dict)
    model_search: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trials: int = 1
    data_options: Mapping[str, Any] = field(default_factory=dict)
    robustness: Sequence[float] = ()
    map_model: str | None = None
    ablated: str = "mm-sheaf"
    ablations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cold_models: Sequence[str] = ()
    cold_epochs: int | None = None
    dataset: str = "ml100k"
    cold_dataset: str = "ml100k-cold"

    def __post_init__(self) -> None:
        for name in ("models", "seeds", "robustness", "cold_models"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for model in self.models:
            resolve_recommender(model)  # raises on an unknown name
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct, got {list(self.models)}.")
        if self.trials < 1:
            raise ValueError(f"trials must be at least 1, got {self.trials}.")
        if self.cold_epochs is not None and self.cold_epochs < 1:
            raise ValueError(f"cold_epochs must be at least 1 (or None: the tuned epochs), got {self.cold_epochs}.")
        unknown = sorted(set(self.model_search) - set(self.models))
        if unknown:
            raise ValueError(f"model_search names {unknown}, which are not in models {list(self.models)}.")
        used = [*self.cold_models, *([self.map_model] if self.map_model else []),
                *([self.ablated] if self.ablations else [])]  # fmt: skip
        missing = sorted(set(used) - set(self.models))
        if missing:
            raise ValueError(f"{missing} are run with tuned settings but are not in models {list(self.models)}.")

    # ---------------------------------------------------------------------------------------------- search
    def space(self, model: str) -> dict[str, Any]:
        """The search space of ``model``: :attr:`search` with its :attr:`model_search` entries."""
        return {**self.search, **self.model_search.get(model, {})}

    def tune_all(self, cache: RecRunCache | None = None, *, storage: str | None = None, progress: bool = False,
                 log: Callable[[str], None] | None = None) -> RecTuning:  # fmt: skip
        """Tune every model in turn (:func:`~mmsheaf.recsys.protocol.tune` on :attr:`dataset`, validation
        Recall@20, :attr:`trials` trials over :meth:`space`); every trial is a cached run of ``cache``.

        Args:
            cache: The run cache (default :class:`~mmsheaf.recsys.protocol.RecRunCache`'s folder).
            storage: Where the studies live (``None``: embedded journal files).
            progress: Show Optuna's and the runs' progress.
            log: Called with one line per model when its search is done (e.g. ``print``).
        """
        best: dict[str, dict[str, Any]] = {}
        values: dict[str, float] = {}
        studies: list[str] = []
        keys: list[str] = []
        histories = []
        for name in self.models:
            study, found = tune(name, self.dataset, self.space(name), self.trials, hparams=self.hparams,
                                train=self.train, data_options=self.data_options, storage=storage, cache=cache,
                                progress=progress)  # fmt: skip
            best[name], values[name] = found, float(study.best_value)
            keys += complete_trial_attrs(study, "run_key")
            studies.append(study.study_name)
            trials = study_frame(study).sort_values("number")
            trials["model"], trials["best so far"] = resolve_recommender(name).display, trials["value"].cummax()
            histories.append(trials)
            if log is not None:
                log(f"{name:12s} best val Recall@20 {study.best_value:.4f}  {found}")
        return RecTuning(best, values, studies, keys, pd.concat(histories, ignore_index=True))

    # ------------------------------------------------------------------------------------------------ runs
    def specs(self, tuned: Tuned, model: str, seeds: Sequence[int] | None = None, *, dataset: str | None = None,
              extra: Mapping[str, Any] | None = None, robustness: Sequence[float] = (),
              save_embeddings: bool = False, train: Mapping[str, Any] | None = None,
              data_options: Mapping[str, Any] | None = None) -> list[RecRunSpec]:  # fmt: skip
        """One run of ``model`` per seed (default :attr:`seeds`) with its tuned settings.

        Args:
            tuned: Each model's tuned settings (:attr:`RecTuning.best`).
            model: The model.
            seeds: The seeds, in order.
            dataset: The dataset (default :attr:`dataset`).
            extra: Hyperparameters that replace tuned ones (an ablation).
            robustness: Fractions of items whose content is removed at test time.
            save_embeddings: Keep the trained embeddings.
            train: Training settings that replace tuned ones (the cold-start runs' epochs).
            data_options: Loader options added to :attr:`data_options` (a data ablation, a share of the
                training interactions).
        """
        if model not in tuned:
            raise ValueError(f"no tuned settings for {model!r}: tuned has {sorted(tuned)}.")
        best = tuned[model]
        hparams = {**best["hparams"], **(extra or {})}
        options = {**self.data_options, **(data_options or {})}
        return [RecRunSpec(dataset or self.dataset, model, hparams, {**best["train"], **(train or {})}, seed,
                           options,
                           robustness=tuple(robustness), save_embeddings=save_embeddings)
                for seed in (self.seeds if seeds is None else seeds)]  # fmt: skip

    def main_specs(self, tuned: Tuned) -> list[RecRunSpec]:
        """The final runs of the table: every model (in order), every seed, with the robustness curves; the
        runs of :attr:`map_model` keep their embeddings."""
        return [s for name in self.models
                for s in self.specs(tuned, name, robustness=self.robustness,
                                    save_embeddings=name == self.map_model)]  # fmt: skip

    def map_spec(self, tuned: Tuned) -> RecRunSpec:
        """The run whose item embeddings are mapped: :attr:`map_model`'s final run with the first seed."""
        if self.map_model is None:
            raise ValueError("this plan has no map_model.")
        first = self.seeds[:1]
        return self.specs(tuned, self.map_model, first, robustness=self.robustness, save_embeddings=True)[0]

    def ablation_specs(self, tuned: Tuned) -> dict[str, list[RecRunSpec]]:
        """The runs of each ablation (by label, in :attr:`ablations`' order): :attr:`ablated` with the change,
        every seed. A change's ``data_options`` entry changes the data instead (e.g. ``{"data_options":
        {"text": "title"}}``: titles without plots); its other entries are hyperparameters."""
        out = {}
        for label, change in self.ablations.items():
            hparams = {k: v for k, v in change.items() if k != "data_options"}
            out[label] = self.specs(tuned, self.ablated, extra=hparams, data_options=change.get("data_options"))
        return out

    def run_ablations(self, tuned: Tuned, cache: RecRunCache | None = None) -> dict[str, pd.DataFrame]:
        """The runs of each ablation (:func:`~mmsheaf.recsys.protocol.run_specs`), by label."""
        return {label: run_specs(specs, cache, desc=label) for label, specs in self.ablation_specs(tuned).items()}

    def cold_specs(self, tuned: Tuned) -> list[RecRunSpec]:
        """The cold-start runs: every model of :attr:`cold_models` (in order) on :attr:`cold_dataset`, every
        seed, for :attr:`cold_epochs` epochs."""
        train = {"epochs": self.cold_epochs} if self.cold_epochs is not None else None
        return [s for name in self.cold_models
                for s in self.specs(tuned, name, dataset=self.cold_dataset, train=train)]  # fmt: skip
