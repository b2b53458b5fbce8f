"""Hyperparameter search with Optuna: one trial budget per study, shared by any number of worker processes.

.. code-block:: python

    space = {                                   # e.g. the ``HPO_SPACE`` block of a notebook's params YAML
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "layers": {"type": "int", "low": 1, "high": 4},
        "d": {"type": "categorical", "choices": [1, 2, 3]},
        "epochs": 200,                          # not a mapping: a fixed value, passed through as is
    }
    cfg = StudyConfig("lightgcn-movielens", n_trials=50, seed=0)

    def objective(params: dict, trial: optuna.Trial) -> float:
        return train_recommender(**params).val_recall_at_20

    study = run_study(objective, space, cfg)    # the same call in every worker process
    save_study(study, paths.cache_root() / "hpo" / cfg.name)   # trials.csv, best.json
    best_params(study, space)                   # the best trial's parameters plus the fixed values

The search space is parsed by :mod:`mmsheaf.runs.space`; the study lives in the storage of
:mod:`mmsheaf.runs.storage` (an embedded journal file by default, or any SQLAlchemy URL).

**Budget.** ``StudyConfig.n_trials`` is the study's *total* number of trials, whoever runs them: every
trial first reserves one of the slots ``0 .. n_trials - 1`` (:mod:`mmsheaf.runs.budget`), so the workers
together run exactly ``n_trials`` trials, never more, and a rerun with a larger ``n_trials`` runs only the
missing ones. Each trial counts, whatever its outcome (complete, pruned, or failed with an exception in
``catch``), except an interrupted one: a trial stopped by ``KeyboardInterrupt`` (a Jupyter interrupt) or left
``RUNNING`` by a worker process that died (killed, machine session ended) gives its slot back, and the next
:func:`run_study` reruns that slot (a dead worker's trial with its own parameters, by Optuna's
``RetryHeartbeatStaleTrialCallback``).

**Reproducibility.** The sampler of slot ``k`` is seeded with ``seed + k``: one worker gives the same trials on
every run, also when resumed with a larger budget; parallel workers keep the budget, not the interleaving.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from ..atomic import write_text_atomic
from .budget import SLOT_ATTR, RetryDeadTrial, counted_trials, in_slot, reclaim_slot, reserve_slot
from .executor import DaskExecutor, Executor, InProcess, shared_executor
from .space import FixedParam, parse_space, suggest
from .storage import journal_path, optuna_storage, storage_kind

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "StudyConfig",
    "best_params",
    "complete_trial_attrs",
    "load_study",
    "open_storage",
    "run_study",
    "run_study_and_wait",
    "save_study",
    "study_frame",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --------------------------------------------------------------------------------------------------------
# Study configuration and storage
# --------------------------------------------------------------------------------------------------------


def _tpe(cfg: StudyConfig, seed: int | None) -> optuna.samplers.BaseSampler:
    # constant_liar (Optuna's default since 4.x) makes parallel workers avoid each other's running trials.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials, constant_liar=True)


def _random(cfg: StudyConfig, seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: dict[str, Callable[[StudyConfig, int | None], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": _random,
}
"""Sampler factories ``(cfg, seed) -> sampler`` by name (``StudyConfig.sampler``)."""

PRUNERS: dict[str, Callable[[StudyConfig], optuna.pruners.BasePruner]] = {
    "none": lambda cfg: optuna.pruners.NopPruner(),
    "median": lambda cfg: optuna.pruners.MedianPruner(n_startup_trials=cfg.n_startup_trials),
}
"""Pruner factories ``cfg -> pruner`` by name (``StudyConfig.pruner``). Pruning needs an objective that calls
``trial.report(value, step)`` and raises ``optuna.TrialPruned`` when ``trial.should_prune()``."""


@dataclass(frozen=True)
class StudyConfig:
    """One hyperparameter search (validated on construction).

    Args:
        name: Study name: letters, digits, ``.``, ``_``, ``-`` (it also names the default journal file).
        storage: Where the study lives, shared by its workers. ``None``: the embedded journal file
            ``paths.cache_root()/"optuna"/"<name>.journal"`` (several processes on one machine). A string
            with ``://``: any SQLAlchemy URL for Optuna's ``RDBStorage``, e.g. ``"sqlite:////abs/hpo.db"``
            (one machine) or ``"postgresql://user:password@host:5432/db"`` (workers on several machines; the
            driver, e.g. ``psycopg2``, must be installed). Any other string: the path of a journal file,
            relative paths inside ``paths.cache_root()/"optuna"``.
        direction: ``"maximize"`` (e.g. validation Recall@20) or ``"minimize"``.
        n_trials: The study's total budget of trials, shared by all workers (see :func:`run_study`).
        seed: Base seed of the sampler (slot ``k`` uses ``seed + k``); ``None``: unseeded.
        sampler: A name of :data:`SAMPLERS` (``"tpe"``, ``"random"``).
        pruner: A name of :data:`PRUNERS` (``"none"``, ``"median"``); ``None`` means ``"none"``.
        timeout: Seconds after which a worker reserves no new trial (the running one finishes); ``None``:
            no limit. Per worker, counted from the start of :func:`run_study`.
        n_startup_trials: Random trials before TPE models the results (and trials before the median pruner
            prunes).
        heartbeat_interval: With a SQLAlchemy URL, seconds between the heartbeats of a running trial
            (Optuna's ``RDBStorage`` heartbeats; a journal has none, see :mod:`mmsheaf.runs.budget`).
        grace_period: With a SQLAlchemy URL, seconds without a heartbeat after which a running trial's worker
            is taken for dead, on any machine, and its trial is rerun; ``None``: twice the interval.
    """

    name: str
    storage: str | None = None
    direction: Literal["maximize", "minimize"] = "maximize"
    n_trials: int = 50
    seed: int | None = 0
    sampler: str = "tpe"
    pruner: str | None = "none"
    timeout: float | None = None
    n_startup_trials: int = 10
    heartbeat_interval: int = 60
    grace_period: int | None = None

    def __post_init__(self) -> None:
        if self.pruner is None:
            object.__setattr__(self, "pruner", "none")
        if self.timeout is not None:
            object.__setattr__(self, "timeout", float(self.timeout))

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        checks = [
            (
                isinstance(self.name, str) and bool(_NAME_RE.match(self.name)),
                (
                    "name must be letters, digits, '.', '_' or '-' (starting with a letter or digit), "
                    f"got {self.name!r}"
                ),
            ),
            (
                self.storage is None or (isinstance(self.storage, str) and self.storage.strip() != ""),
                f"storage must be None, a SQLAlchemy URL or a journal file path, got {self.storage!r}",
            ),
            (
                self.direction in ("maximize", "minimize"),
                f"direction must be 'maximize' or 'minimize', got {self.direction!r}",
            ),
            (
                is_int(self.n_trials) and self.n_trials >= 1,
                f"n_trials must be an int >= 1, got {self.n_trials!r}",
            ),
            (
                self.seed is None or (is_int(self.seed) and self.seed >= 0),
                f"seed must be None or an int >= 0, got {self.seed!r}",
            ),
            (
                self.sampler in SAMPLERS,
                f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}",
            ),
            (self.pruner in PRUNERS, f"pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}"),
            (
                self.timeout is None or (self.timeout > 0 and math.isfinite(self.timeout)),
                f"timeout must be None or a positive number of seconds, got {self.timeout!r}",
            ),
            (
                is_int(self.n_startup_trials) and self.n_startup_trials >= 0,
                f"n_startup_trials must be an int >= 0, got {self.n_startup_trials!r}",
            ),
            (
                is_int(self.heartbeat_interval) and self.heartbeat_interval >= 1,
                f"heartbeat_interval must be an int >= 1 (seconds), got {self.heartbeat_interval!r}",
            ),
            (
                self.grace_period is None or (is_int(self.grace_period) and self.grace_period >= 1),
                f"grace_period must be None or an int >= 1 (seconds), got {self.grace_period!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"StudyConfig: {message}.")

    def journal_path(self) -> Path | None:
        """The journal file of the study, or ``None`` when :attr:`storage` is a SQLAlchemy URL."""
        return journal_path(self.storage, self.name)


def open_storage(cfg: StudyConfig) -> BaseStorage:
    """The Optuna storage of ``cfg`` (:attr:`StudyConfig.storage`, see :mod:`mmsheaf.runs.storage`), with
    Optuna's heartbeats and :class:`~mmsheaf.runs.budget.RetryDeadTrial` for a database."""
    return optuna_storage(cfg.storage, cfg.name, heartbeat_interval=cfg.heartbeat_interval,
                          grace_period=cfg.grace_period, stale_trial_callback=RetryDeadTrial())  # fmt: skip


def _direction(cfg: StudyConfig) -> StudyDirection:
    return StudyDirection.MAXIMIZE if cfg.direction == "maximize" else StudyDirection.MINIMIZE


def _load(cfg: StudyConfig, storage: BaseStorage, seed: int | None) -> optuna.Study:
    return optuna.load_study(
        study_name=cfg.name,
        storage=storage,
        sampler=SAMPLERS[cfg.sampler](cfg, seed),
        pruner=PRUNERS[cfg.pruner](cfg),
    )


def load_study(cfg: StudyConfig) -> optuna.Study:
    """Load an existing study of ``cfg`` (e.g. to collect results after parallel workers finished).

    Raises:
        ValueError: if the storage holds no study named ``cfg.name``.
    """
    storage = open_storage(cfg)
    try:
        return _load(cfg, storage, cfg.seed)
    except KeyError:
        raise ValueError(
            f"No study named {cfg.name!r} in the {storage_kind(storage)} storage "
            f"{cfg.storage or cfg.journal_path()}: "
            "run run_study first (or check the name and storage)."
        ) from None


# --------------------------------------------------------------------------------------------------------
# The search loop
# --------------------------------------------------------------------------------------------------------


def run_study(
    objective: Callable[[dict[str, Any], optuna.Trial], float],
    space: Mapping[str, Any],
    cfg: StudyConfig,
    *,
    progress: bool = True,
    catch: Iterable[type[Exception]] | type[Exception] = (),
    executor: Executor | None = None,
) -> optuna.Study:
    r"""Create or load the study of ``cfg`` and run trials until its budget of ``cfg.n_trials`` is used up.

    Call it in as many processes as you like (the same ``cfg``, e.g. from a worker script): they share the
    study and its budget. Before each trial a worker reserves a budget slot ``k`` in ``0 .. n_trials - 1``
    (:func:`~mmsheaf.runs.budget.reserve_slot`: exclusive in every Optuna storage), and a worker that finds
    all slots taken stops, so the study holds at most ``n_trials`` trials from :func:`run_study` that were
    not interrupted (exactly ``n_trials`` once all workers return) and can never overshoot, whatever the
    timing. A later call with a larger ``n_trials`` runs the missing slots only (trial numbers continue). The
    slot is stored in each trial's user attribute :data:`~mmsheaf.runs.budget.SLOT_ATTR`.

    Interrupted trials are rerun: before taking a new slot, a worker fails the trials of dead workers
    (Optuna's heartbeats in a database; the process ids of this host in a journal) and claims the rerun of
    one :func:`~mmsheaf.runs.budget.interrupted_trials` (:func:`~mmsheaf.runs.budget.reclaim_slot`), then
    runs slot ``k`` again with the same seeded sampler (a dead worker's trial with its own parameters, queued
    by Optuna's ``RetryHeartbeatStaleTrialCallback``), so a paper run killed and restarted ends with the same
    number of complete trials as an uninterrupted one.

    Caveats: in a journal, a worker on another machine that dies mid-trial is not detected (its trial stays
    ``RUNNING``; fail it by hand and raise ``n_trials`` to replace it); in a database, a dead worker's trial
    is rerun once its heartbeat is older than ``cfg.grace_period``, by whichever :func:`run_study` looks
    next. Trials added around :func:`run_study` (``study.optimize`` called directly) use no slot. The empty
    marker studies are listed next to the study (``optuna.get_all_study_names``, optuna-dashboard). Optuna
    logs one INFO line per trial: ``optuna.logging.set_verbosity(optuna.logging.WARNING)`` keeps only the
    progress bar.

    A finished study is only read, never written: a rerun from a seeded run ledger leaves its journal as is.

    Args:
        objective: ``(params, trial) -> value`` with ``params`` from :func:`~mmsheaf.runs.space.suggest`
            (fixed values included). It may use ``trial`` to report intermediate values for pruning.
        space: The search space (see :func:`~mmsheaf.runs.space.parse_space`).
        cfg: The study.
        progress: Show a tqdm bar of the study's finished trials (all workers').
        catch: Exception types that mark the trial as failed and go on with the next one; other exceptions
            mark it as failed and propagate. Failed trials use their slot (interrupted ones excepted).
        executor: Where the trials run (default the process's shared one). On a Dask cluster every worker runs
            this loop on the shared study (exact budget) and this call waits; a remote scheduler needs a
            database server every worker reaches (a journal file reaches this machine's workers only).

    Returns:
        The study, freshly loaded. Trials of other workers may still be running when this worker returns:
        wait for them (e.g. join their processes) and call :func:`load_study` to collect everything.
    """
    from tqdm import tqdm

    executor = executor if executor is not None else shared_executor()
    if isinstance(executor, DaskExecutor):
        return _run_study_on_workers(objective, space, cfg, executor, progress=progress, catch=catch)
    parsed = parse_space(space)
    catch = tuple(catch) if isinstance(catch, Iterable) else (catch,)
    storage = open_storage(cfg)
    try:  # load first: a journal records every create_study call, even one that finds the study there
        study = _load(cfg, storage, cfg.seed)
    except KeyError:
        study = optuna.create_study(
            study_name=cfg.name,
            storage=storage,
            direction=cfg.direction,
            sampler=SAMPLERS[cfg.sampler](cfg, cfg.seed),
            pruner=PRUNERS[cfg.pruner](cfg),
            load_if_exists=True,  # another worker may create it in between
        )
    if study.directions != [_direction(cfg)]:
        raise ValueError(
            f"Study {cfg.name!r} exists with direction(s) {[d.name.lower() for d in study.directions]}, "
            f"not {cfg.direction!r}: use the study's direction or another name."
        )

    def func(trial: optuna.Trial) -> float:
        return float(objective(suggest(trial, parsed), trial))

    start = time.monotonic()
    bar = tqdm(total=cfg.n_trials, initial=len(counted_trials(study)), desc=f"hpo {cfg.name}", unit="trial",
               disable=not progress)  # fmt: skip
    try:
        while cfg.timeout is None or time.monotonic() - start < cfg.timeout:
            slot = reclaim_slot(_load(cfg, storage, None))
            if slot is None:
                slot = reserve_slot(storage, cfg.name, cfg.n_trials)
            if slot is None:
                break
            # The same study, with the sampler of this slot: reproducible per slot, different across workers.
            slot_study = _load(cfg, storage, None if cfg.seed is None else cfg.seed + slot)
            slot_study.optimize(in_slot(func, slot), n_trials=1, catch=catch)
            if progress:
                bar.n = min(len(counted_trials(slot_study)), cfg.n_trials)
                try:
                    bar.set_postfix_str(f"best {slot_study.best_value:.4g}", refresh=False)
                except ValueError:  # no complete trial yet
                    pass
                bar.refresh()
    finally:
        bar.close()
    return _load(cfg, storage, cfg.seed)


def _run_study_on_workers(objective: Callable[[dict[str, Any], optuna.Trial], float], space: Mapping[str, Any],
                          cfg: StudyConfig, executor: DaskExecutor, *, progress: bool,
                          catch: Iterable[type[Exception]] | type[Exception]) -> optuna.Study:  # fmt: skip
    """:func:`run_study` in every worker of ``executor`` at once (each the in-process loop on the shared study)."""
    from tqdm import tqdm

    url = cfg.storage or ""
    if ":memory:" in url or (executor.cluster is None and not url.startswith(("postgresql", "mysql"))):
        raise ValueError(f"study {cfg.name!r}: storage {url or 'journal'!r} does not reach a remote scheduler's "
                         "workers: give a database server (storage='postgresql+psycopg2://...').")  # fmt: skip
    storage = open_storage(cfg)
    with tqdm(total=cfg.n_trials, desc=f"hpo {cfg.name} ({executor.workers} workers)", unit="trial",
              disable=not progress) as bar:  # fmt: skip

        def poll() -> None:
            with contextlib.suppress(KeyError):  # the study exists once a worker created it
                bar.n = min(len(counted_trials(_load(cfg, storage, None))), cfg.n_trials)
                bar.refresh()

        executor.run_everywhere(run_study, objective, space, cfg, progress=False, catch=catch,
                                executor=InProcess(executor.threads), poll=poll)  # fmt: skip
    if len(counted_trials(study := _load(cfg, storage, cfg.seed))) < cfg.n_trials:
        raise RuntimeError(f"study {cfg.name!r}: the workers stopped short of {cfg.n_trials} trials")
    return study


# ------------------------------------------------------------------------------------------------- Results


def run_study_and_wait(
    objective: Callable[[dict[str, Any], optuna.Trial], float],
    space: Mapping[str, Any],
    cfg: StudyConfig,
    *,
    progress: bool = True,
    catch: Iterable[type[Exception]] | type[Exception] = (),
    poll_s: float = 5.0,
) -> optuna.Study:
    """:func:`run_study`, then wait until no trial of the study is running, so that every worker returns the
    same complete study and the same best trial.

    :func:`run_study` returns as soon as this worker finds no budget slot left, while another worker's last
    trial may still run: a caller that takes :func:`best_params` then can miss the best trial and train its
    final runs with other settings than a worker that returns later (seen with two workers of notebook 04).
    Here the worker polls every ``poll_s`` seconds; a running trial of a worker that died meanwhile is rerun
    by this worker (the next :func:`run_study` call fails it and claims its rerun).
    """
    while True:
        run_study(objective, space, cfg, progress=progress, catch=catch)
        study = load_study(cfg)
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return study
        time.sleep(poll_s)


def study_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, by number: ``number, state, value, params_<name>..., duration`` (seconds; NaN
    while running), ``datetime_start, datetime_complete`` and ``slot`` (:data:`SLOT_ATTR`, ``<NA>`` for
    trials not run by :func:`run_study`)."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    names = sorted({name for t in trials for name in t.params})
    rows = []
    for t in trials:
        duration = t.duration.total_seconds() if t.duration is not None else math.nan
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "value": t.value}
        row.update({f"params_{name}": t.params.get(name) for name in names})
        row.update(
            duration=duration,
            datetime_start=t.datetime_start,
            datetime_complete=t.datetime_complete,
            slot=t.user_attrs.get(SLOT_ATTR),
        )
        rows.append(row)
    columns = ["number", "state", "value", *(f"params_{n}" for n in names), "duration", "datetime_start",
               "datetime_complete", "slot"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    frame["number"] = frame["number"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    frame["duration"] = frame["duration"].astype("float64")
    frame["slot"] = frame["slot"].astype("Int64")
    return frame


def complete_trial_attrs(study: optuna.Study, name: str) -> list[Any]:
    """User attribute ``name`` of the study's complete trials that have it, by trial number: e.g. the keys of
    the cached runs behind the trials (failed, pruned and interrupted trials left no complete run)."""
    trials = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    return [t.user_attrs[name] for t in trials if name in t.user_attrs]


def best_params(study: optuna.Study, space: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of the best complete trial; with ``space``, its fixed values too (in ``space``'s order).

    Raises:
        ValueError: if the study has no complete trial yet.
    """
    try:
        best = study.best_trial
    except ValueError:
        raise ValueError(
            f"Study {study.study_name!r} has no complete trial yet: run run_study (or see why trials failed "
            "in study_frame)."
        ) from None
    if space is None:
        return dict(best.params)
    parsed = parse_space(space)
    out = {n: (s.value if isinstance(s, FixedParam) else best.params[n]) for n, s in parsed.items()}
    out.update({n: v for n, v in best.params.items() if n not in out})
    return out


def save_study(study: optuna.Study, folder: str | Path) -> dict[str, Path]:
    """Write ``trials.csv`` (:func:`study_frame`) and ``best.json`` into ``folder``, each atomically.

    ``best.json`` holds ``study, direction, storage`` (:func:`storage_kind`), ``n_trials`` (trials in the
    study), ``states`` (count per state), ``best_number, best_value, best_params`` (``null`` without a
    complete trial) and ``written`` (UTC time).

    Returns:
        ``{"trials": <folder>/trials.csv, "best": <folder>/best.json}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = study_frame(study)
    try:
        best = study.best_trial
    except ValueError:
        best = None
    states = frame["state"].value_counts().sort_index()
    summary = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "storage": storage_kind(study),
        "n_trials": len(frame),
        "states": {str(k): int(v) for k, v in states.items()},
        "best_number": None if best is None else best.number,
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else dict(best.params),
        "written": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    out = {"trials": folder / "trials.csv", "best": folder / "best.json"}
    write_text_atomic(out["trials"], frame.to_csv(index=False))
    write_text_atomic(out["best"], json.dumps(summary, indent=1, allow_nan=True, default=str) + "\n")
    return out
