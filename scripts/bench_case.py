#!/usr/bin/env python3
"""What an analyst's case adds to a batch's time on the CPU (issue 25: <= 10 %), each part in its own function.

bench_hints_constraints(): a batch of photos through the engine (iter_predict_images, the path of the CLI, the
worker and Ray) without (A) and with (B) a hint and a constraint -- "Chile; Argentina; within 300 km of 45.76, 4.84"
and a hint of weight 1 -- built anew per request as the worker does (the area parsed, its gallery mask computed). The
first request of a process also loads the boundaries (once per process, ~1 s) and encodes the hint (once per text):
that one-off cost is printed apart.

bench_trip()  a batch of photos with and without the trip (core/answers/trip.py), on CPU, through the engine as the
              CLI's `photos` runs it: A = the batch (iter_predict_images), B = the same batch collecting each photo's
              feature and answering the trip at its end (TripCollector.solve: two more passes over the gallery, the
              lattice, forward-backward). Interleaved A B A B ..., medians; the goal is B / A <= 1.10. Photos are
              640 x 480 JPEGs with EXIF times 10 minutes apart (one with GPS, one without a time), the real GeoCLIP
              weights and 100K gallery, and a random CLIP of ViT-L/14 size (speed does not depend on the weights).

A random full-size ViT-L/14 (tests/support/random_clip.py: the real architecture, the real cost), the real GeoCLIP
weights and 100K gallery. Repeats are interleaved A B A B so a neighbour's load hits both alike; medians and B/A.

    python scripts/bench_case.py [--only hints,trip] [--photos 8] [--repeats 3] [--clip vit-l-14|tiny]

The CPU's flags are printed first: every figure belongs to that CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
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


def _trip_photos(folder: Path, n: int) -> list:
    """n photos of one trip, 10 minutes apart (+02:00); photo 3 carries GPS (Lyon), the last has no time."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    t0 = datetime(2026, 5, 1, 9, 0)
    paths = []
    for i in range(n):
        path = folder / f"trip_{i:03d}.jpg"
        if not path.is_file():
            rng = np.random.default_rng(i)
            arr = (rng.integers(0, 255, (480, 640, 3)) * 0.3 + np.linspace(0, 180, 640)[None, :, None])
            exif = Image.Exif()
            if i < n - 1:
                sub = exif.get_ifd(0x8769)
                sub[0x9003] = (t0 + timedelta(minutes=10 * i)).strftime("%Y:%m:%d %H:%M:%S")
                sub[0x9011] = "+02:00"
            if i == 3:
                exif.get_ifd(0x8825).update({1: "N", 2: (45.76, 0.0, 0.0), 3: "E", 4: (4.84, 0.0, 0.0)})
            Image.fromarray(arr.astype("uint8"), "RGB").save(path, quality=90, exif=exif)
        paths.append(str(path))
    return paths


