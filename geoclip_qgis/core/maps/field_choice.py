"""Which built location fields a map reads, the world fields built ahead of need (the pyramid), and THE resolution
rule for a view's raster.

Why apart from location_field.py: that module is the storage (one field on disk, its checks, its build); this one
finds the fields there are, reads a view across them (the encoder filling what none holds), and decides which
resolution a map, Processing's "auto" and the map tool get, from the fields that are built and what the encoder can
do in a few seconds on this device.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import BudgetError, InputError
from .location_field import (
    DEFAULT_DTYPE,
    DISK_MARGIN,
    CorruptField,
    LocationField,
    build_field,
    bytes_per_cell,
    check_disk,
    field_dir,
)
from .raster import Grid

log = logging.getLogger("geoclip_qgis")


def find_field(cache_dir: os.PathLike, weights_digest: str, res: Optional[float] = None) -> List[LocationField]:
    """Complete fields for these weights (at this resolution, if given), the widest first."""
    root = Path(cache_dir) / "fields"
    found = []
    for d in sorted(root.glob("field-*")) if root.is_dir() else []:
        if ".corrupt-" in d.name:
            continue
        try:
            f = LocationField(d)
        except CorruptField:
            continue  # reported and moved aside
        except InputError as exc:
            if (d / "meta.json").is_file():
                log.warning("%s", exc)
            continue
        if f.complete and f.weights_digest == weights_digest and (res is None or
                                                                  math.isclose(f.grid.res, res, rel_tol=1e-9)):
            found.append(f)
    # Widest first; of two fields of one lattice, the more precise (int16 before int8).
    return sorted(found, key=lambda f: (-f.grid.width * f.grid.height, -bytes_per_cell(f.dtype)))


Part = Tuple[LocationField, int, int, int, int, Grid]


def partial_cover(engine, grid: Grid) -> List[Part]:
    """The parts of `grid` that built fields at its resolution hold, when none holds all of it (engine.field_for
    finds that case): a view reaching past a regional field reads what the field has."""
    return [(f, *part) for f in find_field(engine.cache_dir, engine.location_digest, grid.res)
            for part in f.overlap(grid)]


@torch.inference_mode()
def dot_covered(parts: Sequence[Part], encoder, vectors, grid: Grid, rows: Optional[Tuple[int, int]] = None
                ) -> Tuple[np.ndarray, int]:
    """f̂(cell) · vectors for `grid` rows [rows), as LocationField.dot gives them: read from the fields' parts
    where they hold the cells, from the encoder for the others; also returns how many cells were encoded."""
    q = np.asarray(vectors, dtype=np.float32)
    single = q.ndim == 1
    q = q.reshape(q.shape[0], -1)
    lo, hi = rows or (0, grid.height)
    out = np.full((hi - lo, grid.width, q.shape[1]), np.nan)
    for f, g0, g1, c0, c1, sub in parts:
        a, b = max(lo, g0), min(hi, g1)
        if a < b:
            with contextlib.suppress(CorruptField):  # reported and moved aside: the encoder makes these cells
                out[a - lo:b - lo, c0:c1] = f.dot(q, sub, rows=(a - g0, b - g0))
    missing = np.isnan(out[..., 0])
    if missing.any():
        emb = encoder.encode(grid.centres(lo, hi)[missing.ravel()], normalise=True)
        out[missing] = emb.double().numpy() @ q.astype(np.float64)
    return (out[..., 0] if single else out), int(missing.sum())

PYRAMID = (0.5, 0.25)  # built at engine start, coarsest first; the 0.1° world field stays the user's choice
PYRAMID_RESERVE = 2 * 2**30  # an automatic build leaves this much disk free: nobody asked for it
# Location-encoder cells per second, to size what a view may ask of it (docs/benchmarks.md: 5,900-7,000 on the
# 2-core CPU; a GPU does hundreds of thousands).
ENCODER_CELLS_PER_S = {"cpu": 6000.0, "cuda": 500_000.0}
NICE_RES = (0.0001, 0.0002, 0.00025, 0.0005, 0.001, 0.002, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25,
            0.5, 1.0)  # each divides 180° (so a world or polar grid never has to be refused)


def _present(path: Path) -> Optional[LocationField]:
    try:
        return LocationField(path)
    except InputError:  # absent, or damaged (moved aside then): built again
        return None


def build_pyramid(engine, resolutions: Sequence[float] = PYRAMID, should_pause: Optional[Callable[[], bool]] = None,
                  progress: Optional[Callable[[int, int], None]] = None, dtype: str = DEFAULT_DTYPE,
                  reserve: int = PYRAMID_RESERVE, block_cells: int = 16384) -> List[dict]:
    """Build world fields at `resolutions`, coarsest first, so that world and continent maps read a field
    within a minute of the first engine start instead of waiting 20-70 s for the encoder.

    Meant for a background thread. Each level resumes what an earlier call left, sleeps while `should_pause()` is
    true (an interactive request is waiting), stops on core.cancel or when `progress(done_cells, total_cells)`
    (over all levels) raises, keeping the rows flushed, and is skipped when it would leave less than `reserve`
    bytes of disk free: a returned status with its message, not an exception. Returns one dict per level:
    res, status ("present", "built" or "skipped"), message, seconds, path, bytes."""
    grids = [Grid.over(None, r) for r in sorted({float(r) for r in resolutions}, reverse=True)]
    total = sum(g.width * g.height for g in grids)
    base, out = 0, []
    for grid in grids:
        cells = grid.width * grid.height
        path = field_dir(engine.cache_dir, engine.location_digest, grid, dtype)
        status = {"res": grid.res, "path": str(path), "bytes": cells * bytes_per_cell(dtype), "seconds": 0.0}
        t0 = time.perf_counter()
        have = _present(path)
        if have is not None and have.complete:
            status.update(status="present", message=f"the {grid.res:g}° world field is built")
        else:
            try:
                done = have.rows_done * grid.width * bytes_per_cell(dtype) if have is not None else 0
                check_disk(path, grid, have=done, dtype=dtype, margin=max(reserve, DISK_MARGIN))

                def report(rows: int, height: int, base: int = base, width: int = grid.width) -> None:
                    if progress:
                        progress(base + rows * width, total)

                build_field(engine.location_encoder, engine.location_digest, grid, engine.cache_dir, block_cells,
                            report, dtype, should_pause)
                status.update(status="built", message=f"the {grid.res:g}° world field is built")
            except BudgetError as exc:
                status.update(status="skipped", message=f"the {grid.res:g}° world field was not built: {exc}"
                                                        + (f"; {exc.hint}" if getattr(exc, "hint", None) else ""))
        status["seconds"] = round(time.perf_counter() - t0, 3)
        log.info("%s", status["message"])
        out.append(status)
        base += cells
    return out


def _covers(field: LocationField, extent: Optional[Sequence[float]]) -> bool:
    try:
        return field.snap(Grid.over(extent, field.grid.res)) is not None
    except InputError:  # the field's cells are coarser than the view
        return False


def choose_resolution(extent_wsen: Optional[Sequence[float]], view_width_px: int, view_height_px: int,
                      fields: Sequence[LocationField] = (), cells_per_s: float = ENCODER_CELLS_PER_S["cpu"],
                      seconds: float = 3.0, px_per_cell: float = 3.0, coarsest: float = 1.0) -> float:
    """The resolution (degrees) of a raster of this view: about one cell per `px_per_cell` screen pixels.

    The one rule for the map canvas and Processing's "auto": (1) the pixel target, never coarser than
    `coarsest`; (2) the finest built field covering the view whose cells are at most twice finer than the target
    and no coarser than twice the target or than what the encoder could do (a field map takes well under a
    second whatever its size); (3) else a round resolution (NICE_RES) near the target, coarsened until the
    encoder makes its cells in about `seconds` at `cells_per_s`, but never past `coarsest`."""
    w, s, e, n = (float(v) for v in (extent_wsen if extent_wsen is not None and len(extent_wsen) else
                                     (-180.0, -90.0, 180.0, 90.0)))
    if e <= w:
        e += 360.0  # across the antimeridian
    if view_width_px < 1 or view_height_px < 1 or not (n > s):
        raise InputError(f"a view needs a size in pixels and an extent, got {view_width_px} x {view_height_px} px "
                         f"over {extent_wsen}")
    dx, dy = e - w, n - s
    target = min(coarsest, px_per_cell * max(dx / view_width_px, dy / view_height_px))
    fastest = min(coarsest, math.sqrt(dx * dy / (cells_per_s * seconds)))  # finest the encoder affords
    near = [f.grid.res for f in fields if target / 2 <= f.grid.res * (1 + 1e-9)
            and f.grid.res <= min(coarsest, max(2 * target, fastest)) * (1 + 1e-9) and _covers(f, extent_wsen)]
    if near:
        return min(near)
    goal = max(target, fastest)
    nice = [r for r in NICE_RES if fastest * (1 - 1e-9) <= r <= min(coarsest, dx, dy) * (1 + 1e-9)]
    if not nice:  # a view smaller than the encoder's finest affordable cell: one cell across
        return min(coarsest, dx, dy)
    return min(nice, key=lambda r: abs(math.log(r / goal)))


def view_grid(engine, extent_wsen: Optional[Sequence[float]], view_width_px: int, view_height_px: int,
              **kwargs) -> Grid:
    """The grid of a raster for this view (choose_resolution with the engine's built fields and device): what
    the worker's 'auto' resolution and Processing's 'auto' call. The products then read the field it names."""
    fields = find_field(engine.cache_dir, engine.location_digest)
    rate = ENCODER_CELLS_PER_S["cuda" if getattr(engine.device, "type", "cpu") == "cuda" else "cpu"]
    res = choose_resolution(extent_wsen, view_width_px, view_height_px, fields, cells_per_s=rate, **kwargs)
    return Grid.over(extent_wsen, res)
