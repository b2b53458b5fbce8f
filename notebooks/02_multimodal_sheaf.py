# %% [markdown]
# # 02 · Multimodal sheaves for recommendation
#
# **Produces:** `tables/recsys_ml100k.{tex,csv}` (every model: Recall@10/20, NDCG@10/20, mean ± std over
# seeds, and its tuned hyperparameters), `tables/recsys_ablation.{tex,csv}` (the multimodal sheaf on titles
# without plots, with cross-modal or orthogonal maps, without a modality...), the figures `recsys_robustness.pdf` (metric
# against the fraction of items missing a modality), `recsys_cold_start.pdf`, `recsys_hpo_history.pdf` (the
# searches) and `recsys_item_map.pdf` (item embeddings in 2-D by genre), and `macros/02_multimodal_sheaf.tex`.
#
# Sheaf diffusion (notebook 01) gives every node a stalk and learns how stalks are compared along edges. Here
# the stalk of a user or an item is a direct sum of one block per **modality**: an id embedding, an encoding of
# the item's text (its title and IMDb plot, a sentence embedding) and of a tabular row (users: age, gender,
# occupation, region; items: genres, year). Learned restriction maps decide, per edge and modality, how much
# of each block an edge carries (diagonal maps; general maps, whose off-diagonal entries mix modalities across
# an edge, are an ablation). A modality a node lacks is masked, not filled with zeros. Diffusion over the
# user–item graph is linear, as in LightGCN; a node's embedding sums its blocks, so a user's diffused id block
# meets an item's content blocks in the score, and the model is trained with BPR.
#
# The baselines: MF-BPR, LightGCN, VBPR, a late-fusion multimodal GCN, the id-only sheaf, and three cold-start
# models: content only, DropoutNet and CLCRec. Notebook 05 repeats the study where content must carry the
# ranking: MovieLens-1M item cold start.

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
# Defaults: the **smoke** profile (120 users, titles only, a few epochs, two trials per model; its numbers mean
# nothing). The **paper** profile (`notebooks/params/02_multimodal_sheaf.paper.yaml`) runs the protocol on all
# of MovieLens-100K, with plots.

