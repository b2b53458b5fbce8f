# %% [markdown]
# # 03 · Angular-margin heads vs contrastive learning for multimodal embeddings
#
# **Produces:** `tables/metric_learning.{tex,csv}` (every loss on both tasks: MAP@R, R-Precision, P@1, NMI,
# AMI and, for the category task, accuracy and macro-F1; mean ± std over seeds; training seconds; the
# zero-training references), `tables/metric_hparams.{tex,csv}` (each loss's tuned hyperparameters),
# `tables/metric_ablation.{tex,csv}` (modalities alone, in pairs, all three; the graph encoder on and off),
# the figures `metric_data_efficiency.pdf` (MAP@R against the fraction of training items and against
# training time), `metric_robustness.pdf` (text removed, numerical noise, a modality removed; with and
# without modality dropout), `metric_umap.pdf` (test embeddings by class) and `macros/03_arcface_vs_contrastive.tex`.
#
# **The question.** Can a classification head with an additive angular margin (ArcFace, Deng et al. 2019)
# learn a metric embedding of multimodal objects as well as contrastive learning does, with less data and
# compute, and stay robust to noise and missing modalities? Every row here is a product review with three
# modalities: its text (title and review, a frozen MiniLM sentence embedding with a trainable adapter), a
# small table (age, rating, positive-feedback count, recommended flag and, for T1, the product hierarchy;
# an FT-Transformer with missing-value handling) and, for T2, the other reviews of the same product (a graph
# encoder). A fusion network projects the modality tokens into one $L_2$-normalised 128-d space.
#
# **Fair comparison** (Musgrave et al., "A Metric Learning Reality Check", 2020): the same encoders,
# embedding size, optimiser, batch size and epoch budget for every loss; each loss's own hyperparameters
# (margin, scale, temperature) tuned with the same number of Optuna trials on validation items; retrieval by
# cosine neighbours with the Reality Check's MAP@R, R-Precision and P@1.
#
# | task | label | split | graph |
# |---|---|---|---|
# | T1 `item` | Clothing ID (items with ≥ 2 reviews) | items: half for test, classes disjoint | none (it is the label) |
# | T2 `category` | Class Name | items 60/20/20, an item's reviews on one side | reviews of the same item |

# %% [markdown]
# In Colab, the next cell clones and installs the repository (it does nothing anywhere else).

# %%
import sys

if "google.colab" in sys.modules:  # pragma: no cover - only in Colab
    import subprocess

    REPO_URL = "https://github.com/mmsheaf/mmsheaf"
    subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/mmsheaf"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/mmsheaf[colab]"], check=True)
    sys.path.insert(0, "/content/mmsheaf/lib")

# %% [markdown]
# ## Parameters
# Defaults: the **smoke** profile (about 1,200 reviews per task, four of the eight losses, two epochs, one
# trial per loss; its numbers mean nothing). The **paper** profile
# (`notebooks/params/03_arcface_vs_contrastive.paper.yaml`) runs the protocol on all 23,486 reviews.

# %% tags=["parameters"]
PROFILE = "smoke"
TASKS = ["item", "category"]
DATA_OPTIONS = {"item": {"max_rows": 1200}, "category": {"max_rows": 1200}}
MODALITIES = {"item": ["text", "tabular"], "category": ["text", "tabular", "graph"]}
LOSSES = ["arcface", "normsoftmax", "supcon", "ntxent"]
ENCODER = {"token_dim": 32, "embedding_dim": 128, "text_hidden": 64, "tab_channels": 16, "tab_layers": 1,
           "proj_hidden": 64}
TRAIN = {"epochs": 2, "batch_size": 128, "patience": 2}
HPO_TRIALS = 1
HPO_TRAIN = {"epochs": 1}
SEEDS = [0, 1]
FRACTIONS = [0.5, 1.0]
FRACTION_SEEDS = [0]
MODALITY_DROPOUT = 0.3
ROBUST_LOSSES = ["arcface"]
DROPOUT_SEEDS = [0, 1]
ABLATION_SETS = [["text"], ["tabular", "graph"], ["text", "tabular", "graph"]]
ABLATION_SEEDS = [0]
UMAP_TASK = "category"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mmsheaf.losses import resolve_loss
from mmsheaf.metric import protocol as proto
from mmsheaf.metric import tables
from mmsheaf.metric.numbers import paper_numbers
from mmsheaf.metric.plan import MetricPlan
from mmsheaf.report import Report, figsize
from mmsheaf.runs.ledger import ledger_path, seed_cache

