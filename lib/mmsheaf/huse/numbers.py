r"""The numbers the paper quotes from the HUSE study (notebook 04), as ``{macro name: LaTeX text}``.

.. code-block:: python

    rep.macros(paper_numbers(runs, num_seeds=len(SEEDS), trials=HPO_TRIALS, epochs=TRAIN["epochs"],
                             num_classes=len(task.label_names)))

Every macro name is written here as a literal (``grep HuseCrossRatio lib/`` finds its code), and every value
is formatted once, with :func:`~mmsheaf.report.latex.number` or as a :class:`~mmsheaf.report.latex.Latex`
phrase, so the unit tests see the text the paper prints. The runs' numbers are in %; a number that cannot
be computed (a variant not run) is ``--``.
"""

from __future__ import annotations

import math

import pandas as pd

from mmsheaf.report import Latex, number

from .tables import summary

__all__ = ["ARCFACE", "CLAIM_RATIO", "CLS_ONLY", "HUSE", "paper_numbers"]

HUSE = "huse"
"""The model the study is about."""

ARCFACE = "arcface"
"""The early-fusion baseline HUSE is compared with."""

CLS_ONLY = "huse-cls"
"""HUSE's ablation with the classification loss alone (the reference of the gap-loss claim)."""

CLAIM_RATIO = 2.0
"""The claim: HUSE's cross-modal R@1 is at least this many times that of :data:`CLS_ONLY`."""

_MISSING = Latex("--")


def _value(s: pd.DataFrame, variant: str, key: str) -> float:
    """The seed mean of ``key`` for ``variant`` (NaN when the variant or the number is missing)."""
    if variant not in s.index or key not in s:
        return math.nan
    return float(s.at[variant, key])


def _std(s: pd.DataFrame, variant: str, key: str) -> float:
    return _value(s, variant, f"std_{key}")


def _compare(s: pd.DataFrame, key: str) -> Latex:
    """HUSE's mean of ``key`` against ArcFace's: ``above``/``below``, or ``within the spread of`` when the
    gap is at most the sum of their stds; ``--`` when either is missing."""
    a, b = _value(s, HUSE, key), _value(s, ARCFACE, key)
    spread = _std(s, HUSE, key) + _std(s, ARCFACE, key)
    if math.isnan(a) or math.isnan(b) or math.isnan(spread):
        return _MISSING
    if abs(a - b) <= spread:
        return Latex("within the spread of")
    return Latex("above" if a > b else "below")


def _headline_numbers(s: pd.DataFrame) -> dict[str, Latex]:
    return {
        "HuseFusionAcc": number(_value(s, HUSE, "acc_fusion"), 1),
        "HuseFusionAccStd": number(_std(s, HUSE, "acc_fusion"), 1),
        "HuseArcFaceFusionAcc": number(_value(s, ARCFACE, "acc_fusion"), 1),
        "HuseArcFaceFusionAccStd": number(_std(s, ARCFACE, "acc_fusion"), 1),
        "HuseSeparateFusionAcc": number(_value(s, "separate", "acc_fusion"), 1),
        "HuseSupConFusionAcc": number(_value(s, "supcon", "acc_fusion"), 1),
        "HuseHPFive": number(_value(s, HUSE, "hp_at_5"), 1),
        "HuseHPFiveStd": number(_std(s, HUSE, "hp_at_5"), 1),
        "HuseArcFaceHPFive": number(_value(s, ARCFACE, "hp_at_5"), 1),
        "HuseArcFaceHPFiveStd": number(_std(s, ARCFACE, "hp_at_5"), 1),
        "HuseVsArcFaceAcc": _compare(s, "acc_fusion"),
        "HuseVsArcFaceHP": _compare(s, "hp_at_5"),
    }


def _claim_numbers(s: pd.DataFrame) -> dict[str, Latex]:
    huse, cls = _value(s, HUSE, "cross_r1"), _value(s, CLS_ONLY, "cross_r1")
    ratio = huse / cls if cls > 0 else math.nan  # NaN in, NaN out; no ratio to a zero R@1
    return {
        "HuseCrossROne": number(huse, 1),
        "HuseClsCrossROne": number(cls, 1),
        "HuseCrossRatio": number(ratio, 2),
        "HuseCrossClaim": (_MISSING if math.isnan(ratio) else
                           Latex("holds" if ratio >= CLAIM_RATIO else "misses")),  # fmt: skip
    }


def _loss_numbers(s: pd.DataFrame) -> dict[str, Latex]:
    cross = {v: _value(s, v, "cross_r1") for v in (CLS_ONLY, "huse-cls-gap", "separate")}
    return {
        "HuseGapGainCross": number(cross["huse-cls-gap"] - cross[CLS_ONLY], 1),
        "HuseGraphGainHP": number(_value(s, "huse-cls-graph", "hp_at_5") - _value(s, CLS_ONLY, "hp_at_5"), 1),
        "HuseSharedGainCross": number(cross[CLS_ONLY] - cross["separate"], 1),
    }


def paper_numbers(runs: pd.DataFrame, *, num_seeds: int, trials: int, epochs: int,
                  num_classes: int) -> dict[str, Latex]:  # fmt: skip
    r"""The numbers the paper quotes from notebook 04, by macro name.

    Accuracies, R@1 and HP@5 are seed means (and population stds) in % to 1 decimal. A row's cross-modal R@1
    is the mean of its text→tabular and tabular→text R@1 (:func:`~mmsheaf.huse.tables.cross_r1`).

    - ``HuseCrossRatio``: HUSE's cross-modal R@1 over that of ``huse-cls`` (2 decimals); ``HuseCrossClaim``
      reads ``holds`` when it is at least :data:`CLAIM_RATIO`, else ``misses``;
    - ``HuseVsArcFaceAcc`` / ``HuseVsArcFaceHP``: HUSE's fused accuracy / HP@5 is ``above``, ``below`` or
      ``within the spread of`` ArcFace's (within: the gap of the means is at most the sum of their stds);
    - ``HuseGapGainCross``: cross-modal R@1 of ``huse-cls-gap`` minus ``huse-cls`` (points);
      ``HuseGraphGainHP``: HP@5 of ``huse-cls-graph`` minus ``huse-cls``; ``HuseSharedGainCross``:
      cross-modal R@1 of ``huse-cls`` (shared layer) minus ``separate``.

    Args:
        runs: :func:`~mmsheaf.huse.protocol.run_specs` rows of the main runs (any subset of the variants).
        num_seeds: seeds per variant.
        trials: Optuna trials per variant.
        epochs: the epoch budget of the final runs.
        num_classes: the classes of the task.

    Returns:
        ``{macro name: LaTeX text}``; a number that cannot be computed (a variant not run) is ``--``.
    """
    s = summary(runs).set_index("variant")
    return {
        "HuseSeeds": number(num_seeds),
        "HuseTrials": number(trials),
        "HuseEpochs": number(epochs),
        "HuseClasses": number(num_classes),
        **_headline_numbers(s),
        **_claim_numbers(s),
        **_loss_numbers(s),
    }
