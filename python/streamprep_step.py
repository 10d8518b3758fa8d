"""Your own pandas code as a streamprep step.

    import fancy_ml_black_box
    from streamprep_step import serve
    serve(lambda df: fancy_ml_black_box.classify_df(df))

and in the project:

    chain = [{ step = "exec", command = ["python3", "classify.py"], format = "arrow", timeout = "30s" }]

`serve(fn)` reads each message streamprep sends as a pandas DataFrame, calls `fn(df)` and sends
the DataFrame it returns back (any number of rows, any columns). An exception in `fn` sends its
traceback as the message's reason: that message becomes a dead letter and the process goes on.
What `fn` prints goes to stderr, which streamprep logs, so it cannot corrupt the answers.

Needs pandas; the Arrow format (the default) also needs pyarrow. Code that works on Arrow
tables can use `serve_arrow(fn)` instead: `fn` gets and returns a pyarrow Table, no DataFrame is
made (that costs about 50 us a column each way) and pandas is not needed. Copy this file next
to your script, or put its folder on PYTHONPATH.

The wire protocol, for other languages: a frame is a 4-byte big-endian length n, then n bytes:
one kind byte and the payload. streamprep sends b"D" + a message; answer each frame with one
frame, b"D" + the result or b"E" + a UTF-8 reason. The payload's format is in the environment
variable STREAMPREP_FORMAT: "arrow" (an Arrow IPC stream), "csv" (a header line, then rows) or
"ndjson" (one JSON object a line). stdin closing means: finish and exit.
"""

import io
import os
import struct
import sys
import traceback


def _read_exact(stream, n):
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _decode(payload, fmt):
    import pandas as pd

    if fmt == "arrow":
        import pyarrow as pa

        return pa.ipc.open_stream(payload).read_all().to_pandas()
    if fmt == "csv":
        if not payload.strip():
            return pd.DataFrame()
        return pd.read_csv(io.BytesIO(payload))
    if fmt == "ndjson":
        if not payload.strip():
            return pd.DataFrame()
        return pd.read_json(io.BytesIO(payload), lines=True)
    raise ValueError(f"unknown STREAMPREP_FORMAT {fmt!r} (arrow, csv or ndjson)")


def _encode(df, fmt):
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"the function returned {type(df).__name__}, not a pandas DataFrame")
    if fmt == "arrow":
        import pyarrow as pa

        table = pa.Table.from_pandas(df, preserve_index=False)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    return df.to_json(orient="records", lines=True, double_precision=15).encode()


def _send(out, kind, payload):
    out.write(struct.pack(">I", len(payload) + 1) + kind + payload)
    out.flush()


def _table_in(payload):
    import pyarrow as pa

    return pa.ipc.open_stream(payload).read_all()


def _table_out(table):
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"the function returned {type(table).__name__}, not a pyarrow Table")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def serve_arrow(fn):
    """Answer streamprep's frames with fn(pyarrow.Table) -> pyarrow.Table until stdin closes:
    no pandas DataFrame is made (format = "arrow" only), for code that works on Arrow
    (pyarrow.compute, polars.from_arrow, ...); a DataFrame costs about 50 us a column each way."""
    _loop(fn, _table_in, _table_out)


def serve(fn, format=None):
    """Answer streamprep's frames with fn(DataFrame) -> DataFrame until stdin closes."""
    fmt = format or os.environ.get("STREAMPREP_FORMAT", "arrow")
    _loop(fn, lambda p: _decode(p, fmt), lambda df: _encode(df, fmt))


def _loop(fn, decode, encode):
    stdin = sys.stdin.buffer
    out = sys.stdout.buffer
    # prints of the user's code go to stderr: stdout carries frames only
    sys.stdout = sys.stderr
    while True:
        head = _read_exact(stdin, 4)
        if head is None:
            return
        (n,) = struct.unpack(">I", head)
        body = _read_exact(stdin, n)
        if body is None:
            return
        kind, payload = body[:1], body[1:]
        if kind != b"D":
            _send(out, b"E", f"unknown frame kind {kind!r}".encode())
            continue
        try:
            result = encode(fn(decode(payload)))
        except Exception:
            _send(out, b"E", traceback.format_exc().encode())
            continue
        _send(out, b"D", result)


if __name__ == "__main__":
    # the identity: python3 streamprep_step.py (through a DataFrame), or with the argument
    # --arrow, through a pyarrow Table
    if sys.argv[1:] == ["--arrow"]:
        serve_arrow(lambda table: table)
    else:
        serve(lambda df: df)
