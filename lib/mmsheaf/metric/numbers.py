r"""The numbers the paper quotes from the metric-learning study (notebook 03), as ``{macro name: LaTeX text}``.

.. code-block:: python

    rep.macros(paper_numbers(verdicts, ablation, cost, by_family, seconds, num_seeds=len(SEEDS),
                             trials=HPO_TRIALS, epochs=TRAIN.get("epochs", 0)))

Every macro name is written here as a literal (``grep MetricWinnerOne lib/`` finds its code), and every value
is formatted once, with :func:`~mmsheaf.report.latex.number` or as a :class:`~mmsheaf.report.latex.Latex`
phrase, so the unit tests see the text the paper prints. T1 (the ``item`` task) is ``One`` in a macro name,
T2 (``category``) ``Two``.
"""

from __future__ import annotations

import pandas as pd

from ..losses import resolve_loss
from ..report import Latex, latex_escape, number

__all__ = ["TASK_MACROS", "paper_numbers"]

TASK_MACROS: dict[str, dict[str, str]] = {
    "item": {
        "winner": "MetricWinnerOne",
        "winner_map": "MetricWinnerMapOne",
        "runner_up": "MetricRunnerUpOne",
        "gap": "MetricGapOne",
        "beyond_spread": "MetricBeyondSpreadOne",
        "best_angular": "MetricBestAngularOne",
        "best_angular_map": "MetricBestAngularMapOne",
        "best_contrastive": "MetricBestContrastiveOne",
        "best_contrastive_map": "MetricBestContrastiveMapOne",
        "family_gap": "MetricFamilyGapOne",
        "family_beyond_spread": "MetricFamilyBeyondSpreadOne",
        "text_reference": "MetricTextRefOne",
        "gain_over_text": "MetricGainOverTextOne",
    },
    "category": {
        "winner": "MetricWinnerTwo",
        "winner_map": "MetricWinnerMapTwo",
        "runner_up": "MetricRunnerUpTwo",
        "gap": "MetricGapTwo",
        "beyond_spread": "MetricBeyondSpreadTwo",
        "best_angular": "MetricBestAngularTwo",
        "best_angular_map": "MetricBestAngularMapTwo",
        "best_contrastive": "MetricBestContrastiveTwo",
        "best_contrastive_map": "MetricBestContrastiveMapTwo",
        "family_gap": "MetricFamilyGapTwo",
        "family_beyond_spread": "MetricFamilyBeyondSpreadTwo",
        "text_reference": "MetricTextRefTwo",
        "gain_over_text": "MetricGainOverTextTwo",
    },
}
"""The macro of each number of a task's verdict, by task."""


def _display(loss: str) -> Latex:
    return Latex(latex_escape(resolve_loss(loss).display))


def _more(flag: bool) -> Latex:
    return Latex("more" if flag else "less")


def _verdict_numbers(verdicts: pd.DataFrame) -> dict[str, Latex]:
    """The macros of :data:`TASK_MACROS` for every task of ``verdicts``."""
    out: dict[str, Latex] = {}
    for task, r in verdicts.set_index("task").iterrows():
        if task not in TASK_MACROS:
            raise ValueError(f"no macro names for task {task!r}: add them to TASK_MACROS ({sorted(TASK_MACROS)}).")
        values = {
            "winner": _display(r.winner),
            "winner_map": number(r.map_at_r, 1),
            "runner_up": _display(r.runner_up),
            "gap": number(r.gap, 1),
            "beyond_spread": _more(r.beyond_spread),
            "best_angular": _display(r.best_angular),
            "best_angular_map": number(r.best_angular_map, 1),
            "best_contrastive": _display(r.best_contrastive),
            "best_contrastive_map": number(r.best_contrastive_map, 1),
            "family_gap": number(r.family_gap, 1),
            "family_beyond_spread": _more(r.family_beyond_spread),
            "text_reference": number(r.text_reference, 1),
            "gain_over_text": number(100 * (r.map_at_r / r.text_reference - 1), 0),
        }
        out.update({TASK_MACROS[task][key]: value for key, value in values.items()})
    return out


