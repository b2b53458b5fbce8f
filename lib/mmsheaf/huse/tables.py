r"""The tables of the HUSE study (notebook 04), made from its runs (:func:`~mmsheaf.huse.protocol.run_specs`).

- :func:`summary`: mean and std over seeds of every test number of every row of
  :data:`~mmsheaf.huse.protocol.VARIANTS`;
- :func:`comparison_table` (the CSV, :data:`CSV_COLUMNS`) and :func:`comparison_latex` (the paper's table:
  ``mean $\pm$ std``, the best of each column in bold);
- :func:`retrieval_frame`, :func:`retrieval_matrix_mean`: the cross-modal retrieval matrix (the heatmap);
- :func:`hp_curve`: HP@K over K;
- :func:`robustness_frame`: the missing-text curves.

The runs' test numbers are already in % (:func:`~mmsheaf.huse.evaluate.evaluate_huse`), so nothing is
rescaled; spreads are population standard deviations over seeds (:func:`~mmsheaf.runs.summary.over_repeats`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mmsheaf.report import Latex, latex_escape, mean_std
from mmsheaf.runs.summary import over_repeats

from .protocol import VARIANTS

__all__ = [
    "CROSS_R1",
    "CSV_COLUMNS",
    "HEADS",
    "comparison_latex",
    "comparison_table",
    "cross_r1",
    "hp_curve",
    "retrieval_frame",
    "retrieval_matrix_mean",
    "robustness_frame",
    "summary",
]

CSV_COLUMNS: tuple[str, ...] = ("model", "acc_text", "acc_tabular", "acc_graph", "acc_fusion",
                                "r1_text_tabular", "r1_tabular_text", "map_at_r_fused", "hp_at_5",
                                "std_acc_fusion", "std_r1_text_tabular")  # fmt: skip
"""The columns of ``figures/tables/huse.csv`` (:func:`comparison_table`), in order."""

_SOURCES: dict[str, str] = {
    "acc_text": "acc_text", "acc_tabular": "acc_tabular", "acc_graph": "acc_graph",
    "acc_fusion": "acc_fusion",
    "r1_text_tabular": "r@1_text_to_tabular", "r1_tabular_text": "r@1_tabular_to_text",
    "map_at_r_fused": "map_at_r_fused_to_fused", "hp_at_5": "hp_at_5",
}  # fmt: skip
"""Each number of the comparison and the key of :func:`~mmsheaf.huse.evaluate.evaluate_huse` it reads."""

HEADS: dict[str, str] = {
    "acc_text": "Acc.\\ text", "acc_tabular": "Acc.\\ tab.", "acc_graph": "Acc.\\ graph",
    "acc_fusion": "Acc.\\ fusion", "r1_text_tabular": "R@1 T$\\to$Tab", "r1_tabular_text": "R@1 Tab$\\to$T",
    "map_at_r_fused": "MAP@R fused", "hp_at_5": "HP@5",
}  # fmt: skip
"""The numbers of the LaTeX comparison and their column heads."""

CROSS_R1: tuple[str, str] = ("r@1_text_to_tabular", "r@1_tabular_to_text")
"""The two cross-modal R@1 cells whose average is a row's cross-modal R@1 (:func:`cross_r1`)."""

_RETRIEVAL_COLUMNS = ["variant", "seed", "query", "database", "r@1", "r@5", "r@10", "map_at_r", "n_queries"]
_ROBUSTNESS_COLUMNS = ["variant", "seed", "fraction", "n_removed", "map_at_r", "accuracy", "n_queries"]
_HP = re.compile(r"^test_hp_at_(\d+)$")


def _order(variants: pd.Series) -> list[str]:
    """The variants of ``variants`` in :data:`VARIANTS` order; an unknown one is an error."""
    present = set(variants)
    unknown = sorted(present - set(VARIANTS))
    if unknown:
        raise ValueError(f"the runs have rows {unknown} that are not in the comparison: use the variants of "
                         f"mmsheaf.huse.protocol.VARIANTS ({', '.join(VARIANTS)}).")  # fmt: skip
    return [v for v in VARIANTS if v in present]


