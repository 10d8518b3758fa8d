"""The data analysts' black box of seed 004: classifies each row of a DataFrame, row by row,
on its own (no row depends on another). It burns CPU per row as a real model would: the work
per row is BLACKBOX_WORK iterations (default 2000, about 0.3 ms in CPython here)."""

import hashlib
import os

WORK = int(os.environ.get("BLACKBOX_WORK", "2000"))


def _score(values):
    h = hashlib.sha256("|".join(values).encode()).digest()
    x = int.from_bytes(h[:8], "big") / 2**64
    for _ in range(WORK):
        x = 3.9 * x * (1.0 - x)  # a chaotic map: nothing to vectorise, nothing to cache
    return x


def classify_df(df):
    """Add the column CLASSIFICATION (in place), from each row's values alone."""
    scores = [_score([str(v) for v in row]) for row in df.itertuples(index=True)]
    df["CLASSIFICATION"] = ["high" if s > 0.66 else "mid" if s > 0.33 else "low" for s in scores]
