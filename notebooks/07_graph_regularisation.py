# %% [markdown]
# # 07 · Graph-regularised embeddings and distance measures
#
# **Produces:** `tables/graph_reg.{tex,csv}` (one row per result: `task, dataset, model, regulariser, distance,
# metric, mean, std, n, infer_ms`), `tables/graph_reg_alpha.csv` (the weight each penalty chose, on validation),
# `tables/graph_reg_semi.tex`, `tables/graph_reg_retrieval.tex`, the figures `graph_reg_alpha.pdf` (accuracy
# against the penalty's weight for each distance, Cora and Texas), `graph_reg_homophily.pdf` (accuracy against
# homophily: MLP, graph- and sheaf-regularised MLP, GCN, NSD) and `graph_reg_retrieval.pdf` (MAP@R of the
# learned embeddings under each distance, a heat map), and `macros/07_graph_regularisation.tex`.
#
# **The question.** A classifier can use a graph at training time only: Neural Graph Machines (Bui et al. 2018)
# add $\alpha \sum_{(u,v)\in E} w_{uv}\, d(h_u, h_v)$ to the cross-entropy, so that neighbours get nearby
# embeddings, and predict from features alone, at the cost of an MLP. With the squared L2 distance the penalty
# is the graph Dirichlet energy $h^\top L h$, which on a heterophilic graph pulls nodes of different classes
# together. Our **sheaf regulariser** compares the endpoints after learned restriction maps,
# $d(\mathcal{F}_{u \trianglelefteq e} h_u, \mathcal{F}_{v \trianglelefteq e} h_v)$ (the sheaf Dirichlet energy
# $h^\top L_\mathcal{F} h$ for squared L2), which can vanish without $h_u \approx h_v$. How much of GCN's and
# NSD's accuracy does a graph- or sheaf-regularised MLP recover, on homophilic and heterophilic graphs, and
# which distance should the penalty (and, separately, retrieval) use?
#
# **Protocol.** The MLP is notebook 01's (two layers, width 64, dropout 0.5, Adam 0.01, weight decay
# $5\cdot 10^{-4}$); the penalty reads its pre-activation hidden embedding. Every penalty's weight $\alpha$ is
# chosen per data set on the mean **validation** accuracy of the first splits, then every split runs at it. The
# GCN and NSD rows are notebook 01's, read from its outputs; their inference times are measured here, on the
# same machine as the MLP's.

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
# Defaults: the **smoke** profile (Texas only, two weights, two splits, 30 epochs, 600 images; its numbers mean
# nothing). The **paper** profile (`notebooks/params/07_graph_regularisation.paper.yaml`) runs the study.

# %% tags=["parameters"]
PROFILE = "smoke"
NODE_DATASETS = ["texas"]
ROWS = {"graph, squared L2": {"kind": "graph", "distance": "sq_l2"},
        "graph, L1": {"kind": "graph", "distance": "l1"},
        "graph, cosine": {"kind": "graph", "distance": "cosine"},
        "graph, Mahalanobis (learned)": {"kind": "graph", "distance": "mahalanobis"},
        "graph, Mahalanobis (class-pooled)": {"kind": "graph", "distance": "mahalanobis_pooled"},
        "graph, histogram intersection": {"kind": "graph", "distance": "hist_intersection"},
        "graph, KL": {"kind": "graph", "distance": "kl"},
        "graph, JS": {"kind": "graph", "distance": "js"},
        "sheaf, diagonal": {"kind": "sheaf", "sheaf": "diag", "d": 2},
        "sheaf, orthogonal": {"kind": "sheaf", "sheaf": "orth", "d": 2},
        "sheaf, general": {"kind": "sheaf", "sheaf": "gen", "d": 2}}  # fmt: skip
