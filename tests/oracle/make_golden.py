#!/usr/bin/env python3
"""Write golden cases for streamprep's steps from the real pandas / scikit-learn.

For every case directory tests/data/golden/<case>/ this writes
  schema.json     column -> "float64" | "int64" | "str" (the stream's declared schema)
  input.ndjson    the message, one JSON object per row, missing values as null
  <step>.ndjson   what the paper's Python method outputs for that step
  <step>.error    instead, when pandas/scikit-learn refuse the message (the text of the error)

The Python method is the paper's: build a DataFrame from the rows, apply the step with
pandas / scikit-learn (scalers fitted on the message: fit_transform), emit the rows.
Run with the pinned versions in requirements.txt (tests/oracle/venv.sh creates that venv).
"""
import collections
import json
import math
import os
import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import sklearn
from sklearn import preprocessing as pp

warnings.filterwarnings("ignore")  # sklearn warns on n_quantiles > n, all-NaN columns, ...

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden")

FLOATS = ["temp_out", "temp_in", "dew_point", "heat_index", "wind_chill", "thsw_index",
          "wind_speed", "wind_speed_10min", "wind_gust", "barometer", "rain_rate", "rain_day",
          "rain_month", "rain_year", "et_day", "uv_index", "soil_temp", "batt_volt", "storm_rain"]
INTS = ["hum_out", "hum_in", "wind_dir_deg", "solar_rad", "leaf_wet", "tx_battery", "forecast_icon"]
STRS = ["ts", "station", "wind_dir", "wind_dir_avg", "bar_trend", "forecast", "uv_level"]


def num_cols(df):
    return df.select_dtypes(include="number").columns


def scaler(make):
    def apply(df):
        num = num_cols(df)
        out = df.copy()
        if len(num):
            out[num] = make(df).fit_transform(df[num])
        return out
    return apply


def fill(how):
    def apply(df):
        num = num_cols(df)
        out = df.copy()
        value = {"mean": lambda d: d.mean(), "median": lambda d: d.median(), "zeros": lambda d: 0}[how](df[num])
        out[num] = df[num].fillna(value)
        return out
    return apply


def qt(dist):
    return scaler(lambda df: pp.QuantileTransformer(n_quantiles=min(1000, len(df)), output_distribution=dist))


def qt_n(n, dist):
    return scaler(lambda df: pp.QuantileTransformer(n_quantiles=min(n, len(df)), output_distribution=dist))


def abs_(df):
    out = df.copy()
    num = num_cols(df)
    out[num] = df[num].abs()
    return out


STEPS = {
    "abs": abs_,
    "aggregated_sum": lambda df: df[num_cols(df)].sum().to_frame().T,
    "drop_duplicates": lambda df: df.drop_duplicates(),
    "handling_missing": lambda df: df.dropna(),
    "fillna_mean": fill("mean"),
    "fillna_median": fill("median"),
    "fillna_zeros": fill("zeros"),
    "max_abs_scaler": scaler(lambda df: pp.MaxAbsScaler()),
    "min_max_scaler_0_1": scaler(lambda df: pp.MinMaxScaler(feature_range=(0, 1))),
    "min_max_scaler_m1_1": scaler(lambda df: pp.MinMaxScaler(feature_range=(-1, 1))),
    "normalizer": scaler(lambda df: pp.Normalizer()),
    "quantile_transformer_normal": qt("normal"),
    "quantile_transformer_uniform": qt("uniform"),
    "robust_scaler": scaler(lambda df: pp.RobustScaler()),
    "standard_scaler": scaler(lambda df: pp.StandardScaler()),
}


# Steps with options: a file label -> (the chain entry streamprep takes, the reference). The
# labels and entries are written to OPTIONS.json for tests/it/golden.rs.
WITH_OPTIONS = {
    "min_max_scaler__default": ("min_max_scaler", scaler(lambda df: pp.MinMaxScaler())),
    "min_max_scaler__m2_3.5": (
        'min_max_scaler{"feature_range": [-2, 3.5]}',
        scaler(lambda df: pp.MinMaxScaler(feature_range=(-2, 3.5))),
    ),
    "quantile_transformer__default": ("quantile_transformer", qt("uniform")),
    "quantile_transformer__10_normal": (
        'quantile_transformer{"n_quantiles": 10, "output_distribution": "normal"}',
        qt_n(10, "normal"),
    ),
    "quantile_transformer__3_uniform": ('quantile_transformer{"n_quantiles": 3}', qt_n(3, "uniform")),
}


