#!/usr/bin/env python3
"""The paper's Python method, single process: for each message of B rows, prepare (build a
pandas DataFrame from the JSON rows), run the chain with pandas / scikit-learn (scalers fitted
per message), result (encode the rows as JSON lines and write them).

usage: python_method.py INPUT.ndjson B OUTPUT.ndjson CHAIN
prints: rows seconds rows_per_s   (time of the processing loop, imports excluded)
"""
import json
import sys
import time
import warnings

import pandas as pd
from sklearn.preprocessing import Normalizer

warnings.filterwarnings("ignore")


def fillna_zeros(df):
    num = df.select_dtypes(include="number").columns
    df[num] = df[num].fillna(0)
    return df


def normalizer(df):
    num = df.select_dtypes(include="number").columns
    df[num] = Normalizer().fit_transform(df[num])
    return df


def drop_duplicates(df):
    return df.drop_duplicates()


STEPS = {"fillna_zeros": fillna_zeros, "normalizer": normalizer, "drop_duplicates": drop_duplicates}


def main():
    path, b, out, chain = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
    steps = [STEPS[s] for s in chain]
    with open(path) as f:
        lines = f.readlines()
    rows = 0
    t0 = time.perf_counter()
    with open(out, "w") as o:
        for i in range(0, len(lines), b):
            df = pd.DataFrame.from_records([json.loads(l) for l in lines[i:i + b]])  # prepare
            for s in steps:
                df = s(df)
            o.write(df.to_json(orient="records", lines=True))  # result
            rows += min(b, len(lines) - i)
    dt = time.perf_counter() - t0
    print(f"{rows} {dt:.4f} {rows / dt:.1f}")


if __name__ == "__main__":
    main()
