"""The exact trial budget of an Optuna study shared by any number of worker processes, and the rerun of the
trials that were interrupted (a Jupyter interrupt, a dead worker).

**Slots.** Before each trial a worker reserves a budget slot ``k`` in ``0 .. n_trials - 1`` by creating the
empty marker study ``f"{name}#slot-{k}"``. Creating a study is atomic and exclusive in every Optuna storage
(a unique ``study_name`` column in RDB; the first ``CREATE_STUDY`` line in a replayed journal), so each slot
goes to exactly one worker, and every trial is created only after its slot is reserved: the workers together
run exactly ``n_trials`` trials, never one more. Optuna's ``MaxTrialsCallback`` does not give this: Optuna
calls it after a trial has finished (``optuna/study/_optimize.py``, ``_optimize_sequential``) and it only
sets the stop flag of its own process (``study.stop()``), so two workers that each see one trial missing
both start one (two workers with ``MaxTrialsCallback(6, states=None)`` on one journal ran 7 trials; one that
finds 1 trial done and 1 running of a budget of 2 runs a third: ``test_max_trials_callback_overshoots``).

**Interrupted trials.** A trial stopped by ``KeyboardInterrupt``, or left ``RUNNING`` by a worker that died,
gives its slot back, and one worker claims its rerun with the exclusive marker
``f"{name}#slot-{k}#rerun-of-{number}"`` (as for slots: a rerun is one more trial, so it needs a claim that
only one worker gets). Dead workers are found, failed and retried with Optuna's own mechanism where the
storage has it: ``RDBStorage`` records a heartbeat of every running trial, Optuna fails the trials whose
heartbeat is older than the grace period (``optuna.storages.fail_stale_trials``, called by ``optimize``
before each trial and here before each claim), and the storage's stale-trial callback, :class:`RetryDeadTrial`
(Optuna's ``RetryHeartbeatStaleTrialCallback``), queues a copy of the trial, same parameters and slot, as
``WAITING``; Optuna's ``ask`` runs waiting trials first. Optuna's ``JournalStorage`` (the default storage, and
the one the run ledgers keep) has no heartbeats (it is not a ``BaseHeartbeat``), so there the same two steps
(fail, then :class:`RetryDeadTrial`) are taken for the ``RUNNING`` trials whose worker (:data:`OWNER_ATTR`,
``"<host>:<pid>"``) is a process of this host that no longer exists. A database gets that process-id check
too, after Optuna's: Optuna skips a running trial that has no heartbeat yet (``_get_stale_trial_ids``), and a
worker killed before its heartbeat thread first wrote (seen under load: SIGKILL a few ms into a trial) would
hold its slot for ever. A trial retried by ``RetryHeartbeatStaleTrialCallback`` is recognised by Optuna's
record of it (``retry_history``).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "INTERRUPTED_ATTR",
    "OWNER_ATTR",
    "SLOT_ATTR",
    "RetryDeadTrial",
    "counted_trials",
    "fail_dead_trials",
    "in_slot",
    "interrupted_trials",
    "reclaim_slot",
    "reserve_slot",
]

SLOT_ATTR = "mmsheaf.slot"
"""User attribute of each trial run in a slot: its budget slot (``0 .. n_trials - 1``)."""

SLOT_SEPARATOR = "#slot-"
"""Slot ``k`` of study ``name`` is reserved by creating the (empty) study ``f"{name}#slot-{k}"``."""

OWNER_ATTR = "mmsheaf.owner"
"""User attribute of each trial run in a slot: ``"<host>:<pid>"`` of the worker process running it."""

INTERRUPTED_ATTR = "mmsheaf.interrupted"
"""User attribute set on a trial whose slot was given back: ``"KeyboardInterrupt"`` or ``"worker died"``."""

RERUN_SEPARATOR = "#rerun-of-"
"""The rerun of interrupted trial ``t`` (slot ``k``) is claimed by creating the study
``f"{name}#slot-{k}#rerun-of-{t}"``."""

FINISHED_STATES: tuple[TrialState, ...] = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class _HideSlotStudies(logging.Filter):
    """Drops Optuna's "A new study created ..." INFO line of each slot reservation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return SLOT_SEPARATOR not in record.getMessage()


for _logger_name in ("optuna.storages.journal._storage", "optuna.storages._rdb.storage"):
    logging.getLogger(_logger_name).addFilter(_HideSlotStudies())


class RetryDeadTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a dead worker's trial (a ``WAITING`` copy: same parameters, same slot), without the
    dead worker's :data:`OWNER_ATTR` and :data:`INTERRUPTED_ATTR`: the copy is the rerun, not a dead trial."""

    def __init__(self) -> None:
        with warnings.catch_warnings():  # "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(max_retry=None)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.deepcopy(trial)  # Optuna appends to the trial's retry_history list
        dead = (OWNER_ATTR, INTERRUPTED_ATTR)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in dead}
        super().__call__(study, trial)


def _slot_prefix(name: str) -> str:
    return f"{name}{SLOT_SEPARATOR}"


