r"""How one HUSE run trains: mini-batches of training rows, the HUSE objective, early stopping on validation.

Every epoch shuffles the training rows (a generator seeded with the run's seed) into batches; each batch is
embedded by every tower, the shared layer classifies each embedding, and :class:`~mmsheaf.huse.losses.HuseLoss`
(:math:`\alpha\mathcal{L}_{cls} + \beta\mathcal{L}_{graph} + \gamma\mathcal{L}_{gap}`) is minimised by Adam.
After each epoch the validation rows are embedded and scored by the MAP@R of their fused embeddings (the
normalised mean of the observed modalities, :meth:`~mmsheaf.huse.model.HuseModel.fused`), the criterion of
notebook 03's runs; the model ends at its best epoch. No number comes from garbage: a non-finite loss or
non-finite validation embeddings stop training (the best epoch before is kept, with a warning), and a run
without a finite epoch raises :class:`~mmsheaf.runs.checks.NonFiniteTrainingError`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mmsheaf.encoders.inputs import ModalityInputs
from mmsheaf.evaluation.embeddings import retrieval_metrics
from mmsheaf.huse.losses import HuseLoss
from mmsheaf.huse.model import HuseModel
from mmsheaf.runs.checks import check_usable_run, require_finite

__all__ = ["HuseTrainConfig", "HuseTrainResult", "train_huse"]


@dataclass(frozen=True)
class HuseTrainConfig:
    """Training settings of one HUSE run (the same for every row of the comparison).

    Args:
        epochs: Maximum epochs.
        batch_size: Training rows per step.
        lr: Adam learning rate.
        head_lr: Learning rate of the model's head parameters (HUSE's shared layer, a metric loss's class
            proxies), as notebook 03 trains class proxies faster; ``None``: ``lr``.
        weight_decay: Adam weight decay.
        patience: Stop after this many epochs without a better validation MAP@R (0: never).
        noise_std: Gaussian noise on text embeddings and standardised numbers while training.
        grad_clip: Clip the gradient norm to this value (``None``: no clipping).
        seed: Seed of the initialisation, the batches and the noise.
    """

    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-3
    head_lr: float | None = None
    weight_decay: float = 0.0
    patience: int = 3
    noise_std: float = 0.0
    grad_clip: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be a positive integer, got {self.epochs!r}"),
            (isinstance(self.batch_size, int) and self.batch_size >= 2, f"batch_size must be at least 2, got {self.batch_size!r}"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr!r}"),
            (self.head_lr is None or (self.head_lr > 0 and math.isfinite(self.head_lr)), f"head_lr must be None or a positive number, got {self.head_lr!r}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}"),
            (isinstance(self.patience, int) and self.patience >= 0, f"patience must be an integer >= 0, got {self.patience!r}"),
            (self.noise_std >= 0, f"noise_std must be >= 0, got {self.noise_std!r}"),
            (self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be None or positive, got {self.grad_clip!r}"),
        )  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(f"HuseTrainConfig: {message}.")


@dataclass
class HuseTrainResult:
    """What :func:`train_huse` returns (the model is left at its best validation state).

    Attributes:
        best_epoch: Epoch (1-based) of the best validation MAP@R of the fused embeddings.
        epochs_run: Epochs trained.
        seconds: Wall time, validation included.
        val: Validation retrieval metrics of the fused embeddings at the best epoch.
        history: One record per epoch: ``epoch``, ``loss`` and its parts ``cls``, ``graph``, ``gap`` (means
            over the epoch's steps), ``val_map_at_r``, ``seconds``.
    """

    best_epoch: int
    epochs_run: int
    seconds: float
    val: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


def _check_text(inputs: ModalityInputs) -> None:
    if inputs.text is not None:
        require_finite(inputs.text, "text (sentence embeddings)", inputs.mask("text"),
                       fix="re-embed those texts, or set text_mask False there")  # fmt: skip


def validation_map_at_r(model: nn.Module, inputs: ModalityInputs, labels: Tensor, rows: Tensor) -> dict[str, float]:
    """Retrieval metrics (MAP@R, R-Precision, P@1) of the fused embeddings of ``rows`` among themselves."""
    fused = model.encode_fused(inputs, rows)
    if not bool(torch.isfinite(fused).all()):
        raise FloatingPointError("non-finite embeddings")
    return retrieval_metrics(fused, labels[rows])


def train_huse(
    model: HuseModel | nn.Module,
    loss: HuseLoss | nn.Module,
    inputs: ModalityInputs,
    labels: Tensor,
    train_idx: Tensor,
    val_idx: Tensor,
    cfg: HuseTrainConfig = HuseTrainConfig(),
    *,
    name: str | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> HuseTrainResult:
    r"""Train ``model`` with ``loss`` on ``train_idx``; keep the state of the best validation epoch.

    Args:
        model: The towers and the shared layer (or a baseline with the same interface:
            :class:`~mmsheaf.huse.baselines.FusedModel`), with ``head_parameters()``.
        loss: The HUSE objective (its weights set the ablation), or a baseline's
            (:class:`~mmsheaf.huse.baselines.MetricObjective`).
        inputs: All rows' inputs.
        labels: :math:`(N,)` classes ``0 .. C-1`` (the order of the semantic graph).
        train_idx / val_idx: Training and validation rows.
        cfg: Settings.
        name: How messages name the run.
        progress: Show a tqdm bar over epochs.
        on_epoch: Called with each epoch's history record (e.g. Optuna pruning); what it raises propagates.

    Returns:
        :class:`HuseTrainResult`.

    Raises:
        ValueError: fewer than two training or validation rows, or observed text embeddings with NaN or inf.
        NonFiniteTrainingError: no epoch gave a finite loss and finite validation embeddings.
    """
    from tqdm import tqdm

    if train_idx.numel() < 2 or val_idx.numel() < 2:
        raise ValueError("train_huse needs at least two training and two validation rows.")
    _check_text(inputs)
    run = f"{name or 'HUSE'} (seed {cfg.seed}, lr {cfg.lr:g})"
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    loss = loss.to(inputs.device)
    params = [p for p in model.parameters() if p.requires_grad]
    head = {id(p) for p in model.head_parameters()}
    groups = [{"params": [p for p in params if id(p) not in head]},
              {"params": [p for p in params if id(p) in head], "lr": cfg.head_lr or cfg.lr}]  # fmt: skip
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay)
    best = (-math.inf, 0, copy.deepcopy(model.state_dict()), {})
    history: list[dict[str, float]] = []
    stop = ""
    t0 = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc=name or "HUSE", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = train_idx[torch.randperm(train_idx.numel(), generator=g)]
        sums = dict.fromkeys(("loss", "cls", "graph", "gap"), 0.0)
        steps = 0
        for batch in order.split(cfg.batch_size):
            if batch.numel() < 2:
                continue
            out = model(inputs, batch, noise_std=cfg.noise_std, generator=g)
            parts = loss(out.embeddings, out.logits, labels[batch], out.observed)
            if not torch.isfinite(parts.total):
                stop = f"the HUSE loss was not finite at epoch {epoch}, step {steps + 1}"
                break
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            for key, value in zip(sums, parts):
                sums[key] += float(value.detach())
            steps += 1
        if stop:
            break
        try:
            val = validation_map_at_r(model, inputs, labels, val_idx)
        except FloatingPointError:
            stop = f"the validation embeddings were not finite after epoch {epoch}"
            break
        record = {"epoch": float(epoch), **{k: v / max(steps, 1) for k, v in sums.items()},
                  "val_map_at_r": val["map_at_r"], "seconds": time.perf_counter() - t0}  # fmt: skip
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", map_at_r=f"{val['map_at_r']:.3f}")
        if val["map_at_r"] > best[0]:
            best = (val["map_at_r"], epoch, copy.deepcopy(model.state_dict()), val)
        elif cfg.patience and epoch - best[1] >= cfg.patience:
            break
    bar.close()
    check_usable_run(run, best[1], stop, never_finite="the validation MAP@R was never finite",
                     fix='Check the inputs for NaN or infinite values, and lower lr.')
    model.load_state_dict(best[2])
    model.eval()
    return HuseTrainResult(best_epoch=best[1], epochs_run=len(history), seconds=time.perf_counter() - t0,
                           val=dict(best[3]), history=history)  # fmt: skip
