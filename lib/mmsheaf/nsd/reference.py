"""Published node-classification results to compare against (not computed here).

Source: Bodnar, Di Giovanni, Chamberlain, Liò and Bronstein, "Neural Sheaf Diffusion: A Topological
Perspective on Heterophily and Oversmoothing in GNNs", NeurIPS 2022, Table 2 (arXiv:2202.04579): test
accuracy in %, mean ± std over the 10 geom-gcn splits. The "cornell" column of that table was computed on the
older geom-gcn Cornell file, which this project loads as ``cornell-nsd``; the corrected ``cornell`` has no
published NSD number.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

SHEAF_MODELS: tuple[str, ...] = ("diag-nsd", "orth-nsd", "gen-nsd")
"""The three discrete sheaf types of Table 2 (the rows the study's sheaf models are compared with)."""

_DATASETS = ("texas", "wisconsin", "film", "squirrel", "chameleon", "cornell-nsd", "citeseer", "pubmed", "cora")
_TABLE = {
    "diag-nsd": "85.67 6.95 88.63 2.75 37.79 1.01 54.78 1.81 68.68 1.73 86.49 7.35 77.14 1.85 89.42 0.43 87.14 1.06",
    "orth-nsd": "85.95 5.51 89.41 4.74 37.81 1.15 56.34 1.32 68.04 1.58 84.86 4.71 76.70 1.57 89.49 0.40 86.90 1.13",
    "gen-nsd": "82.97 5.13 89.21 3.84 37.80 1.22 53.17 1.31 67.93 1.58 85.68 6.51 76.32 1.65 89.33 0.35 87.30 1.15",
    "gcn": "55.14 5.16 51.76 3.06 27.32 1.10 53.43 2.01 64.82 2.24 60.54 5.30 76.50 1.36 88.42 0.50 86.98 1.27",
    "gat": "52.16 6.63 49.41 4.09 27.44 0.89 40.72 1.55 60.26 2.50 61.89 5.05 76.55 1.23 87.30 1.10 86.33 0.48",
    "mlp": "80.81 4.75 85.29 3.31 36.53 0.70 28.77 1.56 46.21 2.99 81.89 6.40 74.02 1.90 87.16 0.37 75.69 2.00",
    "ggcn": "84.86 4.55 86.86 3.29 37.54 1.56 55.17 1.58 71.14 1.84 85.68 6.63 77.14 1.45 89.15 0.37 87.95 1.05",
    "gcnii": "77.57 3.83 80.39 3.40 37.44 1.30 38.47 1.58 63.86 3.04 77.86 3.79 77.33 1.48 90.15 0.43 88.37 1.25",
    "gprgnn": "78.38 4.36 82.94 4.21 34.63 1.22 31.61 1.24 46.58 1.71 80.27 8.11 77.13 1.67 87.54 0.38 87.95 1.18",
}


def _parse() -> dict[tuple[str, str], tuple[float, float]]:
    out = {}
    for model, row in _TABLE.items():
        values = [float(v) for v in row.split()]
        for i, ds in enumerate(_DATASETS):
            out[(ds, model)] = (values[2 * i], values[2 * i + 1])
    return out


NSD_TABLE: Mapping[tuple[str, str], tuple[float, float]] = MappingProxyType(_parse())
"""``(dataset, model) -> (mean %, std %)`` from NSD's Table 2 (GraphSAGE has no column there)."""

NSD_HOMOPHILY: Mapping[str, float] = MappingProxyType(
    dict(zip(_DATASETS, (0.11, 0.21, 0.22, 0.22, 0.23, 0.30, 0.74, 0.80, 0.81)))
)
"""Homophily as quoted in NSD's Table 2 header."""


def paper_result(dataset: str, model: str) -> tuple[float | None, float | None]:
    """The published ``(mean, std)`` or ``(None, None)`` where the paper has none."""
    return NSD_TABLE.get((dataset, model), (None, None))


def best_sheaf_result(dataset: str) -> tuple[float, float] | None:
    """The best NSD mean of the three discrete sheaf types on ``dataset``, with its std."""
    rows = [NSD_TABLE[(dataset, m)] for m in SHEAF_MODELS if (dataset, m) in NSD_TABLE]
    return max(rows) if rows else None
