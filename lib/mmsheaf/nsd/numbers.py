r"""The numbers the paper quotes from the node-classification study (notebook 01), as ``{macro name: LaTeX}``.

.. code-block:: python

    sweeps = {**depth_numbers(depth_runs, homophily), **csbm_numbers(sbm_runs),
              **energy_numbers(energy, "texas")}
    rep.macros({**sweeps, **accuracy_numbers(table, datasets),
                **run_numbers([selection_runs, runs, depth_runs, sbm_runs], selection, missing)})

Every macro name is a literal here, so ``grep`` finds the code behind each ``\Nsd...`` of the paper. Values
are formatted once, with :func:`~mmsheaf.report.number` (accuracies in % to one decimal, homophily to two)
or as :class:`~mmsheaf.report.Latex` phrases. Where the text names "the" sheaf type of a sweep, it is the one
best at the deepest setting (depth) or the one whose worst point is highest (CSBM), whichever that is in
the run; ties go to the first in alphabetical order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ..data.node_datasets import resolve_node_dataset
from ..report import Latex, latex_escape, mean_std, number
from .reference import SHEAF_MODELS
from .registry import resolve_node_model
from .tables import csbm_summary, curve_ends, depth_summary, layers_of, paper_checks, rows_against_paper

__all__ = ["accuracy_numbers", "csbm_numbers", "depth_numbers", "energy_numbers", "run_numbers", "tuning_numbers"]

NEAR_ZERO = 1e-6
"""A Rayleigh quotient below this counts as a sheaf that switches diffusion off (``\\NsdEnergyNearZero``)."""


def _text(text: str) -> Latex:
    return Latex(latex_escape(text))


def _dataset(name: str) -> Latex:
    return _text(resolve_node_dataset(name).display or name)


def _model(name: str) -> Latex:
    return _text(resolve_node_model(name).display)


def _names(names: Iterable[str], sep: str = ", ") -> Latex:
    """``a, b, c`` (escaped), or ``none``."""
    return Latex(sep.join(latex_escape(n) for n in names) or "none")


def _best_sheaf(ends: pd.DataFrame, column: str) -> str:
    """The sheaf type with the highest ``column`` among curve ends indexed by model."""
    return ends[ends.index.isin(SHEAF_MODELS)][column].idxmax()


def _need(frame: pd.DataFrame, where: str, models: Iterable[str]) -> None:
    absent = sorted(set(models) - set(frame["model"]))
    if absent or not frame["model"].isin(SHEAF_MODELS).any():
        raise ValueError(f"{where} quotes {', '.join(sorted(models))} and at least one sheaf type; the runs "
                         f"lack {absent or 'every sheaf type'}: add them to the sweep's models.")  # fmt: skip


# ------------------------------------------------------------------------------------------------- depth
@dataclass(frozen=True)
class _DepthCurves:
    """What the text quotes of one dataset's depth curves."""

    name: Latex
    homophily: Latex
    gcn_shallow: Latex
    gcn_next: Latex
    gcn_deep: Latex
    sheaf_model: Latex
    sheaf_shallow: Latex
    sheaf_deep: Latex
    sheaf_next_min: Latex
    sheaf_next_max: Latex


def _depth_curves(summary: pd.DataFrame, ends: pd.DataFrame, dataset: str, homophily: float,
                  next_depth: int) -> _DepthCurves:  # fmt: skip
    ends = ends[ends.dataset == dataset].set_index("model")
    top = _best_sheaf(ends, "last")
    # one step shallower than the deepest: where GCN and the sheaf types part ways, if they do
    at_next = summary[(summary.dataset == dataset) & (summary.layers == next_depth)]
    at_next = at_next.set_index("model").test_mean
    sheaf_next = at_next[at_next.index.isin(SHEAF_MODELS)]
    return _DepthCurves(
        name=_dataset(dataset), homophily=number(homophily, 2),
        gcn_shallow=number(ends.loc["gcn", "first"], 1), gcn_next=number(at_next["gcn"], 1),
        gcn_deep=number(ends.loc["gcn", "last"], 1), sheaf_model=_model(top),
        sheaf_shallow=number(ends.loc[top, "first"], 1), sheaf_deep=number(ends.loc[top, "last"], 1),
        sheaf_next_min=number(sheaf_next.min(), 1), sheaf_next_max=number(sheaf_next.max(), 1),
    )  # fmt: skip


