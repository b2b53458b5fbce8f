"""Rebuild an Optuna study whose journal was lost from the finished runs of its trials.

A run ledger keeps a notebook's runs and the journals of its studies (:mod:`mmsheaf.runs.ledger`). A ledger
exported before ``runs export`` kept journals has the runs of a study's trials but not the study: a resumed
paper run would then sample new trials, and if their best parameters differ, every later run keyed on them
too. :func:`rebuilt_studies` recreates such a study from the runs instead, without training:

- each recorded run is offered to the study's own objective with a probe trial that stops the objective at
  its ``trial.set_user_attr("run_key", key)`` call (before anything is trained); a run is a trial of the
  study exactly when the objective maps the run's parameters back to the run's key;
- the matching parameters are enqueued in the study (the order of ``runs``), the study then runs as usual,
  and each trial reads its run from the cache (the ledger seeded it), so the values, the best trial and the
  trial keys are those of the runs that were trained.

What cannot be rebuilt is the order in which the trials were drawn (their numbers) and the sampler's state;
the study carries a note saying so (:data:`REBUILT_ATTR`, a study user attribute), to be reported with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import optuna

from . import hpo
from .space import parse_space

__all__ = ["REBUILT_ATTR", "rebuild_notes", "rebuilt_studies", "trial_key"]

REBUILT_ATTR = "mmsheaf.rebuilt"
"""Study user attribute of a rebuilt study: why and from what it was rebuilt."""


class _KeyFound(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _ProbeTrial:
    """Stands in for an Optuna trial: the objective's ``set_user_attr(key_attr, key)`` ends the call."""

    def __init__(self, key_attr: str) -> None:
        self.key_attr = key_attr

    def set_user_attr(self, name: str, value: Any) -> None:
        if name == self.key_attr:
            raise _KeyFound(str(value))


def trial_key(objective: Callable[[dict[str, Any], Any], float], params: Mapping[str, Any],
              key_attr: str = "run_key") -> str:  # fmt: skip
    """The run key the objective would train for ``params``, without training it.

    Raises:
        ValueError: The objective returned without recording ``key_attr`` (it cannot be probed).
    """
    try:
        objective(dict(params), _ProbeTrial(key_attr))
    except _KeyFound as found:
        return found.key
    raise ValueError(f"the objective did not call trial.set_user_attr({key_attr!r}, ...) before returning: "
                     "only objectives that record their run key can be rebuilt from runs.")  # fmt: skip


@contextlib.contextmanager
def rebuilt_studies(runs: Mapping[str, Mapping[str, Any]],
                    params_of: Callable[[Mapping[str, Any]], Mapping[str, Any]], note: str, *,
                    key_attr: str = "run_key") -> Iterator[list[str]]:  # fmt: skip
    """While active, :func:`mmsheaf.runs.hpo.run_study_and_wait` on a study its storage lacks first rebuilds
    it from ``runs`` (module docstring); a study that exists runs as usual.

    Args:
        runs: The finished runs, ``{key: payload}`` (e.g. a ledger's records of one cache folder); their
            results must be in the run cache the objective reads.
        params_of: A run's parameters by name (a superset of a study's searched names is fine); a run
            lacking a searched name, or with a value outside the space, is not a trial of that study.
        note: Why the study was rebuilt (stored as :data:`REBUILT_ATTR`).
        key_attr: The trial user attribute under which the objective records its run key.

    Yields:
        The names of the studies rebuilt so far (filled while the block runs).

    Raises:
        ValueError: The runs hold another number of trials of a study than its ``n_trials``.
    """
    original = hpo.run_study_and_wait
    rebuilt: list[str] = []

    def rebuild(objective: Callable[[dict[str, Any], Any], float], space: Mapping[str, Any],
                cfg: hpo.StudyConfig, **kwargs: Any) -> optuna.Study:  # fmt: skip
        storage = hpo.open_storage(cfg)
        if cfg.name in {s.study_name for s in storage.get_all_studies()}:
            return original(objective, space, cfg, **kwargs)
        parsed = parse_space(space)
        trials = []
        for key, payload in runs.items():
            given = params_of(payload)
            params = {name: given[name] for name in parsed if name in given}
            if len(params) < len(parsed) or not _in_space(parsed, params):
                continue
            if trial_key(objective, params, key_attr) == key:
                trials.append(params)
        if len(trials) != cfg.n_trials:
            raise ValueError(f"study {cfg.name!r}: the runs hold {len(trials)} of its trials, not n_trials="
                             f"{cfg.n_trials}; rebuild it from a complete set of runs or let it sample anew.")  # fmt: skip
        study = optuna.create_study(study_name=cfg.name, storage=storage, direction=cfg.direction)
        study.set_user_attr(REBUILT_ATTR, note)
        for params in trials:
            study.enqueue_trial(params)
        rebuilt.append(cfg.name)
        return original(objective, space, cfg, **kwargs)

    hpo.run_study_and_wait = rebuild
    try:
        yield rebuilt
    finally:
        hpo.run_study_and_wait = original


def rebuild_notes(names: Iterable[str], storage: str | None = None) -> dict[str, str]:
    """``{study name: note}`` of the studies among ``names`` that were rebuilt (:data:`REBUILT_ATTR`), so a
    notebook can report them; studies not found in ``storage`` are skipped."""
    out = {}
    for name in names:
        cfg = hpo.StudyConfig(name, storage=storage)
        if (journal := cfg.journal_path()) is not None and not journal.is_file():
            continue  # opening a journal that is not there would create it
        try:
            study = hpo.load_study(cfg)
        except (KeyError, ValueError):
            continue
        if REBUILT_ATTR in study.user_attrs:
            out[name] = str(study.user_attrs[REBUILT_ATTR])
    return out


def _in_space(parsed: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether every value lies in its distribution (an Optuna trial accepts it as an enqueued value)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # an out-of-range value is a warning, then a new draw
    try:
        probe = optuna.create_study()
        probe.enqueue_trial(dict(params))
        trial = probe.ask()
        return all(spec.suggest(trial, name) == params[name] for name, spec in parsed.items())
    except ValueError:  # e.g. a categorical value that is not a choice
        return False
    finally:
        optuna.logging.set_verbosity(verbosity)
