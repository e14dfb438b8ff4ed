#!/usr/bin/env python3
"""Issue 22 point 4, and the end-to-end figure: a batch of 12 MP photos through the plugin's real path (an
EngineTask on QGIS's task manager -> the worker process -> the engine), per precision, measuring side by side

- the time per photo end to end at batch 8 (JPEG decode, CLIP ViT-L/14, MLP, gallery, places, names);
- the worker's peak RSS (psutil, sampled every 50 ms);
- the QGIS event loop's latency while the batch runs: a 10 ms QTimer's lateness (median, p95, max), against the
  same timer while nothing runs (the baseline).

One worker per precision stays warm (two EngineClients), and the batches are interleaved A B A B, medians, because
the machine is shared. A random-init full-size ViT-L/14 (tests/support/random_clip.py: the real architecture and
cost; the real weights cannot be had here) and the real GeoCLIP MLP and 100K gallery.

    QT_QPA_PLATFORM=offscreen python scripts/bench_gui_latency.py [--photos 8] [--repeats 2]
        [--precisions fp32,bf16] [--size 4000x3000]

The CPU's flags are printed first: every figure belongs to that CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["GEOCLIP_PYRAMID"] = "0"  # no background world fields: the batch alone is measured
os.environ.pop("GEOCLIP_PRECISION", None)  # each worker gets its precision from the request


def banner() -> None:
    """The CPU's name, flags and capabilities first (bench_precision.cpu_header, every benchmark's header)."""
    from bench_precision import cpu_header

    print(cpu_header(), flush=True)


def make_photos(folder: Path, n: int, size: str) -> list:
    import numpy as np
    from PIL import Image

    w, h = (int(v) for v in size.split("x"))
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        small = rng.integers(0, 255, (h // 16, w // 16, 3)).astype("uint8")  # texture a JPEG cannot shrink away
        img = Image.fromarray(small, "RGB").resize((w, h), Image.BILINEAR)
        path = folder / f"photo_{i:02d}.jpg"
        img.save(path, quality=92)
        out.append(str(path))
    return out


class RssPeak:
    """The peak resident memory of one process (the worker), sampled every 50 ms while armed."""

    def __init__(self, pid: int):
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:
                return

    def __enter__(self) -> RssPeak:
        self.peak = self.proc.memory_info().rss
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def lateness_while(until_done, app) -> list:
    """A 10 ms timer's lateness (ms) on QGIS's event loop until `until_done()`."""
    from qgis.PyQt.QtCore import QTimer

    late, last = [], [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - 10.0))
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    while not until_done():
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return late


def summary(late: list) -> str:
    if not late:
        return "no ticks"
    s = sorted(late)
    return f"median {statistics.median(s):5.1f} ms, p95 {s[int(0.95 * (len(s) - 1))]:6.1f} ms, max {s[-1]:6.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--size", default="4000x3000", help="photo size in pixels (12 MP by default)")
    ap.add_argument("--clip", default=str(ROOT / ".cache" / "bench-clip-vit-l-14"))
    args = ap.parse_args()
    banner()

    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from support.random_clip import make_random_clip

    from geoclip_qgis.client.engine_client import EngineClient, canonical_engine_options
    from geoclip_qgis.gui.tasks import EngineTask

    clip = Path(args.clip)
    if not clip.is_dir():
        make_random_clip(clip, "vit-l-14")
    work = Path(tempfile.mkdtemp(prefix="geoclip-bench-gui-"))
    photos = make_photos(work, args.photos, args.size)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    clients = {p: EngineClient(python=sys.executable) for p in precisions}
    engines = {p: canonical_engine_options({"clip_path": str(clip), "device": "cpu", "precision": p,
                                            "cache_dir": str(ROOT / ".cache" / "gallery")}) for p in precisions}

    def run(p: str) -> dict:
        task = EngineTask(f"bench {p}", "geolocate_images", {"paths": photos, "top_k": 5, "engine": engines[p]},
                          client=clients[p])
        QgsApplication.taskManager().addTask(task)
        t0 = time.perf_counter()
        late = lateness_while(lambda: task.ended is not None or task.status() in (task.Complete, task.Terminated),
                              app)
        seconds = time.perf_counter() - t0
        if task.error or not task.result:
            raise SystemExit(f"{p}: the batch failed: {task.error}")
        return {"seconds": seconds, "late": late, "ran_on": task.result.get("ran_on")}

    print(f"{len(photos)} photos of {args.size} px; {args.repeats} interleaved repeats of each precision after a "
          "warm-up batch (model load) per precision")
    idle_until = time.perf_counter() + 3.0
    idle = lateness_while(lambda: time.perf_counter() > idle_until, app)
    for p in precisions:  # warm-up: the model loads, the gallery is read
        run(p)
        print(f"warm: {p} ran on {clients[p].proc.pid} ({clients[p].alive})")
    times = {p: [] for p in precisions}
    lates = {p: [] for p in precisions}
    peaks = {p: 0 for p in precisions}
    ran_on = {}
    for _ in range(args.repeats):
        for p in precisions:
            with RssPeak(clients[p].proc.pid) as rss:
                out = run(p)
            times[p].append(out["seconds"])
            lates[p].extend(out["late"])
            peaks[p] = max(peaks[p], rss.peak)
            ran_on[p] = out["ran_on"]
    base = statistics.median(times[precisions[0]])
    print(f"\nQGIS event loop while idle: {summary(idle)}")
    print(f"\n| precision | per photo, end to end (batch {len(photos)}) | speed vs {precisions[0]} | worker peak RSS "
          "| event-loop lateness during the batch | what the worker said |")
    print("|---|---|---|---|---|---|")
    for p in precisions:
        med = statistics.median(times[p])
        said = ran_on.get(p) or {}
        print(f"| {p} | {1000 * med / len(photos):,.0f} ms | {base / med:.2f}x | {peaks[p] / 2**30:.2f} GiB | "
              f"{summary(lates[p])} | {said.get('precision')}: {said.get('precision_reason')} |")
    for c in clients.values():
        c.shutdown()
    app.exitQgis()


if __name__ == "__main__":
    main()
