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

import contextlib
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
from .files import atomic_output, commit_file, crash_point, same_file_key, temp_sibling
from .plan import IOPlan

log = logging.getLogger("geoclip_qgis")

FORMATS = {".csv": "CSV", ".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
DEFAULT_LAYER = "geoclip_predictions"
JOURNAL_VERSION = 2  # 2: the header lists outputs in canonical order; version 1 journals are still read
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
                 table: str = "ranks", plan: Optional[IOPlan] = None, failed: bool = True) -> List[Output]:
    """Declare a run's result outputs (and the failed-photos list and journal beside them) in the run's I/O plan,
    and check the plan unless the caller still has outputs to add (`plan` given). The same file named twice is
    written once. Nothing is created or changed here."""
    if table not in TABLES:
        raise InputError(f"unknown table {table!r}", hint=f"use one of {', '.join(TABLES)}")
    outs: List[Output] = []
    seen: Set[str] = set()
    own = plan is None
    plan = plan if plan is not None else IOPlan()
    for raw in paths:
        p = Path(raw).expanduser()
        driver = FORMATS.get(p.suffix.lower())
        if driver is None:
            raise InputError(f"unknown output format {p.suffix or '(no suffix)'!r}", str(p),
                             "use .csv, .geojson or .gpkg")
        out = Output(p, driver, (layer or DEFAULT_LAYER) if driver == "GPKG" else None, table)
        if out.key in seen:
            log.warning("%s: named twice, written once", p)
            continue
        seen.add(out.key)
        outs.append(out)
        plan.write(p, "output", "table", list(out.layers().values()) if driver == "GPKG" else ())
    if outs and failed:
        first = canonical_first(outs)
        plan.write(failed_path(first.path), "failed-photos list", "failed")
        jpath = journal_path(first.path)
        plan.write(jpath, "run journal", "journal")
        plan.trust(_journal_outputs(jpath))
    if own:
        plan.check()
    return outs


def canonical_first(outs: Sequence[Output]) -> Output:
    """The output the journal and the failed list sit beside: the first in a canonical order, so the order of
    `-o` options never changes where a run's record is (a resume with the two `-o` swapped finds it)."""
    return min(outs, key=lambda o: o.key)


def _journal_outputs(jpath: Path) -> List[str]:
    """The outputs an existing journal of ours says it wrote (they are ours to replace)."""
    try:
        with open(jpath, "rb") as fh:
            head = json.loads(fh.readline(1 << 20).decode("utf-8"))
        return [str(p) for p in head.get("outputs", [])] if isinstance(head, dict) and "journal" in head else []
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return []


def failed_path(out: os.PathLike | str) -> Path:
    """Photos that could not be read are listed next to the first output, with the reason."""
    p = Path(out)
    return p.with_name(p.stem + ".failed.csv")


def journal_path(first_output: Path) -> Path:
    return first_output.with_name(f".{first_output.name}.geoclip-run.jsonl")


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
            data.append(np.array(["" if v is None else str(v) for v in values], dtype=object))
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
        staged = f"{name}__geoclip_new_{os.getpid()}"
        crash_point("gpkg-layer", "start")
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
            if isinstance(exc, (geopackage.NotAGeoPackage, Exception)) and not isinstance(exc, InputError):
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

    with open_regular(path, "results CSV", binary=False) as fh:
        text = fh.read()
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
    return [_typed(fields, {k: (None if c is None else c[i]) for k, c in cols.items()}) for i in range(n)]


def has_results(out: Output) -> bool:
    if not out.path.is_file():
        return False
    if out.driver != "GPKG":
        return True
    import pyogrio

    return out.layer in [str(n) for n in pyogrio.list_layers(out.path)[:, 0]]


