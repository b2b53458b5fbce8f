"""The notebooks as a report: conventions, pairing, papermill parameter injection, failures named.

nbval itself runs every stored ``.ipynb`` with its smoke defaults (``make test`` passes ``--nbval-lax``);
these tests check what nbval cannot: that a failure is named and leaves earlier outputs alone, that a pair
out of sync is caught, that papermill's injected parameters reach the outputs, and that re-runs are skipped
only while the inputs are unchanged.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jupytext
import pandas as pd
import pytest

from mmsheaf import paths
from mmsheaf.report.notebooks import Notebook, discover, pairing_problems, sync
from mmsheaf.report.runner import NotebookFailed, is_up_to_date, run_all, run_notebook

NOTEBOOKS = discover()
IDS = [nb.name for nb in NOTEBOOKS]
FORBIDDEN = (".backward(", "optimizer.step", "optim.Adam", "nn.Module", "torch.no_grad")


def test_there_are_notebooks():
    assert "00_datasets" in IDS


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_pair_in_sync(nb):
    assert pairing_problems(nb) == []


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_notebook_conventions(nb):
    cells = jupytext.read(nb.py).cells
    assert cells[0].cell_type == "markdown" and "Produces:" in cells[0].source, "first cell: title + Produces:"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    colab = [i for i, c in enumerate(cells) if c.cell_type == "code" and "google.colab" in c.source]
    assert colab and colab[0] < tagged[0], "a Colab install cell before the parameters"

    params = {}
    for stmt in ast.parse(cells[tagged[0]].source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, "parameters cell: plain assignments only"
        params[stmt.targets[0].id] = ast.literal_eval(stmt.value)  # literals only (nbval/Colab run it as is)
    assert params.get("PROFILE") == "smoke", "parameters default to the smoke profile"
    paper = nb.parameters("paper")
    unknown = set(paper) - set(params)
    assert not unknown, f"paper params {unknown} are not parameters of the notebook"

    code = "\n".join(c.source for c in cells if c.cell_type == "code" and "google.colab" not in c.source)
    tree = ast.parse(code)
    assert not any(isinstance(n, ast.ClassDef) for n in ast.walk(tree)), "no classes in notebooks: put them in lib/"
    assert not [f for f in FORBIDDEN if f in code], "no model or training code in notebooks"
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in literals if s.startswith(("/", "../", "./")) or "figures/" in s], "paths via mmsheaf.paths"
    assert "Report(" in code and ".close()" in code, "outputs through mmsheaf.report.outputs.Report"


def _copy_pair(nb: Notebook, folder: Path) -> Notebook:
    folder.mkdir(parents=True, exist_ok=True)
    for f in (nb.py, nb.ipynb):
        shutil.copy2(f, folder / f.name)
    return Notebook(nb.name, folder)


def test_out_of_sync_pair_is_named(tmp_path):
    copy = _copy_pair(NOTEBOOKS[0], tmp_path / "notebooks")
    assert pairing_problems(copy) == []
    copy.py.write_text(copy.py.read_text() + "\n# %%\nprint('edited in the .py only')\n")
    problems = pairing_problems(copy)
    assert problems and all(p.startswith(copy.name) for p in problems)
    proc = subprocess.run(
        [sys.executable, "-m", "mmsheaf", "check-pairs", "--folder", str(copy.folder)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and copy.name in proc.stderr


def test_outputs_in_ipynb_are_caught(tmp_path):
    copy = _copy_pair(NOTEBOOKS[0], tmp_path / "notebooks")
    raw = json.loads(copy.ipynb.read_text())
    code = next(c for c in raw["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 1
    copy.ipynb.write_text(json.dumps(raw))
    assert any("outputs" in p for p in pairing_problems(copy))


BROKEN = """\
# %% [markdown]
# # 99 broken · Produces: nothing (it fails on purpose)

# %% tags=["parameters"]
PROFILE = "smoke"

# %%
import pandas as pd
from mmsheaf.report import Report

