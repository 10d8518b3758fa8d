"""The black box as a streamprep step (the project's `exec` step runs this, one process a
worker). Each message arrives as a DataFrame of strings (the project declares every column a
string, as the old pipeline reads with dtype=str); the index is `id`, as the old pipeline's
index_col=0."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import fancy_ml_black_box  # noqa: E402
from streamprep_step import serve  # noqa: E402


def classify(df):
    df = df.set_index("id")
    fancy_ml_black_box.classify_df(df)
    return df.reset_index()


serve(classify)
