#!/usr/bin/env python3
"""The main job on embedded defaults: real GeoCLIP map products, plus photo geolocation when CLIP is at hand.

Always (no CLIP backbone needed, only GeoCLIP's real location encoder):
  - a world map of the location encoder's features (PCA -> RGB), GeoTIFF + PNG preview;
  - "places like here" for Paris over Europe, GeoTIFF + PNG preview;
  - the 100K gallery's embeddings cached for every later run.
When a CLIP ViT-L/14 folder is given (--clip-path or $GEOCLIP_CLIP_PATH) or in the Hugging Face cache:
  - the sample photo(s) geolocated to a GeoPackage and CSV, and a global likelihood raster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The demo uses a CLIP folder or the Hugging Face cache, never a download (see the docstring).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from geoclip_qgis.core.errors import BackboneError  # noqa: E402
from geoclip_qgis.core.maps.encoder_rasters import pca_raster, similarity_raster  # noqa: E402
from geoclip_qgis.core.maps.raster import Grid, render_preview  # noqa: E402
from geoclip_qgis.core.model.engine import GeoClipEngine  # noqa: E402
from geoclip_qgis.core.model.weights import wheel_data_dir  # noqa: E402


def step(msg: str) -> float:
    print(f"- {msg}", flush=True)
    return time.perf_counter()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out")
    ap.add_argument("--clip-path", default=None)
    ap.add_argument("--resolution", type=float, default=0.5)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engine = GeoClipEngine(clip_path=args.clip_path)
    print(f"GeoCLIP engine on {engine.choice.device} ({engine.choice.reason}); weights from {engine.weights.source}")

    t = step("caching the 100K gallery's location embeddings (once; later runs read the cache)")
    gallery = engine.gallery(progress=None)
    print(f"  {len(gallery):,} points, cache {gallery.cache_file} ({time.perf_counter() - t:.1f} s)")

    t = step(f"world map of location features (PCA -> RGB) at {args.resolution}°")
    info = pca_raster(engine, Grid.over(None, args.resolution), out / "location_features_pca.tif")
    render_preview(info["path"], out / "location_features_pca.png")
    print(f"  {info['path']} ({info['width']}x{info['height']}, {time.perf_counter() - t:.1f} s)")

    t = step("'places like here': similarity to Paris (48.857, 2.352) over Europe at 0.25°")
    info = similarity_raster(engine, 48.857, 2.352, Grid.over((-25, 30, 45, 72), 0.25), out / "like_paris.tif")
    render_preview(info["path"], out / "like_paris.png")
    print(f"  {info['path']} ({time.perf_counter() - t:.1f} s)")

    samples = sorted(str(p) for p in (wheel_data_dir().parent / "images").glob("*.png"))
    try:
        _ = engine.image_encoder  # load now: a missing backbone is reported here, once
    except BackboneError as exc:
        print(f"- photo geolocation skipped: {exc}")
        print("  (everything above is real GeoCLIP output; photos need the CLIP ViT-L/14 backbone)")
        return 0
    from geoclip_qgis.core.io.journal import ResultWriter
    from geoclip_qgis.core.maps.likelihood import likelihood_map, query_for, write_likelihood

    t = step(f"geolocating {len(samples)} sample photo(s): {', '.join(Path(s).name for s in samples)}")
    writer = ResultWriter.plan([out / "sample_predictions.gpkg", out / "sample_predictions.csv"])
    writer.load_previous(engine.run_fingerprint("image", 5))
    writer.open()
    for res in engine.iter_predict_images(samples, top_k=5):
        writer.add(res)
        best = res.predictions[0]
        print(f"  {Path(res.source).name}: best ({best.lat:.4f}, {best.lon:.4f}) p={best.probability:.3f}")
    writer.finish()
    query, label = query_for(engine, samples)
    lmap = likelihood_map(engine, query, Grid.over(None, args.resolution))
    path = write_likelihood(lmap, out / "sample_likelihood.tif", label)
    render_preview(path, out / "sample_likelihood.png")
    print(f"  likelihood raster {path}: best {lmap.best}, {json.dumps(lmap.stats, default=str)[:120]}")
    print(f"  ({time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