def depth_numbers(results: pd.DataFrame, homophily: Mapping[str, float]) -> dict[str, Latex]:
    r"""The oversmoothing sweep: GCN and the best sheaf type at the shallowest, the next-to-deepest and the
    deepest setting on the most heterophilic (``Hetero``) and the most homophilic (``Homo``) dataset of the
    sweep, and whether the deep sheaf models still fit their training sets.

    Args:
        results: :func:`~mmsheaf.nsd.runs.run_experiments` rows of
            :meth:`~mmsheaf.nsd.protocol.NsdProtocol.depth_specs` (at least two depths, GCN and a sheaf type).
        homophily: The edge homophily of each dataset of the sweep.

    Returns:
        ``\NsdDepthMin``, ``\NsdDepthNext``, ``\NsdDepthMax`` (layers), ``\NsdDepthDeepTrainMax`` and
        ``\NsdDepthShallowTrainMin`` (the highest training accuracy of a sheaf model at the deepest setting,
        the lowest at the shallowest, in %), and per role the dataset's name and homophily and the
        accuracies of GCN and of the sheaf type best at the deepest setting.
    """
    _need(results, "depth_numbers", ["gcn"])
    summary = depth_summary(results)
    ends = curve_ends(summary, x="layers", by=("dataset", "model"))
    depths = sorted(int(d) for d in summary["layers"].unique())
    if len(depths) < 2:
        raise ValueError(f"depth_numbers needs a sweep over at least two depths, got {depths}.")
    # whether a deep model fails to fit its training set (optimisation) or fits it and fails to generalise
    sheaf = results[results.model.isin(SHEAF_MODELS)]
    train_fit = sheaf.assign(layers=layers_of(sheaf)).groupby(["layers", "dataset", "model"]).train_acc
    train_fit = 100 * train_fit.mean()
    datasets = list(dict.fromkeys(results["dataset"]))
    hetero_ds = min(datasets, key=lambda ds: homophily[ds])
    homo_ds = max(datasets, key=lambda ds: homophily[ds])
    hetero = _depth_curves(summary, ends, hetero_ds, homophily[hetero_ds], depths[-2])
    homo = _depth_curves(summary, ends, homo_ds, homophily[homo_ds], depths[-2])
    return {
        "NsdDepthMin": number(depths[0]),
        "NsdDepthNext": number(depths[-2]),
        "NsdDepthMax": number(depths[-1]),
        "NsdDepthDeepTrainMax": number(train_fit.loc[depths[-1]].max(), 1),
        "NsdDepthShallowTrainMin": number(train_fit.loc[depths[0]].min(), 1),
        "NsdDepthHeteroName": hetero.name,
        "NsdDepthHeteroHomophily": hetero.homophily,
        "NsdDepthHeteroGcnShallow": hetero.gcn_shallow,
        "NsdDepthHeteroGcnNext": hetero.gcn_next,
        "NsdDepthHeteroGcnDeep": hetero.gcn_deep,
        "NsdDepthHeteroSheafModel": hetero.sheaf_model,
        "NsdDepthHeteroSheafShallow": hetero.sheaf_shallow,
        "NsdDepthHeteroSheafDeep": hetero.sheaf_deep,
        "NsdDepthHeteroSheafNextMin": hetero.sheaf_next_min,
        "NsdDepthHeteroSheafNextMax": hetero.sheaf_next_max,
        "NsdDepthHomoName": homo.name,
        "NsdDepthHomoHomophily": homo.homophily,
        "NsdDepthHomoGcnShallow": homo.gcn_shallow,
        "NsdDepthHomoGcnNext": homo.gcn_next,
        "NsdDepthHomoGcnDeep": homo.gcn_deep,
        "NsdDepthHomoSheafModel": homo.sheaf_model,
        "NsdDepthHomoSheafShallow": homo.sheaf_shallow,
        "NsdDepthHomoSheafDeep": homo.sheaf_deep,
        "NsdDepthHomoSheafNextMin": homo.sheaf_next_min,
        "NsdDepthHomoSheafNextMax": homo.sheaf_next_max,
    }


# -------------------------------------------------------------------------------------------------- CSBM
@dataclass(frozen=True)
class _CsbmCurves:
    """What the text quotes of the CSBM curves at one feature signal."""

    signal: Latex
    gcn_low: Latex
    gcn_high: Latex
    gcn_worst: Latex
    gcn_worst_at: Latex
    mlp_mean: Latex
    sheaf_model: Latex
    sheaf_low: Latex
    sheaf_high: Latex
    sheaf_worst: Latex
    sheaf_worst_at: Latex
    sheaf_over_gcn: Latex


