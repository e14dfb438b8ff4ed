"""Countries and first-level regions by name or ISO code, and circles by centre and radius, offline.

The boundaries are Natural Earth's 1:10m admin-0 and admin-1 polygons (v4.1.0, public domain), as QGIS ships them
generalised, simplified to ~2 km and stored with their ISO 3166-1 / 3166-2 codes in data/boundaries.geojson
(6.8 MB of text, 2 MB in the zip; scripts/build_boundaries.py makes it). Why a bundled file: no maintained package
on PyPI ships admin-0 *and* admin-1 polygons offline with wheels for every Python we support (geodatasets and
cartopy download on first use, pycountry and countryinfo have names but no shapes, geopandas' old
naturalearth_lowres had only 110m countries and is gone since geopandas 1.0); shapely, which the engine already
has, reads the file.

Names are matched forgivingly: case, accents and punctuation do not matter, official and common names and ISO codes
all work ("Czech Republic", "czechia", "CZ", "CZE"; "Bayern, Germany", "DE-BY": regions go by Natural Earth's
names, often the local ones). An unknown name is an error that lists the closest names (difflib). A country's name
wins over a region of another country with the same name ("Georgia"); a region name shared by several countries
must be qualified ("Córdoba, Argentina").
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...shared.geodesy import EARTH_RADIUS_KM
from ..errors import InputError

DATA = Path(__file__).resolve().parent / "data" / "boundaries.geojson"
MAX_RADIUS_KM = math.pi * EARTH_RADIUS_KM  # half the circumference: the whole sphere
# Everyday names that neither Natural Earth nor ISO 3166 spell (their ISO alpha-2 code).
SYNONYMS = {"uk": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "usa": "US", "america": "US",
            "united states of america": "US", "holland": "NL", "burma": "MM", "ivory coast": "CI",
            "east timor": "TL", "swaziland": "SZ", "macedonia": "MK", "turkey": "TR", "russia": "RU",
            "south korea": "KR", "north korea": "KP", "vatican": "VA", "laos": "LA", "syria": "SY", "iran": "IR",
            "vietnam": "VN", "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ", "moldova": "MD"}
CIRCLE = re.compile(r"^\s*within\s+([0-9.eE+]+)\s*km\s+of\s+([-+0-9.eE]+)\s*(?:,|;|\s)\s*([-+0-9.eE]+)\s*$",
                    re.IGNORECASE)


def norm(text: str) -> str:
    """The key a name is matched on: no accents, no case, punctuation as spaces."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


@lru_cache(maxsize=1)
def _index() -> Tuple[List[dict], Dict[str, List[int]]]:
    """The features and every key that names one (read once per process, ~0.3 s)."""
    if not DATA.is_file():
        raise InputError("the country and region boundaries are missing from the engine", str(DATA),
                         "reinstall the plugin, or give a polygon file instead of a name")
    with open(DATA, encoding="utf-8") as fh:
        feats = json.load(fh)["features"]
    keys: Dict[str, List[int]] = {}

    def add(key: Optional[str], i: int) -> None:
        if key and i not in keys.setdefault(norm(key), []):
            keys[norm(key)].append(i)

    a2_to_country = {}
    for i, f in enumerate(feats):
        p = f["properties"]
        if p["kind"] == "country":
            for k in (p["name"], p.get("iso2"), p.get("iso3"), *p.get("aliases", [])):
                add(k, i)
            if p.get("iso2"):
                a2_to_country[p["iso2"]] = i
    for i, f in enumerate(feats):
        p = f["properties"]
        if p["kind"] == "region":
            for k in (p["name"], p.get("code"), *p.get("aliases", [])):
                add(k, i)
                for c in (p.get("country"), p.get("iso2")):
                    if k and c and k != p.get("code"):
                        add(f"{k}, {c}", i)
    for word, a2 in SYNONYMS.items():
        if a2 in a2_to_country and norm(word) not in keys:
            keys[norm(word)] = [a2_to_country[a2]]
    return feats, keys


def label(feature: dict) -> str:
    p = feature["properties"]
    return p["name"] if p["kind"] == "country" else f"{p['name']}, {p['country']}"


def lookup(name: str) -> Tuple[str, Any]:
    """(label, shapely geometry) of the country or region `name` names; a clear error, with suggestions, if none."""
    import shapely.geometry

    feats, keys = _index()
    key = norm(name)
    hits = keys.get(key, [])
    countries = [i for i in hits if feats[i]["properties"]["kind"] == "country"]
    hits = countries[:1] or hits
    if len(hits) > 1:  # a region's own name (or code) wins over another region's alternative name
        own = [i for i in hits if key in (norm(feats[i]["properties"]["name"]), norm(label(feats[i])),
                                          norm(feats[i]["properties"].get("code") or ""))]
        hits = own if len(own) == 1 else hits
    if len(hits) > 1:
        options = ", ".join(sorted(label(feats[i]) for i in hits)[:8])
        raise InputError(f"{name!r} names several regions: {options}", hint="add the country, e.g. "
                         f"'{label(feats[hits[0]])}', or give the ISO 3166-2 code")
    if not hits:
        close = difflib.get_close_matches(key, list(keys), n=6, cutoff=0.6)
        shown = []
        for k in close:
            for i in sorted(keys[k], key=lambda j: feats[j]["properties"]["kind"] != "country"):
                if label(feats[i]) not in shown:
                    shown.append(label(feats[i]))
        hint = ("did you mean " + "; ".join(shown[:6]) + "?") if shown else \
            "give a country or region name, an ISO code (FR, FRA, FR-IDF), 'within 50 km of LAT, LON' or a polygon"
        raise InputError(f"no country or region is named {name.strip()[:80]!r}", hint=hint)
    f = feats[hits[0]]
    return label(f), shapely.geometry.shape(f["geometry"])


