#!/usr/bin/env python3
"""What a 'why' map costs (issue 25): one photo's saliency (forward + backward through ViT-L/14 and the MLP to the top
place's logit, core/model/saliency.py) against the same photo's forward pass, on this CPU, in fp32.

A random-init full-size ViT-L/14 (tests/support/random_clip.py, 'vit-l-14') has ViT-L/14's cost exactly; the real
GeoCLIP MLP and location encoder are used. Repeats are interleaved (forward, saliency, forward, ...) so a neighbour's
load hits both alike; medians and their ratio are printed (the issue's bound: 3×). The overlay's PNG write is timed
apart. The CPU's flags are printed first: every figure belongs to that CPU.
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
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench_precision import cpu_header  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip-path", default=str(ROOT / ".cache" / "bench-clip-vit-l-14"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args()
    import numpy as np
    import torch
    from PIL import Image
    from support.random_clip import make_random_clip

    from geoclip_qgis.core.model import saliency
    from geoclip_qgis.core.model.engine import GeoClipEngine

    if args.threads:
        torch.set_num_threads(args.threads)
    print(cpu_header())
    t0 = time.perf_counter()
    make_random_clip(args.clip_path, "vit-l-14")
    print(f"random ViT-L/14 at {args.clip_path} ({time.perf_counter() - t0:.0f} s to make or find)")
    with tempfile.TemporaryDirectory() as tmp:
        engine = GeoClipEngine(clip_path=args.clip_path, device="cpu", precision="fp32", gallery="fibonacci:2000",
                               cache_dir=tmp, names=False)
        rng = np.random.default_rng(0)
        photo = Image.fromarray(rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8), "RGB")
        pixels = engine.image_encoder.preprocess([photo])[0]
        top = engine.rank_query(engine.embed_pixels(pixels[None]), 1)[0][0].gallery_index
        saliency.saliency_map(engine, pixels, top)  # warm-up: allocator, kernels
        fwd, sal, png = [], [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            engine.embed_pixels(pixels[None])
            fwd.append(time.perf_counter() - t)
            t = time.perf_counter()
            heat = saliency.saliency_map(engine, pixels, top)
            sal.append(time.perf_counter() - t)
            t = time.perf_counter()
            saliency.write_overlay(photo, heat, Path(tmp) / "why.png")
            png.append(time.perf_counter() - t)
    f, s, p = (statistics.median(v) for v in (fwd, sal, png))
    print(f"repeats {args.repeats}, interleaved; medians (min-max):")
    print(f"  forward pass (batch 1)          {f:6.2f} s  ({min(fwd):.2f}-{max(fwd):.2f})")
    print(f"  saliency (forward + backward)   {s:6.2f} s  ({min(sal):.2f}-{max(sal):.2f})  = {s / f:.2f}x forward")
    print(f"  overlay PNG (1024x768, atomic)  {p:6.3f} s")
    print(f"  bound: <= 3x forward -> {'met' if s / f <= 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
