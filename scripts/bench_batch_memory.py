#!/usr/bin/env python3
"""A 10,000-photo batch through the real CLI code path, sampling RSS as it goes: memory must stay flat.

Small generated photos and a tiny random CLIP keep it to a few minutes on a CPU; what is measured is the batch
machinery (decoding, batching, streaming rows to CSV and GeoPackage), whose memory must not grow with the count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def make_photos(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for i in range(n):
        p = folder / f"p{i:05d}.jpg"
        if not p.exists():
            Image.fromarray(np.roll(base, i % 64, axis=1)).save(p, quality=80)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--work", default=str(ROOT / ".cache" / "batch-memory"))
    args = ap.parse_args()
    from geoclip_qgis.core.service.cli import main as cli_main
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: the random CLIP fixture
    from support.random_clip import make_random_clip

    work = Path(args.work)
    folder = work / f"photos-{args.photos}"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    make_photos(folder, args.photos)
    clip = make_random_clip(work / "tiny-clip", "tiny")
    print(f"{args.photos:,} photos ready in {time.perf_counter() - t0:.0f} s; RSS before the batch {rss_mb():.0f} MB")
    out = Path(tempfile.mkdtemp()) / "batch.csv"
    samples = []
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            rows = 0
            if out.exists():
                with open(out, "rb") as fh:
                    rows = max(0, sum(1 for _ in fh) - 1)
            samples.append((time.perf_counter(), rows, rss_mb()))
            done.wait(1.0)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    rc = cli_main(["photos", str(folder), "-o", str(out), "-o", str(out.with_suffix(".gpkg")), "--top-k", "3",
                   "--clip-path", str(clip), "--device", "cpu", "--gallery", "fibonacci:2000", "--batch-size", "16",
                   "--cache-dir", str(work / "cache")])
    done.set()
    thread.join()
    elapsed = time.perf_counter() - t0
    print(f"\n{'photos done':>12} {'RSS MB':>8}")
    step = max(1, len(samples) // 12)
    for _, rows, rss in samples[::step]:
        print(f"{rows // 3:12,d} {rss:8.0f}")
    after_first = [rss for _, rows, rss in samples if rows // 3 >= args.photos // 10]
    peak = max(r for _, _, r in samples)
    growth = (max(after_first) - min(after_first)) if after_first else float("nan")
    print(f"\n{args.photos:,} photos in {elapsed:.0f} s (exit {rc}); peak RSS {peak:.0f} MB; RSS range after the "
          f"first 10% of the batch: {growth:.0f} MB (flat = bounded memory)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
