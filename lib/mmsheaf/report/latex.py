r"""LaTeX text for the paper: escaping, numbers, ``mean ± std`` cells and booktabs tables.

Every number a notebook writes into a table or a macro goes through :func:`format_number` (integers with
thousands separators, floats to a fixed number of digits) or :func:`mean_std` (the one ``mean ± std``
formatter of the report), so the paper prints every number the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["Latex", "booktabs", "format_number", "latex_escape", "mean_std", "number"]


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    repl = {
        "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    }
    return "".join(repl.get(c, c) for c in str(text))


def format_number(value: Any, digits: int | None = None) -> str:
    """Numbers for text and tables: integers with thousands separators ``{,}``, floats to ``digits``."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "--"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (hasattr(value, "dtype") and str(getattr(value, "dtype", "")).startswith("int")):
        return f"{int(value):,}".replace(",", "{,}")
    if isinstance(value, float) or hasattr(value, "item"):
        v = float(value)
        if digits is None:
            digits = 2 if abs(v) >= 1 else 3
        return f"{v:,.{digits}f}".replace(",", "{,}")
    return latex_escape(str(value))


def booktabs(
    df: pd.DataFrame,
    column_format: str | None = None,
    float_digits: int | Mapping[str, int] = 2,
    escape: bool = True,
) -> str:
    """A booktabs ``tabular`` (no float, no caption: captions live in the paper) of a data frame.

    Column names are written as they are (they are LaTeX, e.g. ``$h_{\\mathrm{edge}}$``); numbers go through
    :func:`format_number`; string cells are escaped unless ``escape=False`` (a display table whose cells are
    already LaTeX; pandas may turn :class:`Latex` cells into plain strings, so the flag is what counts).
    """
    cols = list(df.columns)
    if column_format is None:
        column_format = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in cols)

    def cell(col: str, v: Any) -> str:
        if isinstance(v, Latex) or (isinstance(v, str) and not escape):
            return str(v)
        digits = float_digits.get(col, 2) if isinstance(float_digits, Mapping) else float_digits
        return latex_escape(v) if isinstance(v, str) else format_number(v, digits)

    lines = [f"\\begin{{tabular}}{{{column_format}}}", r"\toprule"]
    lines.append(" & ".join(str(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for row in df.itertuples(index=False):
        lines.append(" & ".join(cell(c, v) for c, v in zip(cols, row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


class Latex(str):
    """A string that is already LaTeX (not escaped by :func:`booktabs`)."""


def mean_std(mean: float | None, std: float | None, digits: int = 1, *, bold: bool = False,
             italic: bool = False, spaced: bool = False) -> Latex:  # fmt: skip
    r"""``mean$\pm$std`` to ``digits`` decimals as a :class:`Latex` cell (``--`` for a missing mean), in bold
    (the best of a row) or italics (a published number) when asked.

    Args:
        mean: the mean (``None`` or NaN: no result).
        std: its standard deviation (``None`` or NaN: the mean alone).
        digits: decimals of both.
        bold: wrap in ``\textbf``.
        italic: wrap in ``\textit``.
        spaced: a space on each side of :math:`\pm` (the recommendation and metric-learning tables), none by
            default (the node-classification table, whose cells are narrow).
    """
    if mean is None or pd.isna(mean):
        return Latex("--")
    pm = " $\\pm$ " if spaced else "$\\pm$"
    text = f"{mean:.{digits}f}" if std is None or pd.isna(std) else f"{mean:.{digits}f}{pm}{std:.{digits}f}"
    if bold:
        text = f"\\textbf{{{text}}}"
    if italic:
        text = f"\\textit{{{text}}}"
    return Latex(text)


def number(value: Any, digits: int | None = None) -> Latex:
    """:func:`format_number` of ``value`` as a :class:`Latex` string: a number a study's ``numbers`` module
    quotes, formatted once there (e.g. ``number(86.26, 1) == "86.3"``), so the paper and the unit tests see the
    same text."""
    return Latex(format_number(value, digits))
