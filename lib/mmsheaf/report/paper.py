r"""The thesis PDF: check that every file it takes from the outputs exists, then build it with latexmk.

The paper (``paper/main.tex`` and ``paper/sections/*.tex``) takes every figure, table and macro file from one
folder named by the LaTeX macro ``\figdir``: ``../figures`` (the committed paper-profile outputs) by default,
``../build/smoke`` for the smoke profile. :func:`build` passes it on the latexmk command line, so the same
sources build from either profile.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .. import paths

_INCLUDE = re.compile(r"\\(includegraphics|input|include)\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}")


class PaperBuildError(RuntimeError):
    """The paper cannot be built: a missing input or a LaTeX error (named in the message)."""


def _strip_comments(text: str) -> str:
    return "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in text.splitlines())


def paper_inputs(paper_dir: Path | None = None) -> list[tuple[str, str, str]]:
    r"""Files the paper takes from ``\figdir``: ``(kind, path relative to figdir, including .tex file)``.

    Follows ``\input``/``\include`` of the paper's own ``.tex`` files (e.g. ``sections/00_datasets``).
    """
    paper_dir = paper_dir or paths.paper_dir()
    found: list[tuple[str, str, str]] = []
    seen: set[Path] = set()

    def visit(tex: Path) -> None:
        if tex in seen or not tex.is_file():
            return
        seen.add(tex)
        for kind, target in _INCLUDE.findall(_strip_comments(tex.read_text(encoding="utf-8"))):
            target = target.strip()
            if target.startswith(r"\figdir/"):
                rel = target[len(r"\figdir/"):]
                if kind != "includegraphics" and not rel.endswith(".tex"):
                    rel += ".tex"
                found.append((kind, rel, str(tex.relative_to(paper_dir))))
            elif kind != "includegraphics":
                own = paper_dir / (target if target.endswith(".tex") else target + ".tex")
                visit(own)

    visit(paper_dir / "main.tex")
    return found


def missing_inputs(figdir: Path, paper_dir: Path | None = None) -> list[str]:
    """Human-readable lines for every paper input that ``figdir`` lacks (empty when all exist)."""
    return [
        f"{rel} (included by paper/{by}) is not in {figdir}"
        for kind, rel, by in paper_inputs(paper_dir)
        if not (figdir / rel).is_file()
    ]


LATEX_DEBIAN_PACKAGES: tuple[str, ...] = (
    "latexmk", "texlive-latex-base", "texlive-latex-recommended", "texlive-science", "lmodern",
)
"""Debian packages that give everything the paper uses (latexmk, pdflatex, BibTeX, natbib, booktabs, ...)."""

LATEX_STYLES: tuple[str, ...] = (
    "booktabs.sty", "natbib.sty", "lmodern.sty", "siunitx.sty", "microtype.sty", "hyperref.sty", "geometry.sty",
)


def latex_available() -> bool:
    """True when latexmk, pdflatex, bibtex and every package the paper uses are installed."""
    if not all(shutil.which(tool) for tool in ("latexmk", "pdflatex", "bibtex", "kpsewhich")):
        return False
    found = subprocess.run(["kpsewhich", *LATEX_STYLES], capture_output=True, text=True).stdout.split()
    return len(found) == len(LATEX_STYLES)


def ensure_latex(log=print) -> None:
    """Install the Debian LaTeX packages with apt-get when something is missing.

    Raises:
        PaperBuildError: they are missing and cannot be installed here (no apt-get, not root and no
            passwordless sudo); the message says what to install by hand.
    """
    if latex_available():
        return
    pkgs = " ".join(LATEX_DEBIAN_PACKAGES)
    sudo: list[str] | None = []
    if os.geteuid() != 0:
        ok = shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
        sudo = ["sudo", "-n"] if ok else None
    if sudo is None or not shutil.which("apt-get"):
        raise PaperBuildError(
            "LaTeX is missing and cannot be installed here (needs apt-get and root or passwordless sudo).\n"
            f"Install it by hand, then run the command again:\n  Debian/Ubuntu: sudo apt-get install -y "
            f"--no-install-recommends {pkgs}\n  elsewhere: a TeX distribution with latexmk, pdflatex, bibtex and "
            + ", ".join(s.removesuffix(".sty") for s in LATEX_STYLES)
        )
    log(f"LaTeX missing: installing Debian packages {pkgs} (about half a minute) ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *LATEX_DEBIAN_PACKAGES]):
        proc = subprocess.run(sudo + cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise PaperBuildError(f"`{' '.join(cmd)}` failed:\n{proc.stderr[-1500:]}")
    if not latex_available():
        raise PaperBuildError(f"LaTeX is still incomplete after `apt-get install {pkgs}`")
    log("LaTeX ready.")


def _latex_errors(log: str) -> list[str]:
    """Hard errors (``!`` lines, file:line:error lines) first; else undefined references and citations."""
    lines = log.splitlines()
    hard = [ln for ln in lines if ln.startswith("!") or re.match(r"^\S+\.tex:\d+: ", ln)]
    if hard:
        return hard
    soft = [ln.strip() for ln in lines if re.search(r"(Reference|Citation) `[^']*' .*undefined", ln)]
    if "There were undefined references" in log or "There were undefined citations" in log:
        soft.append("LaTeX Warning: There were undefined references or citations.")
    return soft


def build(
    profile: str,
    figdir: Path | None = None,
    paper_dir: Path | None = None,
    out_pdf: Path | None = None,
    quiet: bool = True,
) -> Path:
    """Build the paper from a profile's outputs and return the PDF's path.

    Args:
        profile: ``"paper"`` (outputs in ``figures/``, PDF at ``paper/main.pdf``) or ``"smoke"``
            (outputs in ``build/smoke/``, PDF at ``build/smoke/paper/main.pdf``).
        figdir: override of the outputs folder.
        paper_dir: override of the LaTeX sources folder (tests build broken copies).
        out_pdf: where the PDF goes.

    Raises:
        PaperBuildError: an input is missing, latexmk fails, or references/citations stay undefined.
    """
    paths.check_profile(profile)
    paper_dir = Path(paper_dir or paths.paper_dir()).resolve()
    figdir = Path(figdir or paths.output_root(profile)).resolve()
    if out_pdf is None:
        out_pdf = paper_dir / "main.pdf" if profile == "paper" else paths.build_root(profile) / "paper" / "main.pdf"
    missing = missing_inputs(figdir, paper_dir)
    if missing:
        raise PaperBuildError(
            "the paper includes outputs that no notebook produced:\n  "
            + "\n  ".join(missing)
            + f"\n(run `make report PROFILE={profile}` to produce them)"
        )
    if not latex_available():
        raise PaperBuildError(
            f"LaTeX is incomplete: install Debian's {' '.join(LATEX_DEBIAN_PACKAGES)} (`make latex` does this)"
        )
    aux = paths.build_root(profile) / "latex" if paper_dir == paths.paper_dir().resolve() else out_pdf.parent / "latex"
    aux.mkdir(parents=True, exist_ok=True)
    cmd = [
        "latexmk", "-pdf", "-bibtex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
        f"-outdir={aux}", f"-usepretex=\\def\\figdir{{{figdir.as_posix()}}}", "main.tex",
    ]
    env = dict(os.environ, BIBINPUTS=f"{paper_dir}{os.pathsep}", TEXINPUTS=f"{paper_dir}{os.pathsep}")
    proc = subprocess.run(cmd, cwd=paper_dir, capture_output=True, text=True, env=env)
    log_file = aux / "main.log"
    log = log_file.read_text(errors="replace") if log_file.is_file() else ""
    errors = _latex_errors(log)
    if proc.returncode != 0 or errors:
        detail = "\n  ".join(errors[:15]) or (proc.stdout + proc.stderr)[-2000:]
        raise PaperBuildError(f"LaTeX build of {paper_dir / 'main.tex'} failed (log: {log_file}):\n  {detail}")
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(aux / "main.pdf", out_pdf)
    return out_pdf
