"""Results on disk without ever losing what the user has: a run journal, then whole outputs at the end.

A batch must survive a crash (every finished photo kept) and must never destroy what is already there (the last
run's CSV, the other layers of a GeoPackage). One mechanism gives both:

- every finished query is appended to the run's *journal* (core/io/journal.py: JSON lines, flushed and fsynced):
  the only file written while the run goes on;
- when the run ends, each output is written whole from the journal through the one atomic writer (temporary name,
  fsync, rename; core/io/files.py); in a GeoPackage only our own layer is replaced, by one SQLite transaction,
  every other layer is left alone;
- an interrupted run leaves the old outputs exactly as they were and the journal with every finished row.
  `--resume` continues the journal (a torn last line is cut off; other options are refused) and writes the
  outputs whole again. Outputs made without a journal (by an older version, by hand) are read back to seed it.

The journal is kept after the run: it is the record of which options made the outputs.
CSV cells that a spreadsheet would run as a formula are neutralised (OWASP: a leading apostrophe); GeoPackage and
GeoJSON keep the raw values.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from ...shared import geopackage
from ...shared.geodesy import haversine_km
from ...shared.photo_list import path_key
from ...shared.schema import (  # noqa: F401 - the result tables, re-exported for the engine's callers
    FAILURE_FIELDS,
    LAYER_MARK,
    PLACE_FIELDS,
    PREDICTION_FIELDS,
    REGION_FIELDS,
    SUMMARY_FIELDS,
    TABLES,
)
from ..errors import InputError
from .files import atomic_output, crash_point
from .names import from_text, to_text
from .plan import IOPlan

log = logging.getLogger("geoclip_qgis")

FORMATS = {".csv": "CSV", ".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
DEFAULT_LAYER = "geoclip_predictions"
STAGED = "__geoclip_new_"  # a layer being written, swapped in by one transaction
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _with_exif(row: dict, gps) -> dict:
    row["exif_lat"], row["exif_lon"], row["error_km"] = None, None, None
    if gps is not None:
        row["exif_lat"], row["exif_lon"] = gps
        row["error_km"] = haversine_km(gps[0], gps[1], row["lat"], row["lon"])
    return row


def prediction_rows(result) -> List[dict]:
    """Flat rows for one QueryResult (one per rank), with names, the EXIF GPS and its error when known."""
    return [_with_exif({"source": result.source, "kind": result.kind, "rank": p.rank, "probability": p.probability,
                        "lat": p.lat, "lon": p.lon, "gallery_index": p.gallery_index, "country": p.country,
                        "region": p.region, "place": p.place, "place_km": p.place_km}, result.gps)
            for p in result.predictions]


def place_rows(result) -> List[dict]:
    """One row per distinct place of a QueryResult."""
    return [_with_exif({"source": result.source, "kind": result.kind, **pl}, result.gps) for pl in result.places]


def summary_row(result) -> dict:
    """The one row per photo or text: its best place, how much of the mass the places hold, or why it failed."""
    if not result.ok:
        err = result.error or {}
        return {"source": result.source, "kind": result.kind, "status": "failed", "lat": None, "lon": None,
                "message": err.get("message", ""), "sha256": getattr(result, "sha256", None)}
    best = result.places[0] if result.places else None
    if best is None:
        return {"source": result.source, "kind": result.kind, "status": "ok", "lat": None, "lon": None,
                "sha256": getattr(result, "sha256", None)}
    row = {"source": result.source, "kind": result.kind, "status": "ok", "label": best.get("label"),
           "probability": best["probability"], "lat": best["lat"], "lon": best["lon"],
           "places_mass": None if result.remaining is None else 1.0 - result.remaining,
           "country": best.get("country"), "region": best.get("region"), "place": best.get("place"),
           "aoi_outside": result.aoi_outside, "exif_problem": getattr(result, "gps_problem", None),
           "hint": getattr(result, "hint", None), "hint_weight": getattr(result, "hint_weight", None),
           "constraint": getattr(result, "constraint", None),
           "sha256": getattr(result, "sha256", None), "saliency": getattr(result, "saliency", None)}
    if result.region:
        row["region90_km2"], row["region90_parts"] = result.region["area_km2"], result.region["parts"]
        row["label"] = f"{row['label']}; {result.region['summary']}"
    return _with_exif(row, result.gps)


def failure_row(result) -> dict:
    err = result.error or {}
    return {"source": result.source, "code": err.get("code", "error"), "message": err.get("message", "")}


def source_key(source: str, kind: str = "image") -> str:
    """How two runs' inputs are compared: photos by their normalised path, texts by their text."""
    return path_key(source) if kind == "image" else source


