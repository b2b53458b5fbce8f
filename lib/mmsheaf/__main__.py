"""Command line of the report: ``python -m mmsheaf {report,paper,data,latex,postgres,sync,check-pairs,runs}``.

The Makefile's targets call these; each prints what it does and exits non-zero with a message naming what
failed (a notebook, a pair out of sync, a missing paper input, a LaTeX error, a missing dataset).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import paths


def _cmd_report(args: argparse.Namespace) -> int:
    from .report.paper import build
    from .report.runner import run_all

    t0 = time.perf_counter()
    run_all(args.profile, names=args.notebooks or None, force=args.force, progress=not args.no_progress)
    if args.no_paper:
        return 0
    print(f"building the paper from the {args.profile} outputs ...", flush=True)
    pdf = build(args.profile)
    print(f"\nreport done in {time.perf_counter() - t0:.0f} s. The PDF is at:\n  {pdf}")
    return 0


def _cmd_paper(args: argparse.Namespace) -> int:
    from .report.paper import build

    pdf = build(args.profile)
    print(f"The PDF is at:\n  {pdf}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from .data.fetch import fill_data_root

    root = paths.data_root()
    if not args.mirror:
        root.mkdir(parents=True, exist_ok=True)
        print(f"no mirror named: datasets missing from {root} are downloaded by PyG on first use")
        return 0
    copied = fill_data_root(args.mirror, root)
    print(f"data: {len(copied)} files copied from {args.mirror} into {root}" if copied else f"data: {root} is up to date")
    return 0


def _cmd_latex(args: argparse.Namespace) -> int:
    from .report.paper import ensure_latex

    ensure_latex()
    return 0


def _cmd_postgres(args: argparse.Namespace) -> int:
    from .runs.postgres import ensure_postgres

    print(f"PostgreSQL: {ensure_postgres()}")
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from .report.notebooks import discover, sync

    for nb in discover(names=args.notebooks or None):
        sync(nb)
        print(f"synced {nb.ipynb.relative_to(paths.repo_root())} from {nb.py.name}")
    return 0


def _cmd_check_pairs(args: argparse.Namespace) -> int:
    from .report.notebooks import check_pairs, discover

    problems = check_pairs(discover(Path(args.folder) if args.folder else None))
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


def _cmd_runs(args: argparse.Namespace) -> int:
    from .report.provenance import export_provenance
    from .runs.ledger import export_runs

    path, added, total = export_runs(args.notebook, args.profile)
    export_provenance(args.notebook, args.profile, path, total)
    print(f"{path.relative_to(paths.repo_root()) if path.is_relative_to(paths.repo_root()) else path}: "
          f"{added} runs added from {paths.cache_root()}, {total} in all")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmsheaf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="run the notebooks with papermill, then build the paper")
    p.add_argument("--profile", default="paper", help=f"one of {', '.join(paths.PROFILES)}")
    p.add_argument("--force", action="store_true", help="re-run notebooks even when they are up to date")
    p.add_argument("--no-paper", action="store_true", help="only run the notebooks")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    p.add_argument("notebooks", nargs="*", help="only these notebooks (e.g. 00_datasets)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("paper", help="build the paper from a profile's outputs")
    p.add_argument("--profile", default="paper")
    p.set_defaults(func=_cmd_paper)

    p = sub.add_parser("data", help="fill the data folder from a mirror folder")
    p.add_argument("--mirror", default="", help="a folder laid out like shared/data (empty: PyG downloads)")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("latex", help="install the Debian LaTeX packages when something is missing")
    p.set_defaults(func=_cmd_latex)

    p = sub.add_parser("postgres", help="install Debian's PostgreSQL when missing (shared Optuna studies, tests)")
    p.set_defaults(func=_cmd_postgres)

    p = sub.add_parser("sync", help="write each notebook's .ipynb from its .py (outputs stripped)")
    p.add_argument("notebooks", nargs="*")
    p.set_defaults(func=_cmd_sync)

    p = sub.add_parser("check-pairs", help="fail when a .py/.ipynb pair is out of sync")
    p.add_argument("--folder", default="")
    p.set_defaults(func=_cmd_check_pairs)

    p = sub.add_parser("runs", help="save an interrupted run's finished runs into the notebook's run ledger")
    p.add_argument("action", choices=["export"], help="export: merge the run cache into the ledger")
    p.add_argument("notebook", help="e.g. 01_sheaf_diffusion")
    p.add_argument("--profile", default="paper")
    p.set_defaults(func=_cmd_runs)

    args = parser.parse_args(argv)
    try:
        if getattr(args, "profile", None) is not None:
            paths.check_profile(args.profile)
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
