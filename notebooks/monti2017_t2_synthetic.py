# %% [markdown]
# # Monti et al. 2017 — Table 2: Synthetic Netflix
#
# The authors' `synthetic_netflix.mat`: a 150 x 200 matrix on [1, 5] that is smooth on a given user graph and
# item graph (community-structured, "Netflix-like"), with 4,500 training and 4,500 test entries
# (`Otraining` / `Otest`). Table 2 of the paper (users and items graphs): GMC, GRALS, sRMGCNN (factorised,
# X = W Hᵀ) and the full RMGCNN (multi-graph convolution on the whole matrix). We also run the users-graph-only
# setting (the paper's Table 3, whose values were not recovered: those claims read *no paper value*).
#
# Methods and protocols (every hyperparameter's source: `recrepro.experiments.monti2017`):
#
# * `srmgcnn-paper-protocol`, `rmgcnn-paper-protocol` (and `…-users-graph`): the authors' notebooks — rank 15
#   for sRMGCNN, 50,000 Adam iterations (sRMGCNN) / 25,000 (RMGCNN), no validation set, the test RMSE read at
#   the iteration of lowest *training* loss. These rows are compared with the paper.
# * `srmgcnn`, `rmgcnn` (and `srmgcnn-users-graph`): clean protocol — 10% of the 4,500 training entries held
#   out, the same iterations, the test RMSE at the best *validation* evaluation.
# * `grals`, `gmc`: our runs of those methods, regularisation chosen on a 10% validation carve (seed 0),
#   deterministic, one run each.
#
# Both graph-network protocols keep the authors' output layer: the whole predicted matrix is min-max rescaled
# onto [1, 5] (no test rating is used, but every prediction depends on the matrix's two extreme entries). On
# this noise-free matrix the validation carve removes 450 of 4,500 training entries, which matters more than
# on the real datasets: the protocol gap below is mostly that.
#
# `max_iterations` caps both networks' iterations for a CPU run (rows then labelled *reduced budget*); the
# full RMGCNN costs about a second per iteration on one CPU thread.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (about a minute on 2 CPU cores) or "full" (the reported protocol)
device = "auto"  # "auto", "cpu" or "cuda"
seeds = None  # None: the profile's seeds (full: 0..4)
data_root = ""  # "" -> $RECREPRO_DATA
output_dir = "build/manual-runs/monti2017_t2_synthetic"
checkpoint_dir = "build/manual-runs/monti2017_t2_synthetic/checkpoints"
max_iterations = None  # None: the authors' 50,000 / 25,000 iterations; an int caps them (labelled reduced)

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from recrepro import compare
from recrepro.device import device_name, resolve_device
from recrepro.experiments import monti2017 as experiment
from recrepro.results import RunRecorder

recorder = RunRecorder("monti2017_t2_synthetic", profile, output_dir, checkpoint_dir or None)
tables = experiment.run(
    recorder,
    table="t2_synthetic",
    profile=profile,
    device=device,
    data_root=data_root or None,
    seeds=seeds,
    max_iterations=max_iterations,
)
metrics = recorder.finish(device=device_name(resolve_device(device)))

# %% [markdown]
# ## Our numbers (mean ± std over seeds)

# %%
shown = metrics[metrics["metric"].isin(["rmse", "valid_rmse", "best_iteration", "seconds_per_iteration"])]
compare.summarise(shown).pivot(index=["dataset", "method"], columns="metric", values="ours")

# %% [markdown]
# ## Paper vs ours
# The paper's RMGCNN value is confirmed by a third-party report; its GMC, GRALS and sRMGCNN values are
# recalled (unverified, see `source`). The `CODE-OUTPUT` rows are what the authors' own notebooks printed.
# The paper's GMC and GRALS were run with settings we could not recover; ours are tuned on validation data.

# %%
compare.comparison_table(metrics, profile=profile)

# %% [markdown]
# ## Paper protocol vs validation protocol
# `difference` = validation-protocol RMSE − paper-protocol RMSE (fewer training entries, iteration chosen on
# validation data instead of the lowest training loss).

# %%
experiment.protocol_gap(metrics)

# %% [markdown]
# ## Budget of each row, and the cost of the full profile
# `full_hours_all_seeds` = measured training seconds per iteration on this run's device x the authors'
# iterations x 5 seeds, per protocol.

# %%
tables["units"]

# %%
tables["cost"]

# %% [markdown]
# ## Baseline tuning (validation carve, seed 0)

# %%
tables["tuning"]

# %% [markdown]
# ## Figures
# Test RMSE of every method (log scale: the methods span two orders of magnitude), and the learning curves
# (training, validation and test RMSE per evaluation, one line per seed).

# %%
rmse_rows = metrics[metrics["metric"] == "rmse"]
fig, ax = plt.subplots(figsize=(7, 0.3 * rmse_rows["method"].nunique() + 1.0))
sns.barplot(data=rmse_rows, y="method", x="value", errorbar="sd", ax=ax)
ax.set_xscale("log")
ax.set_xlabel("test RMSE (log scale), mean ± std over seeds")
ax.set_ylabel("")
fig.tight_layout()
plt.show()

# %%
long = experiment.curves_long(tables["curves"])
g = sns.relplot(
    data=long, x="iteration", y="rmse", hue="curve", units="seed", estimator=None, col="panel", col_wrap=3,
    kind="line", height=2.6, aspect=1.3,
)  # fmt: skip
g.set(yscale="log")
g.set_titles("{col_name}", size=8)
plt.show()
