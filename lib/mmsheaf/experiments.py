"""Resumable experiment runs: one cached JSON per (dataset, model, split, hyperparameters, training config).

.. code-block:: python

    specs = [
        ExperimentSpec("texas", "orth-nsd", split, {"d": 3, "layers": 4}, TrainConfig(lr=0.02))
        for split in range(10)
    ]
    df = run_experiments(specs, ResultCache(paths.cache_root() / "node_results"))
    table = summarise(df)     # mean ± std (%) over splits per (dataset, model)

A spec's :meth:`ExperimentSpec.key` is the sha256 of a canonical JSON of everything that determines its
result: the dataset name, model name, split, the model's *resolved* config (defaults filled in, so ``{}`` and
the explicit defaults share a key, and changing a library default changes the key), the training config and
:data:`SCHEMA`. :class:`ResultCache` keeps one small JSON per key, written atomically, so an interrupted run
keeps every finished result and a rerun computes only what is missing. The cache cannot see the data: a
``data_loader`` must return the same graph for the same name (change :data:`SCHEMA` or use a new folder when a
dataset's files change), and it cannot see code changes to a model beyond its config.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from torch_geometric.data import Data

from . import train as _train
from .atomic import write_json_atomic
from .data import load_node_dataset
from .models import node_model_config, resolve_node_model
from .train import TrainConfig, TrainResult, train_node_classifier

__all__ = [
    "SCHEMA",
    "ExperimentSpec",
    "ResultCache",
    "RUN_ORDER_ENV",
    "canonical_json",
    "run_experiments",
    "summarise",
    "worker_order",
]

SCHEMA = "mmsheaf.node-classification/2"  # 2: the NSD protocol row-normalises features (nsd_protocol.load_graph)
"""Version of the cached result format and of what a key covers; bump it to invalidate old results."""

RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainResult))
"""The :class:`~mmsheaf.train.TrainResult` fields each row carries."""

ROW_COLUMNS: tuple[str, ...] = ("dataset", "model", "split", "hparams", *RESULT_FIELDS, "cached", "key")


RUN_ORDER_ENV = "MMSHEAF_RUN_ORDER"
"""Environment variable: ``forward`` (default) or ``reverse``, the order in which this process walks its runs."""

T = TypeVar("T")


def worker_order(items: Sequence[T]) -> list[T]:
    """``items`` in the order this process should run them: as given, or reversed when the environment sets
    ``MMSHEAF_RUN_ORDER=reverse``.

    Run caches are checked again just before every run, so a second process started on the same notebook with
    ``MMSHEAF_RUN_ORDER=reverse`` shares the work: each starts from its own end and takes the other's finished
    runs from the cache, until they meet (at most the run in flight there is done twice).
    """
    order = os.environ.get(RUN_ORDER_ENV, "forward").strip().lower() or "forward"
    if order not in ("forward", "reverse"):
        raise ValueError(f"{RUN_ORDER_ENV}={order!r}: use 'forward' (the default) or 'reverse'.")
    return list(items)[::-1] if order == "reverse" else list(items)


def _canonical(value: Any) -> Any:
    """A JSON-ready canonical form: mappings sorted, sequences as lists, numbers (not bools) as floats."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"Cannot key a non-finite number {value!r}: use finite hyperparameters.")
        return float(value)
    raise ValueError(
        f"Cannot key a value of type {type(value).__name__} ({value!r}): hyperparameters must be JSON-like "
        "(str, int, float, bool, None, lists/tuples and mappings of them)."
    )


