r"""How one run of the graph-regularisation study trains, and what it is scored by.

Full batch, as notebook 01: one Adam step per epoch on the cross-entropy of the labelled training nodes plus
:math:`\alpha` times the penalty over every edge of the graph (:meth:`RegularisedMLP.penalty`), then an
evaluation of all nodes in eval mode; the reported accuracies are those of the epoch with the best validation
accuracy, and training stops after ``patience`` epochs without a new best; the model is left with that
epoch's weights. Inference never reads the graph:
:func:`inference_ms` times the model's forward pass over all nodes (features only), per node.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from mmsheaf.graphreg.model import RegularisedMLP

__all__ = ["HISTORY_EVERY", "GraphRegResult", "GraphRegTrainConfig", "inference_ms", "train_graphreg"]

HISTORY_EVERY = 10
"""Epochs between two records of a run's history (the first epoch is recorded too)."""


@dataclass(frozen=True)
class GraphRegTrainConfig:
    """Optimisation settings (notebook 01's: Adam 0.01, weight decay 5e-4).

    Args:
        lr: Adam's learning rate.
        weight_decay: Adam's weight decay (every parameter).
        epochs: Maximum epochs.
        patience: Epochs without a new best validation accuracy before stopping.
        seed: The run's seed, recorded in its key; the caller seeds the initialisation and dropout with it
            (:func:`~mmsheaf.graphreg.protocol.run_specs` does).
    """

    lr: float = 0.01
    weight_decay: float = 5e-4
    epochs: int = 500
    patience: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.weight_decay >= 0 and self.epochs >= 1 and self.patience >= 1):
            raise ValueError(f"need lr > 0, weight_decay >= 0, epochs >= 1 and patience >= 1, got {self}.")


@dataclass
class GraphRegResult:
    """A trained run: accuracies at the best validation epoch, when it was, the penalty there, the time per
    epoch and the inference time per node."""

    val_acc: float
    test_acc: float
    best_epoch: int
    epochs_run: int
    penalty: float
    seconds: float
    infer_ms: float
    history: list[dict[str, float]]

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> float:
    return float((logits[mask].argmax(1) == y[mask]).float().mean()) if bool(mask.any()) else math.nan


@torch.no_grad()
def inference_ms(model: RegularisedMLP, x: Tensor, repeats: int = 5) -> float:
    """Median milliseconds per node of the eval-mode forward pass over all nodes (the graph is not read)."""
    model.eval()
    model(x)  # warm-up (allocations), as the references are timed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / max(1, x.size(0))


def train_graphreg(model: RegularisedMLP, data: Data, train_mask: Tensor, val_mask: Tensor, test_mask: Tensor,
                   cfg: GraphRegTrainConfig) -> GraphRegResult:  # fmt: skip
    r"""Train ``model`` on ``data`` (module docstring) and score it.

    Args:
        model: The MLP and its penalty (seeded by the caller).
        data: ``x``, ``y``, ``edge_index`` (both directions) and optionally ``edge_weight``.
        train_mask: The labelled nodes the cross-entropy reads (and Neural Graph Machines' edge types).
        val_mask: The nodes the best epoch is chosen on.
        test_mask: The nodes scored at that epoch.
        cfg: Optimisation settings.

    **Shapes:** ``data.x`` :math:`(N, F)`, masks :math:`(N,)` bool.
    """
    if not bool(train_mask.any()) or not bool(val_mask.any()):
        raise ValueError("the training and validation masks must each select at least one node.")
    alpha = model.reg_cfg.alpha
    edge_weight = getattr(data, "edge_weight", None)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best = {"val": -1.0, "test": math.nan, "epoch": 0, "penalty": math.nan}
    history: list[dict[str, float]] = []
    seconds, since, epoch = 0.0, 0, 0
    best_state: dict[str, Tensor] = {}
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        z, logits = model(data.x)
        loss = F.cross_entropy(logits[train_mask], data.y[train_mask])
        penalty = (
            model.penalty(data.x, z, logits, data.edge_index, edge_weight, train_mask, data.y)
            if alpha
            else None
        )
        total = loss + alpha * penalty if penalty is not None else loss
        if not torch.isfinite(total):
            raise FloatingPointError(f"the loss stopped being finite at epoch {epoch} (alpha={alpha}): lower alpha "
                                     "or the learning rate.")  # fmt: skip
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        seconds += time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            _, logits = model(data.x)
        val, test = _accuracy(logits, data.y, val_mask), _accuracy(logits, data.y, test_mask)
        pen = float(penalty.detach()) if penalty is not None else 0.0
        if epoch == 1 or epoch % HISTORY_EVERY == 0:
            history.append({"epoch": epoch, "loss": float(loss.detach()), "penalty": pen, "val_acc": val})
        if val > best["val"]:
            best, since = {"val": val, "test": test, "epoch": epoch, "penalty": pen}, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= cfg.patience:
                break
    model.load_state_dict(best_state)  # the model of the reported epoch (its embeddings, its timing)
    return GraphRegResult(best["val"], best["test"], best["epoch"], epoch, best["penalty"], seconds / epoch,
                          inference_ms(model, data.x), history)  # fmt: skip
