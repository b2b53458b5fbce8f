"""A tuned run's settings: split into the model's and the training's, and shown in one line.

Every study tunes a model's hyperparameters and its training settings in one search space; a trial's
parameters are split back by the names of the study's training-config fields (:func:`split_by_fields`), and a
chosen configuration is shown in tables and logs as one ``name=value`` line (:func:`settings_text`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["settings_text", "split_by_fields"]


def split_by_fields(params: Mapping[str, Any], fields: Collection[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split parameters into ``(others, named)``: those whose name is in ``fields`` (e.g. a training config's
    field names) go to the second dict, the rest (the model's hyperparameters) to the first; order kept.

    Example:
        >>> split_by_fields({"hidden": 64, "lr": 0.01}, {"lr", "epochs"})
        ({'hidden': 64}, {'lr': 0.01})
    """
    return ({k: v for k, v in params.items() if k not in fields},
            {k: v for k, v in params.items() if k in fields})  # fmt: skip


def settings_text(*settings: Mapping[str, Any]) -> str:
    """Settings in one line: ``name=value`` sorted by name, floats to 2 significant digits; with several
    mappings a later one's value wins on a shared name.

    Example:
        >>> settings_text({"lr": 0.00123, "layers": 2}, {"dropout": 0.5})
        'dropout=0.5, layers=2, lr=0.0012'
    """
    shown: dict[str, Any] = {}
    for s in settings:
        shown.update(s)
    return ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(shown.items()))