def df_eval(expr):
    """pandas' own df.eval (numexpr is not installed: its 'python' engine, NumPy's float64)."""
    return lambda df: df.eval(expr)


def numpy_eval(**columns):
    """The functions df.eval does not take (where, minimum, maximum): NumPy's own."""
    return lambda df: df.assign(**{k: f(df) for k, f in columns.items()})


# eval: expressions over the columns a, b and i that several cases have (a case without one of
# them: pandas raises, and so must streamprep's eval). Label -> (expression, reference).
EVAL = {
    "beam": ("x = 12.5 * (a + i - b - a) / (a + b + i + a)", None),
    "arith": ("x = a + b * i - a / 2", None),
    "divide": ("x = a / b\ny = i / (a - a)", None),
    "remainder": ("x = a % b\ny = i % 3\nz = -a % 2.5", None),
    "floordiv": ("x = a // b\ny = -i // 4", None),
    "power": ("x = a ** 2 + abs(b) ** 0.5\ny = -2 ** 2\nz = 2 ** 3 ** 2", None),
    "compare": ("x = a > b\ny = a <= i\nz = a != a", None),
    "logic": ("x = (a > 0) & (b > 0) | (i < 1)\ny = ~(a > b)", None),
    "functions": ("x = sqrt(abs(a)) + exp(b / 1000) + log(abs(a) + 1) + log10(abs(b) + 1)", None),
    "trig": ("x = sin(a) + cos(b) + tan(i / 10) + arctan2(a, b)\ny = arctan(a) + tanh(b / 100)", None),
    "chain": ("x = a + b\ny = x * 2\nz = y - i", None),
    "replace": ("a = a * 2 + 1", None),
    "where": ("x = where(a > b, a, b)", numpy_eval(x=lambda df: np.where(df.a > df.b, df.a, df.b))),
    "minmax": (
        "x = minimum(a, b)\ny = maximum(a, i)",
        numpy_eval(x=lambda df: np.minimum(df.a, df.b), y=lambda df: np.maximum(df.a, df.i)),
    ),
}
for label, (expr, ref) in EVAL.items():
    WITH_OPTIONS[f"eval__{label}"] = ("eval" + json.dumps({"expr": expr}), ref or df_eval(expr))


def frame(rows, schema):
    """The DataFrame the paper's prepare builds, with the stream's declared dtypes."""
    df = pd.DataFrame.from_records(rows, columns=list(schema))
    for c, t in schema.items():
        if t == "float64":
            df[c] = df[c].astype("float64")
        elif t == "int64":
            df[c] = df[c].astype("float64") if df[c].isna().any() else df[c].astype("int64")
        else:
            df[c] = df[c].astype(object)
    return df


def jsonable(v):
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return None if math.isnan(v) or math.isinf(v) else v  # as streamprep writes them: JSON has neither
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, str):
        return v
    if pd.isna(v):
        return None
    return v


def write_rows(path, df):
    with open(path, "w") as f:
        for rec in df.itertuples(index=False, name=None):
            row = {c: jsonable(v) for c, v in zip(df.columns, rec)}
            f.write(json.dumps(row, allow_nan=False) + "\n")


def weather(rng, n, missing=0.02, dups=0.01):
    rows = []
    for i in range(n):
        r = {"ts": f"2019-06-{1 + i // 1440:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00", "station": "aalen"}
        r["wind_dir"] = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"][int(rng.integers(8))]
        r["wind_dir_avg"] = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"][int(rng.integers(8))]
        r["bar_trend"] = ["Falling", "Steady", "Rising"][int(rng.integers(3))]
        r["forecast"] = ["Sunny", "Cloudy", "Rain"][int(rng.integers(3))]
        r["uv_level"] = ["low", "moderate", "high"][int(rng.integers(3))]
        for j, c in enumerate(FLOATS):
            r[c] = round(float(rng.normal(10 * (j + 1), 3 + j)), 2)
        for j, c in enumerate(INTS):
            r[c] = int(rng.integers(0, 100 * (j + 1)))
        for c in FLOATS + INTS:
            if rng.random() < missing:
                r[c] = None
        rows.append(r)
        if rows and rng.random() < dups:
            rows.append(dict(r))
    schema = {c: "str" for c in STRS}
    schema.update({c: "float64" for c in FLOATS})
    schema.update({c: "int64" for c in INTS})
    order = ["ts", "station"] + FLOATS[:5] + INTS[:2] + ["wind_dir", "wind_dir_avg"] + FLOATS[5:12] + INTS[2:4] + \
        ["bar_trend", "forecast"] + FLOATS[12:] + INTS[4:] + ["uv_level"]
    return [{c: r[c] for c in order} for r in rows], {c: schema[c] for c in order}


