r"""Notebook 07's lists of runs, from its parameters: every penalty's weight chosen on validation, then every
split.

.. code-block:: python

    plan = GraphRegPlan("node", ["cora", "texas"], {"graph, squared L2": {"kind": "graph", "distance": "sq_l2"},
                        "sheaf, diagonal": {"kind": "sheaf", "sheaf": "diag"}}, alphas=[0.1, 1.0],
                        splits=range(10), select_splits=3)
    selection = plan.run_selection(cache)            # every row x alpha on the first 3 splits
    chosen = plan.choose(selection)                  # per setting and row: the alpha of the best mean val accuracy
    final = plan.run_final(chosen, cache)            # the plain MLP and every row at its alpha, all splits

The weight :math:`\alpha` of a penalty is a hyperparameter of its row: it is chosen per data set (and label
budget) on the **validation** accuracy averaged over the first ``select_splits`` splits, never on a test score;
the final runs on those splits are the selection runs themselves (same keys, read from the cache).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mmsheaf.graphreg.model import RegConfig
from mmsheaf.graphreg.protocol import TASKS, GraphRegRunSpec, run_specs
from mmsheaf.runs.cache import RunCache

__all__ = ["MLP_ROW", "GraphRegPlan", "Setting"]

MLP_ROW = "MLP"
"""The label of the plain MLP's row (no penalty, nothing to choose)."""


@dataclass(frozen=True)
class Setting:
    """One data set of a task with its data options (``"semi"``: one label budget).

    Args:
        dataset: The data set.
        options: Its data options.
        name: How tables name it (the data set, and ``-<per_class>`` for a label budget).
    """

    dataset: str
    options: Mapping[str, Any]
    name: str


