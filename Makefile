# mmsheaf — the README's two commands live here:
#   make report   run every notebook (paper profile) with papermill, write figures/, build paper/main.pdf
#   make test     unit tests, notebook tests (nbval, papermill, pairing) and the paper build from smoke outputs
# Both set themselves up on a fresh machine (virtual environment, pip, LaTeX and PostgreSQL via apt-get, data).

PROFILE     ?= paper
PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
# A folder laid out like shared/data; the one beside the clone is used when present. Empty: PyG downloads.
DATA_MIRROR ?= $(wildcard ../shared/data)
NOTEBOOKS   ?=
FORCE       ?=
# Worker processes of a dask.distributed LocalCluster for the runs (1: in this process)
WORKERS     ?= 1
PYTEST_ARGS ?=

.PHONY: report test setup venv latex postgres data sync check-pairs paper clean help

help:
	@sed -n '2,4p' Makefile

report: setup data
	MMSHEAF_WORKERS=$(WORKERS) $(PY) -m mmsheaf report --profile $(PROFILE) $(if $(FORCE),--force) $(NOTEBOOKS)

test: setup postgres data
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=900 $(PYTEST_ARGS)

setup: venv latex

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is needed"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	@touch $@

latex: venv
	@$(PY) -m mmsheaf latex

postgres: venv
	@$(PY) -m mmsheaf postgres

data: venv
	$(PY) -m mmsheaf data --mirror "$(DATA_MIRROR)"

sync: venv
	$(PY) -m mmsheaf sync

check-pairs: venv
	$(PY) -m mmsheaf check-pairs

paper: setup
	$(PY) -m mmsheaf paper --profile $(PROFILE)

clean:
	rm -rf build paper/main.pdf
