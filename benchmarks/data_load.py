"""Time loading every dataset of the mirror, warm (PyG's processed/ folders and the hash cache exist).

Loads each node dataset with its splits (PyG), the MovieLens 100K tables, the clothing reviews and MNIST-5k
through the library's loaders, in this process, once to warm up and then ``--repeats`` times, and prints the
median seconds per dataset and in all. To compare two versions of the loaders, run this script from each
(e.g. ``PYTHONPATH=/path/to/other/checkout/lib``) in alternation with a whole-process timer, or compare the
totals it prints.

    python benchmarks/data_load.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from mmsheaf import data as mdata


def _loaders() -> dict[str, Callable[[], object]]:
    out: dict[str, Callable[[], object]] = {}
    for name in mdata.node_dataset_names():
        if mdata.missing_node_files(name):
            continue  # e.g. PubMed, whose ind.pubmed.allx the mirror lacks
        out[name] = lambda name=name: mdata.load_node_dataset(name, download=False)
    out["movielens100k"] = mdata.load_movielens100k
    out["clothing"] = mdata.load_clothing_reviews
    out["mnist5k"] = mdata.load_mnist5k
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    loaders = _loaders()
    for load in loaders.values():  # warm-up: processed/ folders, hash cache, imports
        load()
    totals = []
    per: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(args.repeats):
        start_all = time.perf_counter()
        for name, load in loaders.items():
            start = time.perf_counter()
            load()
            per[name].append(time.perf_counter() - start)
        totals.append(time.perf_counter() - start_all)
    for name, times in per.items():
        print(f"{name:14s} {statistics.median(times) * 1000:9.1f} ms")
    print(f"{'all':14s} {statistics.median(totals) * 1000:9.1f} ms (median of {args.repeats})")


if __name__ == "__main__":
    main()
