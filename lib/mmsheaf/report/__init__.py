"""The report: what notebooks write for the paper, where it came from, and how notebooks and paper are built.

- :mod:`~mmsheaf.report.outputs`: :class:`Report` (figures, tables, macros, the run ledger, staging), the
  figure style;
- :mod:`~mmsheaf.report.latex`: LaTeX text: escaping, numbers, the one ``mean ± std`` formatter, booktabs;
- :mod:`~mmsheaf.report.provenance`: git commit, package versions, hardware, input hashes;
- :mod:`~mmsheaf.report.notebooks`: the jupytext pairs and their parameters;
- :mod:`~mmsheaf.report.runner`: papermill runs of the notebooks, skipping those up to date;
- :mod:`~mmsheaf.report.paper`: the thesis PDF (latexmk).

The report knows no study: the studies call it.
"""

from .latex import Latex, booktabs, format_number, latex_escape, mean_std, number
from .outputs import PAPER_WIDTH_IN, STAGE_ENV, Report, figsize, move_outputs, set_style

__all__ = [
    "PAPER_WIDTH_IN",
    "STAGE_ENV",
    "Latex",
    "Report",
    "booktabs",
    "figsize",
    "format_number",
    "latex_escape",
    "mean_std",
    "move_outputs",
    "number",
    "set_style",
]
