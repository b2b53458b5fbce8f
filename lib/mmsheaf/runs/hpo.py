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

**Storage.** ``StudyConfig.storage=None`` keeps the study in an embedded journal file,
``paths.cache_root()/"optuna"/"<name>.journal"`` (Optuna's ``JournalStorage`` over a
``JournalFileBackend``): no server, safe for several processes on one machine. Any SQLAlchemy URL
(``sqlite:///...``, ``postgresql://user:pass@host/db``, ``mysql+pymysql://...``) selects Optuna's
``RDBStorage`` instead (a database server is what workers on several machines share); any other string is
the path of a journal file (relative paths are taken inside ``paths.cache_root()/"optuna"``).

**Budget.** ``StudyConfig.n_trials`` is the study's *total* number of trials, whoever runs them: every
trial first reserves one of the slots ``0 .. n_trials - 1`` (see :func:`run_study`), so the workers together
run exactly ``n_trials`` trials, never more, and a rerun with a larger ``n_trials`` runs only the missing
ones. Each trial counts, whatever its outcome (complete, pruned, or failed with an exception in ``catch``),
except an interrupted one: a trial stopped by ``KeyboardInterrupt`` (a Jupyter interrupt) or left
``RUNNING`` by a worker process that died (killed, machine session ended) gives its slot back, and the next
:func:`run_study` reruns that slot (see :func:`interrupted_trials`).

**Reproducibility.** The sampler of the trial in slot ``k`` is seeded with ``seed + k``. A single worker
therefore gives the same trials on every run, and a study resumed with a larger budget gives the same
trials as one run with that budget from the start; parallel workers draw different random numbers
(interleaving between processes is not reproducible, only the budget is).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
import pandas as pd
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState

from .. import paths
from ..atomic import write_text_atomic

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "SLOT_ATTR",
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "StudyConfig",
    "best_params",
    "complete_trial_attrs",
    "interrupted_trials",
    "load_study",
    "open_storage",
    "parse_space",
    "run_study",
    "save_study",
    "storage_kind",
    "study_frame",
    "suggest",
]

SLOT_ATTR = "mmsheaf.slot"
"""User attribute of each trial run by :func:`run_study`: its budget slot (``0 .. n_trials - 1``)."""

SLOT_SEPARATOR = "#slot-"
"""Slot ``k`` of study ``name`` is reserved by creating the (empty) study ``f"{name}#slot-{k}"``."""

OWNER_ATTR = "mmsheaf.owner"
"""User attribute of each trial run by :func:`run_study`: ``"<host>:<pid>"`` of the worker process running it."""

INTERRUPTED_ATTR = "mmsheaf.interrupted"
"""User attribute set on a trial whose slot was given back: ``"KeyboardInterrupt"`` or ``"worker died"``."""

RERUN_SEPARATOR = "#rerun-of-"
"""The rerun of interrupted trial ``t`` (slot ``k``) is claimed by creating ``f"{name}#slot-{k}#rerun-of-{t}"``."""

FINISHED_STATES: tuple[TrialState, ...] = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