def canonical_json(value: Any) -> str:
    """Compact JSON of :func:`_canonical` ``(value)`` with sorted keys: equal settings give equal strings."""
    return json.dumps(
        _canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


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
class ExperimentSpec:
    """One training run: a model with hyperparameters on one split of one dataset.

    Args:
        dataset: Dataset name passed to the ``data_loader`` of :func:`run_experiments`.
        model: A name of :data:`mmsheaf.models.NODE_MODELS`.
        split: Mask column.
        model_hparams: Hyperparameters of the model (a mapping; stored as a sorted tuple of pairs so the spec
            is hashable; read them back with :attr:`hparams`). Unknown keys raise ``ValueError`` here, before
            anything runs.
        train: :class:`~mmsheaf.train.TrainConfig`.
        data_version: Version of the data preparation the ``data_loader`` applies to ``dataset`` (e.g.
            :data:`mmsheaf.nsd_protocol.DATA_VERSIONS`). It enters the key only when it is not 1, so a change
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

    def key(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`describe`: stable across runs, machines, versions."""
        return hashlib.sha256(canonical_json(self.describe()).encode("ascii")).hexdigest()

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


class ResultCache:
    """Finished runs as ``<folder>/<key>.json``, one small file each, written atomically.

    Each file holds ``{"schema", "key", "spec", "resolved", "result", "finished"}``; a file that cannot be
    read or does not match its key is ignored (with a warning) and recomputed.

    Args:
        folder: Where the files live (created on first write).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, spec: ExperimentSpec | str) -> Path:
        """The file of ``spec`` (or of a key)."""
        return self.folder / f"{spec if isinstance(spec, str) else spec.key()}.json"

    def get(self, spec: ExperimentSpec, key: str | None = None) -> TrainResult | None:
        """The cached result of ``spec``, or ``None``."""
        key = key or spec.key()
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload.get("key") != key or payload.get("schema") != SCHEMA:
                raise ValueError("key or schema mismatch")
            return TrainResult(**{f: payload["result"][f] for f in _train.result_fields()})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(
                f"Ignoring unreadable cache file {path} ({exc}); the run will be recomputed.", stacklevel=2
            )
            return None

    def put(self, spec: ExperimentSpec, result: TrainResult, key: str | None = None) -> Path:
        """Store ``result`` for ``spec`` atomically (temporary file in the folder, then ``os.replace``)."""
        key = key or spec.key()
        payload = {
            "schema": SCHEMA,
            "key": key,
            "spec": spec.to_json(),
            "resolved": spec.describe(),
            "result": dataclasses.asdict(result),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        return write_json_atomic(self.path(key), payload, indent=1, sort_keys=True, allow_nan=True)

    def __contains__(self, spec: object) -> bool:
        return isinstance(spec, ExperimentSpec) and self.get(spec) is not None

    def keys(self) -> list[str]:
        """Keys of the stored results."""
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"ResultCache({str(self.folder)!r})"


def _row(spec: ExperimentSpec, key: str, result: TrainResult, cached: bool) -> dict[str, Any]:
    return {
        "dataset": spec.dataset,
        "model": spec.model,
        "split": spec.split,
        "hparams": json.dumps(spec.hparams, sort_keys=True),
        **{k: getattr(result, k) for k in RESULT_FIELDS},
        "cached": cached,
        "key": key,
    }


def run_experiments(
    specs: Sequence[ExperimentSpec],
    cache: ResultCache,
    data_loader: Callable[[str], Data] = load_node_dataset,
    progress: bool = True,
    trainer: Callable[..., TrainResult] | None = None,
) -> pd.DataFrame:
    """Run every spec that is not cached yet, store each result as soon as it is done, return all results.

    Datasets are loaded on first need, once each, and dropped after their last pending run. The tqdm bar
    counts only the runs still to do (cached ones are reported in its description, so they do not make the
    ETA look faster than it is); its ETA is tqdm's average over the runs done so far (``smoothing=0``), which
    assumes the remaining runs cost like those: interleave datasets and models in ``specs`` for a better
    estimate.
    Duplicate specs run once. An exception (or Ctrl-C) stops the loop; finished results stay cached.
    The cache is checked again just before each run, so several processes may share one cache folder
    (e.g. a second worker walking the same specs in reverse order, ``MMSHEAF_RUN_ORDER=reverse``,
    :func:`worker_order`): a run another process has finished meanwhile is read, not repeated.

    Args:
        specs: The runs.
        cache: Where results are read and written.
        data_loader: ``name -> Data`` with masks of shape :math:`(N, S)` (default
            :func:`mmsheaf.data.load_node_dataset`).
        progress: Show the bar.
        trainer: ``(model, data, split, model_hparams, cfg) -> TrainResult`` (default
            :func:`~mmsheaf.train.train_node_classifier`).

    Returns:
        One row per spec, in order: ``dataset, model, split, hparams`` (JSON), ``test_acc, val_acc,
        train_acc, best_epoch, epochs_run, seconds, ms_per_epoch`` (of the original run when cached),
        ``cached`` (bool) and ``key``.
    """
    from tqdm import tqdm

    trainer = trainer if trainer is not None else train_node_classifier
    specs = list(specs)
    keys = [spec.key() for spec in specs]  # also validates every spec's hyperparameters before running any
    results: dict[str, tuple[TrainResult, bool]] = {}
    pending: dict[str, ExperimentSpec] = {}
    for spec, key in zip(specs, keys):
        if key in results or key in pending:
            continue
        hit = cache.get(spec, key)
        if hit is None:
            pending[key] = spec
        else:
            results[key] = (hit, True)

    todo = worker_order(list(pending.items()))
    last_use = {spec.dataset: key for key, spec in todo}
    loaded: dict[str, Data] = {}
    bar = tqdm(
        total=len(pending),
        desc=f"runs ({len(results)} cached)",
        unit="run",
        smoothing=0,
        disable=not progress or not pending,
    )
    try:
        for key, spec in todo:
            bar.set_postfix_str(f"{spec.dataset} {spec.model} split {spec.split}")
            hit = cache.get(spec, key)  # another process sharing the cache may have finished it meanwhile
            if hit is not None:
                results[key] = (hit, True)
                if last_use[spec.dataset] == key:
                    loaded.pop(spec.dataset, None)
                bar.update(1)
                continue
            if spec.dataset not in loaded:
                loaded[spec.dataset] = data_loader(spec.dataset)
            result = trainer(spec.model, loaded[spec.dataset], spec.split, spec.hparams, spec.train)
            cache.put(spec, result, key)
            results[key] = (result, False)
            if last_use[spec.dataset] == key:
                del loaded[spec.dataset]
            bar.update(1)
    finally:
        bar.close()

    rows = [_row(spec, key, *results[key]) for spec, key in zip(specs, keys)]
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


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
    missing = [c for c in (*by, "test_acc", "val_acc") if c not in df.columns]
    if missing:
        raise ValueError(
            f"summarise needs the columns {missing}: pass the frame returned by run_experiments."
        )
    grouped = df.groupby(list(by), sort=False)
    out = pd.DataFrame(
        {
            "test_mean": grouped["test_acc"].mean() * 100,
            "test_std": grouped["test_acc"].std(ddof=ddof) * 100,
            "val_mean": grouped["val_acc"].mean() * 100,
            "val_std": grouped["val_acc"].std(ddof=ddof) * 100,
            "n_splits": grouped["test_acc"].size(),
        }
    )
    return out.reset_index()
