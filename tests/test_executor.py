"""The run executors (mmsheaf.runs.executor): in-process and on a dask.distributed LocalCluster, the same
results and the same cache files; a worker killed mid-run loses only its run in flight."""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
import torch
from mmsheaf.runs import executor as ex
from mmsheaf.runs.cache import KeyedSpec, RunCache, RunsFailed, run_cached

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


@dataclass(frozen=True)
class Fit(KeyedSpec):
    seed: int
    log: str = ""  # a file every attempt appends its seed to (not part of the key)

    def describe(self) -> dict[str, Any]:
        return {"schema": "test-executor/1", "seed": self.seed}


def fit(spec: Fit) -> dict[str, Any]:
    """A seeded least-squares fit by gradient descent: the same numbers wherever it runs with the same threads."""
    if spec.log:
        with open(spec.log, "a") as fh:
            fh.write(f"{spec.seed} {os.getpid()}\n")
    g = torch.Generator().manual_seed(spec.seed)
    x, w_true = torch.randn(200, 8, generator=g), torch.randn(8, generator=g)
    y = x @ w_true + 0.1 * torch.randn(200, generator=g)
    w = torch.zeros(8, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
    if spec.seed == 13:
        raise ValueError("seed 13 fails")
    return {"loss": float(loss.detach()), "threads_seen": torch.get_num_threads()}


def killer(spec: Fit) -> dict[str, Any]:
    """The first attempt of seed 2 kills its worker process (as a machine that goes away mid-run)."""
    marker = Path(spec.log).with_suffix(".killed")
    if spec.seed == 2 and not marker.exists():
        marker.touch()
        os._exit(1)
    return fit(spec)


def row(spec: Fit, result: dict[str, Any]) -> dict[str, Any]:
    return {"seed": spec.seed, **result}


@pytest.fixture(scope="module")
def cluster():
    dask = ex.DaskExecutor(workers=2)
    yield dask
    dask.close()


def test_in_process_and_local_cluster_give_the_same_runs_and_cache_files(tmp_path: Path, cluster) -> None:
    specs = [Fit(s) for s in (0, 1, 2, 3, 1)]  # a duplicate runs once
    local, remote = RunCache(tmp_path / "a"), RunCache(tmp_path / "b")
    a = run_cached(specs, local, fit, row, progress=False, executor=ex.InProcess(threads=1))
    b = run_cached(specs, remote, fit, row, progress=False, executor=cluster)
    assert cluster.workers == 2 and a.drop(columns="cached").equals(b.drop(columns="cached"))
    assert a.cached.tolist() == b.cached.tolist() == [False, False, False, False, True]
    assert (a.run_threads == 1).all() and (a.threads_seen == 1).all()  # fixed per run, recorded
    assert local.keys() == remote.keys()
    for key in local.keys():  # noqa: SIM118 - a RunCache, not a dict; the ledger is made from these records
        assert local.path(key).read_bytes() == remote.path(key).read_bytes()
    again = run_cached(specs, remote, fit, row, progress=False, executor=cluster)
    assert again.cached.all()


def test_a_failing_run_is_named_and_the_others_are_kept(tmp_path: Path, cluster) -> None:
    cache = RunCache(tmp_path / "c")
    with pytest.raises(RunsFailed, match="seed 13 fails"):
        run_cached([Fit(12), Fit(13), Fit(14)], cache, fit, row, progress=False, executor=cluster)
    assert len(cache) == 2 and len(cache.failures()) == 1


def test_a_killed_worker_loses_only_its_run_in_flight(tmp_path: Path, cluster) -> None:
    log = tmp_path / "attempts.txt"
    specs = [Fit(s, str(log)) for s in range(6)]
    cache = RunCache(tmp_path / "d")
    out = run_cached(specs, cache, killer, row, progress=False, executor=cluster)
    assert sorted(out.seed) == list(range(6)) and len(cache) == 6
    attempts = Counter(int(line.split()[0]) for line in log.read_text().split("\n") if line)
    assert set(attempts) == set(range(6)) and attempts[2] == 1  # the killed run ran again, once, elsewhere
    # results finished on the killed worker but not yet fetched are lost with it and made again: at most one
    # more run (the worker had one thread) besides the run in flight
    assert sum(attempts.values()) <= 9, attempts  # the killed worker's run and at most two it had finished
    reference = run_cached([Fit(s) for s in range(6)], RunCache(tmp_path / "e"), fit, row, progress=False,
                           executor=ex.InProcess(threads=1))  # fmt: skip
    assert out.loss.tolist() == reference.loss.tolist()


def test_executor_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ex.SCHEDULER_ENV, raising=False)
    monkeypatch.setenv(ex.WORKERS_ENV, "1")
    assert isinstance(ex.executor_from_env(), ex.InProcess)
    monkeypatch.setenv(ex.WORKERS_ENV, "two")
    with pytest.raises(ValueError, match="positive number of worker"):
        ex.executor_from_env()
    monkeypatch.setenv(ex.RUN_THREADS_ENV, "0")
    with pytest.raises(ValueError, match="threads per run"):
        ex.run_threads()
    with pytest.raises(ValueError, match="either workers"):
        ex.DaskExecutor()