def _csbm_curves(summary: pd.DataFrame, ends: pd.DataFrame, signal: float) -> _CsbmCurves:
    ends = ends[ends.signal == signal].set_index("model")
    top = _best_sheaf(ends, "worst")
    curves = summary[summary.signal == signal].pivot(index="homophily", columns="model", values="test_mean")
    best_sheaf = curves[[m for m in SHEAF_MODELS if m in curves]].max(axis=1)
    return _CsbmCurves(
        signal=number(float(signal), 1),
        gcn_low=number(ends.loc["gcn", "first"], 1), gcn_high=number(ends.loc["gcn", "last"], 1),
        gcn_worst=number(ends.loc["gcn", "worst"], 1), gcn_worst_at=number(ends.loc["gcn", "worst_x"], 1),
        mlp_mean=number(curves["mlp"].mean(), 1), sheaf_model=_model(top),
        sheaf_low=number(ends.loc[top, "first"], 1), sheaf_high=number(ends.loc[top, "last"], 1),
        sheaf_worst=number(ends.loc[top, "worst"], 1), sheaf_worst_at=number(ends.loc[top, "worst_x"], 1),
        sheaf_over_gcn=number(int((best_sheaf > curves["gcn"]).sum())),
    )  # fmt: skip


def csbm_numbers(results: pd.DataFrame) -> dict[str, Latex]:
    r"""The heterophily sweep on contextual SBM graphs, at the weakest (``Weak``) and the strongest
    (``Strong``) feature signal: GCN's and the most robust sheaf type's accuracy at the lowest and the highest
    edge homophily and at their worst point (and where it lies), the MLP's mean over the sweep, and at how
    many homophily levels the best sheaf type beats GCN.

    Args:
        results: :func:`~mmsheaf.nsd.runs.run_experiments` rows of
            :meth:`~mmsheaf.nsd.protocol.NsdProtocol.sbm_specs` (with MLP, GCN and a sheaf type).

    Returns:
        ``\NsdCsbmLevels`` (the homophily levels of the sweep) and per role the ``\NsdCsbm<Role>...`` numbers.
    """
    _need(results, "csbm_numbers", ["gcn", "mlp"])
    summary = csbm_summary(results)
    ends = curve_ends(summary, x="homophily", by=("signal", "model"))
    signals = sorted(summary["signal"].unique())
    weak, strong = _csbm_curves(summary, ends, signals[0]), _csbm_curves(summary, ends, signals[-1])
    return {
        "NsdCsbmLevels": number(int(summary["homophily"].nunique())),
        "NsdCsbmWeakSignal": weak.signal,
        "NsdCsbmWeakGcnLow": weak.gcn_low,
        "NsdCsbmWeakGcnHigh": weak.gcn_high,
        "NsdCsbmWeakGcnWorst": weak.gcn_worst,
        "NsdCsbmWeakGcnWorstAt": weak.gcn_worst_at,
        "NsdCsbmWeakMlpMean": weak.mlp_mean,
        "NsdCsbmWeakSheafModel": weak.sheaf_model,
        "NsdCsbmWeakSheafLow": weak.sheaf_low,
        "NsdCsbmWeakSheafHigh": weak.sheaf_high,
        "NsdCsbmWeakSheafWorst": weak.sheaf_worst,
        "NsdCsbmWeakSheafWorstAt": weak.sheaf_worst_at,
        "NsdCsbmWeakSheafOverGcn": weak.sheaf_over_gcn,
        "NsdCsbmStrongSignal": strong.signal,
        "NsdCsbmStrongGcnLow": strong.gcn_low,
        "NsdCsbmStrongGcnHigh": strong.gcn_high,
        "NsdCsbmStrongGcnWorst": strong.gcn_worst,
        "NsdCsbmStrongGcnWorstAt": strong.gcn_worst_at,
        "NsdCsbmStrongMlpMean": strong.mlp_mean,
        "NsdCsbmStrongSheafModel": strong.sheaf_model,
        "NsdCsbmStrongSheafLow": strong.sheaf_low,
        "NsdCsbmStrongSheafHigh": strong.sheaf_high,
        "NsdCsbmStrongSheafWorst": strong.sheaf_worst,
        "NsdCsbmStrongSheafWorstAt": strong.sheaf_worst_at,
        "NsdCsbmStrongSheafOverGcn": strong.sheaf_over_gcn,
    }