SQLITE_BUSY_TIMEOUT_S = 60.0
"""How long a SQLite writer waits for the database lock before "database is locked" (Python's default: 5)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CATEGORICAL_TYPES = (type(None), bool, int, float, str)


# --------------------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloatParam:
    """A float in :math:`[low, high]`, on a log scale if ``log``, on a grid of ``step`` if given."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class IntParam:
    """An int in :math:`[low, high]` (both included), every ``step``-th one, on a log scale if ``log``."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class CategoricalParam:
    """One of ``choices`` (``None``, bools, ints, floats or strings)."""

    choices: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))


@dataclass(frozen=True)
class FixedParam:
    """A value passed to the objective as is, not searched (and not stored in the trial)."""

    value: Any

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return self.value


ParamSpec = FloatParam | IntParam | CategoricalParam | FixedParam

_SPEC_KEYS: dict[str, tuple[set[str], set[str]]] = {  # type -> (required keys, optional keys)
    "float": ({"low", "high"}, {"log", "step"}),
    "int": ({"low", "high"}, {"log", "step"}),
    "categorical": ({"choices"}, set()),
    "fixed": ({"value"}, set()),
}


def _number(key: str, field: str, value: Any, integer: bool) -> float | int:
    """A finite number (ints only if ``integer``); numeric strings are accepted for floats (PyYAML 1.1
    reads ``1e-4`` without a dot as a string)."""
    if isinstance(value, str) and not integer:
        try:
            value = float(value)
        except ValueError:
            pass
    if integer:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"Search space {key!r}: {field} must be an int, got {value!r}.")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Search space {key!r}: {field} must be a finite number, got {value!r}.")
    return float(value)


def _parse_param(key: str, spec: Any) -> ParamSpec:
    if not isinstance(spec, Mapping):
        return FixedParam(spec)
    if "type" not in spec:
        raise ValueError(
            f"Search space {key!r}: a mapping needs a 'type' ({', '.join(_SPEC_KEYS)}); to fix a mapping "
            f"value, write {{type: fixed, value: ...}}."
        )
    kind = spec["type"]
    if kind not in _SPEC_KEYS:
        raise ValueError(
            f"Search space {key!r}: unknown type {kind!r}; use one of {', '.join(map(repr, _SPEC_KEYS))}."
        )
    required, optional = _SPEC_KEYS[kind]
    given = set(spec) - {"type"}
    if missing := sorted(required - given):
        raise ValueError(f"Search space {key!r}: type {kind!r} needs {', '.join(missing)}.")
    if unknown := sorted(given - required - optional):
        allowed = ", ".join(sorted(required | optional))
        raise ValueError(
            f"Search space {key!r}: unknown field(s) {', '.join(unknown)}; {kind!r} takes {allowed}."
        )

    if kind == "fixed":
        return FixedParam(spec["value"])
    if kind == "categorical":
        choices = spec["choices"]
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            raise ValueError(f"Search space {key!r}: choices must be a list, got {choices!r}.")
        choices = tuple(choices)
        if not choices:
            raise ValueError(f"Search space {key!r}: choices is empty; give at least one value.")
        bad = [c for c in choices if not isinstance(c, _CATEGORICAL_TYPES)]
        if bad:
            raise ValueError(
                f"Search space {key!r}: choices must be None, bools, numbers or strings (as Optuna stores), "
                f"got {bad[0]!r}; encode structured choices as strings (e.g. '64-64') and decode them in the "
                "objective."
            )
        return CategoricalParam(choices)

    integer = kind == "int"
    low = _number(key, "low", spec["low"], integer)
    high = _number(key, "high", spec["high"], integer)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        message = f"Search space {key!r}: log must be true or false, got {log!r}."
        raise ValueError(message)  # noqa: TRY004 - a bad spec, like every other
    if low > high:
        raise ValueError(f"Search space {key!r}: low={low} > high={high}; swap them.")
    if log and low <= 0:
        raise ValueError(f"Search space {key!r}: a log scale needs low > 0, got low={low}.")
    step = spec.get("step")
    if step is not None:
        step = _number(key, "step", step, integer)
        if step <= 0:
            raise ValueError(f"Search space {key!r}: step must be > 0, got {step}.")
        if log and not (integer and step == 1):
            raise ValueError(f"Search space {key!r}: step and log cannot be combined; drop one of them.")
    if integer:
        return IntParam(int(low), int(high), log, 1 if step is None else int(step))
    return FloatParam(float(low), float(high), log, None if step is None else float(step))


def parse_space(space: Mapping[str, Any]) -> dict[str, ParamSpec]:
    r"""Validate a declarative search space (plain dicts, as read from YAML) into parameter specs.

    Each key is a parameter name; its value is either a mapping with a ``type``

    ==================  ==========================================  ====================================
    ``type``            fields                                      Optuna call
    ==================  ==========================================  ====================================
    ``float``           ``low, high``, optional ``log, step``       ``trial.suggest_float``
    ``int``             ``low, high``, optional ``log, step``       ``trial.suggest_int``
    ``categorical``     ``choices`` (non-empty list)                ``trial.suggest_categorical``
    ``fixed``           ``value`` (any value, mappings included)    none: passed through
    ==================  ==========================================  ====================================

    or any other value (not a mapping), which is fixed. Float bounds may be numeric strings (PyYAML reads
    ``1e-4`` without a dot as a string).

    Args:
        space: ``{name: spec or fixed value}``; already parsed specs are kept as they are.

    Returns:
        ``{name: FloatParam | IntParam | CategoricalParam | FixedParam}`` in the order of ``space``.

    Raises:
        ValueError: naming the offending key (unknown type or field, missing field, ``low > high``, log scale
            with ``low <= 0``, empty or non-scalar choices, ...).
    """
    if not isinstance(space, Mapping):
        raise ValueError(  # noqa: TRY004 - a bad spec, like every other
            f"A search space must be a mapping of names to specs, got {type(space).__name__}."
        )
    out: dict[str, ParamSpec] = {}
    for key, spec in space.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"Search space keys must be non-empty strings, got {key!r}.")
        is_spec = isinstance(spec, (FloatParam, IntParam, CategoricalParam, FixedParam))
        out[key] = spec if is_spec else _parse_param(key, spec)
    return out


def suggest(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, Any]:
    """Draw one configuration of ``space`` (see :func:`parse_space`) for ``trial``.

    Returns:
        ``{name: value}`` for every key of ``space``: suggested values for searched parameters (stored in
        ``trial.params``), the values themselves for fixed ones.
    """
    return {name: spec.suggest(trial, name) for name, spec in parse_space(space).items()}


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
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"StudyConfig: {message}.")

    def journal_path(self) -> Path | None:
        """The journal file of the study, or ``None`` when :attr:`storage` is a SQLAlchemy URL."""
        if self.storage is None:
            return paths.cache_root() / "optuna" / f"{self.name}.journal"
        if "://" in self.storage:
            return None
        path = Path(self.storage).expanduser()
        return path if path.is_absolute() else paths.cache_root() / "optuna" / path


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], attempts: int = 5) -> RDBStorage:
    """``RDBStorage(url)``, retried when workers race to create the schema of a new database: each creates
    the tables if missing and stamps alembic's version row, so all but one get a unique-constraint or
    "table already exists" error although the database is fine."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except (IntegrityError, OperationalError) as exc:
            racing = isinstance(exc, IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(cfg: StudyConfig) -> BaseStorage:
    """The Optuna storage of ``cfg`` (see :attr:`StudyConfig.storage`); creates the journal's folder.

    Why a journal file by default: Optuna's ``RDBStorage`` over SQLite lets one writer at a time hold the
    database lock, and concurrent writers fail with ``database is locked`` once SQLite's busy timeout runs
    out (Optuna's docs advise against SQLite for parallel optimisation). ``JournalStorage`` over a
    ``JournalFileBackend`` is Optuna's storage for several processes on one machine without a server: each
    operation is one JSON line appended (and fsynced) under an exclusive lock file (atomic ``symlink``
    creation; a lock left by a crashed process is broken after 30 s), readers only use complete lines, and
    every process rebuilds the study by replaying the same log in the same order, so all agree on trial
    numbers and on which of two concurrent ``create_study`` calls came first. SQLAlchemy URLs get
    ``RDBStorage``; SQLite URLs with a busy timeout of :data:`SQLITE_BUSY_TIMEOUT_S` seconds.
    """
    journal = cfg.journal_path()
    if journal is None:
        url = str(cfg.storage)
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
            database = make_url(url).database
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return _rdb_storage(url, engine_kwargs)
    journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(journal)))


