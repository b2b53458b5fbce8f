r"""The numbers the paper quotes from the recommendation study (notebook 02), as ``{macro name: LaTeX text}``.

.. code-block:: python

    rep.macros(paper_numbers(data, cold_data, summary, ablation, robustness, cold_summary,
                             num_seeds=len(SEEDS), trials=HPO_TRIALS, ablations=ABLATIONS, multimodal=MULTIMODAL))

Every macro name is written here as a literal (``grep RecGainLightGCN lib/`` finds its code), and every value
is formatted once, with :func:`~mmsheaf.report.latex.number` or as a :class:`~mmsheaf.report.latex.Latex`
phrase, so the unit tests see the text the paper prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys.registry import resolve_recommender
from mmsheaf.report import Latex, latex_escape, number

__all__ = ["LIGHTGCN", "METRIC", "SHEAF", "paper_numbers"]

SHEAF = "mm-sheaf"
"""The model the study is about."""

LIGHTGCN = "lightgcn"
"""The graph baseline the paper compares it with."""

METRIC = "ndcg@20"
"""The metric the paper quotes."""


def _ablation(ablations: Mapping[str, Mapping[str, Any]],
              changes: Callable[[Mapping[str, Any]], bool]) -> str | None:  # fmt: skip
    """The label of the first ablation (``{label: change}``) whose change passes ``changes``, else ``None``."""
    return next((label for label, change in ablations.items() if changes(change)), None)


def _gain(value: float, reference: float) -> float:
    """Relative change of ``value`` over ``reference`` in %."""
    return 100 * (value / reference - 1)


def _display(model: str) -> Latex:
    return Latex(latex_escape(resolve_recommender(model).display))


def _data_numbers(data: InteractionData, cold_data: InteractionData, num_seeds: int,
                  trials: int) -> dict[str, Latex]:  # fmt: skip
    interactions = int(data.train.size(1) + data.val.size(1) + data.test.size(1))
    if cold_data.candidates is None:
        raise ValueError("cold_data has no candidate items: pass the cold-start split (load_interactions("
                         "'ml100k-cold')).")  # fmt: skip
    return {
        "RecNumUsers": number(data.num_users),
        "RecNumItems": number(data.num_items),
        "RecNumInteractions": number(interactions),
        "RecNumSeeds": number(num_seeds),
        "RecTrials": number(trials),
        "RecColdItems": number(int(cold_data.candidates.numel())),
    }


def _table_numbers(summary: pd.DataFrame, multimodal: Sequence[str]) -> dict[str, Latex]:
    s = summary.set_index("model")
    lgcn, mm = s.loc[LIGHTGCN], s.loc[SHEAF]
    others = [m for m in multimodal if m != SHEAF and m in s.index]
    best_other = s.loc[others, METRIC].idxmax() if others else None
    beats = mm[METRIC] - mm[f"std_{METRIC}"] > lgcn[METRIC] + lgcn[f"std_{METRIC}"]
    return {
        "RecGainLightGCN": number(_gain(mm[METRIC], lgcn[METRIC]), 1),
        "RecBeatsLightGCNBySpread": Latex("yes" if beats else "no"),
        "RecBestOtherMM": _display(best_other) if best_other else Latex("none"),
        "RecGainBestOtherMM": number(_gain(mm[METRIC], s.loc[best_other, METRIC]) if best_other else 0.0, 1),
        "RecSheafNdcg": number(mm[METRIC], 4),
        "RecLightGCNNdcg": number(lgcn[METRIC], 4),
    }


def _ablation_numbers(summary: pd.DataFrame, ablation: pd.DataFrame,
                      ablations: Mapping[str, Mapping[str, Any]]) -> dict[str, Latex]:  # fmt: skip
    s = summary.set_index("model")
    lgcn, mm = s.loc[LIGHTGCN, METRIC], s.loc[SHEAF, METRIC]
    abl = ablation.set_index("variant")[METRIC]
    best = abl.idxmax()
    gen = _ablation(ablations, lambda change: change.get("sheaf") == "gen" and len(change) == 1)
    no_text = _ablation(ablations, lambda change: "modalities" in change and "text" not in change["modalities"])
    titles = _ablation(ablations, lambda change: change.get("data_options", {}).get("text") == "title")
    cross = _gain(abl[gen], mm) if gen in abl.index else float("nan")
    return {
        "RecBestVariant": Latex(latex_escape(best)),
        "RecBestVariantNdcg": number(abl[best], 4),
        "RecBestVariantGainLightGCN": number(_gain(abl[best], lgcn), 1),
        "RecCrossModalEffect": number(cross, 1),
        "RecCrossModalVerdict": Latex("help" if cross > 0 else "do not help"),
        "RecNoTextNdcg": number(abl[no_text] if no_text in abl.index else float("nan"), 4),
        "RecTitlesOnlyNdcg": number(abl[titles] if titles in abl.index else float("nan"), 4),
        "RecPlotsGain": number(_gain(mm, abl[titles]) if titles in abl.index else float("nan"), 1),
    }


def _removal_cost(curves: pd.Series, modality: str) -> float:
    """Relative change (%) of the mean metric when ``modality`` is removed from every item."""
    if (modality, 1.0) not in curves.index:
        return float("nan")
    return _gain(curves[(modality, 1.0)], curves[(modality, 0.0)])


def _robustness_numbers(robustness: pd.DataFrame) -> dict[str, Latex]:
    curves = robustness[robustness.model == SHEAF].groupby(["modality", "fraction"])[METRIC].mean()
    return {
        "RecTextRemovedCost": number(_removal_cost(curves, "text"), 1),
        "RecTabRemovedCost": number(_removal_cost(curves, "tabular"), 1),
    }


def _cold_numbers(cold_summary: pd.DataFrame) -> dict[str, Latex]:
    cold = cold_summary.set_index("model")[METRIC]
    return {
        "RecColdBest": _display(cold.idxmax()),
        "RecColdBestNdcg": number(cold.max(), 4),
        "RecColdSheafNdcg": number(cold.get(SHEAF, float("nan")), 4),
    }


def paper_numbers(
    data: InteractionData,
    cold_data: InteractionData,
    summary: pd.DataFrame,
    ablation: pd.DataFrame,
    robustness: pd.DataFrame,
    cold_summary: pd.DataFrame,
    *,
    num_seeds: int,
    trials: int,
    ablations: Mapping[str, Mapping[str, Any]],
    multimodal: Sequence[str],
    cold_epochs: int | None = None,
) -> dict[str, Latex]:
    r"""The numbers the paper quotes from notebook 02, by macro name.

    Gains are relative changes of NDCG@20 in % (``100 (a / b - 1)``, to 1 decimal); NDCG@20 values to 4
    decimals; ``RecBeatsLightGCNBySpread`` is ``yes`` when the sheaf's mean minus its std exceeds LightGCN's
    mean plus its std; ``RecCrossModalEffect`` compares the tuned sheaf with its ablation without cross-modal
    blocks (its ablation with general maps, against the tuned diagonal maps); ``RecPlotsGain`` compares the tuned
    sheaf (item text with plots) with its ablation on titles only; ``Rec{Text,Tab}RemovedCost`` compare the sheaf's mean NDCG@20 with the modality
    removed from every item against the clean one.

    Args:
        data: the interactions of the main runs.
        cold_data: the cold-start split (its ``candidates`` are the held-out items).
        summary: :func:`~mmsheaf.recsys.protocol.summarise_runs` of the main runs (rows of ``"lightgcn"`` and
            ``"mm-sheaf"``).
        ablation: :func:`~mmsheaf.recsys.protocol.ablation_table`'s table.
        robustness: :func:`~mmsheaf.recsys.protocol.robustness_frame` of the main runs.
        cold_summary: :func:`~mmsheaf.recsys.protocol.summarise_runs` of the cold-start runs.
        num_seeds: seeds per setting.
        trials: Optuna trials per model.
        ablations: the ablations run, ``{label: change of the hyperparameters}``.
        multimodal: the multimodal models (the sheaf is compared with the best of the others).
        cold_epochs: the epochs every cold-start run trains (:attr:`~mmsheaf.recsys.plan.RecPlan.cold_epochs`;
            ``RecColdEpochs``, ``--`` when not given).

    Returns:
        ``{macro name: LaTeX text}``; a number that cannot be computed (an ablation not run) is ``--``.
    """
    missing = [m for m in (LIGHTGCN, SHEAF) if m not in set(summary.model)]
    if missing:
        raise ValueError(f"the summary has no rows of {missing}: the paper compares {SHEAF!r} with "
                         f"{LIGHTGCN!r}, run both.")  # fmt: skip
    return {
        **_data_numbers(data, cold_data, num_seeds, trials),
        **_table_numbers(summary, multimodal),
        **_ablation_numbers(summary, ablation, ablations),
        **_robustness_numbers(robustness),
        **_cold_numbers(cold_summary),
        "RecColdEpochs": number(cold_epochs) if cold_epochs is not None else Latex("--"),
    }