# ------------------------------------------------------------------------------------------------ energy
def energy_numbers(energy: pd.DataFrame, dataset: str) -> dict[str, Latex]:
    r"""The sheaf Dirichlet energy across layers: where the Rayleigh quotient starts and ends.

    Args:
        energy: :func:`~mmsheaf.nsd.protocol.energy_profiles` rows (``model, layer, rayleigh``).
        dataset: The graph the models were trained on.

    Returns:
        ``\NsdEnergyName``, ``\NsdEnergyModels``, ``\NsdEnergyRises`` (models whose quotient is higher after
        the last layer than at point 0), ``\NsdEnergyFirstMax`` (the highest quotient at point 0),
        ``\NsdEnergyLastMin``, ``\NsdEnergyLastMax`` (after the last layer), ``\NsdEnergyNearZero`` (each
        model's points with a quotient below :data:`NEAR_ZERO`, or ``none``).
    """
    if energy.empty:
        raise ValueError("energy_numbers needs the rows of energy_profiles(...) for at least one model.")
    quotients = energy.pivot(index="layer", columns="model", values="rayleigh").sort_index()
    near_zero = energy[energy.rayleigh < NEAR_ZERO].groupby("model").layer.apply(list)
    notes = (f"{resolve_node_model(m).display} at point{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))}"
             for m, ls in near_zero.items())  # plain text: _names escapes it
    return {
        "NsdEnergyName": _dataset(dataset),
        "NsdEnergyModels": number(quotients.shape[1]),
        "NsdEnergyRises": number(int((quotients.iloc[-1] > quotients.iloc[0]).sum())),
        "NsdEnergyFirstMax": number(quotients.iloc[0].max(), 3),
        "NsdEnergyLastMin": number(quotients.iloc[-1].min(), 2),
        "NsdEnergyLastMax": number(quotients.iloc[-1].max(), 2),
        "NsdEnergyNearZero": _names(notes, sep="; "),
    }


# ---------------------------------------------------------------------------------------- accuracy table
def _row_note(row: pd.Series) -> str:
    """One short row of :func:`~mmsheaf.nsd.tables.rows_against_paper` for the text: model, dataset, our
    mean against the published mean ± std."""
    return (f"{_model(row['model'])} on {_dataset(row['dataset'])}: {number(row['ours'], 1)} against "
            f"{mean_std(row['paper'], row['paper_std'])}")  # fmt: skip


def _row_notes(rows: pd.DataFrame) -> Latex:
    return Latex("; ".join(_row_note(r) for _, r in rows.iterrows()) or "none")


def accuracy_numbers(table: pd.DataFrame, datasets: Sequence[str]) -> dict[str, Latex]:
    r"""The accuracy table against the published one.

    Args:
        table: :func:`~mmsheaf.nsd.tables.accuracy_table` rows.
        datasets: The datasets of the table, in the order the text lists them.

    Returns:
        ``\NsdNumDatasets``, ``\NsdNumSplits``; ``\NsdSheafWins`` (datasets where the best sheaf type beats
        the best baseline); ``\NsdComparable``, ``\NsdMeetsPaper``, ``\NsdShortOfPaper`` (datasets whose
        best sheaf type reaches the paper's best minus its std, by :func:`~mmsheaf.nsd.tables.paper_checks`);
        ``\NsdRowsCompared``, ``\NsdRowsWithin``, ``\NsdRowsShort`` (each sheaf row against its published
        number, by :func:`~mmsheaf.nsd.tables.rows_against_paper`); ``\NsdBaselineRows``,
        ``\NsdBaselineBelow``, ``\NsdBaselineAbove`` (baseline rows more than one published std below or
        above), ``\NsdBaselineMostBelow``, ``\NsdBaselineMostAbove``.
    """
    if table.empty:
        raise ValueError("accuracy_numbers needs the rows of accuracy_table(...); the table is empty.")
    is_sheaf = table.model.isin(SHEAF_MODELS)
    sheaf_best = table[is_sheaf].groupby("dataset")["mean"].max()
    baseline_best = table[~is_sheaf].groupby("dataset")["mean"].max()
    checks = paper_checks(table, datasets)
    rows = rows_against_paper(table)
    # the baseline rows as the table has them (tuned where the notebook tunes them: tuning_numbers)
    baselines = rows_against_paper(table, models=sorted(set(table.model[~is_sheaf])))
    return {
        "NsdNumDatasets": number(len(datasets)),
        "NsdNumSplits": number(int(table["n_splits"].max())),
        "NsdSheafWins": number(int((sheaf_best > baseline_best.reindex(sheaf_best.index)).sum())),
        "NsdComparable": number(len(checks)),
        "NsdMeetsPaper": number(int(checks.meets.sum())),
        "NsdShortOfPaper": _names(checks[~checks.meets.astype(bool)].dataset),
        "NsdRowsCompared": number(len(rows)),
        "NsdRowsWithin": number(int(rows.within.sum())),
        "NsdRowsShort": _row_notes(rows[~rows.within]),
        "NsdBaselineRows": number(len(baselines)),
        "NsdBaselineBelow": number(int((baselines.gap < -baselines.paper_std).sum())),
        "NsdBaselineAbove": number(int((baselines.gap > baselines.paper_std).sum())),
        "NsdBaselineMostBelow": _row_notes(baselines.nsmallest(1, "gap")),  # the first on a tie
        "NsdBaselineMostAbove": _row_notes(baselines.nlargest(1, "gap")),
    }


