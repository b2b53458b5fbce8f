"""Notebook 01's GCN, NSD and MLP rows beside the graph-regularised MLP: read from its outputs, not re-run,
with their inference time per node.

.. code-block:: python

    from mmsheaf.nsd.registry import build_node_model    # in the notebook: graphreg may not import nsd

    notebook01_rows(["texas", "cora"])                    # dataset, model, mean, std, n (accuracy in %)
    reference_config("cora", "diag-nsd")                  # {"d": 3, "layers": 3, "add_lp": True, ...}
    reference_inference_ms("texas", "gcn", build=build_node_model)   # ms per node
    reference_rows(["texas", "cora"], build=build_node_model)        # the rows and an infer_ms column

Everything comes from notebook 01's outputs in a profile (``figures/`` for ``paper``): the accuracy table
``tables/nsd_accuracy.csv`` and the run ledger ``runs/01_sheaf_diffusion.jsonl`` (one record per run with its
resolved model config). A row's configuration is the one of the runs that made it: the ledger's runs of that
dataset and model that share one configuration, count the row's ``n_splits`` runs and average to its mean
test accuracy. That is the configuration notebook 01 really trained (its parameters, the NSD scripts' settings
and, where the authors publish none, the candidate it chose on validation accuracy), with every default
filled in, whatever the parameters file says today.

The models are built by the caller's ``build`` (:func:`mmsheaf.nsd.registry.build_node_model`): a study does
not import another study (``tests/test_architecture.py``), so the nsd registry is passed in, not imported.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from mmsheaf import paths
from mmsheaf.data.nsd_graphs import load_graph
from mmsheaf.graphreg.model import MLPConfig, RegConfig, RegularisedMLP
from mmsheaf.graphreg.train import inference_ms
from mmsheaf.runs.keys import set_seed
from mmsheaf.runs.ledger import read_ledger

__all__ = [
    "DEFAULT_MODELS",
    "NOTEBOOK",
    "ModelBuilder",
    "mlp_inference_ms",
    "notebook01_rows",
    "reference_config",
    "reference_inference_ms",
    "reference_model",
    "reference_rows",
]

NOTEBOOK = "01_sheaf_diffusion"
"""The notebook whose rows are read."""

DEFAULT_MODELS: tuple[str, ...] = ("mlp", "gcn", "diag-nsd", "orth-nsd", "gen-nsd")
"""The rows compared by default: notebook 01's MLP, GCN and the three discrete sheaf models."""

ModelBuilder = Callable[..., nn.Module]
"""``build(name, in_channels, out_channels, **hparams)``: :func:`mmsheaf.nsd.registry.build_node_model`."""

_RUN_FIRST = f"run notebook 01 first (python -m mmsheaf report {NOTEBOOK})"
_TOLERANCE = 1e-6  # percentage points between the table's mean and the mean of the runs behind it


def outputs_of(profile: str) -> Path:
    """Where notebook 01's outputs of ``profile`` are read: the committed ``figures/`` of the repository for
    ``paper`` (whatever ``MMSHEAF_OUTPUT`` says: notebook 07's smoke profile and its tests read the published
    table too), :func:`mmsheaf.paths.output_root` otherwise."""
    return paths.repo_root() / "figures" if profile == "paper" else paths.output_root(profile)


def _as_list(names: str | Sequence[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def notebook01_rows(
    datasets: str | Sequence[str],
    models: Sequence[str] = DEFAULT_MODELS,
    path: str | Path | None = None,
    profile: str = "paper",
) -> pd.DataFrame:
    """Notebook 01's accuracy rows of ``datasets`` x ``models``, in that order.

    Args:
        datasets: Dataset names (e.g. ``"texas"``).
        models: Registry names of notebook 01's models.
        path: Its accuracy table (default ``<output root of profile>/tables/nsd_accuracy.csv``).
        profile: The profile whose outputs are read when ``path`` is not given.

    Returns:
        Columns ``dataset, model, mean, std`` (test accuracy in percent over the splits, as stored) and ``n``
        (the number of splits).

    Raises:
        ValueError: the table or a requested row is missing (the message says to run notebook 01 first).
    """
    path = Path(path) if path is not None else outputs_of(profile) / "tables" / "nsd_accuracy.csv"
    if not path.is_file():
        raise ValueError(f"notebook 01's accuracy table {path} is missing: {_RUN_FIRST}.")
    table = pd.read_csv(path).set_index(["dataset", "model"])
    wanted = [(ds, m) for ds in _as_list(datasets) for m in _as_list(models)]
    missing = [f"{ds}/{m}" for ds, m in wanted if (ds, m) not in table.index]
    if missing:
        raise ValueError(f"{path} has no row for {', '.join(missing)}: {_RUN_FIRST}, with those datasets and "
                         "models in its parameters.")  # fmt: skip
    rows = [{"dataset": ds, "model": m, "mean": float(table.loc[(ds, m), "mean"]),
             "std": float(table.loc[(ds, m), "std"]), "n": int(table.loc[(ds, m), "n_splits"])}
            for ds, m in wanted]  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "model", "mean", "std", "n"])


