"""The paper's distributed task queue (seed 001, figures 3 and 4): a message of B rows goes
through a Celery chain of subtasks, one per step, with Redis as broker and result backend.
Celery sends each subtask round robin to the workers, so every subtask's DataFrame travels
as JSON through Redis to the next one (the paper: "we first had to convert the result of a
subtask into a json representation of the pandas data frame").

The worker: CELERY_BROKER=redis://HOST:PORT/0 celery -A tasks worker (PYTHONPATH=bench/celery).
"""
import io
import json
import os
import warnings

import pandas as pd
from celery import Celery
from sklearn.preprocessing import Normalizer

warnings.filterwarnings("ignore")

BROKER = os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("streamprep_bench", broker=BROKER, backend=BROKER)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def frame(js):
    return pd.read_json(io.StringIO(js), orient="split")


def text(df):
    # 15 digits: the most pandas' JSON writer keeps (its default is 10)
    return df.to_json(orient="split", double_precision=15)


@app.task
def prepare(lines):
    return text(pd.DataFrame.from_records([json.loads(line) for line in lines]))


@app.task
def fillna_zeros(js):
    df = frame(js)
    num = df.select_dtypes(include="number").columns
    df[num] = df[num].fillna(0)
    return text(df)


@app.task
def normalizer(js):
    df = frame(js)
    num = df.select_dtypes(include="number").columns
    df[num] = Normalizer().fit_transform(df[num])
    return text(df)


@app.task
def drop_duplicates(js):
    return text(frame(js).drop_duplicates())


@app.task
def result(js):
    return frame(js).to_json(orient="records", lines=True, double_precision=15)


STEPS = {"fillna_zeros": fillna_zeros, "normalizer": normalizer, "drop_duplicates": drop_duplicates}