# --------------------------------------------------------------------------------------- tuned baselines
def tuning_numbers(table: pd.DataFrame, untuned: pd.DataFrame, configs: pd.DataFrame,
                   trials: int, splits: Sequence[int]) -> dict[str, Latex]:  # fmt: skip
    r"""The baselines tuned as fairly as the sheaf models, against their untuned rows (the ablation).

    Args:
        table: :func:`~mmsheaf.nsd.tables.accuracy_table` of the table's runs (tuned baselines).
        untuned: The same of the baselines with their papers' defaults.
        configs: :attr:`~mmsheaf.nsd.tuning.BaselineTuning.configs`.
        trials: Optuna trials per searched (dataset, baseline).
        splits: The splits a trial scores.

    Returns:
        ``\NsdTunePublished``, ``\NsdTuneSearched``, ``\NsdTuneDefaults`` (baseline rows by configuration),
        ``\NsdTuneTrials``, ``\NsdTuneSplits``; ``\NsdBaselineMeets`` (baseline rows with a published number
        within one published std of it or above) and ``\NsdUntunedBaselineMeets``, ``\NsdUntunedBaselineBelow``
        (the same count, and the rows more than one std below, untuned); ``\NsdTunedBetter`` (rows where tuning
        raised the test mean) of ``\NsdTunedCompared``; ``\NsdSheafWinsUntuned`` (datasets where the best
        sheaf type beats every untuned baseline; ``\NsdSheafWins`` is against the tuned ones).
    """
    if configs.empty:
        raise ValueError("tuning_numbers needs the configs of tune_baselines(...); the table is empty.")
    is_sheaf = table.model.isin(SHEAF_MODELS)
    baselines = rows_against_paper(table, models=sorted(set(table.model[~is_sheaf])))
    plain = rows_against_paper(untuned, models=sorted(set(untuned.model) - set(SHEAF_MODELS)))
    both = table.merge(untuned, on=["dataset", "model"], suffixes=("", "_untuned"))
    sheaf_best = table[is_sheaf].groupby("dataset")["mean"].max()
    untuned_best = untuned[~untuned.model.isin(SHEAF_MODELS)].groupby("dataset")["mean"].max()
    kinds = configs.configuration.value_counts()
    return {
        "NsdTunePublished": number(int(kinds.get("published", 0))),
        "NsdTuneSearched": number(int(kinds.get("search", 0))),
        "NsdTuneDefaults": number(int(kinds.get("defaults", 0))),
        "NsdTuneTrials": number(trials),
        "NsdTuneSplits": _names([str(s) for s in splits]),
        "NsdBaselineMeets": number(int(baselines.within.sum())),
        "NsdUntunedBaselineMeets": number(int(plain.within.sum())),
        "NsdUntunedBaselineBelow": number(int((plain.gap < -plain.paper_std).sum())),
        "NsdTunedBetter": number(int((both["mean"] > both["mean_untuned"]).sum())),
        "NsdTunedCompared": number(len(both)),
        "NsdSheafWinsUntuned": number(int((sheaf_best > untuned_best.reindex(sheaf_best.index)).sum())),
    }


# -------------------------------------------------------------------------------------------------- runs
def run_numbers(
    runs: Iterable[pd.DataFrame], selection: pd.DataFrame, missing: Iterable[str]
) -> dict[str, Latex]:
    r"""What the study ran.

    Args:
        runs: :func:`~mmsheaf.nsd.runs.run_experiments` frames (with a ``key`` column) of every sweep.
        selection: The selection table of :meth:`~mmsheaf.nsd.protocol.NsdProtocol.choose`.
        missing: The datasets skipped because their files are missing.

    Returns:
        ``\NsdRuns`` (distinct runs over all sweeps), ``\NsdSelected`` (datasets whose configuration was
        chosen on validation accuracy), ``\NsdMissing`` (escaped names, or ``none``).
    """
    return {
        "NsdRuns": number(len({key for frame in runs for key in frame["key"]})),
        "NsdSelected": _names(selection["dataset"].unique()),
        "NsdMissing": _names(missing),
    }
