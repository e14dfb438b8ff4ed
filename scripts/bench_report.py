#!/usr/bin/env python3
"""How long a case report of N photos takes (issue 25: 100 photos in <= 60 s in QGIS), both ways, on this CPU:

  qgis  headless QGIS: the run's layers (summary, places) made from worker-like rows by the plugin's own code
        (layers/results.py), the layout loaded from the shipped template with its atlas (layers/report/layout.py),
        exported to one PDF (QgsLayoutExporter, what the dock's task and Processing run)
  html  the CLI's self-contained HTML (core/io/report_html.py) for the same photos, overlays and places

The photos are synthetic 1600 x 1200 JPEGs with EXIF (time, camera, GPS on every third) and a 'why' overlay each.
`--pages DIR` also renders the PDF's first two pages to PNG (pdftoppm). The CPU's flags are printed first.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CITIES = [("Torino, Piemonte, IT", 45.07, 7.69), ("Valparaíso, CL", -33.05, -71.62), ("Tromsø, NO", 69.65, 18.96),
          ("Kyoto, JP", 35.01, 135.77), ("Marrakesh, MA", 31.63, -8.0), ("Hobart, AU", -42.88, 147.33),
          ("Quebec, CA", 46.81, -71.21), ("Cusco, PE", -13.53, -71.97)]


def make_case(folder: Path, n: int) -> list:
    """n photos with overlays, and the worker-like rows the engine would send for them."""
    import numpy as np
    from PIL import Image

    from geoclip_qgis.core.model.saliency import render_overlay

    rng = np.random.default_rng(0)
    (folder / "why").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name, lat, lon = CITIES[i % len(CITIES)]
        x = np.linspace(0, 1, 1600)[None, :, None]
        y = np.linspace(0, 1, 1200)[:, None, None]
        x, y = np.broadcast_to(x, (1200, 1600, 1)), np.broadcast_to(y, (1200, 1600, 1))
        arr = (np.concatenate([x * 200 + 30, y * 160 + 40, (x + y) * 90], axis=2)
               + rng.normal(0, 12, (1200, 1600, 3))).clip(0, 255).astype(np.uint8)
        im = Image.fromarray(arr, "RGB")
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "Fujifilm", "X-T3"
        exif.get_ifd(0x8769)[0x9003] = f"2024:05:{1 + i % 28:02d} 10:{i % 60:02d}:00"
        gps = None
        if i % 3 == 0:
            gps = (lat + 0.3, lon - 0.4)
            exif.get_ifd(0x8825).update({1: "N" if gps[0] >= 0 else "S", 2: (abs(gps[0]), 0.0, 0.0),
                                         3: "E" if gps[1] >= 0 else "W", 4: (abs(gps[1]), 0.0, 0.0)})
        path = folder / f"IMG_{i:04d}.jpg"
        im.save(path, quality=88, exif=exif)
        heat = np.zeros((224, 224), np.float32)
        cy, cx = rng.integers(40, 184, 2)
        yy, xx = np.mgrid[:224, :224]
        heat += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 30.0 ** 2))
        overlay = folder / "why" / f"IMG_{i:04d}.saliency.png"
        render_overlay(im, heat / heat.max()).save(overlay)
        places, left = [], 1.0
        for r in range(5):
            p = left * (0.55 if r == 0 else 0.35)
            left -= p
            places.append({"rank": r + 1, "probability": p, "lat": lat + r * 1.7 - 3, "lon": lon + r * 2.1 - 4,
                           "n_points": 40 - 6 * r, "spread_km": 12.0 + r, "best_lat": lat, "best_lon": lon,
                           "country": name[-2:], "region": None, "place": name.split(",")[0],
                           "place_km": 3.0, "label": name if r == 0 else f"near {name}"})
        support = [(lat + float(a), lon + float(b), float(p)) for a, b, p in
                   zip(rng.normal(0, 3, 400), rng.normal(0, 4, 400), rng.dirichlet(np.ones(400)) * 0.9)]
        rows.append({"source": str(path), "kind": "image", "places": places, "remaining": left, "gps": gps,
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "saliency": str(overlay),
                     "support": support, "predictions": [], "error": None})
    return rows


def bench_qgis(rows: list, out: Path, meta: dict) -> float:
    from qgis.core import QgsProject, QgsVectorLayer

    from geoclip_qgis.layers.report.layout import CaseLayout
    from geoclip_qgis.layers.results import place_features, place_fields, summary_feature, summary_fields

    t0 = time.perf_counter()
    summary = QgsVectorLayer("Point?crs=EPSG:4326", "summary", "memory")
    summary.dataProvider().addAttributes(summary_fields().toList())
    summary.updateFields()
    places = QgsVectorLayer("Point?crs=EPSG:4326", "places", "memory")
    places.dataProvider().addAttributes(place_fields().toList())
    places.updateFields()
    summary.dataProvider().addFeatures([summary_feature(r, summary.fields()) for r in rows])
    places.dataProvider().addFeatures([f for r in rows for f in place_features(r, places.fields())])
    t_layers = time.perf_counter() - t0
    t0 = time.perf_counter()
    case = CaseLayout(QgsProject.instance(), summary, places, None, meta)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok, error = case.export_pdf(str(out))
    t_pdf = time.perf_counter() - t0
    if not ok:
        raise SystemExit(f"PDF export failed: {error}")
    print(f"  qgis: layers {t_layers:.2f} s, layout + atlas {t_build:.2f} s, PDF export {t_pdf:.2f} s "
          f"({case.pages} pages, {out.stat().st_size / 2**20:.1f} MiB)")
    return t_build + t_pdf


def bench_html(rows: list, out: Path, weights_dir: str = None) -> float:
    from geoclip_qgis.core.answers.query import QueryResult
    from geoclip_qgis.core.io.report_html import CaseReport
    from geoclip_qgis.core.io.results import summary_row
    from geoclip_qgis.core.model.engine import GeoClipEngine

    engine = GeoClipEngine(weights=weights_dir, device="cpu", precision="fp32",
                           cache_dir=str(ROOT / ".cache" / "gallery"), names=False)
    engine.gallery()  # encoded once into the cache; not part of a report's time
    t0 = time.perf_counter()
    report = CaseReport(engine, {"top-k": 5})
    for r in rows:
        res = QueryResult(r["source"], "image", [], r["gps"], places=r["places"], remaining=r["remaining"],
                          sha256=r["sha256"], saliency=r["saliency"], support=r["support"])
        report.add(res, summary_row(res))
    report.write(out)
    took = time.perf_counter() - t0
    print(f"  html: {took:.2f} s ({out.stat().st_size / 2**20:.1f} MiB)")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--pages", default=None, help="render the PDF's first two pages as PNG into this folder")
    ap.add_argument("--keep", default=None, help="keep the PDF and HTML in this folder")
    ap.add_argument("--skip-html", action="store_true")
    args = ap.parse_args()
    from bench_precision import cpu_header
    from qgis.core import QgsApplication

    print(cpu_header())
    app = QgsApplication([], False)
    app.initQgis()
    from geoclip_qgis import __version__
    from geoclip_qgis.core.model.weights import file_digests, load_weights

    meta = {"version": __version__, "model": "CLIP ViT-L/14 (openai/clip-vit-large-patch14) + GeoCLIP 1.3.0, fp32",
            "weights_sha256": file_digests(load_weights())}
    with tempfile.TemporaryDirectory() as tmp:
        keep = Path(args.keep) if args.keep else Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rows = make_case(Path(tmp) / "photos", args.photos)
        print(f"{args.photos} synthetic 1600x1200 photos with overlays made in {time.perf_counter() - t0:.1f} s")
        pdf = keep / "case.pdf"
        took = bench_qgis(rows, pdf, meta)
        print(f"QGIS PDF report, {args.photos} photos: {took:.1f} s (bound: <= 60 s -> "
              f"{'met' if took <= 60 else 'NOT met'})")
        if not args.skip_html:
            took = bench_html(rows, keep / "case.html")
            print(f"HTML report, {args.photos} photos: {took:.1f} s")
        if args.pages:
            import subprocess

            Path(args.pages).mkdir(parents=True, exist_ok=True)
            subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "2", str(pdf),
                            str(Path(args.pages) / "page")], check=True)
            print("pages:", sorted(p.name for p in Path(args.pages).glob("page*.png")))
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
