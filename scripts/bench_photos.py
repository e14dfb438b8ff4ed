#!/usr/bin/env python3
"""Real-sized photos through the engine, per stage, today's path against the reduced-decode + thread-pool path.

Why: the engine benchmark (bench_engine.py) feeds 640×480 JPEGs, but cameras write 12-48 MP JPEGs and HEICs;
decoding and resizing those can cost as much as the model. This makes a realistic set once (cached under
.cache/bench-photos-real): 4000×3000 and 8000×6000 JPEGs at camera quality 92 with camera EXIF (make, model,
orientation, GPS), HEICs when pillow-heif is installed, and a 16-bit PNG. Scenes are 1/f ("natural image")
noise with hard-edged shapes and sensor noise, so that JPEG sizes and the high frequencies a reduced decode
must discard are photo-like.

It prints, from one process with interleaved repeats (A B A B ...) and medians, so ratios hold on a busy machine:
  stages  per photo and kind: open+decode, EXIF, resize/crop/normalise; for the batch: model, retrieval, output
  e2e     photos/s end to end on the 12 MP JPEGs: today (sequential, full decode), new (threads ahead, reduced
          decode), new --exact-decode, and the bare ViT-L/14 forward at the same batch size (the floor)
  fidelity  RMS / max / PSNR of the preprocessed 224×224 input, reduced against exact decode, per photo
  RSS     peak RSS of today's path and the new one, each in a child process over the whole set
The model is a random CLIP of ViT-L/14 size (speed does not depend on the weights) or --clip-path. On a GPU:
`--device cuda` (batch 64, fp16) runs the same script unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GPS = (48.858, 2.2945)  # written into every photo's EXIF; read back exactly on both paths


# ---- the photo set ----------------------------------------------------------------------------------------------
def natural_image(width: int, height: int, seed: int):
    """An RGB uint8 scene with a natural image's 1/f spectrum, hard-edged shapes and sensor noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    h4, w4 = max(8, height // 4), max(8, width // 4)
    fy, fx = np.fft.fftfreq(h4)[:, None], np.fft.rfftfreq(w4)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(h4, w4))
    chans = []
    for _ in range(3):
        spec = amp * np.exp(2j * np.pi * rng.random(amp.shape))
        field = np.fft.irfft2(spec, s=(h4, w4))
        chans.append((field - field.mean()) / (field.std() + 1e-9))
    mix = np.array([[1.0, 0.3, 0.2], [1.0, -0.1, 0.1], [1.0, -0.2, -0.3]])  # correlated colour, like photos
    base = np.tensordot(np.stack(chans, -1), mix.T, axes=1) * 40 + 120
    small = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    im = small.resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(60):  # buildings, poles, horizons: edges at full resolution
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 100, width // 6)), int(rng.integers(height // 100, height // 4))
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    for _ in range(40):
        pts = [tuple(int(v) for v in rng.integers(0, [width, height])) for _ in range(2)]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 255, 3)), width=int(rng.integers(1, 6)))
    arr = np.asarray(im, dtype=np.int16) + rng.normal(0, 4, (height, width, 1)).astype(np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def camera_exif(orientation: int, gps=GPS):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "Canon", "Canon EOS R6", "2024:06:01 12:00:00"
    exif[0x0112] = orientation
    lat, lon = gps
    exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: (abs(lat), 0.0, 0.0),
                                 3: "E" if lon >= 0 else "W", 4: (abs(lon), 0.0, 0.0)})
    return exif


