"""Results on disk without ever losing what the user has: a run journal, then whole outputs at the end.

A batch must survive a crash (every finished photo kept) and must never destroy what is already there (the last
run's CSV, the other layers of a GeoPackage). One mechanism gives both:

- every finished query is appended to the run's *journal* (JSON lines next to the first output, flushed and
  fsynced): the only file written while the run goes on;
- when the run ends, each output is written whole from the journal under a temporary name and renamed over the
  old one (CSV, GeoJSON); in a GeoPackage only our own layer is replaced, every other layer is left alone;
- an interrupted run leaves the old outputs exactly as they were and the journal with every finished row.
  `--resume` continues the journal (a torn last line is cut off; other options are refused) and writes the
  outputs whole again. Outputs made without a journal (by an older version, by hand) are read back to seed it.

The journal is kept after the run: it is the record of which options made the outputs.
CSV cells that a spreadsheet would run as a formula are neutralised (OWASP: a leading apostrophe); GeoPackage and
GeoJSON keep the raw values.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ...shared import geopackage
from ...shared.geodesy import haversine_km
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
from .files import check_output, same_file_key
from .names import from_text, to_text

log = logging.getLogger("geoclip_qgis")

FORMATS = {".csv": "CSV", ".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
DEFAULT_LAYER = "geoclip_predictions"
JOURNAL_VERSION = 1
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
                "message": err.get("message", "")}
    best = result.places[0] if result.places else None
    if best is None:
        return {"source": result.source, "kind": result.kind, "status": "ok", "lat": None, "lon": None}
    row = {"source": result.source, "kind": result.kind, "status": "ok", "label": best.get("label"),
           "probability": best["probability"], "lat": best["lat"], "lon": best["lon"],
           "places_mass": None if result.remaining is None else 1.0 - result.remaining,
           "country": best.get("country"), "region": best.get("region"), "place": best.get("place"),
           "aoi_outside": result.aoi_outside, "exif_problem": getattr(result, "gps_problem", None)}
    if result.region:
        row["region90_km2"], row["region90_parts"] = result.region["area_km2"], result.region["parts"]
        row["label"] = f"{row['label']}; {result.region['summary']}"
    return _with_exif(row, result.gps)


def failure_row(result) -> dict:
    err = result.error or {}
    return {"source": result.source, "code": err.get("code", "error"), "message": err.get("message", "")}


def source_key(source: str, kind: str = "image") -> str:
    """How two runs' inputs are compared: photos by their normalised path, texts by their text."""
    return same_file_key(source) if kind == "image" else source


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
        return same_file_key(self.path)


def plan_outputs(paths: Sequence[os.PathLike | str], layer: Optional[str] = None,
                 table: str = "ranks") -> List[Output]:
    """Check every output before the run (format known, folder writable, not a folder); the same file named twice
    is written once. Nothing is created or changed here."""
    outs: List[Output] = []
    seen: Set[str] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        driver = FORMATS.get(p.suffix.lower())
        if driver is None:
            raise InputError(f"unknown output format {p.suffix or '(no suffix)'!r}", str(p),
                             "use .csv, .geojson or .gpkg")
        check_output(p)
        if table not in TABLES:
            raise InputError(f"unknown table {table!r}", hint=f"use one of {', '.join(TABLES)}")
        out = Output(p, driver, (layer or DEFAULT_LAYER) if driver == "GPKG" else None, table)
        if out.key in seen:
            log.warning("%s: named twice, written once", p)
            continue
        seen.add(out.key)
        outs.append(out)
    if outs:
        failed = failed_path(outs[0].path)
        if same_file_key(failed) in seen:
            raise InputError("an output has the name of the failed-photos list", str(failed),
                             "choose another output name")
        check_output(failed, "failed-photos list")
    for out in outs:
        if out.driver == "GPKG" and out.path.is_file():
            _check_our_layer(out)
    return outs


def failed_path(out: os.PathLike | str) -> Path:
    """Photos that could not be read are listed next to the first output, with the reason."""
    p = Path(out)
    return p.with_name(p.stem + ".failed.csv")


def journal_path(first_output: Path) -> Path:
    return first_output.with_name(f".{first_output.name}.geoclip-run.jsonl")


