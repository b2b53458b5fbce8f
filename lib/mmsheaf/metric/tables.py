r"""The tables of the metric-learning study (notebook 03), made from its runs.

- :func:`hparams_table`: each loss's tuned hyperparameters;
- :func:`loss_summary`, :func:`results_table`, :func:`results_tex`: every loss on both tasks, with the
  zero-training references;
- :func:`verdicts`: which loss wins each task, and the best of each family against the other;
- :func:`text_cost`, :func:`really_missing_table`: the robustness to missing text;
- :func:`ablation_table`: which modalities carry the signal;
- :func:`family_by_fraction`, :func:`family_seconds`: data and compute of each family.

Metrics are in % (as :func:`~mmsheaf.metric.protocol.summary_table` gives them); a LaTeX version is a frame of
:class:`~mmsheaf.report.latex.Latex` cells with ``mean $\pm$ std`` to one decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..losses import resolve_loss
from ..report import Latex, latex_escape, mean_std
from .protocol import summary_table

__all__ = [
    "CSV_COLUMNS",
    "HEADS",
    "METRICS",
    "NO_DROPOUT",
    "References",
    "TASK_TAGS",
    "ablation_table",
    "family_by_fraction",
    "family_seconds",
    "hparams_table",
    "loss_summary",
    "really_missing_table",
    "results_table",
    "results_tex",
    "text_cost",
    "verdicts",
]

TASK_TAGS: dict[str, str] = {"item": "T1", "category": "T2"}
"""The paper's names of the tasks."""

METRICS: tuple[str, ...] = ("map_at_r", "r_precision", "p_at_1", "nmi", "ami", "accuracy", "macro_f1")
"""The test metrics a run may have, in table order (accuracy and macro-F1 only for the category task)."""

CSV_COLUMNS: tuple[str, ...] = ("task", "loss", "map_at_r", "r_precision", "p_at_1", "nmi", "std_map_at_r",
                                "train_seconds")  # fmt: skip
"""The first columns of the results table's CSV (the other metrics and their spread follow, then ``n_seeds``)."""

HEADS: dict[str, str] = {"map_at_r": "MAP@R", "r_precision": "R-Prec.", "p_at_1": "P@1", "nmi": "NMI",
                         "accuracy": "Acc.", "macro_f1": "Macro-F1"}  # fmt: skip
"""The metrics of the LaTeX results table and their column heads."""

NO_DROPOUT = "no modality dropout"
"""The ``dropout`` label of the robustness records of runs trained without modality dropout."""

References = Mapping[str, Mapping[str, Mapping[str, float]]]
"""Zero-training references by task (:func:`~mmsheaf.metric.protocol.reference_metrics`, fractions)."""


def _family(loss: str) -> str:
    return resolve_loss(loss).family


def _loss_label(name: str) -> Latex:
    """A loss's display name, or ``ref.: <name>`` for a zero-training reference row."""
    if name.startswith("reference: "):
        return Latex(latex_escape(name.replace("reference: ", "ref.: ")))
    return Latex(latex_escape(resolve_loss(name).display))


