"""Summary statistics of graphs and tables (for the dataset tables and distribution plots of the report).

Homophily follows PyG's :func:`~torch_geometric.utils.homophily`: the *edge* homophily of
`"Beyond Homophily in Graph Neural Networks" <https://arxiv.org/abs/2006.11468>`_ (Zhu et al., 2020), the
fraction of edges joining equal labels, and the *node* homophily of
`"Geom-GCN" <https://openreview.net/forum?id=S1e2agrFvS>`_ (Pei et al., 2020), the mean over nodes of the
fraction of same-label neighbours. All statistics use the undirected graph without self-loops.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import degree, homophily, remove_self_loops, to_undirected

__all__ = ["degree_and_local_homophily", "graph_stats", "table_stats", "undirected_edge_index"]


def undirected_edge_index(data: Data) -> Tensor:
    """``data.edge_index`` without self-loops and with both directions of every edge (coalesced).

    Shapes:
        - **output:** :math:`(2, 2|E|)` where :math:`|E|` is the number of undirected edges.
    """
    edge_index, _ = remove_self_loops(data.edge_index)
    return to_undirected(edge_index, num_nodes=data.num_nodes)


def graph_stats(data: Data) -> dict[str, float | int]:
    """Size and homophily of a labelled graph.

    Args:
        data: A graph with ``edge_index`` and ``y`` (``x`` optional). It may be directed or have self-loops:
            the statistics use the undirected graph without self-loops.

    Returns:
        ``nodes``, ``edges`` (undirected, no self-loops), ``features`` (0 without ``x``), ``classes``
        (distinct labels), ``edge_homophily`` and ``node_homophily`` (PyG's; isolated nodes count as 0 in
        the node average), ``mean_degree`` (``2 * edges / nodes``).
    """
    if getattr(data, "y", None) is None:
        raise ValueError("graph_stats needs node labels `data.y` (a LongTensor of shape [N]).")
    edge_index = undirected_edge_index(data)
    num_nodes = int(data.num_nodes)
    num_edges = edge_index.size(1) // 2
    y = data.y.view(-1)
    x = getattr(data, "x", None)
    return {
        "nodes": num_nodes,
        "edges": num_edges,
        "features": int(x.size(1)) if x is not None and x.dim() == 2 else 0,
        "classes": int(torch.unique(y).numel()),
        "edge_homophily": float(homophily(edge_index, y, method="edge")) if num_edges else float("nan"),
        "node_homophily": float(homophily(edge_index, y, method="node")) if num_edges else float("nan"),
        "mean_degree": 2.0 * num_edges / num_nodes if num_nodes else float("nan"),
    }


def degree_and_local_homophily(data: Data) -> tuple[Tensor, Tensor]:
    r"""Per-node degree and local homophily (fraction of neighbours with the node's label).

    .. math::
        h_v = \frac{|\{u \in \mathcal{N}(v) : y_u = y_v\}|}{|\mathcal{N}(v)|}

    on the undirected graph without self-loops; :math:`h_v` is NaN for isolated nodes, so
    ``local.nanmean()`` is the node homophily over non-isolated nodes.

    Args:
        data: A graph with ``edge_index`` and ``y``.

    Returns:
        ``(degree, local_homophily)``.

    Shapes:
        - **degree:** :math:`(N,)` int64
        - **local_homophily:** :math:`(N,)` float32 (NaN where the degree is 0)
    """
    if getattr(data, "y", None) is None:
        raise ValueError("degree_and_local_homophily needs node labels `data.y` (a LongTensor of shape [N]).")
    edge_index = undirected_edge_index(data)
    num_nodes = int(data.num_nodes)
    row, col = edge_index
    y = data.y.view(-1)
    deg = degree(col, num_nodes=num_nodes, dtype=torch.long)
    same = (y[row] == y[col]).to(torch.float)
    same_count = torch.zeros(num_nodes, dtype=torch.float).index_add_(0, col, same)
    local = same_count / deg.to(torch.float)  # 0 / 0 = NaN for isolated nodes
    return deg, local


def table_stats(df: pd.DataFrame, label: str | None = None) -> dict[str, int | None]:
    """Size and missingness of a table.

    Args:
        df: The table.
        label: The label column, if any.

    Returns:
        ``rows``, ``columns``, ``missing_values`` (missing cells), ``rows_with_missing`` and ``classes``
        (distinct non-null values of ``label``; ``None`` without a label).
    """
    if label is not None and label not in df.columns:
        raise ValueError(f"Label column {label!r} is not in the table: choose one of {list(df.columns)}.")
    missing = df.isna()
    return {
        "rows": int(len(df)),
        "columns": int(df.shape[1]),
        "missing_values": int(missing.to_numpy().sum()),
        "rows_with_missing": int(missing.any(axis=1).sum()),
        "classes": int(df[label].nunique(dropna=True)) if label is not None else None,
    }
