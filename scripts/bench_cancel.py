#!/usr/bin/env python3
"""How long Cancel takes, per job kind, through the real worker protocol (what the plugin's Cancel button sends).

For each job: send the request, wait until the worker reports it is working (its first progress message past the
start), wait a little more so the job is deep in its loop, send {"op": "cancel"}, and time until the worker's
answer. Repeats are interleaved across job kinds (A B C … A B C …) and the median is printed, because this machine
is shared. Uses the tiny random CLIP (no real backbone here) and the real GeoCLIP location encoder and gallery.

    .venv/bin/python scripts/bench_cancel.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def jobs(clip: str, tmp: Path) -> dict:
    eng = {"clip_path": clip, "device": "cpu", "cache_dir": str(tmp / "cache")}
    world = [-180, -85, 180, 85]
    return {
        "likelihood (dense scoring)": ("likelihood", {"text": "a harbour", "engine": eng, "extent": world,
                                                      "resolution": 0.05, "method": "dense",
                                                      "out": str(tmp / "l.tif")}),
        "places like here (similarity)": ("similar", {"lat": 48.8, "lon": 2.3, "engine": eng, "extent": world,
                                                      "resolution": 0.05, "out": str(tmp / "s.tif")}),
        "features (PCA)": ("features", {"pca": True, "engine": eng, "extent": world, "resolution": 0.05,
                                        "out": str(tmp / "f.tif")}),
        "field build": ("build_field", {"engine": eng, "resolution": 0.2}),
        "gallery encoding": ("geolocate_text", {"queries": ["a harbour"], "engine": {
            **eng, "gallery": "fibonacci:1000000"}}),  # under the 1M-point memory budget
        "text queries (5,000)": ("geolocate_text", {"queries": [f"a harbour number {i}" for i in range(5000)],
                                                    "engine": eng}),
        "photos (200)": ("geolocate_images", {"paths": [str(p) for p in sorted((tmp / "photos").glob("*.jpg"))],
                                              "engine": eng, "top_k": 1}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0, help="seconds of work before the cancel is sent")
    args = ap.parse_args()
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: the random CLIP fixture

    from support.random_clip import make_random_clip

    tmp = Path(tempfile.mkdtemp(prefix="geoclip-cancel-"))
    clip = str(make_random_clip(tmp / "clip", "tiny", seed=0))
    (tmp / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(200):
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(tmp / "photos" / f"{i:03d}.jpg")
    proc = subprocess.Popen([sys.executable, "-m", "geoclip_qgis.core.service.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert json.loads(proc.stdout.readline())["type"] == "ready"
    rid = 0

    import queue
    import threading

    inbox: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [inbox.put(json.loads(line)) for line in proc.stdout], daemon=True).start()

    def run(op: str, params: dict, cancel: bool) -> float:
        """Seconds from the cancel to the worker's answer (the cancel goes `settle` s after the first progress
        message, or after the request when the job reports none); NaN when the job finished first."""
        nonlocal rid
        rid += 1
        proc.stdin.write(json.dumps({"id": rid, "op": op, "params": params}) + "\n")
        proc.stdin.flush()
        start = time.monotonic()
        sent_at = None
        while True:
            try:
                msg = inbox.get(timeout=0.05)
            except queue.Empty:
                msg = {}
            if msg.get("id") == rid and msg.get("type") in ("result", "error"):
                return float("nan") if sent_at is None else time.monotonic() - sent_at
            if msg.get("id") == rid and msg.get("type") == "progress" and msg.get("done", 0) == 0:
                start = time.monotonic()  # "loading the model": the job's own work starts now
            if cancel and sent_at is None and time.monotonic() - start >= args.settle:
                proc.stdin.write(json.dumps({"op": "cancel", "target": rid}) + "\n")
                proc.stdin.flush()
                sent_at = time.monotonic()

    table = jobs(clip, tmp)
    run("geolocate_text", {"queries": ["warm up"], "engine": table["photos (200)"][1]["engine"]}, False)
    times: dict = {k: [] for k in table}
    for _ in range(args.repeats):
        for name, (op, params) in table.items():
            times[name].append(run(op, params, True))
    proc.stdin.close()
    proc.wait(timeout=30)
    print(f"{'job':34s} {'cancel → answer, median (s)':>28s}   runs")
    for name, ts in times.items():
        ok = [t for t in ts if t == t]
        med = f"{statistics.median(ok):.2f}" if ok else "finished first"
        print(f"{name:34s} {med:>28s}   {', '.join(f'{t:.2f}' for t in ts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
