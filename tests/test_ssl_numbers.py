"""Tests of notebook 06's table and macros (mmsheaf.ssl.tables, mmsheaf.ssl.numbers) on small frames."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from mmsheaf.ssl.numbers import collapsed, ssl_numbers
from mmsheaf.ssl.plan import MAIN_VARIANT
from mmsheaf.ssl.tables import TABLE_COLUMNS, collapse_table, history_frame, label_runs, spectrum_frame

NOSG = "SimSiam, no stop-gradient"
ABLATIONS = {NOSG: {"method": "simsiam", "stop_gradient": False}}


def runs(rows: list[tuple], variant: str = MAIN_VARIANT, dataset: str = "mnist5k") -> pd.DataFrame:
    """(method, similarity, seed, knn, norm_std, rankme[, diverged[, val knn]]) rows as a run_specs table."""
    frame = pd.DataFrame([{"dataset": dataset, "method": r[0], "similarity": r[1], "seed": r[2], "knn_acc": r[3],
                           "linear_acc": r[3] + 0.01, "norm_std": r[4], "rankme": r[5], "seconds": 10.0 + r[2],
                           "diverged": r[6] if len(r) > 6 else False, "val_knn_acc": r[7] if len(r) > 7 else r[3],
                           "history": [{"epoch": 0, "norm_std": r[4]}], "spectrum": [4.0, 1.0]} for r in rows])  # fmt: skip
    return label_runs(frame, variant)


def study(digits_best: str = "barlow") -> tuple[pd.DataFrame, pd.DataFrame]:
    main = runs([("simsiam", "cosine", 0, 0.90, 0.80, 20.0), ("simsiam", "cosine", 1, 0.92, 0.70, 22.0),
                 ("simsiam", "l2", 0, 0.15, 0.02, 1.5), ("simsiam", "l2", 1, 0.12, 0.03, 1.2),
                 ("barlow", "correlation", 0, 0.95, 0.90, 30.0), ("barlow", "correlation", 1, 0.94, 0.90, 31.0),
                 ("vicreg", "l2", 0, 0.96, 0.90, 30.0, False, 0.80),  # best on test, not on validation
                 ("simsiam", "dot", 0, math.nan, math.nan, math.nan, True),
                 ("supervised", "cross-entropy", 0, 0.97, 0.85, 25.0), ("supervised", "cross-entropy", 1, 0.97, 0.85, 25.0),
                 ("random", "none", 0, 0.70, 0.05, 3.0)])  # fmt: skip
    nosg = runs([("simsiam", "cosine", 0, 0.11, 0.05, 1.1), ("simsiam", "cosine", 1, 0.13, 0.06, 1.3)], NOSG)
    other = "simsiam" if digits_best == "simsiam" else "barlow"
    digits = runs([(other, "cosine" if other == "simsiam" else "correlation", 0, 0.9, 0.8, 10.0),
                   ("supervised", "cross-entropy", 0, 0.95, 0.8, 10.0)], dataset="digits")  # fmt: skip
    reviews = runs([("vicreg", "l2", 0, 0.6, 0.7, 12.0), ("simsiam", "cosine", 0, 0.5, 0.7, 12.0),
                    ("supervised", "cross-entropy", 0, 0.7, 0.8, 12.0), ("random", "none", 0, 0.3, 0.5, 0.0)],
                   dataset="clothing-t2")  # fmt: skip
    all_runs = pd.concat([main, nosg, digits, reviews], ignore_index=True)
    table, _ = collapse_table(all_runs)
    return table, pd.concat([main, nosg], ignore_index=True)


def test_collapse_table_means_over_seeds_and_marks_divergence() -> None:
    table, all_runs = study()
    assert tuple(table.columns[: len(TABLE_COLUMNS)]) == TABLE_COLUMNS
    row = table[
        (table.method == "simsiam") & (table.similarity == "cosine") & (table.variant == MAIN_VARIANT)
    ].iloc[0]
    assert row.knn_acc == pytest.approx(0.91) and row.std_knn_acc == pytest.approx(0.0141421, rel=1e-4)
    assert row.train_seconds == pytest.approx(10.5) and row.n_seeds == 2
    assert table[table.similarity == "dot"].diverged.iloc[0] == 1
    _, tex = collapse_table(all_runs)
    dot = tex[[str(s) == "dot" for s in tex.Similarity]].iloc[0]
    assert str(dot["$k$-NN \\%"]) == "diverged" and str(dot["RankMe"]) == "--"
    with pytest.raises(ValueError, match="lack the columns"):
        collapse_table(all_runs.drop(columns="variant"))


def test_collapse_rule() -> None:
    assert collapsed({"knn_acc": 0.9, "norm_std": 0.05}, 0.1)  # std below 0.1
    assert collapsed({"knn_acc": 0.19, "norm_std": 0.8}, 0.1)  # near chance
    assert not collapsed({"knn_acc": math.nan, "norm_std": math.nan}, 0.1)  # diverged: reported apart
    assert not collapsed({"knn_acc": 0.21, "norm_std": 0.11}, 0.1)


def test_numbers_answer_the_targets() -> None:
    table, all_runs = study()
    n = ssl_numbers(table, all_runs, ABLATIONS, num_classes=10, num_seeds=2, trials=4, epochs=30)
    assert (n["SslNoSgNormStd"], n["SslNoSgKnn"], n["SslSimSiamNormStd"]) == ("0.06", "12.0", "0.75")
    assert n["SslCollapseTargetMet"] == "yes"
    assert (n["SslBestNonContrastive"], n["SslBestNonContrastiveKnn"]) == (
        "Barlow Twins (correlation)",
        "94.5",
    )
    assert (n["SslSupervisedKnn"], n["SslGapToSupervised"], n["SslGapTargetMet"]) == ("97.0", "2.5", "yes")
    assert n["SslCollapsedRows"] == "SimSiam (l2)" and n["SslNumGridRows"] == "5"
    assert n["SslDivergedRows"] == "SimSiam (dot) (1/1)"
    assert (n["SslCollapsedStd"], n["SslHealthyStd"], n["SslNearChance"], n["SslGapTarget"]) == (
        "0.1",
        "0.5",
        "10",
        "3",
    )
    assert n["SslCollapsedAblations"] == NOSG and n["SslChance"] == "10"
    # the untrained network: normalised std 0.05 (below 0.1) with k-NN 70 % (far above chance); SimSiam (l2) has
    # a low std too but sits near chance, so only the untrained row is collapsed by the std alone
    assert (n["SslStdOnlyCollapsed"], n["SslNumStdOnlyCollapsed"]) == ("Random init. (none)", "1")
    assert (n["SslRandomNormStd"], n["SslSimSiamOverRandom"]) == ("0.05", "21.0")
    # RankMe and k-NN rise together over the 12 runs that did not diverge (the diverged one is left out)
    assert (
        n["SslSpearmanRuns"] == "12" and float(n["SslSpearman"]) > 0.7 and n["SslSpearmanTargetMet"] == "yes"
    )
    assert (n["SslDigitsBest"], n["SslDigitsSameBest"]) == ("Barlow Twins (correlation)", "yes")
    assert n["SslReviewsBelowRandom"] == "none" and n["SslSpearmanH"] == "--"  # no h columns here
    assert (n["SslReviewsBest"], n["SslReviewsBestKnn"], n["SslReviewsSupervisedKnn"]) == (
        "VICReg (l2)",
        "60.0",
        "70.0",
    )
    assert ssl_numbers(*study("simsiam"), ABLATIONS, num_classes=10, num_seeds=2, trials=4,
                       epochs=30)["SslDigitsSameBest"] == "no"  # fmt: skip
    with pytest.raises(ValueError, match="without stop-gradient"):
        ssl_numbers(table, all_runs, {}, num_classes=10, num_seeds=2, trials=4, epochs=30)


def test_history_and_spectrum_frames() -> None:
    _, all_runs = study()
    hist = history_frame(all_runs)
    assert len(hist) == len(all_runs) and {"variant", "method_name", "epoch", "norm_std"} <= set(hist.columns)
    spec = spectrum_frame(all_runs, labels={NOSG: "collapsed"})
    assert set(spec.eigenvalue) == {1.0, 0.25} and "collapsed" in set(spec.variant)


def test_numbers_of_the_pair_at_adams_rate_the_reviews_and_the_representation() -> None:
    table, all_runs = study()
    n = ssl_numbers(table, all_runs, ABLATIONS, num_classes=10, num_seeds=2, trials=4, epochs=30)
    assert n["SslPairLr"] == "--" and n["SslPairStdTargetMet"] == "--"  # no such pair among the ablations
    # the pair at 1e-3: with stop-gradient healthy (0.6), without collapsed (0.05): the std half of the target
    pair = {
        "SimSiam, lr 1e-3": {"method": "simsiam", "lr": 0.001},
        "SimSiam, no stop-gradient, lr 1e-3": {"method": "simsiam", "stop_gradient": False, "lr": 0.001},
    }
    extra = [runs([("simsiam", "cosine", 0, 0.66, 0.60, 12.0)], "SimSiam, lr 1e-3"),
             runs([("simsiam", "cosine", 0, 0.70, 0.05, 2.0)], "SimSiam, no stop-gradient, lr 1e-3")]  # fmt: skip
    both = pd.concat([all_runs, *extra], ignore_index=True)
    # on h the ranks agree exactly: RankMe of h is a monotone map of the k-NN accuracy of h
    both = both.assign(knn_acc_h=both.knn_acc, rankme_h=both.knn_acc * 100)
    reviews = table_runs_of(table, "clothing-t2")
    # now SimSiam (0.5) is below the untrained encoder
    reviews.loc[reviews.method == "random", "knn_acc"] = 0.55
    table2, _ = collapse_table(pd.concat([both, table_runs_of(table, "digits"), reviews]))
    n = ssl_numbers(table2, both, {**ABLATIONS, **pair}, num_classes=10, num_seeds=2, trials=4, epochs=30)
    assert (n["SslPairLr"], n["SslPairSgNormStd"], n["SslPairSgKnn"]) == ("0.001", "0.60", "66.0")
    assert (n["SslPairNoSgNormStd"], n["SslPairNoSgKnn"], n["SslPairStdTargetMet"]) == ("0.05", "70.0", "yes")
    assert n["SslSpearmanH"] == "1.00"
    # the reviews: SimSiam (0.5) below the untrained encoder (0.55), VICReg (0.6) above; no SimCLR row there
    assert n["SslReviewsBelowRandom"] == "SimSiam (cosine)" and n["SslReviewsSimclrKnn"] == "--"
    assert n["SslReviewsRandomKnn"] == "55.0"


def table_runs_of(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One run per row of ``table``'s ``dataset`` rows (their means), to rebuild a table with more MNIST rows."""
    rows = table[table.dataset == dataset]
    return runs([(r.method, r.similarity, 0, r.knn_acc, r.norm_std, r.rankme, False, r.val_knn_acc)
                 for r in rows.itertuples()], dataset=dataset)  # fmt: skip


def test_latex_table_names_variants_briefly_and_drops_an_empty_divergence_column() -> None:
    _, all_runs = study()
    _, tex = collapse_table(all_runs)
    variants = {str(v) for v in tex.Variant}
    assert variants == {"", "no stop-gradient"}  # grid blank; "SimSiam, " left to the method column
    assert "Div." in tex  # SimSiam (dot) diverged
    _, tex = collapse_table(all_runs[~all_runs.diverged.astype(bool)])
    assert "Div." not in tex
