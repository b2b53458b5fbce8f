"""What every study's trainer checks so that a run never reports a number computed from garbage.

- inputs are refused up front: :func:`require_finite` raises a ``ValueError`` that says which rows of which
  input hold NaN or infinite values (only the *observed* rows count where the caller passes a mask, since a
  missing row's stored values are never read);
- a run that ends without one usable epoch (a non-finite loss or non-finite outputs from the first epoch,
  or no finite validation score at all) raises :class:`NonFiniteTrainingError` instead of returning scores;
  :func:`~mmsheaf.runs.cache.run_cached` then records it as failed (``<key>.failed``), never as a result.

.. code-block:: python

    require_finite(data.x, "data.x (node features)")             # ValueError naming the bad rows
    if best_epoch == 0:
        raise NonFiniteTrainingError(f"{run}: the training loss was not finite at epoch 1 ...")
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = ["NonFiniteTrainingError", "check_usable_run", "nonfinite_rows", "require_finite"]


class NonFiniteTrainingError(ValueError):
    """A training run produced no finite validation score (or non-finite outputs): it has no result to report.

    The message names the run (model or loss, seed, epoch) and what to check.
    """


def nonfinite_rows(x: Tensor, observed: Tensor | None = None) -> Tensor:
    """Indices of the rows of ``x`` that hold a NaN or infinite value, among the ``observed`` rows (default all).

    Shapes:
        - **x:** :math:`(N, F)` or :math:`(N,)`; **observed:** :math:`(N,)` bool; **output:** :math:`(k,)` long
    """
    bad = ~torch.isfinite(x)
    if bad.dim() > 1:
        bad = bad.flatten(1).any(dim=1)
    if observed is not None:
        bad = bad & observed.to(bad.device)
    return bad.nonzero().flatten()


def require_finite(x: Tensor, what: str, observed: Tensor | None = None,
                   fix: str = "repair or drop them before training") -> None:  # fmt: skip
    """Raise a ``ValueError`` naming ``what`` and its first bad rows unless every (observed) row of ``x`` is finite.

    Args:
        x: The input, one row per node/item/row.
        what: How the message names it (e.g. ``"item_features['text']"``).
        observed: :math:`(N,)` bool: only these rows are checked (the others are never read).
        fix: What the message tells the user to do.
    """
    if x.numel() == 0 or not x.is_floating_point():
        return
    rows = nonfinite_rows(x, observed)
    if rows.numel():
        shown = ", ".join(str(r) for r in rows[:5].tolist()) + (", ..." if rows.numel() > 5 else "")
        scope = "observed rows" if observed is not None else "rows"
        raise ValueError(f"{what}: {rows.numel()} of {x.size(0)} {scope} hold NaN or infinite values (rows "
                         f"{shown}); {fix}.")  # fmt: skip



def check_usable_run(run: str, best_epoch: int, stop: str, *, never_finite: str, fix: str) -> None:
    """The end of an early-stopped training loop: raise when no epoch was usable, warn when training stopped on
    a non-finite value after some usable epochs (whose best is kept).

    Args:
        run: How the message names the run.
        best_epoch: The kept epoch (0: none).
        stop: Why training stopped early on a non-finite value (empty: it did not).
        never_finite: The cause to name when there is no ``stop`` (e.g. "the validation MAP@R was never finite").
        fix: What to check, appended to the error.

    Raises:
        NonFiniteTrainingError: ``best_epoch`` is 0.
    """
    if best_epoch == 0:  # nothing to report: never metrics of NaN outputs
        raise NonFiniteTrainingError(f"{run} produced no usable epoch: {stop or never_finite}. {fix}")
    if stop:
        warnings.warn(f"{run}: {stop}; training stopped and the best epoch before it ({best_epoch}) is kept.",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