def _numeric(column: pd.Series) -> pd.Series | None:
    """``column`` as floats when every value it holds is a number (``None``/NaN allowed), else ``None``."""
    if column.map(lambda v: isinstance(v, bool | str | list | dict)).any():
        return None
    values = pd.to_numeric(column, errors="coerce")
    return values.astype(float) if values.notna().sum() == column.notna().sum() else None


def _records(value: object) -> bool:
    """Whether a run's ``retrieval`` / ``robustness`` cell holds records (``None`` where it has none)."""
    return isinstance(value, list | tuple | np.ndarray) and len(value) > 0


def _long(runs: pd.DataFrame, column: str, columns: list[str]) -> pd.DataFrame:
    """The records of every run's ``column`` as one frame: ``variant, seed`` and the records' keys,
    ``columns`` first (an empty frame of ``columns`` when no run has any)."""
    rows = [{"variant": r["variant"], "seed": r["seed"], **rec}
            for _, r in runs.iterrows() if _records(r.get(column)) for rec in r[column]]  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    return frame[[*(c for c in columns if c in frame), *(c for c in frame if c not in columns)]]


def cross_r1(runs: pd.DataFrame) -> pd.Series:
    """Each run's cross-modal R@1 (%): the mean of text→tabular and tabular→text (:data:`CROSS_R1`); NaN
    where a run lacks either."""
    cells = [pd.to_numeric(runs[f"test_{c}"], errors="coerce") if f"test_{c}" in runs else
             pd.Series(np.nan, index=runs.index) for c in CROSS_R1]  # fmt: skip
    return (cells[0] + cells[1]) / 2


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (``ddof=0``) over seeds of every numeric test number of each row of the comparison.

    Args:
        runs: :func:`~mmsheaf.huse.protocol.run_specs` rows (``variant, seed, seconds``, ``test_<key>`` in %).

    Returns:
        One row per variant in :data:`~mmsheaf.huse.protocol.VARIANTS` order: ``variant, model`` (its display
        label), ``<key>, std_<key>`` for every numeric ``test_<key>`` (the ``test_`` dropped; NaN where a
        variant lacks it) and for ``cross_r1`` (:func:`cross_r1`), ``train_seconds`` and ``n_seeds``.
    """
    missing = [c for c in ("variant", "seed") if c not in runs]
    if missing:
        raise ValueError(f"the runs have no {missing} column: pass the frame mmsheaf.huse.protocol.run_specs "
                         "returns.")  # fmt: skip
    if runs.empty:
        raise ValueError("the runs are empty: run at least one variant (mmsheaf.huse.protocol.run_specs).")
    order = _order(runs.variant)
    tests = {c: _numeric(runs[c]) for c in runs.columns if c.startswith("test_")}
    tests = {c: v for c, v in tests.items() if v is not None}
    seconds = pd.to_numeric(runs["seconds"], errors="coerce") if "seconds" in runs else np.nan
    flat = pd.DataFrame({"variant": runs.variant, "seed": runs.seed, **tests, "test_cross_r1": cross_r1(runs),
                         "seconds": seconds}, index=runs.index)  # fmt: skip
    keys = [c for c in flat.columns if c.startswith("test_")]
    out = over_repeats(flat, ["variant"], {c.removeprefix("test_"): c for c in keys}).drop(columns="n")
    grouped = flat.groupby("variant", sort=False)
    out["train_seconds"] = grouped["seconds"].mean().to_numpy()
    out["n_seeds"] = grouped["seed"].nunique().to_numpy()
    out = out.set_index("variant").loc[order].reset_index()
    out.insert(1, "model", [VARIANTS[v].display for v in out.variant])
    return out


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The comparison as written to ``figures/tables/huse.csv``: one row per variant (table order), the
    columns :data:`CSV_COLUMNS` (seed means in %, NaN where a variant lacks the number, e.g. the graph
    accuracy of the fused baselines)."""
    s = summary(runs)
    out = pd.DataFrame({"model": s.model})
    for name in CSV_COLUMNS[1:]:
        std = name.startswith("std_")
        key = _SOURCES[name.removeprefix("std_")]
        column = f"std_{key}" if std else key
        out[name] = s[column].to_numpy() if column in s else np.nan
    return out[list(CSV_COLUMNS)]