def cases():
    rng = np.random.default_rng(20261121)
    out = {}
    out["weather"] = weather(rng, 300)
    out["weather_big"] = weather(rng, 2500, missing=0.0)  # more rows than n_quantiles
    out["one_row"] = weather(rng, 1, missing=0.0)
    out["one_row_missing"] = ([{"a": 1.5, "b": None, "i": 3, "s": "x"}], {"a": "float64", "b": "float64", "i": "int64", "s": "str"})
    out["two_rows"] = ([{"a": 1.5, "b": -2.0, "i": 3, "s": "x"}, {"a": 2.5, "b": 4.0, "i": -7, "s": "y"}],
                       {"a": "float64", "b": "float64", "i": "int64", "s": "str"})
    const = [{"c": 3.3, "z": 0.0, "k": 7, "v": float(v), "s": "x"} for v in rng.normal(0, 1, 40).round(4)]
    out["constant_columns"] = (const, {"c": "float64", "z": "float64", "k": "int64", "v": "float64", "s": "str"})
    miss = [{"a": float(v), "gone": None, "i": int(k), "s": "t"} for v, k in zip(rng.normal(5, 2, 25).round(3), rng.integers(-50, 50, 25))]
    out["all_missing_column"] = (miss, {"a": "float64", "gone": "float64", "i": "int64", "s": "str"})
    neg = [{"a": float(v), "b": float(w)} for v, w in zip(rng.normal(-100, 30, 60).round(3), -rng.exponential(5, 60).round(5))]
    out["negative"] = (neg, {"a": "float64", "b": "float64"})
    big = [{"a": float(v), "b": float(w), "tiny": float(t)} for v, w, t in
           zip(rng.normal(1e12, 1e9, 80), rng.normal(-3e15, 7e13, 80), rng.normal(1e-9, 1e-10, 80))]
    out["large_magnitudes"] = (big, {"a": "float64", "b": "float64", "tiny": "float64"})
    ints = [{"i": int(a), "j": int(b), "k": int(c)} for a, b, c in
            zip(rng.integers(-1000, 1000, 50), rng.integers(0, 5, 50), rng.integers(10**9, 10**10, 50))]
    out["integers"] = (ints, {"i": "int64", "j": "int64", "k": "int64"})
    base = [{"s": s, "t": t, "a": a, "i": i} for s, t, a, i in
            [("x", "p", 1.5, 1), ("y", None, None, 2), ("x", "p", 1.5, 1), ("x", "q", 1.5, 1),
             ("y", None, None, 2), ("z", "p", 2.5, None), ("z", "p", 2.5, None), ("x", "p", 1.5, 1)]]
    out["duplicates"] = (base, {"s": "str", "t": "str", "a": "float64", "i": "int64"})
    ties = [{"a": float(v), "b": float(w)} for v, w in zip(rng.integers(0, 4, 70), rng.integers(0, 2, 70))]
    out["ties"] = (ties, {"a": "float64", "b": "float64"})
    inf = float("inf")
    infs = [{"a": float(v), "b": float(w), "i": int(k), "s": "t"} for v, w, k in
            zip(rng.normal(0, 1, 12).round(3), rng.normal(5, 2, 12).round(3), rng.integers(0, 9, 12))]
    infs[3]["a"], infs[7]["b"], infs[9]["a"] = inf, -inf, None
    out["infinities"] = (infs, {"a": "float64", "b": "float64", "i": "int64", "s": "str"})
    # arithmetic's edges for eval: division by zero, signs of remainders, -0.0, overflow, gaps
    arith = [(1.0, 0.0, 0), (-1.0, 0.0, -3), (0.0, 0.0, 5), (-7.5, 2.0, -7), (7.5, -2.0, 7),
             (-0.0, 3.0, 0), (1e300, 1e300, 1), (None, 1.0, 2), (2.0, None, -1), (3.0, 0.5, 9),
             (-2.5, -1.5, -4), (0.1, 0.2, 100)]
    out["arithmetic"] = ([{"a": a, "b": b, "i": i, "s": "t"} for a, b, i in arith],
                         {"a": "float64", "b": "float64", "i": "int64", "s": "str"})
    return out


