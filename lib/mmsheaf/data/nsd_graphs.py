"""The graphs as the NSD protocol sees them: the benchmark's datasets prepared as NSD's loaders prepare them,
and contextual SBM graphs named by their parameters. Shared by the studies that compare with notebook 01's
table (the NSD study itself, the graph-regularisation study), so that they train on the same graphs.

.. code-block:: python

    data = load_graph("texas")                              # row-normalised features, geom-gcn splits
    name = csbm_name(0.3, num_nodes=1000, feature_signal=2.0)  # "csbm:edge_homophily=0.3,..."
    data = load_graph(name)                                 # generated from the name
    homophily_of(name)                                      # 0.3

A graph's preparation enters every run key through :data:`DATA_VERSIONS`, and a CSBM graph's parameters
through its name, so a changed preparation or graph recomputes exactly the runs it affects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from torch_geometric.data import Data
from torch_geometric.transforms import NormalizeFeatures

from .node_datasets import load_node_dataset
from .synthetic import CSBMConfig, contextual_sbm

__all__ = ["CSBM_PREFIX", "DATA_VERSIONS", "csbm_name", "csbm_value", "homophily_of", "load_graph"]

CSBM_PREFIX = "csbm:"
"""The prefix of the dataset names of contextual SBM graphs (:func:`csbm_name`)."""

DATA_VERSIONS: Mapping[str, int] = MappingProxyType({"citeseer": 2, "pubmed": 2})
"""Version of :func:`load_graph`'s preparation per dataset (1 where absent), carried into every spec's key.
2: nodes without features are taken out of every split. These are CiteSeer's isolated test-range gaps
(PyG fills them with zero rows and label 0); NSD's loader drops them from all masks (``utils/classic.py``,
``non_valid_samples``, after H2GCN/GGCN)."""

_CSBM_FIELDS: Mapping[str, type] = MappingProxyType(
    {f.name: (int if str(f.type) in ("int", "<class 'int'>") else float) for f in dataclasses.fields(CSBMConfig)}
)


def csbm_name(edge_homophily: float, **graph: Any) -> str:
    """A dataset name that encodes a contextual SBM graph, e.g. ``csbm:edge_homophily=0.3,num_nodes=1000``
    (fields sorted, so the same graph given in another order has the same name and the same cached runs)."""
    items = {"edge_homophily": round(float(edge_homophily), 4), **graph}
    return CSBM_PREFIX + ",".join(f"{k}={items[k]}" for k in sorted(items))


def _csbm_items(name: str) -> list[tuple[str, str]]:
    if not name.startswith(CSBM_PREFIX):
        raise ValueError(f"{name!r} is not a CSBM graph name (they start with {CSBM_PREFIX!r}, see csbm_name)")
    return [(key, raw) for key, _, raw in (item.partition("=") for item in name[len(CSBM_PREFIX):].split(","))]


def load_graph(name: str) -> Data:
    """A graph as the NSD protocol sees it.

    Real datasets come from :func:`~mmsheaf.data.load_node_dataset` with every node's features divided by
    their sum (PyG's :class:`~torch_geometric.transforms.NormalizeFeatures`), as NSD's loaders do for every
    dataset (``utils/heterophilic.py``: ``transform=T.NormalizeFeatures()``); the contextual SBM graphs named
    by :func:`csbm_name` are generated (their Gaussian features are left as they are). From version 2 of a
    dataset (:data:`DATA_VERSIONS`), nodes whose features are all zero are out of every train, validation
    and test mask, as in NSD.

    Raises:
        FileNotFoundError: a real dataset whose files are missing (the message says where to put them).
        ValueError: a CSBM name with a field :class:`~mmsheaf.data.CSBMConfig` does not have.
    """
    if not name.startswith(CSBM_PREFIX):
        data = NormalizeFeatures()(load_node_dataset(name))
        if DATA_VERSIONS.get(name, 1) >= 2:
            valid = (data.x != 0).any(dim=1).unsqueeze(1)  # (N, 1), broadcast over the split columns
            data.train_mask, data.val_mask, data.test_mask = (
                data.train_mask & valid, data.val_mask & valid, data.test_mask & valid)  # fmt: skip
        return data
    kwargs: dict[str, Any] = {}
    for key, raw in _csbm_items(name):
        if key not in _CSBM_FIELDS:
            raise ValueError(f"{name!r}: {key!r} is not a CSBMConfig field ({', '.join(_CSBM_FIELDS)})")
        kwargs[key] = _CSBM_FIELDS[key](raw)
    data = contextual_sbm(CSBMConfig(**kwargs))
    data.name = name
    return data


def csbm_value(name: str, field: str) -> float:
    """The value of one :class:`~mmsheaf.data.CSBMConfig` field encoded in a :func:`csbm_name`."""
    for key, raw in _csbm_items(name):
        if key == field:
            return float(raw)
    raise ValueError(f"{name!r} names no {field}")


def homophily_of(name: str) -> float:
    """The edge homophily encoded in a :func:`csbm_name`."""
    return csbm_value(name, "edge_homophily")
