r"""The numbers the paper quotes from notebook 06, by macro name (every name a literal here).

Targets (issue 17): SimSiam without stop-gradient collapses (normalised std below :data:`COLLAPSED_STD`, k-NN
accuracy near chance: within :data:`NEAR_CHANCE` of it) while SimSiam does not (normalised std above
:data:`HEALTHY_STD`); the best non-contrastive method's MNIST-5k k-NN accuracy within :data:`GAP_TARGET` points
of the supervised encoder's; the Spearman correlation of RankMe with k-NN accuracy over all runs reported
(goal :data:`SPEARMAN_TARGET`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from scipy.stats import spearmanr

from mmsheaf.report import Latex, latex_escape, number
from mmsheaf.ssl.methods import METHODS, resolve_method
from mmsheaf.ssl.plan import MAIN_VARIANT

__all__ = ["COLLAPSED_STD", "GAP_TARGET", "HEALTHY_STD", "NEAR_CHANCE", "PAIR_LR", "SPEARMAN_TARGET",
           "collapsed", "ssl_numbers"]  # fmt: skip

COLLAPSED_STD = 0.1
HEALTHY_STD = 0.5
NEAR_CHANCE = 0.1
"""k-NN accuracy at most this far (absolute) above chance counts as near chance."""
GAP_TARGET = 3.0
SPEARMAN_TARGET = 0.7
PAIR_LR = 1e-3
"""The learning rate of the SimSiam pair with and without stop-gradient added to the ablations (Adam's common
rate), beside the pair at SimSiam's tuned rate."""


def _verdict(flag: bool) -> Latex:
    return Latex("yes" if flag else "no")


def collapsed(row: Mapping[str, Any], chance: float) -> bool:
    """Whether a table row (or run) collapsed: normalised std below :data:`COLLAPSED_STD`, or k-NN accuracy near
    chance (:data:`NEAR_CHANCE`). A row without finite scores (every seed diverged) is not called collapsed:
    divergence is reported apart (``SslDivergedRows``)."""
    knn, std = row["knn_acc"], row["norm_std"]
    if math.isnan(knn) or math.isnan(std):
        return False
    return std < COLLAPSED_STD or knn <= chance + NEAR_CHANCE


def _label(row: Mapping[str, Any]) -> str:
    return f"{resolve_method(row['method']).display} ({row['similarity']})"


def _name(row: tuple[str, str]) -> Latex:
    return Latex(latex_escape(_label({"method": row[0], "similarity": row[1]})))


def _grid(table: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, tuple[str, str], float]:
    """The grid rows of ``dataset`` by (method, similarity), its best non-contrastive row **by validation k-NN
    accuracy** (never chosen on test) and that row's test k-NN accuracy."""
    grid = table[(table.dataset == dataset) & (table.variant == MAIN_VARIANT)].set_index(
        ["method", "similarity"]
    )
    nc = grid[[resolve_method(m).family == "non-contrastive" for m, _ in grid.index]]
    best = nc.val_knn_acc.idxmax()
    return grid, best, float(nc.knn_acc[best])


def _listing(items: list[str]) -> Latex:
    return Latex(latex_escape(", ".join(items)) if items else "none")


def _ablation(ablations: Mapping[str, Mapping[str, Any]], change: Mapping[str, Any]) -> str | None:
    return next((label for label, c in ablations.items() if dict(c) == dict(change)), None)


