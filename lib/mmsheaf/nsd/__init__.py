"""The node-classification study: neural sheaf diffusion against GNN baselines on one modality (notebook 01).

- :mod:`~mmsheaf.nsd.protocol`: what is run: the NSD protocol as frozen specs, sweeps and tables;
- :mod:`~mmsheaf.nsd.train`: how one run trains (full batch, early stopping, as NSD's ``exp/run.py``);
- :mod:`~mmsheaf.nsd.runs`: :class:`ExperimentSpec`, the cached runs and their summary over splits;
- :mod:`~mmsheaf.nsd.registry`: the node classifiers by name; :mod:`~mmsheaf.nsd.baselines`: the baselines;
- :mod:`~mmsheaf.nsd.reference`: the published table (Bodnar et al. 2022, Table 2).
"""
