"""Monti et al. (2017) ``.mat`` matrices: Douban, Flixster, YahooMusic, ML-100K split_1, Synthetic Netflix.

MATLAB v7.3 files are HDF5: dense arrays are stored transposed (read ``.T`` to get users x items) and sparse
matrices are groups holding ``data``/``ir``/``jc``. ``M`` holds every known rating, ``Otraining``/``Otest``
are disjoint 0/1 masks; the side graphs are the ones shipped (Douban: users only; YahooMusic: items only).
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import scipy.sparse as sp

from .registry import require_file
from .types import Ratings, RatingSplit

MONTI_FILES = {
    "douban": "monti_mgcnn/douban/training_test_dataset.mat",
    "flixster": "monti_mgcnn/flixster/training_test_dataset_10_NNs.mat",
    "yahoo_music": "monti_mgcnn/yahoo_music/training_test_dataset_10_NNs.mat",
    "ml-100k-monti": "monti_mgcnn/movielens/split_1.mat",
    "synthetic_netflix": "monti_mgcnn/synthetic_netflix/synthetic_netflix.mat",
}
# which key holds which side graph, per file
_GRAPH_KEYS = {"user": ("W_users", "Wrow"), "item": ("W_movies", "W_tracks", "Wcol")}


def _read(f: h5py.File, key: str) -> np.ndarray | sp.csr_matrix:
    obj = f[key]
    if isinstance(obj, h5py.Group):  # MATLAB sparse: CSC in MATLAB orientation
        n_rows = int(obj.attrs["MATLAB_sparse"])
        jc = np.asarray(obj["jc"])
        data = np.asarray(obj["data"]) if "data" in obj else np.ones(len(obj["ir"]))
        return sp.csc_matrix((data, np.asarray(obj["ir"]), jc), shape=(n_rows, len(jc) - 1)).tocsr()
    return np.asarray(obj).T


def load_monti(name: str, data_root: str | os.PathLike[str] | None = None) -> RatingSplit:
    """The fixed train/test split of one Monti matrix, with its side graphs (CSR adjacency or None)."""
    path = require_file(name, MONTI_FILES[name], data_root)
    with h5py.File(path, "r") as f:
        m = np.asarray(_read(f, "M"), dtype=np.float64)
        o_train = np.asarray(_read(f, "Otraining")) > 0
        o_test = np.asarray(_read(f, "Otest")) > 0
        graphs = {side: next((_read(f, k) for k in keys if k in f), None) for side, keys in _GRAPH_KEYS.items()}
    if np.any(o_train & o_test):
        raise ValueError(f"{path}: Otraining and Otest overlap; the file is not a valid Monti split")
    n_users, n_items = m.shape

    def ratings(mask: np.ndarray) -> Ratings:
        u, i = np.nonzero(mask)
        return Ratings(u, i, m[u, i], n_users, n_items)

    train, test = ratings(o_train), ratings(o_test)
    values = tuple(float(v) for v in np.unique(train.values))
    return RatingSplit(
        name=f"{name}/monti",
        train=train,
        test=test,
        rating_values=values,
        user_graph=None if graphs["user"] is None else sp.csr_matrix(graphs["user"]),
        item_graph=None if graphs["item"] is None else sp.csr_matrix(graphs["item"]),
        notes={"source": MONTI_FILES[name], "protocol": "Monti et al. fixed Otraining/Otest masks"},
    )
