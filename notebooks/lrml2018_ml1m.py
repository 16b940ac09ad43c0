# %% [markdown]
# # Tay et al. 2018 (LRML) on ML-1M: sampled and full-ranking HR@10 / nDCG@10
#
# **Protocol.** Implicit feedback (every rating is a positive), leave-one-out. Our ML-1M ratings lack some
# timestamps (the reconstruction misses 198,417 of them), so we cannot rebuild "each user's latest rating" from
# time; we use NCF's own files instead (`load_split("ml-1m/ncf-loo")`): NCF's held-out test item per user and its
# 99 fixed negatives, with every other rating as training data. 156 users have their own test item among their
# 99 negatives; our evaluator drops that duplicate, as NCF's own evaluator effectively does (it keys scores by
# item id). Besides the paper's **sampled** protocol (target ranked among its 99 negatives; metric keys `hr@10`,
# `ndcg@10`) every model is also scored under **full ranking** (target ranked among every item the user has not
# interacted with in training; keys `full/hr@10`, `full/ndcg@10`): Krichene & Rendle (KDD 2020) show that sampled
# metrics can change the order of methods.
#
# **Selection.** Every model is trained on the training data minus one validation item per user
# (`loo.validation_view(seed)`: the latest training rating by time, a random one where the time is missing, with
# its own 99 negatives) and early-stopped on validation HR@10; test metrics are read at that state. Each trained
# method gets the same tuning budget, a 2 x 2 grid (4 trials, seed 0's validation view); the chosen setting is
# then trained with 5 seeds (seed 0 reuses the selected trial). Grids, epoch bounds and the source of every
# hyperparameter: `recrepro.experiments.lrml2018`.
#
# **Methods.** `lrml` is the headline row: LRML as the paper describes it, the negative pair getting its own
# relation vector (`copy_relations=False`). `lrml-code` is LRML as the authors' code runs it (the negative pair
# reuses the positive pair's relation, `copy_relations=True`). Baselines: popularity, BPR-MF, NeuMF (He et al.
# 2017, the neural recommender of the NCF files' own paper), CML (the metric learning baseline LRML claims to beat)
# and iALS, the strong simple baseline of Rendle et al. (2020, 2021).
#
# **Threads.** The experiment leaves PyTorch's thread count to the caller; on a shared CPU run it with
# `OMP_NUM_THREADS=1` (on our 2 contended cores one thread was an order of magnitude faster than two).

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (about a minute on 2 CPU cores) or "full" (the reported protocol)
device = "auto"  # "auto", "cpu" or "cuda"
seeds = None  # None: the profile's seeds (full: 0..4)
max_epochs = None  # None: full epoch bounds; an int (all methods) or {"cml": 4, ...} caps them -> "reduced"
tune_grid = True  # False: each method's source-default point only, no grid search -> "reduced"
methods = None  # None: every method; a list: a --units-only worker's share, fitted in that order
data_root = ""  # "" -> $RECREPRO_DATA
output_dir = "build/manual-runs/lrml2018_ml1m"
checkpoint_dir = "build/manual-runs/lrml2018_ml1m/checkpoints"

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from recrepro import compare
from recrepro.device import device_name, resolve_device
from recrepro.experiments import lrml2018 as experiment
from recrepro.results import RunRecorder

recorder = RunRecorder("lrml2018_ml1m", profile, output_dir, checkpoint_dir or None)
tables = experiment.run(
    recorder,
    profile=profile,
    device=device,
    data_root=data_root or None,
    seeds=seeds,
    max_epochs=max_epochs,
    tune_grid=tune_grid,
    methods=methods,
)
metrics = recorder.finish(device=device_name(resolve_device(device)))

# %% [markdown]
# ## Our numbers (mean ± std over seeds), sampled and full ranking

# %%
headline = ["hr@10", "ndcg@10", "full/hr@10", "full/ndcg@10"]
summary = compare.summarise(metrics[metrics["metric"].isin(headline)])
summary.pivot(index="method", columns="metric", values="ours").reindex(
    index=list(experiment.METHOD_ORDER), columns=headline
)

# %% [markdown]
# ## Paper vs ours
# The paper reports LRML on ML-1M: HR@10 0.7397, nDCG@10 0.5453 (sampled protocol). Our `lrml` row is the paper's
# description; the code's variant (`lrml-code`) has no claim of its own.

# %%
compare.comparison_table(metrics, profile=profile)

# %% [markdown]
# ## Does the order of the methods change between protocols?
# Rank 1 = best mean HR@10; Kendall's τ compares the two orders (1 = identical).

# %%
experiment.method_order(metrics, "hr@10")

# %%
experiment.method_order(metrics, "ndcg@10")

# %% [markdown]
# ## HR@k for k = 1..20 under both protocols

# %%
curves = experiment.hr_curves(metrics)
g = sns.relplot(
    data=curves, x="k", y="hr", hue="method", hue_order=list(experiment.METHOD_ORDER), col="protocol",
    kind="line", marker="o", markersize=3, errorbar="sd", height=3.2, facet_kws={"sharey": False},
)  # fmt: skip
g.set_axis_labels("cut-off k", "HR@k (test)")
plt.show()

# %% [markdown]
# ## Code–paper differences of LRML and their measured effect
# The effect is `lrml` − `lrml-code`, paired by seed (mean ± std). The attention read-out of the paper and of
# the code are the same function: the model's tests show identical relations and identical training
# trajectories, so it is not re-run here. Differences held fixed in both rows are listed with the value used.

# %%
experiment.code_paper_differences(metrics)

# %% [markdown]
# ## Validation learning curves (HR@10 on the validation item, sampled)

# %%
lc = tables["curves"][tables["curves"]["method"] != "popularity"]
g = sns.relplot(
    data=lc, x="epoch", y="valid_sampled/hr@10", hue="seed", col="method", col_wrap=3, kind="line",
    height=2.6, facet_kws={"sharex": False},
)  # fmt: skip
plt.show()

# %% [markdown]
# ## Tuning trials (validation metrics only) and cost
# Every trial's validation HR@10; `selected` marks the configuration used for all seeds. The cost table gives
# the measured seconds per training epoch on this run's device and the full profile's cost at that rate
# (upper bound: no early stopping).

# %%
tables["tuning"]

# %%
experiment.cost_table(tables["timing"])
