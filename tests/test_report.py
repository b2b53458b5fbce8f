"""Outputs for the paper: figure, table, macros, provenance, atomic staging."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mmsheaf import report  # noqa: E402
from mmsheaf.report.provenance import sha256_file  # noqa: E402
from mmsheaf.report import Latex, Report, booktabs, format_number  # noqa: E402


@pytest.fixture
def rep(tmp_path, monkeypatch):
    monkeypatch.delenv(report.STAGE_ENV, raising=False)
    return Report("00_datasets", profile="smoke", params={"SEED": 3}, out_dir=tmp_path)


def test_figure_is_vector_pdf_with_provenance(rep, tmp_path):
    fig, ax = plt.subplots(figsize=report.figsize(0.5))
    ax.plot([0, 1], [1, 0])
    path = rep.figure(fig, "demo")
    plt.close(fig)
    assert path == tmp_path / "demo.pdf" and path.read_bytes()[:5] == b"%PDF-"
    prov = json.loads((tmp_path / "provenance" / "demo.pdf.json").read_text())
    for key in ("notebook", "profile", "parameters", "git_commit", "versions", "hardware", "wall_time_s", "sha256"):
        assert key in prov, key
    assert prov["notebook"] == "00_datasets" and prov["profile"] == "smoke" and prov["parameters"] == {"SEED": 3}
    assert prov["versions"]["torch"].startswith("2.13") and prov["sha256"] == sha256_file(path)


def test_table_writes_booktabs_and_the_same_numbers_as_csv(rep, tmp_path):
    df = pd.DataFrame({"dataset": ["Cora", "Tex_as"], "nodes": [2708, 183], "h": [0.81, 0.108]})
    rep.table(df, "demo", float_digits={"h": 3})
    tex = (tmp_path / "tables" / "demo.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"2{,}708" in tex and "0.108" in tex and r"Tex\_as" in tex
    assert "caption" not in tex
    back = pd.read_csv(tmp_path / "tables" / "demo.csv")
    pd.testing.assert_frame_equal(back, df)


def test_macros_and_manifest(rep, tmp_path):
    rep.macro("CoraNodes", 2708)
    rep.macro("Phrase", Latex(r"\emph{Cora}"))
    manifest = json.loads(rep.close().read_text())
    text = (tmp_path / "macros" / "00_datasets.tex").read_text()
    assert r"\newcommand{\CoraNodes}{2{,}708}" in text and r"\newcommand{\Phrase}{\emph{Cora}}" in text
    assert "macros/00_datasets.tex" in manifest["outputs"]
    with pytest.raises(ValueError, match="closed"):
        rep.macro("More", 1)


@pytest.mark.parametrize("bad", ["Cora2", "cora_nodes", "", "x y"])
def test_macro_names_must_be_latex_words(rep, bad):
    with pytest.raises(ValueError, match="letters only"):
        rep.macro(bad, 1)


def test_unknown_profile_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="Unknown profile"):
        Report("00_datasets", profile="full", out_dir=tmp_path)


def test_staging_folder_from_the_runner(tmp_path, monkeypatch):
    stage = tmp_path / "stage"
    monkeypatch.setenv(report.STAGE_ENV, str(stage))
    rep = Report("00_datasets", profile="smoke")
    rep.table(pd.DataFrame({"a": [1]}), "t")
    assert (stage / "tables" / "t.csv").is_file()
    out = tmp_path / "out"
    moved = report.move_outputs(stage, out)
    assert (out / "tables" / "t.csv").is_file() and len(moved) == 4  # csv, tex, two provenance records


def test_number_formatting():
    assert format_number(5278) == "5{,}278"
    assert format_number(0.3051, 2) == "0.31"
    assert format_number(float("nan")) == "--"
    assert format_number("a_b") == r"a\_b"
    assert r"\textbackslash{}" in report.latex_escape("\\")


def test_booktabs_column_format_from_dtypes():
    tex = booktabs(pd.DataFrame({"name": ["a"], "n": [1]}))
    assert tex.startswith(r"\begin{tabular}{lr}")


def test_display_tables_can_carry_latex_cells():
    df = pd.DataFrame({"m": [r"\textbf{1.0}$\pm$0.1"]})
    assert r"\textbf{1.0}$\pm$0.1 \\" in booktabs(df, escape=False)
    assert r"\textbackslash{}textbf" in booktabs(df)


def test_mean_std_is_the_one_formatter_of_both_table_styles():
    assert report.mean_std(66.47, 1.73) == "66.5$\\pm$1.7"
    assert report.mean_std(0.12345, 0.01, 4, spaced=True, bold=True) == "\\textbf{0.1235 $\\pm$ 0.0100}"
    assert report.mean_std(85.0, float("nan"), italic=True) == "\\textit{85.0}"
    assert report.mean_std(None, 1.0) == "--" and report.mean_std(float("nan"), 1.0) == "--"
    assert isinstance(report.mean_std(1.0, 0.1), Latex)


def test_number_formats_once_and_report_macros_writes_them(tmp_path, rep):
    assert report.number(1317) == "1{,}317" and report.number(86.26, 1) == "86.3" and report.number("a_b") == "a\\_b"
    rep.macros({"NumRuns": report.number(1317), "Phrase": Latex("Diag-NSD on \\emph{Texas}")})
    rep.close()
    text = (tmp_path / "macros" / "00_datasets.tex").read_text()
    assert "\\newcommand{\\NumRuns}{1{,}317}" in text and "\\newcommand{\\Phrase}{Diag-NSD on \\emph{Texas}}" in text


def test_git_commit_is_dirty_for_changed_code_not_for_changed_outputs(tmp_path, monkeypatch):
    import subprocess

    from mmsheaf.report.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "t.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.delenv("MMSHEAF_OUTPUT", raising=False)
    monkeypatch.setenv("MMSHEAF_ROOT", str(tmp_path))
    clean = git_commit(tmp_path)
    assert len(clean) == 40
    (tmp_path / "figures" / "t.csv").write_text("b\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"
