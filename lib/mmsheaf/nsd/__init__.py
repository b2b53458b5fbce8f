"""The node-classification study: neural sheaf diffusion against GNN baselines on one modality (notebook 01).

- :mod:`~mmsheaf.nsd.protocol`: what is run: :class:`~mmsheaf.nsd.protocol.NsdProtocol` (the settings as
  frozen configurations) and its run lists (table, configuration choice, depth and CSBM sweeps);
- :mod:`~mmsheaf.data.nsd_graphs` (a building block): the graphs as the protocol sees them (NSD's feature
  normalisation, CSBM names);
- :mod:`~mmsheaf.nsd.train`: how one run trains (full batch, early stopping, as NSD's ``exp/run.py``);
- :mod:`~mmsheaf.nsd.runs`: :class:`ExperimentSpec`, the cached runs and their summary over splits;
- :mod:`~mmsheaf.nsd.tables`: the results as tables, beside the published ones;
- :mod:`~mmsheaf.nsd.numbers`: the numbers the paper quotes, ``{macro name: LaTeX}``;
- :mod:`~mmsheaf.nsd.registry`: the node classifiers by name; :mod:`~mmsheaf.nsd.baselines` and
  :mod:`~mmsheaf.nsd.baseline_configs`: the baselines and their configurations;
- :mod:`~mmsheaf.nsd.reference`: the published table (Bodnar et al. 2022, Table 2).
"""
