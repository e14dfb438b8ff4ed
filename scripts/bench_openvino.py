#!/usr/bin/env python3
"""Issue 22: is OpenVINO worth a second runtime for the CLIP image tower? Side by side in one process, on the
random-init full-size ViT-L/14 (speed does not depend on the weight values): torch fp32 (the engine's), torch bf16
(the engine's: precision.convert_tower), OpenVINO f32 and OpenVINO bf16 (INFERENCE_PRECISION_HINT), batch 8,
interleaved repeats, medians, and each path's min cosine to torch fp32 on the same pixels.

OpenVINO is not a dependency of the plugin; this script needs it installed alongside (``pip install openvino``):

    PYTHONPATH=. .venv/bin/python scripts/bench_openvino.py [--repeats 3] [--batch 8]

The CPU's flags are printed first: every figure belongs to that CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_precision import cpu_header, interleaved, min_cosine  # noqa: E402

from geoclip_qgis.core.model import precision as P  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--clip", default=str(ROOT / ".cache" / "bench-clip-vit-l-14"))
    args = ap.parse_args()
    torch.set_num_threads(P.physical_cores())
    print(cpu_header(), flush=True)
    try:
        import openvino as ov
    except ImportError:
        print("OpenVINO is not installed here: pip install openvino")
        return 2
    from transformers import CLIPVisionModelWithProjection

    from geoclip_qgis.core.model.image_encoder import quiet_transformers

    quiet_transformers()
    print(f"openvino {ov.__version__}")

    def load():
        return CLIPVisionModelWithProjection.from_pretrained(args.clip).eval().requires_grad_(False)

    class Embeds(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).image_embeds

    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    fp32, bf16 = load(), P.convert_tower(load(), "bf16")
    t0 = time.perf_counter()
    ov_model = ov.convert_model(Embeds(fp32), example_input=(x,))
    print(f"OpenVINO conversion of the tower: {time.perf_counter() - t0:.1f} s")
    core = ov.Core()
    compiled = {name: core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                          "INFERENCE_NUM_THREADS": P.physical_cores(),
                                                          "PERFORMANCE_HINT": "LATENCY"})
                for name, hint in (("openvino-f32", "f32"), ("openvino-bf16", "bf16"))}
    xs = x.numpy()

    @torch.inference_mode()
    def torch_run(model, prec):
        with P.tower_context(prec, torch.device("cpu")):
            return model(pixel_values=x).image_embeds.float().numpy()

    runs = {"torch-fp32": lambda: torch_run(fp32, "fp32"), "torch-bf16": lambda: torch_run(bf16, "bf16"),
            **{k: (lambda c=c: c(xs)[0]) for k, c in compiled.items()}}
    ref = runs["torch-fp32"]()
    speed = interleaved(runs, args.repeats)
    print(f"\nViT-L/14 image tower, batch {args.batch}, {args.repeats} interleaved repeats, medians")
    print(f"   {'path':14s} {'per image':>10s} {'vs torch fp32':>13s} {'min cos':>9s}")
    for k, s in speed.items():
        cos = min_cosine(torch.from_numpy(np.asarray(runs[k]())), torch.from_numpy(ref))
        print(f"   {k:14s} {1000 * s / args.batch:8.1f}ms {speed['torch-fp32'] / s:12.2f}x {cos:9.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
