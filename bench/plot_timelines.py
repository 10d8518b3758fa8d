#!/usr/bin/env python3
"""Plot `streamprep run --timeline` CSVs as an SVG (standard library only): row latency and
buffer size over time, one line per run, log scale.
usage: plot_timelines.py OUT.svg LABEL=FILE.csv ..."""
import csv
import math
import sys

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def panel(out, x0, y0, w, h, runs, key, title, unit):
    pts = [(float(r["seconds"]), max(float(r[key]), 1e-3)) for _, rows in runs for r in rows]
    if not pts:
        return
    tmax = max(p[0] for p in pts)
    lo = math.floor(math.log10(min(p[1] for p in pts)))
    hi = math.ceil(math.log10(max(p[1] for p in pts)))
    hi = max(hi, lo + 1)
    sx = lambda t: x0 + t / tmax * w
    sy = lambda v: y0 + h - (math.log10(v) - lo) / (hi - lo) * h
    out.append(f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" font-size="16">{title}</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="black"/>')
    for e in range(lo, hi + 1):
        y = sy(10 ** e)
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + w}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end" font-size="11">{10 ** e:g}</text>')
    step = max(1, round(tmax / 10))
    t = 0
    while t <= tmax:
        out.append(f'<text x="{sx(t)}" y="{y0 + h + 16}" text-anchor="middle" font-size="11">{t}</text>')
        t += step
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle" font-size="12">seconds</text>')
    out.append(f'<text x="{x0 - 48}" y="{y0 + h / 2}" font-size="12" transform="rotate(-90 {x0 - 48} {y0 + h / 2})" text-anchor="middle">{unit}</text>')
    for i, (label, rows) in enumerate(runs):
        c = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(float(r['seconds'])):.1f},{sy(max(float(r[key]), 1e-3)):.1f}" for r in rows)
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        out.append(f'<line x1="{x0 + 10}" y1="{y0 + 14 + 16 * i}" x2="{x0 + 30}" y2="{y0 + 14 + 16 * i}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{x0 + 34}" y="{y0 + 18 + 16 * i}" font-size="12">{label}</text>')


def main():
    target = sys.argv[1]
    runs = []
    for arg in sys.argv[2:]:
        label, path = arg.rsplit("=", 1)
        with open(path) as f:
            runs.append((label, list(csv.DictReader(f))))
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="900" font-family="sans-serif">',
           '<rect width="1200" height="900" fill="white"/>']
    panel(out, 90, 50, 1060, 220, runs, "rows_per_s", "arrival rate (rows read a second)", "rows/s")
    panel(out, 90, 340, 1060, 220, runs, "latency_ms", "mean row latency of each second", "ms")
    panel(out, 90, 630, 1060, 220, runs, "buffer", "buffer size b", "rows a message")
    out.append("</svg>")
    with open(target, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
