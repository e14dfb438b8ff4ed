#!/usr/bin/env python3
"""Precision per model on this CPU (issue 22): speed ratios against fp32 and the fidelity gate, side by side.

Every variant runs on the same inputs in one process; repeats are interleaved (fp32, bf16-weights, autocast, bf16,
int8, fp32, ...) so that a neighbour's load hits each alike, and medians are reported with the ratio to fp32's median.
  towers    random-init full-size ViT-L/14 image tower at batch 8 and the CLIP text tower (32 queries), with the
            real GeoCLIP image MLP, in fp32, bf16 weights throughout, plain autocast (re-casting the weights on
            every call), bf16 (the engine's: autocast with the Linear weights cast once) and int8;
            fidelity: min cosine of the GeoCLIP embedding, top-5 over the real 100K gallery (real logit scale),
            top-place probability (relative); --clip DIR and --photos DIR measure the real weights on real photos
            (where they can be had: the gate that decides `auto` is settled there with this one command)
  location  the real location encoder on 50,000 points (a 1° x 1° city at 0.005° and 10,000 world points) in each
            scheme of core/precision.py, plus 'denormals' (the weights' denormal floats kept, as before
            precision.flush_denormals) and 'bf16x3' (a split bf16 product, SplitBF16Linear below);
            fidelity: min cosine, map scores in nats (log-softmax over the 50,000 cells, 24 photo-like
            queries), and the gallery (--gallery-points) encoded in the scheme against
            fp32's: top-5 identical over 200 photo-like queries, top-place probability, gallery scores in nats
  floor     what this CPU can do at best: fp32 and bf16 matrix products at the location encoder's shape and its
            memory read rate; from them, the fastest the fp32 encoder could build the 0.5° world pyramid level,
            the 0.1° world field and a 1° city at 0.005° (sigma = 256 capsule only), and the fastest one short
            text query could stream the text tower's weights (fp32, bf16, int8 bytes)
The CPU's flags are printed first: every figure belongs to that CPU.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from geoclip_qgis.core.model import precision as P  # noqa: E402

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_header() -> str:
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        name = platform.processor() or name
    flags = P.cpu_flags()
    caps = P.cpu_capabilities()
    have = " ".join(f for f in FLAGS if f in flags) or "(none of the listed)"
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"CPU: {name}, {P.physical_cores()} physical cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, load average {load}\n"
            f"flags: {have}\ntorch: capability {caps['isa']}, AMX {caps['amx']}, AVX512-BF16 {caps['avx512_bf16']}, "
            f"VNNI {caps['vnni']}; auto would pick: {select_auto()}")


def select_auto() -> str:
    try:
        from geoclip_qgis.core.model.device import select_precision

        c = select_precision("auto", torch.device("cpu"))
        return f"{c.precision} ({c.reason})"
    except ImportError:
        return P.native_bf16(P.cpu_capabilities()) or "fp32"


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median seconds per variant, repeats interleaved across variants (one warm-up each first)."""
    for fn in fns.values():
        fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def gallery_stats(q: torch.Tensor, ref: torch.Tensor, emb: torch.Tensor, scale: float) -> Dict[str, float]:
    """Fidelity of scores `scale * q @ emb.T` against `q @ ref.T`: top-5 identical share, top-place probability
    (relative error), max log-softmax error in nats."""
    same, rel, nats = 0, 0.0, 0.0
    for start in range(0, q.shape[0], 16):
        a = torch.log_softmax(scale * q[start:start + 16] @ ref.T, dim=1)
        b = torch.log_softmax(scale * q[start:start + 16] @ emb.T, dim=1)
        ta, tb = a.topk(5, dim=1).indices, b.topk(5, dim=1).indices
        same += sum(set(x.tolist()) == set(y.tolist()) for x, y in zip(ta, tb))
        top = ta[:, 0:1]
        pa, pb = a.gather(1, top).exp(), b.gather(1, top).exp()
        rel = max(rel, float(((pb - pa).abs() / pa).max()))
        nats = max(nats, float((a - b).abs().max()))
    return {"top5": same / q.shape[0], "top1_rel": rel, "nats": nats}


def min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1).min())


def verdict(row: Dict[str, float], nats: bool) -> str:
    """The gate: cosine, top-5, top-place probability; and the nat bound for maps and fields (`nats`)."""
    ok = row.get("cosine", 1) >= P.GATE["cosine"] and row.get("top5", 1) >= P.GATE["top5"]
    ok = ok and row.get("top1_rel", 0) <= P.GATE["top1_rel"] and (not nats or row.get("nats", 0) <= P.GATE["nats"])
    return "held" if ok else "FAILED"


