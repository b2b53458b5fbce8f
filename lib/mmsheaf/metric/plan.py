"""What notebook 03 runs, built from its parameters: one search per task and loss, the final runs over seeds,
the data-efficiency runs, the modality-dropout runs and the modality ablations.

.. code-block:: python

    plan = MetricPlan(tasks=["item", "category"], losses=["arcface", "supcon"],
                      modalities={"item": ["text", "tabular"], "category": ["text", "tabular", "graph"]},
                      seeds=[0, 1, 2], train={"epochs": 12}, trials=6, hpo_train={"epochs": 4})
    tuning = plan.tune_all(cache)                                  # one Optuna study per (task, loss)
    runs = run_specs(plan.main_specs(tuning.best), cache)          # every task, loss and seed

A plan only lists runs: every run is a :class:`~mmsheaf.metric.protocol.MetricRunSpec` and every search a
:func:`~mmsheaf.metric.protocol.tune`, so the run keys and study names are those of the protocol, and the
order of the lists is fixed (tasks, then losses, then seeds), which is what the run ledgers of the paper
profile replay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..losses import resolve_loss
from ..runs.cache import RunCache
from ..runs.hpo import complete_trial_attrs
from .protocol import MetricRunSpec, run_specs, tune

__all__ = ["Ablation", "MetricPlan", "MetricTuning", "Tuned"]

Tuned = Mapping[tuple[str, str], Mapping[str, Any]]
"""Each loss's tuned hyperparameters by ``(task, loss)`` (the ``best`` of
:func:`~mmsheaf.metric.protocol.tune`)."""

Ablation = tuple[str, tuple[str, ...], list[MetricRunSpec]]
"""One modality ablation: ``(task, modalities, specs)``."""


@dataclass(frozen=True, eq=False)
class MetricTuning:
    """What :meth:`MetricPlan.tune_all` found.

    Attributes:
        best: The tuned hyperparameters by ``(task, loss)``, in the order of :meth:`MetricPlan.searches`.
        best_values: The best validation MAP@R by ``(task, loss)``, in the order of :meth:`MetricPlan.searches`.
        studies: The Optuna study names, in the order they ran.
        trial_keys: The run keys behind the complete trials, search by search in that order (what the run
            ledger keeps).
    """

    best: dict[tuple[str, str], dict[str, Any]]
    best_values: dict[tuple[str, str], float]
    studies: list[str]
    trial_keys: list[str]


@dataclass(frozen=True)
class MetricPlan:
    """The runs of the metric-learning study, from the notebook's parameters.

    Args:
        tasks: The clothing tasks (``"item"``, ``"category"``), in the order of the runs and tables.
        losses: The losses, in the order of the runs and tables.
        modalities: Each task's modalities (the encoder's, unless a run names others).
        seeds: Seeds of the final runs.
        encoder: :class:`~mmsheaf.encoders.fusion.EncoderConfig` settings shared by every run.
        train: :class:`~mmsheaf.metric.train.MetricTrainConfig` settings of the final runs.
        trials: Optuna trials per task and loss.
        hpo_train: Training settings of the searches, over ``train`` (e.g. fewer epochs).
        data_options: Options of each task's loader, by task.
        robust_losses: The losses whose final runs also record the robustness evaluations, and which are
            retrained with modality dropout.
        fraction_task: The task of the data-efficiency runs.
        fractions: Shares of the training items of the data-efficiency runs (1: all, no option).
        fraction_seeds: Seeds of the data-efficiency runs.
        modality_dropout: The encoder's modality dropout of the dropout runs.
        dropout_seeds: Seeds of the dropout runs.
        ablation_sets: Modality sets of the ablations (a set a task lacks is skipped for that task).
        ablation_seeds: Seeds of the ablations.
    """

    tasks: Sequence[str]
    losses: Sequence[str]
    modalities: Mapping[str, Sequence[str]]
    seeds: Sequence[int]
    encoder: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    trials: int = 1
    hpo_train: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    robust_losses: Sequence[str] = ()
    fraction_task: str = "item"
    fractions: Sequence[float] = ()
    fraction_seeds: Sequence[int] = (0,)
    modality_dropout: float = 0.0
    dropout_seeds: Sequence[int] = ()
    ablation_sets: Sequence[Sequence[str]] = ()
    ablation_seeds: Sequence[int] = (0,)

    def __post_init__(self) -> None:
        for name in ("tasks", "losses", "seeds", "robust_losses", "fractions", "fraction_seeds", "dropout_seeds",
                     "ablation_seeds"):  # fmt: skip
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "ablation_sets", tuple(tuple(mods) for mods in self.ablation_sets))
        for loss in self.losses:
            resolve_loss(loss)  # raises on an unknown name
        for label, names in (("tasks", self.tasks), ("losses", self.losses)):
            if len(set(names)) != len(names):
                raise ValueError(f"{label} must be distinct, got {list(names)}.")
        missing = [t for t in self.tasks if t not in self.modalities]
        if missing:
            raise ValueError(f"no modalities for the tasks {missing}: give modalities for every task.")
        unknown = sorted(set(self.robust_losses) - set(self.losses))
        if unknown:
            raise ValueError(f"robust_losses {unknown} are not in losses {list(self.losses)}.")
        if self.fractions and self.fraction_task not in self.tasks:
            raise ValueError(f"fraction_task {self.fraction_task!r} is not in tasks {list(self.tasks)}.")
        if any(not 0.0 < f <= 1.0 for f in self.fractions):
            raise ValueError(f"fractions must be in (0, 1], got {list(self.fractions)}.")
        if self.trials < 1:
            raise ValueError(f"trials must be at least 1, got {self.trials}.")

    def encoder_for(self, task: str, modalities: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
        """The encoder settings of a run on ``task``: :attr:`encoder`, the modalities (default the task's)
        and ``extra`` (e.g. ``modality_dropout``)."""
        return {**self.encoder, "modalities": list(modalities or self.modalities[task]), **extra}

    def task_options(self, task: str) -> dict[str, Any]:
        """The loader options of ``task`` (:attr:`data_options`, empty when not given)."""
        return dict(self.data_options.get(task, {}))

    # ---------------------------------------------------------------------------------------------- search
    def searches(self) -> list[tuple[str, str]]:
        """Every ``(task, loss)`` to tune, task by task."""
        return [(t, name) for t in self.tasks for name in self.losses]

    def tune_all(self, cache: RunCache | None = None, *, storage: str | None = None, progress: bool = False,
                 log: Callable[[str], None] | None = None) -> MetricTuning:  # fmt: skip
        """Tune every loss on every task (:func:`~mmsheaf.metric.protocol.tune` on validation MAP@R, the loss's
        own space, :attr:`trials` trials with the training of :attr:`hpo_train` over :attr:`train`).

        The searches run one after another in :meth:`searches`' order, each on every worker of the executor
        (:func:`~mmsheaf.runs.hpo.run_study`).

        Args:
            cache: The run cache (default :func:`~mmsheaf.metric.protocol.metric_cache`).
            storage: Where the studies live (``None``: embedded journal files).
            progress: Show Optuna's and the runs' progress.
            log: Called with one line per search when it is done (e.g. ``print``).
        """
        best: dict[tuple[str, str], dict[str, Any]] = {}
        values: dict[tuple[str, str], float] = {}
        studies: list[str] = []
        keys: list[str] = []
        for t, name in self.searches():
            study, found = tune(name, t, self.trials, encoder=self.encoder_for(t),
                                train={**self.train, **self.hpo_train}, data_options=self.task_options(t),
                                storage=storage, cache=cache, progress=progress)  # fmt: skip
            best[(t, name)], values[(t, name)] = found, float(study.best_value)
            keys += complete_trial_attrs(study, "run_key")
            studies.append(study.study_name)
            if log is not None:
                log(f"{t:9s} {name:18s} best val MAP@R {study.best_value:.4f}  {found}")
        order = self.searches()
        return MetricTuning({p: best[p] for p in order}, {p: values[p] for p in order}, studies, keys)

    # ------------------------------------------------------------------------------------------------ runs
    def specs(self, tuned: Tuned, task: str, loss: str, seeds: Sequence[int] | None = None, *,
              modalities: Sequence[str] | None = None, data_extra: Mapping[str, Any] | None = None,
              evaluate: Sequence[str] | None = None, **encoder_extra: Any) -> list[MetricRunSpec]:  # fmt: skip
        """One run of ``loss`` on ``task`` per seed (default :attr:`seeds`) with its tuned hyperparameters and
        the full training budget (:attr:`train`).

        Args:
            tuned: The tuned hyperparameters (:attr:`MetricTuning.best`).
            task: The task.
            loss: The loss.
            seeds: The seeds, in order.
            modalities: The encoder's modalities (default the task's).
            data_extra: Loader options over the task's (e.g. ``{"train_fraction": 0.5}``).
            evaluate: Extra evaluations; default ``("robustness",)`` for :attr:`robust_losses`, none otherwise.
            **encoder_extra: Encoder settings over :attr:`encoder` (e.g. ``modality_dropout``).
        """
        if (task, loss) not in tuned:
            raise ValueError(f"no tuned hyperparameters for {(task, loss)}: tuned has {sorted(tuned)}.")
        evaluate = ("robustness",) if evaluate is None and loss in self.robust_losses else evaluate or ()
        encoder = self.encoder_for(task, modalities, **encoder_extra)
        options = {**self.task_options(task), **(data_extra or {})}
        return [MetricRunSpec(task, loss, tuned[(task, loss)], encoder, self.train, seed, options, tuple(evaluate))
                for seed in (self.seeds if seeds is None else seeds)]  # fmt: skip

    def main_specs(self, tuned: Tuned) -> list[MetricRunSpec]:
        """The final runs of the table: every task, loss and seed (in that nesting); the runs of
        :attr:`robust_losses` also record the robustness evaluations."""
        return [s for t in self.tasks for name in self.losses for s in self.specs(tuned, t, name)]

    def fraction_specs(self, tuned: Tuned) -> list[MetricRunSpec]:
        """The data-efficiency runs: every loss (in order) on :attr:`fraction_task` with each share of the
        training items, :attr:`fraction_seeds`; no extra evaluation."""
        return [s for name in self.losses for f in self.fractions
                for s in self.specs(tuned, self.fraction_task, name, self.fraction_seeds,
                                    data_extra={"train_fraction": f} if f < 1 else None, evaluate=())]  # fmt: skip

    def run_fractions(self, tuned: Tuned, cache: RunCache | None = None) -> pd.DataFrame:
        """The runs of :meth:`fraction_specs` (:func:`~mmsheaf.metric.protocol.run_specs`) with a ``fraction``
        column (the share of the training items)."""
        specs = self.fraction_specs(tuned)
        runs = run_specs(specs, cache, desc="data efficiency")
        runs["fraction"] = [s.data_options.get("train_fraction", 1.0) for s in specs]
        return runs

    def dropout_specs(self, tuned: Tuned) -> list[MetricRunSpec]:
        """The modality-dropout runs: every task and robust loss, :attr:`dropout_seeds`, the encoder with
        :attr:`modality_dropout` (and the robustness evaluations)."""
        return [s for t in self.tasks for name in self.robust_losses
                for s in self.specs(tuned, t, name, self.dropout_seeds,
                                    modality_dropout=self.modality_dropout)]  # fmt: skip

    def ablation_specs(self, tuned: Tuned, winners: Mapping[str, str]) -> list[Ablation]:
        """The modality ablations: for each task (in order) its winning loss on each modality set of
        :attr:`ablation_sets` that the task has, :attr:`ablation_seeds`, no extra evaluation.

        Args:
            tuned: The tuned hyperparameters.
            winners: The winning loss of each task (e.g. the ``winner`` column of
                :func:`~mmsheaf.metric.tables.verdicts`, indexed by task).

        Returns:
            ``(task, modalities, specs)`` per ablation, in order.
        """
        out: list[Ablation] = []
        for t in self.tasks:
            for mods in self.ablation_sets:
                if set(mods) <= set(self.modalities[t]):
                    specs = self.specs(tuned, t, winners[t], self.ablation_seeds, modalities=mods, evaluate=())
                    out.append((t, mods, specs))
        return out

    def run_ablations(self, tuned: Tuned, winners: Mapping[str, str],
                      cache: RunCache | None = None) -> pd.DataFrame:  # fmt: skip
        """The runs of :meth:`ablation_specs` (:func:`~mmsheaf.metric.protocol.run_specs`), one frame, with
        ``modalities`` (``"text + tabular"``) and ``n_modalities``."""
        frames = [run_specs(specs, cache, desc=f"{t} {'+'.join(mods)}", progress=False)
                  .assign(modalities=" + ".join(mods), n_modalities=len(mods))
                  for t, mods, specs in self.ablation_specs(tuned, winners)]  # fmt: skip
        return pd.concat(frames, ignore_index=True)
