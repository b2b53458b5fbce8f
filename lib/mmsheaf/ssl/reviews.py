r"""Self-supervised learning on the report's own multimodal data: the clothing reviews of task T2.

The backbone is notebook 03's multimodal encoder (:class:`~mmsheaf.encoders.fusion.MultimodalEncoder`: review
text, tabular record and same-item graph fused into one L2-normalised vector), and a row's two views are two
passes of it in training mode, each with its own Gaussian feature noise (on the text embedding and the
standardised numerical cells) and modality dropout: the augmentations notebook 03 uses for NT-Xent. The labels
(T2: the garment's ``Class Name``) are read only by the probes and the supervised reference; the items are split
60/20/20 as in notebook 03.

.. code-block:: python

    data = load_review_splits(max_rows=1500)
    backbone = ReviewBackbone(data, EncoderConfig(embedding_dim=64), RowViews(noise_std=0.1, view_dropout=0.2))
    model = SSLModel(SSLConfig("vicreg"), num_classes=data.num_classes, backbone=backbone)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from torch import Tensor, nn

from mmsheaf import paths
from mmsheaf.data.clothing import load_clothing_task
from mmsheaf.encoders.fusion import EncoderConfig, MultimodalEncoder
from mmsheaf.encoders.inputs import ModalityInputs, task_inputs

__all__ = ["ReviewBackbone", "RowSplits", "RowViews", "load_review_splits"]


@dataclass(frozen=True, eq=False)
class RowSplits:
    r"""The rows of a table-like data set split for self-supervised learning: ``*_x`` are row indices into
    :attr:`inputs` (the same attribute names as :class:`~mmsheaf.data.images.ImageSplits`, so that
    :func:`~mmsheaf.ssl.train.train_ssl` reads either).

    **Shapes:** ``*_x`` and ``*_y`` :math:`(N_\text{split},)` long.
    """

    name: str
    inputs: ModalityInputs
    train_x: Tensor
    val_x: Tensor
    test_x: Tensor
    train_y: Tensor
    val_y: Tensor
    test_y: Tensor
    num_classes: int

    def __repr__(self) -> str:
        return (f"RowSplits(name={self.name!r}, train={self.train_x.numel()}, val={self.val_x.numel()}, "
                f"test={self.test_x.numel()}, num_classes={self.num_classes})")  # fmt: skip


@lru_cache(maxsize=2)
def _load(frozen: tuple[tuple[str, Any], ...]) -> RowSplits:
    task = load_clothing_task("category", **dict(frozen))
    y = task.labels
    return RowSplits("clothing-t2", task_inputs(task), task.train_idx, task.val_idx, task.test_idx,
                     y[task.train_idx], y[task.val_idx], y[task.test_idx], len(task.label_names))  # fmt: skip


def load_review_splits(**options: Any) -> RowSplits:
    """T2 of the clothing reviews (:func:`~mmsheaf.data.clothing.load_clothing_task` ``("category",
    **options)``, e.g. ``max_rows``) as :class:`RowSplits`; once per process and data root."""
    return _load(tuple(sorted({"root": str(paths.data_root()), **options}.items())))


@dataclass(frozen=True)
class RowViews:
    """The two views of a row: the row twice (:meth:`two_views`); :class:`ReviewBackbone` draws each pass's
    noise and modality dropout in training mode.

    Args:
        noise_std: Std of the Gaussian noise on the text embeddings and standardised numerical cells
            (notebook 03's NT-Xent views: 0.1).
        view_dropout: Probability of dropping each observed modality of a row in a view, on top of the
            encoder's own ``modality_dropout`` (notebook 03: 0.2; at least one modality is always kept).
    """

    noise_std: float = 0.1
    view_dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.noise_std < 0 or not 0.0 <= self.view_dropout < 1.0:
            raise ValueError(f"need noise_std >= 0 and view_dropout in [0, 1), got {self.noise_std}, "
                             f"{self.view_dropout}.")  # fmt: skip

    def two_views(self, x: Tensor, generator: Any = None) -> tuple[Tensor, Tensor]:
        return x, x


class ReviewBackbone(nn.Module):
    r"""Notebook 03's multimodal encoder over the rows of :class:`RowSplits`, with :class:`RowViews`' noise and
    modality dropout in training mode (none in eval mode).

    Args:
        data: The rows (their :attr:`~RowSplits.inputs` are kept and read by every pass).
        cfg: The encoder's settings.
        views: The views' noise and dropout.

    **Shapes:** input :math:`(B,)` row indices; output :math:`(B, \text{embedding\_dim})`, unit norm.
    """

    def __init__(self, data: RowSplits, cfg: EncoderConfig, views: RowViews) -> None:
        super().__init__()
        self.encoder = MultimodalEncoder(data.inputs, cfg, data.train_x)
        self.inputs, self.views = data.inputs, views
        self.out_features = cfg.embedding_dim

    def forward(self, index: Tensor) -> Tensor:
        if not self.training:
            return self.encoder(self.inputs, index)
        dropout = min(0.9, self.encoder.cfg.modality_dropout + self.views.view_dropout)
        return self.encoder(self.inputs, index, noise_std=self.views.noise_std, modality_dropout=dropout)