ALPHAS = [0.1, 1.0]
SPLITS = [0, 1]
SELECT_SPLITS = 1
MLP = {"hidden_channels": 64, "layers": 2, "dropout": 0.5}
TRAIN = {"epochs": 30, "patience": 30}
REFERENCE_MODELS = ["mlp", "gcn", "diag-nsd", "orth-nsd", "gen-nsd"]
ALPHA_FIGURE = ["texas"]
SEMI_PER_CLASS = [10]
SEMI_OPTIONS = {"k": 10, "max_rows": 600}
SEMI_SEEDS = [0, 1]
SEMI_ROWS = ["graph, squared L2", "graph, cosine", "graph, KL", "sheaf, diagonal"]
UMAP = {"n_components": 16}
RETRIEVAL_SETTING = "mnist5k-10"
REVIEW_PROFILE = "smoke"
REVIEW_ALPHAS = [1.0]
REVIEW_SEEDS = [0]
REVIEW_SELECT_SEEDS = 1
REVIEW_DISTANCE = "sq_l2"
REVIEW_TRAIN = {"epochs": 1}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from mmsheaf.data.nsd_graphs import load_graph
from mmsheaf.data.semi_supervised import SemiSupervisedConfig, load_semi_supervised
from mmsheaf.graphreg import graphreg_cache
from mmsheaf.graphreg.numbers import graphreg_numbers
from mmsheaf.graphreg.plan import MLP_ROW, GraphRegPlan
from mmsheaf.graphreg.references import mlp_inference_ms, reference_rows
from mmsheaf.graphreg.tables import TABLE_COLUMNS, accuracy_tex, reference_rows as reference_table
from mmsheaf.graphreg.tables import result_rows, retrieval_rows, review_rows
from mmsheaf.metric.graph_reg import TASK, VARIANTS, ReviewRunSpec, choose_alpha, review_cache, run_review_specs
from mmsheaf.metric.protocol import load_task
from mmsheaf.graphreg.unsupervised import UmapConfig, knn_accuracy, umap_embedding
from mmsheaf.nsd.registry import build_node_model
from mmsheaf.report import Report, figsize
from mmsheaf.runs.ledger import ledger_path, seed_cache
from torch_geometric.utils import homophily

params = dict(NODE_DATASETS=NODE_DATASETS, ROWS=ROWS, ALPHAS=ALPHAS, SPLITS=SPLITS, SELECT_SPLITS=SELECT_SPLITS,
              MLP=MLP, TRAIN=TRAIN, REFERENCE_MODELS=REFERENCE_MODELS, ALPHA_FIGURE=ALPHA_FIGURE,
              SEMI_PER_CLASS=SEMI_PER_CLASS,
              SEMI_OPTIONS=SEMI_OPTIONS, SEMI_SEEDS=SEMI_SEEDS, SEMI_ROWS=SEMI_ROWS, UMAP=UMAP,
              RETRIEVAL_SETTING=RETRIEVAL_SETTING, REVIEW_PROFILE=REVIEW_PROFILE, REVIEW_ALPHAS=REVIEW_ALPHAS,
              REVIEW_SEEDS=REVIEW_SEEDS, REVIEW_SELECT_SEEDS=REVIEW_SELECT_SEEDS, REVIEW_DISTANCE=REVIEW_DISTANCE,
              REVIEW_TRAIN=REVIEW_TRAIN)  # fmt: skip
rep = Report("07_graph_regularisation", PROFILE, params=params)
cache = graphreg_cache()
reused = seed_cache(ledger_path("07_graph_regularisation", PROFILE))  # finished runs kept with the outputs
print(f"profile={PROFILE}  run cache={cache.folder} ({reused} runs from the ledger)  outputs -> {rep.out_dir}")

# %% [markdown]
# ## 1 · Node classification on notebook 01's graphs
# The same features, graphs and geom-gcn splits as notebook 01's table. Every penalty (eight distances for the
# plain regulariser, three kinds of maps for the sheaf one) chooses its weight from `ALPHAS` on the mean
# validation accuracy of the first `SELECT_SPLITS` splits, then runs on every split.

# %%
node = GraphRegPlan("node", NODE_DATASETS, ROWS, ALPHAS, SPLITS, SELECT_SPLITS, mlp=MLP, train=TRAIN)
node_selection = node.run_selection(cache)
node_alpha = node.choose(node_selection)
node_final = node.run_final(node_alpha, cache)
refs = reference_rows(NODE_DATASETS, REFERENCE_MODELS, build=build_node_model)  # inference timed here, now
refs["model"] = refs.model.where(refs.model != "mlp", "mlp (notebook 01)")
mlp_ms = {ds: mlp_inference_ms(ds, MLP) for ds in NODE_DATASETS}  # every penalty: the same MLP at inference
node_rows = pd.concat([result_rows(node_final, infer_ms=mlp_ms), reference_table(refs)], ignore_index=True)
order = [MLP_ROW, *ROWS, *refs.model.drop_duplicates()]
tex = accuracy_tex(node_rows, NODE_DATASETS, order)
rep.table(tex, "graph_reg", escape=False)
tex

