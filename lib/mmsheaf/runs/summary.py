"""The one summary of repeated runs: mean and standard deviation over the seeds or splits of each group.

Every study repeats each configuration over seeds (recommendation, metric learning) or data splits (node
classification) and reports ``mean ± std``; they all call :func:`over_repeats` and only name the columns
their tables use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

__all__ = ["over_repeats"]


def over_repeats(runs: pd.DataFrame, by: Sequence[str], values: Mapping[str, str], *, ddof: int = 0,
                 scale: float = 1.0, count: str = "n") -> pd.DataFrame:  # fmt: skip
    r"""Mean and standard deviation of run values over the repeats of each group.

    .. math::
        \bar v_g = \frac{1}{n_g} \sum_{r \in g} v_r, \qquad
        s_g = \Big(\frac{1}{n_g - \mathrm{ddof}} \sum_{r \in g} (v_r - \bar v_g)^2\Big)^{1/2}

    Args:
        runs: One row per run.
        by: The columns that name a group (groups keep their order of first appearance).
        values: ``{name: column}``: each output ``name`` (the mean) and ``std_<name>`` come from ``column``.
        ddof: Delta degrees of freedom: ``0`` (the default) is the population standard deviation NSD and
            MMRec report; ``1`` the sample one.
        scale: Factor applied to means and standard deviations (``100`` for percent).
        count: Name of the column holding each group's number of runs.

    Returns:
        One row per group: ``*by``, then ``name, std_<name>`` for each value in the order of ``values``, then
        ``count``. A group of one run has a standard deviation of ``0`` with ``ddof=0`` and NaN with ``ddof=1``.
    """
    missing = [c for c in (*by, *values.values()) if c not in runs.columns]
    if missing:
        raise ValueError(f"over_repeats: the runs lack the columns {missing}; they have {list(runs.columns)}. "
                         "Pass the frame the study's run loop returns.")  # fmt: skip
    grouped = runs.groupby(list(by), sort=False)
    out: dict[str, pd.Series] = {}
    for name, column in values.items():
        out[name] = grouped[column].mean() * scale
        out[f"std_{name}"] = grouped[column].std(ddof=ddof) * scale
    out[count] = grouped[next(iter(values.values()))].size() if values else grouped.size()
    return pd.DataFrame(out).reset_index()
