"""Writing results as they arrive: CSV through `csv`, GeoJSON and GeoPackage through fiona (GDAL).

Each sink is flushed after every query, so a cancel or a crash mid-batch keeps every finished row, and
`done_sources` lets a re-run skip what is already written (resume).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, List, Optional, Set

from .errors import InputError
from .geodesy import haversine_km

PREDICTION_FIELDS = [
    ("source", "str"),
    ("kind", "str"),
    ("rank", "int"),
    ("probability", "float"),
    ("lat", "float"),
    ("lon", "float"),
    ("gallery_index", "int"),
    ("exif_lat", "float"),
    ("exif_lon", "float"),
    ("error_km", "float"),
]
FAILURE_FIELDS = [("source", "str"), ("code", "str"), ("message", "str")]


def prediction_rows(result) -> List[dict]:
    """Flat rows for one QueryResult (one per rank), with the EXIF GPS and its error when known."""
    rows = []
    for p in result.predictions:
        row = {
            "source": result.source, "kind": result.kind, "rank": p.rank, "probability": p.probability,
            "lat": p.lat, "lon": p.lon, "gallery_index": p.gallery_index,
            "exif_lat": None, "exif_lon": None, "error_km": None,
        }
        if result.gps is not None:
            row["exif_lat"], row["exif_lon"] = result.gps
            row["error_km"] = haversine_km(result.gps[0], result.gps[1], p.lat, p.lon)
        rows.append(row)
    return rows


def failure_row(result) -> dict:
    err = result.error or {}
    return {"source": result.source, "code": err.get("code", "error"), "message": err.get("message", "")}


class Sink:
    """Append rows to one file; `flush` after each query makes them durable."""

    def write(self, rows: Iterable[dict]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class CsvSink(Sink):
    def __init__(self, path: Path, fields, append: bool = False):
        self.names = [n for n, _ in fields]
        exists = append and path.is_file() and path.stat().st_size > 0
        self.fh = open(path, "a" if exists else "w", newline="", encoding="utf-8")  # noqa: SIM115 - lives with the sink
        self.writer = csv.DictWriter(self.fh, fieldnames=self.names, extrasaction="ignore")
        if not exists:
            self.writer.writeheader()

    def write(self, rows):
        for r in rows:
            self.writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in self.names})

    def flush(self):
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self):
        self.fh.close()


class FionaSink(Sink):
    """GeoPackage (appendable, transactional) or GeoJSON points in EPSG:4326."""

    def __init__(self, path: Path, fields, append: bool = False, layer: Optional[str] = None):
        import fiona
        from fiona.crs import CRS

        driver = "GPKG" if path.suffix.lower() == ".gpkg" else "GeoJSON"
        types = {"str": "str", "int": "int", "float": "float"}
        schema = {"geometry": "Point", "properties": {n: types[t] for n, t in fields}}
        self.names = [n for n, _ in fields]
        kwargs = {"layer": layer or path.stem} if driver == "GPKG" else {}
        if append and path.is_file() and driver == "GPKG":
            self.col = fiona.open(path, "a", **kwargs)
        else:
            if path.exists():
                path.unlink()
            self.col = fiona.open(path, "w", driver=driver, schema=schema, crs=CRS.from_epsg(4326), **kwargs)

    def write(self, rows):
        recs = []
        for r in rows:
            props = {k: r.get(k) for k in self.names}
            recs.append({"geometry": {"type": "Point", "coordinates": (r["lon"], r["lat"])}, "properties": props})
        if recs:
            self.col.writerecords(recs)

    def flush(self):
        self.col.flush()

    def close(self):
        self.col.close()


def open_sink(path: os.PathLike | str, fields=PREDICTION_FIELDS, append: bool = False) -> Sink:
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.parent.exists():
        raise InputError("output folder does not exist", str(p.parent), "create it first")
    if suffix == ".csv":
        return CsvSink(p, fields, append)
    if suffix in (".gpkg", ".geojson", ".json"):
        return FionaSink(p, fields, append)
    raise InputError(f"unknown output format {suffix!r}", str(p), "use .csv, .geojson or .gpkg")


def done_sources(paths: Iterable[os.PathLike | str]) -> Set[str]:
    """Sources already written to any of these CSV / GeoPackage outputs (what --resume skips)."""
    done: Set[str] = set()
    for path in paths:
        p = Path(path)
        if not p.is_file() or p.stat().st_size == 0:
            continue
        if p.suffix.lower() == ".csv":
            with open(p, newline="", encoding="utf-8") as fh:
                done.update(row["source"] for row in csv.DictReader(fh) if row.get("source"))
        elif p.suffix.lower() == ".gpkg":
            import fiona

            with fiona.open(p) as col:
                done.update(f["properties"]["source"] for f in col)
    return done

