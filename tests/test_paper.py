"""The paper: every input it takes from the outputs exists, and it builds (from the smoke outputs).

These run after the notebook tests (tests/conftest.py orders them), so the smoke outputs nbval just wrote
are up to date and are reused rather than recomputed.
"""

from __future__ import annotations

import shutil

import pytest

from mmsheaf import paths
from mmsheaf.report.paper import PaperBuildError, build, latex_available, missing_inputs, paper_inputs
from mmsheaf.report.runner import run_all

needs_latex = pytest.mark.skipif(not latex_available(), reason="latexmk not installed (make setup installs it)")
pytestmark = pytest.mark.paper_build


@pytest.fixture(scope="session")
def smoke_outputs():
    """The smoke profile's outputs (notebooks run only when not already up to date)."""
    run_all("smoke", progress=False, log=lambda s: None)
    return paths.output_root("smoke")


@pytest.fixture
def paper_copy(tmp_path):
    dst = tmp_path / "paper"
    shutil.copytree(paths.paper_dir(), dst, ignore=shutil.ignore_patterns("*.pdf", "*.aux", "*.log"))
    return dst


def test_paper_inputs_are_found():
    inputs = {(kind, rel) for kind, rel, _ in paper_inputs()}
    assert ("includegraphics", "datasets_homophily_degree.pdf") in inputs
    assert ("input", "tables/node_datasets.tex") in inputs and ("input", "macros/00_datasets.tex") in inputs


def test_every_paper_input_is_produced_by_the_smoke_run(smoke_outputs):
    assert missing_inputs(smoke_outputs) == []


def test_a_figure_no_notebook_produces_is_named(paper_copy, smoke_outputs):
    sec = paper_copy / "sections" / "00_datasets.tex"
    sec.write_text(sec.read_text() + "\n\\includegraphics{\\figdir/never_made.pdf}\n")
    with pytest.raises(PaperBuildError, match=r"never_made\.pdf \(included by paper/sections/00_datasets\.tex\)"):
        build("smoke", figdir=smoke_outputs, paper_dir=paper_copy, out_pdf=paper_copy / "out.pdf")


@needs_latex
def test_a_latex_error_fails_the_build(paper_copy, smoke_outputs):
    intro = paper_copy / "sections" / "introduction.tex"
    intro.write_text(intro.read_text() + "\n\\thisMacroDoesNotExist\n")
    with pytest.raises(PaperBuildError, match="Undefined control sequence"):
        build("smoke", figdir=smoke_outputs, paper_dir=paper_copy, out_pdf=paper_copy / "out.pdf")


@needs_latex
def test_an_undefined_reference_fails_the_build(paper_copy, smoke_outputs):
    intro = paper_copy / "sections" / "introduction.tex"
    intro.write_text(intro.read_text() + "\nSee Section~\\ref{sec:nowhere} and \\citet{nobody2099}.\n")
    with pytest.raises(PaperBuildError, match="undefined"):
        build("smoke", figdir=smoke_outputs, paper_dir=paper_copy, out_pdf=paper_copy / "out.pdf")


@needs_latex
def test_paper_builds_from_smoke_outputs(smoke_outputs):
    pdf = build("smoke")
    assert pdf == paths.build_root("smoke") / "paper" / "main.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 50_000


def test_missing_latex_that_cannot_be_installed_is_a_clear_error(monkeypatch):
    import mmsheaf.report.paper as paper

    monkeypatch.setattr(paper, "latex_available", lambda: False)
    monkeypatch.setattr(paper.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(paper.shutil, "which", lambda tool: None)
    with pytest.raises(PaperBuildError, match=r"(?s)cannot be installed here.*apt-get install -y --no-install-recommends latexmk"):
        paper.ensure_latex(log=lambda s: None)
