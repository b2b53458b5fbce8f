"""The datasets section of the report (notebook 00): graph sizes, homophily and degree, text and tabular sets.

- :mod:`~mmsheaf.datasets.numbers`: the numbers the paper's section "Datasets" quotes.

The summaries themselves are building blocks (:mod:`mmsheaf.data.summary`), shared with the studies.
"""