def dumps(row):
    """A row as JSON; an infinity as 1e400 (a JSON number that overflows to it)."""
    return json.dumps(row).replace("-Infinity", "-1e400").replace("Infinity", "1e400")


# Windows across messages, per key: the whole stream through pandas (groupby(key) ... over
# every row, in order); streamprep cuts the same rows into messages of 1, 7, 100 and 1000 rows
# and must give the same (tests/it/golden.rs). Label -> (chain entry, reference on a column).
STREAM_OUT = os.path.join(os.path.dirname(OUT), "golden_stream")
WINDOWS = {
    "diff": ('diff{"key": "k"}', "k", lambda s: s.diff()),
    "diff__no_key": ("diff", None, lambda s: s.diff()),
    "rolling__3_mean": ('rolling{"window": 3, "agg": "mean", "key": "k"}', "k", lambda s: s.rolling(3).mean()),
    "rolling__3_sum": ('rolling{"window": 3, "agg": "sum", "key": "k"}', "k", lambda s: s.rolling(3).sum()),
    "rolling__4_min": ('rolling{"window": 4, "agg": "min", "key": "k"}', "k", lambda s: s.rolling(4).min()),
    "rolling__4_max": ('rolling{"window": 4, "agg": "max", "key": "k"}', "k", lambda s: s.rolling(4).max()),
    "rolling__5_std": ('rolling{"window": 5, "agg": "std", "key": "k"}', "k", lambda s: s.rolling(5).std()),
    "rolling__1_mean": ('rolling{"window": 1, "key": "k"}', "k", lambda s: s.rolling(1).mean()),
    "rolling__10_mean_no_key": ('rolling{"window": 10}', None, lambda s: s.rolling(10).mean()),
    "ewm_mean__3": ('ewm_mean{"span": 3, "key": "k"}', "k", lambda s: s.ewm(span=3).mean()),
    "ewm_mean__10_no_key": ('ewm_mean{"span": 10}', None, lambda s: s.ewm(span=10).mean()),
    "ewm_mean__1_5": ('ewm_mean{"span": 1.5, "key": "k"}', "k", lambda s: s.ewm(span=1.5).mean()),
}


# Running-fit scalers, per key: for each message of b rows, each key's rows through that key's
# scaler, partial_fit then transform (scikit-learn's own); label -> (entry, key, scaler).
BUFFERS = [1, 7, 100, 1000]
RUNNING = {
    "standard": ('standard_scaler{"fit": "running", "key": "k"}', "k", pp.StandardScaler),
    "standard__no_key": ('standard_scaler{"fit": "running"}', None, pp.StandardScaler),
    "min_max": ('min_max_scaler{"fit": "running", "key": "k"}', "k", pp.MinMaxScaler),
    "min_max__m1_1": (
        'min_max_scaler{"fit": "running", "feature_range": [-1, 1], "key": "k"}',
        "k",
        lambda: pp.MinMaxScaler(feature_range=(-1, 1)),
    ),
    "max_abs": ('max_abs_scaler{"fit": "running", "key": "k"}', "k", pp.MaxAbsScaler),
}


