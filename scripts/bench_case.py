#!/usr/bin/env python3
"""What an analyst's case adds to a batch's time on the CPU (issue 25: ≤ 10 %).

bench_hints_constraints: a batch of photos through the engine (iter_predict_images, the path of the CLI, the worker
and Ray) without (A) and with (B) a hint and a constraint — "Chile; Argentina; within 300 km of 45.76, 4.84" and a
hint of weight 1 — built anew per request as the worker does (the area parsed, its gallery mask computed). A random
full-size ViT-L/14 (tests/support/random_clip.py: the real architecture, the real cost) and the real 100K gallery.
Repeats are interleaved A B A B so a neighbour's load hits both alike; medians and the ratio B/A are printed. The
first request of a process also loads the boundaries (once per process, ~1 s) and encodes the hint (once per text):
that one-off cost is printed apart.

    python scripts/bench_case.py [--photos 8] [--repeats 3] [--clip vit-l-14|tiny]
The CPU's flags are printed first: every figure belongs to that CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the random CLIP
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HINT = "snowy mountains and a mining town"
AREA = "Chile; Argentina; within 300 km of 45.76, 4.84"


def _photos(folder: Path, n: int):
    import numpy as np
    from PIL import Image

    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        arr = (rng.integers(0, 255, (480, 640, 3)) * 0.3 + np.linspace(0, 180, 640)[None, :, None]).astype("uint8")
        path = folder / f"case_{i:03d}.jpg"
        Image.fromarray(arr, "RGB").save(path, quality=90)
        out.append(str(path))
    return out


def bench_hints_constraints(args) -> dict:
    """A B A B: the batch alone, then with hint + constraint; returns the medians and the ratio."""
    from support.random_clip import make_random_clip

    from geoclip_qgis.core.answers.options import AnswerOptions
    from geoclip_qgis.core.model.engine import GeoClipEngine

    work = Path(tempfile.mkdtemp(prefix="geoclip-bench-case-"))
    clip = ROOT / ".cache" / f"bench-clip-{args.clip}"
    if not clip.is_dir():
        make_random_clip(clip, args.clip)
    engine = GeoClipEngine(clip_path=str(clip), device="cpu", precision=args.precision, batch_size=args.batch)
    photos = _photos(work, args.photos)
    engine.gallery()

    def plain():
        return list(engine.iter_predict_images(photos, 5, options=AnswerOptions.make()))

    def case():
        opts = AnswerOptions.make(aoi=AREA, hint=HINT, hint_weight=1.0)  # per request, as the worker builds it
        return list(engine.iter_predict_images(photos, 5, options=opts))

    plain()  # warm-up: the towers loaded, the gallery in memory
    t0 = time.perf_counter()
    first = case()
    first_s = time.perf_counter() - t0
    a, b, ca, cb = [], [], [], []
    for _ in range(args.repeats):
        for fn, out, cpu in ((plain, a, ca), (case, b, cb)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            out.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)  # this process's CPU seconds: less swayed by a neighbour's load
    ma, mb = statistics.median(a), statistics.median(b)
    mca, mcb = statistics.median(ca), statistics.median(cb)
    print(f"\nhints + constraints: {args.photos} photos, batch {args.batch}, CLIP {args.clip}, {args.repeats} "
          f"interleaved repeats (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  A photo alone          median {ma:8.2f} s   runs {' '.join(f'{x:.2f}' for x in a)}")
    print(f"  B + hint + constraint  median {mb:8.2f} s   runs {' '.join(f'{x:.2f}' for x in b)}")
    print(f"  CPU time (this process) A median {mca:.2f} s, B median {mcb:.2f} s: ratio {mcb / mca:.3f} "
          f"({100 * (mcb / mca - 1):+.1f} %)")
    print(f"  ratio B/A {mb / ma:.3f} ({100 * (mb / ma - 1):+.1f} %); the first B of this process "
          f"{first_s:.2f} s ({first_s - ma:+.2f} s: boundaries loaded once, hint encoded once)")
    print(f"  e.g. {first[0].source.split('/')[-1]}: {first[0].constraint!r}, hint weight {first[0].hint_weight}, "
          f"outside {first[0].aoi_outside:.3f}")
    return {"a_s": ma, "b_s": mb, "ratio": mb / ma, "cpu_ratio": mcb / mca, "first_b_s": first_s}


def main(argv=None) -> int:
    from bench_precision import cpu_header

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clip", default="vit-l-14", choices=("vit-l-14", "tiny"))
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args(argv)
    print(cpu_header())
    bench_hints_constraints(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
