"""The data layer: raw files in the data root -> PyG ``Data`` graphs, pandas tables, arrays and interactions.

- :mod:`~mmsheaf.data.node_datasets`: the NSD node-classification benchmark through PyG with the 10 geom-gcn
  splits (:func:`load_node_dataset`, registry :data:`NODE_DATASETS`); ``"csbm"`` is the synthetic default.
- :mod:`~mmsheaf.data.synthetic`: contextual stochastic block model with a set edge homophily
  (:func:`contextual_sbm`, :class:`CSBMConfig`), needs no files.
- :mod:`~mmsheaf.data.nsd_graphs`: the graphs as the NSD protocol sees them (row-normalised features,
  featureless nodes out of the splits, CSBM graphs by name: :func:`~mmsheaf.data.nsd_graphs.load_graph`),
  shared by every study that compares with notebook 01.
- :mod:`~mmsheaf.data.tables`: clothing reviews, MovieLens 100K tables, MNIST-5k (:data:`TABLE_DATASETS`).
- :mod:`~mmsheaf.data.images`: MNIST-5k and scikit-learn's digits as 28x28 image tensors in [0, 1] with a
  seeded stratified train/val/test split (:func:`load_images`, :class:`ImageSplits`,
  :data:`IMAGE_DATASETS`).
- :mod:`~mmsheaf.data.semi_supervised`: kNN similarity graphs over features (:func:`knn_graph`, :data:`METRICS`)
  and MNIST-5k as one transductive graph with a few labelled images per class, as Neural Graph Machines
  (:func:`load_semi_supervised`, :class:`SemiSupervisedConfig`, :func:`labelled_subset`).
- :mod:`~mmsheaf.data.augment`: seeded, batched image augmentations for two-view self-supervised learning
  (:class:`ImageAugment`: resized crop, affine map, Gaussian noise, random erasing).
- :mod:`~mmsheaf.data.interactions`: :class:`InteractionData`, user-item implicit feedback with per-modality
  features and masks (:data:`MODALITIES`), shared by the recommenders and the ranking evaluation.
- :mod:`~mmsheaf.data.clothing`: the clothing reviews as metric-learning tasks (rows, labels and item-level
  splits, :func:`~mmsheaf.data.clothing.load_clothing_task`); :mod:`~mmsheaf.data.clothing_features` builds
  their text, tabular and same-item graph inputs.
- :mod:`~mmsheaf.data.movielens1m`: the MovieLens-1M item cold-start benchmark with IMDb plots, checked, and
  its title join (:func:`load_ml1m_coldstart`).
- :mod:`~mmsheaf.data.movielens`: MovieLens 100K as multimodal implicit feedback with a random or cold-item
  split (:func:`load_ml100k`).
- :mod:`~mmsheaf.data.text_cache`: sentence embeddings cached on disk per model and text (:func:`embed_texts`).
- :mod:`~mmsheaf.data.stats`: dataset statistics (sizes, homophily, missing values).
- :mod:`~mmsheaf.data.fetch`: fill the data root from a mirror folder (:func:`fill_data_root`).
- :mod:`~mmsheaf.data.integrity`: size and sha256 of every raw file of the mirror, checked by the loaders
  and :func:`fill_data_root` (:func:`verify_known_files`, :class:`RawFileMismatchError`).
- :mod:`~mmsheaf.data.validate`: structural checks of every loaded dataset (:class:`DatasetValidationError`).

Where data lives is set once, by :func:`mmsheaf.paths.data_root` (``MMSHEAF_DATA``); ``MMSHEAF_OFFLINE=1``
forbids downloads. Missing files raise :class:`DatasetNotFoundError` with instructions; present but damaged
ones raise :class:`RawFileMismatchError` or :class:`DatasetValidationError` (both ``ValueError``).
"""

from mmsheaf.data.augment import (
    ImageAugment,
    gaussian_noise,
    random_affine,
    random_erasing,
    random_resized_crop,
)
from mmsheaf.data.errors import DatasetNotFoundError, DatasetValidationError, RawFileMismatchError
from mmsheaf.data.fetch import fill_data_root, mirror_files
from mmsheaf.data.images import (
    IMAGE_DATASETS,
    ImageSplits,
    load_digits_images,
    load_images,
    load_mnist5k_images,
    stratified_split_indices,
)
from mmsheaf.data.integrity import known_files, verify_known_files
from mmsheaf.data.interactions import MODALITIES, InteractionData
from mmsheaf.data.semi_supervised import (
    METRICS,
    KnnMetric,
    SemiSupervisedConfig,
    knn_graph,
    labelled_subset,
    load_semi_supervised,
)
from mmsheaf.data.movielens import load_ml100k
from mmsheaf.data.movielens1m import load_ml1m_coldstart
from mmsheaf.data.node_datasets import (
    NODE_DATASETS,
    NodeDatasetSpec,
    load_node_dataset,
    missing_node_files,
    node_dataset_names,
)
from mmsheaf.data.stats import degree_and_local_homophily, graph_stats, table_stats
from mmsheaf.data.synthetic import CSBMConfig, contextual_sbm, random_split_masks
from mmsheaf.data.tables import (
    TABLE_DATASETS,
    TableDatasetSpec,
    load_clothing_reviews,
    load_mnist5k,
    load_movielens100k,
)
from mmsheaf.data.text_cache import default_text_model, embed_texts

__all__ = [
    "IMAGE_DATASETS",
    "METRICS",
    "MODALITIES",
    "NODE_DATASETS",
    "TABLE_DATASETS",
    "CSBMConfig",
    "DatasetNotFoundError",
    "DatasetValidationError",
    "ImageAugment",
    "ImageSplits",
    "InteractionData",
    "KnnMetric",
    "NodeDatasetSpec",
    "RawFileMismatchError",
    "SemiSupervisedConfig",
    "TableDatasetSpec",
    "contextual_sbm",
    "default_text_model",
    "degree_and_local_homophily",
    "embed_texts",
    "fill_data_root",
    "gaussian_noise",
    "graph_stats",
    "knn_graph",
    "known_files",
    "labelled_subset",
    "load_clothing_reviews",
    "load_digits_images",
    "load_images",
    "load_ml100k",
    "load_ml1m_coldstart",
    "load_mnist5k",
    "load_mnist5k_images",
    "load_movielens100k",
    "load_node_dataset",
    "load_semi_supervised",
    "missing_node_files",
    "mirror_files",
    "node_dataset_names",
    "random_affine",
    "random_erasing",
    "random_resized_crop",
    "random_split_masks",
    "stratified_split_indices",
    "table_stats",
    "verify_known_files",
]
