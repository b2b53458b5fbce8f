"""The node-classification study's results as tables: the accuracy table beside NSD's published numbers, its
paper layout, the comparisons the text quotes, and the points of the depth and CSBM sweeps.

.. code-block:: python

    table = accuracy_table(run_experiments(protocol.table_specs(...), cache))   # mean ± std per row
    rep.table(table, "nsd_accuracy", tex=accuracy_display(table, datasets, MODELS, display), escape=False)
    rows_against_paper(table)                  # each sheaf row against its published number
    curve_ends(depth_summary(depth_runs), x="layers", by=("dataset", "model"))

Accuracies are in percent, standard deviations over the splits with ``ddof=0`` as in NSD.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pandas as pd

from ..data.node_datasets import resolve_node_dataset
from ..report import Latex, latex_escape, mean_std
from ..data.nsd_graphs import csbm_value, homophily_of
from .reference import SHEAF_MODELS, best_sheaf_result, paper_result
from .runs import summarise

__all__ = [
    "accuracy_display",
    "accuracy_table",
    "baseline_configs_display",
    "csbm_summary",
    "curve_ends",
    "depth_summary",
    "layers_of",
    "paper_checks",
    "rows_against_paper",
    "selection_display",
]


def accuracy_table(results: pd.DataFrame) -> pd.DataFrame:
    """``dataset, model, mean, std, n_splits, paper_mean, paper_std`` (accuracy in %, paper columns empty
    where NSD's Table 2 has no number)."""
    summary = summarise(results)
    rows = []
    for r in summary.itertuples(index=False):
        pm, ps = paper_result(r.dataset, r.model)
        rows.append({"dataset": r.dataset, "model": r.model, "mean": r.test_mean, "std": r.test_std,
                     "n_splits": int(r.n_splits), "paper_mean": pm, "paper_std": ps})  # fmt: skip
    columns = ["dataset", "model", "mean", "std", "n_splits", "paper_mean", "paper_std"]
    return pd.DataFrame(rows, columns=columns)


def accuracy_display(
    table: pd.DataFrame,
    datasets: Sequence[str],
    models: Sequence[str],
    display: Mapping[str, str],
    untuned: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The accuracy table laid out for the paper: one row per dataset with our mean ± std per model (the best
    in bold), a row beneath with the paper's numbers (in italics) and, given ``untuned`` (the
    :func:`accuracy_table` of the baselines with their papers' defaults, the labelled ablation), a row with
    those (``--`` where a model has none). Cells are LaTeX (:class:`~mmsheaf.report.latex.Latex`)."""
    rows = []
    for ds in datasets:
        sub = table[table.dataset == ds].set_index("model")
        if sub.empty:
            continue
        best = sub["mean"].max()
        ours = {"Dataset": Latex(latex_escape(resolve_node_dataset(ds).display or ds))}
        paper = {"Dataset": Latex(r"\quad\textit{paper}")}
        for m in models:
            if m not in sub.index:
                ours[display[m]] = paper[display[m]] = Latex("--")
                continue
            r = sub.loc[m]
            ours[display[m]] = mean_std(r["mean"], r["std"], bold=r["mean"] == best)
            paper[display[m]] = mean_std(r["paper_mean"], r["paper_std"], italic=True)
        rows += [ours, paper]
        if untuned is not None:
            sub_u = untuned[untuned.dataset == ds].set_index("model")
            row = {"Dataset": Latex(r"\quad untuned")}
            for m in models:
                hit = m in sub_u.index
                row[display[m]] = mean_std(sub_u.loc[m, "mean"], sub_u.loc[m, "std"]) if hit else Latex("--")
            rows.append(row)
    return pd.DataFrame(rows, columns=["Dataset", *[display[m] for m in models]])


def baseline_configs_display(configs: pd.DataFrame, display: Mapping[str, str]) -> pd.DataFrame:
    """Which configuration each baseline row of the table used, laid out for the paper: ``Dataset, Model,
    Configuration`` (``published``, ``search`` or ``defaults``), ``Settings`` and ``Val. acc.`` (the best
    trial's, searches only), from :attr:`~mmsheaf.nsd.tuning.BaselineTuning.configs`."""
    shown = configs.assign(
        dataset=configs.dataset.map(lambda ds: resolve_node_dataset(ds).display or ds),
        model=configs.model.map(lambda m: display.get(m, m)),
    )  # fmt: skip
    return shown[["dataset", "model", "configuration", "settings", "val_mean"]].rename(columns={
        "dataset": "Dataset", "model": "Model", "configuration": "Configuration", "settings": "Settings",
        "val_mean": "Val. acc."})  # fmt: skip


def selection_display(selection: pd.DataFrame) -> pd.DataFrame:
    """The configuration choice laid out for the paper: ``Dataset, Change to the base configuration, Val. acc.,
    Std, Chosen`` (``yes`` or empty) from the selection table of
    :meth:`~mmsheaf.nsd.protocol.NsdProtocol.choose`."""
    shown = selection.assign(chosen=selection.chosen.map({True: "yes", False: ""}))
    return shown[["dataset", "label", "val_mean", "val_std", "chosen"]].rename(columns={
        "dataset": "Dataset", "label": "Change to the base configuration", "val_mean": "Val. acc.",
        "val_std": "Std", "chosen": "Chosen"})  # fmt: skip


def paper_checks(table: pd.DataFrame, datasets: Sequence[str]) -> pd.DataFrame:
    """Per dataset, our best sheaf type against the paper's best: does ours reach the published mean minus
    its standard deviation?

    Args:
        table: :func:`accuracy_table` rows.
        datasets: the datasets to check, in the order of the rows returned.

    Returns:
        Rows ``dataset, ours, paper, paper_std, meets`` for each dataset with a sheaf row of ours and a
        published sheaf number.
    """
    sheaf = table[table.model.isin(SHEAF_MODELS)]
    rows = []
    for ds in datasets:
        ours, ref = sheaf[sheaf.dataset == ds], best_sheaf_result(ds)
        if len(ours) and ref is not None:
            best = ours["mean"].max()
            rows.append({"dataset": ds, "ours": best, "paper": ref[0], "paper_std": ref[1],
                         "meets": best >= ref[0] - ref[1]})  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "ours", "paper", "paper_std", "meets"])


def rows_against_paper(table: pd.DataFrame, models: Sequence[str] = SHEAF_MODELS) -> pd.DataFrame:
    """Each of our rows of ``models`` that has a published number, against it: is our mean within one
    published standard deviation of the published mean, or above it?

    Args:
        table: :func:`accuracy_table` rows (``dataset, model, mean, std, paper_mean, paper_std``).
        models: the rows to compare (default: the three sheaf types).

    Returns:
        Rows ``dataset, model, ours, paper, paper_std, gap, within`` (``gap`` = ours - paper, in points),
        in the order of ``table``.
    """
    rows = table[table.model.isin(list(models)) & table.paper_mean.notna()]
    out = pd.DataFrame({
        "dataset": rows.dataset, "model": rows.model, "ours": rows["mean"], "paper": rows.paper_mean.astype(float),
        "paper_std": rows.paper_std.astype(float),
    }).reset_index(drop=True)  # fmt: skip
    out["gap"] = out.ours - out.paper
    out["within"] = out.ours >= out.paper - out.paper_std
    return out


def layers_of(results: pd.DataFrame) -> pd.Series:
    """The ``layers`` hyperparameter of each result row (from its JSON ``hparams``)."""
    return results["hparams"].map(lambda s: int(json.loads(s)["layers"]))


def depth_summary(results: pd.DataFrame) -> pd.DataFrame:
    """The depth sweep's points: :func:`~mmsheaf.nsd.runs.summarise` of the runs of
    :meth:`NsdProtocol.depth_specs` per ``dataset, model, layers``."""
    return summarise(results.assign(layers=layers_of(results)), by=("dataset", "model", "layers"))


def csbm_summary(results: pd.DataFrame) -> pd.DataFrame:
    """The CSBM sweep's points: :func:`~mmsheaf.nsd.runs.summarise` of the runs of
    :meth:`NsdProtocol.sbm_specs` per ``signal`` (the graphs' ``feature_signal``), ``homophily, model``."""
    graphs = results.assign(homophily=results.dataset.map(homophily_of),
                            signal=results.dataset.map(lambda name: csbm_value(name, "feature_signal")))  # fmt: skip
    return summarise(graphs, by=("signal", "homophily", "model"))


def curve_ends(summary: pd.DataFrame, x: str, by: Sequence[str], y: str = "test_mean") -> pd.DataFrame:
    """The points of a swept curve the text quotes: for each group ``by`` (e.g. one model on one dataset), the
    value at the smallest and at the largest ``x`` (depth, homophily), and the worst and the best point.

    Args:
        summary: one row per point of each curve (as :func:`~mmsheaf.nsd.runs.summarise` returns them).
        x: the swept column.
        by: the columns that name one curve.
        y: the value column.

    Returns:
        Rows ``*by, first_x, first, last_x, last, worst_x, worst, best_x, best`` (ties go to the smaller ``x``).
    """
    by = list(by)
    missing = [c for c in [*by, x, y] if c not in summary.columns]
    if missing:
        raise ValueError(f"curve_ends: the summary lacks the columns {missing}; it has {list(summary.columns)}")
    ordered = summary.sort_values([*by, x], kind="stable").reset_index(drop=True)
    groups = ordered.groupby(by, sort=True)[y]
    picks = {"first": groups.head(1).index, "last": groups.tail(1).index,
             "worst": groups.idxmin().to_numpy(), "best": groups.idxmax().to_numpy()}  # fmt: skip
    out = ordered.loc[picks["first"], by].reset_index(drop=True)
    for name, index in picks.items():
        rows = ordered.loc[index].set_index(by)
        key = pd.MultiIndex.from_frame(out[by]) if len(by) > 1 else pd.Index(out[by[0]])
        out[f"{name}_x"] = rows[x].reindex(key).to_numpy()
        out[name] = rows[y].reindex(key).to_numpy()
    return out
