r"""Notebook 07's tables, from the run tables of :class:`~mmsheaf.graphreg.plan.GraphRegPlan`.

``figures/tables/graph_reg.csv`` has one row per result (:data:`TABLE_COLUMNS`): a model (``mlp``, whatever its
training penalty, or a reference of notebook 01: ``gcn``, ``diag-nsd``, ...), the penalty it was trained with
(``regulariser``: ``none``, ``graph``, ``sheaf-diag``, ``sheaf-orth``, ``sheaf-gen``; for the retrieval rows
also the training distance, ``graph/sq_l2``), a distance (the penalty's, or for retrieval the one that ranks
the database), a metric (``test_acc``, ``map_at_r``, ``p_at_1``, ``knn_acc``) and its mean and standard
deviation over splits or seeds in percent (population std, as notebook 01's table), the number of runs and the
inference time per node in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mmsheaf.report import Latex, latex_escape, mean_std

__all__ = [
    "TABLE_COLUMNS",
    "accuracy_tex",
    "reference_rows",
    "regulariser_name",
    "result_rows",
    "retrieval_rows",
]

TABLE_COLUMNS: tuple[str, ...] = ("task", "dataset", "model", "regulariser", "distance", "metric", "mean", "std",
                                  "n", "infer_ms")  # fmt: skip
"""The columns of ``graph_reg.csv`` (issue 18)."""


def regulariser_name(kind: str, sheaf: str = "") -> str:
    """``none``, ``graph`` or ``sheaf-<maps>``."""
    return f"sheaf-{sheaf}" if kind == "sheaf" else kind


def _stats(values: pd.Series) -> tuple[float, float]:
    return 100.0 * float(values.mean()), 100.0 * float(values.std(ddof=0))


def result_rows(runs: pd.DataFrame, infer_ms: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One ``test_acc`` row per (setting, plan row) of a plan's final runs (:meth:`~mmsheaf.graphreg.plan.
    GraphRegPlan.run_final`), with ``row`` and ``alpha`` (the chosen weight) and ``val_acc`` (mean, %) after
    :data:`TABLE_COLUMNS`. ``infer_ms`` (per setting, e.g. :func:`~mmsheaf.graphreg.references.mlp_inference_ms`)
    replaces the times the runs measured during training (other sessions, other loads) by one measured beside the
    references."""
    out = []
    for (setting, row), g in runs.groupby(["setting", "row"], sort=False):
        first = g.iloc[0]
        mean, std = _stats(g.test_acc)
        out.append({"task": first.task, "dataset": setting, "model": "mlp",
                    "regulariser": regulariser_name(first.regulariser, first.sheaf), "distance": first.distance,
                    "metric": "test_acc", "mean": mean, "std": std, "n": len(g),
                    "infer_ms": float(infer_ms[setting]) if infer_ms else float(g.infer_ms.mean()),
                    "row": row, "alpha": float(first.alpha), "val_acc": 100.0 * float(g.val_acc.mean())})  # fmt: skip
    return pd.DataFrame(out)


def reference_rows(refs: pd.DataFrame, task: str = "node") -> pd.DataFrame:
    """Notebook 01's rows (:func:`~mmsheaf.graphreg.references.reference_rows`: ``dataset, model, mean, std, n,
    infer_ms``) in :data:`TABLE_COLUMNS`, with ``row`` = the model."""
    return pd.DataFrame({"task": task, "dataset": refs.dataset, "model": refs.model, "regulariser": "",
                         "distance": "", "metric": "test_acc", "mean": refs["mean"], "std": refs["std"],
                         "n": refs.n, "infer_ms": refs.infer_ms, "row": refs.model})  # fmt: skip


