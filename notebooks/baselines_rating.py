# %% [markdown]
# # Simple baselines: ML-100K u1, Douban, Flixster, YahooMusic
#
# Global, user, item and user+item mean predictors, and biased matrix factorisation tuned on a validation
# split carved from the training data (protocol in `recrepro.experiments.baselines_rating`). These are the
# rows every deep model in the study should be measured against.

# %% tags=["parameters"]
profile = "smoke"  # "smoke" (about a minute on 2 CPU cores) or "full" (the reported protocol)
device = "auto"  # "auto", "cpu" or "cuda"
seeds = None  # None: the profile's seeds
data_root = ""  # "" -> $RECREPRO_DATA
output_dir = "build/manual-runs/baselines_rating"
checkpoint_dir = "build/manual-runs/baselines_rating/checkpoints"

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from recrepro import compare, figures
from recrepro.device import device_name, resolve_device
from recrepro.experiments import baselines_rating as experiment
from recrepro.results import RunRecorder

recorder = RunRecorder("baselines_rating", profile, output_dir, checkpoint_dir or None)
tables = experiment.run(recorder, profile=profile, device=device, data_root=data_root or None, seeds=seeds)
metrics = recorder.finish(device=device_name(resolve_device(device)))

# %% [markdown]
# ## Our numbers (test RMSE, mean ± std over seeds)

# %%
compare.summarise(metrics).pivot(index="method", columns="dataset", values="ours")

# %% [markdown]
# ## Paper vs ours
# Rows quoted by the papers for these splits (Monti et al. Table 4 reports the mean baselines on ML-100K u1).

# %%
compare.comparison_table(metrics, profile=profile)

# %% [markdown]
# ## Figures

# %%
figures.relative_rmse(metrics, reference="global-mean")
plt.show()

# %%
sns.relplot(
    data=tables["curves"],
    x="epoch",
    y="valid_rmse",
    hue="seed",
    col="dataset",
    kind="line",
    facet_kws={"sharey": False},
    height=2.6,
)
plt.show()
