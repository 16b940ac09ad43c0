"""Data layer: every loader against the real counts (PROVENANCE.md), split invariants, and bad input.

Real-data tests use the ``data_root`` fixture (skipped with a reason when the data is absent). Formats we do
not hold (ML-20M, Netflix) are tested on small files written here in the official layouts.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recrepro.data import (
    DATASETS,
    SPLITS,
    ChecksumError,
    DataNotFoundError,
    LeaveOneOut,
    Ratings,
    RatingSplit,
    UnknownNameError,
    load_split,
    verify,
)
from recrepro.data.movielens import (
    ncf_item_order,
    read_ml1m_ratings,
    read_ml20m_ratings,
    read_ml100k,
)
from recrepro.data.netflix import read_netflix_ratings
from recrepro.data.registry import ML1M_OFFICIAL_GIT_BLOB, resolve_data_root
from recrepro.data.splits import index_ids

MONTI = ("douban", "flixster", "yahoo_music", "ml-100k-monti", "synthetic_netflix")
# train / test counts and side-graph nnz (None = no graph shipped), PROVENANCE.md section 3
MONTI_EXPECTED = {
    "douban": (123_202, 13_689, 2_690, None),
    "flixster": (23_556, 2_617, 59_354, 50_918),
    "yahoo_music": (4_802, 533, None, 56_890),
    "ml-100k-monti": (80_000, 20_000, 12_594, 28_928),
    "synthetic_netflix": (4_500, 4_500, 1_713, 2_796),
}
REAL_SPLITS = (
    *(f"ml-100k/{f}" for f in ("u1", "u2", "u3", "u4", "u5", "ua", "ub")),
    "ml-100k/random-90-10",
    "ml-1m/random-90-10",
    "ml-1m/ncf-loo",
    *MONTI,
)

_cache: dict[tuple[str, Path], RatingSplit | LeaveOneOut] = {}


@pytest.fixture(scope="module")
def split_of(data_root: Path):
    """Load a split once per module (several tests read the same real split)."""

    def get(name: str) -> RatingSplit | LeaveOneOut:
        key = (name, data_root)
        if key not in _cache:
            _cache[key] = load_split(name, data_root)
        return _cache[key]

    return get


@functools.lru_cache(maxsize=1)
def ml1m_ratings(root: Path) -> tuple[pd.DataFrame, str]:
    """ML-1M ratings read once per session (two tests need the full frame)."""
    return read_ml1m_ratings(root)


def sorted_triples(users: np.ndarray, items: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(n, 3) array of (user, item, value) rows in lexicographic order: a set/multiset comparison key."""
    arr = np.column_stack([np.asarray(users, float), np.asarray(items, float), np.asarray(values, float)])
    return arr[np.lexsort((arr[:, 2], arr[:, 1], arr[:, 0]))]


