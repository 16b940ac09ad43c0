# %% [markdown]
# # Hartford et al. 2018 — Douban, Flixster, YahooMusic (Monti et al.'s splits)
#
# The factorized exchangeable autoencoder (`f-eae`) on the three 3000 x 3000 matrices of Monti et al. 2017
# with their fixed training/test masks (`load_split("douban")` etc.; the same files GC-MC and IGMC use). The
# authors' settings for these datasets: 200 hidden units (Douban, YahooMusic) or 220 (Flixster), 100-d user
# and item codes, the whole matrix in every step, no weight averaging, validation every epoch, up to 6,000
# epochs without the divergence stop they use on MovieLens. Validation = 7% of the training mask (the authors:
# one `RandomState(1234)` Bernoulli draw; here a fresh draw per seed), test RMSE at the best-validation state,
# early stopping after 500 epochs without improvement (our choice), 5 seeds.
#
# Rating scales: Douban 1–5, Flixster 0.5–5 in half stars (10 classes), YahooMusic 1–100 (the distinct
# training values, 69, are the classes; the authors took the distinct values of the whole file, test
# included). RMSE is on each dataset's own scale. The simple mean predictors on the same splits are in the
# `baselines_rating` table (on Flixster and YahooMusic they are hard to beat). `max_epochs` / `init` as in the
# ML-100K notebook (rows then labelled *reduced budget*).

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (about a minute on 2 CPU cores) or "full" (the reported protocol)
device = "auto"  # "auto", "cpu" or "cuda"
seeds = None  # None: the profile's seeds
data_root = ""  # "" -> $RECREPRO_DATA
output_dir = "build/manual-runs/hartford2018_t2_monti"
checkpoint_dir = "build/manual-runs/hartford2018_t2_monti/checkpoints"
max_epochs = None  # None: the authors' epoch caps; an int caps every fit (rows labelled reduced budget)
init = "authors"  # "authors": N(0, 0.01) as in the authors' code; "pytorch": nn.Linear default (labelled reduced)

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from recrepro import compare
from recrepro.device import device_name, resolve_device
from recrepro.experiments import hartford2018 as experiment
from recrepro.results import RunRecorder

recorder = RunRecorder("hartford2018_t2_monti", profile, output_dir, checkpoint_dir or None)
tables = experiment.run(
    recorder,
    table="t2_monti",
    profile=profile,
    device=device,
    data_root=data_root or None,
    seeds=seeds,
    max_epochs=max_epochs,
    init=init,
)
metrics = recorder.finish(device=device_name(resolve_device(device)))

# %% [markdown]
# ## Our numbers (mean ± std over seeds)

# %%
shown = metrics[metrics["metric"].isin(["rmse", "valid_rmse", "best_epoch", "seconds_per_epoch"])]
compare.summarise(shown).pivot(index=["dataset", "method"], columns="metric", values="ours")

# %% [markdown]
# ## Paper vs ours
# The paper's other rows (GRALS, sRGCNN, GC-MC) are quoted from earlier papers; the sRGCNN rows are re-run in
# the Monti et al. chapter. Mean predictors on the same splits, for scale:

# %%
compare.comparison_table(metrics, profile=profile)

# %%
tables["reference"].pivot(index="method", columns="dataset", values="rmse")

# %% [markdown]
# ## Budget of each row, and the cost of the full profile
# `full_hours_upper_bound` = measured seconds per epoch x 6,000 epochs x 5 seeds on this run's device (early
# stopping usually ends sooner; validation every epoch adds two forward passes per epoch).
#
# The cost estimate is meaningful only where `measured_on_full_network` is true (the smoke profile's tiny
# networks are far cheaper than the paper's).

# %%
metrics.drop_duplicates(["dataset", "method"])[["dataset", "method"] + (["budget"] if "budget" in metrics else [])]

# %%
tables["cost"]

# %% [markdown]
# ## Learning curves
# Validation and test RMSE per epoch, one line per seed; dashed: the global mean predictor's test RMSE.

# %%
long = experiment.learning_curves_long(tables["curves"])
g = sns.relplot(
    data=long, x="epoch", y="rmse", hue="curve", units="seed", estimator=None, col="panel", kind="line",
    facet_kws={"sharey": False, "sharex": False}, height=3.0,
)  # fmt: skip
g.set_titles("{col_name}")
ref = tables["reference"].query("method == 'global-mean'").set_index("dataset")["rmse"]
for ax, panel in zip(g.axes.flat, g.col_names, strict=True):
    ax.axhline(ref[panel.split(" · ")[0]], color="grey", lw=0.8, ls="--")
plt.show()