def hparams_table(tuned: Mapping[tuple[str, str], Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each loss's tuned hyperparameters (``{(task, loss): params}``, :func:`~mmsheaf.metric.protocol.tune`'s
    best), as ``name=value`` sorted by name (floats to 3 significant digits).

    Returns:
        ``(table, tex)``: ``task, loss, params``; and ``Task, Loss, Tuned hyperparameters`` with the paper's
        task tags and the losses' display names.
    """
    table = pd.DataFrame([{"task": t, "loss": n, "params": ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(p.items()))}
        for (t, n), p in tuned.items()])  # fmt: skip
    tex = table.assign(task=table.task.map(TASK_TAGS), loss=table.loss.map(lambda n: resolve_loss(n).display))
    return table, tex.rename(columns={"task": "Task", "loss": "Loss", "params": "Tuned hyperparameters"})


def loss_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`~mmsheaf.metric.protocol.summary_table` by task and loss of every metric of :data:`METRICS` the
    ``runs`` have (mean and std over seeds, in %; training seconds)."""
    return summary_table(runs, [m for m in METRICS if f"test_{m}" in runs])


def results_table(summary: pd.DataFrame, references: References) -> pd.DataFrame:
    """The results table: :func:`loss_summary` and the zero-training references (rows ``reference: <name>``,
    no spread, no training), columns :data:`CSV_COLUMNS`, then the other metrics and spreads, then ``n_seeds``.

    Args:
        summary: :func:`loss_summary` of the main runs.
        references: :func:`~mmsheaf.metric.protocol.reference_metrics` of each task, by task (fractions).
    """
    present = [m for m in METRICS if m in summary]
    refs = pd.DataFrame([{"task": t, "loss": f"reference: {name}",
                          **{m: 100 * v for m, v in metrics[name].items() if m in present}, "train_seconds": 0.0}
                         for t, metrics in references.items() for name in metrics])  # fmt: skip
    table = pd.concat([summary, refs], ignore_index=True)
    missing = [c for c in CSV_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"the runs have no {missing}: the results table needs every metric of {CSV_COLUMNS}.")
    extra = [c for c in table.columns if c not in CSV_COLUMNS and c != "n_seeds"]
    return table[[*CSV_COLUMNS, *extra, "n_seeds"]]


def results_tex(table: pd.DataFrame) -> pd.DataFrame:
    r"""The LaTeX version of :func:`results_table`: per task (in the table's order) every row with the metrics
    of :data:`HEADS` it has as ``mean $\pm$ std`` (the task's best in bold) and the training seconds."""
    shown = [m for m in HEADS if m in table]
    rows = []
    for t in table.task.unique():
        sub = table[table.task == t]
        for _, r in sub.iterrows():
            row = {"Task": TASK_TAGS[t], "Loss": _loss_label(r["loss"])}
            for m in shown:
                row[HEADS[m]] = mean_std(r[m], r.get(f"std_{m}"), 1, bold=r[m] == sub[m].max(), spaced=True)
            row["Train s"] = Latex(f"{r['train_seconds']:.0f}")
            rows.append(row)
    return pd.DataFrame(rows)


def verdicts(summary: pd.DataFrame, references: References) -> pd.DataFrame:
    """Which loss wins each task on MAP@R, and by how much.

    One row per task of ``summary`` (:func:`loss_summary`): ``winner``, its ``map_at_r``, ``runner_up``,
    ``gap`` (points), ``beyond_spread`` (the winner's mean minus its std exceeds the runner-up's mean plus its
    std); the best loss of each family (``best_angular``, ``best_contrastive`` and their MAP@R),
    ``family_gap`` (angular minus contrastive, points), ``family_beyond_spread`` (the gap exceeds the sum of
    their stds); and ``text_reference``, the MAP@R of the frozen text embeddings (%).
    """
    rows = []
    for t in summary.task.unique():
        s = summary[summary.task == t].sort_values("map_at_r", ascending=False).reset_index(drop=True)
        if len(s) < 2:
            raise ValueError(f"task {t!r} has {len(s)} loss: a verdict compares at least two, run more losses.")
        win, second = s.iloc[0], s.iloc[1]
        families = s.loss.map(_family)
        if not {"angular-margin", "contrastive"} <= set(families):
            raise ValueError(f"task {t!r} lacks a loss of each family ({sorted(set(families))}): run at least one "
                             "angular-margin and one contrastive loss.")  # fmt: skip
        angular = s[families == "angular-margin"].iloc[0]
        contrastive = s[families == "contrastive"].iloc[0]
        rows.append({
            "task": t, "winner": win.loss, "map_at_r": win.map_at_r, "runner_up": second.loss,
            "gap": win.map_at_r - second.map_at_r,
            "beyond_spread": win.map_at_r - win.std_map_at_r > second.map_at_r + second.std_map_at_r,
            "best_angular": angular.loss, "best_angular_map": angular.map_at_r,
            "best_contrastive": contrastive.loss, "best_contrastive_map": contrastive.map_at_r,
            "family_gap": angular.map_at_r - contrastive.map_at_r,
            "family_beyond_spread": abs(angular.map_at_r - contrastive.map_at_r)
            > angular.std_map_at_r + contrastive.std_map_at_r,
            "text_reference": 100 * references[t]["text"]["map_at_r"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def _text_cost(robustness: pd.DataFrame, task: str, level: float) -> pd.Series:
    sub = robustness[(robustness.task == task) & (robustness.condition == "text_removed")]
    clean = sub[sub.level == 0.0].groupby("loss").map_at_r.mean()
    hit = sub[np.isclose(sub.level, level)].groupby("loss").map_at_r.mean()
    return 100 * (1 - hit / clean)


def text_cost(robustness: pd.DataFrame, task: str = "item", level: float = 0.5) -> pd.DataFrame:
    """Relative MAP@R lost (%) on ``task`` when the text of a share ``level`` of the test rows is removed, per
    loss (rows): column ``no modality dropout`` for the runs trained without modality dropout
    (``dropout ==`` :data:`NO_DROPOUT`), ``with modality dropout`` for the others.

    Args:
        robustness: :func:`~mmsheaf.metric.protocol.robustness_frame` records with a ``dropout`` label.
    """
    plain = robustness.dropout == NO_DROPOUT
    return pd.DataFrame({"no modality dropout": _text_cost(robustness[plain], task, level),
                         "with modality dropout": _text_cost(robustness[~plain], task, level)})  # fmt: skip


def really_missing_table(robustness: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MAP@R (mean over seeds) of the test queries whose text is really missing in the data against those
    that have one, per task, loss and training (``dropout``).

    Returns:
        ``(table, tex)``: indexed by ``task, loss, dropout`` with columns ``text_present`` and
        ``text_really_missing``; and the LaTeX version (a flat frame with task tags and display names).
    """
    conditions = ["text_really_missing", "text_present"]
    table = robustness[robustness.condition.isin(conditions)].groupby(
        ["task", "loss", "dropout", "condition"]).map_at_r.mean().unstack("condition")  # fmt: skip
    flat = table.reset_index()
    tex = flat.assign(task=flat.task.map(TASK_TAGS), loss=flat.loss.map(_loss_label))
    tex = tex.rename(columns={"task": "Task", "loss": "Loss", "dropout": "Training", "text_present": "Text present",
                              "text_really_missing": "Text really missing"})  # fmt: skip
    return table, tex


def ablation_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    r"""The modality ablation: MAP@R, P@1 and NMI (%) of each task, loss and set of modalities over seeds,
    sorted by task, number of modalities and MAP@R.

    Args:
        runs: :func:`~mmsheaf.metric.protocol.run_specs` rows with a ``modalities`` label (``"text + graph"``).

    Returns:
        ``(table, tex)``: the summary with ``n_modalities``; and its LaTeX version (``mean $\pm$ std``; the
        mean alone where one seed has no spread).
    """
    table = summary_table(runs, ["map_at_r", "p_at_1", "nmi"], by=("task", "loss", "modalities"))
    table["n_modalities"] = table.modalities.str.count(r"\+") + 1
    table = table.sort_values(["task", "n_modalities", "map_at_r"],
                              key=lambda c: c.map(TASK_TAGS) if c.name == "task" else c)  # fmt: skip
    spread = table.n_seeds > 1
    tex = pd.DataFrame({
        "Task": table.task.map(TASK_TAGS), "Loss": table.loss.map(_loss_label),
        "Modalities": table.modalities,
        **{head: [mean_std(a, b if s else float("nan"), 1, spaced=True)
                  for a, b, s in zip(table[m], table[f"std_{m}"], spread)]
           for head, m in (("MAP@R", "map_at_r"), ("P@1", "p_at_1"), ("NMI", "nmi"))},
    })  # fmt: skip
    return table, tex


def family_by_fraction(runs: pd.DataFrame) -> pd.DataFrame:
    """Test MAP@R (%) of the best loss of each family (columns) at each share of the training items (rows),
    from runs (:func:`~mmsheaf.metric.protocol.run_specs`) with a ``fraction`` column."""
    best = runs.assign(map=100 * runs["test_map_at_r"], family=runs.loss.map(_family))
    return best.groupby(["fraction", "family"])["map"].max().unstack("family")


def family_seconds(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean training seconds per run of each family (columns) on each task (rows), from :func:`loss_summary`."""
    return summary.assign(family=summary.loss.map(_family)).groupby(
        ["task", "family"]).train_seconds.mean().unstack("family")  # fmt: skip