@lru_cache(maxsize=4)
def _ledger_groups(path: str, mtime_ns: int) -> dict[tuple[str, str], list[tuple[str, list[float]]]]:
    """``{(dataset, model): [(model config as JSON, test accuracies of its runs)]}``, one entry per distinct
    resolved run settings (model and training config) of the ledger at ``path``."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for payload in read_ledger(path).values():
        resolved, result = payload.get("resolved"), payload.get("result")
        if not (isinstance(resolved, dict) and isinstance(result, dict) and "model_config" in resolved):
            continue
        settings = json.dumps({k: v for k, v in resolved.items() if k != "split"}, sort_keys=True)
        key = (resolved["dataset"], resolved["model"], settings)
        groups.setdefault(key, []).append(100.0 * float(result["test_acc"]))
    out: dict[tuple[str, str], list[tuple[str, list[float]]]] = {}
    for (ds, model, settings), accs in groups.items():
        config = json.dumps(json.loads(settings)["model_config"], sort_keys=True)
        out.setdefault((ds, model), []).append((config, accs))
    return out


def reference_config(dataset: str, model: str, profile: str = "paper") -> dict[str, Any]:
    """The hyperparameters notebook 01 trained ``model`` with on ``dataset`` (its table row's runs).

    Read from the run ledger (module docstring): the config of the runs whose count and mean test accuracy
    are the row's. Every field of the model's config is there (the sheaf models' ``sheaf`` included, which the
    registry accepts as it is the entry's own), so ``build(model, F, C, **reference_config(...))`` builds it
    at its real width, depth and stalk dimension.

    Args:
        dataset: A dataset of notebook 01's table.
        model: A model of notebook 01's table (registry name).
        profile: The profile whose outputs are read.

    Raises:
        ValueError: the table, the row or the ledger is missing, or no single configuration of the ledger
            reproduces the row (the outputs are out of step: rerun notebook 01).
    """
    row = notebook01_rows([dataset], [model], profile=profile).iloc[0]
    ledger = outputs_of(profile) / "runs" / f"{NOTEBOOK}.jsonl"
    if not ledger.is_file():
        raise ValueError(f"notebook 01's run ledger {ledger} is missing: {_RUN_FIRST}.")
    n, mean = int(row["n"]), float(row["mean"])
    groups = _ledger_groups(str(ledger), ledger.stat().st_mtime_ns).get((dataset, model), [])
    found = {c for c, accs in groups if len(accs) == n and abs(statistics.fmean(accs) - mean) <= _TOLERANCE}
    if len(found) != 1:
        raise ValueError(f"{len(found)} configurations of {ledger} reproduce notebook 01's {dataset}/{model} "
                         f"row ({mean:.2f}% over {n} splits), not one: the ledger and the table disagree; "
                         f"{_RUN_FIRST}.")  # fmt: skip
    return json.loads(found.pop())


def reference_model(
    dataset: str, model: str, *, build: ModelBuilder, seed: int = 0, profile: str = "paper",
    data: Data | None = None,
) -> tuple[nn.Module, Data]:  # fmt: skip
    """Notebook 01's ``model`` for ``dataset`` with its configuration (:func:`reference_config`), untrained.

    Args:
        dataset: The dataset (its graph sets the input and output widths).
        model: The registry name.
        build: :func:`mmsheaf.nsd.registry.build_node_model` (passed in: see the module docstring).
        seed: Seeds the initialisation.
        profile: The profile whose outputs are read.
        data: The graph, if already loaded (default :func:`~mmsheaf.data.nsd_graphs.load_graph`).

    Returns:
        ``(model, data)``: the model in eval mode and the graph it is for.
    """
    data = load_graph(dataset) if data is None else data
    config = reference_config(dataset, model, profile)
    set_seed(seed)
    net = build(model, data.num_features, int(data.y.max()) + 1, **config)
    return net.eval(), data


@torch.no_grad()
def _forward_ms(net: nn.Module, x: Tensor, edge_index: Tensor, repeats: int, fresh_graph: bool) -> float:
    net.eval()
    net(x, edge_index)  # warm-up (allocations; builds the graph operators the model caches)
    times = []
    for _ in range(repeats):
        edges = edge_index.clone() if fresh_graph else edge_index  # a new tensor misses the operator caches
        start = time.perf_counter()
        net(x, edges)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / max(1, x.size(0))


def reference_inference_ms(
    dataset: str, model: str, repeats: int = 5, seed: int = 0, *, build: ModelBuilder, profile: str = "paper",
    fresh_graph: bool = False, data: Data | None = None,
) -> float:  # fmt: skip
    """Milliseconds per node of notebook 01's ``model`` predicting every node of ``dataset``.

    Timed as :func:`~mmsheaf.graphreg.train.inference_ms` times the graph-regularised MLP (the eval-mode
    forward over all nodes under ``torch.no_grad()``, the median of ``repeats`` calls divided by the number
    of nodes), after one untimed warm-up call, which that function does not make. The forward is
    ``model(x, edge_index)``, as in notebook 01's training loop, so it includes what the model does with the
    graph: GCN's propagation, and for the sheaf models the restriction maps computed from the features and
    the sheaf Laplacian built from them and diffused with at every call. The model is untrained: the cost of
    a forward pass depends on the architecture and the graph, not on the values of the weights. Notebook
    01's MLP is timed the same way (it ignores the graph): its row compares like for like with the
    graph-regularised MLP.

    Args:
        dataset: The dataset.
        model: The registry name (e.g. ``"gcn"``, ``"diag-nsd"``, ``"mlp"``).
        repeats: Timed calls (``>= 1``).
        seed: Seeds the initialisation.
        build: :func:`mmsheaf.nsd.registry.build_node_model`.
        profile: The profile whose outputs are read.
        fresh_graph: ``False``: the graph's fixed operators (GCN's normalised adjacency, the sheaf models'
            edge index structures), built once per graph and cached by the models, are reused as in
            notebook 01's full-batch loop. ``True``: every timed call also builds them (a graph the model has
            not seen, e.g. after new nodes arrive).
        data: The graph, if already loaded.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    net, data = reference_model(dataset, model, build=build, seed=seed, profile=profile, data=data)
    return _forward_ms(net, data.x, data.edge_index, repeats, fresh_graph)