# %% tags=["parameters"]
PROFILE = "smoke"
DATA_OPTIONS = {"num_users": 120}
MODELS = ["mf", "lightgcn", "vbpr", "late-fusion", "sheaf-id", "content", "dropoutnet", "clcrec", "mm-sheaf"]
MULTIMODAL = ["vbpr", "late-fusion", "content", "dropoutnet", "clcrec", "mm-sheaf"]
HPARAMS = {"dim": 16}
TRAIN = {"epochs": 3, "batch_size": 1024, "lr": 0.005, "patience": 2, "reg_weight": 0.0001}
SEARCH = {"lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}}
MODEL_SEARCH = {"mm-sheaf": {"layers": {"type": "int", "low": 1, "high": 2}},
                "dropoutnet": {"pretrain_epochs": {"type": "categorical", "choices": [2]}}}
HPO_TRIALS = 2
SEEDS = [0, 1]
ABLATIONS = {
    "titles only (no plots)": {"data_options": {"text": "title"}},
    "general maps (cross-modal blocks)": {"sheaf": "gen"},
    "without text": {"modalities": ["id", "tabular"]},
}
ROBUSTNESS = [0.0, 0.5, 1.0]
COLD_MODELS = ["vbpr", "late-fusion", "content", "dropoutnet", "clcrec", "mm-sheaf"]
COLD_EPOCHS = 2
MAP_MODEL = "mm-sheaf"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mmsheaf.recsys import protocol as proto
from mmsheaf.recsys import recommender_names, resolve_recommender
from mmsheaf.recsys.numbers import paper_numbers
from mmsheaf.recsys.plan import RecPlan
from mmsheaf.report import Report, figsize
from mmsheaf.runs.ledger import ledger_path, seed_cache

params = dict(DATA_OPTIONS=DATA_OPTIONS, MODELS=MODELS, MULTIMODAL=MULTIMODAL, HPARAMS=HPARAMS, TRAIN=TRAIN,
              SEARCH=SEARCH, MODEL_SEARCH=MODEL_SEARCH, HPO_TRIALS=HPO_TRIALS, SEEDS=SEEDS, ABLATIONS=ABLATIONS,
              ROBUSTNESS=ROBUSTNESS, COLD_MODELS=COLD_MODELS, COLD_EPOCHS=COLD_EPOCHS,
              MAP_MODEL=MAP_MODEL)  # fmt: skip
rep = Report("02_multimodal_sheaf", PROFILE, params=params)
cache = proto.RecRunCache()
reused = seed_cache(ledger_path("02_multimodal_sheaf", PROFILE))  # finished runs kept with the outputs
display = {m: resolve_recommender(m).display for m in recommender_names()}
plan = RecPlan(MODELS, SEEDS, hparams=HPARAMS, train=TRAIN, search=SEARCH, model_search=MODEL_SEARCH,
               trials=HPO_TRIALS, data_options=DATA_OPTIONS, robustness=ROBUSTNESS, map_model=MAP_MODEL,
               ablated="mm-sheaf", ablations=ABLATIONS, cold_models=COLD_MODELS,
               cold_epochs=COLD_EPOCHS)  # what is run, in order
print(f"profile={PROFILE}  run cache={cache.folder} ({reused} runs from the ledger)  outputs -> {rep.out_dir}")

# %% [markdown]
# ## The data
# Every rating is an implicit positive. Per-user random 8:1:1 split with a fixed seed (the MMRec protocol);
# ranking is over all items with the user's training items excluded.

# %%
data = proto.load_interactions(plan.dataset, **DATA_OPTIONS)
print(data)
density = data.train.size(1) / (data.num_users * data.num_items)
print(f"train density {density:.4f}; items without text: {(~data.has('item', 'text')).sum().item()}")

# %% [markdown]
# ## Hyperparameter search
# Optuna (TPE, seeded), the same number of trials for every model, on validation Recall@20. Each trial is a
# cached training run; the study lives in an embedded journal file unless a database URL is given, and its
# trials are saved with the results.

# %%
tuning = plan.tune_all(cache, log=print)  # one study per model, in MODELS order
tuned, histories = tuning.best, tuning.histories
rep.table(tuning.trials_table(), "recsys_hpo_trials", tex=None)

# %%
fig, ax = plt.subplots(figsize=figsize(0.75, 0.6))
sns.lineplot(data=histories, x="number", y="best so far", hue="model", style="model", markers=True,
             dashes=False, ax=ax, lw=0.9, markersize=4)  # fmt: skip
ax.set(xlabel="trial", ylabel="best validation Recall@20 so far")
ax.legend(title=None, fontsize=7, ncol=2)
rep.figure(fig, "recsys_hpo_history")

# %% [markdown]
# ## The table: every model with its tuned hyperparameters, over seeds

# %%
runs = proto.run_specs(plan.main_specs(tuned), cache, desc="final runs")  # every model, every seed
summary = proto.summarise_runs(runs)
table, tex = proto.results_table(summary, tuned)  # the LaTeX version: mean ± std, the best of each column in bold
rep.table(table, "recsys_ml100k", tex=tex, escape=False)
table

# %% [markdown]
# ## Ablations of the multimodal sheaf
# The tuned multimodal sheaf with one thing changed: the item text of titles alone (no plots: does richer text
# change "ids carry the signal"?), general maps (cross-modal blocks) or orthogonal maps instead of diagonal
# ones, linear instead of MLP content encoders, the users' content profiles added, or one modality removed from
# the stalk.

# %%
ablation_runs = plan.run_ablations(tuned, cache)  # {label: runs}, in ABLATIONS order
ablation, tex = proto.ablation_table(runs, ablation_runs, model=plan.ablated)
rep.table(ablation, "recsys_ablation", tex=tex, escape=False)
ablation

# %% [markdown]
# ## Robustness to a missing modality
# The trained models evaluated with the text (or tabular) block removed for a growing fraction of the items
# (masked, as the models would see an item that has none). Id-only models do not read content: their lines
# are flat by construction.

# %%
rob = proto.robustness_frame(runs, models=MULTIMODAL)
fig, axes = plt.subplots(1, 2, figsize=figsize(1.0, 0.36), sharey=True)
for ax, mod in zip(axes, ["text", "tabular"]):
    sns.lineplot(data=rob[rob.modality == mod], x="fraction", y="ndcg@20", hue="model_name", style="model_name",
                 markers=True, dashes=False, ax=ax, lw=0.9, markersize=4, errorbar="sd", legend=ax is axes[0])  # fmt: skip
    ax.set(xlabel=f"fraction of items without {mod}", ylabel="test NDCG@20", title=mod)
axes[0].legend(title=None, fontsize=7)
fig.tight_layout()
rep.figure(fig, "recsys_robustness")

# %% [markdown]
# ## Cold-start items
# 10 % of the items are held out with all their interactions; the models are trained on the rest and rank
# the held-out items for their users from content alone. Id-only models (MF, LightGCN, the id-only sheaf)
# cannot score an item they never saw, so they have no entry here. All interactions of a held-out item are
# test interactions, so no validation interaction exists among the items ranked: no epoch can be selected,
# and each model trains for `COLD_EPOCHS` epochs with its tuned settings and is scored as it ends.

# %%
cold = proto.run_specs(plan.cold_specs(tuned), cache, desc="cold start")
cold_summary = proto.summarise_runs(cold)
cold_summary["model_name"] = cold_summary.model.map(display)
fig, ax = plt.subplots(figsize=figsize(0.6, 0.7))
long = cold.assign(model_name=cold.model.map(display)).melt(
    id_vars=["model_name", "seed"], value_vars=["test_recall@20", "test_ndcg@20"], var_name="metric")
long["metric"] = long.metric.str.replace("test_", "").str.replace("recall", "Recall").str.replace("ndcg", "NDCG")
sns.barplot(data=long, x="metric", y="value", hue="model_name", errorbar="sd", ax=ax)
ax.set(xlabel=None, ylabel="cold-item test metric")
ax.legend(title=None, fontsize=7)
rep.figure(fig, "recsys_cold_start")
cold_summary

# %% [markdown]
# ## Item embeddings of the multimodal sheaf
# UMAP of the diffused item embeddings (first seed), coloured by each film's first listed genre.

# %%
import umap

emb = cache.embeddings(plan.map_spec(tuned))  # MAP_MODEL's final run with the first seed
labels = data.item_labels.numpy()
first = np.where(labels.any(1), labels.argmax(1), 0)
genre = np.array(data.label_names)[first]
top = pd.Series(genre).value_counts().index[:8]
coords = umap.UMAP(n_neighbors=15, min_dist=0.3, metric="cosine", random_state=0).fit_transform(emb["item"].numpy())
fig, ax = plt.subplots(figsize=figsize(0.7, 0.8))
keep = np.isin(genre, top)
sns.scatterplot(x=coords[keep, 0], y=coords[keep, 1], hue=genre[keep], hue_order=list(top), s=6, lw=0, ax=ax)
ax.set(xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2")
ax.legend(title=None, fontsize=6, markerscale=2, ncol=2)
rep.figure(fig, "recsys_item_map")

# %% [markdown]
# ## Numbers quoted in the paper

# %%
cold_data = proto.load_interactions(plan.cold_dataset, **DATA_OPTIONS)
numbers = paper_numbers(data, cold_data, summary, ablation, rob, cold_summary, num_seeds=len(SEEDS),
                        trials=HPO_TRIALS, ablations=ABLATIONS, multimodal=MULTIMODAL,
                        cold_epochs=COLD_EPOCHS)  # fmt: skip
print(f"MM-Sheaf NDCG@20 {numbers['RecSheafNdcg']} vs LightGCN {numbers['RecLightGCNNdcg']}: "
      f"{numbers['RecGainLightGCN']} %")  # fmt: skip
rep.runs([cache.folder.name], [*tuning.trial_keys, *runs.key, *cold.key, *pd.concat(ablation_runs.values()).key],
         studies=tuning.studies)  # fmt: skip
rep.macros(numbers)
rep.close()

# %% [markdown]
# ## Reading
# *Written for the paper profile; the smoke profile's numbers mean nothing.* The table, the ablations and the
# robustness curves are read in the paper's section "Multimodal sheaves for recommendation", from the
# macros above: the gain over LightGCN on NDCG@20, whether it exceeds the seeds' spread, and the gain over
# the best other multimodal model.
