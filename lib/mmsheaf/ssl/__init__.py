"""Similarity measures and collapse in non-contrastive self-supervised learning (notebook 06).

SimSiam, BYOL, Barlow Twins and VICReg (SimCLR as the contrastive reference; a supervised and a random encoder
as reference points) on small image sets, with the view-matching similarity and the known collapse ablations as
settings, scored by label-free collapse diagnostics and by k-NN and linear probes.

- :mod:`~mmsheaf.ssl.methods`: :class:`SSLConfig`, the method registry :data:`METHODS` and :class:`SSLModel`;
- :mod:`~mmsheaf.ssl.train`: how one run trains and is scored (:func:`train_ssl`, :func:`score`);
- :mod:`~mmsheaf.ssl.protocol`: run specs, the run cache, :func:`run_specs` and the searches (:func:`tune`);
- :mod:`~mmsheaf.ssl.plan`: the notebook's lists of runs (:class:`SSLPlan`);
- :mod:`~mmsheaf.ssl.tables`: ``ssl_collapse.csv`` and the frames of the figures;
- :mod:`~mmsheaf.ssl.numbers`: the macros the paper quotes (:func:`ssl_numbers`).

The losses live in :mod:`mmsheaf.losses.ssl`, the diagnostics in :mod:`mmsheaf.evaluation.collapse`, the
images and their augmentations in :mod:`mmsheaf.data.images` and :mod:`mmsheaf.data.augment`.
"""

from .methods import METHODS, Method, SSLConfig, SSLModel, resolve_method
from .numbers import ssl_numbers
from .plan import MAIN_VARIANT, SSLPlan, SSLTuning
from .protocol import SSLRunSpec, run_specs, ssl_cache, tune
from .tables import collapse_table, history_frame, label_runs, spectrum_frame
from .train import SSLTrainConfig, SSLTrainResult, score, train_ssl

__all__ = [
    "MAIN_VARIANT",
    "METHODS",
    "Method",
    "SSLConfig",
    "SSLModel",
    "SSLPlan",
    "SSLRunSpec",
    "SSLTrainConfig",
    "SSLTrainResult",
    "SSLTuning",
    "collapse_table",
    "history_frame",
    "label_runs",
    "resolve_method",
    "run_specs",
    "score",
    "spectrum_frame",
    "ssl_cache",
    "ssl_numbers",
    "train_ssl",
    "tune",
]