def storage_kind(storage: BaseStorage | optuna.Study) -> str:
    """``"journal-file"``, ``"rdb:<dialect>"`` (e.g. ``"rdb:sqlite"``, ``"rdb:postgresql"``), ``"in-memory"``
    or the class name of another storage."""
    if isinstance(storage, optuna.Study):
        storage = storage._storage  # Optuna has no public accessor of a study's storage
    backend = getattr(storage, "_backend", storage)  # _CachedStorage wraps an RDBStorage
    if isinstance(backend, RDBStorage):
        return f"rdb:{backend.engine.url.get_backend_name()}"
    if isinstance(backend, JournalFileBackend):
        return "journal-file"
    if isinstance(storage, JournalStorage):
        return f"journal:{type(storage._backend).__name__}"
    if isinstance(storage, optuna.storages.InMemoryStorage):
        return "in-memory"
    return type(storage).__name__


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
# Budget slots and the search loop
# --------------------------------------------------------------------------------------------------------


class _HideSlotStudies(logging.Filter):
    """Drops Optuna's "A new study created ..." INFO line of each slot reservation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return SLOT_SEPARATOR not in record.getMessage()


for _logger_name in ("optuna.storages.journal._storage", "optuna.storages._rdb.storage"):
    logging.getLogger(_logger_name).addFilter(_HideSlotStudies())


def _slot_prefix(name: str) -> str:
    return f"{name}{SLOT_SEPARATOR}"


def _taken_slots(storage: BaseStorage, name: str) -> set[int]:
    prefix = _slot_prefix(name)
    taken = set()
    for study in storage.get_all_studies():
        suffix = study.study_name[len(prefix) :] if study.study_name.startswith(prefix) else ""
        if suffix.isdigit():
            taken.add(int(suffix))
    return taken


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_is_dead(owner: Any) -> bool:
    """Whether ``owner`` (``"<host>:<pid>"``) names a process of this host that no longer exists. Workers on
    other hosts, and trials without an owner, are never declared dead."""
    if not isinstance(owner, str):
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def interrupted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials of ``study`` (run by :func:`run_study`) whose slot is given back, not yet rerun.

    A trial is interrupted if it failed with ``KeyboardInterrupt``, or if it is still ``RUNNING`` but its
    worker (:data:`OWNER_ATTR`) was a process of this host that no longer exists. A worker on another
    machine is never presumed dead: its trials stay ``RUNNING`` (fail them by hand, e.g. with
    ``study.tell(number, state=TrialState.FAIL)``, and raise ``n_trials`` to replace them).
    """
    reruns = {n.rpartition(RERUN_SEPARATOR)[2] for n in optuna.get_all_study_names(study._storage)
              if n.startswith(_slot_prefix(study.study_name)) and RERUN_SEPARATOR in n}  # fmt: skip
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
        if SLOT_ATTR not in t.user_attrs or str(t.number) in reruns:
            continue
        if (
            t.state == TrialState.FAIL
            and t.user_attrs.get(INTERRUPTED_ATTR) == "KeyboardInterrupt"
            or t.state == TrialState.RUNNING
            and _owner_is_dead(t.user_attrs.get(OWNER_ATTR))
        ):
            out.append(t)
    return sorted(out, key=lambda t: t.number)


