"""Seed 002's history query the Python way (the seed's code path): pandas.read_sql of a day of
CBPM3 readings, df.eval for two positions, resample('1s').mean(), then tsdownsample's
MinMaxLTTB to 2,000 points. Prints the wall seconds to the 1-second resample and to the
points, and the process's peak resident memory. Usage: cbpm3.py URL FROM TO"""
import resource
import sys
import time
import warnings

import numpy as np
import pandas as pd
import psycopg
import tsdownsample as tsd

url, start, end = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
with psycopg.connect(url) as conn, warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pandas prefers SQLAlchemy; a DBAPI connection works
    df = pd.read_sql(f"SELECT * FROM cbpm3 WHERE ts >= '{start}' AND ts < '{end}' ORDER BY ts", conn)
df = df.eval("x1 = 12.5 * (bpm1_a + bpm1_d - bpm1_b - bpm1_c) / (bpm1_a + bpm1_b + bpm1_c + bpm1_d)\n"
             "x2 = 12.5 * (bpm2_a + bpm2_d - bpm2_b - bpm2_c) / (bpm2_a + bpm2_b + bpm2_c + bpm2_d)")
sec = df.resample("1s", on="ts").mean()
t1 = time.perf_counter()
x = sec.index.asi8 // 1000  # microseconds
idx = tsd.MinMaxLTTBDownsampler().downsample(np.ascontiguousarray(x), np.ascontiguousarray(sec["x1"].to_numpy()), n_out=2000)
t2 = time.perf_counter()
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"python {len(df)} {len(sec)} {len(idx)} {t1 - t0:.3f} {t2 - t0:.3f} {peak_mb:.0f}")
