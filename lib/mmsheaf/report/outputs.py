"""Outputs of a notebook for the paper: figures, tables, macros and their provenance.

A notebook makes one :class:`Report` and writes everything the paper uses through it:

.. code-block:: python

    rep = Report("00_datasets", profile=PROFILE, params={"DATASETS": DATASETS})
    rep.figure(fig, "homophily_degree")      # <out>/homophily_degree.pdf (vector, paper width)
    rep.table(df, "datasets")                # <out>/tables/datasets.tex (booktabs) + .csv
    rep.macro("NumDatasets", 9)              # \\NumDatasets in <out>/macros/00_datasets.tex
    rep.close()                              # macros file + provenance manifest

``<out>`` is :func:`mmsheaf.paths.output_root` of the profile (``figures/`` for ``paper``, ``build/smoke/``
for ``smoke``). Each output gets a provenance record ``<out>/provenance/<file>.json`` (notebook, profile,
parameters, git commit, package versions, hardware, wall time, sha256), and :meth:`Report.close` writes the
notebook's manifest ``<out>/provenance/<notebook>.manifest.json`` listing its outputs and the hash of its
inputs, which :mod:`mmsheaf.report.runner` uses to skip notebooks that are up to date.

Atomic writes: every file is written to a temporary name and renamed into place. When the runner executes a
notebook it sets ``MMSHEAF_STAGE_DIR``; the report then writes into that staging folder, and the runner moves
the files into ``<out>`` only after the whole notebook succeeded, so a failed run leaves earlier outputs as
they were.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import paths
from ..atomic import atomic_path, write_text_atomic
from ..runs.ledger import write_ledger
from .latex import Latex, booktabs, format_number
from .notebooks import Notebook
from .provenance import (
    git_commit,
    hardware,
    input_hash,
    json_default,
    library_files_in_use,
    manifest_path,
    package_versions,
    sha256_file,
)

__all__ = ["GOLDEN", "PAPER_WIDTH_IN", "STAGE_ENV", "Report", "figsize", "move_outputs", "set_style"]

STAGE_ENV = "MMSHEAF_STAGE_DIR"
"""Environment variable naming the staging folder (set by :mod:`mmsheaf.report.runner`)."""

PAPER_WIDTH_IN = 6.3
"""Text width of the thesis in inches (A4, 2.5 cm margins: 16 cm); figures are made at this width."""

GOLDEN = (math.sqrt(5) - 1) / 2

_MACRO_NAME = re.compile(r"^[A-Za-z]+$")
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


# ----------------------------------------------------------------------------------------------- style
def set_style(context: str = "paper", font_scale: float = 1.0) -> None:
    """One seaborn style for every figure of the report (serif text, colour-blind palette, paper width)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette="colorblind", font="serif", font_scale=font_scale)
    mpl.rcParams.update(
        {
            "figure.figsize": (PAPER_WIDTH_IN, PAPER_WIDTH_IN * GOLDEN),
            "figure.dpi": 110,
            "savefig.bbox": "tight",
            "savefig.pad_inches": 0.02,
            "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "legend.fontsize": 8,
            "font.serif": ["DejaVu Serif", "Times New Roman", "serif"],
            "mathtext.fontset": "dejavuserif",
        }
    )


def figsize(width_frac: float = 1.0, aspect: float = GOLDEN) -> tuple[float, float]:
    """Figure size in inches for a fraction of the text width and a height/width ``aspect``."""
    if not 0 < width_frac <= 1:
        raise ValueError(f"width_frac must be in (0, 1], got {width_frac}")
    w = PAPER_WIDTH_IN * width_frac
    return (w, w * aspect)


