"""Speed and memory of every node classifier at the paper's settings (issue: NSD on one modality).

For each dataset (cora, chameleon, squirrel, film by default) and model, one fresh process builds the model
with the hyperparameters the paper profile uses (notebooks/params/01_sheaf_diffusion.paper.yaml, merged by
mmsheaf.nsd.protocol.NsdProtocol.resolve), runs warm-up epochs, then times full training epochs (forward, backward,
optimiser step) and reports the median in milliseconds and the peak resident memory of the process
(ru_maxrss) minus its resident memory before the first epoch. Each sheaf model is also compared with a GCN
of equal depth and width (layers = the sheaf model's layers, hidden = d x hidden_channels).

    python benchmarks/nsd_speed.py [--datasets cora squirrel] [--models gcn diag-nsd] [--epochs 5]

Writes benchmarks/results/nsd_speed.csv with columns dataset, model, ms_per_epoch, peak_mb,
gcn_equal_ms_per_epoch, ratio_to_gcn. Ratios are measured in one run on one machine; compare only within it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
PARAMS = HERE.parent / "notebooks" / "params" / "01_sheaf_diffusion.paper.yaml"
DEFAULT_DATASETS = ["cora", "chameleon", "squirrel", "film"]
DEFAULT_MODELS = ["mlp", "gcn", "gat", "sage", "gcnii", "gprgnn", "diag-nsd", "orth-nsd", "gen-nsd"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def measure_one(dataset: str, model: str, epochs: int, warmup: int, override: dict) -> dict:
    """Time ``epochs`` training epochs of one model in this process (called in a fresh subprocess)."""
    import torch
    import torch.nn.functional as F

    from mmsheaf.data.nsd_graphs import load_graph
    from mmsheaf.nsd.protocol import NsdProtocol
    from mmsheaf.nsd.registry import build_node_model
    from mmsheaf.nsd.train import make_optimizer, set_seed

    p = yaml.safe_load(PARAMS.read_text())
    protocol = NsdProtocol.from_params(p["TRAIN"], p["MODEL_DEFAULTS"], p["CONFIGS"])
    hparams, cfg = protocol.resolve(dataset, model, **override)
    data = load_graph(dataset)
    set_seed(0)
    net = build_node_model(model, data.num_features, int(data.y.max()) + 1, **hparams)
    opt = make_optimizer(net, cfg)
    train = data.train_mask[:, 0]
    base = _rss_mb()
    times = []
    for i in range(warmup + epochs):
        t0 = time.perf_counter()
        net.train()
        opt.zero_grad()
        loss = F.cross_entropy(net(data.x, data.edge_index)[train], data.y[train])
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return {
        "dataset": dataset, "model": model, "ms_per_epoch": statistics.median(times),
        "peak_mb": max(0.0, _rss_mb() - base), "hparams": hparams, "threads": torch.get_num_threads(),
    }


def run_isolated(dataset: str, model: str, epochs: int, warmup: int, override: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--one", dataset, model, "--epochs", str(epochs), "--warmup", str(warmup),
           "--override", json.dumps(override or {})]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{dataset}/{model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="*", default=DEFAULT_DATASETS)
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "nsd_speed.csv"))
    ap.add_argument("--one", nargs=2, metavar=("DATASET", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--override", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one, args.epochs, args.warmup, json.loads(args.override))))
        return

    from tqdm import tqdm

    rows = []
    jobs = [(ds, m) for ds in args.datasets for m in args.models]
    for ds, m in tqdm(jobs, desc="benchmark", unit="model"):
        r = run_isolated(ds, m, args.epochs, args.warmup)
        if r["model"].endswith("-nsd"):
            hp = r["hparams"]
            width = int(hp.get("d", 1)) * int(hp.get("hidden_channels", 1))
            gcn = run_isolated(ds, "gcn", args.epochs, args.warmup,
                               {"layers": int(hp.get("layers", 2)), "hidden_channels": width})
            r["gcn_equal_ms_per_epoch"] = gcn["ms_per_epoch"]
            r["ratio_to_gcn"] = r["ms_per_epoch"] / gcn["ms_per_epoch"]
            r["gcn_equal"] = f"{hp.get('layers')} layers x {width}"
        rows.append(r)
        tqdm.write(f"{ds:10s} {m:10s} {r['ms_per_epoch']:9.1f} ms/epoch  peak +{r['peak_mb']:7.0f} MB"
                   + (f"  {r['ratio_to_gcn']:.2f}x GCN ({r['gcn_equal']})" if "ratio_to_gcn" in r else ""))
    df = pd.DataFrame(rows)
    cols = ["dataset", "model", "ms_per_epoch", "peak_mb", "gcn_equal_ms_per_epoch", "ratio_to_gcn", "gcn_equal"]
    df = df.reindex(columns=cols)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.round(2).to_csv(args.out, index=False)
    print(f"\n{platform.processor() or platform.machine()}, {df.shape[0]} measurements -> {args.out}")
    print(df.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