@dataclass(frozen=True)
class CsbmLoader:
    """Small CSBM graphs by name; every load is logged (pid and name) to ``log``."""

    log: str

    def __call__(self, name: str):
        from mmsheaf.data.synthetic import contextual_sbm

        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()} {name}\n")
        return contextual_sbm(num_nodes=120, num_classes=3, num_features=8, num_splits=2, seed=len(name))


def test_node_classification_runs_the_same_on_a_cluster(tmp_path: Path, cluster) -> None:
    """Notebook 01's loop (real trainer, GCN and Diag-NSD) in-process and on two workers: the same numbers."""
    from mmsheaf.nsd.runs import ExperimentSpec, run_experiments
    from mmsheaf.nsd.train import TrainConfig

    cfg = TrainConfig(epochs=5, patience=5)
    specs = [ExperimentSpec(ds, model, split, {}, cfg) for ds in ("ab", "abc") for model in ("gcn", "diag-nsd")
             for split in (0, 1)]  # fmt: skip
    log = tmp_path / "loads.txt"
    here = run_experiments(specs, RunCache(tmp_path / "a"), data_loader=CsbmLoader(str(log)), progress=False,
                           executor=ex.InProcess(threads=1))  # fmt: skip
    log.unlink()
    there = run_experiments(specs, RunCache(tmp_path / "b"), data_loader=CsbmLoader(str(log)), progress=False,
                            executor=cluster)  # fmt: skip
    cols = ["dataset", "model", "split", "train_acc", "val_acc", "test_acc", "best_epoch", "epochs_run"]
    pd.testing.assert_frame_equal(here[cols], there[cols])
    loads = log.read_text().split("\n")[:-1]
    assert len(loads) == len(set(loads)) <= 4 < len(specs)  # a worker loads a dataset once for all its runs


def quadratic(params: dict[str, Any], trial: Any) -> float:
    import time

    time.sleep(0.2)  # long enough for the two workers to interleave
    return -((params["x"] - 0.3) ** 2)


def test_an_optuna_study_fills_its_exact_budget_on_two_workers(tmp_path: Path, cluster) -> None:
    import optuna
    from mmsheaf.runs.budget import OWNER_ATTR, SLOT_ATTR
    from mmsheaf.runs.hpo import StudyConfig, run_study

    cluster.client.run(
        lambda: __import__("optuna") and None
    )  # warm both workers (a restarted one starts cold)
    cfg = StudyConfig("on-dask", storage=str(tmp_path / "study.journal"), n_trials=8, n_startup_trials=8)
    study = run_study(quadratic, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, cfg, progress=False,
                      executor=cluster)  # fmt: skip
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs[SLOT_ATTR] for t in trials) == list(range(8))
    owners = {t.user_attrs[OWNER_ATTR] for t in trials}  # host:pid of the process that ran the trial
    assert len(owners) == 2, f"the trials did not run on both workers: {owners}"


def _executor_asking_for_workers() -> str:
    os.environ[ex.WORKERS_ENV] = "2"  # as a notebook run with WORKERS=2 would pass it on
    try:
        return repr(ex.executor_from_env())
    finally:
        del os.environ[ex.WORKERS_ENV]


def test_inside_a_worker_the_executor_is_in_process(cluster) -> None:
    assert cluster.client.submit(_executor_asking_for_workers, pure=False).result().startswith("InProcess")


def test_every_run_gets_its_thread_count_and_the_caller_keeps_its_own(tmp_path: Path, cluster) -> None:
    before = torch.get_num_threads()
    here = run_cached(
        [Fit(21)], RunCache(tmp_path / "t1"), fit, row, progress=False, executor=ex.InProcess(threads=2)
    )
    assert (
        (here.run_threads == 2).all() and (here.threads_seen == 2).all() and torch.get_num_threads() == before
    )
    two = ex.DaskExecutor(workers=1, threads=2)
    try:
        there = run_cached([Fit(21)], RunCache(tmp_path / "t2"), fit, row, progress=False, executor=two)
    finally:
        two.close()
    assert (there.threads_seen == 2).all() and there.loss.tolist() == here.loss.tolist()