def ssl_numbers(table: pd.DataFrame, runs: pd.DataFrame, ablations: Mapping[str, Mapping[str, Any]], *,
                num_classes: int, num_seeds: int, trials: int, epochs: int, dataset: str = "mnist5k",
                transfer: str | None = "digits", reviews: str | None = "clothing-t2") -> dict[str, Latex]:  # fmt: skip
    r"""The macros of notebook 06.

    Args:
        table: :func:`~mmsheaf.ssl.tables.collapse_table`'s table (every dataset); the best row of a data set is
            chosen on its validation k-NN accuracy, and its test accuracy is quoted.
        runs: every labelled run (:func:`~mmsheaf.ssl.tables.label_runs`) of ``dataset``: the RankMe--k-NN
            correlation is over these runs (diverged ones left out).
        ablations: the notebook's ablations (``{label: {"method": m, **changes}}``), to find SimSiam without
            stop-gradient.
        num_classes, num_seeds, trials, epochs: classes, seeds per row, Optuna trials per method, epochs per run.
        dataset: the main image set; ``transfer``: the held-apart one; ``reviews``: the clothing reviews
            (``None``: not run).
    """
    chance = 1.0 / num_classes
    t = table[table.dataset == dataset]
    main = t[t.variant == MAIN_VARIANT].set_index(["method", "similarity"])
    simsiam = main.loc[("simsiam", METHODS["simsiam"].default_similarity)]
    out: dict[str, Latex] = {"SslCollapsedStd": number(COLLAPSED_STD, 1), "SslHealthyStd": number(HEALTHY_STD, 1),
                             "SslNearChance": number(100 * NEAR_CHANCE, 0), "SslGapTarget": number(GAP_TARGET, 0),
                             "SslSpearmanTarget": number(SPEARMAN_TARGET, 1),
                             "SslChance": number(100 * chance, 0), "SslNumSeeds": number(num_seeds),
                             "SslTrials": number(trials), "SslEpochs": number(epochs),
                             "SslSimSiamNormStd": number(simsiam.norm_std, 2),
                             "SslSimSiamKnn": number(100 * simsiam.knn_acc, 1)}  # fmt: skip
    label = _ablation(ablations, {"method": "simsiam", "stop_gradient": False})
    if label is None:
        raise ValueError("the ablations must include SimSiam without stop-gradient: "
                         "{'method': 'simsiam', 'stop_gradient': False}.")  # fmt: skip
    nosg = t[t.variant == label].iloc[0]
    met = (
        nosg.norm_std < COLLAPSED_STD
        and nosg.knn_acc <= chance + NEAR_CHANCE
        and simsiam.norm_std > HEALTHY_STD
    )
    out.update({"SslNoSgNormStd": number(nosg.norm_std, 2), "SslNoSgKnn": number(100 * nosg.knn_acc, 1),
               "SslCollapseTargetMet": _verdict(bool(met))})  # fmt: skip
    # The same pair at PAIR_LR, where the ablations include it ("--" otherwise): the std half of the target.
    pair = {sg: _ablation(ablations, {"method": "simsiam", **({} if sg else {"stop_gradient": False}), "lr": PAIR_LR})
            for sg in (True, False)}  # fmt: skip
    if all(pair.values()):
        sg_row, nosg_row = (t[t.variant == pair[sg]].iloc[0] for sg in (True, False))
        out.update({"SslPairLr": Latex(f"{PAIR_LR:g}"), "SslPairSgNormStd": number(sg_row.norm_std, 2),
                   "SslPairSgKnn": number(100 * sg_row.knn_acc, 1), "SslPairNoSgNormStd": number(nosg_row.norm_std, 2),
                   "SslPairNoSgKnn": number(100 * nosg_row.knn_acc, 1),
                   "SslPairStdTargetMet": _verdict(bool(nosg_row.norm_std < COLLAPSED_STD
                                                     and sg_row.norm_std > HEALTHY_STD))})  # fmt: skip
    else:
        out.update({k: Latex("--") for k in ("SslPairLr", "SslPairSgNormStd", "SslPairSgKnn", "SslPairNoSgNormStd",
                                             "SslPairNoSgKnn", "SslPairStdTargetMet")})  # fmt: skip

    _, best, best_knn = _grid(table, dataset)
    supervised = main.loc["supervised"].knn_acc.iloc[0]
    gap = 100 * (supervised - best_knn)
    out.update({"SslBestNonContrastive": _name(best), "SslBestNonContrastiveKnn": number(100 * best_knn, 1),
               "SslSupervisedKnn": number(100 * supervised, 1), "SslGapToSupervised": number(gap, 1),
               "SslGapTargetMet": _verdict(gap <= GAP_TARGET),
               "SslSimclrKnn": number(100 * main.loc["simclr"].knn_acc.iloc[0], 1) if "simclr" in main.index else Latex("--"),
               "SslRandomKnn": number(100 * main.loc["random"].knn_acc.iloc[0], 1) if "random" in main.index else Latex("--")})  # fmt: skip

    rows = t.to_dict("records")
    grid = [
        r for r in rows if r["variant"] == MAIN_VARIANT and resolve_method(r["method"]).family != "reference"
    ]
    bad = [_label(r) for r in grid if collapsed(r, chance)]
    diverged = [f"{_label(r)} ({int(r['diverged'])}/{int(r['n_seeds'])})" for r in grid if r["diverged"]]
    abl_bad = [r["variant"] for r in rows if r["variant"] != MAIN_VARIANT and collapsed(r, chance)]
    out.update({"SslCollapsedRows": _listing(bad), "SslNumCollapsedRows": number(len(bad)),
               "SslNumGridRows": number(len(grid)), "SslDivergedRows": _listing(diverged),
               "SslCollapsedAblations": _listing(abl_bad)})  # fmt: skip
    # Rows whose normalised std says "collapsed" while their k-NN accuracy does not: the cosine k-NN ranks
    # neighbours by whatever variation is left around a shared direction, however small.
    std_only = [_label(r) if r["variant"] == MAIN_VARIANT else r["variant"] for r in rows
                if r["norm_std"] < COLLAPSED_STD and r["knn_acc"] > chance + NEAR_CHANCE]  # fmt: skip
    out.update({"SslStdOnlyCollapsed": _listing(std_only), "SslNumStdOnlyCollapsed": number(len(std_only))})
    if "random" in main.index:
        untrained = main.loc["random"].iloc[0]
        out.update({"SslRandomNormStd": number(untrained.norm_std, 2),
                   "SslSimSiamOverRandom": number(100 * (simsiam.knn_acc - untrained.knn_acc), 1)})  # fmt: skip

    ok = runs[~runs.diverged.astype(bool) & runs.knn_acc.notna() & runs.rankme.notna()]
    rho = float(spearmanr(ok.rankme, ok.knn_acc).statistic) if len(ok) > 2 else float("nan")
    # The same correlation on the representation h before the projector (RankMe's own setting), beside it.
    ok_h = ok[ok.rankme_h.notna() & ok.knn_acc_h.notna()] if "rankme_h" in ok else ok.iloc[:0]
    rho_h = float(spearmanr(ok_h.rankme_h, ok_h.knn_acc_h).statistic) if len(ok_h) > 2 else float("nan")
    out.update({"SslSpearman": number(rho, 2), "SslSpearmanRuns": number(len(ok)),
               "SslSpearmanTargetMet": _verdict(rho >= SPEARMAN_TARGET), "SslSpearmanH": number(rho_h, 2)})  # fmt: skip

    if transfer is not None:
        d, tbest, tknn = _grid(table, transfer)
        out.update({"SslDigitsBest": _name(tbest), "SslDigitsBestKnn": number(100 * tknn, 1),
                   "SslDigitsSupervisedKnn": number(100 * d.loc["supervised"].knn_acc.iloc[0], 1),
                   "SslDigitsSameBest": _verdict(tbest == best)})  # fmt: skip
    if reviews is not None:
        r, rbest, rknn = _grid(table, reviews)
        random_knn = r.loc["random"].knn_acc.iloc[0]
        out.update({"SslReviewsBest": _name(rbest), "SslReviewsBestKnn": number(100 * rknn, 1),
                   "SslReviewsSupervisedKnn": number(100 * r.loc["supervised"].knn_acc.iloc[0], 1),
                   "SslReviewsRandomKnn": number(100 * random_knn, 1),
                   "SslReviewsSimclrKnn": number(100 * r.loc["simclr"].knn_acc.iloc[0], 1) if "simclr" in r.index else Latex("--"),
                   "SslReviewsBelowRandom": _listing([_label({"method": m, "similarity": s}) for (m, s), row in r.iterrows()
                                                   if resolve_method(m).family == "non-contrastive"
                                                   and row.knn_acc < random_knn])})  # fmt: skip
    return out