params = dict(TASKS=TASKS, DATA_OPTIONS=DATA_OPTIONS, MODALITIES=MODALITIES, LOSSES=LOSSES, ENCODER=ENCODER,
              TRAIN=TRAIN, HPO_TRIALS=HPO_TRIALS, HPO_TRAIN=HPO_TRAIN, SEEDS=SEEDS, FRACTIONS=FRACTIONS,
              FRACTION_SEEDS=FRACTION_SEEDS, MODALITY_DROPOUT=MODALITY_DROPOUT, ROBUST_LOSSES=ROBUST_LOSSES, DROPOUT_SEEDS=DROPOUT_SEEDS,
              ABLATION_SETS=ABLATION_SETS, ABLATION_SEEDS=ABLATION_SEEDS, UMAP_TASK=UMAP_TASK)  # fmt: skip
rep = Report("03_arcface_vs_contrastive", PROFILE, params=params)
cache = proto.metric_cache()
reused = seed_cache(ledger_path("03_arcface_vs_contrastive", PROFILE))
display = {name: resolve_loss(name).display for name in LOSSES}
plan = MetricPlan(TASKS, LOSSES, MODALITIES, SEEDS, encoder=ENCODER, train=TRAIN, trials=HPO_TRIALS,
                  hpo_train=HPO_TRAIN, data_options=DATA_OPTIONS, robust_losses=ROBUST_LOSSES, fraction_task="item",
                  fractions=FRACTIONS, fraction_seeds=FRACTION_SEEDS, modality_dropout=MODALITY_DROPOUT,
                  dropout_seeds=DROPOUT_SEEDS, ablation_sets=ABLATION_SETS, ablation_seeds=ABLATION_SEEDS)  # fmt: skip
print(f"profile={PROFILE}  run cache={cache.folder} ({reused} runs from the ledger)  outputs -> {rep.out_dir}")

# %% [markdown]
# ## The tasks
# Sizes of each task and split, and how often a modality is really missing.

# %%
tasks = {t: proto.load_task(t, **DATA_OPTIONS.get(t, {})) for t in TASKS}
overview = pd.DataFrame([{
    "task": t, "rows": task.num_rows, "classes": task.num_classes, "train rows": task.train_idx.numel(),
    "val rows": task.val_idx.numel(), "test rows": task.test_idx.numel(),
    "no text (%)": 100 * float((~task.text_mask).float().mean()),
    "graph edges": 0 if task.edge_index is None else task.edge_index.size(1) // 2,
} for t, task in tasks.items()])  # fmt: skip
overview

# %% [markdown]
# ## Zero-training references
# The frozen sentence embeddings alone, and the tabular features alone (standardised numbers, one-hot
# categories), retrieved by cosine similarity: what the trained models must beat.

# %%
references = {t: proto.reference_metrics(task) for t, task in tasks.items()}
pd.DataFrame({(t, name): m for t, refs in references.items() for name, m in refs.items()}).T


# %% [markdown]
# ## Hyperparameter search
# Each loss's own hyperparameters, `HPO_TRIALS` Optuna trials (TPE, seeded) per loss and task on validation
# MAP@R, every trial a cached training run with the search's shorter epoch budget.

# %%
tuning = plan.tune_all(cache, log=print)  # each search on every worker (make report WORKERS=2)
tuned = tuning.best  # by (task, loss), task by task
hparams, tex = tables.hparams_table(tuned)
rep.table(hparams, "metric_hparams", tex=tex)
hparams


# %% [markdown]
# ## The table: every loss on both tasks, over seeds
# The tuned losses trained with the full epoch budget, one run per seed, evaluated on the test items
# (retrieval among test rows; k-means with as many clusters as test classes; for T2 a 10-nearest-neighbour
# classifier from the training rows). The runs of the losses in `ROBUST_LOSSES` also record the robustness
# evaluations used below.

