r"""Notebook 06's lists of runs and searches, from its parameters.

.. code-block:: python

    plan = SSLPlan({"simsiam": ["cosine", "l2"], "barlow": ["correlation"], "supervised": ["cross-entropy"]},
                   seeds=[0, 1], ablations={"SimSiam, no stop-gradient": {"method": "simsiam",
                   "stop_gradient": False}}, trials=8)
    tuning = plan.tune_all(cache)                       # per method, at its own similarity, on validation
    runs = run_specs(plan.main_specs(tuning.best), cache)
    transfer = run_specs(plan.main_specs(tuning.best, dataset="digits"), cache)   # no re-tuning

Every row of a method shares the method's tuned settings; a row changes only its similarity, an ablation only
what it names. The table's ``variant`` column says which (:data:`MAIN_VARIANT` for the rows of the
method x similarity grid).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from mmsheaf.runs.cache import RunCache
from mmsheaf.ssl.methods import METHODS, resolve_method
from mmsheaf.ssl.protocol import SSLRunSpec, split_params, tune
from mmsheaf.ssl.train import SSLTrainConfig

__all__ = ["MAIN_VARIANT", "SSLPlan", "SSLTuning"]

_TRAIN_FIELDS = tuple(f.name for f in fields(SSLTrainConfig))

MAIN_VARIANT = "as published"
"""The ``variant`` of the method x similarity rows (no collapse ablation)."""


@dataclass
class SSLTuning:
    """The searches' outcome: each method's winning parameters (searched names; ``{}``: the published defaults
    won), the study names and the run keys of every search run."""

    best: dict[str, dict[str, Any]]
    studies: list[str]
    trial_keys: list[str]


@dataclass(frozen=True)
class SSLPlan:
    """The runs of the self-supervised study.

    Args:
        rows: The method x similarity grid: each method (a key of :data:`~mmsheaf.ssl.methods.METHODS`) with
            the similarities it runs (each one of :attr:`~mmsheaf.ssl.methods.Method.similarities`).
        seeds: Seeds of every run of the tables.
        ablations: The collapse axis: ``{label: {"method": m, **SSLConfig or train changes}}`` (the fields of
            :class:`~mmsheaf.ssl.train.SSLTrainConfig`, e.g. ``batch_size``, go to the training config); ``m``
            must be in :attr:`rows`.
        model: :class:`~mmsheaf.ssl.methods.SSLConfig` fields shared by every method (e.g. ``dim``).
        train: :class:`~mmsheaf.ssl.train.SSLTrainConfig` fields shared by every run.
        augment: :class:`~mmsheaf.data.augment.ImageAugment` fields.
        trials: Optuna trials per trained method.
        hpo_train: Changes of ``train`` for the search's runs (a shorter epoch budget).
        dataset: The image set the searches and the main table run on.
        data_options: Options of the data set's loader.
        encoder: :class:`~mmsheaf.encoders.fusion.EncoderConfig` fields (the reviews' backbone only).
    """

    rows: Mapping[str, Sequence[str]]
    seeds: Sequence[int]
    ablations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    augment: Mapping[str, Any] = field(default_factory=dict)
    trials: int = 8
    hpo_train: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "mnist5k"
    data_options: Mapping[str, Any] = field(default_factory=dict)
    encoder: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for method, sims in self.rows.items():
            allowed = resolve_method(method).similarities
            if bad := [s for s in sims if s not in allowed]:
                raise ValueError(f"{method} takes the similarities {list(allowed)}, not {bad}.")
        for label, change in self.ablations.items():
            if change.get("method") not in self.rows:
                raise ValueError(f"ablation {label!r} must name a method of rows ({list(self.rows)}), got "
                                 f"{change.get('method')!r}.")  # fmt: skip
        if self.trials < 1:
            raise ValueError(f"trials must be at least 1, got {self.trials}.")

    def tune_all(self, cache: RunCache | None = None, *, storage: str | None = None, progress: bool = False,
                 log: Callable[[str], None] | None = None) -> SSLTuning:  # fmt: skip
        """Tune every trained method of :attr:`rows` at its own similarity (:func:`~mmsheaf.ssl.protocol.tune`,
        with :attr:`hpo_train`'s changes of the training config)."""
        best: dict[str, dict[str, Any]] = {}
        studies, keys = [], []
        for method in self.rows:
            if resolve_method(method).loss is None:
                best[method] = {}
                continue
            study, params, run_keys = tune(method, self.trials, dataset=self.dataset, model=self.model,
                                           train={**self.train, **self.hpo_train}, augment=self.augment,
                                           data_options=self.data_options, encoder=self.encoder,
                                           storage=storage, cache=cache, progress=progress)  # fmt: skip
            best[method] = params
            studies.append(study.study_name)
            keys += run_keys
            if log is not None:
                log(f"{method:10s} {'tuned ' + str(params) if params else 'published defaults kept'}")
        return SSLTuning(best, studies, keys)

    def spec(self, tuned: Mapping[str, Mapping[str, Any]], method: str, seed: int, dataset: str | None = None,
             **changes: Any) -> SSLRunSpec:  # fmt: skip
        """One run of ``method`` at its tuned settings with ``changes`` (model or training-config fields)."""
        model, train = split_params(tuned.get(method, {}))
        train_changes = {k: changes.pop(k) for k in _TRAIN_FIELDS if k in changes}
        return SSLRunSpec(dataset or self.dataset, {**self.model, "method": method, **model, **changes},
                          {**self.train, **train, **train_changes}, dict(self.augment), seed,
                          dict(self.data_options), dict(self.encoder))  # fmt: skip

    def main_specs(
        self, tuned: Mapping[str, Mapping[str, Any]], dataset: str | None = None
    ) -> list[SSLRunSpec]:
        """Every row of the method x similarity grid (in order) at its method's tuned settings, every seed."""
        return [self.spec(tuned, m, seed, dataset, similarity=None if s == resolve_method(m).default_similarity else s)
                for m, sims in self.rows.items() for s in sims for seed in self.seeds]  # fmt: skip

    def ablation_specs(self, tuned: Mapping[str, Mapping[str, Any]],
                       dataset: str | None = None) -> dict[str, list[SSLRunSpec]]:  # fmt: skip
        """Each ablation's runs (every seed), by label."""
        out = {}
        for label, change in self.ablations.items():
            change = dict(change)
            method = change.pop("method")
            out[label] = [self.spec(tuned, method, seed, dataset, **change) for seed in self.seeds]
        return out

    def displays(self) -> dict[str, str]:
        """Each method's label for tables and figures."""
        return {m: METHODS[m].display for m in self.rows}