# %% [markdown]
# ### Accuracy against the penalty's weight
# Test accuracy (mean over the selection splits) at every weight; the dashed line is the plain MLP on the same
# splits. The weight each row runs at was chosen on validation accuracy, not on this figure.

# %%
sel = node_selection[node_selection.setting.isin(ALPHA_FIGURE)]
fig, axes = plt.subplots(1, len(ALPHA_FIGURE), figsize=figsize(1.0, 0.42), squeeze=False)
for ax, ds in zip(axes[0], ALPHA_FIGURE):
    s = sel[sel.setting == ds].assign(test=lambda f: 100 * f.test_acc)
    sns.lineplot(data=s, x="chosen_alpha", y="test", hue="row", marker="o", errorbar=None, ax=ax, lw=0.9,
                 legend=ax is axes[0][-1])  # fmt: skip
    mlp_runs = node_final[(node_final.setting == ds) & (node_final.row == MLP_ROW)]
    base = 100 * mlp_runs[mlp_runs.split.isin(SPLITS[:SELECT_SPLITS])].test_acc.mean()
    ax.axhline(base, ls="--", color="k", lw=0.8)
    ax.set(xscale="log", xlabel=r"$\alpha$", ylabel="test accuracy (%)", title=ds)
axes[0][-1].legend(fontsize=5, title=None, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
rep.figure(fig, "graph_reg_alpha")

# %% [markdown]
# ### Accuracy against homophily
# Edge homophily (the fraction of edges joining two nodes of one class) of each graph against the test accuracy
# of the plain MLP, the best plain- and sheaf-regularised MLP of each graph (chosen on validation), GCN and NSD
# (notebook 01's diagonal NSD).

# %%
hom = {ds: float(homophily(load_graph(ds).edge_index, load_graph(ds).y, method="edge")) for ds in NODE_DATASETS}
acc = node_rows[node_rows.metric == "test_acc"].copy()
picked = []
for ds in NODE_DATASETS:
    d = acc[acc.dataset == ds]
    for label, sub in [("MLP", d[d.row == MLP_ROW]), ("graph-regularised MLP", d[d.regulariser == "graph"]),
                       ("sheaf-regularised MLP", d[d.regulariser.fillna("").str.startswith("sheaf")]),
                       ("GCN", d[d.row == "gcn"]), ("Diag-NSD", d[d.row == "diag-nsd"])]:  # fmt: skip
        if not sub.empty:
            best = sub.sort_values("val_acc", ascending=False).iloc[0] if "val_acc" in sub and sub.val_acc.notna().any() else sub.iloc[0]
            picked.append({"dataset": ds, "homophily": hom[ds], "model": label, "accuracy": best["mean"]})
picked = pd.DataFrame(picked)
fig, ax = plt.subplots(figsize=figsize(0.6, 0.6))
sns.lineplot(data=picked.sort_values("homophily"), x="homophily", y="accuracy", hue="model", marker="o", lw=0.9,
             ax=ax)  # fmt: skip
for ds, h in hom.items():
    ax.annotate(ds, (h, picked[picked.dataset == ds].accuracy.min()), fontsize=5, va="top")
ax.set(xlabel="edge homophily", ylabel="test accuracy (%)")
ax.legend(fontsize=5, title=None)
fig.tight_layout()
rep.figure(fig, "graph_reg_homophily")

# %% [markdown]
# ## 2 · Semi-supervised images (Neural Graph Machines' setting)
# MNIST-5k with `SEMI_PER_CLASS` labels per class; a cosine kNN graph of the pixels of every image, built without
# labels; the penalty weighs labelled–labelled, labelled–unlabelled and unlabelled–unlabelled edges alike. The
# validation images (10 %) choose the weight and the epoch, as in the node task (their labels are not used for
# training). References: a k-NN vote of the labelled images on the raw pixels and on a UMAP embedding of the same
# neighbourhoods (unsupervised).

# %%
semi = GraphRegPlan("semi", ["mnist5k"], {r: ROWS[r] for r in SEMI_ROWS}, ALPHAS, SEMI_SEEDS,
                    min(SELECT_SPLITS, len(SEMI_SEEDS)), per_class=SEMI_PER_CLASS, mlp=MLP, train=TRAIN,
                    data_options={k: v for k, v in SEMI_OPTIONS.items() if k != "per_class"})  # fmt: skip
semi_selection = semi.run_selection(cache)
semi_alpha = semi.choose(semi_selection)
semi_final = semi.run_final(semi_alpha, cache)
semi_rows = result_rows(semi_final)

images = load_semi_supervised(SemiSupervisedConfig(per_class=1, **SEMI_OPTIONS))
emb = umap_embedding(images.x, UmapConfig(n_neighbors=SEMI_OPTIONS.get("k", 10), **UMAP))
refs_semi, umap_acc = [], {}
for budget in SEMI_PER_CLASS:
    for name, feats in (("k-NN on pixels", images.x), ("k-NN on UMAP", emb)):
        scores = []
        for seed in SEMI_SEEDS:
            labelled = load_semi_supervised(SemiSupervisedConfig(per_class=budget, seed=seed, **SEMI_OPTIONS)).train_mask
            scores.append(knn_accuracy(feats, images.y, labelled, images.test_mask))
        s = pd.Series(scores)
        refs_semi.append({"task": "semi", "dataset": f"mnist5k-{budget}", "model": name, "regulariser": "",
                          "distance": "", "metric": "knn_acc", "mean": 100 * s.mean(), "std": 100 * s.std(ddof=0),
                          "n": len(s), "infer_ms": float("nan"), "row": name})  # fmt: skip
        if name == "k-NN on UMAP":
            umap_acc[budget] = 100 * s.mean()
semi_rows = pd.concat([semi_rows, pd.DataFrame(refs_semi)], ignore_index=True)
semi_tex = accuracy_tex(semi_rows.assign(metric="test_acc"), [f"mnist5k-{b}" for b in SEMI_PER_CLASS],
                        [MLP_ROW, *SEMI_ROWS, "k-NN on pixels", "k-NN on UMAP"])  # fmt: skip
rep.table(semi_tex, "graph_reg_semi", escape=False)
semi_tex

# %% [markdown]
# ## 3 · The multimodal reviews: the graph at training time only
# Notebook 03's encoder on T2 (the garment class of a clothing review) with its best loss (ArcFace, its tuned
# settings), three ways: text and tabular towers alone (notebook 03's ablation row), the same towers with the
# review graph (same-item edges) in the loss only, and notebook 03's encoder with its graph tower (the graph read
# at inference). The penalty's weight is chosen on validation MAP@R of the first `REVIEW_SELECT_SEEDS` seeds.

# %%
def review_spec(variant: str, seed: int, alpha: float = 1.0) -> ReviewRunSpec:
    return ReviewRunSpec(variant, seed=seed, alpha=alpha, distance=REVIEW_DISTANCE, profile=REVIEW_PROFILE,
                         train=REVIEW_TRAIN)  # fmt: skip


reviews_task = load_task(TASK, **review_spec("graph-reg", REVIEW_SEEDS[0]).metric_spec().data_options)
print(f"T2: {reviews_task.num_rows} reviews")  # loaded (texts embedded) here once, not in every worker
review_selection = run_review_specs([review_spec("graph-reg", s, a) for a in REVIEW_ALPHAS
                                     for s in REVIEW_SEEDS[:REVIEW_SELECT_SEEDS]], desc="reviews: choose alpha")  # fmt: skip
review_alpha = choose_alpha(review_selection)
reviews = run_review_specs([review_spec(v, s, review_alpha) for v in VARIANTS for s in REVIEW_SEEDS],
                           desc="reviews")  # fmt: skip
review_table = review_rows(reviews)
print(f"graph-reg alpha chosen on validation: {review_alpha:g}")
review_table[review_table.task == "reviews"].pivot_table(index="row", columns="metric", values="mean", sort=False)

# %% [markdown]
# ## 4 · Distance measures for retrieval
# The test images of one label budget as queries against each other (MAP@R and P@1), on the embedding $z$ of
# each trained model (its best validation epoch), under every distance; the two Mahalanobis matrices are fitted
# on the labelled training images' embeddings (NCA for the learned one).

# %%
records = semi.run_retrieval(semi_alpha, RETRIEVAL_SETTING, cache=cache)
records_keys = list(records.attrs.get("keys", []))
retrieval = retrieval_rows(records, semi_final)
heat = retrieval[retrieval.metric == "map_at_r"].pivot_table(index="row", columns="distance", values="mean",
                                                             sort=False)  # fmt: skip
fig, ax = plt.subplots(figsize=figsize(0.8, 0.5))
sns.heatmap(heat, annot=True, fmt=".1f", cmap="viridis", ax=ax, annot_kws={"fontsize": 5},
            cbar_kws={"label": "MAP@R (%)"})  # fmt: skip
ax.set(xlabel="retrieval distance", ylabel="trained with")
fig.tight_layout()
rep.figure(fig, "graph_reg_retrieval")
rep.table(retrieval.pivot_table(index="row", columns=["metric", "distance"], values="mean", sort=False).round(1)
          .reset_index(), "graph_reg_retrieval")  # fmt: skip
heat

# %% [markdown]
# ## The table and the numbers

# %%
every = pd.concat([node_rows, semi_rows, retrieval, review_table], ignore_index=True)
rep.table(every[list(TABLE_COLUMNS)], "graph_reg", tex=tex, escape=False, float_digits=3)
alpha = pd.concat([node_alpha.assign(task="node"), semi_alpha.assign(task="semi"),
                   pd.DataFrame([{"task": "reviews", "setting": "clothing-t2", "row": "graph-reg", "alpha": review_alpha,
                                  "val_acc": float("nan")}])], ignore_index=True)  # fmt: skip
rep.table(alpha[["task", "setting", "row", "alpha", "val_acc"]], "graph_reg_alpha", float_digits=4)
sheaf_d = sorted({r.get("d", 2) for r in ROWS.values() if r["kind"] == "sheaf"})
protocol = {"GraphRegHidden": MLP["hidden_channels"], "GraphRegDropout": MLP["dropout"],
            "GraphRegStalkDim": ", ".join(map(str, sheaf_d)), "GraphRegSemiK": SEMI_OPTIONS.get("k", 10),
            "GraphRegDistances": sum(r["kind"] == "graph" for r in ROWS.values()),
            "GraphRegSemiVal": int(images.val_mask.sum()),
            "GraphRegSemiValPerClass": int(images.val_mask.sum()) // int(images.num_classes),
            "GraphRegSemiBudgets": ", ".join(map(str, SEMI_PER_CLASS)),
            "GraphRegRetrievalSetting": RETRIEVAL_SETTING.rsplit("-", 1)[-1], "GraphRegEpochs": TRAIN["epochs"],
            "GraphRegPatience": TRAIN["patience"], "GraphRegSelectSplits": SELECT_SPLITS}  # fmt: skip
numbers = graphreg_numbers(node_rows, splits=len(SPLITS), alphas=len(ALPHAS), semi=semi_rows, umap=umap_acc,
                           retrieval=retrieval, reviews=review_table[review_table.task == "reviews"],
                           protocol=protocol)  # fmt: skip
for key in ("GraphRegCoraGain", "GraphRegCoraTargetMet", "GraphRegSheafWins", "GraphRegHeterophilic"):
    print(key, numbers.get(key, "--"))

# %% [markdown]
# ## Outputs

# %%
keys = [*node_selection.key, *node_final.key, *semi_selection.key, *semi_final.key, *records_keys, *review_selection.key, *reviews.key]
rep.runs([cache.folder.name, review_cache().folder.name], keys)
rep.macros(numbers)
rep.close()

# %% [markdown]
# ## Reading
# *Written for the paper profile; the smoke profile's numbers mean nothing.* The paper's section
# "Graph-regularised embeddings and distance measures" reads the tables and figures above from the macros: the
# gain of the graph-regularised MLP over the plain one on Cora (target: two points) at the MLP's inference cost,
# the sheaf against the plain regulariser on the heterophilic graphs with the spread, the label budgets of the
# semi-supervised images against the unsupervised references, and the retrieval distances.