def names(kind: Optional[str] = None) -> List[str]:
    """Every country (kind='country') or region label, for a completer or a listing."""
    feats, _ = _index()
    return sorted(label(f) for f in feats if kind is None or f["properties"]["kind"] == kind)


# ---- circles ---------------------------------------------------------------------------------------------------------
def parse_circle(spec: Any) -> Optional[Tuple[float, float, float]]:
    """(lat, lon, radius_km) from 'within 50 km of 45.76, 4.84' or {"near": [lat, lon], "radius_km": 50}; None when
    `spec` is not a circle; an error when it is one with bad numbers."""
    if isinstance(spec, dict) and "near" in spec:
        try:
            lat, lon = (float(v) for v in spec["near"])
            radius = float(spec.get("radius_km"))
        except (TypeError, ValueError) as exc:
            raise InputError("a circle needs near: [lat, lon] and radius_km", hint="e.g. near 45.76,4.84 radius 50 km"
                             ) from exc
        return check_circle(lat, lon, radius)
    m = CIRCLE.match(spec) if isinstance(spec, str) else None
    if not m:
        return None
    try:
        return check_circle(float(m.group(2)), float(m.group(3)), float(m.group(1)))
    except ValueError as exc:
        raise InputError(f"cannot read the circle {spec!r}", hint="e.g. within 50 km of 45.76, 4.84") from exc


def check_circle(lat: float, lon: float, radius_km: float) -> Tuple[float, float, float]:
    if not (np.isfinite([lat, lon, radius_km]).all() and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(f"bad centre {lat}, {lon}", hint="latitude -90..90, longitude -180..180, in degrees")
    if not 0 < radius_km <= MAX_RADIUS_KM:
        raise InputError(f"the radius must be between 0 and {MAX_RADIUS_KM:.0f} km, got {radius_km:g}")
    return float(lat), float(lon), float(radius_km)


def circle_spec(lat: float, lon: float, radius_km: float) -> str:
    """The text form of a circle: what the summary's `constraint` column shows and parse_circle reads back."""
    return f"within {radius_km:g} km of {lat:g}, {lon:g}"


def within_km(latlon: np.ndarray, lat: float, lon: float, radius_km: float) -> np.ndarray:
    """(N,) bool: the great-circle distance (mean-radius sphere, as shared/geodesy.py) is at most radius_km."""
    pts = np.radians(np.asarray(latlon, dtype=np.float64).reshape(-1, 2))
    p0, l0 = math.radians(lat), math.radians(lon)
    a = np.sin((pts[:, 0] - p0) / 2) ** 2 + np.cos(p0) * np.cos(pts[:, 0]) * np.sin((pts[:, 1] - l0) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a))) <= radius_km


def circle_polygon(lat: float, lon: float, radius_km: float, n: int = 180):
    """The circle as a polygon in lon/lat for maps and grid masks (points use within_km, exactly). Longitudes are
    left unwrapped (the caller folds them into [-180, 180]); a circle around a pole becomes a cap."""
    import shapely

    d = radius_km / EARTH_RADIUS_KM
    p0 = math.radians(lat)
    b = np.linspace(0, 2 * math.pi, n, endpoint=False)
    p = np.arcsin(np.sin(p0) * np.cos(d) + np.cos(p0) * np.sin(d) * np.cos(b))
    dl = np.arctan2(np.sin(b) * np.sin(d) * np.cos(p0), np.cos(d) - np.sin(p0) * np.sin(p))
    lats, lons = np.degrees(p), lon + np.degrees(dl)
    north = radius_km >= (90 - lat) * math.pi / 180 * EARTH_RADIUS_KM
    south = radius_km >= (90 + lat) * math.pi / 180 * EARTH_RADIUS_KM
    if north or south:
        if north and south:
            return shapely.box(-180, -90, 180, 90)
        wrapped = (lons + 180) % 360 - 180
        order = np.argsort(wrapped)
        ring = list(zip(wrapped[order], lats[order]))
        pole = 90.0 if north else -90.0
        ring = [(-180.0, ring[0][1])] + ring + [(180.0, ring[-1][1]), (180.0, pole), (-180.0, pole)]
        return shapely.make_valid(shapely.Polygon(ring))
    return shapely.Polygon(list(zip(lons, lats)))


def describe(parts: Sequence[str]) -> str:
    """The `constraint` text: the parts' names joined, in the order given."""
    return ", ".join(parts)