# %%
runs = proto.run_specs(plan.main_specs(tuned), cache, desc="final runs")  # every task, loss and seed
summary = tables.loss_summary(runs)  # mean and std over seeds, in %
table = tables.results_table(summary, references)  # with the zero-training references
rep.table(table, "metric_learning", tex=tables.results_tex(table), escape=False)
table

# %% [markdown]
# **Which loss wins each task, and by more than the seeds' spread?** Also the best loss of each family
# against the other: `family_gap` is best angular-margin minus best contrastive MAP@R (points), beyond the
# spread when larger than the sum of their standard deviations.

# %%
verdicts = tables.verdicts(summary, references)
verdicts

# %% [markdown]
# ## Data efficiency: MAP@R against the share of training items and against training time
# T1 with 10 to 100 % of the training items (the validation and test items unchanged), every loss with its
# tuned hyperparameters.

# %%
frac_runs = plan.run_fractions(tuned, cache)  # every loss at every share of T1's training items
frac_runs["loss_name"] = frac_runs.loss.map(display)
frac_runs["family"] = frac_runs.loss.map(lambda n: resolve_loss(n).family)
fig, axes = plt.subplots(1, 2, figsize=figsize(1.0, 0.38), sharey=True)
for ax, x, label in ((axes[0], "fraction", "share of training items"), (axes[1], "seconds", "training seconds")):
    sns.lineplot(data=frac_runs.sort_values(x), x=x, y=frac_runs["test_map_at_r"] * 100, hue="loss_name",
                 style="family", markers=True, dashes=False, ax=ax, lw=0.9, markersize=4, errorbar=None,
                 legend=ax is axes[1])  # fmt: skip
    ax.set(xlabel=label, ylabel="T1 test MAP@R (%)")
axes[1].set_xscale("log")
axes[1].xaxis.set_minor_formatter(plt.NullFormatter())
axes[1].xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
axes[1].legend(title=None, fontsize=6, ncol=1, bbox_to_anchor=(1.02, 1), loc="upper left")
for text in axes[1].get_legend().get_texts():  # seaborn's group headings read as entries: drop their names
    if text.get_text() in ("loss_name", "family"):
        text.set_text("")
fig.tight_layout()
rep.figure(fig, "metric_data_efficiency")
frac_summary = frac_runs.groupby(["loss", "fraction"])[["test_map_at_r", "seconds"]].mean().unstack("fraction")
frac_summary

# %% [markdown]
# ## Robustness: missing text, noisy numbers, a missing modality — with and without modality dropout
# The main runs (no modality dropout) and the same losses retrained with modality dropout, evaluated with the
# text of a growing share of the test rows removed, with Gaussian noise on the numerical cells (in training
# standard deviations), and with one modality removed for every row.

# %%
drop_runs = proto.run_specs(plan.dropout_specs(tuned), cache, desc="modality dropout")
rob = pd.concat([
    proto.robustness_frame(runs[runs.loss.isin(ROBUST_LOSSES)]).assign(dropout=tables.NO_DROPOUT),
    proto.robustness_frame(drop_runs).assign(dropout=f"modality dropout {MODALITY_DROPOUT:g}"),
], ignore_index=True)  # fmt: skip
rob["loss_name"] = rob.loss.map(display)
rob["map_at_r"] *= 100
fig, axes = plt.subplots(1, 3, figsize=figsize(1.0, 0.34))
for ax, cond, xlabel in ((axes[0], "text_removed", "share of test rows without text"),
                         (axes[1], "numerical_noise", "noise on numbers (train std)")):  # fmt: skip
    sub = rob[(rob.condition == cond) & (rob.task == "item")]
    sns.lineplot(data=sub, x="level", y="map_at_r", hue="loss_name", style="dropout", markers=True, ax=ax,
                 lw=0.9, markersize=4, errorbar="sd", legend=ax is axes[0])  # fmt: skip
    ax.set(xlabel=xlabel, ylabel="T1 test MAP@R (%)")
removed = rob[rob.condition.str.startswith("without_")].assign(
    removed=lambda d: d.condition.str.replace("without_", "") + " (" + d.task.map(tables.TASK_TAGS) + ")")
