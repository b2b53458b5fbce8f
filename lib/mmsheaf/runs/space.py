"""The search space of a hyperparameter study: declarative specs (plain dicts, as read from a params YAML)
parsed into frozen parameter specs, and one Optuna draw of them.

.. code-block:: python

    space = {
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "layers": {"type": "int", "low": 1, "high": 4},
        "d": {"type": "categorical", "choices": [1, 2, 3]},
        "epochs": 200,                          # not a mapping: a fixed value, passed through as is
    }
    parse_space(space)                          # {"lr": FloatParam(...), ..., "epochs": FixedParam(200)}
    suggest(trial, space)                       # {"lr": 0.0031, "layers": 2, "d": 3, "epochs": 200}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

__all__ = ["CategoricalParam", "FixedParam", "FloatParam", "IntParam", "ParamSpec", "parse_space", "suggest"]

_CATEGORICAL_TYPES = (type(None), bool, int, float, str)

@dataclass(frozen=True)
class FloatParam:
    """A float in :math:`[low, high]`, on a log scale if ``log``, on a grid of ``step`` if given."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class IntParam:
    """An int in :math:`[low, high]` (both included), every ``step``-th one, on a log scale if ``log``."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class CategoricalParam:
    """One of ``choices`` (``None``, bools, ints, floats or strings)."""

    choices: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))


@dataclass(frozen=True)
class FixedParam:
    """A value passed to the objective as is, not searched (and not stored in the trial)."""

    value: Any

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return self.value


ParamSpec = FloatParam | IntParam | CategoricalParam | FixedParam

_SPEC_KEYS: dict[str, tuple[set[str], set[str]]] = {  # type -> (required keys, optional keys)
    "float": ({"low", "high"}, {"log", "step"}),
    "int": ({"low", "high"}, {"log", "step"}),
    "categorical": ({"choices"}, set()),
    "fixed": ({"value"}, set()),
}


def _number(key: str, field: str, value: Any, integer: bool) -> float | int:
    """A finite number (ints only if ``integer``); numeric strings are accepted for floats (PyYAML 1.1
    reads ``1e-4`` without a dot as a string)."""
    if isinstance(value, str) and not integer:
        try:
            value = float(value)
        except ValueError:
            pass
    if integer:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"Search space {key!r}: {field} must be an int, got {value!r}.")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Search space {key!r}: {field} must be a finite number, got {value!r}.")
    return float(value)


def _parse_param(key: str, spec: Any) -> ParamSpec:
    if not isinstance(spec, Mapping):
        return FixedParam(spec)
    if "type" not in spec:
        raise ValueError(
            f"Search space {key!r}: a mapping needs a 'type' ({', '.join(_SPEC_KEYS)}); to fix a mapping "
            f"value, write {{type: fixed, value: ...}}."
        )
    kind = spec["type"]
    if kind not in _SPEC_KEYS:
        raise ValueError(
            f"Search space {key!r}: unknown type {kind!r}; use one of {', '.join(map(repr, _SPEC_KEYS))}."
        )
    required, optional = _SPEC_KEYS[kind]
    given = set(spec) - {"type"}
    if missing := sorted(required - given):
        raise ValueError(f"Search space {key!r}: type {kind!r} needs {', '.join(missing)}.")
    if unknown := sorted(given - required - optional):
        allowed = ", ".join(sorted(required | optional))
        raise ValueError(
            f"Search space {key!r}: unknown field(s) {', '.join(unknown)}; {kind!r} takes {allowed}."
        )

    if kind == "fixed":
        return FixedParam(spec["value"])
    if kind == "categorical":
        choices = spec["choices"]
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            raise ValueError(f"Search space {key!r}: choices must be a list, got {choices!r}.")
        choices = tuple(choices)
        if not choices:
            raise ValueError(f"Search space {key!r}: choices is empty; give at least one value.")
        bad = [c for c in choices if not isinstance(c, _CATEGORICAL_TYPES)]
        if bad:
            raise ValueError(
                f"Search space {key!r}: choices must be None, bools, numbers or strings (as Optuna stores), "
                f"got {bad[0]!r}; encode structured choices as strings (e.g. '64-64') and decode them in the "
                "objective."
            )
        return CategoricalParam(choices)

    integer = kind == "int"
    low = _number(key, "low", spec["low"], integer)
    high = _number(key, "high", spec["high"], integer)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        message = f"Search space {key!r}: log must be true or false, got {log!r}."
        raise ValueError(message)  # noqa: TRY004 - a bad spec, like every other
    if low > high:
        raise ValueError(f"Search space {key!r}: low={low} > high={high}; swap them.")
    if log and low <= 0:
        raise ValueError(f"Search space {key!r}: a log scale needs low > 0, got low={low}.")
    step = spec.get("step")
    if step is not None:
        step = _number(key, "step", step, integer)
        if step <= 0:
            raise ValueError(f"Search space {key!r}: step must be > 0, got {step}.")
        if log and not (integer and step == 1):
            raise ValueError(f"Search space {key!r}: step and log cannot be combined; drop one of them.")
    if integer:
        return IntParam(int(low), int(high), log, 1 if step is None else int(step))
    return FloatParam(float(low), float(high), log, None if step is None else float(step))


def parse_space(space: Mapping[str, Any]) -> dict[str, ParamSpec]:
    r"""Validate a declarative search space (plain dicts, as read from YAML) into parameter specs.

    Each key is a parameter name; its value is either a mapping with a ``type``

    ==================  ==========================================  ====================================
    ``type``            fields                                      Optuna call
    ==================  ==========================================  ====================================
    ``float``           ``low, high``, optional ``log, step``       ``trial.suggest_float``
    ``int``             ``low, high``, optional ``log, step``       ``trial.suggest_int``
    ``categorical``     ``choices`` (non-empty list)                ``trial.suggest_categorical``
    ``fixed``           ``value`` (any value, mappings included)    none: passed through
    ==================  ==========================================  ====================================

    or any other value (not a mapping), which is fixed. Float bounds may be numeric strings (PyYAML reads
    ``1e-4`` without a dot as a string).

    Args:
        space: ``{name: spec or fixed value}``; already parsed specs are kept as they are.

    Returns:
        ``{name: FloatParam | IntParam | CategoricalParam | FixedParam}`` in the order of ``space``.

    Raises:
        ValueError: naming the offending key (unknown type or field, missing field, ``low > high``, log scale
            with ``low <= 0``, empty or non-scalar choices, ...).
    """
    if not isinstance(space, Mapping):
        raise ValueError(  # noqa: TRY004 - a bad spec, like every other
            f"A search space must be a mapping of names to specs, got {type(space).__name__}."
        )
    out: dict[str, ParamSpec] = {}
    for key, spec in space.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"Search space keys must be non-empty strings, got {key!r}.")
        is_spec = isinstance(spec, (FloatParam, IntParam, CategoricalParam, FixedParam))
        out[key] = spec if is_spec else _parse_param(key, spec)
    return out


def suggest(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, Any]:
    """Draw one configuration of ``space`` (see :func:`parse_space`) for ``trial``.

    Returns:
        ``{name: value}`` for every key of ``space``: suggested values for searched parameters (stored in
        ``trial.params``), the values themselves for fixed ones.
    """
    return {name: spec.suggest(trial, name) for name, spec in parse_space(space).items()}
