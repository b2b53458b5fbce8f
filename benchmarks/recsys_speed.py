"""Speed and memory of every recommender at the paper profiles' settings (issues 4 and 16).

For each dataset and model, one fresh process loads the dataset (cached text embeddings), builds the model with
the paper profile's shared hyperparameters (``HPARAMS`` of notebooks/params/02_multimodal_sheaf.paper.yaml for
ML-100K, 05_cold_start.paper.yaml for ML-1M: the embedding size is the same for every model) and that
profile's data options and training batch size, trains warm-up epochs, then times
full training epochs (one full-graph forward per batch, the model's training loss, backward, Adam step; no
evaluation) and reports the median in milliseconds, the time of one full-ranking evaluation, and the peak
resident memory of the process (ru_maxrss) above its resident memory before training. A model that pretrains
an input (DropoutNet) does it before the timed epochs, with one pretraining epoch.

    python benchmarks/recsys_speed.py [--datasets ml100k ml1m-cold] [--models lightgcn "mm-sheaf[sheaf=gen]"]

A model may carry hyperparameters in brackets (``name[key=value,...]``, values parsed as YAML) to time a
variant. Writes benchmarks/results/recsys_speed.csv with columns dataset, model, ms_per_epoch, eval_ms,
peak_mb, ratio_to_lightgcn (per dataset). Ratios are measured in one run on one machine; compare only within it.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
PARAMS = {"ml100k": HERE.parent / "notebooks" / "params" / "02_multimodal_sheaf.paper.yaml",
          "ml1m": HERE.parent / "notebooks" / "params" / "05_cold_start.paper.yaml"}
DEFAULT_DATASETS = ["ml100k", "ml1m-cold"]
DEFAULT_MODELS = ["mf", "lightgcn", "vbpr", "late-fusion", "sheaf-id", "content", "dropoutnet", "clcrec",
                  "mm-sheaf", "mm-sheaf[sheaf=gen]", "mm-sheaf[user_profiles=true,readout=concat]",
                  "mm-sheaf[user_profiles=true]"]  # fmt: skip


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def parse_model(text: str) -> tuple[str, dict]:
    """``"mm-sheaf[sheaf=gen,layers=3]"`` -> ``("mm-sheaf", {"sheaf": "gen", "layers": 3})``."""
    m = re.fullmatch(r"([\w-]+)(?:\[(.*)\])?", text)
    if m is None:
        raise ValueError(f"bad model {text!r}: write name or name[key=value,...].")
    extra = {}
    for pair in filter(None, (m.group(2) or "").split(",")):
        key, value = pair.split("=", 1)
        extra[key.strip()] = yaml.safe_load(value)
    return m.group(1), extra


def measure_one(dataset: str, model: str, epochs: int, warmup: int) -> dict:
    """Time ``epochs`` training epochs of one model in this process (called in a fresh subprocess)."""
    import torch

    from mmsheaf.recsys import BPRSampler, RecTrainConfig, build_recommender, evaluate_recommender
    from mmsheaf.recsys.protocol import load_interactions
    from mmsheaf.runs.keys import set_seed

    p = yaml.safe_load(PARAMS["ml1m" if dataset.startswith("ml1m") else "ml100k"].read_text())
    name, extra = parse_model(model)
    data = load_interactions(dataset, **p["DATA_OPTIONS"])
    set_seed(0)
    net = build_recommender(name, data, **{**p["HPARAMS"], **extra})
    train = {k: v for k, v in p["TRAIN"].items() if k in ("lr", "batch_size", "reg_weight")}
    net.prepare(data, RecTrainConfig(**train, epochs=1))
    opt = torch.optim.Adam(net.parameters(), lr=train["lr"])
    sampler = BPRSampler(data, generator=torch.Generator().manual_seed(0))
    base = _rss_mb()
    times = []
    for i in range(warmup + epochs):
        net.train()
        t = time.perf_counter()
        for users, pos, neg in sampler.epoch(int(train["batch_size"])):
            opt.zero_grad()
            net.training_loss(data, users, pos, neg, train["reg_weight"]).backward()
            opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    evaluate_recommender(net, data, "val", (10, 20))
    eval_ms = (time.perf_counter() - t) * 1e3
    return {"dataset": dataset, "model": model, "ms_per_epoch": round(statistics.median(times), 1),
            "eval_ms": round(eval_ms, 1), "peak_mb": round(max(_rss_mb() - base, 0.0), 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one, args.epochs, args.warmup)))
        return
    rows = []
    for dataset in args.datasets:
        for model in args.models:
            out = subprocess.run([sys.executable, __file__, "--one", dataset, model, "--epochs", str(args.epochs),
                                  "--warmup", str(args.warmup)], check=True, capture_output=True, text=True)  # fmt: skip
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{dataset:10s} {model:30s} {row['ms_per_epoch']:9.1f} ms/epoch  eval {row['eval_ms']:7.1f} ms  "
                  f"peak {row['peak_mb']:7.1f} MB", flush=True)  # fmt: skip
    df = pd.DataFrame(rows)
    lightgcn = df[df.model == "lightgcn"].set_index("dataset")["ms_per_epoch"]
    df["ratio_to_lightgcn"] = (df.ms_per_epoch / df.dataset.map(lightgcn)).round(2)
    target = HERE / "results" / "recsys_speed.csv"
    target.parent.mkdir(exist_ok=True)
    df.to_csv(target, index=False)
    print(f"\n{platform.processor() or platform.machine()}, torch threads from the environment; wrote {target}")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
