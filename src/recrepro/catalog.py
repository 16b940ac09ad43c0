"""The study's table of contents: every paper and every notebook (one per reported table).

This is the one place that says which notebook reproduces which paper's table, on which datasets, and
why a table cannot run here. The runner hashes the listed datasets' files into a result's input hash,
and the book builds one chapter per paper from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    key: str
    short: str
    citation: str
    claim: str
    # rating datasets whose test RMSE rows from every notebook the chapter sets side by side
    rating_datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotebookSpec:
    stem: str  # notebooks/<stem>.py
    paper: str  # Paper.key ("baselines" for the shared baseline table)
    title: str
    datasets: tuple[str, ...]  # registry names whose files are inputs
    # metrics its chapter tabulates for every (dataset, method) it measured, claimed by the paper or not
    headline: tuple[str, ...] = ()


PAPERS: dict[str, Paper] = {
    p.key: p
    for p in [
        Paper(
            "baselines",
            "Baselines",
            "Shared baselines (this study)",
            "Simple baselines every table should be measured against: mean predictors and tuned biased MF.",
        ),
        Paper(
            "hartford2018",
            "Hartford et al. 2018",
            "Hartford, Graham, Leyton-Brown, Ravanbakhsh. Deep Models of Interactions Across Sets. ICML 2018.",
            "Exchangeable matrix layers; RMSE on ML-100K, ML-1M, Douban, Flixster, YahooMusic; extrapolation.",
            rating_datasets=("ml-100k/u1", "ml-1m/random-90-10", "douban", "flixster", "yahoo_music"),
        ),
        Paper(
            "nnmf2015",
            "Dziugaite & Roy 2015",
            "Dziugaite, Roy. Neural Network Matrix Factorization. arXiv:1511.06443, 2015.",
            "An MLP replaces the inner product of matrix factorisation; RMSE on MovieLens.",
            rating_datasets=("ml-100k/random-90-10", "ml-1m/random-90-10"),
        ),
        Paper(
            "lrml2018",
            "Tay et al. 2018",
            "Tay, Luu, Hui. Latent Relational Metric Learning via Memory-based Attention. WWW 2018.",
            "Memory-based attention metric learning; HR@10 / nDCG@10 on ML-1M, ML-20M, Netflix.",
        ),
        Paper(
            "monti2017",
            "Monti et al. 2017",
            "Monti, Bronstein, Bresson. Geometric Matrix Completion with Recurrent Multi-Graph Neural Networks. "
            "NIPS 2017.",
            "Multi-graph convolution + RNN diffusion; RMSE on synthetic Netflix, ML-100K, Douban, Flixster, Yahoo.",
            rating_datasets=("ml-100k/u1", "douban", "flixster", "yahoo_music"),
        ),
        Paper(
            "arviv2025",
            "Arviv et al. 2025",
            "Arviv, Elisha, Barkan, Koenigstein. Interaction-Aware Monosemantic Concepts. arXiv:2511.18024, 2025.",
            "A prediction-aware sparse autoencoder over user/item embeddings yields monosemantic concepts.",
        ),
    ]
}

NOTEBOOKS: dict[str, NotebookSpec] = {
    nb.stem: nb
    for nb in [
        NotebookSpec(
            stem="baselines_rating",
            paper="baselines",
            title="Simple baselines on ML-100K u1 and Monti's Douban, Flixster, YahooMusic splits",
            datasets=("ml-100k", "douban", "flixster", "yahoo_music"),
        ),
        NotebookSpec(
            stem="hartford2018_t1_ml100k",
            paper="hartford2018",
            title="Self-supervised exchangeable model and factorized EAE on ML-100K u1 (RMSE)",
            datasets=("ml-100k",),
            headline=("rmse", "valid_rmse", "epochs_run"),
        ),
        NotebookSpec(
            stem="hartford2018_t1_ml1m",
            paper="hartford2018",
            title="Factorized EAE and self-supervised exchangeable model on ML-1M, random 90/10 (RMSE)",
            datasets=("ml-1m",),
            headline=("rmse", "valid_rmse", "epochs_run"),
        ),
        NotebookSpec(
            stem="hartford2018_t2_monti",
            paper="hartford2018",
            title="Factorized EAE on Monti's Douban, Flixster and YahooMusic splits (RMSE)",
            datasets=("douban", "flixster", "yahoo_music"),
            headline=("rmse", "valid_rmse", "epochs_run"),
        ),
        NotebookSpec(
            stem="hartford2018_t3_transfer",
            paper="hartford2018",
            title="Extrapolation and transfer: an ML-100K model applied to ML-1M, Douban, Flixster, YahooMusic",
            datasets=("ml-100k", "ml-1m", "douban", "flixster", "yahoo_music"),
            headline=("rmse", "valid_rmse"),
        ),
        NotebookSpec(
            stem="hartford2018_t3_disjoint",
            paper="hartford2018",
            title="Extrapolation within ML-1M: trained on 30% of users x 30% of movies, applied to unseen users x "
            "unseen movies by observed share (the authors' disjoint split)",
            datasets=("ml-1m",),
            headline=("rmse", "rmse-at-observed-0.05", "rmse-at-observed-0.2", "valid_rmse"),
        ),
        NotebookSpec(
            stem="nnmf2015_movielens",
            paper="nnmf2015",
            title="NNMF vs biased MF (same budget) on ML-100K and ML-1M, random 90/10 (RMSE), with (D, D', λ) grid",
            datasets=("ml-100k", "ml-1m"),
            headline=("rmse", "seconds_per_epoch"),
        ),
        NotebookSpec(
            stem="lrml2018_ml1m",
            paper="lrml2018",
            title="LRML (paper and code variants) vs popularity, BPR-MF, CML, iALS on ML-1M, NCF leave-one-out: "
            "HR@10 / nDCG@10, sampled and full ranking",
            datasets=("ml-1m", "ml-1m-ncf"),
            headline=("hr@10", "ndcg@10", "full/hr@10", "full/ndcg@10", "full/mrr"),
        ),
        NotebookSpec(
            stem="lrml2018_unavailable",
            paper="lrml2018",
            title="LRML on ML-20M and Netflix (data unavailable here: same code path, format check on synthetic "
            "files in the official formats)",
            datasets=(),
        ),
        NotebookSpec(
            stem="monti2017_t2_synthetic",
            paper="monti2017",
            title="Synthetic Netflix, users + items graphs and users graph only: sRMGCNN, RMGCNN, GRALS, GMC "
            "(RMSE; paper protocol and validation protocol)",
            datasets=("synthetic_netflix",),
            headline=("rmse", "valid_rmse", "best_iteration"),
        ),
        NotebookSpec(
            stem="monti2017_t4_ml100k",
            paper="monti2017",
            title="ML-100K u1 (Monti's split_1.mat): sRMGCNN vs mean predictors, MC, GMC, GRALS (RMSE)",
            datasets=("ml-100k-monti",),
            headline=("rmse", "valid_rmse", "best_iteration"),
        ),
        NotebookSpec(
            stem="monti2017_t5_real",
            paper="monti2017",
            title="Douban, Flixster (both graphs / users graph), YahooMusic: sRMGCNN vs GRALS and mean predictors "
            "(RMSE)",
            datasets=("douban", "flixster", "yahoo_music"),
            headline=("rmse", "valid_rmse", "best_iteration"),
        ),
        NotebookSpec(
            stem="arviv2025_ml1m",
            paper="arviv2025",
            title="ML-1M: MF and NCF recommenders; prediction-aware vs reconstruction-only SAEs (RBO, Kendall tau, "
            "sparsity, monosemanticity); neuron-genre alignment; concept promotion / suppression",
            datasets=("ml-1m",),
            headline=("hr@10", "ndcg@10", "rbo", "rbo-ext", "kendall-tau", "sparsity", "ms-score", "genre-share"),
        ),
    ]
}


# Claims on these dataset keys cannot run here; the reason is shown as their status.
UNAVAILABLE_DATA: dict[str, str] = {
    "ml-20m/loo": "data unavailable here (MovieLens 20M; with the data: `recrepro data verify ml-20m`, then run "
    "the LRML notebook with --profile full)",
    "netflix/loo": "data unavailable here (Netflix Prize; with the data in <data root>/netflix/, run the LRML "
    "notebook with --profile full)",
    "ml-10m/random-90-10": "data unavailable here (MovieLens 10M is not part of this study's data)",
    "graph-datasets": "data unavailable here (NIPS co-authorship and protein-interaction graphs not obtained)",
    "lastfm": "data unavailable here (the authors host their Last.fm copy privately)",
}


def notebook(stem: str) -> NotebookSpec:
    """The spec of one notebook, or an error listing the valid stems."""
    if stem not in NOTEBOOKS:
        raise KeyError(f"unknown notebook {stem!r}; valid notebooks: {', '.join(NOTEBOOKS)}")
    return NOTEBOOKS[stem]
