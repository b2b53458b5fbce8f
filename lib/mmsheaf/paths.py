"""Where things live: the only module that knows the project's folders.

Notebooks run from different working directories (nbval in ``notebooks/``, papermill wherever it is called,
Colab in ``/content``), so no path in the project is relative to the working directory: every folder comes
from here.

Settings (environment variables, each with a default inside the repository):

=====================  ==============================  ====================================================
variable               default                         what lives there
=====================  ==============================  ====================================================
``MMSHEAF_ROOT``       the repository of this package  ``notebooks/``, ``paper/``, ``figures/``, ``build/``
``MMSHEAF_DATA``       ``<root>/data``                 raw datasets in PyG's layouts (+ PyG's processed/)
``MMSHEAF_CACHE``      ``<root>/build/cache``          embeddings and per-run results caches
``MMSHEAF_OUTPUT``     per profile (below)             where a profile's figures, tables, macros are written
=====================  ==============================  ====================================================

Profiles: ``paper`` writes to ``<root>/figures`` (committed); ``smoke`` writes the same file names to
``<root>/build/smoke`` (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILES: tuple[str, ...] = ("smoke", "paper")
"""The run profiles: ``smoke`` (minutes on 2 CPU cores, for tests) and ``paper`` (the real protocol)."""

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find_root() -> Path:
    env = os.environ.get("MMSHEAF_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    # Editable install / source checkout: lib/mmsheaf/paths.py -> repository root two levels up.
    candidate = _PACKAGE_DIR.parents[1]
    if (candidate / "pyproject.toml").is_file() and (candidate / "lib" / "mmsheaf").is_dir():
        return candidate
    # Installed as a plain package: fall back to the working directory, as notebooks in a clone would be.
    return Path.cwd().resolve()


def repo_root() -> Path:
    """The repository root (``MMSHEAF_ROOT`` overrides)."""
    return _find_root()


def check_profile(profile: str) -> str:
    """Return ``profile`` if known, else raise a ``ValueError`` that lists the known ones."""
    if profile not in PROFILES:
        raise ValueError(
            f"Unknown profile {profile!r}: choose one of {', '.join(PROFILES)} "
            "(e.g. `make report PROFILE=smoke`)."
        )
    return profile


def data_root() -> Path:
    """The data folder (``MMSHEAF_DATA``, default ``<root>/data``). It may not exist yet."""
    env = os.environ.get("MMSHEAF_DATA")
    return Path(env).expanduser().resolve() if env else repo_root() / "data"


def cache_root() -> Path:
    """Cache folder for embeddings and results (``MMSHEAF_CACHE``, default ``<root>/build/cache``)."""
    env = os.environ.get("MMSHEAF_CACHE")
    path = Path(env).expanduser().resolve() if env else repo_root() / "build" / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_root(profile: str) -> Path:
    """Where a profile's outputs go: ``figures/`` for ``paper``, ``build/smoke/`` for ``smoke``.

    ``MMSHEAF_OUTPUT`` overrides both (tests use it to write into a temporary folder).
    """
    check_profile(profile)
    env = os.environ.get("MMSHEAF_OUTPUT")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    return root / "figures" if profile == "paper" else root / "build" / profile


def build_root(profile: str) -> Path:
    """Scratch space of a profile (executed notebooks, LaTeX aux files): ``build/<profile>``."""
    return repo_root() / "build" / check_profile(profile)


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def params_file(notebook: str, profile: str) -> Path:
    """The parameters file of a notebook in a profile: ``notebooks/params/<notebook>.<profile>.yaml``."""
    return notebooks_dir() / "params" / f"{notebook}.{check_profile(profile)}.yaml"


def paper_dir() -> Path:
    return repo_root() / "paper"


def library_dir() -> Path:
    """The package sources (an input of every notebook: a change re-runs them)."""
    return _PACKAGE_DIR