def isin(keys: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin`` by sort + binary search (numpy 2's hash-based isin is ~40x slower on a million keys)."""
    ordered = np.sort(pool)
    idx = np.minimum(np.searchsorted(ordered, keys), max(len(ordered) - 1, 0))
    return ordered[idx] == keys if len(ordered) else np.zeros(len(keys), dtype=bool)


def all_distinct(keys: np.ndarray) -> bool:
    ordered = np.sort(keys)
    return bool((ordered[1:] != ordered[:-1]).all())


def user_item_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64)


# --------------------------------------------------------------------------------------------------------------
# MovieLens-100K


def test_ml100k_u_data_counts(data_root: Path) -> None:
    df = read_ml100k("u.data", data_root)
    assert len(df) == 100_000
    assert df["user_id"].nunique() == 943
    assert df["item_id"].nunique() == 1_682
    assert set(df["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert not df.duplicated(["user_id", "item_id"]).any()


@pytest.mark.parametrize(
    ("fold", "n_train", "n_test"),
    [*((f"u{i}", 80_000, 20_000) for i in range(1, 6)), ("ua", 90_570, 9_430), ("ub", 90_570, 9_430)],
)
def test_ml100k_official_folds(split_of, fold: str, n_train: int, n_test: int) -> None:
    split = split_of(f"ml-100k/{fold}")
    assert isinstance(split, RatingSplit)
    assert (len(split.train), len(split.test)) == (n_train, n_test)
    assert split.n_users == 943 and split.n_items == 1_682  # the fold files together cover u.data's ids
    assert split.rating_values == (1.0, 2.0, 3.0, 4.0, 5.0)


def test_ml100k_five_test_folds_partition_u_data(data_root: Path) -> None:
    """u1..u5.test are disjoint and together are exactly u.data (the official 5-fold construction)."""
    full = read_ml100k("u.data", data_root)
    folds = pd.concat([read_ml100k(f"u{i}.test", data_root) for i in range(1, 6)], ignore_index=True)
    cols = ["user_id", "item_id", "rating"]
    assert not folds.duplicated(["user_id", "item_id"]).any()
    np.testing.assert_array_equal(sorted_triples(*full[cols].T.values), sorted_triples(*folds[cols].T.values))


def test_ml100k_random_split_is_seeded(split_of, data_root: Path) -> None:
    a = split_of("ml-100k/random-90-10")
    assert (len(a.train), len(a.test)) == (90_000, 10_000)
    again = load_split("ml-100k/random-90-10", data_root, split_seed=0)
    other = load_split("ml-100k/random-90-10", data_root, split_seed=1)
    np.testing.assert_array_equal(a.test.pairs(), again.test.pairs())
    assert not np.array_equal(np.sort(a.test.pairs()), np.sort(other.test.pairs()))


# --------------------------------------------------------------------------------------------------------------
# MovieLens-1M


def test_ml1m_ratings_counts(data_root: Path) -> None:
    df, source = ml1m_ratings(data_root)
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(df) == 1_000_209
    assert df["user_id"].nunique() == 6_040
    assert df["item_id"].nunique() == 3_706
    assert not df.duplicated(["user_id", "item_id"]).any()
    hist = df["rating"].value_counts().sort_index()
    assert hist.to_dict() == {1.0: 56_174, 2.0: 107_557, 3.0: 261_197, 4.0: 348_971, 5.0: 226_310}
    if source.startswith("official"):  # the official file has every timestamp
        assert df["timestamp"].notna().all()
    else:  # the reconstruction: unknown timestamps stay NaN, none invented
        assert df["timestamp"].isna().sum() == 198_417
        assert df["timestamp"].notna().sum() == 801_792


@pytest.mark.slow
def test_ml1m_ncf_loo(split_of, data_root: Path) -> None:
    s = split_of("ml-1m/ncf-loo")
    assert isinstance(s, LeaveOneOut)
    assert len(s.train) == 994_169
    assert s.n_users == 6_040 and s.n_items == 3_706
    assert s.test_items.shape == (6_040,) and (s.test_items >= 0).all()
    assert s.test_negatives.shape == (6_040, 99)
    users = np.arange(s.n_users)
    train_keys = s.train.pairs()
    # the test item is not among the user's training items
    assert not isin(user_item_keys(users, s.test_items, s.n_items), train_keys).any()
    # The official ml-1m.test.negative lists the user's own test item among the 99 negatives for 156 users (once
    # each; a known quirk of the NCF files, mlcommons/training#135). The loader keeps the file verbatim, so an
    # evaluator must mask these (NCF's evaluate.py collapses them by keying scores on the item id).
    own = s.test_negatives == s.test_items[:, None]
    assert own.any(axis=1).sum() == 156 and own.sum(axis=1).max() == 1
    assert (np.diff(np.sort(s.test_negatives, axis=1), axis=1) != 0).all()  # no other duplicate negatives
    # NCF's negatives are items the user never rated
    neg_keys = user_item_keys(np.repeat(users, 99), s.test_negatives.ravel(), s.n_items)
    assert not isin(neg_keys, train_keys).any()
    # the test item is each user's latest rating: no known training timestamp is later
    df, _ = ml1m_ratings(data_root)
    test = pd.DataFrame({"user_id": users + 1, "item_id": ncf_item_order(df)[s.test_items]})
    test = test.merge(df, on=["user_id", "item_id"], how="left")
    assert test["rating"].notna().all() and test["timestamp"].notna().all()
    latest_train = pd.Series(s.train.timestamps).groupby(s.train.users).max().reindex(users).to_numpy()
    known = ~np.isnan(latest_train)
    assert (test["timestamp"].to_numpy()[known] >= latest_train[known]).all()


@pytest.mark.slow
def test_ml1m_validation_view_on_real_data(split_of) -> None:
    s = split_of("ml-1m/ncf-loo")
    v = s.validation_view(seed=0)
    users = np.arange(s.n_users)
    assert len(v.train) == len(s.train) - s.n_users  # exactly one held out per user
    assert (v.test_items >= 0).all() and v.test_negatives.shape == (s.n_users, 99)
    assert (
        np.bincount(s.train.users, minlength=s.n_users).tolist()
        == (np.bincount(v.train.users, minlength=s.n_users) + 1).tolist()
    )
    held_keys = user_item_keys(users, v.test_items, s.n_items)
    assert isin(held_keys, s.train.pairs()).all()  # carved from train
    assert not isin(held_keys, v.train.pairs()).any()  # and removed from it
    neg_keys = user_item_keys(np.repeat(users, 99), v.test_negatives.ravel(), s.n_items)
    assert not isin(neg_keys, s.train.pairs()).any()  # never an item of the user's (original) train
    assert not (v.test_negatives == s.test_items[:, None]).any()  # nor the test item
    # where the user's training times are known, the held-out item is the latest one
    ts = pd.Series(s.train.timestamps, index=s.train.pairs())
    latest = pd.Series(s.train.timestamps).groupby(s.train.users).max().to_numpy()
    held_ts = ts.reindex(held_keys).to_numpy()
    known = ~np.isnan(latest)
    np.testing.assert_array_equal(held_ts[known], latest[known])


# --------------------------------------------------------------------------------------------------------------
# Monti et al. matrices


@pytest.mark.parametrize("name", MONTI)
def test_monti_counts_and_graphs(split_of, name: str) -> None:
    s = split_of(name)
    n_train, n_test, user_nnz, item_nnz = MONTI_EXPECTED[name]
    assert (len(s.train), len(s.test)) == (n_train, n_test)
    for graph, nnz, n in ((s.user_graph, user_nnz, s.n_users), (s.item_graph, item_nnz, s.n_items)):
        if nnz is None:
            assert graph is None
        else:
            assert graph is not None and graph.shape == (n, n) and graph.nnz == nnz
            assert abs(graph - graph.T).max() < 1e-12  # all shipped graphs are symmetric
    assert np.all(s.train.values != 0) and np.all(s.test.values != 0)  # 0 means "unknown" in M


def test_monti_rating_scales(split_of) -> None:
    assert split_of("douban").rating_values == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert split_of("flixster").rating_values == tuple(0.5 * k for k in range(1, 11))
    yahoo = split_of("yahoo_music").rating_values
    assert min(yahoo) >= 1 and max(yahoo) <= 100
    synth = split_of("synthetic_netflix")
    assert synth.train.values.min() >= 1 and synth.train.values.max() <= 5
    assert (synth.n_users, synth.n_items) == (150, 200)


def test_monti_ml100k_equals_official_u1(split_of, data_root: Path) -> None:
    """split_1.mat is u1.base/u1.test: same (user, item, rating) triples once ids are mapped back."""
    monti, u1 = split_of("ml-100k-monti"), split_of("ml-100k/u1")
    assert (monti.n_users, monti.n_items) == (943, 1_682)
    base, test = read_ml100k("u1.base", data_root), read_ml100k("u1.test", data_root)
    cols = ["user_id", "item_id", "rating"]
    for part, raw in ((monti.train, base), (monti.test, test)):  # Monti rows/columns are MovieLens id - 1
        np.testing.assert_array_equal(
            sorted_triples(part.users + 1, part.items + 1, part.values), sorted_triples(*raw[cols].T.values)
        )
    users, items = index_ids(base, test)  # the u1 loader's id map (first appearance), inverted
    raw_user = np.empty(len(users), np.int64)
    raw_user[list(users.values())] = list(users.keys())
    raw_item = np.empty(len(items), np.int64)
    raw_item[list(items.values())] = list(items.keys())
    for a, b in ((monti.train, u1.train), (monti.test, u1.test)):
        np.testing.assert_array_equal(
            sorted_triples(a.users + 1, a.items + 1, a.values),
            sorted_triples(raw_user[b.users], raw_item[b.items], b.values),
        )


# --------------------------------------------------------------------------------------------------------------
# invariants of every split


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("ml-1m/") else n for n in REAL_SPLITS]
)
def test_no_pair_in_both_train_and_test(split_of, name: str) -> None:
    s = split_of(name)
    if isinstance(s, LeaveOneOut):
        has = s.test_items >= 0
        test_keys = user_item_keys(np.flatnonzero(has), s.test_items[has], s.n_items)
    else:
        assert s.test.n_users == s.train.n_users and s.test.n_items == s.train.n_items  # one id space
        test_keys = s.test.pairs()
        assert all_distinct(test_keys)
    assert all_distinct(s.train.pairs())
    assert not isin(test_keys, s.train.pairs()).any()


def test_with_validation_carves_from_train_only(split_of) -> None:
    s = split_of("ml-100k/u1")
    v = s.with_validation(0.1, seed=3)
    assert v.test is s.test  # test untouched
    assert len(v.train) + len(v.valid) == len(s.train)
    assert 0.09 < len(v.valid) / len(s.train) < 0.11
    assert not isin(v.valid.pairs(), v.train.pairs()).any()
    assert not isin(v.valid.pairs(), s.test.pairs()).any()
    np.testing.assert_array_equal(  # train' + valid is exactly the old train
        sorted_triples(
            np.r_[v.train.users, v.valid.users],
            np.r_[v.train.items, v.valid.items],
            np.r_[v.train.values, v.valid.values],
        ),
        sorted_triples(s.train.users, s.train.items, s.train.values),
    )
    np.testing.assert_array_equal(s.with_validation(0.1, seed=3).valid.pairs(), v.valid.pairs())
    assert not np.array_equal(s.with_validation(0.1, seed=4).valid.pairs(), v.valid.pairs())
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            s.with_validation(bad, seed=0)


def _tiny_loo() -> LeaveOneOut:
    """4 users x 10 items with known, unknown and mixed timestamps, and one test item per user but user 3."""
    nan = np.nan
    rows = [  # user, item, timestamp
        (0, 0, 10.0), (0, 1, 30.0), (0, 2, 20.0),  # latest known: item 1
        (1, 3, nan), (1, 4, nan), (1, 5, nan),  # no time known: any of 3, 4, 5
        (2, 0, nan), (2, 6, 5.0), (2, 7, 1.0),  # a known time beats an unknown one: item 6
        (3, 8, 2.0), (3, 9, 3.0),  # no test item
    ]  # fmt: skip
    u, i, t = (np.array(c) for c in zip(*rows, strict=True))
    train = Ratings(u, i, np.ones(len(u)), 4, 10, timestamps=t.astype(float))
    test_items = np.array([9, 0, 3, -1])
    return LeaveOneOut("tiny", train, test_items, np.zeros((4, 3), np.int64))


def test_validation_view_on_tiny_problem() -> None:
    loo = _tiny_loo()
    for seed in range(5):
        v = loo.validation_view(seed=seed)
        assert v.test_items[0] == 1 and v.test_items[2] == 6 and v.test_items[3] == 9
        assert v.test_items[1] in (3, 4, 5)
        assert len(v.train) == len(loo.train) - 4
        assert not isin(user_item_keys(np.arange(4), v.test_items, 10), v.train.pairs()).any()
        assert v.test_negatives.shape == (4, 3)
        for u in range(4):
            banned = set(loo.train.items[loo.train.users == u]) | {int(loo.test_items[u])}
            assert not banned & set(v.test_negatives[u].tolist())
    assert loo.validation_view(seed=0, n_negatives=5).test_negatives.shape == (4, 5)


def test_validation_view_refuses_to_empty_a_user() -> None:
    train = Ratings(np.array([0, 0, 1]), np.array([0, 1, 2]), np.ones(3), 2, 5)
    loo = LeaveOneOut("one-item-user", train, np.array([3, 4]), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="no training interaction"):
        loo.validation_view(seed=0)


def test_ratings_rejects_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match="user id"):
        Ratings(np.array([0, 2]), np.array([0, 0]), np.ones(2), 2, 1)
    with pytest.raises(ValueError, match="item id"):
        Ratings(np.array([0, 1]), np.array([0, -1]), np.ones(2), 2, 1)
    with pytest.raises(ValueError, match="same length"):
        Ratings(np.array([0, 1]), np.array([0]), np.ones(2), 2, 1)


