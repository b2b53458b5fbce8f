"""The metric-learning study: angular-margin heads against contrastive losses on multimodal reviews
(notebook 03).

- :mod:`~mmsheaf.metric.protocol`: what is run: frozen run specs, the searches, cached runs over seeds;
- :mod:`~mmsheaf.metric.plan`: the notebook's lists of runs and searches, from its parameters (:class:`MetricPlan`);
- :mod:`~mmsheaf.metric.train`: how one run trains (mini-batches, early stopping on validation MAP@R);
- what it is scored by comes from the block :mod:`mmsheaf.evaluation` (P@1, R-Precision, MAP@R, clustering,
  linear probe);
- :mod:`~mmsheaf.metric.tables`: the tables made from the runs (results, verdicts, ablation, robustness);
- :mod:`~mmsheaf.metric.numbers`: the numbers the paper quotes.
"""