def _reclaim_slot(storage: BaseStorage, cfg: StudyConfig) -> int | None:
    """Claim the rerun of the first interrupted trial nobody else claimed; its slot, or ``None``.

    The claim is the exclusive creation of ``f"{name}#slot-{k}#rerun-of-{number}"`` (as for slots), so each
    interrupted trial is rerun by exactly one worker. A dead worker's ``RUNNING`` trial is then marked failed.
    """
    study = _load(cfg, storage, None)
    for t in interrupted_trials(study):
        slot = int(t.user_attrs[SLOT_ATTR])
        try:
            storage.create_new_study([StudyDirection.MINIMIZE],
                                     study_name=f"{_slot_prefix(cfg.name)}{slot}{RERUN_SEPARATOR}{t.number}")  # fmt: skip
        except DuplicatedStudyError:
            continue
        if t.state == TrialState.RUNNING:
            storage.set_trial_user_attr(t._trial_id, INTERRUPTED_ATTR, "worker died")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        return slot
    return None


def _reserve_slot(storage: BaseStorage, name: str, n_trials: int) -> int | None:
    """Reserve the lowest free slot ``k < n_trials`` of study ``name``, or return ``None`` if none is left.

    Creating a study is atomic and exclusive on every Optuna storage (a unique ``study_name`` column in
    RDB; the first ``CREATE_STUDY`` line in the replayed journal), so among workers racing for slot ``k``
    exactly one creates ``f"{name}#slot-{k}"`` and the others get ``DuplicatedStudyError`` and look again.
    """
    while True:
        taken = _taken_slots(storage, name)
        free = next((k for k in range(n_trials) if k not in taken), None)
        if free is None:
            return None
        try:
            storage.create_new_study([StudyDirection.MINIMIZE], study_name=f"{_slot_prefix(name)}{free}")
        except DuplicatedStudyError:
            continue
        return free


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The finished trials that count against the budget (interrupted ones gave their slot back)."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=FINISHED_STATES)
        if INTERRUPTED_ATTR not in t.user_attrs
    ]