def make_set(folder: Path, n12: int, n48: int, n_unique: int = 3) -> Dict[str, List[str]]:
    """The photo set by kind, made once; n_unique scenes per kind, copied to reach the count (decode cost is
    per file, the content hardly matters once it is photo-like)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    kinds: Dict[str, List[str]] = {"jpeg12": [], "jpeg48": [], "heic": [], "png16": []}
    orientations = [1, 6, 3, 8]
    for kind, (w, h), n in (("jpeg12", (4000, 3000), n12), ("jpeg48", (8000, 6000), n48)):
        for i in range(n):
            p = folder / f"{kind}_{i:03d}.jpg"
            if not p.exists():
                src = folder / f"{kind}_{i % n_unique:03d}.jpg"
                if i >= n_unique and src.exists():
                    shutil.copyfile(src, p)
                else:
                    Image.fromarray(natural_image(w, h, seed=i)).save(
                        p, quality=92, subsampling="4:2:0", exif=camera_exif(orientations[i % 4]))
            kinds[kind].append(str(p))
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        for i in range(2):
            p = folder / f"heic_{i}.heic"
            if not p.exists():
                Image.fromarray(natural_image(4000, 3000, seed=100 + i)).save(p, quality=90, exif=camera_exif(1))
            kinds["heic"].append(str(p))
    except ImportError:
        print("pillow-heif is not installed: no HEIC in the set")
    p = folder / "png16_0.png"
    if not p.exists():
        import numpy as np

        gray = natural_image(4000, 3000, seed=200)[..., 1].astype(np.uint16) * 257
        Image.fromarray(gray).save(p)  # uint16: mode I;16
    kinds["png16"].append(str(p))
    return kinds


# ---- measuring --------------------------------------------------------------------------------------------------
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable, device=None):
    if device is not None:
        _sync(device)
    t0 = time.perf_counter()
    out = fn()
    if device is not None:
        _sync(device)
    return time.perf_counter() - t0, out


def _psnr(a, b) -> Dict[str, float]:
    """a, b: preprocessed inputs (normalised); differences are reported in 0-255 pixel units."""
    import numpy as np
    from transformers.image_utils import OPENAI_CLIP_STD

    std = np.array(OPENAI_CLIP_STD).reshape(3, 1, 1)
    d = (a.numpy() - b.numpy()) * std * 255.0
    rms = float(np.sqrt(np.mean(d ** 2)))
    return {"rms": rms, "rms_pct": rms / 255 * 100, "max": float(np.abs(d).max()),
            "psnr": float("inf") if rms == 0 else 20 * np.log10(255.0 / rms)}


def stages(engine, kinds: Dict[str, List[str]], repeats: int) -> dict:
    """Per photo and kind: EXIF, open+decode (loader total minus EXIF), preprocess; today's vs the new loader."""
    from PIL import Image

    from geoclip_qgis.core.io.decode import input_side, open_photo
    from geoclip_qgis.core.io.photos import load_photo, read_gps_exif

    proc = engine.image_encoder.preprocess
    side = input_side(engine.image_encoder.processor)
    out: dict = {}
    fidelity: List[dict] = []
    for kind, paths in kinds.items():
        sample = paths[:3 if kind == "jpeg12" else 2]
        rec = {k: [] for k in ("exif", "decode_today", "decode_new", "pre_today", "pre_new")}
        for r in range(repeats):
            for p in sample:
                def exif_only(p=p):
                    with Image.open(p) as im:
                        return read_gps_exif(im.getexif())
                te, gps = _timed(exif_only)
                for name, load in (("today", lambda p=p: load_photo(p)), ("new", lambda p=p: open_photo(p, side))):
                    td, photo = _timed(load)
                    assert photo.gps == gps[0], (p, photo.gps, gps)  # GPS exact on both paths
                    tp, px = _timed(lambda im=photo.image: proc([im]))
                    rec[f"decode_{name}"].append(td - te)
                    rec[f"pre_{name}"].append(tp)
                    if name == "today":
                        exact_px, exact_size = px, photo.image.size
                    elif r == 0:
                        assert (photo.image.width > photo.image.height) == (exact_size[0] > exact_size[1])
                        fidelity.append({"photo": Path(p).name, "decoded": list(photo.image.size),
                                         **_psnr(px[0], exact_px[0])})
                rec["exif"].append(te)
        out[kind] = {k: statistics.median(v) for k, v in rec.items()}
    return {"stages": out, "fidelity": fidelity}


