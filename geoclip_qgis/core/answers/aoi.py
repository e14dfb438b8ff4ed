"""Area of interest: restrict a query to where the user knows the photo must be.

An area is a polygon (a GeoJSON geometry dict, WKT, or every polygon of a vector file read with pyogrio), or a
bbox (e.g. the map extent; west > east crosses the antimeridian), in EPSG:4326 (a file in another CRS is
reprojected with GDAL through rasterio.warp.transform_geom). Geometry work is shapely 2 (vectorised
point-in-polygon over the whole gallery in one call; GEOS wheels for Python 3.9–3.14, ~10 MB installed).

An area can also be named (core/answers/boundaries.py): a country or first-level region by name or ISO code, from
Natural Earth polygons shipped with the engine; a circle ("within 50 km of 45.76, 4.84", exact great-circle
distance for gallery points); and a union of any of these, separated by ';' or given as a list ("Chile; Argentina").
The area's `name` says what was used; the summary's `constraint` column shows it.

Both masks count a place as inside when it lies in the polygon or on its edge: gallery points exactly, grid cells by
their centre (rasterio.features.geometry_mask). The probabilities are renormalised inside, and the share of the mass
that fell outside is reported, so the user sees how much the restriction overrode the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..maps.raster import Grid


@dataclass
class AreaOfInterest:
    """A polygonal area in EPSG:4326 with longitudes in [-180, 180] (parts across the antimeridian are split)."""

    geometry: Any  # shapely Polygon / MultiPolygon
    name: str = "area of interest"
    circles: Tuple[Tuple[float, float, float], ...] = ()  # (lat, lon, km): points tested by great-circle distance
    polygons: Any = None  # with circles: the polygonal parts alone (None: none)

    # ---- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_bbox(cls, bbox: Sequence[float], name: str = "extent") -> AreaOfInterest:
        """W, S, E, N in degrees; west > east crosses the antimeridian."""
        import shapely

        try:
            w, s, e, n = (float(v) for v in bbox)
        except (TypeError, ValueError) as exc:
            raise InputError(f"a bbox needs four numbers W,S,E,N, got {bbox!r}") from exc
        if not (np.isfinite([w, s, e, n]).all() and -90 <= s < n <= 90 and -180 <= w <= 180 and -180 <= e <= 180
                and w != e):
            raise InputError(f"bad bbox {bbox!r}", hint="W,S,E,N in degrees, -90 <= S < N <= 90, W != E")
        boxes = [shapely.box(w, s, e, n)] if w < e else [shapely.box(w, s, 180, n), shapely.box(-180, s, e, n)]
        return cls(shapely.union_all(boxes), name)

    @classmethod
    def from_geojson(cls, geometry: Union[dict, str], name: str = "polygon") -> AreaOfInterest:
        """A GeoJSON geometry (or Feature / FeatureCollection) as a dict or a JSON string."""
        import shapely

        obj = json.loads(geometry) if isinstance(geometry, str) else geometry
        if not isinstance(obj, dict):
            raise InputError("a GeoJSON area must be an object")
        if obj.get("type") == "FeatureCollection":
            geoms = [f.get("geometry") for f in obj.get("features", [])]
        elif obj.get("type") == "Feature":
            geoms = [obj.get("geometry")]
        else:
            geoms = [obj]
        try:
            parsed = [shapely.from_geojson(json.dumps(g)) for g in geoms if g]
        except Exception as exc:  # shapely raises GEOSException / ValueError on bad input
            raise InputError(f"cannot read the GeoJSON area ({exc})") from exc
        return cls(_polygonal(parsed, name), name)

    @classmethod
    def from_wkt(cls, wkt: str, name: str = "polygon") -> AreaOfInterest:
        import shapely

        try:
            geom = shapely.from_wkt(wkt)
        except Exception as exc:
            raise InputError(f"cannot read the WKT area ({exc})") from exc
        return cls(_polygonal([geom], name), name)

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], layer: Optional[Union[str, int]] = None,
                  where: Optional[str] = None) -> AreaOfInterest:
        """The union of every polygon in a vector file (GeoPackage, shapefile, GeoJSON…), optionally a layer and
        an attribute filter (OGR SQL `where`, e.g. "ISO_A2 = 'FR'"), reprojected to EPSG:4326 when needed."""
        import shapely
        from pyogrio.raw import read

        p = Path(path)
        if not p.is_file():
            raise InputError("area-of-interest file not found", str(p), "give a polygon layer (GeoPackage, "
                             "shapefile, GeoJSON)")
        try:
            meta, _, wkb, _ = read(p, layer=layer, where=where, columns=[], force_2d=True)
        except Exception as exc:
            raise InputError(f"cannot read the area-of-interest layer ({exc})", str(p)) from exc
        geoms = [g for g in shapely.from_wkb(wkb) if g is not None] if wkb is not None else []
        crs = meta.get("crs")
        if geoms and crs and not _is_wgs84(crs):
            from rasterio.warp import transform_geom

            geoms = [shapely.from_geojson(json.dumps(transform_geom(crs, "EPSG:4326", shapely.geometry.mapping(g))))
                     for g in geoms]
        return cls(_polygonal(geoms, str(p)), p.stem)

    @classmethod
    def from_circle(cls, lat: float, lon: float, radius_km: float) -> AreaOfInterest:
        """The points within `radius_km` (great-circle) of (lat, lon)."""
        from .boundaries import check_circle, circle_polygon, circle_spec

        circle = check_circle(lat, lon, radius_km)
        return cls(_wrap(circle_polygon(*circle)), circle_spec(*circle), (circle,), None)

    @classmethod
    def from_name(cls, name: str) -> AreaOfInterest:
        """A country or first-level region by name or ISO code (core/answers/boundaries.py)."""
        from .boundaries import lookup

        label, geom = lookup(name)
        return cls(_polygonal([geom], label), label)

    @classmethod
    def union(cls, areas: Sequence[AreaOfInterest]) -> AreaOfInterest:
        """Every area together ("Chile; Argentina"); the name lists the parts in the order given."""
        import shapely

        if len(areas) == 1:
            return areas[0]
        circles = tuple(c for a in areas for c in a.circles)
        polys = [a.polygons if a.circles else a.geometry for a in areas]
        polys = [g for g in polys if g is not None]
        exact = shapely.union_all(polys) if polys else None
        return cls(shapely.union_all([a.geometry for a in areas]), ", ".join(a.name for a in areas), circles,
                   exact if circles else None)

    @classmethod
    def parse(cls, spec: Union[str, dict, Sequence[Any], os.PathLike]) -> AreaOfInterest:
        """Whatever a CLI or worker receives: a GeoJSON dict/string, WKT, 'W,S,E,N', a vector file path, a country or
        region name or ISO code, 'within R km of LAT, LON' (or {"near": [lat, lon], "radius_km": R}), or a union of
        these: a list, or parts separated by ';'."""
        if isinstance(spec, AreaOfInterest):
            return spec
        key = json.dumps(spec) if isinstance(spec, (str, list, tuple)) and not _names_a_file(spec) else ""
        if 0 < len(key) <= 100_000:
            return _parse_cached(key)  # the same words, the same area: the engine's masks are reused
        return cls._parse(spec)

    @classmethod
    def _parse(cls, spec: Any) -> AreaOfInterest:
        from .boundaries import parse_circle

        circle = parse_circle(spec)
        if circle is not None:
            return cls.from_circle(*circle)
        if isinstance(spec, dict):
            return cls.from_geojson(spec)
        if isinstance(spec, (list, tuple)) and len(spec) == 4 and all(isinstance(v, (int, float)) for v in spec):
            return cls.from_bbox(spec)
        if isinstance(spec, (list, tuple)) and spec:
            return cls.union([cls.parse(part) for part in spec])
        if isinstance(spec, os.PathLike):
            return cls.from_file(spec)
        if not isinstance(spec, str) or not spec.strip():
            raise InputError(f"cannot read an area of interest from {spec!r}")
        text = spec.strip()
        if text.startswith("{"):
            return cls.from_geojson(text)
        parts = text.split(",")
        if len(parts) == 4:
            try:
                return cls.from_bbox([float(v) for v in parts])
            except ValueError:
                pass
        if text.split("(")[0].strip().upper() in ("POLYGON", "MULTIPOLYGON", "GEOMETRYCOLLECTION"):
            return cls.from_wkt(text)
        if Path(text).expanduser().is_file():
            return cls.from_file(Path(text).expanduser())
        if ";" in text:
            return cls.union([cls.parse(part) for part in text.split(";") if part.strip()])
        return cls.from_name(text)

    # ---- use -------------------------------------------------------------------------------------------------
    @property
    def bounds(self) -> Tuple[float, float, float, float]:
        return tuple(float(v) for v in self.geometry.bounds)

    def points_mask(self, latlon: np.ndarray) -> np.ndarray:
        """(N,) bool: which (lat, lon) rows lie inside or on the edge (one vectorised GEOS call)."""
        import shapely

        pts = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        lon = (pts[:, 1] + 180.0) % 360.0 - 180.0
        lon = np.where(pts[:, 1] == 180.0, 180.0, lon)
        geom = self.polygons if self.circles else self.geometry
        if geom is None:
            mask = np.zeros(len(pts), dtype=bool)
        else:
            shapely.prepare(geom)
            mask = np.asarray(shapely.intersects_xy(geom, lon, pts[:, 0]), dtype=bool)
        if self.circles:
            from .boundaries import within_km

            for lat0, lon0, km in self.circles:
                mask |= within_km(pts, lat0, lon0, km)
        return mask

    def grid_mask(self, grid: Grid, all_touched: bool = False) -> np.ndarray:
        """(H, W) bool over a Grid: True where the cell's centre is inside (or any touched cell, if asked).
        Unwrapped grids (east > 180) see the area's western-hemisphere parts shifted by +360."""
        import shapely
        from rasterio.features import geometry_mask
        from shapely import affinity

        geoms = [self.geometry]
        if grid.east > 180.0:
            geoms.append(affinity.translate(self.geometry, xoff=360.0))
        shapes_ = [shapely.geometry.mapping(g) for g in geoms if not g.is_empty]
        if not shapes_:
            return np.zeros(grid.shape, dtype=bool)
        return geometry_mask(shapes_, out_shape=grid.shape, transform=grid.transform, all_touched=all_touched,
                             invert=True)