sns.barplot(data=removed, x="removed", y="map_at_r", hue="dropout", errorbar="sd", ax=axes[2])
axes[2].set(xlabel="modality removed", ylabel="test MAP@R (%)")
axes[2].tick_params(axis="x", labelrotation=30, labelsize=6)
axes[0].legend(title=None, fontsize=5)
for text in axes[0].get_legend().get_texts():
    if text.get_text() in ("loss_name", "dropout"):
        text.set_text("")
axes[2].legend(title=None, fontsize=5)
fig.tight_layout()
rep.figure(fig, "metric_robustness")
cost = tables.text_cost(rob, task="item", level=0.5)
print("relative MAP@R lost on T1 when the text of 50 % of the test rows is removed (%):")
print(cost.round(1))
really, tex = tables.really_missing_table(rob)  # queries whose text is really missing against the others
rep.table(really.reset_index(), "metric_really_missing", tex=tex, escape=False, float_digits=1)
really

# %% [markdown]
# ## Ablation: which modalities carry the signal
# The winning loss of each task trained on each modality alone, in pairs and all together (T2 has the graph;
# T1 has text and tabular only). Removing the graph from T2's encoder is the "graph encoder off" row. The
# graph token summarises the *neighbours'* text and tabular content, so "graph" alone still sees other
# reviews' text: it measures what the linked reviews say about a row, not the row's own inputs.

# %%
winners = verdicts.set_index("task")["winner"]  # the winning loss of each task
abl_runs = plan.run_ablations(tuned, winners, cache)  # each task's modality sets, in ABLATION_SETS order
ablation, tex = tables.ablation_table(abl_runs)  # one seed has no spread to show: its mean alone
rep.table(ablation, "metric_ablation", tex=tex, escape=False)
ablation

# %% [markdown]
# ## The embedding space
# UMAP of the test embeddings of the winning loss (first seed) on the category task, coloured by class.

# %%
import umap

win = winners[UMAP_TASK]
emb = proto.test_embeddings(plan.specs(tuned, UMAP_TASK, win, SEEDS[:1])[0], cache)  # its final run, first seed
task = tasks[UMAP_TASK]
names = np.array(task.label_names)[task.labels[task.test_idx].numpy()]
coords = umap.UMAP(n_neighbors=15, min_dist=0.3, metric="cosine", random_state=0).fit_transform(emb.numpy())
top = pd.Series(names).value_counts().index[:10]
keep = np.isin(names, top)
fig, ax = plt.subplots(figsize=figsize(0.7, 0.8))
sns.scatterplot(x=coords[keep, 0], y=coords[keep, 1], hue=names[keep], hue_order=list(top), s=4, lw=0, ax=ax)
ax.set(xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2", title=f"{display[win]}, T2 test reviews")
ax.legend(title=None, fontsize=6, markerscale=2, ncol=2)
rep.figure(fig, "metric_umap")

# %% [markdown]
# ## The answer: less data, less compute?
# The research question asks whether an angular-margin head needs *less data and compute* than contrastive
# learning. From the data-efficiency runs: the best loss of each family at every share of the training items;
# from the main runs: the mean training time per run of each family (same epoch budget and early stopping
# for all).

# %%
by_family = tables.family_by_fraction(frac_runs)  # T1 test MAP@R (%) of each family's best loss
seconds = tables.family_seconds(summary)  # mean training seconds per run
print(by_family.round(1))
seconds

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = paper_numbers(verdicts, ablation, cost, by_family, seconds, num_seeds=len(SEEDS), trials=HPO_TRIALS,
                        epochs=TRAIN.get("epochs", 0))  # fmt: skip
rep.runs([cache.folder.name], [*tuning.trial_keys, *runs.key, *frac_runs.key, *drop_runs.key, *abl_runs.key],
         studies=tuning.studies)  # fmt: skip
rep.macros(numbers)
rep.close()
pd.Series(numbers)

# %% [markdown]
# ## Reading
# *Written for the paper profile; the smoke profile's numbers mean nothing.* The paper's section
# "Angular-margin heads vs contrastive learning" reads the table, the data-efficiency curves and the
# robustness results from the macros above: which loss wins each task and whether the gap exceeds the
# seeds' spread, how far the trained models are above the frozen text embeddings, and what modality dropout
# buys when text goes missing.