def _label(variant: str) -> Latex:
    r"""A variant's display label in LaTeX, the loss terms as :math:`\mathcal{L}_{\mathrm{cls}}` etc."""
    text = latex_escape(VARIANTS[variant].display)
    return Latex(re.sub(r"L\\_(cls|graph|gap)", r"$\\mathcal{L}_{\\mathrm{\1}}$", text))


def comparison_latex(runs: pd.DataFrame) -> pd.DataFrame:
    r"""The paper's table as a frame of :class:`~mmsheaf.report.latex.Latex` cells: ``Model`` and the numbers
    of :data:`HEADS` as ``mean $\pm$ std`` to 1 decimal (the mean alone for one seed, ``--`` where a variant
    lacks it), the best mean of each column in bold: the ``tex`` of
    :meth:`Report.table(..., escape=False) <mmsheaf.report.outputs.Report.table>`, which writes it with
    :func:`~mmsheaf.report.latex.booktabs`."""
    s = summary(runs)
    spread = s.n_seeds > 1
    out = pd.DataFrame({"Model": [_label(v) for v in s.variant]})
    for name, head in HEADS.items():
        key = _SOURCES[name]
        mean = s[key] if key in s else pd.Series(np.nan, index=s.index)
        std = s[f"std_{key}"].where(spread) if key in s else mean
        best = mean.max()
        out[head] = [mean_std(m, d, 1, bold=bool(m == best), spaced=True) for m, d in zip(mean, std)]
    return out


def retrieval_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The retrieval matrices of ``runs`` as one long frame: ``variant, seed`` and each record's ``query,
    database, r@1, r@5, r@10, map_at_r, n_queries`` (in %); runs without a matrix are skipped."""
    return _long(runs, "retrieval", _RETRIEVAL_COLUMNS)


def retrieval_matrix_mean(runs: pd.DataFrame, variant: str, metric: str = "r@1") -> pd.DataFrame:
    """The seed mean of ``metric`` for every (query, database) pair of ``variant``: queries as rows,
    databases as columns, both in the matrix's order (the modalities, then ``fused``)."""
    frame = retrieval_frame(runs)
    frame = frame[frame.variant == variant]
    if frame.empty:
        raise ValueError(f"no retrieval matrix for {variant!r}: the runs have one for "
                         f"{sorted(set(retrieval_frame(runs).variant))}.")  # fmt: skip
    if metric not in frame:
        metrics = [c for c in frame if c not in ("variant", "seed", "query", "database")]
        raise ValueError(f"the retrieval records have no {metric!r}: choose one of {metrics}.")
    mean = frame.groupby(["query", "database"], sort=False)[metric].mean().unstack("database")
    queries, databases = list(dict.fromkeys(frame["query"])), list(dict.fromkeys(frame["database"]))
    mean = mean.reindex(index=queries, columns=databases)
    mean.index.name, mean.columns.name = "query", "database"
    return mean


def hp_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """HP@K (%) over seeds for every K of the runs' ``test_hp_at_<k>`` columns: ``variant, k, mean, std``
    (population std), variants in table order, K ascending."""
    ks = sorted(int(m.group(1)) for c in runs.columns if (m := _HP.match(c)))
    if not ks:
        raise ValueError("the runs have no test_hp_at_<k> column: pass the frame mmsheaf.huse.protocol."
                         "run_specs returns.")  # fmt: skip
    s = summary(runs)
    return pd.DataFrame([{"variant": v, "k": k, "mean": r[f"hp_at_{k}"], "std": r[f"std_hp_at_{k}"]}
                         for v, r in s.set_index("variant").iterrows() for k in ks])  # fmt: skip


def robustness_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The missing-text curves of ``runs`` as one long frame: ``variant, seed`` and each record's ``fraction,
    n_removed, map_at_r, accuracy, n_queries``; runs without a curve are skipped (an empty frame when none
    has one)."""
    return _long(runs, "robustness", _ROBUSTNESS_COLUMNS)