def _modality_numbers(verdicts: pd.DataFrame, ablation: pd.DataFrame) -> dict[str, Latex]:
    single = ablation[(ablation.task == "item") & (ablation.n_modalities == 1)]
    best_single = single.map_at_r.max() if len(single) else float("nan")
    out = {"MetricBestSingleModality": number(best_single, 1)}
    v = verdicts.set_index("task")
    if "item" in v.index:
        t1 = v.loc["item"]
        out["MetricTextRatioOne"] = number(t1.map_at_r / t1.text_reference, 2)
        out["MetricBeatsSingle"] = Latex("beats" if t1.map_at_r > best_single else "does not beat")
    return out


def _text_cost_numbers(cost: pd.DataFrame) -> dict[str, Latex]:
    return {
        "MetricTextCostNoDrop": number(float(cost["no modality dropout"].min()), 1),
        "MetricTextCostDrop": number(float(cost["with modality dropout"].min()), 1),
        "MetricTextCostDropLoss": _display(cost["with modality dropout"].idxmin()),
    }


def _family_numbers(by_family: pd.DataFrame, seconds: pd.DataFrame) -> dict[str, Latex]:
    small, full = by_family.index.min(), by_family.index.max()
    out = {
        "MetricSmallFraction": number(100 * small, 0),
        "MetricSmallAngular": number(by_family.loc[small, "angular-margin"], 1),
        "MetricSmallContrastive": number(by_family.loc[small, "contrastive"], 1),
        "MetricFullAngular": number(by_family.loc[full, "angular-margin"], 1),
        "MetricFullContrastive": number(by_family.loc[full, "contrastive"], 1),
        "MetricSmallWinnerFamily": Latex(by_family.loc[small].idxmax()),
        "MetricSecondsAngularOne": number(seconds.loc["item", "angular-margin"], 0),
        "MetricSecondsContrastiveOne": number(seconds.loc["item", "contrastive"], 0),
    }
    if "category" in seconds.index:
        out["MetricSecondsAngularTwo"] = number(seconds.loc["category", "angular-margin"], 0)
        out["MetricSecondsContrastiveTwo"] = number(seconds.loc["category", "contrastive"], 0)
    return out


def paper_numbers(
    verdicts: pd.DataFrame,
    ablation: pd.DataFrame,
    text_cost: pd.DataFrame,
    by_family: pd.DataFrame,
    seconds: pd.DataFrame,
    *,
    num_seeds: int,
    trials: int,
    epochs: int,
) -> dict[str, Latex]:
    r"""The numbers the paper quotes from notebook 03, by macro name.

    MAP@R values and gaps in points to 1 decimal; ``MetricGainOverText{One,Two}`` is the winner's relative
    gain over the frozen text embeddings in % (no decimal); ``MetricBeyondSpread*`` and
    ``MetricFamilyBeyondSpread*`` read ``more`` or ``less`` (than the seeds' spread); the ``Small`` and ``Full``
    numbers are the best loss of each family at the smallest and the full share of the training items.

    Args:
        verdicts: :func:`~mmsheaf.metric.tables.verdicts` of the main runs.
        ablation: :func:`~mmsheaf.metric.tables.ablation_table`'s table.
        text_cost: :func:`~mmsheaf.metric.tables.text_cost` (relative MAP@R lost without text, per loss).
        by_family: :func:`~mmsheaf.metric.tables.family_by_fraction` of the data-efficiency runs.
        seconds: :func:`~mmsheaf.metric.tables.family_seconds` of the main runs.
        num_seeds: seeds of the main runs.
        trials: Optuna trials per loss and task.
        epochs: the epoch budget of the final runs.

    Returns:
        ``{macro name: LaTeX text}``; a number that cannot be computed is ``--``.
    """
    for name, frame, columns in (("by_family", by_family, ("angular-margin", "contrastive")),
                                 ("seconds", seconds, ("angular-margin", "contrastive")),
                                 ("text_cost", text_cost, ("no modality dropout", "with modality dropout"))):  # fmt: skip
        missing = [c for c in columns if c not in frame]
        if missing:
            raise ValueError(f"{name} has no columns {missing}: make it with mmsheaf.metric.tables from runs of "
                             "both families, with and without modality dropout.")  # fmt: skip
    return {
        "MetricNumSeeds": number(num_seeds),
        "MetricTrials": number(trials),
        "MetricEpochs": number(epochs),
        **_verdict_numbers(verdicts),
        **_modality_numbers(verdicts, ablation),
        **_text_cost_numbers(text_cost),
        **_family_numbers(by_family, seconds),
    }