@dataclass(frozen=True)
class GraphRegPlan:
    """The runs of one task of the graph-regularisation study.

    Args:
        task: A key of :data:`~mmsheaf.graphreg.protocol.TASKS`.
        datasets: Its data sets.
        rows: ``{label: RegConfig fields without alpha}``, one per penalty (``kind`` required, not ``"none"``):
            the plain MLP (:data:`MLP_ROW`) is always added.
        alphas: The weights each row chooses from.
        splits: Splits (``"node"``) or labelled subsets (``"semi"``) of the final runs.
        select_splits: The first this many of :attr:`splits` choose :math:`\\alpha`.
        per_class: ``"semi"`` only: the label budgets, one setting each.
        mlp: :class:`~mmsheaf.graphreg.model.MLPConfig` fields.
        train: :class:`~mmsheaf.graphreg.train.GraphRegTrainConfig` fields.
        data_options: Data options shared by every setting (``"semi"``: e.g. ``k``, ``max_rows``).
    """

    task: str
    datasets: Sequence[str]
    rows: Mapping[str, Mapping[str, Any]]
    alphas: Sequence[float]
    splits: Sequence[int]
    select_splits: int = 3
    per_class: Sequence[int] = ()
    mlp: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}: choose one of {', '.join(TASKS)}.")
        if not self.datasets or not self.splits or not self.alphas:
            raise ValueError("a plan needs at least one data set, one split and one alpha.")
        if not 1 <= self.select_splits <= len(self.splits):
            raise ValueError(
                f"select_splits must lie in 1..{len(self.splits)} (the splits), got {self.select_splits}."
            )
        if min(self.alphas) <= 0:
            raise ValueError(f"every alpha must be > 0 (alpha = 0 is the MLP row), got {list(self.alphas)}.")
        if (self.task == "semi") != bool(self.per_class):
            raise ValueError("per_class (the label budgets) is given for the 'semi' task, and only for it.")
        for label, reg in self.rows.items():
            if label == MLP_ROW or reg.get("kind", "none") == "none" or "alpha" in reg:
                raise ValueError(f"row {label!r}: a row is a penalty (kind 'graph' or 'sheaf') without alpha, "
                                 f"and {MLP_ROW!r} is the plain MLP's label.")  # fmt: skip
            RegConfig(**{**reg, "alpha": 1.0})  # a bad name fails now

    def settings(self) -> list[Setting]:
        """The data sets, times the label budgets for ``"semi"``."""
        if self.task != "semi":
            return [Setting(d, dict(self.data_options), d) for d in self.datasets]
        return [Setting(d, {**self.data_options, "per_class": n}, f"{d}-{n}") for d in self.datasets
                for n in self.per_class]  # fmt: skip

    def spec(
        self, setting: Setting, row: str, alpha: float, split: int, retrieval: bool = False
    ) -> GraphRegRunSpec:
        """The run of ``row`` (:data:`MLP_ROW` or a key of :attr:`rows`) at ``alpha`` on one split."""
        reg = {"kind": "none"} if row == MLP_ROW else {**self.rows[row], "alpha": float(alpha)}
        return GraphRegRunSpec(self.task, setting.dataset, int(split), dict(self.mlp), reg, dict(self.train),
                               dict(setting.options), retrieval=retrieval)  # fmt: skip

    def _run(self, jobs: list[tuple[Setting, str, float, int]], cache: RunCache | None, progress: bool,
             desc: str, retrieval: bool = False) -> pd.DataFrame:  # fmt: skip
        specs = [self.spec(s, row, a, split, retrieval) for s, row, a, split in jobs]
        runs = run_specs(specs, cache, progress=progress, desc=desc)
        return runs.assign(setting=[j[0].name for j in jobs], row=[j[1] for j in jobs],
                           chosen_alpha=[j[2] if j[1] != MLP_ROW else 0.0 for j in jobs])  # fmt: skip

    def selection_jobs(self) -> list[tuple[Setting, str, float, int]]:
        """``(setting, row, alpha, split)`` of every selection run."""
        return [(s, row, a, split) for s in self.settings() for row in self.rows for a in self.alphas
                for split in list(self.splits)[: self.select_splits]]  # fmt: skip

    def run_selection(self, cache: RunCache | None = None, progress: bool = True) -> pd.DataFrame:
        """Every row at every alpha on the selection splits (:func:`~mmsheaf.graphreg.protocol.run_specs`
        tables with ``setting``, ``row`` and ``chosen_alpha`` columns)."""
        return self._run(self.selection_jobs(), cache, progress, f"{self.task}: choose alpha")

    def choose(self, selection: pd.DataFrame) -> pd.DataFrame:
        """Per setting and row, the alpha of the best validation accuracy averaged over the selection splits
        (ties: the smaller alpha). Columns ``setting, row, alpha, val_acc`` (the mean at that alpha)."""
        means = selection.groupby(["setting", "row", "chosen_alpha"], sort=False).val_acc.mean().reset_index()
        means = means.sort_values(
            ["setting", "row", "val_acc", "chosen_alpha"], ascending=[True, True, False, True]
        )
        best = means.groupby(["setting", "row"], sort=False).head(1)
        return best.rename(columns={"chosen_alpha": "alpha"}).reset_index(drop=True)

    def final_jobs(self, chosen: pd.DataFrame) -> list[tuple[Setting, str, float, int]]:
        """``(setting, row, alpha, split)`` of every final run: the MLP and every row at its chosen alpha."""
        alpha = {(r.setting, r.row): float(r.alpha) for r in chosen.itertuples()}
        jobs = []
        for s in self.settings():
            jobs += [(s, MLP_ROW, 0.0, split) for split in self.splits]
            for row in self.rows:
                if (s.name, row) not in alpha:
                    raise ValueError(
                        f"no alpha chosen for {row!r} on {s.name}: pass choose()'s table of this plan."
                    )
                jobs += [(s, row, alpha[s.name, row], split) for split in self.splits]
        return jobs

    def run_final(
        self, chosen: pd.DataFrame, cache: RunCache | None = None, progress: bool = True
    ) -> pd.DataFrame:
        """The final runs (:meth:`final_jobs`), tables as :meth:`run_selection`'s."""
        return self._run(self.final_jobs(chosen), cache, progress, f"{self.task}: every split")

    def run_retrieval(self, chosen: pd.DataFrame, setting: str, rows: Sequence[str] | None = None,
                      cache: RunCache | None = None, progress: bool = True) -> pd.DataFrame:  # fmt: skip
        """The final runs of one setting again with retrieval scoring (``retrieval=True`` specs: the same
        seeded training, their own cache entries), one row per run and retrieval distance: ``setting, row,
        split, distance, map_at_r, p_at_1, r_precision, n_queries``; ``attrs["keys"]`` holds the runs' keys."""
        names = {s.name: s for s in self.settings()}
        if setting not in names:
            raise ValueError(f"unknown setting {setting!r}: choose one of {', '.join(names)}.")
        wanted = set(rows) if rows is not None else None
        jobs = [
            j for j in self.final_jobs(chosen) if j[0].name == setting and (wanted is None or j[1] in wanted)
        ]
        runs = self._run(jobs, cache, progress, f"{setting}: retrieval", retrieval=True)
        records = [{"setting": r.setting, "row": r.row, "split": r.split, **rec}
                   for r in runs.itertuples() for rec in r.retrieval]  # fmt: skip
        out = pd.DataFrame(records)
        out.attrs["keys"] = list(runs.key)  # the runs behind the records (for the ledger)
        return out
