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
inputs, which :mod:`mmsheaf.runner` uses to skip notebooks that are up to date.

Atomic writes: every file is written to a temporary name and renamed into place. When the runner executes a
notebook it sets ``MMSHEAF_STAGE_DIR``; the report then writes into that staging folder, and the runner moves
the files into ``<out>`` only after the whole notebook succeeded, so a failed run leaves earlier outputs as
they were.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from . import paths
from .atomic import atomic_path, write_text_atomic

STAGE_ENV = "MMSHEAF_STAGE_DIR"
"""Environment variable naming the staging folder (set by :mod:`mmsheaf.runner`)."""

PAPER_WIDTH_IN = 6.3
"""Text width of the thesis in inches (A4, 2.5 cm margins: 16 cm); figures are made at this width."""

GOLDEN = (math.sqrt(5) - 1) / 2

TRACKED_PACKAGES: tuple[str, ...] = (
    "torch", "torch-geometric", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib", "seaborn",
    "transformers", "sentence-transformers", "pytorch-metric-learning", "torchmetrics", "pytorch-frame",
    "optuna", "papermill", "jupytext",
)

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


# ------------------------------------------------------------------------------------------ provenance
def git_commit(root: Path | None = None) -> str:
    """The repository's commit, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    root = root or paths.repo_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            info["memory_gb"] = round(kb / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - hardware info is best effort
        pass
    return info


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return repr(obj)


# ------------------------------------------------------------------------------------------ formatting
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
        write_text_atomic(prov, json.dumps(record, indent=2, default=_json_default) + "\n")
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
        (:mod:`mmsheaf.ledger`): the raw per-run results behind the tables, from which a later run resumes,
        and the journals of the Optuna ``studies`` (by name), so that the rerun replays their trials."""
        from .ledger import write_ledger  # local import: the ledger module imports this one

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

    def close(self) -> Path:
        """Write the macros file and the manifest; returns the manifest's path."""
        if self.closed:
            raise ValueError("Report.close() was already called")
        rel = f"macros/{self.notebook}.tex"
        lines = [f"% Numbers quoted in the paper, written by notebook {self.notebook} ({self.profile} profile)."]
        lines += [f"\\newcommand{{\\{k}}}{{{v}}}" for k, v in sorted(self._macros.items())]
        write_text_atomic(self.out_dir / rel, "\n".join(lines) + "\n")
        self._record(rel, macros=sorted(self._macros))
        from .notebooks import Notebook
        from .runner import input_hash, library_files_in_use  # local import: the runner imports this module

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
        target = self.out_dir / "provenance" / f"{self.notebook}.manifest.json"
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


__all__ = [
    "Report", "Latex", "set_style", "figsize", "booktabs", "format_number", "latex_escape", "git_commit",
    "package_versions", "hardware", "move_outputs", "PAPER_WIDTH_IN",
    "STAGE_ENV",
]
