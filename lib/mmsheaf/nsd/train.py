"""Full-batch training of node classifiers with early stopping, as in Neural Sheaf Diffusion's ``exp/run.py``.

.. code-block:: python

    cfg = TrainConfig(lr=0.02, weight_decay=5e-3, epochs=500, patience=100, seed=0)
    result = train_node_classifier("gcn", data, split=0, model_hparams={"layers": 2}, cfg=cfg)
    result.test_acc          # test accuracy at the epoch with the best validation loss (or accuracy)

One epoch is one Adam step on the cross-entropy of the split's training nodes, then an evaluation of the whole
graph in eval mode. The reported accuracies are those of the best validation epoch (``stop_strategy``:
lowest validation loss or highest validation accuracy, strict improvement as in NSD); training stops when
``patience`` epochs pass without a new best. Parameters whose names contain ``sheaf_learner`` may get their
own weight decay (``sheaf_decay``), as in NSD. Everything is seeded: the same inputs and seed give the same
result on the same device.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from ..runs.checks import NonFiniteTrainingError
from ..runs.keys import set_seed
from .registry import build_node_model

__all__ = [
    "NonFiniteTrainingError",  # re-exported from mmsheaf.runs.checks (shared by every study)
    "SHEAF_PARAM_TAG",
    "TrainConfig",
    "TrainResult",
    "make_optimizer",
    "result_fields",
    "set_seed",
    "split_masks",
    "train_node_classifier",
]


SHEAF_PARAM_TAG = "sheaf_learner"
"""Parameters whose qualified names contain this string get ``TrainConfig.sheaf_decay``."""

STOP_STRATEGIES: tuple[str, ...] = ("loss", "acc")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (validated on construction). Defaults are NSD's (``exp/parser.py``).

    Args:
        lr: Adam learning rate.
        weight_decay: Adam weight decay (L2) of all parameters but the sheaf learners'.
        sheaf_decay: Weight decay of parameters whose names contain ``"sheaf_learner"``; ``None`` = the same
            as ``weight_decay`` (then there is one parameter group).
        epochs: Maximum number of epochs.
        patience: Stop after this many epochs without a new best validation score (NSD's
            ``--early_stopping``); ``>= epochs`` disables early stopping.
        stop_strategy: ``"loss"`` (lowest validation cross-entropy) or ``"acc"`` (highest validation
            accuracy) selects the best epoch, as NSD's ``--stop_strategy``.
        seed: Seed of Python, NumPy and torch, set before the model is built.
        device: Torch device to train on (``"cpu"``, ``"cuda"``, ``"cuda:1"``…).
    """

    lr: float = 0.01
    weight_decay: float = 5e-4
    sheaf_decay: float | None = None
    epochs: int = 1500
    patience: int = 200
    stop_strategy: Literal["loss", "acc"] = "loss"
    seed: int = 43
    device: str = "cpu"

    def __post_init__(self) -> None:
        # Canonical types (lr=1 and lr=1.0 are the same config, also for the experiment cache keys).
        for name in ("lr", "weight_decay") + (("sheaf_decay",) if self.sheaf_decay is not None else ()):
            object.__setattr__(self, name, float(getattr(self, name)))
        checks = [
            (self.lr > 0.0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}"),
            (self.weight_decay >= 0.0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (
                self.sheaf_decay is None or self.sheaf_decay >= 0.0,
                f"sheaf_decay must be None or >= 0, got {self.sheaf_decay}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (
                self.stop_strategy in STOP_STRATEGIES,
                f"stop_strategy must be one of {STOP_STRATEGIES}, got {self.stop_strategy!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {message}.")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run.

    Args:
        train_acc: Training accuracy at the best epoch, in :math:`[0, 1]`.
        val_acc: Validation accuracy at the best epoch.
        test_acc: Test accuracy at the best epoch.
        best_epoch: The best epoch, counted from 1 (``0``: no epoch had a finite validation score).
        epochs_run: Epochs actually run (``< epochs`` when early stopping triggered).
        seconds: Wall time of the training loop (training steps and evaluations).
        ms_per_epoch: ``1000 * seconds / epochs_run``.
    """

    train_acc: float
    val_acc: float
    test_acc: float
    best_epoch: int
    epochs_run: int
    seconds: float
    ms_per_epoch: float


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over the trainable parameters of ``model``, with NSD's parameter groups.

    With ``cfg.sheaf_decay`` set and parameters whose names contain :data:`SHEAF_PARAM_TAG`, there are two
    groups: ``{"name": "sheaf_learner", "weight_decay": sheaf_decay}`` and ``{"name": "other",
    "weight_decay": weight_decay}``; otherwise a single group ``"all"`` with ``weight_decay``.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"{type(model).__name__} has no trainable parameters: nothing to optimise.")
    sheaf = [p for n, p in named if SHEAF_PARAM_TAG in n]
    if cfg.sheaf_decay is None or not sheaf:
        groups = [{"name": "all", "params": [p for _, p in named], "weight_decay": cfg.weight_decay}]
    else:
        other = [p for n, p in named if SHEAF_PARAM_TAG not in n]
        groups = [{"name": SHEAF_PARAM_TAG, "params": sheaf, "weight_decay": cfg.sheaf_decay}]
        if other:
            groups.append({"name": "other", "params": other, "weight_decay": cfg.weight_decay})
    return torch.optim.Adam(groups, lr=cfg.lr)


def split_masks(data: Data, split: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(train, val, test)`` boolean masks of column ``split`` (masks of shape ``(N, S)`` or ``(N,)``).

    Raises:
        ValueError: masks missing, ``split`` out of range, or an empty training or validation set.
    """
    masks = []
    for key in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(data, key, None)
        if mask is None:
            raise ValueError(
                f"data has no {key}: give it train_mask, val_mask and test_mask of shape (N, S)."
            )
        if mask.dim() == 1:
            mask = mask.unsqueeze(1)
        if not 0 <= split < mask.size(1):
            raise ValueError(
                f"split must lie in [0, {mask.size(1) - 1}] (data has {mask.size(1)} splits), got {split}."
            )
        masks.append(mask[:, split].to(torch.bool))
    if not masks[0].any() or not masks[1].any():
        raise ValueError(f"Split {split} has an empty training or validation set: check the masks.")
    return masks[0], masks[1], masks[2]


def _accuracy(pred: Tensor, y: Tensor, mask: Tensor) -> float:
    n = int(mask.sum())
    return float((pred[mask] == y[mask]).sum()) / n if n else float("nan")


def train_node_classifier(
    model_name_or_model: str | nn.Module,
    data: Data,
    split: int = 0,
    model_hparams: Mapping[str, Any] | None = None,
    cfg: TrainConfig | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a node classifier full batch on one split and report the accuracies of its best validation epoch.

    Args:
        model_name_or_model: A name of :data:`mmsheaf.nsd.registry.NODE_MODELS` (built after seeding, so its
            initialisation is reproducible) or a module ``model(x, edge_index) -> logits``, trained in place
            from its current parameters.
        data: A graph with ``x``, ``y``, ``edge_index`` and ``train_mask/val_mask/test_mask`` of shape
            :math:`(N, S)` (or :math:`(N,)`).
        split: Mask column to use.
        model_hparams: Hyperparameters of the named model (must be empty when a module is given).
        cfg: :class:`TrainConfig` (default ``TrainConfig()``).
        progress: Show a tqdm bar over epochs (off by default; :func:`mmsheaf.nsd.runs.run_experiments`
            shows one over runs).

    Returns:
        :class:`TrainResult`. Training stops early when the training loss is not finite (the best epoch so far
        is reported).

    Raises:
        ValueError: the node features hold NaN or infinite values.
        NonFiniteTrainingError: no epoch gave a finite validation score (e.g. the loss was NaN from the first
            epoch): there is no result to report, rather than accuracies of 0.

    Shapes:
        - **data.x:** :math:`(N, F)`, **data.y:** :math:`(N,)`, **data.edge_index:** :math:`(2, |E|)`
    """
    cfg = cfg if cfg is not None else TrainConfig()
    model_hparams = dict(model_hparams or {})
    device = torch.device(cfg.device)
    train_mask, val_mask, test_mask = (m.to(device) for m in split_masks(data, split))
    x, y, edge_index = data.x.to(device), data.y.to(device), data.edge_index.to(device)
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(f"{getattr(data, 'name', 'the graph')}: {bad} of {x.size(0)} nodes have NaN or infinite "
                         "features; repair or drop them before training.")  # fmt: skip

    set_seed(cfg.seed)
    if isinstance(model_name_or_model, str):
        num_classes = int(data.y.max()) + 1
        model = build_node_model(model_name_or_model, x.size(1), num_classes, **model_hparams)
    elif isinstance(model_name_or_model, nn.Module):
        if model_hparams:
            raise ValueError(
                "model_hparams are only used to build a model by name; configure the module you pass instead "
                f"(got {sorted(model_hparams)})."
            )
        model = model_name_or_model
    else:
        raise TypeError(f"Expected a model name or an nn.Module, got {type(model_name_or_model).__name__}.")
    model = model.to(device)
    optimizer = make_optimizer(model, cfg)

    best = {"train": 0.0, "val": 0.0, "test": 0.0, "epoch": 0}
    best_val_loss, best_val_acc, bad_epochs, epoch, nonfinite_at = math.inf, -math.inf, 0, 0, 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, desc=type(model).__name__, unit="epoch", leave=False)
    start = time.perf_counter()
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x, edge_index)[train_mask], y[train_mask])
            if not torch.isfinite(loss):
                nonfinite_at = epoch
                break
            loss.backward()
            optimizer.step()

            model.eval()
            with torch.no_grad():
                logits = model(x, edge_index)
                if not torch.isfinite(logits.sum()):  # the step made the model non-finite: never score argmax(NaN)
                    nonfinite_at = epoch
                    break
                val_loss = float(F.cross_entropy(logits[val_mask], y[val_mask]))
                pred = logits.argmax(dim=1)
            val_acc = _accuracy(pred, y, val_mask)
            improved = val_acc > best_val_acc if cfg.stop_strategy == "acc" else val_loss < best_val_loss
            if improved:
                best_val_loss, best_val_acc, bad_epochs = val_loss, val_acc, 0
                best = {
                    "train": _accuracy(pred, y, train_mask),
                    "val": val_acc,
                    "test": _accuracy(pred, y, test_mask),
                    "epoch": epoch,
                }
            else:
                bad_epochs += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.3f}", val=f"{val_acc:.3f}", best=best["epoch"])
            if bad_epochs >= cfg.patience:
                break
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    if best["epoch"] == 0:  # nothing to report: never a 0.0 accuracy from garbage
        cause = (f"the training loss or the outputs were not finite at epoch {nonfinite_at}" if nonfinite_at
                 else "the validation score was never finite (an empty validation split?)")  # fmt: skip
        raise NonFiniteTrainingError(
            f"{type(model).__name__} produced no usable epoch: {cause}. Check the inputs for NaN or infinite "
            "values and the learning rate."
        )
    if nonfinite_at:
        warnings.warn(f"{type(model).__name__}: the loss or the outputs were not finite at epoch {nonfinite_at}; "
                      f"training stopped and the best epoch before it ({best['epoch']}) is reported.",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
    epochs_run = max(epoch, 1)
    return TrainResult(
        train_acc=best["train"],
        val_acc=best["val"],
        test_acc=best["test"],
        best_epoch=best["epoch"],
        epochs_run=epochs_run,
        seconds=seconds,
        ms_per_epoch=1000.0 * seconds / epochs_run,
    )


def result_fields() -> list[str]:
    """Field names of :class:`TrainResult` (the columns an experiment table gets from it)."""
    return [f.name for f in dataclasses.fields(TrainResult)]