def run_study(
    objective: Callable[[dict[str, Any], optuna.Trial], float],
    space: Mapping[str, Any],
    cfg: StudyConfig,
    *,
    progress: bool = True,
    catch: Iterable[type[Exception]] | type[Exception] = (),
) -> optuna.Study:
    r"""Create or load the study of ``cfg`` and run trials until its budget of ``cfg.n_trials`` is used up.

    Call it in as many processes as you like (the same ``cfg``, e.g. from a worker script): they share the
    study and its budget. Before each trial a worker reserves a budget slot ``k`` in ``0 .. n_trials - 1``
    by creating the marker study ``f"{name}#slot-{k}"``; creating a study is atomic and exclusive in every
    Optuna storage, so each slot goes to exactly one worker, and a worker that finds all slots taken stops.
    A trial is created only after its slot is reserved, so the study holds at most ``n_trials`` trials from
    :func:`run_study` that were not interrupted (exactly ``n_trials`` once all workers return) and can never
    overshoot, whatever the timing. A later call with a larger ``n_trials`` runs the missing slots only
    (trial numbers continue). The slot is stored in each trial's user attribute :data:`SLOT_ATTR`, the
    worker (``"<host>:<pid>"``) in :data:`OWNER_ATTR`.

    Interrupted trials are rerun: before taking a new slot, a worker looks for :func:`interrupted_trials`
    (stopped by ``KeyboardInterrupt``, or left ``RUNNING`` by a dead process of this host), claims the rerun
    of one with the exclusive marker ``f"{name}#slot-{k}#rerun-of-{number}"``, marks it failed (with
    :data:`INTERRUPTED_ATTR`) and runs slot ``k`` again with the same seeded sampler, so a paper run killed
    and restarted ends with the same number of complete trials as an uninterrupted one.

    Caveats: a worker on another machine that dies mid-trial is not detected (its trial stays ``RUNNING``;
    fail it by hand and raise ``n_trials`` to replace it). Trials added around :func:`run_study`
    (``study.optimize`` called directly) use no slot. The empty marker studies are listed next to the study
    (``optuna.get_all_study_names``, optuna-dashboard). Optuna logs one INFO line per trial: ``optuna.logging.set_verbosity(
    optuna.logging.WARNING)`` keeps only the progress bar.

    Args:
        objective: ``(params, trial) -> value`` with ``params`` from :func:`suggest` (fixed values
            included). It may use ``trial`` to report intermediate values for pruning.
        space: The search space (see :func:`parse_space`).
        cfg: The study.
        progress: Show a tqdm bar of the study's finished trials (all workers').
        catch: Exception types that mark the trial as failed and go on with the next one; other exceptions
            mark it as failed and propagate. Failed trials use their slot (interrupted ones excepted).

    Returns:
        The study, freshly loaded. Trials of other workers may still be running when this worker returns:
        wait for them (e.g. join their processes) and call :func:`load_study` to collect everything.
    """
    from tqdm import tqdm

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

    start = time.monotonic()
    bar = tqdm(total=cfg.n_trials, initial=len(_finished(study)), desc=f"hpo {cfg.name}", unit="trial",
               disable=not progress)  # fmt: skip
    try:
        while cfg.timeout is None or time.monotonic() - start < cfg.timeout:
            slot = _reclaim_slot(storage, cfg)
            if slot is None:
                slot = _reserve_slot(storage, cfg.name, cfg.n_trials)
            if slot is None:
                break

            def func(trial: optuna.Trial, slot: int = slot) -> float:
                trial.set_user_attr(SLOT_ATTR, slot)
                trial.set_user_attr(OWNER_ATTR, _owner())
                try:
                    return float(objective(suggest(trial, parsed), trial))
                except KeyboardInterrupt:
                    trial.set_user_attr(INTERRUPTED_ATTR, "KeyboardInterrupt")  # Optuna then fails it
                    raise

            # The same study, with the sampler of this slot: reproducible per slot, different across workers.
            slot_study = _load(cfg, storage, None if cfg.seed is None else cfg.seed + slot)
            slot_study.optimize(func, n_trials=1, catch=catch)
            if progress:
                bar.n = min(len(_finished(slot_study)), cfg.n_trials)
                try:
                    bar.set_postfix_str(f"best {slot_study.best_value:.4g}", refresh=False)
                except ValueError:  # no complete trial yet
                    pass
                bar.refresh()
    finally:
        bar.close()
    return _load(cfg, storage, cfg.seed)


# --------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------


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
