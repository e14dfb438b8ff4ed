"""Confidence regions: the smallest area that holds 50 % / 90 % of a likelihood map's probability mass.

For a density map the smallest region of given mass is the highest-density region (HDR): every cell denser than a
threshold t, with t the largest value whose region still holds the level. Computed as the textbook rule says (cells
by density, best first; cumulative mass = density × cell area; cut where it reaches the level), but without sorting
the whole world: one pass bins the cells by the top 16 bits of their float32 density (monotonic in the value, so
log-spaced bins, 128 per octave, with no log taken; a mass-weighted bincount), the cumulative mass over the bins
finds the bin where each level is reached, and only that bin's cells are sorted. The result is the same as a full
sort. Cells tied at the threshold are all included (the region is never split between equal cells), so a region
can hold more than its level; `mass` says how much.

Polygons come from rasterio.features.shapes on the labelled mask (4-connectivity, so every polygon is valid), in
EPSG:4326. A grid that crosses the antimeridian (east > 180, see core.raster) is polygonised in two column blocks so
that every coordinate stays in [-180, 180]. `parts` counts connected areas on the Earth: a region that crosses the
antimeridian is one part even though it is two polygons, on a world grid as on an unwrapped one. Area is the exact
sum of the grid's cell areas inside (Grid.row_areas_km2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..maps.raster import Grid

DEFAULT_LEVELS = (0.5, 0.9)
LEVEL_MIN, LEVEL_MAX = 1e-6, 1.0 - 1e-6  # a level closer to 0 or 1 than this defines no region in float32 masses
MAX_REGION_RES = 10.0  # degrees; the worker's schema allows the same (shared/protocol.py region_res)
MAJOR_SHARE = 0.01  # a part holding this share of the mass counts as major in the summary
_BINS = 1 << 16  # float32 bit patterns >> 16 (negative zero lands in an empty top bin)


@dataclass
class ConfidenceRegion:
    level: float  # requested probability mass, e.g. 0.9
    mass: float  # mass actually inside (>= level; more only through ties at the threshold)
    threshold: float  # density per km² at the region's edge
    area_km2: float
    parts: int
    cells: int
    geometry: Optional[dict]  # GeoJSON MultiPolygon in EPSG:4326 (None for an empty map)
    grid: Grid
    mask: np.ndarray = field(repr=False)  # (H, W) bool, on `grid`
    major_parts: int = 0  # parts that hold at least 1 % of the map's mass each

    def summary(self) -> str:
        """'90 % region: 1.2 million km² in 3 parts'; a region shattered into specks says how many parts matter:
        '… in 7,443 parts (3 hold ≥ 1 % each)'."""
        text = f"{self.level * 100:g} % region: {format_area(self.area_km2)} in {self.parts:,} " \
               f"part{'' if self.parts == 1 else 's'}"
        if self.major_parts < self.parts:
            text += f" ({self.major_parts:,} hold{'s' if self.major_parts == 1 else ''} ≥ 1 % each)"
        return text

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the cell holding (lat, lon) is inside the region (False outside the grid)."""
        lon_u = lon if lon >= self.grid.west else lon + 360.0
        if not (self.grid.south <= lat <= self.grid.north and lon_u <= self.grid.east):
            return False
        r, c = self.grid.cell_of(lat, lon)
        h, w = self.grid.shape
        return bool(self.mask[min(r, h - 1), min(c, w - 1)])

    def properties(self, source: str = "") -> dict:
        return {"level": self.level, "area_km2": self.area_km2, "parts": self.parts, "major_parts": self.major_parts,
                "mass": self.mass, "source": source, "summary": self.summary()}

    def to_feature(self, source: str = "") -> dict:
        """A GeoJSON-like feature (what pyogrio / fiona-style writers take)."""
        return {"type": "Feature", "geometry": self.geometry, "properties": self.properties(source)}


def format_area(km2: float) -> str:
    """Readable area: '830 km²', '45,200 km²', '1.2 million km²'."""
    if km2 >= 1e6:
        return f"{km2 / 1e6:.2g} million km²" if km2 < 1e7 else f"{km2 / 1e6:.0f} million km²"
    if km2 >= 1000:
        return f"{float(f'{km2:.3g}'):,.0f} km²"
    return f"{km2:.3g} km²"


def hdr_thresholds(density: np.ndarray, cell_areas: np.ndarray, levels: Sequence[float]) -> List[float]:
    """For each level, the density threshold t of the highest-density region: the cells with density >= t are
    the fewest densest cells whose mass (density × area, normalised to the map's total) reaches the level."""
    levels = check_levels(levels)
    d, mass, total = _mass(density, cell_areas)
    return [t for t, _ in _hdr(d, mass, total, levels)]


