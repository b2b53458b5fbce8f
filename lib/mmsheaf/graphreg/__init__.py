"""Graph-regularised embeddings and distance measures (issue 18): the graph at training time only, and a sheaf
regulariser for heterophilic graphs.

- :mod:`~mmsheaf.graphreg.model`: :class:`RegularisedMLP` (notebook 01's MLP and a penalty on the edges of a
  graph: none, the plain one of Neural Graph Machines, or the sheaf one), :class:`MLPConfig`, :class:`RegConfig`;
- :mod:`~mmsheaf.graphreg.train`: how one run trains and is scored (:func:`train_graphreg`: full batch, the best
  validation epoch; :func:`inference_ms`);
- :mod:`~mmsheaf.graphreg.protocol`: the tasks (node classification on notebook 01's graphs, Neural Graph
  Machines' semi-supervised images), :class:`GraphRegRunSpec` and the cached runs (:func:`run_specs`).

- :mod:`~mmsheaf.graphreg.plan`: notebook 07's runs (:class:`GraphRegPlan`: each penalty's weight chosen on
  validation, then every split); :mod:`~mmsheaf.graphreg.tables` and :mod:`~mmsheaf.graphreg.numbers`: its
  table ``graph_reg.csv`` and the paper's numbers;
- :mod:`~mmsheaf.graphreg.references`: notebook 01's GCN and NSD rows, read from its outputs, and their
  inference time measured here; :mod:`~mmsheaf.graphreg.unsupervised`: UMAP and k-NN references of the images.

The reviews experiment (notebook 03's encoder with the review graph as a penalty) is
:mod:`mmsheaf.metric.graph_reg`, in the metric study whose protocol it extends. The distances live in
:mod:`mmsheaf.losses.distances`, the regularisers in :mod:`mmsheaf.losses.graph_reg`, the
k-nearest-neighbour graph of the images in :mod:`mmsheaf.data.semi_supervised`.
"""

from .model import REG_DISTANCES, REGULARISERS, MLPConfig, RegConfig, RegularisedMLP, normalise_maps
from .plan import MLP_ROW, GraphRegPlan
from .protocol import TASKS, GraphRegRunSpec, graphreg_cache, run_specs
from .train import GraphRegResult, GraphRegTrainConfig, inference_ms, train_graphreg

__all__ = [
    "MLP_ROW",
    "REGULARISERS",
    "REG_DISTANCES",
    "TASKS",
    "GraphRegPlan",
    "GraphRegResult",
    "GraphRegRunSpec",
    "GraphRegTrainConfig",
    "MLPConfig",
    "RegConfig",
    "RegularisedMLP",
    "graphreg_cache",
    "inference_ms",
    "normalise_maps",
    "run_specs",
    "train_graphreg",
]