def running(df, key, make, b):
    out = df.copy()
    num = [c for c in num_cols(df) if c != key]
    res = np.full((len(df), len(num)), np.nan)
    scalers = {}
    for start in range(0, len(df), b):
        m = df.iloc[start:start + b]
        groups = m.groupby(key, dropna=True, sort=False) if key else [(None, m)]
        for k, g in groups:
            sc = scalers.setdefault(k, make())
            x = g[num].to_numpy(dtype=float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sc.partial_fit(x)
                res[g.index.to_numpy()] = sc.transform(x)
    for j, c in enumerate(num):
        out[c] = res[:, j]
    return out


# A keyed run (`--key k`): streamprep gathers each key's rows into its own messages of b rows;
# a message closes when full, when more than max_keys keys wait (the one waiting longest), and
# at the end (oldest first); messages leave in the order they close. The steps keep state per
# key, at most max_keys keys (the least recently seen dropped, so a key that comes back starts
# afresh). Label -> (chain, kind, reference, b, max_keys); the golden rows are in streamprep's
# output order.
KEYED = {
    "standard__b1": ('standard_scaler{"fit": "running"}', "running", pp.StandardScaler, 1, None),
    "standard__b7": ('standard_scaler{"fit": "running"}', "running", pp.StandardScaler, 7, None),
    "standard__b100": ('standard_scaler{"fit": "running"}', "running", pp.StandardScaler, 100, None),
    "standard__b1000": ('standard_scaler{"fit": "running"}', "running", pp.StandardScaler, 1000, None),
    "min_max__b7__max2": ('min_max_scaler{"fit": "running"}', "running", pp.MinMaxScaler, 7, 2),
    "max_abs__b100__max3": ('max_abs_scaler{"fit": "running"}', "running", pp.MaxAbsScaler, 100, 3),
    "rolling_3_mean__b7": ('rolling{"window": 3, "agg": "mean"}', "window", lambda s: s.rolling(3).mean(), 7, None),
    "rolling_4_std__b7__max2": ('rolling{"window": 4, "agg": "std"}', "window", lambda s: s.rolling(4).std(), 7, 2),
    "ewm_3__b100__max3": ('ewm_mean{"span": 3}', "window", lambda s: s.ewm(span=3).mean(), 100, 3),
    "diff__b1__max2": ("diff", "window", lambda s: s.diff(), 1, 2),
    "diff__b1000": ("diff", "window", lambda s: s.diff(), 1000, None),
}


def keyed_messages(keys, b, max_keys):
    """The rows of each message streamprep's keyed buffer closes, in closing order."""
    waiting = {}  # key -> row indices; insertion order = the order of their first rows
    out = []
    for i, k in enumerate(keys):
        waiting.setdefault(k, []).append(i)
        if len(waiting[k]) >= b:
            out.append(waiting.pop(k))
        while max_keys and len(waiting) > max_keys:
            out.append(waiting.pop(next(iter(waiting))))
    out.extend(waiting.values())
    return out


def keyed(df, kind, ref, b, max_keys):
    key = "k"
    num = [c for c in num_cols(df) if c != key]
    res = np.full((len(df), len(num)), np.nan)
    keys = [None if (k is None or (isinstance(k, float) and math.isnan(k))) else k for k in df[key]]
    messages = keyed_messages(keys, b, max_keys)
    states = collections.OrderedDict()  # key -> its state, least recently seen first
    segment = np.zeros(len(df), dtype=int)  # windows: a key's rows since its state last started
    lives = {}
    for idx in messages:
        k = keys[idx[0]]
        if k is None:
            continue  # rows without a key: no state, NaN (pandas' groupby drops them)
        if k in states:
            states.move_to_end(k)
        else:
            if max_keys:
                while len(states) >= max_keys:
                    states.popitem(last=False)
            states[k] = ref() if kind == "running" else None
            lives[k] = lives.get(k, -1) + 1
        segment[idx] = lives[k]
        if kind == "running":
            x = df.iloc[idx][num].to_numpy(dtype=float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                states[k].partial_fit(x)
                res[idx] = states[k].transform(x)
    if kind == "window":
        ok = np.array([k is not None for k in keys])
        g = df[ok].assign(_seg=segment[ok])
        for j, c in enumerate(num):
            col = g.groupby([key, "_seg"])[c].transform(ref).astype(float)
            res[np.flatnonzero(ok), j] = col.to_numpy()
    out = df.copy()
    for j, c in enumerate(num):
        out[c] = res[:, j]
    order = [i for idx in messages for i in idx]
    return out.iloc[order]


# Idle expiry (key_ttl), replayed at a known pace: streamprep replays TTL_ROWS at TTL_RATE rows a
# second with key_ttl TTL_MS and messages of one row; key "c" is silent for 400 rows (800 ms, so
# its state expires), "a" and "b" for a few rows at most (kept). The oracle starts a key's state afresh
# after a gap of more than 100 rows (between the two, far from both): a running standard scaler,
# then diff, per key and stretch.
TTL_RATE, TTL_MS, TTL_GAP = 500, 300, 100


def ttl_rows():
    rng = np.random.default_rng(7)
    rows = []
    for n in range(1000):
        if 300 <= n < 700:
            k = "a" if n % 2 == 0 else ("b" if n % 40 >= 20 or n % 4 == 1 else "a")
        else:
            k = ["a", "b", "c"][n % 3]
        x = None if rng.random() < 0.03 else round(float(rng.normal(10, 3)), 3)
        rows.append({"k": k, "x": x, "n": n})
    return rows, {"k": "str", "x": "float64", "n": "int64"}


def ttl_expected(rows):
    last, life, seg = {}, {}, []
    for i, r in enumerate(rows):
        k = r["k"]
        if k in last and i - last[k] > TTL_GAP:
            life[k] = life.get(k, 0) + 1
        last[k] = i
        seg.append(life.get(k, 0))
    df = pd.DataFrame(rows).astype({"x": "float64", "n": "float64"})
    df["_seg"] = seg
    out = df.copy()
    for c in ["x", "n"]:
        res = np.full(len(df), np.nan)
        for _, g in df.groupby(["k", "_seg"], sort=False):
            sc = pp.StandardScaler()
            vals = []
            for i in g.index:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sc.partial_fit(df.loc[[i], [c]].to_numpy(dtype=float))
                    vals.append(sc.transform(df.loc[[i], [c]].to_numpy(dtype=float))[0, 0])
            res[g.index.to_numpy()] = pd.Series(vals).diff().to_numpy()
        out[c] = res
    return out.drop(columns=["_seg"])


# resample over the whole stream: pandas' df.resample(interval, on="ts")[num].agg(agg) (per key:
# df.groupby("k").resample(...)), bins labelled by their start, written as streamprep writes
# times. Label -> (chain entry, keyed).
RESAMPLE = {
    "mean_1s": ('resample{"interval": "1s", "agg": "mean"}', False),
    "sum_1s": ('resample{"interval": "1s", "agg": "sum"}', False),
    "min_1s": ('resample{"interval": "1s", "agg": "min"}', False),
    "max_2s": ('resample{"interval": "2s", "agg": "max"}', False),
    "first_1s": ('resample{"interval": "1s", "agg": "first"}', False),
    "last_1s": ('resample{"interval": "1s", "agg": "last"}', False),
    "count_1s": ('resample{"interval": "1s", "agg": "count"}', False),
    "mean_1min": ('resample{"interval": "1min", "agg": "mean"}', False),
    "mean_500ms_keyed": ('resample{"interval": "500ms", "agg": "mean"}', True),
    "sum_1s_keyed": ('resample{"interval": "1s", "agg": "sum"}', True),
}


def resample_rows():
    """Times in order (steps of 0.05-0.8 s, now and then a gap of seconds, over midnight),
    three keys, missing values."""
    rng = np.random.default_rng(3)
    t = pd.Timestamp("2026-03-01T23:58:50")
    rows = []
    for n in range(800):
        t += pd.Timedelta(seconds=float(rng.choice([rng.uniform(0.05, 0.8), rng.uniform(3, 9)], p=[0.95, 0.05])))
        x = None if rng.random() < 0.05 else round(float(rng.normal(10, 4)), 3)
        y = None if rng.random() < 0.03 else round(float(rng.normal(0, 1)), 6)
        rows.append({"ts": t.strftime("%Y-%m-%dT%H:%M:%S.%f"), "k": ["a", "b", "c"][int(rng.integers(3))],
                     "x": x, "y": y, "i": int(rng.integers(-20, 20))})
    return rows, {"ts": "str", "k": "str", "x": "float64", "y": "float64", "i": "int64"}


def iso(ts):
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += ("." + f"{ts.microsecond:06d}").rstrip("0")
    return text


def resampled(rows, schema, entry, keyed):
    spec = json.loads(entry[len("resample"):])
    df = frame(rows, schema)
    df["ts"] = pd.to_datetime(df["ts"])
    num = ["x", "y", "i"]
    if keyed:
        out = df.groupby("k").resample(spec["interval"], on="ts")[num].agg(spec["agg"]).reset_index()
        out = out[["k", "ts"] + num]
    else:
        out = df.resample(spec["interval"], on="ts")[num].agg(spec["agg"]).reset_index()
    out["ts"] = [iso(t) for t in out["ts"]]
    return out


# Downsampling a whole series (lttb, m4, minmax_lttb): the indices tsdownsample selects, each
# numeric column a series of its own (x: the time as microseconds, or none), missing values
# left out, per key when keyed; the rows kept are those any series selected, in order.
# Label -> (chain entry, keyed).
DOWNSAMPLE = {
    "lttb_100": ('lttb{"points": 100}', False),
    "m4_100": ('m4{"points": 100}', False),
    "minmax_lttb_100": ('minmax_lttb{"points": 100}', False),
    "minmax_lttb_1000": ('minmax_lttb{"points": 1000}', False),
    "lttb_64_no_time": ('lttb{"points": 64, "time_column": ""}', False),
    "m4_64_no_time": ('m4{"points": 64, "time_column": ""}', False),
    "minmax_lttb_50_no_time": ('minmax_lttb{"points": 50, "time_column": ""}', False),
    "lttb_40_keyed": ('lttb{"points": 40}', True),
    "m4_8000_all": ('m4{"points": 8000}', False),
}


def downsample_rows():
    """An irregular time series: steps of 1 ms to 2 s, a few long gaps, repeated values (ties)
    and missing values, three keys."""
    rng = np.random.default_rng(11)
    t = pd.Timestamp("2026-05-01T00:00:00")
    rows = []
    level = 0.0
    for n in range(5000):
        t += pd.Timedelta(microseconds=int(rng.choice([rng.integers(1000, 2_000_000), rng.integers(30_000_000, 90_000_000)], p=[0.99, 0.01])))
        level += float(rng.normal(0, 1))
        y = None if rng.random() < 0.03 else round(level, 1)
        z = None if rng.random() < 0.02 else round(float(np.sin(n / 50.0) * 10 + rng.normal(0, 0.5)), 2)
        rows.append({"ts": t.strftime("%Y-%m-%dT%H:%M:%S.%f"), "k": ["p", "q", "r"][int(rng.integers(3))],
                     "y": y, "z": z, "i": int(rng.integers(0, 5))})
    return rows, {"ts": "str", "k": "str", "y": "float64", "z": "float64", "i": "int64"}


def downsampled(rows, schema, entry, keyed):
    import tsdownsample as tsd
    name = entry.split("{")[0]
    spec = json.loads(entry[len(name):])
    n_out = spec["points"]
    with_time = spec.get("time_column", "ts") != ""
    df = frame(rows, schema)
    us = pd.to_datetime(df["ts"]).astype("datetime64[us]").astype("int64").to_numpy()
    make = {"lttb": tsd.LTTBDownsampler, "m4": tsd.M4Downsampler, "minmax_lttb": tsd.MinMaxLTTBDownsampler}[name]
    keep = np.zeros(len(df), dtype=bool)
    groups = df.groupby("k", sort=False).groups.values() if keyed else [df.index]
    for g in groups:
        g = np.asarray(g)
        for c in ["y", "z", "i"]:
            vals = df[c].to_numpy(dtype=float)[g]
            ok = ~np.isnan(vals)
            rows_c = g[ok]
            if len(rows_c) == 0:
                continue
            y = np.ascontiguousarray(vals[ok])
            if with_time:
                idx = make().downsample(np.ascontiguousarray(us[rows_c]), y, n_out=n_out)
            else:
                idx = make().downsample(y, n_out=n_out)
            keep[rows_c[np.asarray(idx, dtype=np.int64)]] = True
    return df[keep]


def stream_rows():
    """A keyed stream: 4 busy keys, one key seen once, a few rows without a key, gaps."""
    rng = np.random.default_rng(20261206)
    rows = []
    for n in range(1500):
        k = None if n % 97 == 13 else ("solo" if n == 700 else f"k{int(rng.integers(4))}")
        u = None if rng.random() < 0.05 else round(float(rng.normal(20, 5)), 3)
        v = None if rng.random() < 0.02 else round(float(rng.normal(0, 1)), 6)
        rows.append({"k": k, "u": u, "v": v, "i": int(rng.integers(-50, 50)), "s": f"r{n}"})
    return rows, {"k": "str", "u": "float64", "v": "float64", "i": "int64", "s": "str"}


def windows():
    if os.path.isdir(STREAM_OUT):
        shutil.rmtree(STREAM_OUT)
    os.makedirs(STREAM_OUT)
    rows, schema = stream_rows()
    with open(os.path.join(STREAM_OUT, "schema.json"), "w") as f:
        json.dump(schema, f, indent=1)
    with open(os.path.join(STREAM_OUT, "input.ndjson"), "w") as f:
        for r in rows:
            f.write(dumps(r) + "\n")
    for label, (_, key, fn) in WINDOWS.items():
        df = frame(rows, schema)
        out = df.copy()
        for c in [c for c in num_cols(df) if c != key]:
            col = df.groupby(key, dropna=True)[c].transform(fn) if key else fn(df[c])
            out[c] = col.astype(float)
        write_rows(os.path.join(STREAM_OUT, label + ".ndjson"), out)
    with open(os.path.join(STREAM_OUT, "CASES.json"), "w") as f:
        json.dump({label: entry for label, (entry, _, _) in WINDOWS.items()}, f, indent=1)
    for label, (_, key, make) in RUNNING.items():
        for b in BUFFERS:
            df = frame(rows, schema)
            write_rows(os.path.join(STREAM_OUT, f"running__{label}__b{b}.ndjson"), running(df, key, make, b))
    with open(os.path.join(STREAM_OUT, "RUNNING.json"), "w") as f:
        json.dump({label: entry for label, (entry, _, _) in RUNNING.items()}, f, indent=1)
    for label, (_, kind, ref, b, max_keys) in KEYED.items():
        df = frame(rows, schema)
        write_rows(os.path.join(STREAM_OUT, f"keyed__{label}.ndjson"), keyed(df, kind, ref, b, max_keys))
    with open(os.path.join(STREAM_OUT, "KEYED.json"), "w") as f:
        json.dump({label: {"chain": entry, "buffer": b, "max_keys": m}
                   for label, (entry, _, _, b, m) in KEYED.items()}, f, indent=1)
    rows, schema = resample_rows()
    with open(os.path.join(STREAM_OUT, "resample_input.ndjson"), "w") as f:
        for r in rows:
            f.write(dumps(r) + "\n")
    for label, (entry, by_key) in RESAMPLE.items():
        write_rows(os.path.join(STREAM_OUT, f"resample__{label}.ndjson"), resampled(rows, schema, entry, by_key))
    with open(os.path.join(STREAM_OUT, "RESAMPLE.json"), "w") as f:
        json.dump({label: {"chain": entry, "keyed": by_key} for label, (entry, by_key) in RESAMPLE.items()}, f, indent=1)
    rows, schema = downsample_rows()
    with open(os.path.join(STREAM_OUT, "downsample_input.ndjson"), "w") as f:
        for r in rows:
            f.write(dumps(r) + "\n")
    for label, (entry, by_key) in DOWNSAMPLE.items():
        write_rows(os.path.join(STREAM_OUT, f"downsample__{label}.ndjson"), downsampled(rows, schema, entry, by_key))
    with open(os.path.join(STREAM_OUT, "DOWNSAMPLE.json"), "w") as f:
        json.dump({label: {"chain": entry, "keyed": by_key} for label, (entry, by_key) in DOWNSAMPLE.items()}, f, indent=1)
    rows, _ = ttl_rows()
    with open(os.path.join(STREAM_OUT, "ttl_input.ndjson"), "w") as f:
        for r in rows:
            f.write(dumps(r) + "\n")
    write_rows(os.path.join(STREAM_OUT, "ttl_expected.ndjson"), ttl_expected(rows))
    with open(os.path.join(STREAM_OUT, "TTL.json"), "w") as f:
        json.dump({"rate": TTL_RATE, "key_ttl_ms": TTL_MS,
                   "chain": 'standard_scaler{"fit": "running"},diff'}, f, indent=1)
    return len(WINDOWS) + len(RUNNING) * len(BUFFERS) + len(KEYED) + 1 + len(RESAMPLE) + len(DOWNSAMPLE)


def main():
    n_windows = windows()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    n = 0
    for name, (rows, schema) in cases().items():
        d = os.path.join(OUT, name)
        os.makedirs(d)
        with open(os.path.join(d, "schema.json"), "w") as f:
            json.dump(schema, f, indent=1)
        with open(os.path.join(d, "input.ndjson"), "w") as f:
            for r in rows:
                f.write(dumps(r) + "\n")
        every = list(STEPS.items()) + [(label, fn) for label, (_, fn) in WITH_OPTIONS.items()]
        for step, fn in every:
            df = frame(rows, schema)
            try:
                res = fn(df)
            except Exception as e:  # scikit-learn refuses the message
                with open(os.path.join(d, step + ".error"), "w") as f:
                    f.write(f"{type(e).__name__}: {e}\n")
                continue
            write_rows(os.path.join(d, step + ".ndjson"), res)
            n += 1
    with open(os.path.join(OUT, "OPTIONS.json"), "w") as f:
        json.dump({label: entry for label, (entry, _) in WITH_OPTIONS.items()}, f, indent=1)
    with open(os.path.join(OUT, "VERSIONS"), "w") as f:
        f.write(f"numpy {np.__version__}\npandas {pd.__version__}\nscikit-learn {sklearn.__version__}\n")
    print(f"golden: {len(cases())} cases, {n} step outputs in {os.path.normpath(OUT)}; "
          f"{n_windows} window cases over a stream in {os.path.normpath(STREAM_OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
