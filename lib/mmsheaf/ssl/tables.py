r"""Notebook 06's tables and the frames behind its figures, from the run tables of :func:`~mmsheaf.ssl.protocol.run_specs`.

- :func:`collapse_table`: ``figures/tables/ssl_collapse.csv`` (one row per dataset, method, similarity and
  variant: means over seeds) and its LaTeX version;
- :func:`history_frame`: the diagnostics logged during training, one row per run and record (the SimSiam
  stop-gradient figure);
- :func:`spectrum_frame`: the covariance spectra of the embeddings at the end of training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from mmsheaf.report import Latex, latex_escape, mean_std, number
from mmsheaf.ssl.methods import resolve_method
from mmsheaf.ssl.plan import MAIN_VARIANT

__all__ = ["TABLE_COLUMNS", "collapse_table", "history_frame", "label_runs", "spectrum_frame"]

TABLE_COLUMNS: tuple[str, ...] = ("dataset", "method", "similarity", "variant", "knn_acc", "linear_acc", "norm_std",
                                  "rankme", "std_knn_acc", "train_seconds")  # fmt: skip
"""The columns of ``ssl_collapse.csv`` (issue 17), followed by ``val_knn_acc`` (the validation k-NN accuracy
rows are compared on), ``diverged`` (runs that stopped on a non-finite loss) and ``n_seeds``."""


def label_runs(runs: pd.DataFrame, variant: str) -> pd.DataFrame:
    """``runs`` with a ``variant`` column and the method's display name (``method_name``)."""
    return runs.assign(variant=variant, method_name=runs.method.map(lambda m: resolve_method(m).display))


def collapse_table(
    runs: pd.DataFrame, order: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    r"""The table of every (dataset, method, similarity, variant): means over the seeds with finite scores
    (``diverged`` counts the runs whose loss stopped being finite; a row without any finite score has ``NaN``
    means).

    Args:
        runs: run tables with a ``variant`` column (:func:`label_runs`), concatenated.
        order: Variants in table order within each data set (default: as they first appear); data sets keep
            the order in which they first appear.

    Returns:
        ``(table, tex)``: :data:`TABLE_COLUMNS`, ``val_knn_acc``, ``diverged`` and ``n_seeds``; and the LaTeX
        version (method, similarity, variant, k-NN and linear accuracy in % as ``mean $\pm$ std``, normalised
        std, RankMe, seconds, and the diverged seeds as ``k/n``, a column only where a run diverged; the grid's
        variant blank, an ablation's without its method's name).
    """
    keys = ["dataset", "method", "similarity", "variant"]
    if missing := [
        c for c in (*keys, "knn_acc", "linear_acc", "norm_std", "rankme", "seconds") if c not in runs
    ]:
        raise ValueError(f"runs lack the columns {missing}: pass run_specs tables labelled with label_runs.")
    grouped = runs.groupby(keys, sort=False)
    table = grouped.agg(knn_acc=("knn_acc", "mean"), linear_acc=("linear_acc", "mean"),
                        norm_std=("norm_std", "mean"), rankme=("rankme", "mean"), std_knn_acc=("knn_acc", "std"),
                        train_seconds=("seconds", "mean"), val_knn_acc=("val_knn_acc", "mean"),
                        diverged=("diverged", "sum"), n_seeds=("seed", "nunique")).reset_index()  # fmt: skip
    datasets = {d: i for i, d in enumerate(dict.fromkeys(table.dataset))}
    variants = {v: i for i, v in enumerate(order if order is not None else dict.fromkeys(table.variant))}
    table = table.sort_values(["dataset", "variant"], kind="stable", ignore_index=True,
                              key=lambda col: col.map(datasets if col.name == "dataset" else variants))  # fmt: skip
    tex = pd.DataFrame({
        "Data": [Latex(latex_escape(d)) for d in table.dataset],
        "Method": [Latex(latex_escape(resolve_method(m).display)) for m in table.method],
        "Similarity": [Latex(latex_escape(s)) for s in table.similarity],
        "Variant": [Latex(latex_escape(_variant(v, resolve_method(m).display))) for v, m in zip(table.variant, table.method)],
        "$k$-NN \\%": [_pct(m, s) for m, s in zip(table.knn_acc, table.std_knn_acc)],
        "Linear \\%": [_pct(m, None) for m in table.linear_acc],
        "Norm.\\ std": [_num(v, 2) for v in table.norm_std],
        "RankMe": [_num(v, 1) for v in table.rankme],
        "s": [_num(v, 0) for v in table.train_seconds],
        "Div.": [Latex(f"{int(d)}/{int(n)}" if d else "") for d, n in zip(table.diverged, table.n_seeds)],
    })  # fmt: skip
    if not table.diverged.any():
        tex = tex.drop(columns="Div.")  # a column of blanks only widens the page
    return table[[*TABLE_COLUMNS, "val_knn_acc", "diverged", "n_seeds"]], tex


def _variant(variant: str, method: str) -> str:
    """The variant as the LaTeX table shows it: blank for the grid's rows, without the method's name (its own
    column) for an ablation named after it ("SimSiam, no predictor" -> "no predictor")."""
    if variant == MAIN_VARIANT:
        return ""
    return variant[len(method) + 2 :] if variant.startswith(f"{method}, ") else variant


def _finite(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


def _pct(mean: float, std: float | None) -> Latex:
    if not _finite(mean):
        return Latex("diverged")
    return mean_std(100 * mean, 100 * std, 1, spaced=True) if _finite(std) else number(100 * mean, 1)


def _num(value: float, digits: int) -> Latex:
    return number(value, digits) if _finite(value) else Latex("--")


def history_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The diagnostics records of every run, long: ``variant, method, method_name, similarity, seed, epoch, loss,
    norm_std, rankme, rankme_h, knn_acc`` (of the validation images; ``_h``: the representation)."""
    rows = [{"variant": r.variant, "method": r.method, "method_name": r.method_name, "similarity": r.similarity,
             "seed": r.seed, **rec} for r in runs.itertuples() for rec in r.history]  # fmt: skip
    return pd.DataFrame(rows)


def spectrum_frame(runs: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The covariance spectra of the runs' test embeddings, normalised by their largest eigenvalue, long:
    ``variant, method_name, similarity, seed, index`` (1-based), ``eigenvalue``; ``labels`` renames variants."""
    rows = []
    for r in runs.itertuples():
        if not r.spectrum or not r.spectrum[0] > 0:
            continue
        top = r.spectrum[0]
        name = (labels or {}).get(r.variant, r.variant)
        rows += [{"variant": name, "method_name": r.method_name, "similarity": r.similarity, "seed": r.seed,
                  "index": i + 1, "eigenvalue": v / top} for i, v in enumerate(r.spectrum)]  # fmt: skip
    return pd.DataFrame(rows)
