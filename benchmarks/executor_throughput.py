"""Runs per hour of a fixed list of notebook-01 runs in this process and on a Dask LocalCluster (issue 19).

The list: the first ``--runs`` records of notebook 01's paper ledger (``figures/runs/01_sheaf_diffusion.jsonl``) on
``--datasets`` (small heterophilic graphs by default), rebuilt as the same specs (model, hyperparameters,
training settings, split), run into a fresh temporary cache once per executor: in-process (one worker), then on
a LocalCluster of 2 single-threaded workers. Every run gets one torch thread wherever it runs. Prints and writes
benchmarks/results/executor_throughput.csv (executor, workers, runs, seconds, runs_per_hour, speedup); run it on
an otherwise idle machine and compare only within one run.

    python benchmarks/executor_throughput.py [--runs 24] [--datasets cornell texas wisconsin] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("OMP_NUM_THREADS", "1")

from mmsheaf.data.nsd_graphs import DATA_VERSIONS, load_graph
from mmsheaf.nsd.runs import ExperimentSpec, run_experiments
from mmsheaf.nsd.train import TrainConfig
from mmsheaf.runs import executor as ex
from mmsheaf.runs.cache import RunCache

HERE = Path(__file__).resolve().parent
LEDGER = HERE.parent / "figures" / "runs" / "01_sheaf_diffusion.jsonl"


def specs_from_ledger(datasets: list[str], runs: int) -> list[ExperimentSpec]:
    out = []
    with LEDGER.open(encoding="utf-8") as fh:
        for line in fh:
            spec = json.loads(line)["payload"]["spec"]
            if spec["dataset"] in datasets and spec["model"] in ("gcn", "gprgnn", "diag-nsd", "orth-nsd"):
                out.append(ExperimentSpec(spec["dataset"], spec["model"], spec["split"], spec["model_hparams"],
                                          TrainConfig(**spec["train"]),
                                          data_version=DATA_VERSIONS.get(spec["dataset"], 1)))  # fmt: skip
            if len(out) == runs:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--datasets", nargs="+", default=["cornell", "texas", "wisconsin"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    specs = specs_from_ledger(args.datasets, args.runs)
    rows = []
    for workers in args.workers:
        executor = ex.InProcess(threads=1) if workers == 1 else ex.DaskExecutor(workers=workers, threads=1)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_experiments(specs, RunCache(Path(tmp) / "node_classification"), data_loader=load_graph,
                            progress=False, executor=executor)  # fmt: skip
            seconds = time.perf_counter() - start
        executor.close()
        rows.append({"executor": type(executor).__name__, "workers": workers, "runs": len(specs),
                     "seconds": round(seconds, 1), "runs_per_hour": round(3600 * len(specs) / seconds)})  # fmt: skip
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["speedup"] = (df.runs_per_hour / df.runs_per_hour.iloc[0]).round(2)
    out = HERE / "results" / "executor_throughput.csv"
    df.to_csv(out, index=False)
    print(df.to_string(index=False), f"\nwritten to {out}", sep="\n")


if __name__ == "__main__":
    main()
