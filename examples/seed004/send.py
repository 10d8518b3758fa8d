"""Seed 004's sender: every line of the CSV (the header first) as a frame (4-byte big-endian
length, then the line), then a lone EOT (0x04) frame. `python3 send.py IN.csv HOST PORT`"""

import socket
import struct
import sys
import time

filename, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
EOT = b"\x04"
deadline = time.time() + 30
while True:
    try:
        sock = socket.create_connection((host, port))
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.05)
try:
    with open(filename, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            sock.sendall(struct.pack(">I", len(line)) + line)
finally:
    sock.sendall(struct.pack(">I", len(EOT)) + EOT)
    sock.close()
