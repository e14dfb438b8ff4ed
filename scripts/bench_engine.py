#!/usr/bin/env python3
"""Engine speed and memory, side by side in one run, on identical weights.

A random-weights CLIP of the full ViT-L/14 size (no hub here; speed does not depend on the values) plus the
real GeoCLIP weights and the full 100K gallery. Each side runs in its own child process so that its peak RSS
is its own:
  bare      CLIPVisionModelWithProjection forward alone (the floor for any GeoCLIP implementation)
  ours      GeoClipEngine.predict_images (gallery embeddings from the cache, built once beforehand)
  official  geoclip.GeoCLIP.predict (re-encodes the 100K gallery on every call)
Goals: ours >= 10x faster per image than official with identical top-k, within 1.2x of bare, peak RSS <= 2.5 GB.

--precision fp32,bf16,auto (issue 22) instead compares the engine per precision, one child process per precision
and round (its own peak RSS), rounds interleaved (fp32, bf16, auto, fp32, ...), medians: per photo end to end at
batch 8 (12 MP JPEGs, decode included), one text query, 32 text queries, the 100K gallery's encoding, and the
fidelity of each against fp32 on the same inputs (min cosine of the GeoCLIP embeddings, identical top-5, top
place's probability). The CPU's flags come first: every figure belongs to that CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _photos(folder: Path, n: int) -> list:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"bench_{i}.jpg"
        if not p.exists():
            rng = np.random.default_rng(i)
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(str(p))
    return paths


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def phase_bare(clip: str, photos: list, repeats: int) -> dict:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    from geoclip_qgis.core.model.image_encoder import quiet_transformers

    quiet_transformers()
    model = CLIPVisionModelWithProjection.from_pretrained(clip).eval()
    proc = CLIPImageProcessorPil.from_pretrained(clip)
    with torch.inference_mode():
        model(pixel_values=proc(images=[Image.open(photos[0]).convert("RGB")], return_tensors="pt")["pixel_values"])
        times = []
        for _ in range(repeats):
            for p in photos[:2]:
                t0 = time.perf_counter()
                px = proc(images=[Image.open(p).convert("RGB")], return_tensors="pt")["pixel_values"]
                model(pixel_values=px)
                times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        px = proc(images=[Image.open(p).convert("RGB") for p in photos], return_tensors="pt")["pixel_values"]
        model(pixel_values=px)
        batch = time.perf_counter() - t0
    return {"per_image_s": min(times), "batch_s": batch, "peak_rss_mb": _peak_rss_mb()}


def phase_ours(clip: str, photos: list, repeats: int, cache: str) -> dict:
    from geoclip_qgis.core.model.engine import GeoClipEngine

    t0 = time.perf_counter()
    engine = GeoClipEngine(clip_path=clip, device="cpu", cache_dir=cache)
    engine.gallery()
    _ = engine.image_encoder  # load the vision tower now, outside the timed calls
    load_s = time.perf_counter() - t0
    engine.predict_images(photos[:1], 5)  # warm-up
    times, tops = [], {}
    for _ in range(repeats):
        for p in photos[:2]:
            t0 = time.perf_counter()
            res = engine.predict_images([p], 5)[0]
            times.append(time.perf_counter() - t0)
            tops[p] = [[x.lat, x.lon, x.probability] for x in res.predictions]
    t0 = time.perf_counter()
    engine.predict_images(photos, 5)
    batch = time.perf_counter() - t0
    return {"per_image_s": min(times), "batch_s": batch, "load_s": load_s, "peak_rss_mb": _peak_rss_mb(), "top": tops}


def phase_official(clip: str, photos: list) -> dict:
    import torch
    from geoclip import GeoCLIP

    from geoclip_qgis.core.model.image_encoder import quiet_transformers

    quiet_transformers()
    model = GeoCLIP(clip_path=clip).eval()
    times, tops = [], {}
    for p in photos[:2]:
        t0 = time.perf_counter()
        with torch.inference_mode():
            gps, prob = model.predict(p, 5)
        times.append(time.perf_counter() - t0)
        tops[p] = [[float(a), float(b), float(c)] for (a, b), c in zip(gps.tolist(), prob.tolist())]
    return {"per_image_s": min(times), "peak_rss_mb": _peak_rss_mb(), "top": tops}


TEXTS = ["snowy alpine village", "harbour with red roofs", "desert market at noon", "rice terraces in the rain",
         "a tram in a narrow street", "palm beach with turquoise water", "fjord below steep cliffs",
         "mosque with a tall minaret"] * 4


def phase_precision(clip: str, photos: list, repeats: int, precision: str) -> dict:
    """One precision in its own process: timings (best-of-none: every repeat kept for the parent's medians), peak
    RSS, and what it answered (features, top-5) for the parent's fidelity figures."""
    import tempfile

    from geoclip_qgis.core.model.engine import GeoClipEngine

    with tempfile.TemporaryDirectory() as cache:
        engine = GeoClipEngine(clip_path=clip, device="cpu", cache_dir=cache, precision=precision)
        t0 = time.perf_counter()
        engine.gallery()  # encoded into the fresh cache: the location encoder's share of a first start
        gallery_s = time.perf_counter() - t0
        _ = engine.image_encoder, engine.text_encoder
        engine.predict_images(photos[:2], 5)
        engine.predict_text(TEXTS[:2], 5)
        times: dict = {"photo": [], "text1": [], "text32": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = engine.predict_images(photos, 5)
            times["photo"].append((time.perf_counter() - t0) / len(photos))
            t0 = time.perf_counter()
            engine.predict_text(TEXTS[:1], 5)
            times["text1"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.predict_text(TEXTS, 5)
            times["text32"].append((time.perf_counter() - t0) / len(TEXTS))
        feats = engine.embed_images(photos).tolist() + engine.embed_text(TEXTS[:8]).tolist()
        tops = [[[x.lat, x.lon, x.probability] for x in r.predictions] for r in res]
        tops += [[[x.lat, x.lon, x.probability] for x in r.predictions] for r in engine.predict_text(TEXTS[:8], 5)]
        import psutil

        rss_mb = psutil.Process().memory_info().rss / 2**20  # after the runs: what the models hold, not the load's peak
        return {"times": times, "gallery_s": gallery_s, "peak_rss_mb": _peak_rss_mb(), "rss_mb": rss_mb,
                "feats": feats, "top": tops,
                "label": engine.precision.precision + ("" if engine.precision.location_scheme == "fp32"
                                                       else f" + location {engine.precision.location_scheme}"),
                "reason": engine.precision.reason}


def compare_precisions(args) -> int:
    import statistics

    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_gui_latency import make_photos
    from bench_precision import cpu_header, min_cosine

    print(cpu_header(), flush=True)
    folder = ROOT / ".cache" / f"bench-photos-{args.size}"
    folder.mkdir(parents=True, exist_ok=True)
    make_photos(folder, args.n_photos, args.size)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")
    runs: dict = {p: [] for p in precisions}
    for r in range(args.rounds):
        for prec in precisions:
            runs[prec].append(_child("precision", args, ["--precision", prec]))
            print(f"   round {r + 1}: {prec} done ({runs[prec][-1]['label']})", flush=True)
    ref = runs["fp32"][0]
    a = torch.tensor(ref["feats"])
    print(f"\nengine per precision: {args.n_photos} photos of {args.size} (JPEG, decode included) per batch; "
          f"{args.rounds} rounds x {args.repeats} repeats interleaved across precisions, medians; fidelity against "
          f"fp32 on the same {args.n_photos} photos and 8 text queries")
    print(f"   {'precision':26s} {'per photo':>10s} {'vs fp32':>7s} {'1 text':>8s} {'vs fp32':>7s} {'32 texts':>9s} "
          f"{'vs fp32':>7s} {'gallery':>8s} {'vs fp32':>7s} {'peak RSS':>9s} {'RSS after':>9s} {'min cos':>9s} "
          f"{'top-5 same':>10s} "
          f"{'top-1 p rel':>11s}")
    kinds = ("photo", "text1", "text32")
    med = {p: {k: statistics.median(t for run in runs[p] for t in run["times"][k]) for k in kinds} for p in precisions}
    for prec in precisions:
        m, base = med[prec], med["fp32"]
        gal = statistics.median(run["gallery_s"] for run in runs[prec])
        gal0 = statistics.median(run["gallery_s"] for run in runs["fp32"])
        got = runs[prec][0]
        cos = min_cosine(torch.tensor(got["feats"]), a)
        same = sum({(round(x[0], 4), round(x[1], 4)) for x in ta} == {(round(y[0], 4), round(y[1], 4)) for y in tb}
                   for ta, tb in zip(ref["top"], got["top"])) / len(ref["top"])
        rel = max(abs(tb[0][2] - ta[0][2]) / ta[0][2] for ta, tb in zip(ref["top"], got["top"]))
        rss = max(run["peak_rss_mb"] for run in runs[prec]) / 1024
        after = max(run["rss_mb"] for run in runs[prec]) / 1024
        name = f"{prec} ({got['label']})"
        print(f"   {name:26s} {1000 * m['photo']:8.0f}ms {base['photo'] / m['photo']:6.2f}x "
              f"{1000 * m['text1']:6.0f}ms {base['text1'] / m['text1']:6.2f}x {1000 * m['text32']:7.0f}ms "
              f"{base['text32'] / m['text32']:6.2f}x {gal:7.1f}s {gal0 / gal:6.2f}x {rss:7.2f}GiB {after:7.2f}GiB "
              f"{cos:9.6f} {100 * same:9.0f}% {rel:11.2e}")
    for prec in precisions:
        print(f"   {prec}: {runs[prec][0]['reason']}")
    return 0


def _child(phase: str, args, extra=()) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--clip", args.clip, "--photos", str(args.n_photos),
           "--repeats", str(args.repeats), "--cache", args.cache, "--size", args.size, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"phase {phase} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(ROOT / ".cache" / "bench-clip-vit-l-14"))
    ap.add_argument("--photos", dest="n_photos", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "gallery"))
    ap.add_argument("--phase", choices=["bare", "ours", "official", "precision"])
    ap.add_argument("--precision", help="compare these precisions side by side, e.g. fp32,bf16,auto (issue 22)")
    ap.add_argument("--rounds", type=int, default=2, help="with --precision: interleaved rounds (child processes)")
    ap.add_argument("--size", default="4000x3000", help="with --precision: the photos' size (12 MP by default)")
    args = ap.parse_args()
    if args.precision and args.phase == "precision":  # the parent made the photos
        folder = ROOT / ".cache" / f"bench-photos-{args.size}"
        photos = [str(folder / f"photo_{i:02d}.jpg") for i in range(args.n_photos)]
        print(json.dumps(phase_precision(args.clip, photos, args.repeats, args.precision)))
        return 0
    if args.precision:
        return compare_precisions(args)
    photos = _photos(ROOT / ".cache" / "bench-photos", args.n_photos)
    if args.phase:
        fn = {"bare": lambda: phase_bare(args.clip, photos, args.repeats),
              "ours": lambda: phase_ours(args.clip, photos, args.repeats, args.cache),
              "official": lambda: phase_official(args.clip, photos)}[args.phase]
        print(json.dumps(fn()))
        return 0
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: the random CLIP fixture

    from support.random_clip import make_random_clip

    t0 = time.perf_counter()
    make_random_clip(args.clip, "vit-l-14")
    print(f"random ViT-L/14 CLIP at {args.clip} ({time.perf_counter() - t0:.0f} s to make or find)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    bare = _child("bare", args)
    ours = _child("ours", args)
    official = _child("official", args)
    same = all(
        [round(a, 4), round(b, 4)] == [round(c, 4), round(d, 4)]
        for p in official["top"] for (a, b, _), (c, d, _) in zip(official["top"][p], ours["top"][p])
    )
    dprob = max(abs(x[2] - y[2]) for p in official["top"] for x, y in zip(official["top"][p], ours["top"][p]))
    n = args.n_photos
    print(f"{'':10s} {'per image':>10s} {'batch of ' + str(n):>12s} {'peak RSS':>10s}")
    print(f"{'bare ViT':10s} {bare['per_image_s']:9.2f}s {bare['batch_s']:11.2f}s {bare['peak_rss_mb']:8.0f}MB")
    print(f"{'ours':10s} {ours['per_image_s']:9.2f}s {ours['batch_s']:11.2f}s {ours['peak_rss_mb']:8.0f}MB")
    print(f"{'official':10s} {official['per_image_s']:9.2f}s {official['per_image_s'] * n:10.2f}s* "
          f"{official['peak_rss_mb']:8.0f}MB   (*{n} calls, one image each: it has no batch API)")
    print(f"speed-up per image vs official: {official['per_image_s'] / ours['per_image_s']:.1f}x (goal >= 10x)")
    print(f"speed-up on the batch vs official: {official['per_image_s'] * n / ours['batch_s']:.1f}x")
    print(f"ours / bare forward per image: {ours['per_image_s'] / bare['per_image_s']:.3f} (goal <= 1.2); "
          f"batch: {ours['batch_s'] / bare['batch_s']:.3f}")
    print(f"ours peak RSS: {ours['peak_rss_mb'] / 1024:.2f} GB (goal <= 2.5 GB); engine load {ours['load_s']:.1f} s")
    print(f"top-5 identical to official: {same}; max |prob difference|: {dprob:.2e}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
