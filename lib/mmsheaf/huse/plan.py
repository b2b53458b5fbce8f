"""Notebook 04's lists of runs and searches, from its parameters.

.. code-block:: python

    plan = HusePlan(VARIANTS, SEEDS, encoder=ENCODER, train=TRAIN, trials=HPO_TRIALS, hpo_train=HPO_TRAIN)
    tuning = plan.tune_all(cache)                # each row's own hyperparameters, same trial budget
    runs = run_specs(plan.final_specs(tuning.best), cache)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmsheaf.huse.protocol import VARIANTS, HuseRunSpec, resolve_variant, tune
from mmsheaf.runs.cache import RunCache
from mmsheaf.runs.hpo import complete_trial_attrs

__all__ = ["HusePlan", "HuseTuning"]


@dataclass
class HuseTuning:
    """The searches' outcome: each row's tuned hyperparameters, study names and the run keys of the trials."""

    best: dict[str, dict[str, Any]]
    studies: list[str]
    trial_keys: list[str]


@dataclass(frozen=True)
class HusePlan:
    """The runs of the HUSE study.

    Args:
        variants: Rows of :data:`~mmsheaf.huse.protocol.VARIANTS`, in table order.
        seeds: Seeds of the final runs.
        encoder: :class:`~mmsheaf.encoders.fusion.EncoderConfig` fields shared by every row.
        train: :class:`~mmsheaf.huse.train.HuseTrainConfig` fields shared by every row (final runs).
        trials: Optuna trials per row with hyperparameters of its own.
        hpo_train: Changes of ``train`` for the search's trials (a shorter epoch budget).
        data_options: Options of :func:`~mmsheaf.huse.protocol.load_huse_task`.
        robust_variants: Rows whose final runs also record the missing-text curve.
        robustness: Fractions of test queries whose text is removed.
    """

    variants: Sequence[str]
    seeds: Sequence[int]
    encoder: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    trials: int = 1
    hpo_train: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)
    robust_variants: Sequence[str] = ()
    robustness: Sequence[float] = ()

    def __post_init__(self) -> None:
        for name in ("variants", "seeds", "robust_variants", "robustness"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for v in self.variants:
            resolve_variant(v)
        if self.trials < 1:
            raise ValueError(f"trials must be at least 1, got {self.trials}.")
        if missing := sorted(set(self.robust_variants) - set(self.variants)):
            raise ValueError(f"robust_variants {missing} are not in variants {list(self.variants)}.")

    def tune_all(self, cache: RunCache | None = None, *, storage: str | None = None, progress: bool = False,
                 log: Callable[[str], None] | None = None) -> HuseTuning:  # fmt: skip
        """Tune every row with a search space (:func:`~mmsheaf.huse.protocol.tune`, :attr:`trials` trials on
        the validation MAP@R of the fused embeddings, :attr:`hpo_train` epochs); the others keep ``{}``."""
        train = {**self.train, **self.hpo_train}
        best: dict[str, dict[str, Any]] = {}
        studies, keys = [], []
        for v in self.variants:
            study, params = tune(v, self.trials, encoder=self.encoder, train=train, data_options=self.data_options,
                                 storage=storage, cache=cache, progress=progress)  # fmt: skip
            best[v] = params
            if study is not None:
                studies.append(study.study_name)
                keys += complete_trial_attrs(study, "run_key")
            if log is not None:
                log(f"{v:15s} tuned {params}")
        return HuseTuning(best, studies, keys)

    def final_specs(self, tuned: Mapping[str, Mapping[str, Any]]) -> list[HuseRunSpec]:
        """Every row (in order) at its tuned hyperparameters, every seed; the :attr:`robust_variants` record
        the missing-text curve."""
        return [HuseRunSpec(v, dict(tuned.get(v, {})), dict(self.encoder), dict(self.train), seed,
                            dict(self.data_options), self.robustness if v in self.robust_variants else ())
                for v in self.variants for seed in self.seeds]  # fmt: skip

    def displays(self) -> dict[str, str]:
        """Each row's label for tables and figures."""
        return {v: VARIANTS[v].display for v in self.variants}