def end_to_end(engine, photos: List[str], repeats: int, batch: int) -> dict:
    """photos/s over the same photos: today's loop, the new engine, the new engine with exact decode, the bare
    forward (the same batches of preprocessed pixels, model only); A B C D repeated, medians. Also the batch's
    model, retrieval and output stage times per photo."""
    import torch

    from geoclip_qgis.core.io.journal import ResultWriter
    from geoclip_qgis.core.io.photos import load_photo

    enc = engine.image_encoder
    device = engine.device
    pixels = enc.preprocess([load_photo(p).image for p in photos[:batch]])
    n = len(photos)

    def today():  # the engine's loop before core.decode: full decode, then preprocess, then model, one thread
        res = []
        for s in range(0, n, batch):
            chunk = [load_photo(p) for p in photos[s:s + batch]]
            res += engine.rank(engine.embed_pixels(enc.preprocess([c.image for c in chunk])), 5)
        return res

    def bare():
        for s in range(0, n, batch):
            enc.vision(pixel_values=pixels[: min(batch, n - s)].to(device, next(enc.vision.parameters()).dtype))

    def new(exact: bool = False):
        engine.exact_decode = exact  # the same loaded engine, full-size decode in the same pool
        try:
            return list(engine.iter_predict_images(photos, 5, batch))
        finally:
            engine.exact_decode = False

    runs = {"today": today, "new": new, "new_exact": lambda: new(True), "bare": bare}
    times: Dict[str, List[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        bare()  # warm-up (and cuDNN/autotune on a GPU)
        for _ in range(repeats):
            for name, fn in runs.items():
                times[name].append(_timed(fn, device)[0])
        model_t, retr_t, out_t = [], [], []
        for _ in range(repeats):
            t, feats = _timed(lambda: engine.embed_pixels(pixels), device)
            model_t.append(t / len(pixels))
            t, _ = _timed(lambda f=feats: engine.rank(f, 5), device)
            retr_t.append(t / len(pixels))
        results = list(engine.iter_predict_images(photos[:batch], 5, batch))
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(repeats):
                writer = ResultWriter.plan([str(Path(tmp) / "out.csv")])
                writer.load_previous({"bench": 1})
                writer.open()
                t, _ = _timed(lambda w=writer: [w.add(r) for r in results])
                t2, _ = _timed(writer.finish)
                out_t.append((t + t2) / len(results))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"seconds": med, "per_photo": {k: v / n for k, v in med.items()},
            "model": statistics.median(model_t), "retrieval": statistics.median(retr_t),
            "output": statistics.median(out_t), "n": n, "batch": batch}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _engine(args, exact: bool):
    from geoclip_qgis.core.model.engine import GeoClipEngine

    return GeoClipEngine(clip_path=args.clip_path, device=args.device, cache_dir=args.cache, batch_size=args.batch,
                         exact_decode=exact)


def phase_rss(args, kinds, which: str) -> dict:
    """One path over the whole set in a fresh process: its peak RSS is its own."""
    engine = _engine(args, exact=which == "today")
    photos = [p for v in kinds.values() for p in v]
    t0 = time.perf_counter()
    if which == "today":
        import torch

        from geoclip_qgis.core.io.photos import load_photo

        enc = engine.image_encoder
        with torch.inference_mode():
            for s in range(0, len(photos), args.batch):
                chunk = [load_photo(p) for p in photos[s:s + args.batch]]
                engine.rank(engine.embed_pixels(enc.preprocess([c.image for c in chunk])), 5)
    else:
        list(engine.iter_predict_images(photos, 5, args.batch))
    return {"peak_rss_mb": _peak_rss_mb(), "seconds": time.perf_counter() - t0, "n": len(photos)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip-path", default=str(ROOT / ".cache" / "bench-clip-vit-l-14"))
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (then fp16, batch 64)")
    ap.add_argument("--batch", type=int, default=None, help="engine batch (default 8 on CPU, 64 on CUDA)")
    ap.add_argument("--photos", type=int, default=None, help="12 MP JPEGs end to end (default 2 batches)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--folder", default=str(ROOT / ".cache" / "bench-photos-real"))
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "gallery"))
    ap.add_argument("--phase", choices=["rss-today", "rss-new"])
    ap.add_argument("--skip-rss", action="store_true")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.batch = args.batch or (64 if cuda else 8)
    n12 = args.photos or 2 * args.batch
    kinds = make_set(Path(args.folder), n12=n12, n48=3)
    if args.phase:
        print(json.dumps(phase_rss(args, kinds, args.phase.split("-")[1])))
        return 0
    import torch

    from geoclip_qgis.core.io.decode import input_side
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: the random CLIP fixture
    from support.random_clip import make_random_clip

    if args.clip_path == str(ROOT / ".cache" / "bench-clip-vit-l-14"):
        make_random_clip(args.clip_path, "vit-l-14")
    engine = _engine(args, False)
    engine.gallery()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {engine.choice.device} "
          f"({'fp16' if engine.choice.fp16 else 'fp32'}), batch {args.batch}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; model input side "
          f"{input_side(engine.image_encoder.processor)} px; {args.repeats} interleaved repeats, medians")
    st = stages(engine, {k: v for k, v in kinds.items() if v}, args.repeats)
    print("\nper photo (ms)   EXIF  decode today  decode new  preprocess today  preprocess new  decode+pre speed-up")
    for kind, s in st["stages"].items():
        today, new = s["decode_today"] + s["pre_today"], s["decode_new"] + s["pre_new"]
        print(f"{kind:12s} {s['exif'] * 1e3:7.1f} {s['decode_today'] * 1e3:13.1f} {s['decode_new'] * 1e3:11.1f} "
              f"{s['pre_today'] * 1e3:17.1f} {s['pre_new'] * 1e3:15.1f} {today / new:16.1f}x")
    print("\nfidelity of the model input (reduced vs exact decode, 0-255 units):")
    for f in st["fidelity"]:
        print(f"  {f['photo']:18s} decoded {f['decoded'][0]}x{f['decoded'][1]:<5d} RMS {f['rms']:.3f} "
              f"({f['rms_pct']:.2f} %)  max {f['max']:.1f}  PSNR {f['psnr']:.1f} dB")
    worst = min(f["psnr"] for f in st["fidelity"])
    print(f"  worst PSNR {worst:.1f} dB (fast path default only if >= 40 dB): "
          f"{'met' if worst >= 40 else 'NOT met'}")
    e2e = end_to_end(engine, kinds["jpeg12"][:n12], args.repeats, args.batch)
    pp = e2e["per_photo"]
    print(f"\nend to end, {e2e['n']} JPEGs of 12 MP, batch {e2e['batch']}:   s/photo   photos/s")
    for name in ("today", "new", "new_exact", "bare"):
        print(f"  {name:28s} {pp[name]:8.3f} {1 / pp[name]:9.2f}")
    print(f"  batch stages per photo: model {e2e['model'] * 1e3:.1f} ms, retrieval {e2e['retrieval'] * 1e3:.1f} ms, "
          f"output {e2e['output'] * 1e3:.1f} ms")
    j = st["stages"]["jpeg12"]
    speedup = (j["decode_today"] + j["pre_today"]) / (j["decode_new"] + j["pre_new"])
    ratio = pp["new"] / pp["bare"]
    goal_e2e = 1.2 if cuda else 1.1
    print(f"\ngoal: new end to end / bare forward {ratio:.3f} (<= {goal_e2e}): "
          f"{'met' if ratio <= goal_e2e else f'missed by {(ratio / goal_e2e - 1) * 100:.0f} %'}")
    print(f"goal: decode+preprocess speed-up on 12 MP JPEG {speedup:.1f}x (>= 4x): "
          f"{'met' if speedup >= 4 else 'missed'}; new vs today end to end {pp['today'] / pp['new']:.2f}x")
    if not args.skip_rss:
        rss = {}
        for which in ("today", "new"):
            cmd = [sys.executable, __file__, "--phase", f"rss-{which}", "--clip-path", args.clip_path,
                   "--device", args.device, "--batch", str(args.batch), "--photos", str(n12),
                   "--folder", args.folder, "--cache", args.cache]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                sys.stderr.write(res.stderr[-3000:])
                raise SystemExit(f"rss-{which} failed")
            rss[which] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"goal: peak RSS over the whole set ({rss['new']['n']} photos incl. 48 MP, HEIC, 16-bit PNG): "
              f"today {rss['today']['peak_rss_mb'] / 1024:.2f} GB, new {rss['new']['peak_rss_mb'] / 1024:.2f} GB "
              f"(goal: no higher than today's): "
              f"{'met' if rss['new']['peak_rss_mb'] <= rss['today']['peak_rss_mb'] else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