def _check_our_layer(out: Output) -> None:
    """A GeoPackage layer of our name that we did not write is the user's: refuse, never replace it."""
    problems = geopackage.refusals(str(out.path), out.layers().values())
    if problems:
        raise InputError("; ".join(problems), str(out.path),
                         "choose another layer name with --layer, or another file")


# ---- writing whole outputs ---------------------------------------------------------------------------------------
def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def _replace(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot replace the output ({exc.strerror or exc})", str(final),
                         "close it in any program that has it open, then run again with --resume") from exc


def _write_csv(path: Path, fields, rows: Iterable[dict]) -> None:
    names = [n for n, _ in fields]
    tmp = _tmp_name(path)
    try:
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:  # core/io/names.py
            writer = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if r.get(k) is None else csv_safe(r.get(k))) for k in names})
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace(tmp, path)


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

    out = plan_outputs([path], layer)[0]
    if out.driver == "CSV":
        raise InputError("confidence regions are polygons", str(path), "write them to .gpkg or .geojson")
    rows = [dict(f["properties"]) for f in features]
    geoms = [shapely.geometry.shape(f["geometry"]).wkb for f in features]
    _write_vector(out, REGION_FIELDS, rows, {}, layer, geoms, "MultiPolygon")
    return out.path


def _write_vector(out: Output, fields, rows: List[dict], metadata: Dict[str, str], layer: Optional[str],
                  wkb: Optional[List[bytes]] = None, geometry_type: str = "Point") -> None:
    """GeoJSON: a new file renamed over the old. GeoPackage: a new file renamed into place when there is none,
    else our layer replaced inside it (GDAL's GPKG driver leaves every other layer as it is)."""
    import numpy as np
    from pyogrio import raw

    if wkb is None:
        wkb = [_point_wkb(r.get("lon"), r.get("lat")) for r in rows]
    geometry = np.array(wkb, dtype=object)
    kwargs = dict(fields=[n for n, _ in fields], geometry_type=geometry_type, crs="EPSG:4326", driver=out.driver)
    if out.driver == "GPKG":
        kwargs.update(layer=layer, layer_metadata={LAYER_MARK: "1", **metadata})
    in_place = out.driver == "GPKG" and out.path.is_file()
    target = out.path if in_place else _tmp_name(out.path)
    try:
        raw.write(str(target), geometry, _columns(fields, rows), **kwargs)
    except Exception as exc:
        if not in_place:
            target.unlink(missing_ok=True)
        raise InputError(f"cannot write the results ({exc})", str(out.path),
                         "check the disk has space and the file is not locked, then run again with --resume") from exc
    if not in_place:
        _replace(target, out.path)


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


