#!/usr/bin/env python3
"""Accuracy harness (Im2GPS3k protocol): geodesic error per photo and accuracy at 1/25/200/750/2500 km.

    python scripts/evaluate.py --csv im2gps3k_places365.csv --images-root im2gps3ktest --out results.csv
    python scripts/evaluate.py --exif-folder ~/Pictures/with-gps --out results.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoclip_qgis.core.errors import GeoClipError  # noqa: E402
from geoclip_qgis.core.model.engine import GeoClipEngine  # noqa: E402
from geoclip_qgis.core.service.evaluation import evaluate, format_table, ground_truth_from_exif, read_ground_truth  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="ground truth: image path, lat, lon (Im2GPS3k: IMG_ID, LAT, LON)")
    src.add_argument("--exif-folder", help="a folder of photos whose EXIF GPS is the ground truth")
    ap.add_argument("--images-root", help="folder the CSV's image names are relative to (default: the CSV's)")
    ap.add_argument("--out", default="evaluation.csv", help="per-photo results")
    ap.add_argument("--clip-path")
    ap.add_argument("--weights")
    ap.add_argument("--gallery", default="default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos (a quick check)")
    ap.add_argument("--json", action="store_true", help="print the table as JSON")
    ap.add_argument("--coverage-res", type=float, default=None,
                    help="also map each photo's likelihood at this resolution (degrees) and report how often the "
                         "truth lies inside the 50 %% / 90 %% confidence regions (calibration)")
    args = ap.parse_args()
    try:
        if args.csv:
            truth = read_ground_truth(args.csv)
            if args.images_root:
                truth = [(str(Path(args.images_root) / Path(p).name), la, lo) for p, la, lo in truth]
        else:
            truth = ground_truth_from_exif(args.exif_folder)
        if args.limit:
            truth = truth[: args.limit]
        engine = GeoClipEngine(weights=args.weights, clip_path=args.clip_path, device=args.device,
                               gallery=args.gallery, batch_size=args.batch_size)
        table = evaluate(engine, truth, args.out, coverage_res=args.coverage_res)
    except GeoClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(table, indent=1) if args.json else format_table(table))
    print(f"per-photo results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