def reference_rows(
    datasets: str | Sequence[str], models: Sequence[str] = DEFAULT_MODELS, repeats: int = 5, *,
    build: ModelBuilder, profile: str = "paper", fresh_graph: bool = False, seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """:func:`notebook01_rows` with an ``infer_ms`` column (:func:`reference_inference_ms`, ms per node).

    Raises:
        ValueError: as :func:`notebook01_rows` and :func:`reference_config`, before anything is timed.
    """
    rows = notebook01_rows(datasets, models, profile=profile)
    for r in rows.itertuples(index=False):
        reference_config(r.dataset, r.model, profile)  # every row's config first: fail before timing
    graphs = {ds: load_graph(ds) for ds in rows["dataset"].unique()}
    rows["infer_ms"] = [
        reference_inference_ms(
            r.dataset,
            r.model,
            repeats,
            seed,
            build=build,
            profile=profile,
            fresh_graph=fresh_graph,
            data=graphs[r.dataset],
        )
        for r in rows.itertuples(index=False)
    ]
    return rows


def mlp_inference_ms(dataset: str, mlp: Mapping[str, Any], repeats: int = 5, seed: int = 0) -> float:
    """Milliseconds per node of this study's MLP (:class:`~mmsheaf.graphreg.model.RegularisedMLP` with the
    ``mlp`` settings, untrained: every penalty gives the same network at inference) on ``dataset``'s features,
    timed as the references are (:func:`~mmsheaf.graphreg.train.inference_ms`: warm-up, median of ``repeats``),
    so that the table's times come from one process on one machine."""
    data = load_graph(dataset)
    torch.manual_seed(seed)
    model = RegularisedMLP(data.x.size(1), int(data.y.max()) + 1, MLPConfig(**mlp), RegConfig())
    return inference_ms(model, data.x, repeats)
