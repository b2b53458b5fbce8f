"""One-row-per-dataset summaries for the report's dataset tables (notebook ``00_datasets``).

:func:`node_summary` loads graphs by name and tabulates :func:`~mmsheaf.data.stats.graph_stats`;
:func:`table_summary` does the same for the text/tabular sets with :func:`~mmsheaf.data.stats.table_stats`.
Datasets whose files are missing are not an error here: they are returned separately with the reason, so a
report can say honestly what it could not include.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
from torch_geometric.data import Data

from mmsheaf.data.errors import DatasetNotFoundError
from mmsheaf.data.node_datasets import load_node_dataset, resolve_node_dataset
from mmsheaf.data.stats import graph_stats, table_stats
from mmsheaf.data.tables import TABLE_DATASETS, load_clothing_reviews, load_mnist5k, load_movielens100k

__all__ = ["node_summary", "table_summary", "TABLE_SUMMARISERS"]


def _missing_reason(exc: DatasetNotFoundError) -> str:
    """The missing file names from a DatasetNotFoundError message, short enough for a table note."""
    names = [ln.strip().split("/")[-1] for ln in str(exc).splitlines() if ln.strip().startswith(("-", "/"))]
    names = [n.lstrip("- ") for n in names if n]
    return ("missing " + ", ".join(names[:3])) if names else "files missing"


def node_summary(
    names: Sequence[str], root: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, Data], dict[str, str]]:
    """Statistics of the node datasets that can be loaded.

    Args:
        names: registry names (see :func:`~mmsheaf.data.node_datasets.node_dataset_names`, or ``"csbm"``).
        root: data root (default :func:`mmsheaf.paths.data_root`).

    Returns:
        ``(table, graphs, missing)``: a frame with columns ``name, dataset, nodes, edges, features, classes,
        edge_homophily, node_homophily, mean_degree, splits`` (one row per loaded dataset, in the given
        order), the loaded graphs by name, and ``{display name: reason}`` for datasets whose files are
        missing.
    """
    rows, graphs, missing = [], {}, {}
    for name in names:
        spec = resolve_node_dataset(name)
        try:
            data = load_node_dataset(spec.name, root=root)
        except DatasetNotFoundError as exc:
            missing[spec.display or spec.name] = _missing_reason(exc)
            continue
        graphs[spec.name] = data
        mask = getattr(data, "train_mask", None)
        splits = int(mask.size(1)) if mask is not None and mask.dim() == 2 else 1
        rows.append({"name": spec.name, "dataset": spec.display or spec.name, **graph_stats(data), "splits": splits})
    return pd.DataFrame(rows), graphs, missing


def _clothing(root: str | Path | None) -> dict[str, Any]:
    df = load_clothing_reviews(root)
    stats = table_stats(df, label="Class Name")
    return {
        **stats,
        "text_columns": 2,
        "numeric_columns": 4,
        "categorical_columns": 3,
        "missing_text_rows": int(df["Review Text"].isna().sum()),
        "missing_title_rows": int(df["Title"].isna().sum()),
        "entities": int(df["Clothing ID"].nunique()),
        "note": "label: Class Name; rows linked by Clothing ID",
    }


def _movielens(root: str | Path | None) -> dict[str, Any]:
    tables = load_movielens100k(root)
    ratings, users, items = tables["ratings"], tables["users"], tables["items"]
    missing = sum(int(t.isna().sum().sum()) for t in (ratings, users, items))
    return {
        "rows": len(ratings),
        "columns": ratings.shape[1] + users.shape[1] - 1 + items.shape[1] - 1,
        "missing_values": missing,
        "rows_with_missing": int(items.isna().any(axis=1).sum() + users.isna().any(axis=1).sum()),
        "classes": None,
        "text_columns": 1,
        "numeric_columns": 2,
        "categorical_columns": 3,
        "missing_text_rows": int(items["title"].isna().sum()) if "title" in items else 0,
        "missing_title_rows": None,
        "entities": int(ratings["user_id"].nunique() + ratings["item_id"].nunique()),
        "note": f"{ratings['user_id'].nunique():,} users x {ratings['item_id'].nunique():,} movies; implicit feedback",
    }


def _mnist(root: str | Path | None) -> dict[str, Any]:
    x, y = load_mnist5k(root)
    return {
        "rows": int(x.shape[0]),
        "columns": int(x.shape[1]),
        "missing_values": 0,
        "rows_with_missing": 0,
        "classes": int(len(set(y.tolist()))),
        "text_columns": 0,
        "numeric_columns": int(x.shape[1]),
        "categorical_columns": 0,
        "missing_text_rows": None,
        "missing_title_rows": None,
        "entities": None,
        "note": "28x28 pixels, 500 per class",
    }


TABLE_SUMMARISERS: Mapping[str, Callable[[str | Path | None], dict[str, Any]]] = MappingProxyType(
    {"clothing": _clothing, "movielens100k": _movielens, "mnist5k": _mnist}
)
"""How each text/tabular set is summarised: name -> function(root) -> statistics."""


def table_summary(names: Sequence[str], root: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Statistics of the text/tabular sets: rows, columns, missing values, classes and a note.

    Returns:
        ``(table, missing)`` as in :func:`node_summary` (without graphs).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    rows, missing = [], {}
    for name in names:
        if name not in TABLE_SUMMARISERS:
            raise ValueError(f"Unknown table dataset {name!r}: choose from {', '.join(TABLE_SUMMARISERS)}")
        try:
            stats = TABLE_SUMMARISERS[name](root)
        except DatasetNotFoundError as exc:
            missing[name] = _missing_reason(exc)
            continue
        rows.append({"name": name, "description": TABLE_DATASETS[name].description, **stats})
    table = pd.DataFrame(rows)
    for col in table.columns:  # counts with gaps (None) stay integers
        if col not in ("name", "description", "note"):
            table[col] = pd.array(table[col], dtype="Int64")
    return table, missing
