# %% [markdown]
# # 06 · Similarity measures and collapse in non-contrastive self-supervised learning
#
# **Produces:** `tables/ssl_collapse.{tex,csv}` (every method × similarity measure and every collapse ablation:
# k-NN and linear accuracy, normalised std, RankMe, training seconds; mean over seeds, on MNIST-5k, on
# scikit-learn's digits without re-tuning, and on the clothing reviews), `tables/ssl_hparams.{tex,csv}` (the
# searched settings), the figures `ssl_collapse_history.pdf` (normalised std and RankMe over training, collapsing
# and healthy runs), `ssl_spectra.pdf` (covariance spectra of the embeddings), `ssl_rankme_knn.pdf`
# (k-NN accuracy against RankMe over all runs) and `macros/06_ssl_collapse.tex`.
#
# **The question.** Methods without negative pairs (SimSiam, BYOL, Barlow Twins, VICReg) pull the two views of
# an image together and must avoid the trivial answer: every input mapped to one point (complete collapse), or
# to a low-dimensional subspace (dimensional collapse). Which **similarity measure** in the view-matching term
# lets them avoid it? We swap the measure inside each method: cosine similarity of normalised vectors, negative
# squared L2 of unnormalised vectors, normalised L2 ($2 - 2\cos$, BYOL's loss) and the plain dot product, where
# each is meaningful (Barlow Twins' invariance term is a correlation of batch-standardised embeddings, so its
# measure is fixed; SimCLR, the contrastive reference, keeps cosine). Beside them, the known ablations that
# collapse or not: SimSiam without stop-gradient and without predictor, BYOL without EMA and without predictor,
# VICReg without its variance term, Barlow Twins without its off-diagonal term, and the embedding width and
# batch size. A supervised encoder of the same architecture (cross-entropy) and the untrained network are the
# reference points.
#
# **Diagnostics**, label-free unless stated: the normalised std (std of the $L_2$-normalised embedding per
# dimension, times $\sqrt d$: about 1 for an isotropic embedding, 0 at complete collapse; SimSiam §4.1), the
# singular-value spectrum of the embedding covariance (dimensional collapse), RankMe (the exponential of the
# entropy of the normalised singular values) and α-ReQ (the eigenspectrum's power-law exponent); with labels,
# cosine k-NN accuracy (k = 20) and a linear probe on the frozen network. The table's numbers are taken on the
# **embedding** $z$ (the projector's output: what the loss sees and what collapses); the same numbers on the
# **representation** $h$ before the projector (what self-supervised papers usually probe) are in the CSV as
# `*_h` columns.

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
# Defaults: the **smoke** profile (600 images, a tiny network, one epoch, one trial per method, two seeds; its
# numbers mean nothing). The **paper** profile (`notebooks/params/06_ssl_collapse.paper.yaml`) runs the study
# on all of MNIST-5k, the digits and T2's reviews.

# %% tags=["parameters"]
PROFILE = "smoke"
DATA_OPTIONS = {"max_rows": 600}
ROWS = {"simsiam": ["cosine", "l2"], "byol": ["normalised_l2"], "barlow": ["correlation"], "vicreg": ["l2"],
        "simclr": ["cosine"], "supervised": ["cross-entropy"], "random": ["none"]}
ABLATIONS = {"SimSiam, no stop-gradient": {"method": "simsiam", "stop_gradient": False},
             "BYOL, no EMA (tau = 0)": {"method": "byol", "tau": 0.0}}
MODEL = {"widths": [4, 8, 8], "dim": 16, "proj_hidden": 32}
TRAIN = {"epochs": 1, "batch_size": 64, "log_every": 1}
AUGMENT = {}
HPO_TRIALS = 1
HPO_TRAIN = {"epochs": 1}
SEEDS = [0, 1]
TRANSFER = "digits"
TRANSFER_OPTIONS = {"max_rows": 400}
REVIEW_ROWS = {"simsiam": ["cosine"], "vicreg": ["l2"], "supervised": ["cross-entropy"], "random": ["none"]}
REVIEW_OPTIONS = {"max_rows": 800}
REVIEW_ENCODER = {"modalities": ["text", "tabular", "graph"], "token_dim": 16, "embedding_dim": 16,
                  "text_hidden": 16, "tab_channels": 8, "tab_layers": 1, "proj_hidden": 16, "graph_max_neighbours": 3}
