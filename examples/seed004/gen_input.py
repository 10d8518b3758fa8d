"""The classifier's input: `python3 gen_input.py ROWS OUT.csv` (an index column, then sensor
fields; deterministic)."""

import random
import sys

rows, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(4)
with open(out, "w") as f:
    f.write("id,machine,temperature,pressure,vibration,operator\n")
    for i in range(rows):
        f.write(
            f"{i},m{rng.randrange(20):02d},{rng.uniform(15, 95):.2f},"
            f"{rng.uniform(0.8, 1.2):.4f},{rng.expovariate(3):.5f},op{rng.randrange(7)}\n"
        )