def _heartbeats(storage: BaseStorage) -> bool:
    """Whether ``storage`` records trial heartbeats (Optuna's ``RDBStorage`` with ``heartbeat_interval``)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None


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


def _retried(study: optuna.Study) -> set[int]:
    """The numbers of the trials that Optuna's ``RetryHeartbeatStaleTrialCallback`` retried."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        history = RetryHeartbeatStaleTrialCallback.retry_history
        return {n for t in study.get_trials(deepcopy=False) for n in history(t)}


def _gave_back(trial: FrozenTrial, retried: set[int]) -> bool:
    """Whether a trial gave its slot back: failed by an interrupt or because its worker died."""
    marked = INTERRUPTED_ATTR in trial.user_attrs or trial.number in retried
    return trial.state == TrialState.FAIL and marked


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The finished trials that count against the budget (interrupted ones gave their slot back)."""
    retried = _retried(study)
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED_STATES) if not _gave_back(t, retried)]


def interrupted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials of ``study`` run in a slot whose slot is given back and whose rerun nobody claimed yet.

    A trial is interrupted if it failed with ``KeyboardInterrupt`` or because its worker died (see the
    module), or if it is still ``RUNNING`` but its worker was a process of this host that no longer exists.
    A worker on another machine is presumed dead only through a stale heartbeat: in a journal, or in a
    database before its first heartbeat, its trials stay ``RUNNING`` (fail them by hand, e.g. with
    ``study.tell(number, state=TrialState.FAIL)``, and raise ``n_trials`` to replace them).
    """
    prefix = _slot_prefix(study.study_name)
    claimed = {name.rpartition(RERUN_SEPARATOR)[2] for name in optuna.get_all_study_names(study._storage)
               if name.startswith(prefix) and RERUN_SEPARATOR in name}  # fmt: skip
    retried = _retried(study)
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
        if SLOT_ATTR not in t.user_attrs or str(t.number) in claimed:
            continue
        dead = t.state == TrialState.RUNNING and _owner_is_dead(t.user_attrs.get(OWNER_ATTR))
        if dead or _gave_back(t, retried):
            out.append(t)
    return sorted(out, key=lambda t: t.number)


def fail_dead_trials(study: optuna.Study) -> None:
    """Fail the ``RUNNING`` trials of dead workers and queue their retry (:class:`RetryDeadTrial`).

    With heartbeats, Optuna's ``fail_stale_trials`` does both first. Then, in any storage, the trials run in
    a slot whose worker is a dead process of this host are marked ``"worker died"`` and failed (in a
    database: those that died before their first heartbeat, which Optuna skips); failing is exclusive (the
    worker that loses the race gets ``UpdateFinishedTrialError``), so each is retried once.
    """
    storage = study._storage
    if _heartbeats(storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if SLOT_ATTR not in t.user_attrs or not _owner_is_dead(t.user_attrs.get(OWNER_ATTR)):
            continue
        try:  # the mark first: a worker that dies right after failing the trial still gives its slot back
            storage.set_trial_user_attr(t._trial_id, INTERRUPTED_ATTR, "worker died")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another worker failed it first, and retries it
        RetryDeadTrial()(study, storage.get_trial(t._trial_id))


def reclaim_slot(study: optuna.Study) -> int | None:
    """Claim the rerun of the first interrupted trial nobody else claimed (after :func:`fail_dead_trials`);
    its slot, or ``None``.

    The claim is the exclusive creation of ``f"{name}#slot-{k}#rerun-of-{number}"`` (as for slots), so each
    interrupted trial is rerun by exactly one worker (its next trial: a queued retry, or a new draw).
    """
    fail_dead_trials(study)
    for t in interrupted_trials(study):
        if t.state != TrialState.FAIL:
            continue
        slot = int(t.user_attrs[SLOT_ATTR])
        claim = f"{_slot_prefix(study.study_name)}{slot}{RERUN_SEPARATOR}{t.number}"
        try:
            study._storage.create_new_study([StudyDirection.MINIMIZE], study_name=claim)
        except DuplicatedStudyError:
            continue
        return slot
    return None


def _taken_slots(storage: BaseStorage, name: str) -> set[int]:
    prefix = _slot_prefix(name)
    taken = set()
    for study in storage.get_all_studies():
        suffix = study.study_name[len(prefix) :] if study.study_name.startswith(prefix) else ""
        if suffix.isdigit():
            taken.add(int(suffix))
    return taken


def reserve_slot(storage: BaseStorage, name: str, n_trials: int) -> int | None:
    """Reserve the lowest free slot ``k < n_trials`` of study ``name``, or return ``None`` if none is left.

    Among workers racing for slot ``k`` exactly one creates ``f"{name}#slot-{k}"``; the others get
    ``DuplicatedStudyError`` and look again.
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


def in_slot(func: Callable[[optuna.Trial], float], slot: int) -> Callable[[optuna.Trial], float]:
    """``func`` as the objective of the trial of ``slot``: it records the slot (:data:`SLOT_ATTR`) and this
    worker (:data:`OWNER_ATTR`) on the trial first, and marks a trial stopped by ``KeyboardInterrupt`` as
    interrupted (Optuna then fails it and re-raises), so that its slot is given back."""

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(SLOT_ATTR, slot)
        trial.set_user_attr(OWNER_ATTR, _owner())
        try:
            return func(trial)
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED_ATTR, "KeyboardInterrupt")
            raise

    return objective
