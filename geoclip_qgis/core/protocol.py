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
"""

from __future__ import annotations

import json
from typing import Any, Dict

PROTOCOL_VERSION = 1
OPS = ("info", "geolocate_images", "geolocate_text", "likelihood", "features", "similar", "encode_locations",
       "field_status", "build_field", "cancel", "shutdown")
WORKER_MODULE = "geoclip_qgis.core.worker"
# Photo file suffixes the engine reads (QGIS lists folders with it, without importing the engine).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".heic", ".heif")


def encode(message: Dict[str, Any]) -> str:
    """One line; ASCII-escaped so that no path or text can break the framing."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n"


def decode(line: str) -> Dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a protocol message must be a JSON object")
    return message


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


def error(rid: Any, code: str, message: str, path: Any = None, hint: Any = None) -> Dict[str, Any]:
    return {"id": rid, "type": "error", "error": {"code": code, "message": message, "path": path, "hint": hint}}