# ---- CSV safety ------------------------------------------------------------------------------------------------
def csv_safe(value: object) -> object:
    """A text cell a spreadsheet would evaluate (=, +, -, @, tab, CR first) gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_unsafe(value: str) -> str:
    """The raw text of a neutralised cell (for reading our own CSV back)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


# ---- outputs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """One file the run writes, validated before any work starts."""

    path: Path
    driver: str
    layer: Optional[str] = None
    table: str = "ranks"  # CSV and GeoJSON hold one table; a GeoPackage holds all three as layers

    def layers(self) -> Dict[str, str]:
        """Table -> GeoPackage layer name: ours, derived from the one layer name the user chose."""
        return {"ranks": self.layer, "places": f"{self.layer}_places", "summary": f"{self.layer}_summary"}

    @property
    def key(self) -> str:
        return path_key(self.path)


# ---- writing whole outputs ---------------------------------------------------------------------------------------
def _write_csv(path: Path, fields, rows: Iterable[dict]) -> None:
    """Whole, through the one atomic writer. File names that are not UTF-8 (surrogate-escaped by Python on POSIX)
    are written back as the bytes they were, so the name in the table opens the same file."""
    names = [n for n, _ in fields]
    with atomic_output(path, "csv") as tmp, open(tmp, "w", newline="", encoding="utf-8",
                                                 errors="surrogateescape") as fh:
        writer = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for i, r in enumerate(rows):
            writer.writerow({k: ("" if r.get(k) is None else csv_safe(r.get(k))) for k in names})
            if i == 0:
                fh.flush()
                crash_point("csv", "mid-write")


def _point_wkb(lon: Optional[float], lat: Optional[float]) -> Optional[bytes]:
    if lon is None or lat is None:
        return None  # a failed photo's summary row: no position, null geometry
    return struct.pack("<BIdd", 1, 1, float(lon), float(lat))  # little-endian WKB Point


def _columns(fields, rows: List[dict]):
    import numpy as np

    data = []
    for name, kind in fields:
        values = [r.get(name) for r in rows]
        if kind == "float":
            data.append(np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64))
        elif kind == "int":
            data.append(np.array([-1 if v is None else int(v) for v in values], dtype=np.int64))
        else:
            data.append(np.array(["" if v is None else to_text(str(v)) for v in values], dtype=object))
    return data


def write_regions(path: os.PathLike | str, features: List[dict], layer: str = "geoclip_regions") -> Path:
    """Confidence regions (GeoJSON-like features from core.regions) as polygons: GeoPackage (our layer only, as
    for results) or GeoJSON (written whole, then renamed)."""
    import shapely.geometry

    p = Path(path).expanduser()
    if FORMATS.get(p.suffix.lower()) not in ("GPKG", "GeoJSON"):
        raise InputError("confidence regions are polygons", str(path), "write them to .gpkg or .geojson")
    plan = IOPlan("api")  # the caller's plan checked it against the run's inputs; this guards direct API calls
    plan.write(p, "regions output", "regions", (layer,))
    plan.check()
    out = Output(p, FORMATS[p.suffix.lower()], layer if p.suffix.lower() == ".gpkg" else None, "regions")
    rows = [dict(f["properties"]) for f in features]
    geoms = [shapely.geometry.shape(f["geometry"]).wkb for f in features]
    _write_vector(out, REGION_FIELDS, rows, {}, layer, geoms, "MultiPolygon")
    return out.path


def _write_vector(out: Output, fields, rows: List[dict], metadata: Dict[str, str], layer: Optional[str],
                  wkb: Optional[List[bytes]] = None, geometry_type: str = "Point") -> None:
    """GeoJSON, or a GeoPackage that does not exist yet: a new file through the one atomic writer. An existing
    GeoPackage: the new layer is written beside ours under a staged name, then swapped in by one SQLite
    transaction (shared/geopackage.replace_layer); the user's other layers are never touched, and a kill at any
    moment leaves our old layer or the new one."""
    import numpy as np
    from pyogrio import raw

    if wkb is None:
        wkb = [_point_wkb(r.get("lon"), r.get("lat")) for r in rows]
    geometry = np.array(wkb, dtype=object)
    kwargs = dict(fields=[n for n, _ in fields], geometry_type=geometry_type, crs="EPSG:4326", driver=out.driver)
    name = layer or f"geoclip_{_table_of(fields)}"
    hint = "check the disk has space and the file is not locked, then run again with --resume"
    if out.driver == "GPKG":
        kwargs.update(layer_metadata={LAYER_MARK: "1", **metadata})
    if out.driver == "GPKG" and out.path.is_file():
        staged = f"{name}{STAGED}{os.getpid()}"
        crash_point("gpkg-layer", "start")
        for left in geopackage.marked_layers(str(out.path)):  # what a killed write of ours left behind
            if left.startswith(name + STAGED):
                geopackage.drop_layer(str(out.path), left)
        try:
            raw.write(str(out.path), geometry, _columns(fields, rows), layer=staged,
                      layer_options={"SPATIAL_INDEX": "NO"}, **kwargs)
            crash_point("gpkg-layer", "staged")
            geopackage.replace_layer(str(out.path), staged, name,
                                     on_step=lambda s: crash_point("gpkg-layer", s))
            crash_point("gpkg-layer", "committed")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if staged in geopackage.layer_names(str(out.path)):
                    geopackage.drop_layer(str(out.path), staged)
            if isinstance(exc, Exception) and not isinstance(exc, InputError):  # an interrupt stays an interrupt
                raise InputError(f"cannot write the results ({exc})", str(out.path), hint) from exc
            raise
        return
    try:
        with atomic_output(out.path, "gpkg-new" if out.driver == "GPKG" else "geojson") as tmp:
            raw.write(str(tmp), geometry, _columns(fields, rows), layer=name, **kwargs)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot write the results ({exc})", str(out.path), hint) from exc


