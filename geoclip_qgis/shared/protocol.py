"""The JSON-lines protocol between QGIS and the engine worker. Standard library only: both sides import it.

One JSON object per line. QGIS -> worker:
    {"id": 7, "op": "geolocate_images", "params": {...}}     a request (ops below)
    {"op": "cancel", "target": 7}                            stop request 7 after the item in progress
    {"op": "shutdown"}
Worker -> QGIS:
    {"type": "ready", "protocol": 1, ...}                    once, at start-up
    {"id": 7, "type": "progress", "done": 3, "total": 10, "message": "..."}
    {"id": 7, "type": "row", "data": {...}}                  one finished photo / query (flushed as it is done)
    {"id": 7, "type": "result", "data": {...}}               the request is complete (or was cancelled)
    {"id": 7, "type": "error", "error": {"code", "message", "path", "hint"}}
    {"type": "log", "level": "warning", "message": "..."}
    {"type": "heartbeat", "lines": 12, "active": [7]}         every HEARTBEAT_SECONDS when the client asks for it

Limits, one set that agrees (tests/test_worker_limits.py checks each op's worst case):
- a request line is at most MAX_LINE_BYTES. The client refuses a longer one before sending it (naming its largest
  parameter); the worker skips one without holding it and answers with the id read from the line's start.
- every reply line is at most MAX_REPLY_BYTES: the schema's maxima keep each op's worst reply below it (a row
  per photo or query, MAX_ENCODE_POINTS embeddings, a top-k of 100,000), and the worker replaces anything larger by a
  `too_large` error with the request's id, so nothing can grow without bound in either process.
- an error whose id is null answers a line whose id could not be read at all (not JSON, no id near its start):
  a client with one request outstanding (ours serves one at a time) takes it as that request's error.
- liveness: a client that sets HEARTBEAT_ENV gets a heartbeat every HEARTBEAT_SECONDS with the number of lines
  the worker has finished reading and the ids it holds (queued or running). Once `lines` counts the request's
  line and `active` lacks its id while no reply came, the request was lost: an error, never an endless wait.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Dict, List, Optional

from . import photo_list
from .defaults import PRECISION_VALUES

PROTOCOL_VERSION = 1
OPS = ("info", "geolocate_images", "geolocate_text", "likelihood", "features", "similar", "encode_locations",
       "field_status", "build_field", "download_clip", "cancel", "shutdown")
WORKER_MODULE = "geoclip_qgis.core.service.worker"
PARENT_ENV = "GEOCLIP_PARENT_PID"  # set by QGIS's engine client: the worker exits when that process is gone
# Photo file suffixes the engine reads (QGIS lists folders with it, without importing the engine).
IMAGE_SUFFIXES = photo_list.IMAGE_SUFFIXES  # one definition: shared/photo_list.py


def encode(message: Dict[str, Any]) -> str:
    """One line; ASCII-escaped so that no path or text can break the framing."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n"


MAX_LINE_BYTES = 16 * 2**20  # a request naming 100K photos is ~10 MB; a longer line is refused, not parsed
MAX_REPLY_BYTES = 256 * 2**20  # one reply line; a top-k of 100,000 makes a ~115 MB row, the largest one
MAX_ENCODE_POINTS = 4096  # encode_locations: 512 floats each, ~13 KB of JSON a point, ~50 MB at most
HEARTBEAT_ENV = "GEOCLIP_HEARTBEAT"  # seconds between heartbeats; set by the plugin's client, unset: none
HEARTBEAT_SECONDS = 2.0
_ID_AT_START = re.compile(rb'^\s*\{\s*(?:"[A-Za-z_]{1,16}"\s*:\s*(?:"[^"\\]{0,64}"|-?\d{1,18})\s*,\s*){0,3}'
                          rb'"id"\s*:\s*(-?\d{1,18}|"[^"\\]{1,64}")\s*[,}]')


def peek_id(line: bytes) -> Any:
    """The request id of a line that cannot be parsed whole (over-long, not JSON), read from its start: the
    `"id"` member among the first few scalar members of the object (our client writes it first). None when
    it cannot be read; never raises."""
    m = _ID_AT_START.match(bytes(line[:4096]))
    if not m:
        return None
    raw = m.group(1)
    try:
        return check_id(json.loads(raw))
    except ValueError:
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a protocol message (JSON has no NaN or Infinity)")