# --------------------------------------------------------------------------------------------------------------
# bad input


def test_no_data_root_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECREPRO_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="RECREPRO_DATA"):
        load_split("ml-100k/u1")
    with pytest.raises(DataNotFoundError, match="RECREPRO_DATA"):
        resolve_data_root("")


def test_data_root_from_env(monkeypatch: pytest.MonkeyPatch, data_root: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("RECREPRO_DATA", str(data_root))
    assert len(load_split("ml-100k/u1").test) == 20_000
    monkeypatch.setenv("RECREPRO_DATA", str(tmp_path / "absent"))
    with pytest.raises(DataNotFoundError, match="RECREPRO_DATA") as err:
        load_split("ml-100k/u1")
    assert "absent" in str(err.value)


def test_missing_file_says_dataset_path_and_how_to_get_it(tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "ml-100k").mkdir()
    shutil.copy(data_root / "ml-100k" / "u1.base", tmp_path / "ml-100k")
    with pytest.raises(DataNotFoundError) as err:
        load_split("ml-100k/u1", tmp_path)
    msg = str(err.value)
    assert "'ml-100k'" in msg and "ml-100k/u1.test" in msg and str(tmp_path) in msg
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in msg
    with pytest.raises(DataNotFoundError) as err:
        load_split("douban", tmp_path)
    msg = str(err.value)
    assert "'douban'" in msg and "monti_mgcnn/douban/training_test_dataset.mat" in msg
    assert "github.com/fmonti/mgcnn" in msg
    (tmp_path / "ml-1m").mkdir()
    with pytest.raises(DataNotFoundError) as err:
        read_ml1m_ratings(tmp_path)
    msg = str(err.value)
    assert "ml-1m/ratings.dat" in msg and "ratings_reconstructed.csv.gz" in msg and "ml-1m.zip" in msg


def test_corrupted_copy_is_refused(tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "ml-100k").mkdir()
    for f in ("u1.base", "u1.test"):
        shutil.copy(data_root / "ml-100k" / f, tmp_path / "ml-100k" / f)
    path = tmp_path / "ml-100k" / "u1.test"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01  # one flipped bit, same size
    path.write_bytes(bytes(data))
    expected = DATASETS["ml-100k"].files["ml-100k/u1.test"]
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(ChecksumError) as err:
        load_split("ml-100k/u1", tmp_path)
    msg = str(err.value)
    assert expected in msg and actual in msg and "not used" in msg
    with pytest.raises(ChecksumError):
        read_ml100k("u1.test", tmp_path)
    assert len(read_ml100k("u1.base", tmp_path)) == 80_000  # the intact copy is fine


def test_fake_official_ml1m_ratings_is_refused(tmp_path: Path, data_root: Path) -> None:
    """A ratings.dat that is not the official file must not be read, nor silently replaced by the reconstruction."""
    src, dst = data_root / "ml-1m", tmp_path / "ml-1m"
    dst.mkdir()
    for entry in src.iterdir():
        if entry.name != "ratings.dat":
            (dst / entry.name).symlink_to(entry)
    (dst / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    with pytest.raises(ChecksumError) as err:
        read_ml1m_ratings(tmp_path)
    assert ML1M_OFFICIAL_GIT_BLOB in str(err.value) and "not the official" in str(err.value)
    with pytest.raises(ChecksumError):
        load_split("ml-1m/ncf-loo", tmp_path)


def test_unknown_names_list_the_valid_ones(data_root: Path) -> None:
    with pytest.raises(UnknownNameError) as err:
        load_split("ml-100k/u9", data_root)
    msg = str(err.value)
    assert msg.startswith("unknown split 'ml-100k/u9'")
    assert all(name in msg for name in SPLITS)
    with pytest.raises(UnknownNameError) as err:
        verify("ml-10m", data_root)
    assert all(name in str(err.value) for name in DATASETS)
    with pytest.raises(KeyError):  # still a KeyError for callers that catch that
        load_split("nope", data_root)


def test_verify_real_datasets(data_root: Path) -> None:
    for name in ("ml-100k", "ml-1m", "ml-1m-ncf", *MONTI):
        checked = verify(name, data_root)
        assert set(checked) == set(DATASETS[name].files)


# --------------------------------------------------------------------------------------------------------------
# formats we do not hold: ML-20M and Netflix, on small files in the official layouts

ML20M_CSV = """userId,movieId,rating,timestamp
1,10,4.0,100
1,20,3.5,300
1,30,5.0,200
2,10,2.0,50
2,40,4.5,60
3,20,1.0,10
3,30,3.0,20
3,50,0.5,30
"""


def test_ml20m_reader_and_loo(tmp_path: Path) -> None:
    (tmp_path / "ml-20m").mkdir()
    (tmp_path / "ml-20m" / "ratings.csv").write_text(ML20M_CSV)
    df = read_ml20m_ratings(tmp_path)
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(df) == 8 and df["rating"].tolist() == [4.0, 3.5, 5.0, 2.0, 4.5, 1.0, 3.0, 0.5]
    loo = load_split("ml-20m/loo", tmp_path)
    assert isinstance(loo, LeaveOneOut)
    # ids by first appearance: users 1,2,3 -> 0,1,2; movies 10,20,30,40,50 -> 0..4
    assert (loo.n_users, loo.n_items) == (3, 5)
    assert loo.test_items.tolist() == [1, 3, 4]  # latest per user: movie 20 (t=300), 40 (t=60), 50 (t=30)
    assert len(loo.train) == 5
    assert sorted(zip(loo.train.users.tolist(), loo.train.items.tolist(), strict=True)) == [
        (0, 0), (0, 2), (1, 0), (2, 1), (2, 2),
    ]  # fmt: skip
    assert np.all(loo.train.values == 1.0)  # implicit feedback
    assert loo.test_negatives.shape == (3, 99)
    for u, items in enumerate(({0, 1, 2}, {0, 3}, {1, 2, 4})):
        assert not items & set(loo.test_negatives[u].tolist())
    again = load_split("ml-20m/loo", tmp_path, split_seed=0)
    np.testing.assert_array_equal(again.test_negatives, loo.test_negatives)


@pytest.mark.parametrize(
    "text",
    ["1::10::4::100\n2::20::3::200\n", "user,item,rating,time\n1,10,4.0,100\n", "1,10,4.0,100\n2,20,3.0,200\n"],
)
def test_ml20m_wrong_format_is_a_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "ml-20m").mkdir()
    (tmp_path / "ml-20m" / "ratings.csv").write_text(text)
    with pytest.raises(ValueError, match=r"expected columns \['userId', 'movieId', 'rating', 'timestamp'\]"):
        read_ml20m_ratings(tmp_path)


NETFLIX_PARTS = {
    1: "10:\n1,4,2005-01-02\n2,3,2005-01-05\n20:\n1,5,2005-03-01\n",
    2: "30:\n1,2,2005-03-01\n3,4,2004-12-31\n",  # user 1: same day as movie 20, later in file order
    3: "40:\n2,1,2005-01-01\n3,5,2005-06-01\n",
    4: "50:\n2,4,2004-01-01\n",
}


def _write_netflix(root: Path) -> None:
    (root / "netflix").mkdir()
    for part, text in NETFLIX_PARTS.items():
        (root / "netflix" / f"combined_data_{part}.txt").write_text(text)


def test_netflix_reader_and_loo(tmp_path: Path) -> None:
    _write_netflix(tmp_path)
    df = read_netflix_ratings(tmp_path)
    assert len(df) == 8
    assert df["item_id"].tolist() == [10, 10, 20, 30, 30, 40, 40, 50]
    assert df["user_id"].tolist() == [1, 2, 1, 1, 3, 2, 3, 2]
    assert df["rating"].tolist() == [4, 3, 5, 2, 4, 1, 5, 4]
    ts = df["timestamp"].to_numpy()
    assert ts[7] < ts[4] < ts[5] < ts[0] < ts[1] < ts[2] == ts[3] < ts[6]  # per-row dates, same day = same time
    loo = load_split("netflix/loo", tmp_path)
    assert (loo.n_users, loo.n_items) == (3, 5)
    # user 1: movies 20 and 30 tie on 2005-03-01, the later line (30) wins; user 2: 10; user 3: 40
    assert loo.test_items.tolist() == [2, 0, 3]
    assert len(loo.train) == 5
    for u, items in enumerate(({0, 1, 2}, {0, 3, 4}, {2, 3})):
        assert not items & set(loo.test_negatives[u].tolist())


def test_netflix_timestamps_are_epoch_seconds(tmp_path: Path) -> None:
    _write_netflix(tmp_path)
    df = read_netflix_ratings(tmp_path)
    expected = [datetime(y, m, d, tzinfo=UTC).timestamp() for y, m, d in [(2005, 1, 2), (2005, 1, 5), (2005, 3, 1)]]
    assert df["timestamp"].iloc[:3].tolist() == expected


def test_netflix_bad_input(tmp_path: Path) -> None:
    _write_netflix(tmp_path)
    with pytest.raises(ValueError, match="parts are 1..4"):
        read_netflix_ratings(tmp_path, parts=(5,))
    (tmp_path / "netflix" / "combined_data_1.txt").write_text("1,4,2005-01-02\n10:\n")
    with pytest.raises(ValueError, match="before any 'MovieID:' header"):
        read_netflix_ratings(tmp_path, parts=(1,))
    (tmp_path / "netflix" / "combined_data_3.txt").unlink()
    with pytest.raises(DataNotFoundError) as err:
        read_netflix_ratings(tmp_path, parts=(3,))
    assert "'netflix'" in str(err.value) and "netflix/combined_data_3.txt" in str(err.value)


# ------------------------------------------------------------------ Hartford's disjoint (extrapolation) split


def _coded_ratings(n_users: int = 60, n_items: int = 80, density: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """A ratings frame whose value encodes its raw (user, item) pair, so a split's entries can be traced back."""
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    return pd.DataFrame({"user_id": u + 1, "item_id": i + 1, "rating": ((u + 1) * 1000 + i + 1).astype(float)})


def _raw_pairs(r: Ratings) -> set[tuple[int, int]]:
    codes = r.values.astype(np.int64)
    return set(zip((codes // 1000).tolist(), (codes % 1000).tolist(), strict=True))


def test_disjoint_split_keeps_the_unseen_users_and_items_out_of_training() -> None:
    from recrepro.data.extrapolation import disjoint_split

    df = _coded_ratings()
    s = disjoint_split("toy", df, seed=3)
    source = _raw_pairs(s.source.train) | _raw_pairs(s.source.test)
    observed, heldout = _raw_pairs(s.target_observed), _raw_pairs(s.target_heldout)
    src_users, src_items = {u for u, _ in source}, {i for _, i in source}
    tgt_users, tgt_items = {u for u, _ in observed | heldout}, {i for _, i in observed | heldout}
    assert not src_users & tgt_users and not src_items & tgt_items  # nobody of the unseen block is trained on
    assert len(src_users) == 18 and len(src_items) == 24  # 30% of 60 users, 30% of 80 items
    assert len(tgt_users) == 21 and len(tgt_items) == 28  # half of the other 42 users and 56 items
    block = {(u, i) for u, i in zip(df.user_id, df.item_id, strict=True) if u in tgt_users and i in tgt_items}
    assert observed | heldout == block and not observed & heldout  # every rating of the block, once
    assert len(observed) == round(0.8 * len(block))
    assert len(s.source.test) > 0 and not _raw_pairs(s.source.train) & _raw_pairs(s.source.test)
    assert s.target_observed.n_users == s.target_heldout.n_users == len(tgt_users)  # one id space for the block
    again = disjoint_split("toy", df, seed=3)
    assert np.array_equal(again.target_heldout.values, s.target_heldout.values)  # seeded
    assert _raw_pairs(disjoint_split("toy", df, seed=4).target_heldout) != heldout


def test_reveal_gives_nested_shares_of_the_observed_part() -> None:
    from recrepro.data.extrapolation import disjoint_split, reveal

    s = disjoint_split("toy", _coded_ratings(), seed=0)
    n_block = len(s.target_observed) + len(s.target_heldout)
    small, large = reveal(s, 0.1), reveal(s, 0.4)
    assert len(small) == round(0.1 * n_block) and len(large) == round(0.4 * n_block)
    assert _raw_pairs(small) <= _raw_pairs(large) <= _raw_pairs(s.target_observed)
    assert len(reveal(s, 0.8)) == len(s.target_observed)
    with pytest.raises(ValueError, match="fraction"):
        reveal(s, 0.9)  # more than the observed part: would reveal held-out entries
    with pytest.raises(ValueError, match="source_users"):
        disjoint_split("toy", _coded_ratings(), seed=0, source_users=1.5)
