"""Accuracy as the GeoCLIP paper reports it: geodesic error per photo and the share within 1/25/200/750/2500 km
(street, city, region, country, continent) on Im2GPS3k."""

from __future__ import annotations

import contextlib
import csv
import math
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ...shared.atomic import atomic_path
from ..errors import InputError
from ..io.photos import list_photos, read_gps

THRESHOLDS_KM = (1, 25, 200, 750, 2500)
PAPER_IM2GPS3K = {1: 14.11, 25: 34.47, 200: 50.65, 750: 69.67, 2500: 83.82}


def geodesic_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """WGS84 ellipsoid distance (Karney, via geopy), as GeoCLIP's own evaluation computes it."""
    from geopy.distance import geodesic

    return float(geodesic((lat1, lon1), (lat2, lon2)).km)


def accuracy_table(errors_km: Sequence[float]) -> Dict[str, float]:
    """Percent of photos within each threshold, plus the median and mean error, over the photos given."""
    n = len(errors_km)
    if n == 0:
        raise InputError("no photo could be evaluated", hint="check the ground-truth file and the photo paths")
    table = {f"{t} km": 100.0 * sum(e <= t for e in errors_km) / n for t in THRESHOLDS_KM}
    ordered = sorted(errors_km)
    mid = n // 2
    table["median km"] = ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
    table["mean km"] = sum(errors_km) / n
    table["photos"] = n
    return table


def read_ground_truth(path: os.PathLike) -> List[Tuple[str, float, float]]:
    """CSV rows (image path, lat, lon); columns named image/IMG_ID/path/file and lat/LAT, lon/LON.
    Relative image paths are taken relative to the CSV's folder (Im2GPS3k's CSV lists bare file names)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("ground-truth CSV not found", str(p), "give a CSV with image, lat, lon columns")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        img = next((cols[c] for c in ("image", "img_id", "path", "file", "filename", "photo") if c in cols), None)
        lat = next((cols[c] for c in ("lat", "latitude") if c in cols), None)
        lon = next((cols[c] for c in ("lon", "lng", "longitude") if c in cols), None)
        if not (img and lat and lon):
            raise InputError(f"columns not found (have {reader.fieldnames})", str(p),
                             "name them image, lat, lon (or IMG_ID, LAT, LON as in Im2GPS3k)")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                la, lo = float(r[lat]), float(r[lon])
            except (TypeError, ValueError) as exc:
                raise InputError(f"line {i}: lat/lon are not numbers ({r[lat]!r}, {r[lon]!r})", str(p)) from exc
            if not (-90 <= la <= 90 and -180 <= lo <= 180) or math.isnan(la + lo):
                raise InputError(f"line {i}: ({la}, {lo}) is outside lat ±90 / lon ±180", str(p))
            image = r[img]
            rows.append((image if os.path.isabs(image) else str(p.parent / image), la, lo))
    return rows


def ground_truth_from_exif(folder: os.PathLike, recursive: bool = True) -> List[Tuple[str, float, float]]:
    rows = []
    for photo in list_photos(folder, recursive):
        gps = read_gps(photo)
        if gps is not None:
            rows.append((photo, gps[0], gps[1]))
    if not rows:
        raise InputError("no photo in the folder has EXIF GPS", str(folder), "use a CSV of ground truth instead")
    return rows


def evaluate(engine, truth: Iterable[Tuple[str, float, float]], out_csv: Optional[os.PathLike] = None,
             top_k: int = 1, coverage_res: Optional[float] = None,
             levels: Sequence[float] = (0.5, 0.9)) -> Dict[str, object]:
    """Geolocate every photo and compare with the truth: the raw top-1 gallery point (the paper's protocol) and
    the top-1 distinct place (core/answers/places.py). With `coverage_res`, also map each photo's likelihood at that
    resolution and report how often the truth falls inside the 50 % / 90 % confidence regions — close to 50 %
    and 90 % for a calibrated model. Per-photo rows stream to
    `out_csv`'s temporary file, which replaces it at the end (shared/atomic.py)."""
    from ..answers.regions import hdr_level_at

    truth = list(truth)
    where = {path: (la, lo) for path, la, lo in truth}
    errors: List[float] = []
    place_errors: List[float] = []
    hdr: List[float] = []
    failed = 0
    with contextlib.ExitStack() as stack:
        fh = None
        if out_csv:  # rows stream into our temporary file; the old CSV is replaced only when the run is done
            tmp = stack.enter_context(atomic_path(out_csv, "evaluation"))
            fh = stack.enter_context(open(tmp, "w", newline="", encoding="utf-8"))
        writer = csv.writer(fh) if fh else None
        if writer:
            writer.writerow(["image", "true_lat", "true_lon", "pred_lat", "pred_lon", "probability", "error_km",
                             "place_lat", "place_lon", "place_probability", "place_error_km", "hdr_level", "error"])
        for res in engine.iter_predict_images([t[0] for t in truth], top_k):
            la, lo = where[res.source]
            if not res.ok:
                failed += 1
                if writer:
                    writer.writerow([res.source, la, lo, *[""] * 9, res.error["message"]])
                continue
            best = res.predictions[0]
            err = geodesic_km(la, lo, best.lat, best.lon)
            errors.append(err)
            place = res.places[0]
            perr = geodesic_km(la, lo, place["lat"], place["lon"])
            place_errors.append(perr)
            level = ""
            if coverage_res:
                level = _hdr_level(engine, res.source, la, lo, coverage_res, hdr_level_at)
                hdr.append(level)
            if writer:
                writer.writerow([res.source, la, lo, best.lat, best.lon, best.probability, f"{err:.4f}",
                                 place["lat"], place["lon"], place["probability"], f"{perr:.4f}", level, ""])
                fh.flush()
    table: Dict[str, object] = dict(accuracy_table(errors))
    table["failed"] = failed
    table["places"] = accuracy_table(place_errors)
    if hdr:
        for lv in levels:
            table[f"coverage {lv * 100:g} %"] = 100.0 * sum(h <= lv for h in hdr) / len(hdr)
    return table


def _hdr_level(engine, photo: str, lat: float, lon: float, res: float, hdr_level_at) -> float:
    """The smallest confidence level whose region holds the truth, from the photo's world map at `res`."""
    from ..maps.likelihood import likelihood_map
    from ..maps.raster import Grid

    feats = engine.embed_images([photo])
    lmap = likelihood_map(engine, feats[0], Grid.over(None, res))
    return float(hdr_level_at(lmap, [[lat, lon]])[0])


def format_table(table: Dict[str, float], reference: Optional[Dict[int, float]] = PAPER_IM2GPS3K) -> str:
    head = " ".join(f"{t:>8}" for t in (f"{k} km" for k in THRESHOLDS_KM))
    ours = " ".join(f"{table[f'{k} km']:7.2f}%" for k in THRESHOLDS_KM)
    lines = [f"{'':12s}{head}", f"{'this run':12s}{ours}"]
    if reference:
        lines.append(f"{'paper':12s}" + " ".join(f"{reference[k]:7.2f}%" for k in THRESHOLDS_KM))
    if isinstance(table.get("places"), dict):
        lines.append(f"{'places':12s}" + " ".join(f"{table['places'][f'{k} km']:7.2f}%" for k in THRESHOLDS_KM))
    for key in [k for k in table if str(k).startswith("coverage")]:
        lines.append(f"{key} region holds the truth for {table[key]:.1f}% of the photos")
    lines.append(f"median error {table['median km']:.1f} km, mean {table['mean km']:.1f} km over "
                 f"{table['photos']} photo(s); {table.get('failed', 0)} could not be read")
    return "\n".join(lines)
