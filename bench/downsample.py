"""Decimation speed, streamprep against tsdownsample, single core each, same data, one run:
a random walk of N float64 points with int64 x (microseconds, irregular steps), 2,000 points
out; for m4, minmax_lttb and lttb: each side's best of 3, points a second, the ratio, and
whether the indices are the same. Usage: downsample.py N RUST_BINARY WORKDIR."""
import subprocess
import sys
import time

import numpy as np
import tsdownsample as tsd

n, binary, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(5)
x = np.cumsum(rng.integers(1, 1000, n, dtype=np.int64))
y = np.cumsum(rng.normal(0, 1, n))
x.tofile(f"{work}/x.bin")
y.tofile(f"{work}/y.bin")
n_out = 2000
ours = {}
out = subprocess.run([binary, f"{work}/x.bin", f"{work}/y.bin", str(n_out), f"{work}/idx", "3"],
                     check=True, capture_output=True, text=True).stdout
for line in out.split("\n"):
    if line.strip():
        name, secs = line.split()
        ours[name] = float(secs)
print(f"{n:,} points, {n_out} out, single core each (tsdownsample parallel=False)")
print(f"{'algorithm':12} | {'tsdownsample s':>14} {'G pts/s':>8} | {'streamprep s':>12} {'G pts/s':>8} | {'ratio':>6} | same indices")
for name, make, kw in [("m4", tsd.M4Downsampler, {}), ("minmax_lttb", tsd.MinMaxLTTBDownsampler, {"minmax_ratio": 4}),
                       ("lttb", tsd.LTTBDownsampler, {})]:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        idx = make().downsample(x, y, n_out=n_out, parallel=False, **kw)
        best = min(best, time.perf_counter() - t)
    mine = np.fromfile(f"{work}/idx.{name}", dtype=np.uint64)
    same = len(mine) == len(idx) and bool(np.all(mine == idx.astype(np.uint64)))
    print(f"{name:12} | {best:14.4f} {n / best / 1e9:8.2f} | {ours[name]:12.4f} {n / ours[name] / 1e9:8.2f} | "
          f"{best / ours[name]:5.2f}x | {same}")
