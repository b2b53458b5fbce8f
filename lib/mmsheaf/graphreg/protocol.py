r"""What the graph-regularisation study runs: run specs over its tasks, their cached runs.

A run (:class:`GraphRegRunSpec`) trains one :class:`~mmsheaf.graphreg.model.RegularisedMLP` with one penalty on
one task (:data:`TASKS`):

- ``"node"``: node classification on a graph of notebook 01 (:func:`~mmsheaf.data.nsd_graphs.load_graph`: the
  same features, graphs and geom-gcn splits as its table), split ``split``;
- ``"semi"``: Neural Graph Machines' semi-supervised setting on images
  (:func:`~mmsheaf.data.semi_supervised.load_semi_supervised`: a k-nearest-neighbour graph built without labels,
  ``per_class`` labels per class drawn with seed ``split``).

The graph enters the loss only; the model predicts from features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import Data

from mmsheaf import paths
from mmsheaf.data.nsd_graphs import DATA_VERSIONS, load_graph
from mmsheaf.data.semi_supervised import SemiSupervisedConfig, labelled_subset, load_semi_supervised
from mmsheaf.evaluation.distance_retrieval import retrieval_by_distance
from mmsheaf.graphreg.model import MLPConfig, RegConfig, RegularisedMLP
from mmsheaf.graphreg.train import GraphRegTrainConfig, train_graphreg
from mmsheaf.runs.cache import KeyedSpec, RunCache, run_cached

__all__ = ["SCHEMA", "TASKS", "GraphRegRunSpec", "Task", "graphreg_cache", "run_specs"]

SCHEMA = "mmsheaf.graphreg-run/2"  # 2: pre-activation z, I + Phi maps, bounded Mahalanobis, forked RNG

Masks = tuple[Data, Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class Task:
    """A task of the study.

    Args:
        load: ``(dataset, split, data_options) -> (data, train, val, test masks)``.
        options: ``(dataset, data_options) -> the resolved data options`` (checked, with every default: the
            run key); refuses what the task does not read.
        version: ``dataset -> the version of its data preparation`` (entered into the run key).
    """

    load: Callable[[str, int, Mapping[str, Any]], Masks]
    options: Callable[[str, Mapping[str, Any]], dict[str, Any]]
    version: Callable[[str], int] = lambda dataset: 1


@lru_cache(maxsize=8)
def _graph(dataset: str) -> Data:
    return load_graph(dataset)


def _node_options(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    if options:
        raise ValueError(
            f"the node task takes no data options (the graphs are notebook 01's), got {dict(options)}."
        )
    return {}


def _node(dataset: str, split: int, options: Mapping[str, Any]) -> Masks:
    data = _graph(dataset)
    masks = []
    for name in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(data, name)
        if not 0 <= split < mask.size(1):
            raise ValueError(f"{dataset} has splits 0..{mask.size(1) - 1}, not {split}.")
        masks.append(mask[:, split])
    return data, *masks


SEMI_VERSION = 1
"""Version of the semi-supervised task's data preparation (:func:`~mmsheaf.data.semi_supervised.load_semi_supervised`),
entered into its run keys: raise it when the graph or the labelled subsets change."""


def _semi_options(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    if {"dataset", "seed"} & set(options):
        raise ValueError("the semi-supervised task takes its dataset from the spec and the labelled subset's seed "
                         "from its split: leave 'dataset' and 'seed' out of data_options.")  # fmt: skip
    cfg = dataclasses.asdict(
        SemiSupervisedConfig(dataset=dataset, **options)
    )  # a bad name is a TypeError here
    return {k: v for k, v in cfg.items() if k not in ("dataset", "seed")}


@lru_cache(maxsize=4)
def _semi_graph(frozen: tuple[tuple[str, Any], ...]) -> Data:
    """The kNN graph of the images, built once for every labelled subset (it never reads a label)."""
    return load_semi_supervised(SemiSupervisedConfig(**dict(frozen)))


def _semi(dataset: str, split: int, options: Mapping[str, Any]) -> Masks:
    resolved = _semi_options(dataset, options)
    graph_options = {k: v for k, v in resolved.items() if k != "per_class"}
    data = _semi_graph(
        tuple(sorted({**graph_options, "dataset": dataset, "seed": 0, "per_class": 1}.items()))
    )
    num_train = int((data.train_mask | data.unlabelled_mask).sum())  # the training rows come first
    labelled = torch.zeros_like(data.train_mask)
    labelled[:num_train] = labelled_subset(data.y[:num_train], resolved["per_class"], seed=split)
    return data, labelled, data.val_mask, data.test_mask


TASKS: Mapping[str, Task] = {
    "node": Task(_node, _node_options, lambda dataset: DATA_VERSIONS.get(dataset, 1)),
    "semi": Task(_semi, _semi_options, lambda dataset: SEMI_VERSION),
}
"""The tasks by name (module docstring)."""


def resolve_task(name: str) -> Task:
    """The task registered as ``name`` (a ValueError lists the choices)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}.")
    return TASKS[name]