# -------------------------------------------------------------------------------------------- Report
class Report:
    r"""Writes a notebook's figures, tables and macros, each with a provenance record.

    Args:
        notebook: the notebook's stem, e.g. ``"00_datasets"``.
        profile: ``"smoke"`` or ``"paper"`` (:data:`mmsheaf.paths.PROFILES`).
        params: the notebook's parameters, recorded in every provenance record.
        out_dir: override of the output folder (default: staging folder when the runner set one, else
            :func:`mmsheaf.paths.output_root`).
    """

    def __init__(
        self,
        notebook: str,
        profile: str,
        params: Mapping[str, Any] | None = None,
        out_dir: str | Path | None = None,
    ) -> None:
        paths.check_profile(profile)
        if not _OUTPUT_NAME.match(notebook):
            raise ValueError(f"notebook name {notebook!r} must be letters, digits, '_' or '-', e.g. '00_datasets'")
        self.notebook = notebook
        self.profile = profile
        self.params = dict(params or {})
        stage = os.environ.get(STAGE_ENV)
        self.out_dir = Path(out_dir) if out_dir else (Path(stage) if stage else paths.output_root(profile))
        self._t0 = time.perf_counter()
        self._started = _dt.datetime.now(_dt.timezone.utc)
        self._macros: dict[str, str] = {}
        self._outputs: list[str] = []
        self._common: dict[str, Any] | None = None
        self.closed = False
        set_style()

    # ---------------------------------------------------------------- helpers
    def _check_name(self, name: str) -> None:
        if not _OUTPUT_NAME.match(name):
            raise ValueError(f"output name {name!r} must be letters, digits, '_' or '-' (it becomes a file name)")
        if self.closed:
            raise ValueError("this Report is closed: create a new one to write more outputs")

    def _provenance_common(self) -> dict[str, Any]:
        if self._common is None:
            self._common = {
                "notebook": self.notebook,
                "profile": self.profile,
                "parameters": self.params,
                "git_commit": git_commit(),
                "versions": package_versions(),
                "hardware": hardware(),
            }
        return self._common

    def _record(self, rel: str, **extra: Any) -> None:
        target = self.out_dir / rel
        record = {
            "output": rel,
            **self._provenance_common(),
            "wall_time_s": round(time.perf_counter() - self._t0, 3),
            "started": self._started.isoformat(timespec="seconds"),
            "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "sha256": sha256_file(target),
            **extra,
        }
        prov = self.out_dir / "provenance" / (rel.replace("/", "__") + ".json")
        write_text_atomic(prov, json.dumps(record, indent=2, default=json_default) + "\n")
        if rel not in self._outputs:
            self._outputs.append(rel)

    # ---------------------------------------------------------------- outputs
    def figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as vector PDF ``<out>/<name>.pdf``; returns the path."""
        self._check_name(name)
        rel = f"{name}.pdf"
        target = self.out_dir / rel
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="pdf", metadata={"CreationDate": None})
        self._record(rel)
        return target

    def table(
        self,
        df: pd.DataFrame,
        name: str,
        tex: pd.DataFrame | None = None,
        column_format: str | None = None,
        float_digits: int | Mapping[str, int] = 2,
        escape: bool = True,
    ) -> Path:
        """Write ``<out>/tables/<name>.csv`` (the numbers) and ``<name>.tex`` (a booktabs tabular).

        Args:
            df: the machine-readable table (written to CSV as is).
            tex: optional display version for LaTeX (formatted, renamed columns); default ``df``.
            escape: escape string cells of the LaTeX version (``False`` when they are LaTeX already).
        """
        self._check_name(name)
        csv_rel, tex_rel = f"tables/{name}.csv", f"tables/{name}.tex"
        with atomic_path(self.out_dir / csv_rel) as tmp:
            df.to_csv(tmp, index=False)
        write_text_atomic(
            self.out_dir / tex_rel,
            booktabs(
                tex if tex is not None else df, column_format=column_format, float_digits=float_digits, escape=escape
            ),
        )
        self._record(csv_rel, rows=len(df), columns=list(map(str, df.columns)))
        self._record(tex_rel)
        return self.out_dir / tex_rel

    def runs(self, folders: Sequence[str], keys: Iterable[str], studies: Iterable[str] = ()) -> Path:
        """Write the ledger ``<out>/runs/<notebook>.jsonl`` of exactly the cached runs ``keys``
        (:mod:`mmsheaf.runs.ledger`): the raw per-run results behind the tables, from which a later run resumes,
        and the journals of the Optuna ``studies`` (by name), so that the rerun replays their trials."""
        if self.closed:
            raise ValueError("this Report is closed: create a new one to write more outputs")
        keys, studies = sorted(set(keys)), sorted(set(studies))
        rel = f"runs/{self.notebook}.jsonl"
        write_ledger(self.out_dir / rel, folders, keys, studies=studies)
        self._record(rel, runs=len(keys), cache_folders=list(folders), studies=studies)
        return self.out_dir / rel

    def macro(self, name: str, value: Any, digits: int | None = None) -> str:
        r"""Define ``\<name>`` (letters only) for a number or phrase quoted in the paper's text."""
        if not _MACRO_NAME.match(name):
            raise ValueError(f"macro name {name!r} must be letters only (LaTeX control words), e.g. 'CoraNodes'")
        if self.closed:
            raise ValueError("this Report is closed: create a new one to write more outputs")
        text = value if isinstance(value, Latex) else format_number(value, digits)
        self._macros[name] = str(text)
        return str(text)

    def macros(self, numbers: Mapping[str, Any]) -> None:
        r"""Define every ``\<name>`` of ``numbers`` (``{name: value}``, as a study's ``numbers`` module returns
        them: :class:`Latex` text, e.g. :func:`~mmsheaf.report.latex.number`, or plain numbers and phrases)."""
        for name, value in numbers.items():
            self.macro(name, value)

    def close(self) -> Path:
        """Write the macros file and the manifest; returns the manifest's path."""
        if self.closed:
            raise ValueError("Report.close() was already called")
        rel = f"macros/{self.notebook}.tex"
        lines = [f"% Numbers quoted in the paper, written by notebook {self.notebook} ({self.profile} profile)."]
        lines += [f"\\newcommand{{\\{k}}}{{{v}}}" for k, v in sorted(self._macros.items())]
        write_text_atomic(self.out_dir / rel, "\n".join(lines) + "\n")
        self._record(rel, macros=sorted(self._macros))
        nb = Notebook(self.notebook, paths.notebooks_dir())
        used = library_files_in_use()
        manifest = {
            "notebook": self.notebook,
            "profile": self.profile,
            "outputs": self._outputs,
            "library_files": used,
            # the runner rewrites this with the notebook's own folder; None when run outside the repository
            "input_hash": input_hash(nb, self.profile, used) if nb.py.is_file() else None,
            "git_commit": self._provenance_common()["git_commit"],
            "wall_time_s": round(time.perf_counter() - self._t0, 3),
        }
        target = manifest_path(self.out_dir, self.notebook)
        write_text_atomic(target, json.dumps(manifest, indent=2) + "\n")
        self.closed = True
        return target


def move_outputs(stage: Path, out_dir: Path) -> list[Path]:
    """Move every file from a staging folder into ``out_dir`` (same relative paths), each by atomic rename."""
    moved = []
    for src in sorted(p for p in stage.rglob("*") if p.is_file()):
        dst = out_dir / src.relative_to(stage)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dst)
        except OSError:  # different file systems: copy beside, then rename
            with atomic_path(dst) as tmp:
                shutil.copy2(src, tmp)
        moved.append(dst)
    return moved
