r"""Training a multimodal encoder with a metric-learning loss: seeded, early-stopped on validation MAP@R.

.. code-block:: python

    encoder = MultimodalEncoder(inputs, EncoderConfig(), train_idx=task.train_idx)
    loss = build_loss("arcface", num_classes=task.num_classes, embedding_size=128)
    result = train_metric_encoder(encoder, loss, inputs, task.labels, task.train_idx, task.val_idx,
                                  MetricTrainConfig(epochs=30))

One protocol for every loss (as in Musgrave et al., "A Metric Learning Reality Check", ECCV 2020): the same
encoder, embedding size, optimiser, batch size and epoch budget. Batches hold ``m`` rows of each of
``batch_size / m`` classes (pytorch-metric-learning's ``MPerClassSampler``), so that every batch has positive
pairs for the pair-based losses; the self-supervised NT-Xent (two views of each row, :attr:`LossSpec.views`
``== 2``) samples rows uniformly and never sees a label. The loss's own parameters (the class proxies of the
ArcFace family) are trained by the same Adam with their own learning rate (``head_lr``).

No number comes from garbage: observed text embeddings holding NaN or infinite values are refused up front
(``ValueError``); a non-finite loss or non-finite validation embeddings stop training and the best epoch before
them is kept (with a warning); a run without one raises :class:`~mmsheaf.runs.checks.NonFiniteTrainingError`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..encoders.fusion import MultimodalEncoder
from ..encoders.inputs import ModalityInputs
from ..evaluation.embeddings import retrieval_metrics
from ..losses import MetricLoss
from ..runs.checks import NonFiniteTrainingError, check_usable_run, require_finite

__all__ = ["MetricTrainConfig", "MetricTrainResult", "NonFiniteTrainingError", "batch_plan", "check_inputs",
           "train_metric_encoder"]


@dataclass(frozen=True)
class MetricTrainConfig:
    """Training settings shared by every loss.

    Args:
        epochs: Most passes over the training rows.
        batch_size: Rows per step (per view).
        m_per_class: Rows of each class in a batch (raised when there are too few classes to fill it).
        lr: Adam learning rate of the encoder.
        head_lr: Learning rate of the loss's own parameters (class proxies); ``None``: ``lr``.
        weight_decay: Adam weight decay of the encoder (not of the proxies).
        patience: Epochs without a better validation MAP@R before stopping; ``0``: never stop early.
        noise_std: Std of the Gaussian feature noise of the two NT-Xent views (text embedding and standardised
            numerical cells); the other losses see clean features.
        view_dropout: Modality dropout of the two NT-Xent views (on top of the encoder's own
            ``modality_dropout``).
        max_steps: Most optimiser steps per epoch (``None``: one pass over the training rows).
        seed: Seed of initialisation, batches, dropout and noise.
        grad_clip: Max gradient norm (``None``: no clipping).
    """

    epochs: int = 30
    batch_size: int = 256
    m_per_class: int = 4
    lr: float = 1e-3
    head_lr: float | None = 1e-2
    weight_decay: float = 1e-4
    patience: int = 5
    noise_std: float = 0.1
    view_dropout: float = 0.2
    max_steps: int | None = None
    seed: int = 0
    grad_clip: float | None = 5.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.m_per_class < 1:
            raise ValueError(f"need epochs >= 1, batch_size >= 2, m_per_class >= 1; got {self.epochs}, "
                             f"{self.batch_size}, {self.m_per_class}.")  # fmt: skip
        if self.lr <= 0 or (self.head_lr is not None and self.head_lr <= 0) or self.weight_decay < 0:
            raise ValueError("lr and head_lr must be positive and weight_decay non-negative.")
        if self.patience < 0 or self.noise_std < 0 or not 0.0 <= self.view_dropout < 1.0:
            raise ValueError("need patience >= 0, noise_std >= 0 and view_dropout in [0, 1).")


@dataclass
class MetricTrainResult:
    """What :func:`train_metric_encoder` returns (the encoder is left at its best validation state).

    Attributes:
        best_epoch: Epoch (1-based) of the best validation MAP@R (a run without one raises instead).
        epochs_run: Epochs trained.
        seconds: Wall time of training, validation included.
        val: Validation retrieval metrics at the best epoch.
        history: One dict per epoch: ``epoch``, ``loss`` (mean over steps), ``val_map_at_r``, ``seconds``.
    """

    best_epoch: int
    epochs_run: int
    seconds: float
    val: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


def _m_for(batch_size: int, num_classes: int, m_min: int) -> int:
    """Smallest ``m >= m_min`` dividing ``batch_size`` with ``m * num_classes >= batch_size``."""
    for m in range(max(1, m_min), batch_size + 1):
        if batch_size % m == 0 and m * num_classes >= batch_size:
            return m
    return batch_size


def batch_plan(labels: Tensor, cfg: MetricTrainConfig, generator: torch.Generator, by_class: bool) -> list[Tensor]:
    r"""One epoch of batches (positions into ``labels``).

    With ``by_class``, each batch takes ``m`` random rows (with replacement only when a class has fewer than
    ``m``) from each of ``batch_size / m`` random classes, the classes cycling so that the epoch covers about
    as many rows as there are; otherwise a random permutation cut into batches.

    Shapes:
        - **labels:** :math:`(N,)`; **output:** a list of :math:`(B,)` long tensors
    """
    n = labels.numel()
    steps = max(1, math.ceil(n / cfg.batch_size))
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    if not by_class:
        perm = torch.randperm(n, generator=generator)
        if n < cfg.batch_size:
            return [perm]
        return [perm[i * cfg.batch_size:(i + 1) * cfg.batch_size] for i in range(min(steps, n // cfg.batch_size))]
    classes, inverse = torch.unique(labels, return_inverse=True)
    num_classes = classes.numel()
    if num_classes < 2:
        raise ValueError("metric learning needs at least two classes among the training rows.")
    m = _m_for(cfg.batch_size, num_classes, cfg.m_per_class)
    per_batch = max(2, min(num_classes, cfg.batch_size // m))
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    class_queue = torch.cat([torch.randperm(num_classes, generator=generator)
                             for _ in range(math.ceil(steps * per_batch / num_classes) + 1)])  # fmt: skip
    batches = []
    for s in range(steps):
        chosen = class_queue[s * per_batch:(s + 1) * per_batch]
        c_counts = counts[chosen].unsqueeze(1)
        width = max(int(c_counts.max()), m)
        keys = torch.rand(chosen.numel(), width, generator=generator)
        keys[torch.arange(width).unsqueeze(0) >= c_counts] = 2.0  # positions past the class's rows sort last
        distinct = keys.argsort(dim=1)[:, :m]  # m distinct rows where the class has at least m
        repeated = (torch.rand(chosen.numel(), m, generator=generator) * c_counts).long()
        picks = torch.where(c_counts >= m, distinct, repeated)
        batches.append(order[(starts[chosen].unsqueeze(1) + picks).reshape(-1)])
    return batches


def check_inputs(inputs: ModalityInputs) -> None:
    """``ValueError`` naming the rows whose *observed* text embedding holds NaN or infinite values.

    Rows without text (``text_mask`` ``False``) are never read. Numerical cells are not checked: NaN (and
    infinite) cells are missing cells by the encoder's contract (:class:`~mmsheaf.encoders.inputs.ModalityInputs`).
    """
    if inputs.text is not None:
        require_finite(inputs.text, "text (sentence embeddings)", inputs.mask("text"),
                       fix="re-embed those texts, or set text_mask False there")  # fmt: skip


def train_metric_encoder(
    encoder: MultimodalEncoder,
    loss: MetricLoss,
    inputs: ModalityInputs,
    labels: Tensor,
    train_idx: Tensor,
    val_idx: Tensor,
    cfg: MetricTrainConfig = MetricTrainConfig(),
    *,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    name: str | None = None,
    objective: nn.Module | None = None,
) -> MetricTrainResult:
    r"""Train ``encoder`` (and ``loss``'s parameters) on ``train_idx``; keep the state of the best epoch.

    Validation is retrieval among the validation rows (MAP@R, cosine), after every epoch. The training labels
    are re-indexed to ``0 .. C_train-1`` for the class-proxy losses, which therefore need
    ``loss.num_classes >= C_train``.

    Args:
        encoder: The encoder; trained in place and restored to its best validation state.
        loss: A :class:`~mmsheaf.losses.MetricLoss`.
        inputs: All rows' inputs.
        labels: :math:`(N,)` class of every row.
        train_idx / val_idx: Rows to train on / to validate on.
        cfg: Settings.
        progress: Show a tqdm bar over epochs.
        on_epoch: Called with each epoch's history record (e.g. Optuna pruning).
        name: How error messages name the run (default: the loss's name).
        objective: Replaces a one-view step's ``loss(encoder(inputs, rows), targets)`` (e.g. to add a graph
            penalty on more rows than the batch): called as ``objective(encoder, loss, inputs, rows, targets,
            generator)``, it returns ``(total, parts)``, ``total`` the scalar minimised and ``parts`` named
            scalars whose epoch means go into the history (``"loss"`` among them); its own parameters join
            Adam without weight decay. It must not hold ``encoder`` or ``loss`` as submodules.

    Returns:
        :class:`MetricTrainResult`. A non-finite loss or non-finite validation embeddings stop training; the best
        epoch before them is kept (with a warning).

    Raises:
        ValueError: observed text embeddings hold NaN or infinite values (:func:`check_inputs`).
        NonFiniteTrainingError: no epoch gave finite validation embeddings and a finite MAP@R (e.g. the loss was
            NaN from the first step): there is no result to report.
    """
    from tqdm import tqdm

    if train_idx.numel() < 2 or val_idx.numel() < 2:
        raise ValueError("need at least two training and two validation rows.")
    check_inputs(inputs)
    views = loss.spec.views
    if objective is not None and views != 1:
        raise ValueError(f"an objective replaces the step of a one-view loss; {loss.spec.name!r} compares "
                         f"{views} views: train it without one.")  # fmt: skip
    run = f"{name or loss.spec.name} (seed {cfg.seed}, lr {cfg.lr:g})"
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    train_labels = torch.unique(labels[train_idx], return_inverse=True)[1]
    params = [{"params": [p for p in encoder.parameters() if p.requires_grad], "weight_decay": cfg.weight_decay}]
    head = [p for p in loss.parameters() if p.requires_grad]
    if head:
        params.append({"params": head, "lr": cfg.head_lr or cfg.lr, "weight_decay": 0.0})
    if objective is not None and (extra := [p for p in objective.parameters() if p.requires_grad]):
        params.append({"params": extra, "weight_decay": 0.0})
    opt = torch.optim.Adam(params, lr=cfg.lr)

    best = (-math.inf, 0, copy.deepcopy(encoder.state_dict()), {})
    history: list[dict[str, float]] = []
    stop = ""
    t0 = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"{loss.spec.name}", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        encoder.train()
        loss.train()
        if objective is not None:
            objective.train()
        sums, steps = {"loss": 0.0}, 0
        for batch in batch_plan(train_labels, cfg, g, by_class=views == 1):
            rows = train_idx[batch]
            if views == 2:
                z = torch.cat([
                    encoder(inputs, rows, noise_std=cfg.noise_std,
                            modality_dropout=min(0.9, encoder.cfg.modality_dropout + cfg.view_dropout),
                            generator=g)
                    for _ in range(2)
                ])  # fmt: skip
                ids = torch.arange(rows.numel())
                value = loss(z, torch.cat([ids, ids]))
                parts = {"loss": value}
            elif objective is None:
                value = loss(encoder(inputs, rows, generator=g), train_labels[batch])
                parts = {"loss": value}
            else:
                value, parts = objective(encoder, loss, inputs, rows, train_labels[batch], g)
            if not torch.isfinite(value):
                stop = f"the {loss.spec.name} loss was not finite at epoch {epoch}, step {steps + 1}"
                break
            opt.zero_grad(set_to_none=True)
            value.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_([p for grp in params for p in grp["params"]], cfg.grad_clip)
            opt.step()
            for key, part in parts.items():
                sums[key] = sums.get(key, 0.0) + float(part.detach())
            steps += 1
        if stop:
            break
        emb = encoder.encode(inputs, val_idx)
        if not bool(torch.isfinite(emb).all()):
            stop = f"the validation embeddings were not finite after epoch {epoch}"
            break
        val = retrieval_metrics(emb, labels[val_idx])
        record = {"epoch": float(epoch), **{key: part / max(steps, 1) for key, part in sums.items()},
                  "val_map_at_r": val["map_at_r"], "seconds": time.perf_counter() - t0}  # fmt: skip
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", val_map=f"{val['map_at_r']:.4f}")
        if on_epoch is not None:
            on_epoch(record)
        if val["map_at_r"] > best[0]:
            best = (val["map_at_r"], epoch, copy.deepcopy(encoder.state_dict()), val)
        elif cfg.patience and epoch - best[1] >= cfg.patience:
            break
    bar.close()
    check_usable_run(run, best[1], stop, never_finite="the validation MAP@R was never finite",
                     fix="Check the inputs for NaN or infinite values, and lower lr, head_lr or the loss's scale "
                         "(or the objective's weight).")
    encoder.load_state_dict(best[2])
    encoder.eval()
    return MetricTrainResult(best_epoch=best[1], epochs_run=len(history), seconds=time.perf_counter() - t0,
                             val={k: float(v) for k, v in best[3].items()}, history=history)  # fmt: skip

