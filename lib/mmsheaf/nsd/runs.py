"""Resumable node-classification runs: one cached record per (dataset, model, split, hyperparameters, training
config).

.. code-block:: python

    specs = [
        ExperimentSpec("texas", "orth-nsd", split, {"d": 3, "layers": 4}, TrainConfig(lr=0.02))
        for split in range(10)
    ]
    df = run_experiments(specs, RunCache(paths.cache_root() / "node_classification"))
    table = summarise(df)     # mean ± std (%) over splits per (dataset, model)

A spec's :meth:`ExperimentSpec.key` is the sha256 of a canonical JSON of everything that determines its
result: the dataset name, model name, split, the model's *resolved* config (defaults filled in, so ``{}`` and
the explicit defaults share a key, and changing a library default changes the key), the training config and
:data:`SCHEMA`. The runs go through the shared :class:`~mmsheaf.runs.cache.RunCache` and
:func:`~mmsheaf.runs.cache.run_cached`, so an interrupted run keeps every finished result and a rerun computes
only what is missing. The cache cannot see the data: a ``data_loader`` must return the same graph for the same
name (change :data:`SCHEMA` or use a new folder when a dataset's files change), and it cannot see code changes
to a model beyond its config.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from torch_geometric.data import Data

from ..data import load_node_dataset
from ..runs.cache import KeyedSpec, RunCache, run_cached
from ..runs.executor import Executor
from ..runs.keys import canonical_json
from ..runs.summary import over_repeats
from .registry import node_model_config, resolve_node_model
from .train import TrainConfig, TrainResult, train_node_classifier

__all__ = ["SCHEMA", "ExperimentSpec", "run_experiments", "summarise"]

SCHEMA = "mmsheaf.node-classification/2"  # 2: the NSD protocol row-normalises features (graphs.load_graph)
"""Version of the cached result format and of what a key covers; bump it to invalidate old results."""

RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainResult))
"""The :class:`~mmsheaf.nsd.train.TrainResult` fields each row carries."""

ROW_COLUMNS: tuple[str, ...] = ("dataset", "model", "split", "hparams", *RESULT_FIELDS, "cached", "key")


def _freeze(hparams: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    items = dict(hparams.items() if isinstance(hparams, Mapping) else hparams)

    def freeze(v: Any) -> Any:
        if isinstance(v, Mapping):
            return tuple(sorted((str(k), freeze(x)) for k, x in v.items()))
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        return v

    return tuple(sorted((str(k), freeze(v)) for k, v in items.items()))


@dataclass(frozen=True)
class ExperimentSpec(KeyedSpec):
    """One training run: a model with hyperparameters on one split of one dataset.

    Args:
        dataset: Dataset name passed to the ``data_loader`` of :func:`run_experiments`.
        model: A name of :data:`mmsheaf.nsd.registry.NODE_MODELS`.
        split: Mask column.
        model_hparams: Hyperparameters of the model (a mapping; stored as a sorted tuple of pairs so the spec
            is hashable; read them back with :attr:`hparams`). Unknown keys raise ``ValueError`` here, before
            anything runs.
        train: :class:`~mmsheaf.nsd.train.TrainConfig`.
        data_version: Version of the data preparation the ``data_loader`` applies to ``dataset`` (e.g.
            :data:`mmsheaf.data.nsd_graphs.DATA_VERSIONS`). It enters the key only when it is not 1, so a change
            to one dataset's preparation recomputes that dataset's runs and keeps every other key.
    """

    dataset: str
    model: str
    split: int = 0
    model_hparams: Any = ()
    train: TrainConfig = field(default_factory=TrainConfig)
    data_version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_hparams", _freeze(self.model_hparams))
        object.__setattr__(self, "model", resolve_node_model(self.model).name)
        if not isinstance(self.split, int) or self.split < 0:
            raise ValueError(f"split must be a non-negative int, got {self.split!r}.")
        if not isinstance(self.data_version, int) or self.data_version < 1:
            raise ValueError(f"data_version must be an int >= 1, got {self.data_version!r}.")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}.")
        canonical_json(self.hparams)  # JSON-like values only
        node_model_config(
            self.model, **self.hparams
        )  # unknown or invalid hyperparameters fail here, not mid-run

    @property
    def hparams(self) -> dict[str, Any]:
        """The model hyperparameters as a dict."""
        return dict(self.model_hparams)

    def resolved_config(self) -> dict[str, Any]:
        """The model's full config (defaults filled in) as a dict; validates the hyperparameters."""
        return dataclasses.asdict(node_model_config(self.model, **self.hparams))

    def describe(self) -> dict[str, Any]:
        """Everything that determines the result, JSON-ready (what :meth:`key` hashes)."""
        return {
            "schema": SCHEMA,
            "dataset": self.dataset,
            "model": self.model,
            "split": self.split,
            "model_config": self.resolved_config(),
            "train": dataclasses.asdict(self.train),
            **self._version(),
        }

    def _version(self) -> dict[str, int]:
        return {"data_version": self.data_version} if self.data_version != 1 else {}

    def to_json(self) -> dict[str, Any]:
        """The spec as given (hyperparameters as passed, not resolved)."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "split": self.split,
            "model_hparams": self.hparams,
            "train": dataclasses.asdict(self.train),
            **self._version(),
        }

    def record(self, result: dict[str, Any]) -> dict[str, Any]:
        """The cache record: ``{"schema", "key", "spec" (as given), "resolved" (:meth:`describe`), "result",
        "finished"}``, the layout of every node-classification run in the ledgers."""
        return {
            "schema": SCHEMA,
            "key": self.key(),
            "spec": self.to_json(),
            "resolved": self.describe(),
            "result": dict(result),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }

    def matches(self, payload: dict[str, Any]) -> bool:
        """A record of this spec: same key and :data:`SCHEMA`, and a result with every
        :class:`~mmsheaf.nsd.train.TrainResult` field."""
        result = payload.get("result")
        return (payload.get("key") == self.key() and payload.get("schema") == SCHEMA
                and isinstance(result, dict) and all(f in result for f in RESULT_FIELDS))  # fmt: skip


def _row(spec: ExperimentSpec, result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "dataset": spec.dataset,
        "model": spec.model,
        "split": spec.split,
        "hparams": json.dumps(spec.hparams, sort_keys=True),
        **{k: result[k] for k in RESULT_FIELDS},
    }


WORKER_GRAPHS = 3
"""Graphs a Dask worker process keeps between runs (least recently used dropped first)."""

_worker_graphs: OrderedDict[tuple[str, str], Data] = OrderedDict()


class _Graphs:
    """Loads each dataset on first need, once, and drops it after its last pending run (in the order this
    worker walks the runs), so a long list of runs holds at most the graphs it is between.

    Sent to a Dask worker (:mod:`mmsheaf.runs.executor`), it travels without its graphs and loads them into the
    worker process's own cache (:data:`WORKER_GRAPHS` kept), so a worker loads a dataset once for all its runs.
    """

    def __init__(self, loader: Callable[[str], Data], pending: Iterable[ExperimentSpec]) -> None:
        self.loader, self.loaded = loader, {}
        self.last_use = {spec.dataset: spec.key() for spec in pending}
        self.remote = False

    def __getstate__(self) -> dict[str, Any]:
        import hashlib

        import cloudpickle

        ident = hashlib.sha256(
            cloudpickle.dumps(self.loader)
        ).hexdigest()  # loaders with other settings differ
        return {"loader": self.loader, "loaded": {}, "last_use": {}, "remote": True, "ident": ident}

    def _remote_graph(self, name: str) -> Data:
        key = (self.ident, name)
        if key in _worker_graphs:
            _worker_graphs.move_to_end(key)
        else:
            _worker_graphs[key] = self.loader(name)
            while len(_worker_graphs) > WORKER_GRAPHS:
                _worker_graphs.popitem(last=False)
        return _worker_graphs[key]

    def train(self, spec: ExperimentSpec, trainer: Callable[..., TrainResult]) -> dict[str, Any]:
        if self.remote:
            data = self._remote_graph(spec.dataset)
            return dataclasses.asdict(trainer(spec.model, data, spec.split, spec.hparams, spec.train))
        if spec.dataset not in self.loaded:
            self.loaded[spec.dataset] = self.loader(spec.dataset)
        result = trainer(spec.model, self.loaded[spec.dataset], spec.split, spec.hparams, spec.train)
        if self.last_use.get(spec.dataset) == spec.key():
            del self.loaded[spec.dataset]
        return dataclasses.asdict(result)


def run_experiments(
    specs: Sequence[ExperimentSpec],
    cache: RunCache,
    data_loader: Callable[[str], Data] = load_node_dataset,
    progress: bool = True,
    trainer: Callable[..., TrainResult] | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Run every spec that is not cached yet, store each result as soon as it is done, return all results.

    The loop is :func:`~mmsheaf.runs.cache.run_cached` (progress bar over the runs still to do, the cache
    checked again just before each run so several workers may share it, duplicates run once); datasets are
    loaded on first need, once each, and dropped after their last pending run. Interleave datasets and models
    in ``specs`` for an honest ETA.

    Args:
        specs: The runs.
        cache: Where results are read and written (the ``node_classification`` folder of the notebooks).
        data_loader: ``name -> Data`` with masks of shape :math:`(N, S)` (default
            :func:`mmsheaf.data.load_node_dataset`).
        progress: Show the bar.
        trainer: ``(model, data, split, model_hparams, cfg) -> TrainResult`` (default
            :func:`~mmsheaf.nsd.train.train_node_classifier`).
        executor: Where the runs execute (:mod:`mmsheaf.runs.executor`; default: in this process unless
            ``MMSHEAF_WORKERS``/``MMSHEAF_SCHEDULER`` say otherwise).

    Returns:
        One row per spec, in order: ``dataset, model, split, hparams`` (JSON), ``train_acc, val_acc,
        test_acc, best_epoch, epochs_run, seconds, ms_per_epoch`` (of the original run when cached),
        ``cached`` (bool) and ``key``.
    """
    trainer = trainer if trainer is not None else train_node_classifier
    specs = list(specs)
    keys = [spec.key() for spec in specs]  # also validates every spec's hyperparameters before running any
    pending = {key: spec for spec, key in zip(specs, keys) if cache.get(spec, key) is None}
    graphs = _Graphs(data_loader, pending.values())
    df = run_cached(specs, cache, lambda spec: graphs.train(spec, trainer), _row,
                    label=lambda spec: f"{spec.dataset} {spec.model} split {spec.split}", progress=progress,
                    executor=executor)  # fmt: skip
    return pd.DataFrame(df, columns=list(ROW_COLUMNS))


def summarise(df: pd.DataFrame, by: Sequence[str] = ("dataset", "model"), ddof: int = 0) -> pd.DataFrame:
    """Mean and standard deviation of the accuracies over splits, in percent, per group.

    NSD reports the population standard deviation over the 10 splits (``np.sqrt(np.var(...))``, ``ddof=0``),
    the default here.

    Args:
        df: Rows with the columns ``by``, ``test_acc`` and ``val_acc`` (fractions), e.g. from
            :func:`run_experiments`.
        by: Grouping columns (add ``"hparams"`` to keep configurations apart).
        ddof: Delta degrees of freedom of the standard deviation (``1``: sample standard deviation).

    Returns:
        One row per group with ``test_mean, test_std, val_mean, val_std`` (in %) and ``n_splits``.
    """
    out = over_repeats(df, by, {"test_mean": "test_acc", "val_mean": "val_acc"}, ddof=ddof, scale=100,
                       count="n_splits")  # fmt: skip
    names = {"std_test_mean": "test_std", "std_val_mean": "val_std"}
    return out.rename(columns=names)[[*by, "test_mean", "test_std", "val_mean", "val_std", "n_splits"]]