def bench_trip(photos: int = 16, repeats: int = 3, clip_path: str = "", precision: str = "fp32") -> float:
    """Prints A (batch), B (batch + trip), their medians and B / A; returns the ratio."""
    import torch

    from geoclip_qgis.core.answers.trip import TripCollector, TripOptions
    from geoclip_qgis.core.model.engine import GeoClipEngine

    clip = clip_path or str(ROOT / ".cache" / "bench-clip-vit-l-14")
    if not (Path(clip) / "model.safetensors").is_file():
        from support.random_clip import make_random_clip

        make_random_clip(clip, "vit-l-14")
    paths = _trip_photos(ROOT / ".cache" / "bench-trip-photos", photos)
    engine = GeoClipEngine(clip_path=clip, device="cpu", precision=precision, batch_size=8)
    engine.prepare("image", 5)
    print(f"trip: {photos} photos, batch 8, precision {engine.precision.precision}, gallery "
          f"{len(engine.gallery()):,} points, clip {clip}")
    trip = TripOptions.make(True)

    def batch() -> float:
        t = time.perf_counter()
        for _ in engine.iter_predict_images(paths, 5):
            pass
        return time.perf_counter() - t

    def batch_trip() -> tuple:
        t = time.perf_counter()
        collector = TripCollector(engine, engine.answers, trip)
        for res in engine.iter_predict_images(paths, 5, features=collector.features):
            collector.add(res)
        s, c = time.perf_counter(), time.process_time()
        answer = collector.solve()
        solve, solve_cpu = time.perf_counter() - s, time.process_time() - c
        assert len(answer.track) == photos - 1, answer.summary
        return time.perf_counter() - t, solve, solve_cpu, answer.summary["lattice"]

    batch()  # warm: the model, the gallery, the OS caches
    a, b, solves, cpus = [], [], [], []
    for r in range(repeats):
        a.append(batch())
        tb, solve, cpu, lattice = batch_trip()
        b.append(tb)
        solves.append(solve)
        cpus.append(cpu)
        print(f"  repeat {r + 1}: A {a[-1]:.2f} s   B {tb:.2f} s (the trip's solve {solve:.2f} s wall, "
              f"{cpu:.2f} s CPU, lattice {lattice} points)", flush=True)
    worst = _worst_solve(photos)
    ma, mb = statistics.median(a), statistics.median(b)
    ratio = mb / ma
    print(f"trip: A median {ma:.2f} s ({ma / photos:.2f} s/photo), B median {mb:.2f} s; B / A = {ratio:.3f} "
          f"(goal <= 1.10); the solve alone: median {statistics.median(solves):.2f} s wall = "
          f"{statistics.median(solves) / ma:.1%} of A; torch threads {torch.get_num_threads()}")
    print(f"trip: the chain at its largest lattice ({worst['lattice']} points, {photos} photos; a random CLIP puts "
          f"every photo's mass on the same points, so the runs above have a small one): distances "
          f"{worst['distances']:.2f} s + forward-backward {worst['chain']:.2f} s = "
          f"{(worst['distances'] + worst['chain']) / ma:.1%} of A; B / A would be <= "
          f"{(mb + worst['distances'] + worst['chain']) / ma:.3f}")
    return ratio


def _worst_solve(photos: int, repeats: int = 3) -> dict:
    """The chain's cost where it is largest: MAX_LATTICE gallery-like points, `photos` photos 10 minutes apart,
    random emissions (the cost does not depend on their values). Medians of `repeats`."""
    import numpy as np

    from geoclip_qgis.core.answers import trip

    rng = np.random.default_rng(0)
    n = trip.MAX_LATTICE + trip.ANCHOR_NEIGHBOURS
    pts = np.column_stack([np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)])
    emission = rng.random((photos, n)) ** 8
    reach = trip.reach_km(1 / 6, trip.DEFAULT_SPEED_KMH, trip.DEFAULT_SLACK_KM)
    dist_t, chain_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        dist = trip.haversine_matrix(pts, pts)
        dist_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        trip.forward_backward(emission, dist, [reach] * (photos - 1))
        chain_t.append(time.perf_counter() - t)
    return {"lattice": n, "distances": statistics.median(dist_t), "chain": statistics.median(chain_t)}


def main(argv=None) -> int:
    from bench_precision import cpu_header

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only these parts (comma-separated: hints, trip)")
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clip", default="vit-l-14", choices=("vit-l-14", "tiny"))
    ap.add_argument("--clip-path", default="", help="the trip's CLIP folder (default: the --clip one)")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args(argv)
    print(cpu_header(), flush=True)
    wanted = [p for p in args.only.split(",") if p] or ["hints", "trip"]
    for name in wanted:
        if name == "hints":
            bench_hints_constraints(args)
        elif name == "trip":
            clip = args.clip_path or str(ROOT / ".cache" / f"bench-clip-{args.clip}")
            bench_trip(args.photos, args.repeats, clip, args.precision)
        else:
            print(f"no part {name!r} here (parts: hints, trip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
