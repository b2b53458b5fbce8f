"""Speed and memory of every recommender on MovieLens-100K at the paper profile's settings (issue 4).

For each model, one fresh process loads MovieLens-100K (the random 8:1:1 split, cached text embeddings),
builds the model with the paper profile's shared hyperparameters (notebooks/params/02_multimodal_sheaf.paper.yaml:
HPARAMS, TRAIN's batch size), trains warm-up epochs, then times full BPR training epochs (one full-graph
forward per batch, backward, Adam step; no evaluation) and reports the median in milliseconds, the time of
one full-ranking evaluation, and the peak resident memory of the process (ru_maxrss) above its resident
memory before training.

    python benchmarks/recsys_speed.py [--models lightgcn mm-sheaf] [--epochs 3]

Writes benchmarks/results/recsys_speed.csv with columns dataset, model, ms_per_epoch, eval_ms, peak_mb,
ratio_to_lightgcn. Ratios are measured in one run on one machine; compare only within it.
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
PARAMS = HERE.parent / "notebooks" / "params" / "02_multimodal_sheaf.paper.yaml"
DEFAULT_MODELS = ["mf", "lightgcn", "vbpr", "late-fusion", "sheaf-id", "mm-sheaf"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def measure_one(model: str, epochs: int, warmup: int) -> dict:
    """Time ``epochs`` BPR epochs of one model in this process (called in a fresh subprocess)."""
    import torch

    from mmsheaf.recsys import BPRSampler, bpr_loss, build_recommender, evaluate_recommender
    from mmsheaf.recsys.protocol import load_interactions
    from mmsheaf.nsd.train import set_seed

    p = yaml.safe_load(PARAMS.read_text())
    data = load_interactions("ml100k", **p["DATA_OPTIONS"])
    set_seed(0)
    net = build_recommender(model, data, **p["HPARAMS"])
    opt = torch.optim.Adam(net.parameters(), lr=p["TRAIN"]["lr"])
    sampler = BPRSampler(data, generator=torch.Generator().manual_seed(0))
    batch = int(p["TRAIN"]["batch_size"])
    base = _rss_mb()
    times = []
    for i in range(warmup + epochs):
        net.train()
        t = time.perf_counter()
        for users, pos, neg in sampler.epoch(batch):
            opt.zero_grad()
            loss = bpr_loss(*net(data), users, pos, neg, reg_weight=p["TRAIN"]["reg_weight"])
            loss.backward()
            opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    evaluate_recommender(net, data, "val", (10, 20))
    eval_ms = (time.perf_counter() - t) * 1e3
    return {"dataset": "ml100k", "model": model, "ms_per_epoch": round(statistics.median(times), 1),
            "eval_ms": round(eval_ms, 1), "peak_mb": round(max(_rss_mb() - base, 0.0), 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.epochs, args.warmup)))
        return
    rows = []
    for model in args.models:
        out = subprocess.run([sys.executable, __file__, "--one", model, "--epochs", str(args.epochs),
                              "--warmup", str(args.warmup)], check=True, capture_output=True, text=True)  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{model:12s} {row['ms_per_epoch']:9.1f} ms/epoch  eval {row['eval_ms']:7.1f} ms  "
              f"peak {row['peak_mb']:7.1f} MB", flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    if "lightgcn" in set(df.model):
        df["ratio_to_lightgcn"] = (df.ms_per_epoch / df.set_index("model").loc["lightgcn", "ms_per_epoch"]).round(2)
    target = HERE / "results" / "recsys_speed.csv"
    target.parent.mkdir(exist_ok=True)
    df.to_csv(target, index=False)
    print(f"\n{platform.processor() or platform.machine()}, torch threads from the environment; wrote {target}")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