# ---- the run -----------------------------------------------------------------------------------------------------
class ResultWriter:
    """The outputs of one CLI run: `open` (after the models are loaded), `add` per query, `finish` at the end.

    The journal is the run's manifest: its header holds the options that make rows comparable, the outputs in
    canonical order, and every finished row follows. `--resume` rebuilds every output from it, refuses other
    options with the reason, retries the inputs that failed (a photo unreadable then may be readable now), and
    reads a foreign or damaged line as an error naming the line."""

    def __init__(self, outputs: List[Output], resume: bool = False):
        self.outputs = outputs
        self.resume = resume
        first = canonical_first(outputs) if outputs else None
        self.failed = failed_path(first.path) if first else None
        self.journal = journal_path(first.path) if first else None
        self.rows: List[dict] = []
        self.places: List[dict] = []
        self.summary: List[dict] = []
        self.failures: List[dict] = []
        self.done: Set[str] = set()
        self.fingerprint: Dict[str, object] = {}
        self._fh = None

    @classmethod
    def plan(cls, paths: Sequence[os.PathLike | str], resume: bool = False, layer: Optional[str] = None,
             table: str = "ranks", plan: Optional[IOPlan] = None):
        return cls(plan_outputs(paths, layer, table, plan), resume)

    # -- resume state (read only) --
    def load_previous(self, fingerprint: Dict[str, object]) -> Set[str]:
        """With --resume: what earlier runs finished, from the journal or else the outputs. Reads only; refuses a
        journal written with other options. Failed inputs are not 'done': they are tried again."""
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
                self._absorb(entry)
        else:
            self._seed_from_outputs()
        self.done = {source_key(r["source"], r.get("kind", "image")) for r in self.rows}
        return self.done

    def _absorb(self, entry: dict) -> None:
        """Add one journal entry; a new answer for an input replaces its earlier failure (a retried photo)."""
        keys = {source_key(r["source"], r.get("kind", "image")) for r in entry.get("summary", []) + entry["rows"]}
        if keys:
            self.failures = [r for r in self.failures if source_key(r["source"]) not in keys]
            self.summary = [r for r in self.summary if source_key(r["source"], r.get("kind", "image")) not in keys]
        (self.rows if entry["t"] == "rows" else self.failures).extend(entry["rows"])
        self.places.extend(entry.get("places", []))
        self.summary.extend(entry.get("summary", []))

    def _read_journal(self) -> Tuple[Optional[dict], List[dict]]:
        path = self._existing_journal()
        if path is None:
            return None, []
        from .files import open_regular

        with open_regular(path, "run journal") as fh:
            data = fh.read()
        lines = data.split(b"\n")
        if lines and lines[-1]:
            log.warning("%s: the last entry was cut off by an interrupted run; it is dropped", path)
        entries = []
        hint = "delete it and run without --resume"
        for n, line in enumerate(lines[:-1], start=1):
            try:
                entry = json.loads(line.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"the run journal is damaged at line {n}", str(path), hint) from None
            if n == 1:
                if not isinstance(entry, dict) or entry.get("journal") not in (1, JOURNAL_VERSION):
                    raise InputError("not a GeoCLIP run journal (line 1 is not its header)", str(path), hint)
            elif not (isinstance(entry, dict) and entry.get("t") in ("rows", "failed")
                      and isinstance(entry.get("rows"), list) and all(isinstance(r, dict) for r in entry["rows"])
                      and all(isinstance(r, dict) and "source" in r for r in entry["rows"] + entry.get("summary", []))
                      and isinstance(entry.get("places", []), list) and isinstance(entry.get("summary", []), list)):
                raise InputError(f"the run journal has a line that is not ours at line {n}", str(path), hint)
            entries.append(entry)
        if not entries:
            raise InputError("not a GeoCLIP run journal (it is empty)", str(path), hint)
        if path != self.journal:
            log.warning("%s: read the journal of an earlier version's run", path)
        return entries[0], entries[1:]

    def _existing_journal(self) -> Optional[Path]:
        """This run's journal; else one an earlier version left beside another of the outputs."""
        if self.journal is not None and self.journal.is_file():
            return self.journal
        for out in self.outputs:
            old = journal_path(out.path)
            if old.is_file():
                return old
        return None

    def _seed_from_outputs(self) -> None:
        """No journal (deleted, or outputs made by hand): read back every table the outputs need, or refuse when
        an earlier table cannot be rebuilt (a CSV of the ranks holds no places and no summary)."""
        have: Dict[str, Tuple[Output, Optional[str]]] = {}
        for o in sorted((o for o in self.outputs if has_results(o)),
                        key=lambda o: ["GPKG", "CSV", "GeoJSON"].index(o.driver)):
            if o.driver == "GPKG":
                for table, layer in o.layers().items():
                    if _has_layer(o, layer):
                        have.setdefault(table, (o, layer))
            else:
                have.setdefault(o.table, (o, None))
        if not have:
            return
        need = set()
        for o in self.outputs:
            need |= set(TABLES) if o.driver == "GPKG" else {o.table}
        missing = sorted(need - set(have))
        if missing:
            raise InputError(f"cannot resume: the run journal is gone and the outputs hold no {' or '.join(missing)} "
                             "table of the earlier run, so it cannot be rebuilt", str(self.outputs[0].path),
                             "run without --resume to start over")
        tables = {}
        for table, (o, layer) in have.items():
            fields = TABLES[table]
            tables[table] = read_csv_rows(o.path, fields) if o.driver == "CSV" else \
                read_vector_rows(Output(o.path, o.driver, layer or o.layer, table), fields)
        self.rows = tables.get("ranks", [])
        self.places = tables.get("places", [])
        self.summary = tables.get("summary", [])
        ranks = {r["rank"] for r in self.rows if r.get("rank")}
        want = self.fingerprint.get("top_k")
        if ranks and want is not None and max(ranks) != want:
            raise InputError(f"cannot resume: the earlier results have top-k {max(ranks)}, this run {want}",
                             str(self.outputs[0].path), f"run with --top-k {max(ranks)}, or without --resume")
        log.warning("%s: no run journal, so the earlier run's gallery and weights cannot be checked; "
                    "resuming on the assumption that they were the same", self.outputs[0].path)
        if self.failed is not None and self.failed.is_file():
            self.failures = read_csv_rows(self.failed, FAILURE_FIELDS)
        failed = {source_key(r["source"]) for r in self.failures}
        self.summary = [r for r in self.summary if source_key(r["source"], r.get("kind", "image")) not in failed]

    # -- writing --
    def open(self) -> None:
        """Start (or continue) the journal: the first write of the run, made once the models are loaded."""
        if self.journal is None:
            return
        tmp = temp_sibling(self.journal)
        try:
            with open(tmp, "wb") as fh:
                header = {"journal": JOURNAL_VERSION, "fingerprint": self.fingerprint,
                          "outputs": sorted(str(o.path.resolve()) for o in self.outputs)}
                fh.write(json.dumps(header).encode() + b"\n")
                if self.rows or self.places or self.summary:
                    entry = {"t": "rows", "rows": self.rows, "places": self.places, "summary": self.summary}
                    fh.write(json.dumps(entry).encode() + b"\n")
                if self.failures:
                    fh.write(json.dumps({"t": "failed", "rows": self.failures}).encode() + b"\n")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        commit_file(tmp, self.journal, "journal")
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
        if result.ok:
            rows, places = prediction_rows(result), place_rows(result)
            entry = {"t": "rows", "rows": rows, "places": places, "summary": summary}
        else:
            rows = []
            entry = {"t": "failed", "rows": [failure_row(result)], "summary": summary}
        self._absorb(entry)
        self._append(entry)
        return rows

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


def _has_layer(out: Output, layer: str) -> bool:
    return layer in geopackage.layer_names(str(out.path))