rep = Report("99_broken", PROFILE)
rep.table(pd.DataFrame({"a": [2]}), "broken_table")

# %%
raise RuntimeError("deliberate failure")
"""

OK = """\
# %% [markdown]
# # 98 ok · Produces: tables/ok_table

# %% tags=["parameters"]
PROFILE = "smoke"
VALUE = 1

# %%
import pandas as pd
from mmsheaf.report import Report

rep = Report("98_ok", PROFILE, params={"VALUE": VALUE})
rep.table(pd.DataFrame({"value": [VALUE]}), "ok_table")
rep.close()
"""


def _write_notebook(folder: Path, name: str, source: str) -> Notebook:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    nb = Notebook(name, folder)
    sync(nb)
    return nb


@pytest.mark.slow
def test_failing_notebook_is_named_and_leaves_outputs_untouched(tmp_path):
    folder = tmp_path / "notebooks"
    _write_notebook(folder, "99_broken", BROKEN)
    out = tmp_path / "out"
    old = out / "tables" / "broken_table.csv"
    old.parent.mkdir(parents=True)
    old.write_text("a\n1\n")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(NotebookFailed, match=r"99_broken.*RuntimeError.*deliberate failure"):
        run_all("smoke", folder=folder, out_dir=out, progress=False, log=lambda s: None)
    assert old.read_text() == "a\n1\n", "a failed run must not replace earlier outputs"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before, "nor add any"


@pytest.mark.slow
def test_report_command_exits_nonzero_naming_the_notebook(tmp_path):
    root = tmp_path / "repo"
    _write_notebook(root / "notebooks", "99_broken", BROKEN)
    env = dict(os.environ, MMSHEAF_ROOT=str(root), MMSHEAF_OUTPUT=str(tmp_path / "out"))
    proc = subprocess.run(
        [sys.executable, "-m", "mmsheaf", "report", "--profile", "smoke", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 1
    assert "notebook 99_broken failed" in proc.stderr and "deliberate failure" in proc.stderr


@pytest.mark.slow
def test_nbval_fails_naming_the_notebook(tmp_path):
    """What `make test` runs over notebooks/ fails, and names the notebook, when a notebook raises."""
    nb = _write_notebook(tmp_path / "notebooks", "99_broken", BROKEN)
    env = dict(os.environ, MMSHEAF_OUTPUT=str(tmp_path / "out"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-o", "addopts=", str(nb.ipynb)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode != 0
    assert "99_broken.ipynb" in proc.stdout and "deliberate failure" in proc.stdout


@pytest.mark.slow
def test_up_to_date_notebooks_are_skipped_until_an_input_changes(tmp_path):
    folder = tmp_path / "notebooks"
    nb = _write_notebook(folder, "98_ok", OK)
    (folder / "params").mkdir()
    nb.params_file("paper").write_text("VALUE: 2\n")
    out = tmp_path / "out"
    quiet = dict(folder=folder, out_dir=out, progress=False, log=lambda s: None)
    assert [r.status for r in run_all("paper", **quiet)] == ["ran"]
    assert pd.read_csv(out / "tables" / "ok_table.csv")["value"].tolist() == [2]
    assert [r.status for r in run_all("paper", **quiet)] == ["skipped"]
    nb.params_file("paper").write_text("VALUE: 3\n")
    assert [r.status for r in run_all("paper", **quiet)] == ["ran"]
    assert pd.read_csv(out / "tables" / "ok_table.csv")["value"].tolist() == [3]
    (out / "tables" / "ok_table.csv").unlink()
    assert [r.status for r in run_all("paper", **quiet)] == ["ran"], "a missing output forces a re-run"

    # Library changes: only the modules the notebook imported count.
    manifest = json.loads((out / "provenance" / "98_ok.manifest.json").read_text())
    assert "report/outputs.py" in manifest["library_files"] and "data/synthetic.py" not in manifest["library_files"]
    lib_copy = tmp_path / "lib"
    shutil.copytree(paths.library_dir(), lib_copy, ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "library_dir", lambda: lib_copy)
        assert is_up_to_date(nb, "paper", out)
        (lib_copy / "data" / "synthetic.py").write_text("# an unrelated change\n")
        assert is_up_to_date(nb, "paper", out), "a module the notebook does not import is not its input"
        (lib_copy / "report" / "outputs.py").write_text((lib_copy / "report" / "outputs.py").read_text() + "\n# changed\n")
        assert not is_up_to_date(nb, "paper", out), "a module it imports is"


EDITS_ITS_PARAMS = """
# %% tags=["parameters"]
PROFILE = "smoke"
VALUE = 1