@dataclass(frozen=True)
class GraphRegRunSpec(KeyedSpec):
    """One training run.

    Args:
        task: A key of :data:`TASKS`.
        dataset: The task's data set (a graph of notebook 01, or ``"mnist5k"`` for ``"semi"``).
        split: The geom-gcn split (``"node"``) or the labelled subset's seed (``"semi"``); also the run's seed.
        mlp: :class:`~mmsheaf.graphreg.model.MLPConfig` fields.
        reg: :class:`~mmsheaf.graphreg.model.RegConfig` fields.
        train: :class:`~mmsheaf.graphreg.train.GraphRegTrainConfig` fields (``seed`` comes from ``split``).
        data_options: The task's data options (``"semi"``: :class:`~mmsheaf.data.semi_supervised.SemiSupervisedConfig`
            fields other than ``dataset`` and ``seed``).
        retrieval: Also score the trained embedding (the best validation epoch's :math:`z`) for retrieval within
            the test nodes under each distance of
            :data:`~mmsheaf.evaluation.distance_retrieval.RETRIEVAL_DISTANCES` (the Mahalanobis matrices fitted
            on the labelled training nodes): a separate cached run, so that the accuracy runs keep their keys.
    """

    task: str
    dataset: str
    split: int = 0
    mlp: Mapping[str, Any] = field(default_factory=dict)
    reg: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)
    retrieval: bool = False

    def __post_init__(self) -> None:
        try:
            resolve_task(self.task).options(self.dataset, self.data_options)
        except TypeError as exc:
            raise ValueError(f"bad data_options for the {self.task} task: {exc}.") from exc
        self.mlp_config(), self.reg_config(), self.train_config()  # validate now, not mid-run

    def mlp_config(self) -> MLPConfig:
        return MLPConfig(**self.mlp)

    def reg_config(self) -> RegConfig:
        return RegConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.reg.items()})

    def train_config(self) -> GraphRegTrainConfig:
        return GraphRegTrainConfig(**{**self.train, "seed": self.split})

    def describe(self) -> dict[str, Any]:
        """Everything that determines the run, canonical: the resolved data options, and only the penalty
        settings the run reads (none for the plain MLP or a zero weight; the maps for the sheaf penalty only),
        so that the same model never runs twice under two keys."""
        task = resolve_task(self.task)
        return {"schema": SCHEMA, "task": self.task, "dataset": self.dataset, "split": self.split,
                "mlp": dataclasses.asdict(self.mlp_config()), "reg": _read_settings(self.reg_config()),
                "train": dataclasses.asdict(self.train_config()),
                "data_options": task.options(self.dataset, self.data_options),
                "data_version": task.version(self.dataset), **({"retrieval": RETRIEVAL_VERSION} if self.retrieval
                                                               else {})}  # fmt: skip


def _read_settings(reg: RegConfig) -> dict[str, Any]:
    """The penalty settings a run reads (:meth:`GraphRegRunSpec.describe`)."""
    if reg.kind == "none" or reg.alpha == 0:
        return {"kind": "none"}
    out = {"kind": reg.kind, "distance": reg.distance, "alpha": reg.alpha, "weights": list(reg.weights)}
    return {**out, "sheaf": reg.sheaf, "d": reg.d} if reg.kind == "sheaf" else out


def graphreg_cache() -> RunCache:
    """The run cache of the study: ``paths.cache_root()/"graphreg_runs"``."""
    return RunCache(paths.cache_root() / "graphreg_runs")


RETRIEVAL_VERSION = 1
"""Version of the retrieval scoring (entered into the keys of the ``retrieval`` runs)."""


def _run(spec: GraphRegRunSpec) -> dict[str, Any]:
    data, train, val, test = resolve_task(spec.task).load(spec.dataset, spec.split, spec.data_options)
    torch.manual_seed(spec.split)
    model = RegularisedMLP(data.x.size(1), int(data.y.max()) + 1, spec.mlp_config(), spec.reg_config())
    result = train_graphreg(model, data, train, val, test, spec.train_config()).as_dict()
    if spec.retrieval:
        model.eval()
        with torch.no_grad():
            z, _ = model(data.x)
        table = retrieval_by_distance(z[test], data.y[test], z[train], data.y[train], seed=spec.split)
        result["retrieval"] = table.to_dict(orient="records")
    return result


def run_specs(specs: Sequence[GraphRegRunSpec], cache: RunCache | None = None, progress: bool = True,
              desc: str = "runs") -> pd.DataFrame:  # fmt: skip
    """Run every spec not cached yet and return one row per spec: ``task, dataset, split, regulariser,
    distance, sheaf, d, alpha, weights, per_class, hidden, key, cached, val_acc, test_acc, best_epoch, penalty,
    seconds, infer_ms`` (the penalty columns empty or 0 where the run has no penalty), and for ``retrieval`` runs
    ``retrieval``: a list of ``{distance, map_at_r, p_at_1, r_precision, n_queries}`` records."""
    cache = cache if cache is not None else graphreg_cache()

    def row(spec: GraphRegRunSpec, result: dict[str, Any]) -> dict[str, Any]:
        reg = _read_settings(spec.reg_config())
        return {"task": spec.task, "dataset": spec.dataset, "split": spec.split, "regulariser": reg["kind"],
                "distance": reg.get("distance", ""), "sheaf": reg.get("sheaf", ""), "d": reg.get("d", 0),
                "alpha": reg.get("alpha", 0.0), "weights": tuple(reg.get("weights", ())),
                "per_class": spec.data_options.get("per_class", 0), "hidden": spec.mlp_config().hidden_channels,
                **{k: result[k] for k in ("val_acc", "test_acc", "best_epoch", "penalty", "seconds", "infer_ms")},
                **({"retrieval": result["retrieval"]} if spec.retrieval else {})}  # fmt: skip

    return run_cached(specs, cache, _run, row, progress=progress, desc=desc,
                      label=lambda s: f"{s.dataset} {s.reg.get('kind', 'none')} split {s.split}")  # fmt: skip
