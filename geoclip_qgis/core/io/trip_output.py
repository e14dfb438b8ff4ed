"""A trip's track on disk: declared in the run's I/O plan before the model loads, written whole at the end through
the one vector writer (core/io/results.py: atomic for a new file, our layer only in a GeoPackage)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import List, Optional, Sequence

from ...shared.schema import TRIP_FIELDS, TRIP_LAYER
from .plan import IOPlan
from .results import DEFAULT_LAYER, Output, write_features


def trip_layer(layer: Optional[str]) -> str:
    """The track's GeoPackage layer: geoclip_trip beside the default results, `<layer>_trip` beside a named one
    (two runs with their own layers never replace each other's track)."""
    return TRIP_LAYER if layer in (None, DEFAULT_LAYER) else f"{layer}_trip"


def plan_trip_outputs(outputs: Sequence[Output], plan: IOPlan, layer: Optional[str] = None) -> List[Output]:
    """Where the track goes: a layer in every GeoPackage output; without one, a GeoJSON beside the first output
    (`<stem>.trip.geojson`). Declared in `plan` (checked with the rest before any model loads)."""
    name = trip_layer(layer)
    outs = [Output(o.path, "GPKG", name, "trip") for o in outputs if o.driver == "GPKG"]
    if not outs and outputs:
        first = min(outputs, key=lambda o: o.key)
        outs = [Output(first.path.with_name(first.path.stem + ".trip.geojson"), "GeoJSON", None, "trip")]
    for o in outs:
        plan.write(o.path, "trip track", "track", (name,) if o.driver == "GPKG" else ())
    return outs


def _line_wkb(points: Sequence[Sequence[float]]) -> bytes:
    """Little-endian WKB LineString through (lat, lon) points (written x = lon, y = lat)."""
    return struct.pack("<BII", 1, 2, len(points)) + b"".join(struct.pack("<dd", p[1], p[0]) for p in points)


def track_row(answer) -> dict:
    from ..answers.trip import track_length_km

    s = answer.summary
    return {"photos": len(answer.track), "start": s.get("start"), "end": s.get("end"),
            "length_km": track_length_km(answer.track), "speed_kmh": s.get("speed_kmh"),
            "slack_km": s.get("slack_km"), "note": s.get("note")}


def write_trip(outputs: Sequence[Output], answer, layer: Optional[str] = None) -> List[Path]:
    """The track (one line through the chain's joint best places, in time order) into each planned output; a trip
    of fewer than two placed photos writes an empty layer (the table still says why)."""
    rows, wkb = ([track_row(answer)], [_line_wkb(answer.track)]) if len(answer.track) >= 2 else ([], [])
    for o in outputs:
        write_features(o, TRIP_FIELDS, rows, wkb, "LineString", o.layer or trip_layer(layer))
    return [o.path for o in outputs]