# %%
import os
from pathlib import Path

import pandas as pd
from mmsheaf.report import Report

Path(os.environ["EDIT_WHILE_RUNNING"]).write_text("VALUE: 9\\n")  # someone edits the params mid-run
rep = Report("97_edited", PROFILE, params={"VALUE": VALUE})
rep.table(pd.DataFrame({"value": [VALUE]}), "edited_table")
rep.close()
"""


@pytest.mark.slow
def test_inputs_edited_during_a_run_make_it_out_of_date(tmp_path, monkeypatch):
    """The manifest hashes the inputs the run used (read at its start), not those found when it ends."""
    folder = tmp_path / "notebooks"
    nb = _write_notebook(folder, "97_edited", EDITS_ITS_PARAMS)
    (folder / "params").mkdir()
    nb.params_file("paper").write_text("VALUE: 2\n")
    monkeypatch.setenv("EDIT_WHILE_RUNNING", str(nb.params_file("paper")))
    out = tmp_path / "out"
    assert run_notebook(nb, "paper", out_dir=out, progress=False).status == "ran"
    assert pd.read_csv(out / "tables" / "edited_table.csv")["value"].tolist() == [2]
    assert not is_up_to_date(nb, "paper", out), "the run used VALUE 2; the params now say 9"


@pytest.mark.slow
def test_papermill_injects_parameters(tmp_path):
    """One real notebook run with injected parameters: they reach the outputs and the provenance."""
    out = tmp_path / "out"
    nb = Notebook("00_datasets", paths.notebooks_dir())
    res = run_notebook(nb, "smoke", out_dir=out, progress=False, extra_params={"GRAPHS": ["csbm"], "TABLES": ["mnist5k"]})
    assert res.status == "ran"
    table = pd.read_csv(out / "tables" / "node_datasets.csv")
    assert table["name"].tolist() == ["csbm"]
    prov = json.loads((out / "provenance" / "tables__node_datasets.csv.json").read_text())
    assert prov["parameters"]["GRAPHS"] == ["csbm"] and prov["profile"] == "smoke"
    executed = jupytext.read(paths.build_root("smoke") / "executed" / "00_datasets.ipynb")
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'GRAPHS = ["csbm"]' in injected[0].source


def test_unknown_profile_and_notebook_are_clear_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mmsheaf", "report", "--profile", "fast"], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Unknown profile 'fast'" in proc.stderr
    with pytest.raises(ValueError, match="unknown notebook"):
        run_all("smoke", names=["42_nothing"])
    with pytest.raises(ValueError, match="no parameters for profile 'paper'"):
        Notebook("98_ok", tmp_path).parameters("paper")


def test_resolved_parameters_are_the_cell_defaults_with_the_profile_injected(tmp_path):
    folder = tmp_path / "notebooks"
    nb = _write_notebook(folder, "97_params", EDITS_ITS_PARAMS)
    (folder / "params").mkdir()
    nb.params_file("paper").write_text("VALUE: 5\n")
    assert nb.defaults() == {"PROFILE": "smoke", "VALUE": 1}
    assert nb.resolved_parameters("paper") == {"PROFILE": "paper", "VALUE": 5}
    assert nb.resolved_parameters("smoke") == {"PROFILE": "smoke", "VALUE": 1}