def area_spec(aoi: Any = None, near: Optional[str] = None, radius_km: Optional[float] = None) -> Any:
    """The one area the CLI's --aoi/--within, --near and --radius-km name, as shared/protocol.area_request joins
    every front door's fields (the dock's and Processing's too), with the circle checked here, before any model
    loads. None when nothing is given."""
    from ...shared.protocol import area_request
    from .boundaries import parse_circle

    try:
        spec = area_request(aoi, None, near, radius_km)
    except ValueError as exc:
        raise InputError(str(exc), hint="e.g. --near 45.76,4.84 --radius-km 50") from None
    circle = spec[-1] if isinstance(spec, list) else spec
    if near not in (None, "") and parse_circle(circle) is None:
        raise InputError(f"cannot read the centre {near!r}", hint="LAT,LON in degrees, e.g. 45.76,4.84")
    return spec


def restrict_probs(probs: np.ndarray, inside: np.ndarray) -> Tuple[np.ndarray, float]:
    """Renormalise a probability vector (or (Q, N) rows) to the points inside; returns (probs, outside share(s)).
    The same as a softmax over the inside points' logits. No mass inside is an error the user can act on."""
    p = np.asarray(probs, dtype=np.float64)
    m = np.asarray(inside, dtype=bool)
    if p.shape[-1] != m.shape[-1]:
        raise InputError(f"{p.shape[-1]} probabilities for a mask of {m.shape[-1]} points")
    total = p.sum(axis=-1, keepdims=True)
    kept = np.where(m, p, 0.0)
    held = kept.sum(axis=-1, keepdims=True)
    if (held <= 0).any() or not m.any():
        raise InputError("no gallery point lies inside the area of interest",
                         hint="enlarge the area, or use a denser gallery (e.g. --gallery fibonacci:1000000)")
    outside = 1.0 - held / total
    out = kept / held
    return out, (float(outside.ravel()[0]) if outside.size == 1 else outside.ravel())