def retrieval_rows(records: pd.DataFrame, runs: pd.DataFrame, task: str = "retrieval") -> pd.DataFrame:
    """MAP@R and P@1 rows from :meth:`~mmsheaf.graphreg.plan.GraphRegPlan.run_retrieval` (``setting, row, split,
    distance, map_at_r, p_at_1``), the training penalty of every plan row read from ``runs`` (its final runs)."""
    penalty = {(r.setting, r.row): regulariser_name(r.regulariser, r.sheaf) + (f"/{r.distance}" if r.distance else "")
               for r in runs.drop_duplicates(["setting", "row"]).itertuples()}  # fmt: skip
    out = []
    for (setting, row, distance), g in records.groupby(["setting", "row", "distance"], sort=False):
        for metric in ("map_at_r", "p_at_1"):
            mean, std = _stats(g[metric])
            out.append({"task": task, "dataset": setting, "model": "mlp", "regulariser": penalty[setting, row],
                        "distance": distance, "metric": metric, "mean": mean, "std": std, "n": len(g),
                        "infer_ms": float("nan"), "row": row})  # fmt: skip
    return pd.DataFrame(out)


def accuracy_tex(rows: pd.DataFrame, settings: Sequence[str], order: Sequence[str],
                 names: Mapping[str, str] | None = None) -> pd.DataFrame:  # fmt: skip
    r"""The LaTeX accuracy table: one line per row label in ``order`` (plan rows, then references), one column
    per setting, ``mean$\pm$std`` (%), the best mean of a column in bold, and the chosen :math:`\alpha` nowhere
    (it is in ``graph_reg_alpha.csv``)."""
    acc = rows[rows.metric == "test_acc"]
    best = acc.groupby("dataset")["mean"].max()
    names = dict(names or {})
    lines = []
    for label in order:
        line: dict[str, object] = {"model": Latex(latex_escape(names.get(label, label)))}
        for s in settings:
            hit = acc[(acc.row == label) & (acc.dataset == s)]
            if hit.empty:
                line[s] = Latex("--")
                continue
            m, sd = float(hit["mean"].iloc[0]), float(hit["std"].iloc[0])
            line[s] = mean_std(m, sd, 1, bold=m == best[s])
        lines.append(line)
    return pd.DataFrame(lines)


REVIEW_MODELS: dict[str, tuple[str, str]] = {
    "no-graph": ("encoder (text + tabular)", "none"),
    "graph-reg": ("encoder (text + tabular)", "graph"),
    "graph-tower": ("encoder (text + tabular + graph tower)", "none"),
}
"""The reviews' variants (:data:`mmsheaf.metric.graph_reg.VARIANTS`) as ``(model, regulariser)``: the graph-reg
encoder is the no-graph one at inference."""


def review_rows(runs: pd.DataFrame, task: str = "reviews", dataset: str = "clothing-t2") -> pd.DataFrame:
    """The reviews' rows from :func:`~mmsheaf.metric.graph_reg.run_review_specs` (one variant per group; the
    graph-reg runs at their chosen weight): test MAP@R, P@1 and k-NN accuracy (%), and as ``task="retrieval"``
    rows the test MAP@R and P@1 under each retrieval distance. ``row`` is the variant."""
    out = []
    for variant, g in runs.groupby("variant", sort=False):
        model, reg = REVIEW_MODELS[variant]
        distance = g.distance.iloc[0] if variant == "graph-reg" else ""
        for metric, col in (
            ("map_at_r", "test_map_at_r"),
            ("p_at_1", "test_p_at_1"),
            ("knn_acc", "test_accuracy"),
        ):
            if col in g:
                mean, std = _stats(g[col])
                out.append({"task": task, "dataset": dataset, "model": model, "regulariser": reg,
                            "distance": distance, "metric": metric, "mean": mean, "std": std, "n": len(g),
                            "infer_ms": float(g.infer_ms.mean()), "row": variant,
                            "alpha": float(g.alpha.iloc[0])})  # fmt: skip
        records = pd.DataFrame([rec for recs in g.retrieval for rec in recs])
        for distance_name, r in records.groupby("distance", sort=False):
            for metric in ("map_at_r", "p_at_1"):
                mean, std = _stats(r[metric])
                out.append({"task": "retrieval", "dataset": dataset, "model": model,
                            "regulariser": reg + (f"/{distance}" if distance else ""), "distance": distance_name,
                            "metric": metric, "mean": mean, "std": std, "n": len(r), "infer_ms": float("nan"),
                            "row": variant})  # fmt: skip
    return pd.DataFrame(out)
