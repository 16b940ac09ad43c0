"""Netflix Prize training data in its official ``combined_data_{1..4}.txt`` format.

Each block starts with ``MovieID:`` and is followed by ``CustomerID,Rating,YYYY-MM-DD`` lines.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .registry import DATASETS, require_file


def read_netflix_ratings(
    data_root: str | os.PathLike[str] | None = None, parts: tuple[int, ...] = (1, 2, 3, 4)
) -> pd.DataFrame:
    """Columns user_id, item_id, rating, timestamp (seconds since epoch, from the date)."""
    frames = []
    for part in parts:
        rel = f"netflix/combined_data_{part}.txt"
        if rel not in DATASETS["netflix"].files:
            raise ValueError(f"Netflix part {part} does not exist; parts are 1..4")
        path = require_file("netflix", rel, data_root)
        movie = -1
        users: list[int] = []
        movies: list[int] = []
        ratings: list[float] = []
        dates: list[str] = []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if line.endswith(":"):
                    movie = int(line[:-1])
                    continue
                if movie < 0:
                    raise ValueError(f"{path}:{lineno}: rating line before any 'MovieID:' header")
                user, rating, date = line.split(",")
                users.append(int(user))
                movies.append(movie)
                ratings.append(float(rating))
                dates.append(date)
        ts = pd.to_datetime(pd.Series(dates), format="%Y-%m-%d").astype("datetime64[s]").astype("int64")
        frames.append(
            pd.DataFrame(
                {
                    "user_id": users,
                    "item_id": movies,
                    "rating": np.asarray(ratings, dtype=np.float32),
                    "timestamp": ts.to_numpy(dtype=np.float64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
