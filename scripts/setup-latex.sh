#!/usr/bin/env bash
# Make sure LaTeX can build the paper: latexmk, pdflatex, BibTeX and the packages main.tex uses.
# Installs Debian's packages with apt-get when something is missing; says clearly what to do when it cannot.
set -euo pipefail
PKGS="latexmk texlive-latex-base texlive-latex-recommended texlive-science lmodern"
have_all() {
  command -v latexmk >/dev/null && command -v pdflatex >/dev/null && command -v bibtex >/dev/null || return 1
  for sty in booktabs.sty natbib.sty lmodern.sty siunitx.sty microtype.sty hyperref.sty geometry.sty; do
    kpsewhich "$sty" >/dev/null || return 1
  done
}
have_all && exit 0
echo "LaTeX packages missing: installing Debian packages: $PKGS"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
if [ "$SUDO" = none ] || ! command -v apt-get >/dev/null; then
  cat >&2 <<MSG
error: cannot install LaTeX here (need apt-get and root or passwordless sudo).
Install these by hand, then run the command again:
  Debian/Ubuntu:  sudo apt-get install -y --no-install-recommends $PKGS
  other systems:  a TeX distribution with latexmk, pdflatex, bibtex, booktabs, natbib, lmodern, siunitx, microtype
MSG
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
have_all || { echo "error: LaTeX still incomplete after apt-get install $PKGS" >&2; exit 1; }
echo "LaTeX ready."
