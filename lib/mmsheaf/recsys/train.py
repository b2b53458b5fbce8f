r"""BPR training of recommenders with early stopping on a validation ranking metric.

.. code-block:: python

    set_seed(0)
    model = build_recommender("lightgcn", data, dim=64, layers=3)
    result = fit_recommender(model, data, RecTrainConfig(epochs=200, patience=10, seed=0))
    result.test["recall@20"]     # test metrics of the epoch with the best validation recall@20

One epoch shuffles the training interactions into batches of ``batch_size``; for each batch the model runs
one full forward (full-batch propagation over the training graph) and Adam takes a step on the model's
:meth:`~mmsheaf.recsys.registry.Recommender.training_loss`: the BPR loss
(`Rendle et al., UAI 2009 <https://arxiv.org/abs/1205.2618>`_, :mod:`mmsheaf.recsys.losses`)

.. math::
    \mathcal{L} = \frac{1}{B}\sum_{(u, i, j)} \operatorname{softplus}(s_{uj} - s_{ui})
    + \lambda\,\frac{\lVert\mathbf{e}_u\rVert^2 + \lVert\mathbf{e}_i\rVert^2 + \lVert\mathbf{e}_j\rVert^2}{2B},

with :math:`s_{ui} = \langle \mathbf{e}_u, \mathbf{e}_i \rangle` on the model's *output* embeddings and one
negative :math:`j` per positive, drawn uniformly among the items :math:`u` has no training interaction with,
unless the model defines its own objective on the same batches (DropoutNet, CLCRec).
Every ``eval_every`` epochs the validation split is ranked (:func:`~mmsheaf.recsys.evaluate.ranking_metrics`,
training items excluded); training stops after ``patience`` evaluations without a strict improvement of
``monitor``, and the model ends with the parameters of the best evaluation, whose test metrics are reported
(test ranking also excludes the training items only, as MMRec does). When the validation split has no user
to rank (a cold-start split: its candidates are items whose interactions are all in test), there is nothing
to select on: the model trains for ``epochs`` epochs and the final model is scored. No number is ever computed from
garbage: NaN or infinite features of observed rows are refused up front (``ValueError``); a non-finite training
loss or non-finite embeddings stop training, and the best finite evaluation before them is reported (with a
warning); a run without one raises :class:`~mmsheaf.runs.checks.NonFiniteTrainingError`. All randomness comes from
:func:`mmsheaf.runs.keys.set_seed` and a ``torch.Generator`` seeded with ``seed``: the same model, data and
config give the same result on the same device.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys.evaluate import METRIC_NAMES, metric_keys, ranking_metrics
from mmsheaf.recsys.losses import bpr_loss
from mmsheaf.recsys.registry import Recommender, modality_mask
from mmsheaf.runs.checks import NonFiniteTrainingError, require_finite
from mmsheaf.runs.keys import set_seed

__all__ = [
    "BPRSampler",
    "NonFiniteTrainingError",
    "RecFitResult",
    "RecTrainConfig",
    "bpr_loss",
    "check_features",
    "evaluate_recommender",
    "fit_recommender",
    "interactions_to",
]


@dataclass(frozen=True)
class RecTrainConfig:
    """BPR optimisation and early-stopping settings (validated on construction).

    Args:
        lr: Adam learning rate.
        batch_size: Training interactions (positive pairs) per step.
        epochs: Maximum number of epochs.
        reg_weight: :math:`\\lambda`, the L2 weight on the batch's output embeddings.
        eval_every: Evaluate on the validation split every this many epochs (and after the last one).
        patience: Stop after this many evaluations without a strict improvement of ``monitor``.
        monitor: Validation metric selecting the best epoch, ``"recall@K"`` or ``"ndcg@K"`` with ``K`` in
            ``ks``.
        ks: Cutoffs of the reported metrics.
        seed: Seed of :func:`mmsheaf.runs.keys.set_seed` and of the shuffling/negative-sampling generator.
        device: Torch device (``"cpu"``, ``"cuda"``…); the model and data are moved there.
        max_seconds: Stop after the epoch that exceeds this wall time (``None``: no limit).
    """

    lr: float = 1e-3
    batch_size: int = 2048
    epochs: int = 200
    reg_weight: float = 1e-4
    eval_every: int = 1
    patience: int = 10
    monitor: str = "recall@20"
    ks: tuple[int, ...] = (10, 20)
    seed: int = 0
    device: str = "cpu"
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "reg_weight", float(self.reg_weight))
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        valid_monitors = metric_keys(self.ks)
        checks = [
            (self.lr > 0.0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.reg_weight >= 0.0, f"reg_weight must be >= 0, got {self.reg_weight}"),
            (self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (len(self.ks) >= 1 and min(self.ks) >= 1, f"ks must be non-empty cutoffs >= 1, got {self.ks}"),
            (self.monitor in valid_monitors,
             (f"monitor must be one of {valid_monitors} (metrics {METRIC_NAMES} at the cutoffs ks), "
              f"got {self.monitor!r}")),
            (self.max_seconds is None or self.max_seconds > 0,
             f"max_seconds must be None or > 0, got {self.max_seconds}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(f"RecTrainConfig: {message}.")


@dataclass(frozen=True)
class RecFitResult:
    """Outcome of :func:`fit_recommender`.

    Args:
        val: Validation metrics at the best evaluation (``{"recall@10": ..., "num_users": ...}``).
        test: Test metrics of the model at the best evaluation.
        best_epoch: Epoch of the best evaluation, counted from 1; ``0`` when the validation split has no user
            to rank (nothing to select on: the model trained for all its epochs is scored). A run whose
            evaluations were never finite raises :class:`~mmsheaf.runs.checks.NonFiniteTrainingError` instead.
        epochs_run: Epochs actually trained.
        seconds: Wall time of the whole loop (training and evaluations).
        ms_per_epoch: Milliseconds per epoch of training alone (no evaluation).
        history: One dict per evaluation: ``{"epoch", "loss" (mean BPR loss of the epoch), "seconds"
            (elapsed), "val_recall@10", ...}``.
    """

    val: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    ms_per_epoch: float
    history: list[dict[str, float]] = field(default_factory=list)


def interactions_to(data: InteractionData, device: torch.device | str) -> InteractionData:
    """``data`` with every tensor on ``device`` (``data`` itself when they all are already there)."""
    device = torch.device(device)

    def move(x: Any) -> Any:
        return x.to(device) if isinstance(x, Tensor) else x

    tensors = [data.train, data.val, data.test, data.candidates, data.val_candidates, data.item_labels,
               *data.user_features.values(), *data.item_features.values(),
               *data.user_mask.values(), *data.item_mask.values()]  # fmt: skip
    if all(t is None or t.device == device for t in tensors):
        return data
    return data.replace(
        train=move(data.train), val=move(data.val), test=move(data.test),
        candidates=move(data.candidates), val_candidates=move(data.val_candidates),
        item_labels=move(data.item_labels),
        user_features={k: move(v) for k, v in data.user_features.items()},
        item_features={k: move(v) for k, v in data.item_features.items()},
        user_mask={k: move(v) for k, v in data.user_mask.items()},
        item_mask={k: move(v) for k, v in data.item_mask.items()},
    )  # fmt: skip


class BPRSampler:
    """Shuffled BPR triples ``(user, positive, negative)`` of the training interactions.

    Negatives are uniform over the items of the training catalogue the user has no training interaction with:
    drawn uniformly, then the draws that hit a training pair are redrawn (vectorised rejection sampling against
    the sorted keys ``user * I + item``) until none does. The catalogue is the items whose id is observed
    (``item_mask["id"]``, every item unless masked): a cold item does not exist at training time, so it is never
    a negative (drawing it would teach every content model to push cold items' content down).

    Args:
        data: The interactions (``data.train`` gives the positives).
        generator: CPU generator driving the shuffling and the negatives.

    Raises:
        ValueError: no training interactions, or a user interacted with every catalogue item (it has no
            negative).
    """

    def __init__(self, data: InteractionData, generator: torch.Generator) -> None:
        train = data.train.cpu()
        if train.size(1) == 0:
            raise ValueError(f"{data.name} has no training interactions: nothing to train on.")
        self.num_items, self.generator = data.num_items, generator
        self.users, self.items = train[0], train[1]
        self.keys = torch.unique(self.users * self.num_items + self.items)  # sorted
        catalogue = modality_mask(data, "item", "id").cpu()
        self.pool = None if bool(catalogue.all()) else catalogue.nonzero().flatten()  # None: every item
        size = self.num_items if self.pool is None else self.pool.numel()
        degree = torch.bincount(self.keys // self.num_items, minlength=data.num_users)
        if int(degree.max()) >= size:
            full = (degree >= size).nonzero().flatten()[:5].tolist()
            raise ValueError(f"user(s) {full} interacted with every item in train: BPR has no negative for "
                             "them; remove such users from the data.")  # fmt: skip

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        """``(n,)`` bool: ``True`` where ``(users[k], items[k])`` is a training interaction."""
        keys = users * self.num_items + items
        pos = torch.searchsorted(self.keys, keys).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == keys

    def _draw(self, shape: torch.Size) -> Tensor:
        if self.pool is None:
            return torch.randint(self.num_items, shape, generator=self.generator)
        return self.pool[torch.randint(self.pool.numel(), shape, generator=self.generator)]

    def negatives(self, users: Tensor) -> Tensor:
        """One uniform non-interacted catalogue item per entry of ``users``, :math:`(n,)` long."""
        neg = self._draw(users.shape)
        bad = self.is_positive(users, neg).nonzero().flatten()
        while bad.numel():
            neg[bad] = self._draw(bad.shape)
            bad = bad[self.is_positive(users[bad], neg[bad])]
        return neg

    def epoch(self, batch_size: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The batches of one epoch: shuffled ``(users, positives, negatives)``, each :math:`(\\le B,)` on CPU."""
        order = torch.randperm(self.users.numel(), generator=self.generator)
        users, items = self.users[order], self.items[order]
        negs = self.negatives(users)
        return list(
            zip(users.split(batch_size), items.split(batch_size), negs.split(batch_size), strict=True)
        )


def check_features(data: InteractionData) -> None:
    """``ValueError`` naming the side, modality and rows where an *observed* feature row holds NaN or inf.

    Rows whose modality is missing (mask ``False``) are never read by the models, so they may hold anything.
    """
    for side in ("user", "item"):
        for m, x in (data.user_features if side == "user" else data.item_features).items():
            require_finite(x, f"{data.name}: {side}_features[{m!r}]", modality_mask(data, side, m),
                           fix=f"repair those rows, or mark them missing in {side}_mask[{m!r}]")  # fmt: skip


@torch.no_grad()
def _embed(model: nn.Module, data: InteractionData) -> tuple[Tensor, Tensor]:
    was_training = model.training
    model.eval()
    try:
        return model(data)
    finally:
        model.train(was_training)


def _finite(embeddings: tuple[Tensor, Tensor]) -> bool:
    return all(bool(torch.isfinite(e).all()) for e in embeddings)


def evaluate_recommender(model: nn.Module, data: InteractionData, split: str = "val",
                         ks: tuple[int, ...] = (10, 20), **kwargs: Any) -> dict[str, float]:  # fmt: skip
    """:func:`~mmsheaf.recsys.evaluate.ranking_metrics` of ``model(data)`` in eval mode (``kwargs`` go to it;
    ``data`` must be on the model's device); ``ValueError`` when the embeddings are not finite."""
    return ranking_metrics(*_embed(model, data), data, split, ks=ks, **kwargs)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_recommender(
    model: nn.Module,
    data: InteractionData,
    cfg: RecTrainConfig | None = None,
    progress: bool = False,
    callback: Callable[[int, Mapping[str, float]], None] | None = None,
    name: str | None = None,
) -> RecFitResult:
    """Train ``model`` in place with BPR and early stopping; report the metrics of its best validation epoch.

    Args:
        model: A :class:`~mmsheaf.recsys.models.Recommender` (any module with ``forward(data) -> (user_emb,
            item_emb)``), trained from its current parameters; build it after :func:`mmsheaf.runs.keys.set_seed`
            for a reproducible initialisation. It ends with the parameters of the best evaluation loaded.
        data: The interactions (``train`` to fit, ``val`` to select, ``test`` to report).
        cfg: :class:`RecTrainConfig` (default ``RecTrainConfig()``).
        progress: Show a tqdm bar over epochs with the loss and the validation ``monitor``.
        callback: Called as ``callback(epoch, val_metrics)`` after each evaluation, e.g. to report to Optuna;
            whatever it raises (``optuna.TrialPruned``) propagates.
        name: How error messages name the run (default: the model's class).

    Returns:
        :class:`RecFitResult`. Training also stops after ``cfg.max_seconds`` (the stopping epoch is evaluated),
        and when the loss or the embeddings are not finite (the best evaluation before is reported, with a
        warning).

    Raises:
        ValueError: an observed feature row holds NaN or infinite values (:func:`check_features`).
        NonFiniteTrainingError: no evaluation had finite embeddings and a finite ``monitor`` (the loss was not
            finite from the first epoch): there is no result to report.
    """
    cfg = cfg if cfg is not None else RecTrainConfig()
    run = f"{name or type(model).__name__} (seed {cfg.seed}, lr {cfg.lr:g})"
    check_features(data)
    device = torch.device(cfg.device)
    set_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = model.to(device)
    data = interactions_to(data, device)
    sampler = BPRSampler(data, generator)
    if isinstance(model, Recommender):
        model.prepare(data, cfg)  # e.g. DropoutNet's pretrained preference model
        set_seed(cfg.seed)  # the same draws after it whatever it consumed
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters: nothing to optimise.")
    optimizer = torch.optim.Adam(params, lr=cfg.lr)

    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state, best_val = -math.inf, 0, None, None
    bad_evals, epoch, train_seconds, stop, last_val = 0, 0, 0.0, "", None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=type(model).__name__, unit="epoch", leave=False)
    start = time.perf_counter()
    try:
        for epoch in range(1, cfg.epochs + 1):
            _sync(device)
            t0 = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            for step, (users, pos, neg) in enumerate(sampler.epoch(cfg.batch_size), 1):
                users, pos, neg = users.to(device), pos.to(device), neg.to(device)
                optimizer.zero_grad()
                if isinstance(model, Recommender):  # its own objective (BPR unless it overrides it)
                    loss = model.training_loss(data, users, pos, neg, cfg.reg_weight)
                else:
                    loss = bpr_loss(*model(data), users, pos, neg, cfg.reg_weight)
                if not torch.isfinite(loss):
                    stop = f"the training loss was not finite at epoch {epoch}, step {step}"
                    break
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * users.numel()
                count += users.numel()
            _sync(device)
            train_seconds += time.perf_counter() - t0
            if stop:
                break
            out_of_time = cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs or out_of_time:
                embeddings = _embed(model, data)
                if not _finite(embeddings):
                    stop = f"the embeddings were not finite at the validation of epoch {epoch}"
                    break
                val = ranking_metrics(*embeddings, data, "val", ks=cfg.ks)
                score = val[cfg.monitor]
                history.append({"epoch": epoch, "loss": total / count, "seconds": time.perf_counter() - start,
                                **{f"val_{k}": v for k, v in val.items()}})  # fmt: skip
                if val["num_users"] == 0:  # nothing to select on (see "no validation user" below)
                    last_val = val
                elif score > best_score:  # nan never improves
                    best_score, best_epoch, best_val, bad_evals = score, epoch, val, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_evals += 1
                if callback is not None:
                    callback(epoch, val)
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{total / count:.4f}", **{cfg.monitor: f"{score:.4f}"}, best=best_epoch
                    )
            if bar is not None:
                bar.update(1)
            if bad_evals >= cfg.patience or out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()
    if best_state is None and not stop and history and all(h["val_num_users"] == 0 for h in history):
        # No validation user: the split has no validation interaction among its candidate items (a cold-start
        # split whose candidates are items held out with all their interactions). There is nothing to select
        # an epoch on, so the run trained all cfg.epochs epochs and its final model is scored.
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        best_val = last_val
    if best_state is None:  # nothing to report: never metrics ranked by NaN scores
        cause = stop or f"the validation {cfg.monitor} was never finite"
        raise NonFiniteTrainingError(f"{run} produced no usable epoch: {cause}. Check the input features and "
                                     "the model's outputs for NaN or infinite values, and lower lr or "
                                     "reg_weight.")  # fmt: skip
    if stop:
        warnings.warn(f"{run}: {stop}; training stopped and the best epoch before it ({best_epoch}) is "
                      "reported.", RuntimeWarning, stacklevel=2)  # fmt: skip
    model.load_state_dict(best_state)
    embeddings = _embed(model, data)
    if not _finite(embeddings):
        raise NonFiniteTrainingError(f"{run}: the embeddings of the best epoch ({best_epoch}) are not finite "
                                     "on the test data; check the model for NaN or infinite outputs.")  # fmt: skip
    test = ranking_metrics(*embeddings, data, "test", ks=cfg.ks)
    seconds = time.perf_counter() - start
    epochs_run = max(epoch, 1)
    return RecFitResult(
        val=dict(best_val),
        test=test,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=seconds,
        ms_per_epoch=1000.0 * train_seconds / epochs_run,
        history=history,
    )
