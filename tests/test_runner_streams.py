"""The report runner streams what a notebook prints, and what the processes it starts print (Dask workers'
progress bars), once each: the kernel's own capture of file-descriptor output would otherwise echo a child
process's lines to the terminal beside the copy the runner streams from the notebook."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmsheaf.report.notebooks import discover
from mmsheaf.report.runner import NotebookFailed, run_notebook

SOURCE = """# %%
import subprocess, sys
print("KERNEL-MARK", flush=True)
subprocess.run([sys.executable, "-c", "import sys; print('CHILD-MARK', file=sys.stderr, flush=True)"], check=True)
"""


def test_a_child_process_line_reaches_the_terminal_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capfd: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "00_streams.py").write_text(SOURCE)
    monkeypatch.setenv("MMSHEAF_ROOT", str(root))
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MMSHEAF_OUTPUT", str(tmp_path / "out"))
    (nb,) = discover(root / "notebooks")
    # ipykernel turns its capture of file-descriptor output off under pytest; the kernel must run as it does
    # under `make report`
    hidden = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        with pytest.raises(NotebookFailed, match="without calling Report.close"):  # it writes no outputs
            run_notebook(nb, "smoke", out_dir=tmp_path / "out", force=True, progress=True)
    finally:
        if hidden is not None:
            os.environ["PYTEST_CURRENT_TEST"] = hidden
    out, err = capfd.readouterr()
    assert (out + err).count("KERNEL-MARK") == 1
    assert (out + err).count("CHILD-MARK") == 1
