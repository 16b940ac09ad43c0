"""Where each dataset lives, how to verify it and how to get it.

One data root holds every dataset, laid out as in ``shared/data`` (``ml-100k/``, ``ml-1m/``,
``monti_mgcnn/<name>/``...). It comes from the ``data_root`` argument (CLI ``--data-root``) or else the
``RECREPRO_DATA`` environment variable; nothing is guessed. Files with a recorded SHA-256 are verified before
use, and a mismatch is an error: a corrupted or edited file is never silently used. On a machine with
internet, :func:`fetch` downloads missing files from the official source with ``pooch``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ENV_VAR = "RECREPRO_DATA"


class DataError(Exception):
    """Base class for data problems; the message always says what to do."""


class DataNotFoundError(DataError, FileNotFoundError):
    pass


class ChecksumError(DataError, ValueError):
    pass


class UnknownNameError(DataError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its files (relative to the data root) with SHA-256 where known, and where it comes from."""

    name: str
    title: str
    files: dict[str, str | None]
    source: str
    licence: str
    how_to_get: str
    urls: dict[str, str] = field(default_factory=dict)


_ML100K_FILES = {
    "ml-100k/README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    "ml-100k/u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "ml-100k/u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "ml-100k/u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "ml-100k/u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "ml-100k/u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "ml-100k/u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "ml-100k/u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "ml-100k/u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "ml-100k/u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "ml-100k/u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "ml-100k/u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "ml-100k/u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "ml-100k/u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "ml-100k/u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "ml-100k/u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "ml-100k/u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "ml-100k/ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ml-100k/ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ml-100k/ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ml-100k/ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}

_MOVIELENS_TERMS = (
    "GroupLens research licence (README in the archive): research use, cite Harper & Konstan 2015, "
    "no redistribution of the data or transformations of it, no commercial use without permission."
)
_MONTI_TERMS = (
    "Sub-matrices distributed by Monti et al. (fmonti/mgcnn, GPL-3.0 code); the data keep the terms of "
    "their original sources (Douban, Flixster, Yahoo! Webscope, GroupLens): research use, no redistribution."
)
_MONTI_URL = "https://github.com/fmonti/mgcnn/raw/master/Data/"

DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        name="ml-100k",
        title="MovieLens 100K",
        files=_ML100K_FILES,
        source="GroupLens, https://grouplens.org/datasets/movielens/100k/",
        licence=_MOVIELENS_TERMS,
        how_to_get="download ml-100k.zip from https://files.grouplens.org/datasets/movielens/ml-100k.zip and unzip "
        "it into <data root>/ml-100k/ (or run `recrepro data fetch ml-100k` on a machine with internet)",
        urls={"ml-100k.zip": "https://files.grouplens.org/datasets/movielens/ml-100k.zip"},
    ),
    "ml-1m": DatasetSpec(
        name="ml-1m",
        title="MovieLens 1M",
        files={
            "ml-1m/README": "2d5ddce86ccbd247207456165827b4b9ddf27282bca93807d4c763e28414f133",
            "ml-1m/movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
            "ml-1m/users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
        },
        source="GroupLens, https://grouplens.org/datasets/movielens/1m/ (ratings: official ratings.dat when present, "
        "else the reconstruction ratings_reconstructed.csv.gz described in the data root's PROVENANCE.md)",
        licence=_MOVIELENS_TERMS,
        how_to_get="download ml-1m.zip from https://files.grouplens.org/datasets/movielens/ml-1m.zip and unzip it into "
        "<data root>/ml-1m/ (or run `recrepro data fetch ml-1m` on a machine with internet)",
        urls={"ml-1m.zip": "https://files.grouplens.org/datasets/movielens/ml-1m.zip"},
    ),
    "ml-1m-ncf": DatasetSpec(
        name="ml-1m-ncf",
        title="MovieLens 1M, NCF leave-one-out test files (He et al. 2017)",
        files={
            "ml-1m/ncf/ml-1m.test.rating": "231ae11eb060b643a8c58c063cd17ffc743b54f569afb073d1abb6cf126b88b5",
            "ml-1m/ncf/ml-1m.test.negative": "127853228a76b7d21c0481e8ef8d00dd009cd5c88670dbdd9e9debfdb9f93de4",
        },
        source="hexiangnan/neural_collaborative_filtering, Data/ml-1m.test.{rating,negative}",
        licence=_MOVIELENS_TERMS + " NCF repository: Apache-2.0.",
        how_to_get="copy Data/ml-1m.test.rating and Data/ml-1m.test.negative from "
        "https://github.com/hexiangnan/neural_collaborative_filtering into <data root>/ml-1m/ncf/",
        urls={
            "ml-1m.test.rating": "https://github.com/hexiangnan/neural_collaborative_filtering/raw/master/Data/"
            "ml-1m.test.rating",
            "ml-1m.test.negative": "https://github.com/hexiangnan/neural_collaborative_filtering/raw/master/Data/"
            "ml-1m.test.negative",
        },
    ),
    "ml-20m": DatasetSpec(
        name="ml-20m",
        title="MovieLens 20M",
        files={"ml-20m/ratings.csv": None},
        source="GroupLens, https://grouplens.org/datasets/movielens/20m/",
        licence=_MOVIELENS_TERMS,
        how_to_get="download ml-20m.zip from https://files.grouplens.org/datasets/movielens/ml-20m.zip and unzip it "
        "into <data root>/ml-20m/ (no checksum is recorded here: the file is format-checked only)",
        urls={"ml-20m.zip": "https://files.grouplens.org/datasets/movielens/ml-20m.zip"},
    ),
    "netflix": DatasetSpec(
        name="netflix",
        title="Netflix Prize training data",
        files={f"netflix/combined_data_{i}.txt": None for i in range(1, 5)},
        source="Netflix Prize (2006); no official download exists any more",
        licence="Netflix Prize rules: research use only, no redistribution.",
        how_to_get="obtain the Netflix Prize training data in the combined_data_{1..4}.txt format (e.g. the Kaggle "
        "'netflix-prize-data' copy) and place the four files in <data root>/netflix/",
    ),
}

for _name, _file in [
    ("douban", "douban/training_test_dataset.mat"),
    ("flixster", "flixster/training_test_dataset_10_NNs.mat"),
    ("yahoo_music", "yahoo_music/training_test_dataset_10_NNs.mat"),
    ("ml-100k-monti", "movielens/split_1.mat"),
    ("synthetic_netflix", "synthetic_netflix/synthetic_netflix.mat"),
]:
    DATASETS[_name] = DatasetSpec(
        name=_name,
        title=f"Monti et al. 2017 matrix: {_name}",
        files={
            f"monti_mgcnn/{_file}": {
                "douban": "1f4476321cbfe0f606e7e35d0695ca15447a1b0b2c811df130109b6cb9a067ae",
                "flixster": "8b07e0387edfe7ffdccead2826bb3844ddbd9e6a8ccba264ce81a3b59b273197",
                "yahoo_music": "56a80de836537544d0d6ba36fc59937dfe87f738ac5e2a701cc8226faf4f31ec",
                "ml-100k-monti": "a8c053a1d697b82c341cb2ad593af2495db7b50f721ae51af5534cc7b217747e",
                "synthetic_netflix": "b47789b280f868c17b6e3c7866608740a579ed29a8fd1dbb3ab218fc5ccc75ae",
            }[_name]
        },
        source=f"fmonti/mgcnn, Data/{_file}",
        licence=_MONTI_TERMS,
        how_to_get=f"download {_MONTI_URL}{_file} into <data root>/monti_mgcnn/{_file} "
        f"(or run `recrepro data fetch {_name}` on a machine with internet)",
        urls={_file: _MONTI_URL + _file},
    )