def print_table(title: str, speed: Dict[str, float], unit: str, per: int, fid: Dict[str, dict],
                nats: bool = False) -> None:
    print(f"\n{title}")
    print(f"   {'path':10s} {unit:>12s} {'vs fp32':>8s} {'min cos':>9s} {'top-5 same':>10s} {'top-1 p rel':>11s} "
          f"{'nats':>7s}  gate")
    base = speed["fp32"]
    for k, s in speed.items():
        f = fid.get(k, {})
        print(f"   {k:10s} {1000 * s / per:10.1f}ms {base / s:7.2f}x {f.get('cosine', 1):9.5f} "
              f"{100 * f.get('top5', 1):9.1f}% {f.get('top1_rel', 0):11.2e} {f.get('nats', 0):7.4f}  "
              f"{verdict(f, nats)}")


# ---- towers -------------------------------------------------------------------------------------------------
def random_text_tower():
    """A random-init CLIP ViT-L/14 text tower: the real architecture and cost (the real weights cannot be had here)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, vocab_size=49408,
        max_position_embeddings=77, projection_dim=768, bos_token_id=49406, eos_token_id=49407,
        pad_token_id=49407)).eval().requires_grad_(False)


def towers(engine, args) -> None:
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection

    from geoclip_qgis.core.model.image_encoder import _mlp, quiet_transformers
    from tests.support.random_clip import find_bpe_vocab, write_tokenizer_files

    quiet_transformers()
    torch.manual_seed(0)
    if args.clip:  # the real weights (or any CLIP folder): the gate settled on them, not on random towers
        vision = CLIPVisionModelWithProjection.from_pretrained(args.clip).eval().requires_grad_(False)
        text = CLIPTextModelWithProjection.from_pretrained(args.clip).eval().requires_grad_(False)
        tok = CLIPTokenizer.from_pretrained(args.clip)
    else:
        vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=768)).eval().requires_grad_(False)
        text = random_text_tower()
        tok_dir = ROOT / ".cache" / "bench-precision-tokenizer"
        if not (tok_dir / "merges.txt").is_file():
            write_tokenizer_files(find_bpe_vocab(), tok_dir)
        tok = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"))
    mlp = _mlp(engine.weights.mlp)
    gallery = engine.gallery().embeddings.float()
    scale = engine.scale
    variants = {"fp32": (vision, text, mlp, None), "bf16-weights": None, "autocast": (vision, text, mlp, "autocast"),
                "bf16": None, "int8": None}
    variants["bf16"] = (P.convert_tower(copy.deepcopy(vision), "bf16"), P.convert_tower(copy.deepcopy(text), "bf16"),
                        mlp, "autocast")
    variants["bf16-weights"] = (P.convert_tower(copy.deepcopy(vision), "bf16-weights"),
                        P.convert_tower(copy.deepcopy(text), "bf16-weights"), P.convert_mlp(mlp, "bf16-weights"), None)
    variants["int8"] = (P.convert_tower(copy.deepcopy(vision), "int8"), P.convert_tower(copy.deepcopy(text), "int8"),
                        P.convert_mlp(mlp, "int8"), None)
    g = torch.Generator().manual_seed(1)
    pixels = [torch.randn(args.batch, 3, 224, 224, generator=g) for _ in range(args.image_batches)]
    if args.photos:  # real photos through the CLIP folder's own processor, in batches
        pixels = photo_pixels(args)
    words = ["snowy", "alpine", "village", "harbour", "desert", "market", "cathedral", "rice", "terraces", "tram",
             "street", "beach", "palm", "fjord", "red", "roofs", "mosque", "minaret", "canal", "bridge", "savanna",
             "volcano", "skyscrapers", "temple", "vineyard"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(args.text_queries)]

    @torch.inference_mode()
    def run_image(v, px):
        vis, _, m, ctx = variants[v]
        with P.location_context(ctx or "fp32"):
            out = vis(pixel_values=px.to(next(vis.parameters()).dtype)).image_embeds
        return torch.nn.functional.normalize(m(out.float()), dim=1)

    @torch.inference_mode()
    def run_text(v, queries):
        _, txt, m, ctx = variants[v]
        tokens = tok(queries, padding=True, return_tensors="pt")
        with P.location_context(ctx or "fp32"):
            out = txt(**tokens).text_embeds
        return torch.nn.functional.normalize(m(out.float()), dim=1)

    speed = interleaved({v: (lambda v=v: run_image(v, pixels[0])) for v in variants}, args.repeats)
    feats = {v: torch.cat([run_image(v, px) for px in pixels]) for v in variants}
    fid = {v: {"cosine": min_cosine(feats[v], feats["fp32"]), **query_stats(feats[v], feats["fp32"], gallery, scale)}
           for v in variants}
    towers_from = f"weights from {args.clip}" if args.clip else "random init"
    inputs = f"photos from {args.photos}" if args.photos else "random pixels"
    print_table(f"ViT-L/14 image tower + GeoCLIP MLP, batch {args.batch} ({towers_from}, {inputs}; {args.repeats} "
                f"interleaved repeats, medians; fidelity over {sum(px.shape[0] for px in pixels)} images)", speed,
                "per image", pixels[0].shape[0], fid)
    batch = texts[:32]
    speed = interleaved({v: (lambda v=v: run_text(v, batch)) for v in variants}, args.repeats)
    feats = {v: torch.cat([run_text(v, texts[i:i + 50]) for i in range(0, len(texts), 50)]) for v in variants}
    fid = {v: {"cosine": min_cosine(feats[v], feats["fp32"]), **query_stats(feats[v], feats["fp32"], gallery, scale)}
           for v in variants}
    print_table(f"CLIP text tower + GeoCLIP MLP, 32 queries a batch ({towers_from}; fidelity over {len(texts)} "
                "queries)", speed, "per query", len(batch), fid)


def photo_pixels(args) -> List[torch.Tensor]:
    """The photos of --photos (the folder's, as the plugin lists them) preprocessed by the --clip folder's processor
    (or the bench CLIP's), in batches of --batch."""
    from geoclip_qgis.core.io.decode import load_photo
    from geoclip_qgis.core.model.image_encoder import load_processor
    from geoclip_qgis.shared.photo_list import list_photos

    proc = load_processor(args.clip or str(ROOT / ".cache" / "bench-clip-vit-l-14"))
    files = list_photos(args.photos)
    if not files:
        raise SystemExit(f"no photos in {args.photos}")
    return [proc(images=[load_photo(f).image for f in files[i:i + args.batch]], return_tensors="pt")["pixel_values"]
            for i in range(0, len(files), args.batch)]


def query_stats(q: torch.Tensor, ref_q: torch.Tensor, gallery: torch.Tensor, scale: float) -> Dict[str, float]:
    """Same gallery, two versions of the queries: top-5 identical share, top-place probability, nats."""
    same, rel, nats = 0, 0.0, 0.0
    for start in range(0, q.shape[0], 16):
        a = torch.log_softmax(scale * ref_q[start:start + 16] @ gallery.T, dim=1)
        b = torch.log_softmax(scale * q[start:start + 16] @ gallery.T, dim=1)
        ta, tb = a.topk(5, dim=1).indices, b.topk(5, dim=1).indices
        same += sum(set(x.tolist()) == set(y.tolist()) for x, y in zip(ta, tb))
        top = ta[:, 0:1]
        pa, pb = a.gather(1, top).exp(), b.gather(1, top).exp()
        rel = max(rel, float(((pb - pa).abs() / pa).max()))
        nats = max(nats, float((a - b).abs().max()))
    return {"top5": same / q.shape[0], "top1_rel": rel, "nats": nats}


# ---- location encoder ---------------------------------------------------------------------------------------
def city_and_world(n_world: int = 10_000) -> np.ndarray:
    lat = 48.5 + 0.0025 + 0.005 * np.arange(200)
    lon = 2.0 + 0.0025 + 0.005 * np.arange(200)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    rng = np.random.default_rng(7)
    world = np.c_[np.degrees(np.arcsin(rng.uniform(-1, 1, n_world))), rng.uniform(-180, 180, n_world)]
    return np.r_[np.c_[la.ravel(), lo.ravel()], world].astype(np.float32)


def photo_like(anchors: torch.Tensor, seed: int) -> torch.Tensor:
    """Unit queries: a place's location feature mixed with an unrelated direction (weights 0.55-0.9)."""
    g = torch.Generator().manual_seed(seed)
    w = 0.55 + 0.35 * torch.rand(anchors.shape[0], 1, generator=g)
    noise = torch.nn.functional.normalize(torch.randn(anchors.shape, generator=g), dim=1)
    return torch.nn.functional.normalize(w * anchors + (1 - w) * noise, dim=1)


class SplitBF16Linear(torch.nn.Module):
    """bf16x3, measured here and not shipped: x_hi.w_hi + x_hi.w_lo + x_lo.w_hi (each part exact in bf16) as one
    product over the concatenated inner dimension, with fp32 accumulation and fp32 output through oneDNN's bf16
    fp32-math mode (process-wide in torch: fine in this one-threaded script, why the engine would need a lock)."""

    def __init__(self, lin: torch.nn.Linear):
        super().__init__()
        w = lin.weight.detach().float()
        hi = w.bfloat16().float()
        self.w3 = torch.cat((hi, (w - hi).bfloat16().float(), hi), dim=1).T.contiguous()
        self.bias = lin.bias.detach().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hi = x.bfloat16().float()
        x3 = torch.cat((hi, hi, (x - hi).bfloat16().float()), dim=-1)
        mode = torch.backends.mkldnn.matmul
        old, mode.fp32_precision = mode.fp32_precision, "bf16"
        try:
            return torch.addmm(self.bias, x3, self.w3)
        finally:
            mode.fp32_precision = old


def bench_scheme(engine, scheme: str):
    """The engine's schemes (core/model/precision.py), plus 'denormals' (the fp32 encoder with the weights'
    denormal floats kept: what ran before precision.flush_denormals) and 'bf16x3' (SplitBF16Linear)."""
    from geoclip_qgis.core.model.location_encoder import LocationEncoder

    enc = engine.location_encoder
    if scheme == "denormals":
        raw = LocationEncoder(len(engine.weights.sigmas))
        raw.load_state_dict(engine.weights.location, strict=True)
        return raw.eval().requires_grad_(False)
    if scheme == "bf16x3":
        out = copy.deepcopy(enc)
        P._replace(out, [n for n, m in out.named_modules() if isinstance(m, torch.nn.Linear)], SplitBF16Linear)
        return out
    return P.convert_location_encoder(enc, scheme)


def location(engine, args) -> None:
    pts = city_and_world()
    schemes = {s: bench_scheme(engine, s) for s in args.schemes}

    def run(s, points, normalise=False):
        with P.location_context(s):
            return schemes[s].encode(points, normalise=normalise)

    speed = interleaved({s: (lambda s=s: run(s, pts)) for s in schemes}, args.repeats)
    emb = {s: torch.nn.functional.normalize(run(s, pts), dim=1) for s in schemes}
    ref_gallery = engine.gallery().embeddings.float()[:args.gallery_points]
    coords = engine.gallery().coords[:args.gallery_points]
    rng = np.random.default_rng(3)
    anchors = torch.from_numpy(engine.encode_locations(coords[rng.choice(len(coords), args.queries)], True))
    queries = photo_like(anchors, 0)
    map_q = torch.cat([photo_like(emb["fp32"][[0, 20_100, 39_999]], 1),
                       photo_like(torch.from_numpy(engine.encode_locations(coords[:21], True)), 2)])
    fid: Dict[str, dict] = {}
    for s in schemes:
        a = torch.log_softmax(engine.scale * map_q @ emb["fp32"].T, dim=1)
        b = torch.log_softmax(engine.scale * map_q @ emb[s].T, dim=1)
        gal = ref_gallery if s == "fp32" else torch.nn.functional.normalize(
            torch.cat(list(_iter(schemes[s], s, coords))), dim=1)
        fid[s] = {"cosine": min_cosine(emb[s], emb["fp32"]), "map_nats": float((a - b).abs().max()),
                  **gallery_stats(queries, ref_gallery, gal, engine.scale)}
        fid[s]["nats"] = max(fid[s]["nats"], fid[s]["map_nats"])
        print(f"   [{s}: map {fid[s]['map_nats']:.4f} nats, gallery {fid[s]['nats']:.4f} nats]", flush=True)
    print_table(f"location encoder (real GeoCLIP weights), {len(pts):,} points ({args.repeats} interleaved repeats, "
                f"medians); nats: max over maps of the 50,000 cells and over the gallery's first "
                f"{len(coords):,} points, {args.queries} queries", speed, "per 1k pts", len(pts) // 1000, fid,
                nats=True)


def _iter(enc, scheme, coords):
    with P.location_context(scheme):
        yield from enc.iter_encode(coords, batch=4096)


# ---- floor -------------------------------------------------------------------------------------------------------
def floor(engine, args) -> None:
    """Compute and bandwidth floors of this CPU: the bounds the encoder-bound goals and the text query meet."""
    torch.manual_seed(0)
    a, w = torch.randn(2048, 1024), torch.randn(1024, 1024)
    pairs = {dtype: (a.to(dtype), w.to(dtype)) for dtype in (torch.float32, torch.bfloat16)}
    times = interleaved({dtype: (lambda x=x, y=y: x @ y) for dtype, (x, y) in pairs.items()}, max(args.repeats, 5))
    rates = {dtype: 2 * 2048 * 1024 * 1024 / t for dtype, t in times.items()}
    big = torch.ones(256 * 2**20 // 4)  # 256 MiB
    read = big.numel() * 4 / interleaved({"sum": lambda: big.sum()}, max(args.repeats, 5))["sum"]
    enc = engine.location_encoder
    flop = 2 * sum(m.in_features * m.out_features for m in enc.modules() if isinstance(m, torch.nn.Linear))
    flop256 = 2 * sum(m.in_features * m.out_features for m in enc.capsules[-1].modules()
                      if isinstance(m, torch.nn.Linear))
    fp32 = rates[torch.float32]
    print(f"\nfloors of this CPU ({args.threads} threads)")
    print(f"   matrix product 2048x1024 @ 1024x1024: fp32 {fp32 / 1e9:.0f} GFLOP/s, bf16 "
          f"{rates[torch.bfloat16] / 1e9:.0f} GFLOP/s; memory read {read / 1e9:.1f} GB/s")
    print(f"   location encoder: {flop / 1e6:.1f} MFLOP per point ({flop256 / 1e6:.1f} in the sigma = 256 capsule)")
    for what, cells, f in (("world 0.5° level (720 x 360)", 720 * 360, flop), ("world 0.1° field (3600 x 1800)",
                           3600 * 1800, flop), ("city 1° at 0.005°, sigma = 256 capsule alone", 200 * 200, flop256)):
        print(f"   {what:46s} fp32 at that rate, no other work: {cells * f / fp32:8.1f} s")
    tower = sum(m.weight.numel() for m in random_text_tower().modules() if isinstance(m, torch.nn.Linear))
    print(f"   one short text query streams the text tower's {tower / 1e6:.0f}M Linear weights: "
          + ", ".join(f"{name} {tower * size / read * 1000:.0f} ms" for name, size in
                      (("fp32", 4), ("bf16", 2), ("int8", 1))) + " at the read rate")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="towers,location")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--image-batches", type=int, default=2, help="batches whose embeddings the gate compares")
    ap.add_argument("--text-queries", type=int, default=200)
    ap.add_argument("--clip", help="a CLIP folder (e.g. the real ViT-L/14) for the towers section instead of random "
                    "towers: the gate measured on those weights")
    ap.add_argument("--photos", help="a folder of photos for the image tower's gate instead of random pixels "
                    "(200 give the issue's resolution of top-5 agreement)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--gallery-points", type=int, default=100_000,
                    help="gallery points each location scheme re-encodes for the top-5 check (default: all 100K)")
    ap.add_argument("--schemes", default="fp32,denormals,bf16x3,autocast,hidden,sigma1,int8")
    ap.add_argument("--threads", type=int, default=P.physical_cores())
    args = ap.parse_args()
    args.schemes = args.schemes.split(",")
    torch.set_num_threads(args.threads)
    print(cpu_header(), flush=True)
    print("command: " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    from geoclip_qgis.core.model.engine import GeoClipEngine

    engine = GeoClipEngine(device="cpu", precision="fp32") if _has_precision() else GeoClipEngine(device="cpu")
    t0 = time.perf_counter()
    engine.gallery()
    print(f"100K gallery (fp32 reference) ready in {time.perf_counter() - t0:.1f} s", flush=True)
    if "towers" in args.sections:
        towers(engine, args)
    if "location" in args.sections:
        location(engine, args)
    if "floor" in args.sections:
        floor(engine, args)
    print(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


def _has_precision() -> bool:
    import inspect

    from geoclip_qgis.core.model.engine import GeoClipEngine

    return "precision" in inspect.signature(GeoClipEngine.__init__).parameters


if __name__ == "__main__":
    sys.exit(main())