def write_features(out: Output, fields, rows: List[dict], wkb: List[bytes], geometry_type: str, layer: str) -> None:
    """Features with their own geometry (a trip's track) through the one vector writer (_write_vector)."""
    _write_vector(out, fields, rows, {}, layer, wkb, geometry_type)


def _table_of(fields) -> str:
    for table, f in TABLES.items():
        if f is fields or list(f) == list(fields):
            return {"ranks": "predictions", "places": "predictions_places", "summary": "predictions_summary"}[table]
    if list(fields) == list(FAILURE_FIELDS):
        return "failed"
    if list(fields) == list(REGION_FIELDS):
        return "regions"
    return "results"


def write_output(out: Output, fields, rows: List[dict], metadata: Optional[Dict[str, str]] = None,
                 layer: Optional[str] = None) -> None:
    if out.driver == "CSV":
        _write_csv(out.path, fields, rows)
    else:
        _write_vector(out, fields, rows, metadata or {}, layer or out.layer)


# ---- reading outputs back (resume without a journal) ------------------------------------------------------------
def _typed(fields, row: Dict[str, object]) -> dict:
    out = {}
    for name, kind in fields:
        v = row.get(name)
        if v is None or v == "" or (isinstance(v, float) and v != v):
            out[name] = None
        elif kind == "float":
            out[name] = float(v)
        elif kind == "int":
            out[name] = None if int(v) == -1 and name != "rank" else int(v)
        else:
            out[name] = str(v)
    return out


def read_csv_rows(path: Path, fields) -> List[dict]:
    """Rows of one of our CSVs; a last line torn by a crash (no newline, wrong field count) is dropped."""
    from .files import open_regular

    with open_regular(path, "results CSV") as fh:
        text = fh.read().decode("utf-8", "surrogateescape")  # names that are not UTF-8: core/io/names.py
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        log.warning("%s: the last line was cut off by an interrupted run; it is dropped", path)
        lines = lines[:-1]
    rows = []
    names = [n for n, _ in fields]
    for i, rec in enumerate(csv.DictReader(lines)):
        if None in rec or any(rec.get(n) is None for n in names):
            log.warning("%s: line %d is damaged; it is dropped", path, i + 2)
            continue
        try:
            rows.append(_typed(fields, {k: csv_unsafe(v) if isinstance(v, str) else v for k, v in rec.items()}))
        except ValueError:
            log.warning("%s: line %d is damaged; it is dropped", path, i + 2)
    return rows


def read_vector_rows(out: Output, fields) -> List[dict]:
    import pyogrio
    from pyogrio import raw

    names = [n for n, _ in fields]
    try:
        _, _, _, data = raw.read(str(out.path), layer=out.layer, columns=names, read_geometry=False)
        info_fields = list(pyogrio.read_info(out.path, layer=out.layer)["fields"])
    except Exception as exc:
        raise InputError(f"cannot read earlier results to resume ({exc})", str(out.path),
                         "run without --resume to start over") from exc
    cols = {n: data[info_fields.index(n)] if n in info_fields else None for n in names}
    if cols["source"] is None:
        raise InputError("the earlier results have no 'source' column", str(out.path), "run without --resume")
    n = len(cols["source"])
    return [_typed(fields, {k: (None if c is None else from_text(c[i]) if isinstance(c[i], str) else c[i])
                            for k, c in cols.items()}) for i in range(n)]


def has_results(out: Output) -> bool:
    if not out.path.is_file():
        return False
    if out.driver != "GPKG":
        return True
    import pyogrio

    return out.layer in [str(n) for n in pyogrio.list_layers(out.path)[:, 0]]