REVIEW_MODEL = {"dim": 16, "proj_hidden": 32}
REVIEW_TRAIN = {"epochs": 1, "batch_size": 128, "lr": 0.001, "weight_decay": 0.0001, "log_every": 1}
REVIEW_VIEWS = {"noise_std": 0.1, "view_dropout": 0.2}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from mmsheaf.data.augment import ImageAugment
from mmsheaf.data.images import load_images
from mmsheaf.report import Report, figsize
from mmsheaf.runs.ledger import ledger_path, seed_cache
from mmsheaf.runs.rebuild import rebuild_notes
from mmsheaf.ssl import MAIN_VARIANT, SSLPlan, resolve_method, run_specs, ssl_cache
from mmsheaf.ssl.numbers import ssl_numbers
from mmsheaf.ssl.reviews import load_review_splits
from mmsheaf.ssl.tables import collapse_table, history_frame, label_runs, spectrum_frame

params = dict(DATA_OPTIONS=DATA_OPTIONS, ROWS=ROWS, ABLATIONS=ABLATIONS, MODEL=MODEL, TRAIN=TRAIN, AUGMENT=AUGMENT,
              HPO_TRIALS=HPO_TRIALS, HPO_TRAIN=HPO_TRAIN, SEEDS=SEEDS, TRANSFER=TRANSFER,
              TRANSFER_OPTIONS=TRANSFER_OPTIONS, REVIEW_ROWS=REVIEW_ROWS, REVIEW_OPTIONS=REVIEW_OPTIONS,
              REVIEW_ENCODER=REVIEW_ENCODER, REVIEW_MODEL=REVIEW_MODEL, REVIEW_TRAIN=REVIEW_TRAIN,
              REVIEW_VIEWS=REVIEW_VIEWS)  # fmt: skip
rep = Report("06_ssl_collapse", PROFILE, params=params)
cache = ssl_cache()
reused = seed_cache(ledger_path("06_ssl_collapse", PROFILE))  # finished runs kept with the outputs
plan = SSLPlan(ROWS, SEEDS, ablations=ABLATIONS, model=MODEL, train=TRAIN, augment=AUGMENT, trials=HPO_TRIALS,
               hpo_train=HPO_TRAIN, data_options=DATA_OPTIONS)  # fmt: skip
print(f"profile={PROFILE}  run cache={cache.folder} ({reused} runs from the ledger)  outputs -> {rep.out_dir}")

# %% [markdown]
# ## The images and their views
# MNIST-5k (500 digits per class), split 70/10/20 with a fixed seed; the two views of an image are two draws of
# a random resized crop, a small affine map, Gaussian noise and random erasing, written with torch operations.

