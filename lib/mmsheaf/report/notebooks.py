"""The report's notebooks: discovery, parameters per profile, and the jupytext pairing check.

Each notebook is a pair in ``notebooks/``: ``NN_topic.py`` (jupytext percent format, the source of truth) and
``NN_topic.ipynb`` (same cells, outputs stripped, for Colab). Parameters of the ``paper`` profile live in
``notebooks/params/NN_topic.paper.yaml``; the ``smoke`` profile is the parameters cell's own defaults
(optionally overridden by ``NN_topic.smoke.yaml``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import paths

NOTEBOOK_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")


@dataclass(frozen=True)
class Notebook:
    """A notebook pair.

    Args:
        name: the stem, e.g. ``"00_datasets"``.
        folder: the folder holding ``<name>.py`` and ``<name>.ipynb``.
    """

    name: str
    folder: Path

    @property
    def py(self) -> Path:
        return self.folder / f"{self.name}.py"

    @property
    def ipynb(self) -> Path:
        return self.folder / f"{self.name}.ipynb"

    def params_file(self, profile: str) -> Path:
        return self.folder / "params" / f"{self.name}.{paths.check_profile(profile)}.yaml"

    def parameters(self, profile: str) -> dict[str, Any]:
        """The parameters papermill injects in ``profile`` (always including ``PROFILE``)."""
        params: dict[str, Any] = {}
        f = self.params_file(profile)
        if f.is_file():
            loaded = yaml.safe_load(f.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{f} must hold a mapping of parameter names to values, got {type(loaded).__name__}")
            params.update(loaded)
        elif profile != "smoke":
            raise ValueError(
                f"notebook {self.name} has no parameters for profile {profile!r}: write {f} "
                "(the smoke profile uses the notebook's parameters cell)"
            )
        params["PROFILE"] = profile
        return params

    def defaults(self) -> dict[str, Any]:
        """The values of the notebook's ``parameters`` cell (literals only, by the notebooks' convention)."""
        source = self.py.read_text(encoding="utf-8")
        if '# %% tags=["parameters"]' not in source:
            raise ValueError(f"{self.py} has no cell tagged parameters: add one holding the smoke defaults")
        cell = source.split('# %% tags=["parameters"]', 1)[1].split("# %%", 1)[0]
        return {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse(cell).body}

    def resolved_parameters(self, profile: str) -> dict[str, Any]:
        """What a run in ``profile`` sees: :meth:`defaults` with :meth:`parameters` injected over them."""
        return {**self.defaults(), **self.parameters(profile)}


def discover(folder: str | Path | None = None, names: list[str] | None = None) -> list[Notebook]:
    """The notebooks of a folder in run order (by their number), optionally only ``names``.

    Raises:
        ValueError: a requested name that is not a notebook of the folder.
    """
    folder = Path(folder) if folder else paths.notebooks_dir()
    found = sorted(p.stem for p in folder.glob("*.py") if NOTEBOOK_PATTERN.match(p.stem))
    if names:
        unknown = [n for n in names if n not in found]
        if unknown:
            raise ValueError(f"unknown notebook(s) {unknown}: choose from {found}")
        found = [n for n in found if n in names]
    return [Notebook(n, folder) for n in found]


# --------------------------------------------------------------------------------------------- pairing
def _cells(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    import jupytext

    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), tuple(sorted(c.metadata.get("tags", [])))) for c in nb.cells]


def pairing_problems(nb: Notebook) -> list[str]:
    """Why a pair is out of sync (empty when it is in sync).

    Checks that both files exist, that they hold the same cells (type, source and tags, as jupytext reads
    them), and that the ``.ipynb`` carries no outputs or execution counts.
    """
    problems: list[str] = []
    for f in (nb.py, nb.ipynb):
        if not f.is_file():
            problems.append(f"{nb.name}: {f.name} is missing (run `make sync`)")
    if problems:
        return problems
    py_cells, nb_cells = _cells(nb.py), _cells(nb.ipynb)
    if len(py_cells) != len(nb_cells):
        problems.append(f"{nb.name}: {nb.py.name} has {len(py_cells)} cells, {nb.ipynb.name} has {len(nb_cells)}")
    for i, (a, b) in enumerate(zip(py_cells, nb_cells)):
        if a != b:
            what = "type" if a[0] != b[0] else ("tags" if a[2] != b[2] else "source")
            first = a[1].splitlines()[0][:60] if a[1] else ""
            problems.append(f"{nb.name}: cell {i} ({first!r}) differs in {what} between .py and .ipynb")
            break
    import nbformat

    raw = nbformat.read(nb.ipynb, as_version=4)
    dirty = [i for i, c in enumerate(raw.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    if dirty:
        problems.append(f"{nb.name}: {nb.ipynb.name} carries outputs in cells {dirty[:5]} (strip them: `make sync`)")
    if problems:
        problems[-1] += " — fix with `make sync` (jupytext --sync) after editing the .py"
    return problems


def check_pairs(notebooks: list[Notebook]) -> list[str]:
    return [p for nb in notebooks for p in pairing_problems(nb)]


KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def to_notebook(nb: Notebook):  # -> nbformat.NotebookNode
    """The ``.py`` source as a notebook: stable cell ids, no outputs, a Python 3 kernelspec."""
    import jupytext

    notebook = jupytext.read(nb.py)
    for i, cell in enumerate(notebook.cells):
        cell.id = f"c{i:03d}"  # stable ids: re-syncing an unchanged notebook changes nothing
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def sync(nb: Notebook) -> None:
    """Write ``.ipynb`` from ``.py`` (the source of truth), outputs stripped."""
    import jupytext

    jupytext.write(to_notebook(nb), nb.ipynb, fmt="ipynb")