def decode(line: str | bytes) -> Dict[str, Any]:
    """One message: strict JSON (no NaN/Infinity), an object, UTF-8. Raises ValueError for anything else."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"the line is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    message = json.loads(line, parse_constant=_no_constant)
    if not isinstance(message, dict):
        raise ValueError("a protocol message must be a JSON object")
    return message


# ---- engine options: one definition, used by QGIS (engine_client) and the worker ------------------------------------
ENGINE_DEFAULTS: Dict[str, Any] = {"weights": "", "clip_path": "", "device": "auto", "precision": "auto",
                                   "gallery": "default", "cache_dir": "", "batch_size": 8}


def canonical_engine_options(opts: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Engine options with every default filled in, the device lower-case and paths normalised: two option sets
    that mean the same engine compare equal, so the dock, the map tool and Processing share one loaded model."""
    import os

    out = {**ENGINE_DEFAULTS, **{k: v for k, v in (opts or {}).items() if v not in (None, "")}}
    out["device"] = str(out["device"]).strip().lower()
    out["precision"] = str(out["precision"]).strip().lower()
    for key in ("weights", "clip_path", "cache_dir"):
        if out[key]:
            out[key] = os.path.normpath(os.path.expanduser(str(out[key])))
    if out["gallery"] != "default" and not str(out["gallery"]).startswith("fibonacci"):
        out["gallery"] = os.path.normpath(os.path.expanduser(str(out["gallery"])))
    out["batch_size"] = int(out["batch_size"])
    return out


