r"""The MovieLens-1M item cold-start study (notebook 05): one plan per protocol, its tables and its numbers.

.. code-block:: python

    study = ColdStartStudy({"cold": ["content", "mm-sheaf"], "warm": ["lightgcn", "mm-sheaf"]}, seeds=[0, 1],
                           hparams={"dim": 64}, trials=8, ablations={"no profiles": {"user_profiles": False}})
    plan = study.plan("cold")                       # a RecPlan on "ml1m-cold": searches, final runs, ablations
    tuning = plan.tune_all(cache)
    runs = run_specs(plan.main_specs(tuning.best), cache)

Every protocol (:data:`~mmsheaf.data.coldstart.ML1M_PROTOCOLS`) is searched on its own validation split with the
same trial budget for every model (never on test); the ablations change the tuned multimodal sheaf on the cold
protocol; the data-size curve reruns some models on the warm protocol with a share of every user's training
interactions. The tables: :func:`protocol_table` (``figures/tables/recsys_ml1m.csv``) and
:func:`fraction_frame`; the numbers the paper quotes: :func:`coldstart_numbers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mmsheaf.data.coldstart import ML1M_PROTOCOLS
from mmsheaf.data.interactions import MODALITIES, InteractionData
from mmsheaf.recsys.plan import RecPlan, Tuned
from mmsheaf.recsys.protocol import FULL_VARIANT, RecRunSpec, tuned_params_text
from mmsheaf.recsys.registry import resolve_recommender
from mmsheaf.report import Latex, latex_escape, mean_std, number

__all__ = ["ABLATION_MACROS", "SHEAF", "SPEED_TARGET", "ColdStartStudy", "coldstart_numbers", "fraction_frame", "protocol_table", "speed_numbers"]

SHEAF = "mm-sheaf"
"""The model the study is about."""

METRIC = "ndcg@20"
"""The metric the targets are set on."""


@dataclass(frozen=True)
class ColdStartStudy:
    """What notebook 05 runs, from its parameters.

    Args:
        protocols: The models of each protocol, ``{"cold": [...], "warm": [...], "hybrid": [...]}`` (id-only
            models cannot score a cold item: they belong to ``"warm"`` only).
        seeds: Seeds of the final runs, the ablations and the data-size curve.
        hparams, train, search, model_search, trials: As :class:`~mmsheaf.recsys.plan.RecPlan` (the same for
            every protocol).
        data_options: Options of :func:`~mmsheaf.data.coldstart.load_ml1m` (``num_users`` for the smoke
            profile).
        ablations: Changes of the tuned multimodal sheaf on the cold protocol, by label.
        fractions: Shares of every user's training interactions for the data-size curve (warm protocol).
        fraction_models: The models of the curve (tuned on the warm protocol).
    """

    protocols: Mapping[str, Sequence[str]]
    seeds: Sequence[int]
    hparams: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    search: Mapping[str, Any] = field(default_factory=dict)
    model_search: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trials: int = 8
    data_options: Mapping[str, Any] = field(default_factory=dict)
    ablations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fractions: Sequence[float] = ()
    fraction_models: Sequence[str] = ()

    def __post_init__(self) -> None:
        unknown = [p for p in self.protocols if p not in ML1M_PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocols {unknown}: choose among {ML1M_PROTOCOLS}.")
        if self.ablations and SHEAF not in self.protocols.get("cold", ()):
            raise ValueError(f"the ablations change the tuned {SHEAF!r} of the cold protocol: add it there.")
        if self.fractions and not set(self.fraction_models) <= set(self.protocols.get("warm", ())):
            raise ValueError(f"fraction_models {list(self.fraction_models)} must be models of the warm protocol.")
        if any(not 0.0 < f <= 1.0 for f in self.fractions):
            raise ValueError(f"fractions must lie in (0, 1], got {list(self.fractions)}.")

    def plan(self, protocol: str) -> RecPlan:
        """The :class:`~mmsheaf.recsys.plan.RecPlan` of one protocol (dataset ``"ml1m-<protocol>"``)."""
        if protocol not in self.protocols:
            raise ValueError(f"this study runs {list(self.protocols)}, not {protocol!r}.")
        models = list(self.protocols[protocol])
        ablations = self.ablations if protocol == "cold" else {}
        return RecPlan(models, self.seeds, hparams=self.hparams, train=self.train, search=self.search,
                       model_search={m: s for m, s in self.model_search.items() if m in models},
                       trials=self.trials, data_options=self.data_options, ablated=SHEAF, ablations=ablations,
                       dataset=f"ml1m-{protocol}")  # fmt: skip

    def fraction_specs(self, tuned_warm: Tuned) -> list[RecRunSpec]:
        """The runs of the data-size curve: every model of :attr:`fraction_models` with its warm-protocol
        settings, every fraction (in order), every seed; ``train_fraction`` 1 is the main runs themselves."""
        plan = self.plan("warm")
        return [spec for f in self.fractions for m in self.fraction_models
                for spec in plan.specs(tuned_warm, m, data_options={"train_fraction": f} if f < 1.0 else None)]  # fmt: skip


def protocol_table(summaries: Mapping[str, pd.DataFrame],
                   tuned: Mapping[str, Tuned]) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    r"""The table of every protocol: ``protocol, model, recall@20, ndcg@20, std_ndcg@20, params``.

    Args:
        summaries: :func:`~mmsheaf.recsys.protocol.summarise_runs` of each protocol's final runs.
        tuned: each protocol's tuned settings (:attr:`~mmsheaf.recsys.plan.RecTuning.best`).

    Returns:
        ``(table, tex)``: the numbers, and the LaTeX version (protocol, display name, ``mean $\pm$ std`` to 4
        decimals with the best of each protocol in bold, the tuned settings).
    """
    rows, tex = [], []
    for protocol, summary in summaries.items():
        best = summary[["recall@20", "ndcg@20"]].max()
        for r in summary.to_dict("records"):
            params = tuned_params_text(tuned[protocol][r["model"]])
            rows.append({"protocol": protocol, "model": r["model"], "recall@20": r["recall@20"],
                         "ndcg@20": r["ndcg@20"], "std_ndcg@20": r["std_ndcg@20"], "params": params})  # fmt: skip
            tex.append({
                "Protocol": Latex(protocol), "Model": Latex(latex_escape(resolve_recommender(r["model"]).display)),
                **{head: mean_std(r[m], r[f"std_{m}"], 4, bold=r[m] == best[m], spaced=True)
                   for head, m in (("Recall@20", "recall@20"), ("NDCG@20", "ndcg@20"))},
                "Tuned hyperparameters": Latex(f"\\scriptsize {latex_escape(params)}"),
            })  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(tex)


def fraction_frame(specs: Sequence[RecRunSpec], runs: pd.DataFrame, main: pd.DataFrame) -> pd.DataFrame:
    """The data-size curve as one long frame: ``model, model_name, fraction, seed, recall@20, ndcg@20``.

    Args:
        specs: :meth:`ColdStartStudy.fraction_specs`, in the order of ``runs``.
        runs: :func:`~mmsheaf.recsys.protocol.run_specs` of ``specs``.
        main: the warm protocol's final runs (fraction 1) of the same models.
    """
    if len(specs) != len(runs):
        raise ValueError(f"{len(specs)} specs but {len(runs)} runs: pass the runs of these specs, in order.")
    fractions = [float(s.data_options.get("train_fraction", 1.0)) for s in specs]
    parts = [runs.assign(fraction=fractions),
             main[main.model.isin(set(runs.model))].assign(fraction=1.0)]  # fmt: skip
    frame = pd.concat(parts, ignore_index=True).drop_duplicates(["model", "seed", "fraction"])
    frame = frame.rename(columns={"test_recall@20": "recall@20", "test_ndcg@20": "ndcg@20"})
    frame["model_name"] = frame.model.map(lambda m: resolve_recommender(m).display)
    return frame[["model", "model_name", "fraction", "seed", "recall@20", "ndcg@20"]].sort_values(
        ["model", "fraction", "seed"], ignore_index=True)  # fmt: skip


ABLATION_MACROS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "CsGenMapsGain": lambda change: change == {"sheaf": "gen"},
    "CsLinearEncodersGain": lambda change: change == {"encoder_hidden": 0},
    "CsProfilesGain": lambda change: change == {"user_profiles": True},
    "CsNoTextGain": lambda change: "text" not in change.get("modalities", MODALITIES),
    "CsNoTabGain": lambda change: "tabular" not in change.get("modalities", MODALITIES),
}
"""The ablations the paper quotes, by macro: which change of the tuned model each one is."""


def _gain(value: float, reference: float) -> float:
    return 100 * (value / reference - 1)


def _verdict(flag: bool) -> Latex:
    return Latex("yes" if flag else "no")


def _macros(*names: str) -> dict[str, str]:
    """The macro names of one comparison of :func:`_compare`, by role (each name a literal where it is called)."""
    return dict(zip(("sheaf", "sheaf_std", "best", "best_ndcg", "best_std", "gain", "beyond"), names, strict=True))


COLD_MACROS = _macros("CsColdSheafNdcg", "CsColdSheafStd", "CsColdBest", "CsColdBestNdcg", "CsColdBestStd",
                      "CsColdGain", "CsColdBeyondSpread")  # fmt: skip
WARM_MACROS = _macros("CsWarmSheafNdcg", "CsWarmSheafStd", "CsWarmBest", "CsWarmBestNdcg", "CsWarmBestStd",
                      "CsWarmGain", "CsWarmBeyondSpread")  # fmt: skip
WARM_ALL_MACROS = _macros("CsWarmAllSheafNdcg", "CsWarmAllSheafStd", "CsWarmAllBest", "CsWarmAllBestNdcg",
                          "CsWarmAllBestStd", "CsWarmAllGain", "CsWarmAllBeyondSpread")  # fmt: skip
HYBRID_MACROS = _macros("CsHybridSheafNdcg", "CsHybridSheafStd", "CsHybridBest", "CsHybridBestNdcg", "CsHybridBestStd",
                        "CsHybridGain", "CsHybridBeyondSpread")  # fmt: skip


def _compare(summary: pd.DataFrame, others: Sequence[str],
             names: Mapping[str, str]) -> tuple[dict[str, Latex], float, bool]:  # fmt: skip
    """The sheaf against the best of ``others`` in one protocol: the macros ``names`` (NDCG@20s, gain, whether
    the gain clears the seeds' spread: the sheaf's mean minus its std above the other's mean plus its std), the
    gain in % and the spread verdict."""
    s = summary.set_index("model")
    others = [m for m in others if m in s.index and m != SHEAF]
    if SHEAF not in s.index or not others:
        raise ValueError(f"the summary of {names['gain']} needs {SHEAF!r} and at least one other model.")
    best = s.loc[others, METRIC].idxmax()
    mm, ref = s.loc[SHEAF], s.loc[best]
    gain = _gain(mm[METRIC], ref[METRIC])
    beyond = bool(mm[METRIC] - mm[f"std_{METRIC}"] > ref[METRIC] + ref[f"std_{METRIC}"])
    return {
        names["sheaf"]: number(mm[METRIC], 4),
        names["sheaf_std"]: number(mm[f"std_{METRIC}"], 4),
        names["best"]: Latex(latex_escape(resolve_recommender(best).display)),
        names["best_ndcg"]: number(ref[METRIC], 4),
        names["best_std"]: number(ref[f"std_{METRIC}"], 4),
        names["gain"]: number(gain, 1),
        names["beyond"]: _verdict(beyond),
    }, gain, beyond


def coldstart_numbers(
    data: Mapping[str, InteractionData],
    summaries: Mapping[str, pd.DataFrame],
    ablation: pd.DataFrame | None,
    fractions: pd.DataFrame | None,
    *,
    coverage: Mapping[str, int],
    num_seeds: int,
    trials: int,
    ablations: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Latex]:
    r"""The numbers the paper quotes from notebook 05, by macro name (every name a literal here).

    Targets (issue 16): on the cold protocol MM-Sheaf's NDCG@20 at least 5 % above the best baseline and
    beyond the seeds' spread (``CsColdTargetMet``); on the warm protocol within 2 % of LightGCN or above
    (``CsWarmTargetMet``). Gains are relative changes of NDCG@20 in %.

    Args:
        data: the interactions of each protocol that was run.
        summaries: each protocol's :func:`~mmsheaf.recsys.protocol.summarise_runs`.
        ablation: :func:`~mmsheaf.recsys.protocol.ablation_table`'s table of the cold protocol (or ``None``).
        fractions: :func:`fraction_frame` (or ``None``).
        coverage: the title join's coverage (:attr:`~mmsheaf.data.movielens1m.ML1MColdStart.coverage`).
        num_seeds, trials: seeds per setting, Optuna trials per model.
        ablations: the study's ablations (``{label: change}``), to find the rows of :data:`ABLATION_MACROS`
            (each the relative change of NDCG@20 against the tuned model, ``--`` where the study has no such
            ablation).

    The data-size curve gives ``CsFracLow`` (the smallest share, in %), ``CsFracLowGain`` /
    ``CsFracFullGain`` (MM-Sheaf against LightGCN there and at the full data) and ``CsFracAhead`` (the shares,
    in %, at which MM-Sheaf's mean is at least LightGCN's, or ``none``).
    """
    out: dict[str, Latex] = {"CsNumSeeds": number(num_seeds), "CsTrials": number(trials),
                             "CsJoined": number(sum(v for k, v in coverage.items() if k not in ("none", "with_plot"))),
                             "CsUnjoined": number(coverage["none"]), "CsWithPlot": number(coverage["with_plot"])}  # fmt: skip
    if "cold" in data:
        d = data["cold"]
        out.update({"CsNumUsers": number(d.num_users), "CsNumItems": number(d.num_items),
                    "CsWarmItems": number(int(d.item_mask["id"].sum())), "CsTrain": number(int(d.train.size(1))),
                    "CsColdValItems": number(int(d.val_candidates.numel())),
                    "CsColdTestItems": number(int(d.candidates.numel()))})  # fmt: skip
    if "cold" in summaries:
        macros, gain, beyond = _compare(summaries["cold"], list(summaries["cold"].model), COLD_MACROS)
        out.update(macros)
        out["CsColdTargetMet"] = _verdict(gain >= 5.0 and beyond)
    if "warm" in summaries:
        macros, gain, _ = _compare(summaries["warm"], ["lightgcn"], WARM_MACROS)
        out.update(macros)
        out["CsWarmTargetMet"] = _verdict(gain >= -2.0)
        out.update(_compare(summaries["warm"], list(summaries["warm"].model), WARM_ALL_MACROS)[0])
    if "hybrid" in summaries:
        out.update(_compare(summaries["hybrid"], list(summaries["hybrid"].model), HYBRID_MACROS)[0])
    if ablation is not None and len(ablation):
        abl = ablation.set_index("variant")[METRIC]
        best = abl.idxmax()
        out.update({"CsBestVariant": Latex(latex_escape(best)), "CsBestVariantNdcg": number(abl[best], 4)})
        for macro, changes in ABLATION_MACROS.items():
            label = next((k for k, c in (ablations or {}).items() if changes(c)), None)
            out[macro] = number(_gain(abl[label], abl[FULL_VARIANT]), 1) if label in abl.index else Latex("--")
    if fractions is not None and len(fractions):
        curve = fractions.groupby(["fraction", "model"])[METRIC].mean().unstack()
        if SHEAF in curve and "lightgcn" in curve:
            gains = 100 * (curve[SHEAF] / curve["lightgcn"] - 1)
            out.update({"CsFracLow": number(100 * gains.index.min(), 0), "CsFracLowGain": number(gains.iloc[0], 1),
                        "CsFracFullGain": number(gains.iloc[-1], 1)})  # fmt: skip
            ahead = [f"{100 * f:g}" for f, g in gains.items() if g >= 0.0]
            out["CsFracAhead"] = Latex(", ".join(ahead) + r"\,\%" if ahead else "none")
    return out


SPEED_TARGET = 3.0
"""Issue 16's target: an epoch of the multimodal sheaf costs at most this many LightGCN epochs."""


def _epoch_times(speed: pd.DataFrame, dataset: str) -> pd.Series:
    """``ms_per_epoch`` of ``dataset``'s rows, by model, checked to hold the models :func:`speed_numbers` reads."""
    rows = speed[speed.dataset == dataset].set_index("model")["ms_per_epoch"]
    missing = [m for m in (SHEAF, "lightgcn", f"{SHEAF}[sheaf=gen]") if m not in rows.index]
    if missing:
        raise ValueError(f"the speed benchmark has no rows of {missing} on {dataset}: run "
                         "benchmarks/recsys_speed.py.")  # fmt: skip
    return rows


def speed_numbers(speed: pd.DataFrame) -> dict[str, Latex]:
    """The epoch time of the multimodal sheaf against LightGCN's at equal embedding size, from the speed
    benchmark (``benchmarks/results/recsys_speed.csv``): on ML-1M cold ``CsSpeedRatio`` (x LightGCN),
    ``CsSpeedMs``, ``CsSpeedLightGCNMs``, the general maps' ``CsSpeedGenRatio`` and ``CsSpeedTargetMet``
    (ratio at most :data:`SPEED_TARGET`); on ML-100K ``CsSpeedRatioHundredK``, ``CsSpeedGenRatioHundredK`` and
    ``CsSpeedTargetMetHundredK``."""
    big, small = _epoch_times(speed, "ml1m-cold"), _epoch_times(speed, "ml100k")
    ratio, ratio_small = big[SHEAF] / big["lightgcn"], small[SHEAF] / small["lightgcn"]
    return {
        "CsSpeedRatio": number(ratio, 1),
        "CsSpeedGenRatio": number(big[f"{SHEAF}[sheaf=gen]"] / big["lightgcn"], 1),
        "CsSpeedMs": number(big[SHEAF], 0),
        "CsSpeedLightGCNMs": number(big["lightgcn"], 0),
        "CsSpeedTargetMet": _verdict(ratio <= SPEED_TARGET),
        "CsSpeedRatioHundredK": number(ratio_small, 1),
        "CsSpeedGenRatioHundredK": number(small[f"{SHEAF}[sheaf=gen]"] / small["lightgcn"], 1),
        "CsSpeedTargetMetHundredK": _verdict(ratio_small <= SPEED_TARGET),
    }