def _mass(density: np.ndarray, cell_areas: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float]:
    """float32 density (NaN and negatives as 0), float32 cell mass, and the total mass (float64)."""
    d = np.asarray(density, dtype=np.float32)
    mass = d * np.asarray(cell_areas, dtype=np.float32)
    total = float(mass.sum(dtype=np.float64))
    if not math.isfinite(total) or float(d.min()) < 0:  # only a damaged map pays for the clean-up
        d = np.where(np.isfinite(d) & (d > 0), d, np.float32(0))
        mass = d * np.asarray(cell_areas, dtype=np.float32)
        total = float(mass.sum(dtype=np.float64))
    return d, mass, total


def _hdr(d: np.ndarray, mass: np.ndarray, total: float, levels: List[float]) -> List[Tuple[float, float]]:
    """(threshold, mass held) per level. Bins are the top 16 bits of the float32 pattern, which orders positive
    floats (log-spaced bins, 128 per octave) with no log; only the bin where a level is reached is sorted."""
    if not total > 0:
        return [(math.inf, 0.0) for _ in levels]
    bits = d.view(np.uint32) >> 16
    hist = np.bincount(bits.ravel(), weights=mass.ravel(), minlength=_BINS)
    cum = np.cumsum(hist[::-1]) / total  # from the densest bin down
    last = int(np.flatnonzero(hist[::-1] > 0)[-1])  # the least dense bin that holds mass: never cut past it
    out = []
    for level in levels:
        i = min(int(np.searchsorted(cum, level - 1e-12, side="left")), last)
        before = float(cum[i - 1]) if i > 0 else 0.0
        sel = bits == _BINS - 1 - i
        dk, mk = d[sel], mass[sel].astype(np.float64)
        order = np.argsort(-dk, kind="stable")
        ck = before + np.cumsum(mk[order]) / total
        j = min(int(np.searchsorted(ck, level - 1e-12, side="left")), dk.size - 1)
        t = float(dk[order][j])
        if not t > 0:
            t = float(np.min(d[d > 0]))
        out.append((t, before + float(mk[dk >= t].sum()) / total))
    return out


def confidence_regions(lmap, levels: Sequence[float] = DEFAULT_LEVELS, polygons: bool = True
                       ) -> List[ConfidenceRegion]:
    """The highest-density regions of a LikelihoodMap (density per km² on a Grid) at each level, largest level
    last. `polygons=False` skips vectorising (masks, areas and parts only)."""
    grid: Grid = lmap.grid
    if np.shape(lmap.density) != grid.shape:
        raise InputError(f"density of shape {np.shape(lmap.density)} does not fit its grid {grid.shape}")
    row_areas = grid.row_areas_km2()
    levels = check_levels(levels)
    d, mass, total = _mass(lmap.density, row_areas[:, None])
    out = []
    for level, (t, held) in zip(levels, _hdr(d, mass, total, levels)):
        inside = d >= t
        rows = np.flatnonzero(inside.any(axis=1))
        r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
        band = inside[r0:r1]
        labels, parts, root = _label(band, grid)
        per_row = band.sum(axis=1)
        area = float(per_row @ row_areas[r0:r1])
        label_mass = np.bincount(labels.ravel(), weights=mass[r0:r1].ravel(), minlength=root.size)
        part_mass = np.bincount(root, weights=label_mass)[1:]
        major = int((part_mass >= MAJOR_SHARE * total).sum()) if total > 0 else 0
        geom = _polygons(labels, grid, r0) if polygons and parts else None
        out.append(ConfidenceRegion(level, min(1.0, held), t, area, parts, int(per_row.sum()), geom, grid, inside,
                                    major))
    return out


def region_features(regions: Sequence[ConfidenceRegion], source: str = "") -> List[Dict]:
    """GeoJSON-like features (geometry + level, area_km2, parts, mass, source, summary), one per region,
    the largest level first so that smaller regions draw on top."""
    return [r.to_feature(source) for r in sorted(regions, key=lambda r: -r.level) if r.geometry is not None]


def summary(regions: Sequence[ConfidenceRegion], level: float = 0.9) -> str:
    """The photo's one uncertainty figure: the summary of the region at `level` (or of the largest one)."""
    if not regions:
        return ""
    best = min(regions, key=lambda r: (abs(r.level - level), -r.level))
    return best.summary()


