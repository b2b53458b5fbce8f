r"""How one self-supervised run trains, and what it is scored by.

:func:`train_ssl` trains an :class:`~mmsheaf.ssl.methods.SSLModel` on two augmented views of every training
image per step (Adam, cosine learning-rate decay, a fixed number of epochs: self-supervised training has no
label to stop on), logs label-free collapse diagnostics every few epochs, and scores the frozen network:

the same scores on the **embedding** :math:`z = g(f(x))` (what the loss sees, and what collapses) and, with
the suffix ``_h``, on the **representation** :math:`h = f(x)` (what self-supervised papers usually probe):
cosine k-NN accuracy (k = 20) on the validation and test images with the training images as the memory bank,
linear-probe accuracy on test (logistic regression on features standardised with the training rows' mean and
std, so that the probe reads directions, not the scale a similarity measure gives the embedding), the
normalised standard deviation (SimSiam §4.1), RankMe, α-ReQ and the covariance spectrum of the test images.
``seconds`` counts the optimisation steps only, not the diagnostics.

A run whose loss stops being finite (an unbounded similarity, for instance) stops there and is marked
``diverged``; it is scored with its parameters at that step (``NaN`` where they give non-finite outputs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmsheaf.data.augment import ImageAugment
from mmsheaf.data.images import ImageSplits
from mmsheaf.evaluation.collapse import alpha_req, covariance_spectrum, normalised_std, rankme
from mmsheaf.evaluation.embeddings import classification_metrics
from mmsheaf.ssl.methods import SSLModel
from mmsheaf.ssl.reviews import RowSplits, RowViews

Splits = ImageSplits | RowSplits
"""What a run trains on: images, or rows of a table-like data set (their ``*_x`` are row indices)."""

__all__ = ["SCORES", "SSLTrainConfig", "SSLTrainResult", "embed_split", "score", "train_ssl"]


@dataclass(frozen=True)
class SSLTrainConfig:
    """How one run trains.

    Args:
        epochs: Passes over the training images (``0``: the network as initialised).
        batch_size: Images per step (each seen as two views).
        lr: Adam's learning rate (cosine decay to 0 over the run).
        weight_decay: Adam's (L2) weight decay.
        log_every: Epochs between two diagnostics records (plus one before training and one at the end).
        knn_k: Neighbours of the k-NN probe.
        seed: Seed of the batch order and the image augmentations (the caller seeds the initialisation and the
            global generator, which the reviews' views draw from).
        device: Torch device.
    """

    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    log_every: int = 5
    knn_k: int = 20
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 2 or self.log_every < 1 or self.knn_k < 1:
            raise ValueError("epochs must be >= 0, batch_size >= 2 (the batch losses need two rows), log_every and "
                             "knn_k >= 1.")  # fmt: skip


@dataclass
class SSLTrainResult:
    """A trained run: its scores, its diagnostics over training, the wall time and whether it diverged."""

    scores: dict[str, Any]
    history: list[dict[str, float]]
    seconds: float
    diverged: bool
    steps: int


@torch.no_grad()
def embed_split(model: SSLModel, x: Tensor, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    r"""The representations and embeddings of images ``x`` by the frozen network (eval mode).

    **Shapes:** ``x`` :math:`(N, C, H, W)`; outputs :math:`(N, F)` and :math:`(N, D)`.
    """
    was = model.training
    model.eval()
    hs, zs = [], []
    device = next(model.parameters()).device
    for chunk in x.split(batch_size):
        h = model.represent(chunk.to(device))
        hs.append(h)
        zs.append(model.projector(h))
    model.train(was)
    return torch.cat(hs).cpu(), torch.cat(zs).cpu()


def _finite(*tensors: Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _diagnostics(model: SSLModel, data: Splits, k: int) -> dict[str, float]:
    """The record logged during training: label-free diagnostics of the validation images' embeddings and
    representations, and the embeddings' k-NN accuracy (for the figures)."""
    _, z_tr = embed_split(model, data.train_x)
    h, z = embed_split(model, data.val_x)
    if not _finite(h, z, z_tr):
        return {"norm_std": math.nan, "rankme": math.nan, "rankme_h": math.nan, "knn_acc": math.nan}
    knn = classification_metrics(z_tr, data.train_y, z, data.val_y, "knn", k)["accuracy"]
    return {"norm_std": normalised_std(z), "rankme": rankme(z), "rankme_h": rankme(h), "knn_acc": knn}


SCORES: tuple[str, ...] = ("knn_acc", "val_knn_acc", "linear_acc", "norm_std", "rankme", "alpha_req",
                           "knn_acc_h", "val_knn_acc_h", "linear_acc_h", "norm_std_h", "rankme_h", "alpha_req_h")  # fmt: skip
"""The scalar scores of a run: on the embedding :math:`z`, and with ``_h`` on the representation :math:`h`."""


def _standardised(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    """Both sets standardised with the training rows' per-feature mean and std (constant features stay 0)."""
    mean, std = train.mean(0), train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def _space_scores(train: Tensor, val: Tensor, test: Tensor, data: Splits, k: int) -> dict[str, Any]:
    train_std, test_std = _standardised(train, test)
    return {
        "knn_acc": classification_metrics(train, data.train_y, test, data.test_y, "knn", k)["accuracy"],
        "val_knn_acc": classification_metrics(train, data.train_y, val, data.val_y, "knn", k)["accuracy"],
        "linear_acc": classification_metrics(train_std, data.train_y, test_std, data.test_y, "linear")[
            "accuracy"
        ],
        "norm_std": normalised_std(test),
        "rankme": rankme(test),
        "alpha_req": alpha_req(test),
        "spectrum": [float(v) for v in covariance_spectrum(test)],
    }


def score(model: SSLModel, data: Splits, k: int = 20) -> dict[str, Any]:
    """The scores of a trained network (module docstring) on its embeddings and (suffix ``_h``) its
    representations of the test images; ``NaN`` where its outputs are not finite."""
    (h_tr, z_tr), (h_val, z_val), (h, z) = (
        embed_split(model, x) for x in (data.train_x, data.val_x, data.test_x)
    )
    if not _finite(h_tr, z_tr, h_val, z_val, h, z):
        return {**{c: math.nan for c in SCORES}, "spectrum": [], "spectrum_h": []}
    on_h = _space_scores(h_tr, h_val, h, data, k)
    return {**_space_scores(z_tr, z_val, z, data, k), **{f"{key}_h": v for key, v in on_h.items()}}


def train_ssl(model: SSLModel, data: Splits, augment: ImageAugment | RowViews, cfg: SSLTrainConfig,
              name: str = "ssl", progress: bool = True) -> SSLTrainResult:  # fmt: skip
    """Train ``model`` on ``data``'s training images (module docstring) and score it.

    Args:
        model: The network (seeded by the caller).
        data: The splits (images, or rows).
        augment: What makes the two views (:meth:`two_views`).
        cfg: The run's settings.
        name: Label of the progress bar.
        progress: Show a tqdm bar over the epochs.
    """
    device = torch.device(cfg.device)
    model.to(device)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    history: list[dict[str, float]] = [{"epoch": 0, "loss": math.nan, **_diagnostics(model, data, cfg.knn_k)}]
    n = data.train_x.size(0)
    steps_per_epoch = max(1, n // cfg.batch_size)  # the last incomplete batch is dropped (batch losses)
    total = steps_per_epoch * cfg.epochs
    seconds, step, diverged = 0.0, 0, False
    if model.trains and cfg.epochs > 0:
        opt = torch.optim.Adam(model.online_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
        bar = tqdm(range(1, cfg.epochs + 1), desc=name, disable=not progress, leave=False, smoothing=0)
        for epoch in bar:
            model.train()
            order = torch.randperm(n, generator=gen)
            losses = []
            start = time.perf_counter()
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x1, x2 = (v.to(device) for v in augment.two_views(data.train_x[idx], gen))
                loss = model.loss(x1, x2, data.train_y[idx].to(device))
                if not torch.isfinite(loss):
                    diverged = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                model.update_target(step / total)
                losses.append(float(loss.detach()))
            seconds += time.perf_counter() - start
            record_due = diverged or epoch % cfg.log_every == 0 or epoch == cfg.epochs
            if record_due:
                mean = sum(losses) / len(losses) if losses else math.nan
                history.append({"epoch": epoch, "loss": mean, **_diagnostics(model, data, cfg.knn_k)})
                bar.set_postfix(loss=f"{mean:.3g}", knn=f"{history[-1]['knn_acc']:.3f}")
            if diverged:
                break
    return SSLTrainResult(score(model, data, cfg.knn_k), history, seconds, diverged, step)