# %%
images = load_images("mnist5k", **DATA_OPTIONS)
print(images)
g = torch.Generator().manual_seed(0)
v1, v2 = ImageAugment(**AUGMENT).two_views(images.train_x[:8], g)
fig, axes = plt.subplots(3, 8, figsize=figsize(0.8, 0.32))
for col in range(8):
    for row, x in enumerate((images.train_x, v1, v2)):
        axes[row, col].imshow(x[col, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        axes[row, col].axis("off")
fig.suptitle("an image (top) and its two views", fontsize=7)

# %% [markdown]
# ## Searches
# Every trained method starts from its published loss settings (Barlow Twins $\lambda = 5\cdot10^{-3}$, VICReg
# 25/25/1, BYOL $\tau_0 = 0.99$, SimCLR's temperature 0.2) and gets the same number of Optuna TPE trials over the
# learning rate and its own parameter, at its own similarity, on the validation images' k-NN accuracy (with the
# search's shorter epoch budget, `HPO_TRAIN`); the published settings stay unless a trial beats them there. Every
# row of a method shares its tuned settings. A study rebuilt from its trials' runs (its journal was lost) says so
# below: its parameters, values and best trial are the trained runs', its trial numbers are not the draw order.

# %%
tuning = plan.tune_all(cache, log=print)
for name, note in rebuild_notes(tuning.studies).items():
    print(f"{name}: {note}")
hparams = pd.DataFrame([{"method": plan.displays()[m], **{k: round(float(v), 5) for k, v in p.items()}}
                        for m, p in tuning.best.items()])  # fmt: skip
rep.table(hparams.astype(object).where(hparams.notna(), ""), "ssl_hparams")
hparams

# %% [markdown]
# ## The grid and the collapse ablations (MNIST-5k)

# %%
main = label_runs(run_specs(plan.main_specs(tuning.best), cache, desc="method x similarity"), MAIN_VARIANT)
ablation_specs = plan.ablation_specs(tuning.best)
ablations = pd.concat([label_runs(run_specs(specs, cache, desc=label), label)
                       for label, specs in ablation_specs.items()], ignore_index=True)  # fmt: skip
mnist = pd.concat([main, ablations], ignore_index=True)

# %% [markdown]
# ## Do the conclusions travel? The digits, without re-tuning
# scikit-learn's 1,797 digits (8×8, resized to 28×28), every row of the grid with MNIST-5k's tuned settings.

# %%
transfer_plan = SSLPlan(ROWS, SEEDS, model=MODEL, train=TRAIN, augment=AUGMENT, trials=HPO_TRIALS,
                        dataset=TRANSFER, data_options=TRANSFER_OPTIONS)  # fmt: skip
transfer = label_runs(run_specs(transfer_plan.main_specs(tuning.best), cache, desc=TRANSFER), MAIN_VARIANT)

# %% [markdown]
# ## The report's own data: clothing reviews (T2)
# Notebook 03's multimodal encoder (text, tabular record, same-item graph) as the backbone; a review's two views
# are two passes with their own feature noise and modality dropout (notebook 03's NT-Xent views). Each method
# runs at its published loss settings with notebook 03's learning rate and weight decay (Adam, with this study's
# cosine decay and a fixed number of epochs), not re-tuned, scored by T2's k-NN accuracy (the garment class) on
# the test items' reviews.

# %%
review_plan = SSLPlan(REVIEW_ROWS, SEEDS, model=REVIEW_MODEL, train=REVIEW_TRAIN, augment=REVIEW_VIEWS,
                      dataset="clothing-t2", data_options=REVIEW_OPTIONS, encoder=REVIEW_ENCODER)  # fmt: skip
print(load_review_splits(**REVIEW_OPTIONS))  # loaded (texts embedded) here once, not in every worker
reviews = label_runs(run_specs(review_plan.main_specs({}), cache, desc="reviews"), MAIN_VARIANT)

# %% [markdown]
# ## The table

# %%
every = pd.concat([mnist, transfer, reviews], ignore_index=True)
table, tex = collapse_table(every, order=[MAIN_VARIANT, *ABLATIONS])
h_cols = ["alpha_req", "knn_acc_h", "linear_acc_h", "norm_std_h", "rankme_h", "alpha_req_h"]
table = table.merge(every.groupby(["dataset", "method", "similarity", "variant"], sort=False)[h_cols].mean()
                    .reset_index(), on=["dataset", "method", "similarity", "variant"])  # fmt: skip
rep.table(table, "ssl_collapse", tex=tex, escape=False, float_digits=3)
table

# %% [markdown]
# ## Numbers quoted in the paper
# The best row of a data set is the one with the best *validation* k-NN accuracy; its test accuracy is quoted.

# %%
numbers = ssl_numbers(table, mnist, ABLATIONS, num_classes=images.num_classes, num_seeds=len(SEEDS),
                      trials=HPO_TRIALS, epochs=TRAIN["epochs"], transfer=TRANSFER)  # fmt: skip
for key in ("SslCollapseTargetMet", "SslPairStdTargetMet", "SslGapToSupervised", "SslGapTargetMet", "SslSpearman",
            "SslSpearmanH", "SslCollapsedRows", "SslDivergedRows"):  # fmt: skip
    print(key, numbers[key])

# %% [markdown]
# ## Collapse over training
# The normalised std of the validation embeddings and their RankMe, logged during training, for every method at
# its own similarity and for the ablations (the SimSiam stop-gradient figure, §4.1, reproduced here).

# %%
own = mnist.similarity == mnist.method.map(lambda m: resolve_method(m).default_similarity)
hist = history_frame(mnist[(mnist.variant != MAIN_VARIANT) | own])
hist["run"] = hist.method_name + ", " + hist.variant.where(hist.variant != MAIN_VARIANT, hist.similarity)
fig, axes = plt.subplots(1, 2, figsize=figsize(1.0, 0.42))
for ax, (col, label) in zip(axes, [("norm_std", "normalised std of $z$"), ("rankme", "RankMe of $z$")]):
    sns.lineplot(data=hist, x="epoch", y=col, hue="run", errorbar="sd", ax=ax, lw=0.9, legend=ax is axes[1])
    ax.set(ylabel=label)
axes[1].legend(fontsize=5, title=None, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
rep.figure(fig, "ssl_collapse_history")

# %% [markdown]
# ## Dimensional collapse: the spectra
# Eigenvalues of the covariance of the test embeddings at the end of training, normalised by the largest (first
# seed): a spectrum that drops to zero after a few dimensions is a dimensional collapse.

# %%
spec = spectrum_frame(mnist[mnist.seed == SEEDS[0]])
spec["run"] = spec.method_name + ", " + spec.variant.where(spec.variant != MAIN_VARIANT, spec.similarity)
fig, ax = plt.subplots(figsize=figsize(0.75, 0.5))
sns.lineplot(data=spec[spec.eigenvalue > 0], x="index", y="eigenvalue", hue="run", ax=ax, lw=0.8)
ax.set(yscale="log", xlabel="rank", ylabel="eigenvalue / largest")
ax.legend(fontsize=5, title=None, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
rep.figure(fig, "ssl_spectra")

# %% [markdown]
# ## Can collapse be seen without labels? RankMe against k-NN accuracy
# Every MNIST-5k run (grid and ablations, every seed; diverged runs left out), with Spearman's rank correlation,
# on the embedding $z$ (the table's numbers) and on the representation $h$ before the projector.

# %%
ok = mnist[~mnist.diverged & mnist.knn_acc.notna() & mnist.rankme.notna()]
fig, axes = plt.subplots(1, 2, figsize=figsize(1.0, 0.42), sharey=False)
for ax, (suffix, name, key) in zip(axes, [("", "z", "SslSpearman"), ("_h", "h", "SslSpearmanH")]):
    sns.scatterplot(data=ok, x=f"rankme{suffix}", y=f"knn_acc{suffix}", hue="method_name", style="variant", s=12,
                    ax=ax, legend=ax is axes[1])  # fmt: skip
    ax.set(xlabel=f"RankMe of ${name}$", ylabel=f"test k-NN accuracy of ${name}$",
           title=f"Spearman $\\rho$ = {numbers[key]}")  # fmt: skip
axes[1].legend(fontsize=5, title=None, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
rep.figure(fig, "ssl_rankme_knn")

# %% [markdown]
# ## Outputs

# %%
rep.runs([cache.folder.name], [*tuning.trial_keys, *every.key], studies=tuning.studies)
rep.macros(numbers)
rep.close()

# %% [markdown]
# ## Reading
# *Written for the paper profile; the smoke profile's numbers mean nothing.* The paper's section "Similarity
# measures and collapse in self-supervised learning" reads the table and figures above from the macros: whether
# SimSiam without stop-gradient collapses while SimSiam does not, which method × similarity rows and which
# ablations collapse, how far the best non-contrastive method is from the supervised encoder, and how well
# RankMe, without labels, ranks the runs by their k-NN accuracy.