def hdr_level_at(lmap, latlon: np.ndarray) -> np.ndarray:
    """For each (lat, lon): the smallest level whose region contains it (the mass of the cells denser than its
    cell). A calibrated model puts the truth inside the 90 % region 90 % of the time, i.e. this is <= 0.9 that
    often: what evaluation reports as coverage. NaN outside the grid."""
    grid: Grid = lmap.grid
    pts = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    density = np.asarray(lmap.density, dtype=np.float64)
    density = np.where(np.isfinite(density), density, 0.0)
    mass = density * grid.row_areas_km2()[:, None]
    total = float(mass.sum())
    out = np.full(len(pts), np.nan)
    if not total > 0:
        return out
    lon_u = np.where(pts[:, 1] >= grid.west, pts[:, 1], pts[:, 1] + 360.0)
    ok = (pts[:, 0] >= grid.south) & (pts[:, 0] <= grid.north) & (lon_u <= grid.east)
    h, w = grid.shape
    r = np.clip(((grid.north - pts[ok, 0]) // grid.res).astype(np.int64), 0, h - 1)
    c = np.clip(((lon_u[ok] - grid.west) // grid.res).astype(np.int64), 0, w - 1)
    at = density[r, c]
    if at.size <= 8:  # one masked sum per point beats sorting the map
        out[ok] = [mass[density >= v].sum() / total for v in at]
        return out
    order = np.argsort(-density, axis=None, kind="stable")
    sorted_d = density.ravel()[order]
    cum = np.cumsum(mass.ravel()[order]) / total
    k = np.searchsorted(-sorted_d, -at, side="right")  # the cells at least as dense as the point's
    out[ok] = np.where(k > 0, cum[np.maximum(k - 1, 0)], 0.0)
    return out


def check_levels(levels: Sequence[float]) -> List[float]:
    """THE rule for confidence levels (the CLI's --levels, the worker's `levels`, every caller of this module):
    at least one, each a number from LEVEL_MIN to LEVEL_MAX (strictly between 0 and 1, and far enough from both
    that the region is defined: 1e-12 would select no cell, 1.0 every cell of the world), and distinct as they
    are printed (6 significant digits): two equal levels would write the same region twice under one name."""
    hint = "give distinct probabilities strictly between 0 and 1, e.g. --levels 0.5,0.9"
    try:
        out = sorted(float(v) for v in levels)
    except (TypeError, ValueError):
        raise InputError(f"confidence levels must be numbers, got {levels!r}", hint=hint) from None
    if not out or any(not (LEVEL_MIN <= v <= LEVEL_MAX) for v in out):  # NaN fails this too
        raise InputError(f"confidence levels must lie strictly between 0 and 1 (from {LEVEL_MIN:g} to "
                         f"{LEVEL_MAX:g}), got {', '.join(f'{v:g}' for v in levels) or 'none'}", hint=hint)
    names = [f"{v:g}" for v in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"confidence levels must be distinct, got {', '.join(twice)} more than once", hint=hint)
    return out


def check_region_res(res: Optional[float]) -> Optional[float]:
    """THE rule for a region map's resolution (--region-res, the worker's `region_res`, GeoClipEngine's
    `region_res`): None for none, else a finite number of degrees in (0, MAX_REGION_RES]. Zero is refused, never
    read as 'off' (None is 'off')."""
    if res is None:
        return None
    try:
        r = float(res)
    except (TypeError, ValueError):
        r = math.nan
    if isinstance(res, bool) or not (math.isfinite(r) and 0.0 < r <= MAX_REGION_RES):
        raise InputError(f"the region resolution must be a positive number of degrees up to {MAX_REGION_RES:g}, "
                         f"got {res!r}", hint="e.g. --region-res 0.5 (leave it out for no region)")
    return r


def _label(inside: np.ndarray, grid: Grid):
    """4-connected components (matching shapes' polygons), merged across the antimeridian on a 360° grid."""
    from scipy import ndimage

    labels, n = ndimage.label(inside)
    root = np.arange(n + 1)
    h, w = inside.shape
    if n and abs(w * grid.res - 360.0) < grid.res / 2:
        both = inside[:, 0] & inside[:, -1]
        for a, b in sorted(set(zip(labels[both, 0].tolist(), labels[both, -1].tolist()))):
            ra, rb = _find(root, a), _find(root, b)
            if ra != rb:
                root[max(ra, rb)] = min(ra, rb)
        root = np.array([_find(root, x) for x in range(n + 1)])
        ids = np.unique(root[1:])
        n = int(ids.size)
        root = np.concatenate([[0], np.searchsorted(ids, root[1:]) + 1])  # parts numbered 1..n
    return labels, int(n), root


def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        x = parent[x]
    return int(x)


def _polygons(labels: np.ndarray, grid: Grid, row0: int = 0) -> dict:
    """One MultiPolygon of the labelled cells (rows from `row0` of the grid), coordinates in [-180, 180]; each
    block is cropped to its labelled columns before GDAL's polygonize runs."""
    from rasterio.features import shapes
    from rasterio.transform import from_origin

    w = labels.shape[1]
    split = int(round((180.0 - grid.west) / grid.res)) if grid.east > 180.0 + 1e-9 else w
    north = grid.north - row0 * grid.res
    coords = []
    for c0, c1, west in ((0, split, grid.west), (split, w, -180.0)):
        cols = np.flatnonzero((labels[:, c0:c1] > 0).any(axis=0)) if c1 > c0 else np.empty(0, dtype=np.int64)
        if not cols.size:
            continue
        a, b = c0 + int(cols[0]), c0 + int(cols[-1]) + 1
        block = np.ascontiguousarray(labels[:, a:b], dtype=np.int32)
        transform = from_origin(west + (a - c0) * grid.res, north, grid.res, grid.res)
        coords.extend(geom["coordinates"] for geom, _ in shapes(block, mask=block > 0, transform=transform))
    return {"type": "MultiPolygon", "coordinates": coords}
