"""Seed 004's existing job, single process: read the CSV, classify, write the CSV (no header,
as the seed does). `python3 old_pipeline.py IN.csv OUT.csv`"""

import sys

import pandas as pd

import fancy_ml_black_box

infile, outfile = sys.argv[1], sys.argv[2]
df = pd.read_csv(infile, index_col=0, dtype=str, engine="python")
fancy_ml_black_box.classify_df(df)
df.to_csv(outfile, header=False)