# ---- the run -----------------------------------------------------------------------------------------------------
class ResultWriter:
    """The outputs of one CLI run: `open` (after the models are loaded), `add` per query, `finish` at the end."""

    def __init__(self, outputs: List[Output], resume: bool = False):
        self.outputs = outputs
        self.resume = resume
        self.failed = failed_path(outputs[0].path) if outputs else None
        self.journal = journal_path(outputs[0].path) if outputs else None
        self.rows: List[dict] = []
        self.places: List[dict] = []
        self.summary: List[dict] = []
        self.failures: List[dict] = []
        self.done: Set[str] = set()
        self.fingerprint: Dict[str, object] = {}
        self._fh = None

    @classmethod
    def plan(cls, paths: Sequence[os.PathLike | str], resume: bool = False, layer: Optional[str] = None,
             table: str = "ranks"):
        return cls(plan_outputs(paths, layer, table), resume)

    # -- resume state (read only) --
    def load_previous(self, fingerprint: Dict[str, object]) -> Set[str]:
        """With --resume: what earlier runs finished, from the journal or else the outputs. Reads only; refuses a
        journal written with other options."""
        self.fingerprint = dict(fingerprint)
        if not self.resume or not self.outputs:
            return set()
        header, entries = self._read_journal()
        if header is not None:
            old = header.get("fingerprint", {})
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            if diff:
                said = ", ".join(f"{k}: {old.get(k)!r} then, {fingerprint.get(k)!r} now" for k in diff)
                raise InputError(f"cannot resume: the earlier run used other options ({said})", str(self.journal),
                                 "run with the same options, or without --resume to start over")
            for entry in entries:
                (self.rows if entry["t"] == "rows" else self.failures).extend(entry["rows"])
                self.places.extend(entry.get("places", []))
                self.summary.extend(entry.get("summary", []))
        else:
            self._seed_from_outputs()
        self.done = {source_key(r["source"], r.get("kind", "image")) for r in self.rows}
        self.done |= {source_key(r["source"]) for r in self.failures}
        return self.done

    def _read_journal(self) -> Tuple[Optional[dict], List[dict]]:
        if self.journal is None or not self.journal.is_file():
            return None, []
        from .files import open_regular

        with open_regular(self.journal, "run journal") as fh:
            data = fh.read()
        lines = data.split(b"\n")
        if lines and lines[-1]:
            log.warning("%s: the last entry was cut off by an interrupted run; it is dropped", self.journal)
        entries = []
        for line in lines[:-1]:
            try:
                entries.append(json.loads(line.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                raise InputError("the run journal is damaged", str(self.journal),
                                 "delete it and run without --resume") from None
        if not entries or entries[0].get("journal") != JOURNAL_VERSION:
            raise InputError("not a GeoCLIP run journal", str(self.journal), "delete it and run without --resume")
        return entries[0], entries[1:]

    def _seed_from_outputs(self) -> None:
        existing = [o for o in self.outputs if has_results(o)]
        if existing:
            first = min(existing, key=lambda o: ["CSV", "GPKG", "GeoJSON"].index(o.driver))
            self.rows = read_csv_rows(first.path, PREDICTION_FIELDS) if first.driver == "CSV" else \
                read_vector_rows(first, PREDICTION_FIELDS)
            ranks = {r["rank"] for r in self.rows if r.get("rank")}
            want = self.fingerprint.get("top_k")
            if ranks and want is not None and max(ranks) != want:
                raise InputError(f"cannot resume: the earlier results have top-k {max(ranks)}, this run {want}",
                                 str(first.path), f"run with --top-k {max(ranks)}, or without --resume")
            log.warning("%s: no run journal, so the earlier run's gallery and weights cannot be checked; "
                        "resuming on the assumption that they were the same", first.path)
        if self.failed is not None and self.failed.is_file():
            self.failures = read_csv_rows(self.failed, FAILURE_FIELDS)

    # -- writing --
    def open(self) -> None:
        """Start (or continue) the journal: the first write of the run, made once the models are loaded."""
        if self.journal is None:
            return
        tmp = self.journal.with_name(self.journal.name + ".new")
        with open(tmp, "wb") as fh:
            header = {"journal": JOURNAL_VERSION, "fingerprint": self.fingerprint,
                      "outputs": [str(o.path) for o in self.outputs]}
            fh.write(json.dumps(header).encode() + b"\n")
            if self.rows or self.places or self.summary:
                entry = {"t": "rows", "rows": self.rows, "places": self.places, "summary": self.summary}
                fh.write(json.dumps(entry).encode() + b"\n")
            if self.failures:
                fh.write(json.dumps({"t": "failed", "rows": self.failures}).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.journal)
        self._fh = open(self.journal, "ab")  # noqa: SIM115 - lives with the run

    def _append(self, entry: dict) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(json.dumps(entry).encode() + b"\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise InputError(f"cannot record results ({exc.strerror or exc})", str(self.journal),
                             "free some disk space, then run again with --resume") from exc

    def add(self, result) -> List[dict]:
        """Record one finished query durably; returns its rows."""
        summary = [summary_row(result)]
        self.summary.extend(summary)
        if result.ok:
            rows, places = prediction_rows(result), place_rows(result)
            self.rows.extend(rows)
            self.places.extend(places)
            self._append({"t": "rows", "rows": rows, "places": places, "summary": summary})
            return rows
        row = failure_row(result)
        self.failures.append(row)
        self._append({"t": "failed", "rows": [row], "summary": summary})
        return []

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        """Write every output whole from the rows of this run (and, with --resume, the earlier ones)."""
        self.close()
        meta = {"GEOCLIP_RUN": json.dumps(self.fingerprint, sort_keys=True)}
        tables = {"ranks": self.rows, "places": self.places, "summary": self.summary}
        for out in self.outputs:
            if out.driver == "GPKG":
                for table, layer in out.layers().items():
                    write_output(out, TABLES[table], tables[table], meta, layer)
            else:
                write_output(out, TABLES[out.table], tables[out.table], meta)
        if self.failed is not None and (self.failures or self.failed.exists()):
            write_output(Output(self.failed, "CSV"), FAILURE_FIELDS, self.failures)
