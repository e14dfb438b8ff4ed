"""Geographic grids and GeoTIFF output for the engine's map products.

A grid is a regular EPSG:4326 lattice over an extent. Extents that cross the antimeridian (west > east) are
unwrapped (east + 360) so the raster stays one piece; encoders see longitudes wrapped back to [-180, 180).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from ...shared.atomic import sweep_temporaries
from ...shared.geodesy import EARTH_RADIUS_KM
from ..errors import BudgetError, InputError
from ..io.files import commit_file, crash_point, temp_sibling
from ..io.plan import MARK

log = logging.getLogger("geoclip_qgis")
# Tiled products never hold the whole raster in memory, but their (uncompressed) size is still bounded: it is
# what lands on disk, and every cell costs one encoder call (~7,000 cells/s on a 2-core CPU).
BUDGET_DEFAULTS_MB = {"memory": 2048, "output": 8192}
_warned_budgets: set = set()


def budget_bytes(kind: str = "memory") -> int:
    """The memory or output budget in bytes, from GEOCLIP_MEMORY_BUDGET_MB / GEOCLIP_OUTPUT_BUDGET_MB when set.

    Read when used, never at import: a value that is not a positive number of MB ("abc", "-1", "nan") is
    reported once with a warning naming the variable, and the default is used instead (the documented
    fallback), so that a typo in the environment cannot stop the engine from starting."""
    name = f"GEOCLIP_{kind.upper()}_BUDGET_MB"
    default = BUDGET_DEFAULTS_MB[kind]
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not (math.isfinite(mb) and mb > 0):
        if (name, raw) not in _warned_budgets:
            _warned_budgets.add((name, raw))
            log.warning("%s=%r is not a positive number of MB; using the default, %d MB", name, raw, default)
        return default * 2**20
    return int(mb * 2**20)


WORLD = (-180.0, -90.0, 180.0, 90.0)


MAX_CELLS_ACROSS = 1e9  # far past any budget; keeps the cell arithmetic in exact integers
SNAP_EPS = 1e-6  # in cells: float noise in an extent (0.1 * 3 = 0.30000000000000004) never adds or drops a cell
_NICE_RES = (0.01, 0.02, 0.025, 0.05, 0.1, 0.125, 0.2, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5,
             9.0, 10.0, 15.0, 18.0, 20.0, 30.0, 45.0, 60.0, 90.0)


def lattice_span(lo: float, hi: float, origin: float, res: float) -> Tuple[int, int]:
    """Indices (i0, i1) of the smallest run of lattice cells [origin + i·res, origin + (i+1)·res) covering
    [lo, hi]: snapped outward, as `gdalwarp -tap` does. The one snapping rule of Grid.over and LocationField.snap."""
    return math.floor((lo - origin) / res + SNAP_EPS), math.ceil((hi - origin) / res - SNAP_EPS)


def _dividing(res: float, span: float) -> str:
    """Resolutions near `res` that divide `span` degrees into whole cells: what a refusal suggests."""
    ok = [r for r in _NICE_RES if abs(span / r - round(span / r)) < 1e-9]
    finer = max((r for r in ok if r < res), default=None)
    coarser = min((r for r in ok if r > res), default=None)
    return " or ".join(f"{r:g}°" for r in (finer, coarser) if r is not None)


@dataclass(frozen=True)
class Grid:
    west: float
    south: float
    east: float
    north: float
    res: float

    @classmethod
    def over(cls, extent: Optional[Sequence[float]] = None, res: float = 1.0) -> Grid:
        """The grid of `res` cells covering an extent (W, S, E, N in degrees; W > E crosses the antimeridian).

        Rules, so that an extent means what it says: cells lie on the global lattice of `res` anchored at
        (180°W, 90°N) and the grid is the smallest run of them that covers the whole extent (outward, as
        `gdalwarp -tap`; never rounded inwards); it never reaches past ±90° or wraps more than 360°, so a
        resolution that does not divide the globe where the extent needs it is refused with ones that do; a
        resolution coarser than the extent is refused; west == east is refused (the whole globe is -180,180)."""
        try:
            if isinstance(extent, (str, bytes, dict)) or isinstance(res, (bool, str, bytes)):
                raise TypeError("not numbers")  # "1234" is not the extent 1,2,3,4, nor True a resolution
            w, s, e, n = (float(v) for v in (WORLD if extent is None or len(extent) == 0 else extent))
            res = float(res)
        except (TypeError, ValueError):
            raise InputError(f"extent must be 4 numbers W,S,E,N and the resolution a number, got {extent!r} "
                             f"and {res!r}", hint="e.g. extent -10,35,30,60 and resolution 0.5") from None
        if not all(math.isfinite(v) for v in (w, s, e, n)):
            raise InputError(f"extent {extent} has non-finite values", hint="give W,S,E,N in degrees")
        if not (res > 0 and math.isfinite(res)):
            raise InputError(f"resolution must be a positive number of degrees, got {res}")
        if not (-90 <= s < n <= 90):
            raise InputError(f"extent latitudes must satisfy -90 <= south < north <= 90, got {s}, {n}",
                             hint="latitudes are the 2nd and 4th numbers: W,S,E,N")
        if not (-180 <= w <= 180 and -180 <= e <= 180):
            raise InputError(f"extent longitudes must lie in [-180, 180], got {w}, {e}",
                             hint="for an area across the antimeridian give west > east, e.g. 170,-20,-170,0")
        if e < w:
            e += 360.0  # crosses the antimeridian
        if e - w <= 0:
            raise InputError(f"extent west and east are the same meridian ({w}, {e}): it has no width",
                             hint="for the whole globe give -180,-90,180,90; across the antimeridian, west > east")
        if res > min(e - w, n - s) * (1 + 1e-9):
            raise InputError(f"resolution {res:g}° is coarser than the extent ({e - w:g}° x {n - s:g}°): the "
                             f"raster would be one cell reaching far outside it",
                             hint=f"use a resolution of at most {min(e - w, n - s):g}°, or a larger extent")
        if max(e - w, n - s) / res > MAX_CELLS_ACROSS:
            raise InputError(f"resolution {res:g}° is too fine: {max(e - w, n - s) / res:.3g} cells across",
                             hint="use a coarser resolution, e.g. 0.01°, or a smaller extent")
        c0, c1 = lattice_span(w, e, -180.0, res)
        r0, r1 = lattice_span(90.0 - n, 90.0 - s, 0.0, res)
        if (c1 - c0) * res > 360.0 + 1e-9 or 90.0 - r1 * res < -90.0 - 1e-9:
            span = 360.0 if (c1 - c0) * res > 360.0 + 1e-9 else 180.0
            raise InputError(f"at {res:g}° whole cells covering this extent would reach past "
                             f"{'360° of longitude' if span == 360 else 'the South Pole'}",
                             hint=f"use a resolution that divides {span:g}°, e.g. {_dividing(res, span)}")
        west = -180.0 + c0 * res
        return cls(round(west, 10), round(max(-90.0, 90.0 - r1 * res), 10),
                   round(west + (c1 - c0) * res, 10), round(90.0 - r0 * res, 10), res)

    @property
    def width(self) -> int:
        return max(1, int(round((self.east - self.west) / self.res)))

    @property
    def height(self) -> int:
        return max(1, int(round((self.north - self.south) / self.res)))

    @property
    def shape(self) -> Tuple[int, int]:
        return self.height, self.width

    @property
    def transform(self):
        from rasterio.transform import from_origin

        return from_origin(self.west, self.north, self.res, self.res)

    def row_lats(self, rows: np.ndarray) -> np.ndarray:
        """Latitude of the given (possibly fractional) row centres."""
        return self.north - (np.asarray(rows, dtype=np.float64) + 0.5) * self.res

    def col_lons(self, cols: np.ndarray) -> np.ndarray:
        """Longitude of column centres, wrapped to [-180, 180)."""
        lon = self.west + (np.asarray(cols, dtype=np.float64) + 0.5) * self.res
        return (lon + 180.0) % 360.0 - 180.0

    def row_areas_km2(self) -> np.ndarray:
        """Area of one cell in each row: R² · Δλ · (sin φ_top − sin φ_bottom); cells shrink towards the poles."""
        edges = np.radians(self.north - np.arange(self.height + 1) * self.res)
        edges = np.clip(edges, -math.pi / 2, math.pi / 2)
        return EARTH_RADIUS_KM**2 * math.radians(self.res) * (np.sin(edges[:-1]) - np.sin(edges[1:]))

    def centres(self, row0: int = 0, row1: Optional[int] = None) -> np.ndarray:
        """(n, 2) lat, lon of the cell centres of rows [row0, row1), row-major."""
        row1 = self.height if row1 is None else row1
        lat = self.row_lats(np.arange(row0, row1))
        lon = self.col_lons(np.arange(self.width))
        la, lo = np.meshgrid(lat, lon, indexing="ij")
        return np.stack([la.ravel(), lo.ravel()], axis=1).astype(np.float32)

    def cell_of(self, lat: float, lon: float) -> Tuple[int, int]:
        lon_u = lon if lon >= self.west else lon + 360.0
        return int((self.north - lat) // self.res), int((lon_u - self.west) // self.res)

    def to_dict(self) -> dict:
        return {"west": self.west, "south": self.south, "east": self.east, "north": self.north, "res": self.res,
                "width": self.width, "height": self.height}


def fitting_resolution(res: float, need: float, budget: float) -> float:
    """The finest round resolution at which a request of `need` bytes at `res` shrinks to `budget` (size scales
    with 1 / res²): what a refusal suggests instead."""
    fit = res * math.sqrt(need / budget)
    return next((r for r in (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5) if r >= fit), math.ceil(fit))


def check_budget(grid: Grid, bytes_per_cell: float, what: str, budget: Optional[int] = None,
                 kind: str = "memory") -> None:
    """Refuse before allocating or computing: say how big the request is and which resolution would fit."""
    if budget is None:
        budget = budget_bytes(kind)
    need = grid.width * grid.height * bytes_per_cell
    if need <= budget:
        return
    nice = fitting_resolution(grid.res, need, budget)
    raise BudgetError(
        f"{what} of {grid.width} x {grid.height} cells at {grid.res}° needs {need / 2**20:,.0f} MiB, over the "
        f"{budget / 2**20:,.0f} MiB {kind} budget",
        hint=f"use a resolution of {nice}° or coarser, or a smaller extent "
             f"(budget: GEOCLIP_{kind.upper()}_BUDGET_MB)",
    )


def row_tiles(grid: Grid, max_cells: int) -> Iterator[Tuple[int, int]]:
    """Row ranges of at most `max_cells` cells: the unit of memory-bounded processing."""
    step = max(1, max_cells // grid.width)
    for r0 in range(0, grid.height, step):
        yield r0, min(grid.height, r0 + step)


def geotiff_profile(grid: Grid, count: int, dtype: str, nodata: Optional[float]) -> dict:
    profile = {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": count, "dtype": dtype,
        "crs": "EPSG:4326", "transform": grid.transform, "compress": "deflate", "tiled": True,
        "blockxsize": 256, "blockysize": 256, "BIGTIFF": "IF_SAFER",
        "predictor": 3 if dtype.startswith("float") else 2,
    }
    if grid.width < 256 or grid.height < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    if nodata is not None:
        profile["nodata"] = nodata
    return profile


class GeoTiffWriter:
    """Windowed writes into a tiled, deflated GeoTIFF; with `cog=True` it is turned into a COG on close."""

    def __init__(self, path: os.PathLike, grid: Grid, count: int, dtype: str = "float32",
                 nodata: Optional[float] = None, descriptions: Sequence[str] = (), tags: Optional[Dict] = None,
                 cog: bool = False):
        import rasterio

        self.path = Path(path)
        if not self.path.parent.exists():
            raise InputError("output folder does not exist", str(self.path.parent), "create it first")
        self.cog = cog
        sweep_temporaries(self.path)  # what a killed writer of this file left (its process gone)
        self.tmp = temp_sibling(self.path, "partial")  # unique: concurrent writers of one output never collide
        crash_point("geotiff", "start")
        self.ds = rasterio.open(self.tmp, "w", **geotiff_profile(grid, count, dtype, nodata))
        for i, d in enumerate(descriptions, start=1):
            self.ds.set_band_description(i, d)
        self.ds.update_tags(**{MARK: "1", **{k: str(v) for k, v in (tags or {}).items()}})  # ours to replace later
        self.grid = grid

    def write_rows(self, row0: int, data: np.ndarray) -> None:
        """data: (bands, rows, width) or (rows, width) for one band."""
        from rasterio.windows import Window

        arr = data if data.ndim == 3 else data[None]
        self.ds.write(arr.astype(self.ds.dtypes[0], copy=False), window=Window(0, row0, self.grid.width, arr.shape[1]))

    def close(self) -> Path:
        """Finish the file; the final name appears only when complete (a kill at any moment leaves the old raster
        or the new one: write, fsync, rename; a COG is copied to a second temporary file first)."""
        self.ds.close()
        crash_point("geotiff", "written")
        if self.cog:
            from rasterio.shutil import copy as rio_copy

            cog = temp_sibling(self.path, "cog")
            try:
                rio_copy(self.tmp, cog, driver="COG", compress="deflate", overview_resampling="average")
                crash_point("geotiff", "cog-written")
            except BaseException:
                cog.unlink(missing_ok=True)
                self.tmp.unlink(missing_ok=True)
                raise
            self.tmp.unlink()
            return commit_file(cog, self.path, "geotiff")
        return commit_file(self.tmp, self.path, "geotiff")

    def abort(self) -> None:
        self.ds.close()
        self.tmp.unlink(missing_ok=True)


def write_geotiff(path: os.PathLike, grid: Grid, data: np.ndarray, **kwargs) -> Path:
    count = 1 if data.ndim == 2 else data.shape[0]
    writer = GeoTiffWriter(path, grid, count, str(data.dtype), **kwargs)
    try:
        writer.write_rows(0, data)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# A perceptually ordered ramp (magma-like) for single-band previews.
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                  [250, 193, 39], [252, 255, 164]], dtype=np.float64)


def colourise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(int), len(_RAMP) - 2)
    f = (t - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.uint8)


def render_preview(tif: os.PathLike, png: os.PathLike, max_width: int = 1440, log: Optional[bool] = None) -> Path:
    """PNG of a GeoTIFF: RGB bands as they are, one band through a colour ramp (log-scaled for densities)."""
    import rasterio
    from PIL import Image
    from rasterio.enums import Resampling

    with rasterio.open(tif) as ds:
        scale = min(1.0, max_width / ds.width)
        out_shape = (ds.count, max(1, int(ds.height * scale)), max(1, int(ds.width * scale)))
        data = ds.read(out_shape=out_shape, resampling=Resampling.average if scale < 1 else Resampling.nearest)
        nodata = ds.nodata
        desc = (ds.descriptions[0] or "").lower()
    if data.shape[0] == 3 and data.dtype == np.uint8:
        rgb = np.moveaxis(data, 0, -1)
    else:
        band = data[0].astype(np.float64)
        valid = np.isfinite(band) if nodata is None else (band != nodata) & np.isfinite(band)
        use_log = ("density" in desc) if log is None else log
        if use_log:
            band = np.log10(np.maximum(band, 1e-300))
        vals = band[valid]
        if not vals.size:
            lo, hi = 0.0, 1.0
        elif use_log:
            hi = vals.max()
            lo = max(np.percentile(vals, 1), hi - 8)  # eight decades below the peak are as good as zero
        else:
            lo, hi = np.percentile(vals, 2), np.percentile(vals, 99.5)  # one bright query cell must not dim the rest
        rgb = colourise(band, lo, hi)
        rgb[~valid] = 0
    from PIL.PngImagePlugin import PngInfo

    from ..io.files import atomic_output

    info = PngInfo()
    info.add_text(MARK, "1")  # ours to replace later (the I/O plan reads it)
    with atomic_output(png, "preview") as tmp:
        Image.fromarray(rgb, "RGB").save(tmp, format="PNG", pnginfo=info)
    return Path(png)
