"""History jobs under load (issue 19): 10 users each start a day-long history job at once
(different columns, so none is shared), while a load generator asks the project list as fast
as one client can; prints the list's latency percentiles during the jobs, the jobs' times and
the server's peak resident memory. Usage: history_load.py ADDR PG_URL SERVE_PID"""
import json
import sys
import threading
import time
import urllib.request

addr, pg, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = f"http://{addr}"


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return r.status, r.headers, json.loads(r.read() or b"null")


_, h, who = call("POST", "/api/v1/login", {"name": "admin", "password": "the admin's long password"})
cookie = h["Set-Cookie"].split(";")[0]
auth = {"Cookie": cookie, "X-CSRF-Token": who["csrf"], "Origin": base}
# the first partial result: one job of 1-second means over the day, polled every 10 ms
t0 = time.perf_counter()
_, _, job = call("POST", "/api/v1/history/jobs", {
    "source": f"{pg}?table=cbpm3", "from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z",
    "columns": ["current_6"], "interval": "1s"}, auth)
first = None
while True:
    _, _, j = call("GET", f"/api/v1/history/jobs/{job['id']}?from_row=0", headers={"Cookie": cookie})
    if first is None and j["total_rows"] > 0:
        first = (time.perf_counter() - t0) * 1000
    if j["state"] not in ("waiting", "running"):
        break
    time.sleep(0.01)
print(f"one day-long job of 1 s means: first rows after {first:.0f} ms, done after {(time.perf_counter() - t0):.2f} s, "
      f"{j['total_rows']} rows")
columns = [[f"bpm{b}_a", f"bpm{b}_b", f"bpm{b}_c", f"bpm{b}_d"] for b in range(1, 7)] + \
          [[f"current_{c}"] for c in range(1, 5)]
ids = []
started = time.perf_counter()
for cols in columns[:10]:
    _, _, job = call("POST", "/api/v1/history/jobs", {
        "source": f"{pg}?table=cbpm3", "from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z",
        "columns": cols, "interval": "1s", "points": 2000}, auth)
    ids.append(job["id"])
lat, peak_kb, done = [], 0, {}
stop = threading.Event()


def watch_memory():
    global peak_kb
    while not stop.is_set():
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)


threading.Thread(target=watch_memory, daemon=True).start()
while len(done) < len(ids):
    t = time.perf_counter()
    call("GET", "/api/v1/projects", headers={"Cookie": cookie})
    lat.append((time.perf_counter() - t) * 1000)
    if len(lat) % 20 == 0:
        for i in ids:
            if i not in done:
                _, _, j = call("GET", f"/api/v1/history/jobs/{i}", headers={"Cookie": cookie})
                if j["state"] not in ("waiting", "running"):
                    done[i] = (j["state"], time.perf_counter() - started, len(j.get("rows") or []))
stop.set()
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"project list during 10 day-long jobs: {len(lat)} requests, p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1]:.2f} ms")
print(f"jobs: {sorted(set(s for s, _, _ in done.values()))}, all done after {max(t for _, t, _ in done.values()):.1f} s, "
      f"first after {min(t for _, t, _ in done.values()):.1f} s, rows each: {sorted(set(n for _, _, n in done.values()))}")
print(f"serve peak resident memory: {peak_kb / 1024:.0f} MB")