def restrict_map(lmap, aoi: AreaOfInterest, all_touched: bool = False):
    """A LikelihoodMap renormalised to the area (density 0 outside) and the share of its mass that fell outside."""
    grid: Grid = lmap.grid
    inside = aoi.grid_mask(grid, all_touched=all_touched)
    density = np.asarray(lmap.density, dtype=np.float64)
    mass = np.where(np.isfinite(density), density, 0.0) * grid.row_areas_km2()[:, None]
    total = float(mass.sum())
    held = float(mass[inside].sum())
    if not inside.any() or held <= 0:
        raise InputError("the area of interest covers no cell of the likelihood map",
                         hint="use a finer resolution or a larger area")
    new = np.where(inside, density / held * total, 0.0).astype(np.float32)
    r, c = np.unravel_index(int(np.argmax(new)), new.shape)
    best = (float(grid.row_lats(r)), float(grid.col_lons(c)))
    stats = dict(getattr(lmap, "stats", {}) or {}, aoi=aoi.name, outside_share=1.0 - held / total)
    return replace(lmap, density=new, best=best, stats=stats), 1.0 - held / total


@lru_cache(maxsize=16)
def _parse_cached(spec: str) -> AreaOfInterest:
    """A named area, circle, bbox or WKT read once per process (an area is never changed once made), so repeated
    requests with the same words share one area and so the engine's gallery mask and place finder for it."""
    return AreaOfInterest._parse(json.loads(spec))


