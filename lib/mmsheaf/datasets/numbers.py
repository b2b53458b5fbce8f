"""The numbers the paper's section "Datasets" quotes, computed from the summaries notebook 00 makes.

.. code-block:: python

    graphs, _, missing_graphs = node_summary(GRAPHS)
    tables, missing_tables = table_summary(TABLES)
    rep.macros(dataset_numbers(graphs, tables, {**missing_graphs, **missing_tables}, threshold=0.5))

Every macro name is a literal here, so ``grep`` finds the code behind each ``\\Ds...`` of the paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..report import Latex, latex_escape, number

__all__ = ["dataset_numbers"]

CORNELL_MACROS: Mapping[str, str] = {"cornell": "DsCornellH", "cornell-nsd": "DsCornellNsdH"}
"""The edge homophily of the two Cornell files (the corrected one and the one NSD used)."""

CLOTHING_MACROS: Mapping[str, str] = {
    "DsClothingRows": "rows",
    "DsClothingMissingText": "missing_text_rows",
    "DsClothingMissingTitle": "missing_title_rows",
    "DsClothingClasses": "classes",
    "DsClothingItems": "entities",
}
"""The clothing-review counts quoted, by the :func:`~mmsheaf.data.summary.table_summary` column they read."""


def dataset_numbers(graphs: pd.DataFrame, tables: pd.DataFrame, missing: Mapping[str, str],
                    threshold: float) -> dict[str, Any]:  # fmt: skip
    """``{macro name: LaTeX value}`` of the datasets section.

    Args:
        graphs: :func:`~mmsheaf.data.summary.node_summary` rows (``name, dataset, edge_homophily,
            node_homophily, mean_degree``), any order.
        tables: :func:`~mmsheaf.data.summary.table_summary` rows (``name`` and the counts of
            :data:`CLOTHING_MACROS`).
        missing: ``{dataset: why}`` of the datasets the run could not load (named in ``\\DsMissing``).
        threshold: edge homophily below which a graph counts as heterophilic.

    Returns:
        The macros; a graph or table that is missing gives ``--`` for its numbers.
    """
    needed = {"name", "dataset", "edge_homophily", "node_homophily", "mean_degree"} - set(graphs.columns)
    if needed or graphs.empty:
        raise ValueError(f"dataset_numbers needs node_summary rows with the columns {sorted(needed)} and at "
                         "least one graph: pass the frame node_summary(...) returns.")  # fmt: skip
    graphs = graphs.sort_values("edge_homophily", ignore_index=True)
    lo, hi = graphs.iloc[0], graphs.iloc[-1]
    gap = (graphs["node_homophily"] - graphs["edge_homophily"]).abs()
    by_name = graphs.set_index("name")
    out: dict[str, Any] = {
        "DsNumGraphs": number(len(graphs)),
        "DsNumHeterophilic": number(int((graphs["edge_homophily"] < threshold).sum())),
        "DsHeterophilyThreshold": number(threshold, 1),
        "DsMostHeterophilic": number(lo["dataset"]),
        "DsMostHeterophilicH": number(lo["edge_homophily"], 2),
        "DsMostHomophilic": number(hi["dataset"]),
        "DsMostHomophilicH": number(hi["edge_homophily"], 2),
        "DsLargestGap": number(graphs.loc[gap.idxmax(), "dataset"]),
        "DsLargestGapValue": number(gap.max(), 2),
        "DsDensest": number(graphs.loc[graphs["mean_degree"].idxmax(), "dataset"]),
        "DsDensestDegree": number(graphs["mean_degree"].max(), 1),
        "DsMissing": Latex("; ".join(f"{latex_escape(k)} ({latex_escape(v)})" for k, v in missing.items())
                           or "none"),  # fmt: skip
    }
    for key, macro in CORNELL_MACROS.items():
        out[macro] = number(by_name.loc[key, "edge_homophily"] if key in by_name.index else float("nan"), 2)
    names = set(tables["name"]) if "name" in tables.columns else set()
    clothing = tables.set_index("name").loc["clothing"] if "clothing" in names else None
    for macro, column in CLOTHING_MACROS.items():
        out[macro] = number(int(clothing[column]) if clothing is not None else float("nan"))
    return out