# ---- request schema: one definition of what every op accepts ------------------------------------------------------
class SchemaError(ValueError):
    """A request that does not fit the schema; `param` names the parameter (dotted for nested ones)."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(f"parameter {param!r}: {message}")


Check = Callable[[str, Any], Any]


def _type_name(value: Any) -> str:
    return "null" if value is None else {"str": "a string", "int": "an integer", "float": "a number",
                                         "bool": "true/false", "list": "a list", "dict": "an object"}.get(
        type(value).__name__, type(value).__name__)


def string(max_len: int = 4096, choices: Optional[tuple] = None, empty: bool = True) -> Check:
    def check(name: str, v: Any) -> Any:
        if not isinstance(v, str):
            raise SchemaError(name, f"must be a string, got {_type_name(v)}")
        if len(v) > max_len:
            raise SchemaError(name, f"is {len(v):,} characters long; at most {max_len:,}")
        if choices is not None and v not in choices:
            raise SchemaError(name, f"must be one of {', '.join(choices)}; got {v[:40]!r}")
        if not empty and not v.strip():
            raise SchemaError(name, "must not be empty")
        return v
    return check


def integer(lo: Optional[int] = None, hi: Optional[int] = None) -> Check:
    def check(name: str, v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise SchemaError(name, f"must be a whole number, got {_type_name(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise SchemaError(name, f"must be between {lo} and {hi}, got {v}")
        return v
    return check


def number(lo: Optional[float] = None, hi: Optional[float] = None, positive: bool = False) -> Check:
    def check(name: str, v: Any) -> Any:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise SchemaError(name, f"must be a finite number, got {_type_name(v) if not isinstance(v, float) else v}")
        if (lo is not None and v < lo) or (hi is not None and v > hi) or (positive and v <= 0):
            raise SchemaError(name, f"must be {'> 0' if positive else f'between {lo} and {hi}'}, got {v}")
        return float(v)
    return check


def boolean() -> Check:
    def check(name: str, v: Any) -> Any:
        if not isinstance(v, bool):
            raise SchemaError(name, f"must be true or false, got {_type_name(v)}")
        return v
    return check


def listof(item: Check, min_len: int = 0, max_len: int = 1_000_000) -> Check:
    def check(name: str, v: Any) -> Any:
        if not isinstance(v, list):  # a string is never a list of strings
            raise SchemaError(name, f"must be a list, got {_type_name(v)}")
        if not min_len <= len(v) <= max_len:
            raise SchemaError(name, f"must have {min_len} to {max_len:,} items, got {len(v):,}")
        return [item(f"{name}[{i}]", x) for i, x in enumerate(v)]
    return check


def nullable(inner: Check) -> Check:
    def check(name: str, v: Any) -> Any:
        return None if v is None else inner(name, v)
    return check


def either(*checks: Check) -> Check:
    def check(name: str, v: Any) -> Any:
        errors: List[str] = []
        for c in checks:
            try:
                return c(name, v)
            except SchemaError as exc:
                errors.append(str(exc).split(": ", 1)[1])
        raise SchemaError(name, " or ".join(errors))
    return check


def obj(fields: Dict[str, Check], required: tuple = ()) -> Check:
    def check(name: str, v: Any) -> Any:
        if not isinstance(v, dict):
            raise SchemaError(name, f"must be an object, got {_type_name(v)}")
        return validate_fields(v, fields, required, prefix=f"{name}.")
    return check


def validate_fields(params: Dict[str, Any], fields: Dict[str, Check], required: tuple = (),
                    prefix: str = "") -> Dict[str, Any]:
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise SchemaError(prefix + unknown[0], f"is not a parameter of this request (known: {', '.join(fields)})")
    for key in required:
        if params.get(key) is None:
            raise SchemaError(prefix + key, "is required")
    return {k: fields[k](prefix + k, v) for k, v in params.items()}


_path = string(32768, empty=False)
ENGINE = obj({
    "weights": string(32768), "clip_path": string(32768), "cache_dir": string(32768),
    "device": string(32), "precision": string(8, choices=PRECISION_VALUES + ("",)), "gallery": string(32768),
    "batch_size": integer(1, 4096),
})
_extent = nullable(listof(number(-360, 360), 4, 4))
_resolution = either(number(positive=True, hi=180), string(8, choices=("auto", "")))
_top_k = integer(1, 100_000)
_raster = {"engine": ENGINE, "extent": _extent, "resolution": _resolution, "out": _path, "cog": boolean(),
           "preview": nullable(string(32768)), "view_px": nullable(listof(integer(1, 100_000), 2, 2))}
MAX_TEXT_CHARS = 2000  # CLIP reads 77 tokens; no text of more than ~2,000 characters fits in them
# An area of interest: a GeoJSON geometry, WKT or a vector file's path, a W,S,E,N bbox, a country or region name or
# ISO code, 'within R km of LAT, LON' or {"near": [lat, lon], "radius_km": R}, or a list of these: their union
# (core/answers/aoi.py AreaOfInterest.parse, the one reader).
_circle = obj({"near": listof(number(-180, 180), 2, 2), "radius_km": number(positive=True, hi=20_100)},
              ("near", "radius_km"))
_geometry = obj({"type": string(32), "coordinates": listof(lambda n, v: v, 0, MAX_LINE_BYTES // 2)})
_bbox = listof(number(-180, 180), 4, 4)
_aoi = nullable(either(_geometry, _circle, string(MAX_LINE_BYTES), _bbox,
                       listof(either(string(MAX_LINE_BYTES, empty=False), _circle, _geometry, _bbox), 1, 1000)))


def area_request(base: Any = None, limit_to: Optional[str] = None, near: Optional[str] = None,
                 radius_km: Optional[float] = None) -> Any:
    """The request's `aoi` from a front door's separate fields (the CLI's --aoi/--near/--radius-km, the dock's and
    Processing's area, 'Limit to', 'Near' and radius): one value, or a list of parts whose union the engine takes.
    A circle is sent in the engine's text form, 'within R km of LAT, LON', which the engine reads and checks
    (core/answers/boundaries.py). Raises ValueError when only one of the point and the radius is given."""
    near = str(near or "").strip()
    radius = float(radius_km or 0)
    if bool(near) != (radius > 0):
        raise ValueError("a circle needs both a centre and a radius")
    parts = [] if base in (None, "") else (list(base) if isinstance(base, list) and base and
                                            not all(isinstance(v, (int, float)) for v in base) else [base])
    if limit_to and str(limit_to).strip():
        parts.append(str(limit_to).strip())
    if near:
        parts.append(f"within {radius:g} km of {near}")
    return None if not parts else parts[0] if len(parts) == 1 else parts


_answers = {"aoi": _aoi, "region_res": nullable(number(positive=True, hi=10)),
            "place_radius_km": number(positive=True, hi=20_000),
            "hint": nullable(string(MAX_TEXT_CHARS)), "hint_weight": number(0, 100)}  # core/answers/hints.py
# A trip (core/answers/trip.py): the photos answered jointly in time order; the travel speed and the slack.
_trip = {"trip": boolean(), "trip_speed_kmh": number(positive=True, hi=1e9), "trip_slack_km": number(0, 20_000)}
SCHEMA: Dict[str, tuple] = {
    "info": ({"device": nullable(string(32)), "precision": nullable(string(8, choices=PRECISION_VALUES)),
              "engine": nullable(ENGINE), "check_models": boolean(),
              "clip_path": nullable(string(32768)), "weights": nullable(string(32768))}, ()),
    "geolocate_images": ({"paths": listof(_path, 1), "top_k": _top_k, "engine": ENGINE, **_answers, **_trip,
                          "saliency": nullable(_path)}, ("paths",)),  # a folder: each photo's 'why' overlay
    "geolocate_text": ({"queries": listof(string(MAX_TEXT_CHARS, empty=False), 1, 10_000), "top_k": _top_k,
                        "engine": ENGINE, **_answers}, ("queries",)),
    "likelihood": ({**_raster, "photos": listof(_path), "text": string(MAX_TEXT_CHARS), "top_k": _top_k,
                    "method": string(16, choices=("auto", "field", "dense", "coarse-to-fine")), "aoi": _aoi,
                    "hint": _answers["hint"], "hint_weight": _answers["hint_weight"],
                    "regions_out": nullable(_path), "levels": listof(number(0, 1), 1, 9)}, ("out",)),
    "features": ({**_raster, "pca": boolean(), "bands": nullable(listof(integer(0, 511), 0, 512)),
                  "normalise": boolean()}, ("out",)),
    "similar": ({**_raster, "lat": number(-90, 90), "lon": number(-180, 180)}, ("out", "lat", "lon")),
    "field_status": ({"engine": ENGINE, "extent": _extent, "resolution": _resolution}, ()),
    "build_field": ({"engine": ENGINE, "extent": _extent, "resolution": _resolution}, ()),
    "encode_locations": ({"engine": ENGINE, "normalise": boolean(),
                          "points": listof(listof(number(), 2, 2), 0, MAX_ENCODE_POINTS)}, ("points",)),
    "download_clip": ({"dest": nullable(string(32768)), "endpoint": nullable(string(2048)),
                       "proxy": nullable(string(2048)), "revision": nullable(string(128))}, ()),
}


def check_id(rid: Any) -> Any:
    """Request ids are whole numbers or short strings: anything else cannot be answered reliably."""
    if (isinstance(rid, int) and not isinstance(rid, bool)) or (isinstance(rid, str) and 0 < len(rid) <= 64):
        return rid
    raise ValueError(f"a request id must be a whole number or a short string, got {_type_name(rid)}")


def validate(op: Any, params: Any) -> Dict[str, Any]:
    """The request's parameters, checked against SCHEMA (types, ranges, required keys). Raises SchemaError."""
    if op not in SCHEMA:
        raise SchemaError("op", f"unknown op {op!r} (known: {', '.join(SCHEMA)})")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise SchemaError("params", f"must be an object, got {_type_name(params)}")
    fields, required = SCHEMA[op]
    return validate_fields(params, fields, required)


def request(rid: int, op: str, **params: Any) -> Dict[str, Any]:
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}")
    return {"id": rid, "op": op, "params": params}


def progress(rid: int, done: int, total: int, message: str = "") -> Dict[str, Any]:
    return {"id": rid, "type": "progress", "done": done, "total": total, "message": message}


def row(rid: int, data: Dict[str, Any]) -> Dict[str, Any]:
    return {"id": rid, "type": "row", "data": data}


def result(rid: int, data: Dict[str, Any]) -> Dict[str, Any]:
    return {"id": rid, "type": "result", "data": data}


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def log(level: str, message: str) -> Dict[str, Any]:
    """A message for the user's log (QGIS: the Log Messages panel, GeoCLIP tab, at this level), never for a
    request; the worker sends every engine log record this way, so the client never guesses a level."""
    return {"type": "log", "level": level if level in LOG_LEVELS else "info", "message": message}


def error(rid: Any, code: str, message: str, path: Any = None, hint: Any = None) -> Dict[str, Any]:
    return {"id": rid, "type": "error", "error": {"code": code, "message": message, "path": path, "hint": hint}}