def _names_a_file(spec: Any) -> bool:
    """Whether a spec (or a part of a list) is a path on disk: files may change between requests, never cached."""
    if isinstance(spec, (list, tuple)):
        return any(_names_a_file(s) for s in spec)
    return isinstance(spec, str) and not spec.lstrip().startswith("{") and len(spec) < 4096 and \
        Path(spec.strip()).expanduser().is_file()


def _is_wgs84(crs: str) -> bool:
    text = str(crs).upper().replace(" ", "")
    if text in ("EPSG:4326", "OGC:CRS84", "WGS84"):
        return True
    try:
        from rasterio.crs import CRS

        c = CRS.from_user_input(crs)
        return c.to_epsg() == 4326 or c == CRS.from_epsg(4326)
    except Exception:
        return False


def _polygonal(geoms, where: str):
    """The union of the polygonal parts, made valid and wrapped to [-180, 180]; anything else is refused."""
    import shapely

    polys = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        g = shapely.make_valid(g) if not g.is_valid else g
        parts = shapely.get_parts(g)
        polys.extend(p for p in parts if p.geom_type in ("Polygon", "MultiPolygon"))
        if not any(p.geom_type in ("Polygon", "MultiPolygon") for p in parts):
            raise InputError(f"the area of interest must be polygons, got a {g.geom_type}", where)
    if not polys:
        raise InputError("the area of interest is empty", where, "give at least one polygon")
    return _wrap(shapely.union_all(polys))


def _wrap(geom):
    """Fold longitudes outside [-180, 180] (a polygon drawn across the antimeridian) back into range."""
    import shapely
    from shapely import affinity

    minx, _, maxx, _ = geom.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return geom
    pieces = []
    for k in (-2, -1, 0, 1, 2):
        piece = geom.intersection(shapely.box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0))
        if not piece.is_empty:
            pieces.append(affinity.translate(piece, xoff=-360.0 * k))
    return shapely.union_all(pieces)