# The reconstruction of ML-1M ratings; used only when the official ratings.dat is absent.
ML1M_OFFICIAL_RATINGS = "ml-1m/ratings.dat"
ML1M_OFFICIAL_GIT_BLOB = "77a7c4b150f588c23bb9e1f068aa996c0b413695"
ML1M_RECONSTRUCTED = "ml-1m/ratings_reconstructed.csv.gz"
ML1M_RECONSTRUCTED_SHA256 = "2fc2e064e7d9babf2e08221d1e53f7bfa38a561c6ba6290c3b492b72e5f54176"


def spec(name: str) -> DatasetSpec:
    """The dataset's spec, or an error listing the valid names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}") from None


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: the explicit argument, else $RECREPRO_DATA; an error if neither is set or it is missing."""
    raw = data_root if data_root not in (None, "") else os.environ.get(ENV_VAR)
    if not raw:
        raise DataNotFoundError(
            f"no data root given: pass --data-root DIR (data_root=...) or set the environment variable {ENV_VAR} "
            "to the folder that holds ml-100k/, ml-1m/ and monti_mgcnn/ (see the README, section Data)"
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"data root {root} (from {'--data-root' if data_root else ENV_VAR}) is not a folder")
    return root.resolve()


def sha256_file(path: Path) -> str:
    return _sha256_cached(str(path), path.stat().st_mtime_ns, path.stat().st_size)


@lru_cache(maxsize=256)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """``git hash-object`` of a file: how the official ML-1M ratings.dat is identified (its SHA-256 is unknown)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def require_file(
    name: str, relpath: str, data_root: str | os.PathLike[str] | None = None, *, expected: str | None = None
) -> Path:
    """Path of one verified file of dataset ``name``; raises with instructions if missing or corrupted."""
    ds = spec(name)
    root = resolve_data_root(data_root)
    path = root / relpath
    if not path.is_file():
        raise DataNotFoundError(
            f"dataset {name!r} ({ds.title}): file {relpath} not found under the data root {root} "
            f"(set by --data-root or {ENV_VAR}). To get it: {ds.how_to_get}."
        )
    want = expected if expected is not None else ds.files.get(relpath)
    if want is not None:
        got = sha256_file(path)
        if got != want:
            raise ChecksumError(
                f"dataset {name!r}: checksum mismatch for {path}: expected sha256 {want}, got {got}. "
                f"The file is corrupted or not the official one and was not used; replace it ({ds.how_to_get})."
            )
    return path


def verify(name: str, data_root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Check every file of a dataset; returns {relpath: sha256 or 'present (no checksum recorded)'}."""
    out: dict[str, str] = {}
    for rel, want in spec(name).files.items():
        path = require_file(name, rel, data_root)
        out[rel] = want if want is not None else f"present, {path.stat().st_size} bytes (no checksum recorded)"
    return out


def fetch(name: str, data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Download the dataset's missing files from the official source into the data root, then verify them.

    Needs internet. Archives are unpacked in place; files are verified against the recorded SHA-256.
    """
    import pooch  # imported here: only needed when downloading

    ds = spec(name)
    if not ds.urls:
        raise DataNotFoundError(f"dataset {name!r} has no download source: {ds.how_to_get}")
    root = resolve_data_root(data_root)
    fetched: list[Path] = []
    for fname, url in ds.urls.items():
        if fname.endswith(".zip"):
            target_dir = root
            pooch.retrieve(
                url,
                known_hash=None,
                fname=fname,
                path=root / ".downloads",
                processor=pooch.Unzip(extract_dir=str(target_dir)),
            )
        else:
            rel = next(r for r in ds.files if r.endswith(fname))
            dest = root / rel
            pooch.retrieve(
                url, known_hash=f"sha256:{ds.files[rel]}" if ds.files[rel] else None, fname=dest.name, path=dest.parent
            )
    for rel in ds.files:
        fetched.append(require_file(name, rel, root))
    return fetched
