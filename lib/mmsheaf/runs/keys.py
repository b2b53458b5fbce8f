"""What makes a run reproducible and shareable: its key and its seeds.

A run is keyed by the sha256 of the canonical JSON of everything that determines it (:func:`canonical_json`,
:func:`spec_key`): equal settings give equal keys on every machine and Python version, so a cache or a ledger
written anywhere is read everywhere, and :func:`set_seed` seeds every random number generator a training run
draws from. Runs are shared between processes by :mod:`mmsheaf.runs.executor` (Dask workers).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["canonical_json", "set_seed", "spec_key"]


def _canonical(value: Any) -> Any:
    """A JSON-ready canonical form: mappings sorted, sequences as lists, numbers (not bools) as floats."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"Cannot key a non-finite number {value!r}: use finite hyperparameters.")
        return float(value)
    raise ValueError(
        f"Cannot key a value of type {type(value).__name__} ({value!r}): hyperparameters must be JSON-like "
        "(str, int, float, bool, None, lists/tuples and mappings of them)."
    )


def canonical_json(value: Any) -> str:
    """Compact JSON of :func:`_canonical` ``(value)`` with sorted keys: equal settings give equal strings."""
    return json.dumps(
        _canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def spec_key(description: Mapping[str, Any]) -> str:
    """sha256 (hex) of the :func:`canonical_json` of a run's description: its key in caches and ledgers."""
    return hashlib.sha256(canonical_json(description).encode("ascii")).hexdigest()


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
