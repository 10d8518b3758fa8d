"""Seed 004's receiver: listens, takes frames (each a CSV chunk: the header first) until the
EOT frame, and writes the rows without the header, as the old pipeline writes them.
`python3 receive.py PORT OUT.csv` (prints "listening" once it listens)."""

import socket
import struct
import sys

port, out = int(sys.argv[1]), sys.argv[2]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


header_seen = False
with open(out, "wb") as f:
    while True:
        (n,) = struct.unpack(">I", read_exact(4))
        body = read_exact(n)
        if body == b"\x04":
            break
        if not header_seen:
            # the sink's first frame is the CSV header line
            header_seen = True
            body = body.split(b"\n", 1)[1] if b"\n" in body else b""
        f.write(body)
