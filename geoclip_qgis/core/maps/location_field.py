"""Location fields: the location encoder evaluated once on a fixed lattice and kept on disk.

Why: every map product scores cells with s·q·f̂(x), and f̂ (the unit location feature) does not depend on the
query. On a lattice that is used again and again — the world at 0.1°, 6.48M cells — it pays to encode once, as
the gallery is: 8-15 min on a 2-core CPU (seconds on a GPU), then each likelihood, similarity or PCA raster is a
single pass over the stored features (1-2 s on that CPU) instead of 6.48M encoder calls.

Storage: each unit feature is kept as int16 with one float32 scale per cell (largest |component| / 32767):
1,028 bytes a cell, 6.7 GB for the world at 0.1°. At GeoCLIP's s ≈ 40 the score error is below 3e-4 nats,
seven times below float16 at the same size. int8 (largest |component| / 127, 516 bytes a cell, 3.3 GB for the
world at 0.1°) can be asked for, but it stays an option: measured against the encoder (scripts/bench_rasters.py)
its score error reaches 0.06-0.08 nats, 3-4 times the 0.02-nat bound set for a default. The features have a flat
spectrum (no PCA basis or rotation concentrates them), so no 8-bit scalar code gets under the bound. A field's
meta.json records its dtype (int16 when absent) and int8 folders carry it in their name and key.

Building writes row blocks in place and records how many rows are done only after they are on disk (fsync), so
an interrupted build resumes where it stopped and never passes off a partial field as complete.

Integrity: every row carries a sha256 (codes and scales of the row, 16 hex digits) computed from the data as it is
written and recorded in meta.json in the same atomic write that counts the row as done. Opening a field checks
only the metadata and the files' exact sizes (cheap); each row is then verified the first time a process reads it
(a region map hashes only its rows, not the 6.7 GB world), the worker's start-up prefetch, which reads everything
anyway, verifies everything, and a resumed build verifies the rows it keeps. Hashing runs at 0.5 GB/s on the
shared 2-core CPU (a 1° world field, 66.6 MB, in 0.13 s): a whole 0.1° world costs ~13 s once per process. A
field that fails a check is reported with a warning, moved aside (`<folder>.corrupt-<time>`), and never used
again: products fall back to the encoder, which gives the same map to the field's 1e-3-nat tolerance, until the
field is built again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ...shared import atomic
from .. import cancel
from ..errors import BudgetError, InputError
from ..io.files import open_regular
from ..model.location_encoder import CANCEL_STEP
from .raster import Grid, fitting_resolution, lattice_span

log = logging.getLogger("geoclip_qgis")
VERSION = 2  # 2: per-row checksums
DIMS = 512
CODE_LEVELS = {"int16": 32767, "int8": 127}  # the storable dtypes and the largest code of each
DEFAULT_DTYPE = "int16"  # int8 misses the 0.02-nat bound (module notes); it stays an explicit choice


def bytes_per_cell(dtype: str = DEFAULT_DTYPE) -> int:
    """Disk bytes of one cell: 512 codes and one float32 scale."""
    return DIMS * np.dtype(_checked_dtype(dtype)).itemsize + 4


def _checked_dtype(dtype: str) -> str:
    if dtype not in CODE_LEVELS:
        raise InputError(f"location field dtype must be one of {', '.join(CODE_LEVELS)}, got {dtype!r}")
    return dtype


BYTES_PER_CELL = bytes_per_cell(DEFAULT_DTYPE)  # of a new field (the default dtype)
CHUNK_CELLS = 4096  # ~8 MB of float32 per step: stays in cache, and the copy + matvec run at memory speed
PAUSE_CELLS = CANCEL_STEP  # a build checks should_pause() between encoder steps of this many cells
PAUSE_STEP = 0.05  # seconds slept per should_pause() check
DISK_MARGIN = 512 * 2**20
Segment = Tuple[int, int, int]  # field column start, end, output column start


def _file_sizes(grid: Grid, dtype: str = DEFAULT_DTYPE) -> Tuple[Tuple[str, int], Tuple[str, int]]:
    """The field's two files and their exact sizes, the one definition the build and the reader share."""
    cells = grid.width * grid.height
    return (f"codes.{dtype}", cells * (bytes_per_cell(dtype) - 4)), ("scales.float32", cells * 4)


class CorruptField(InputError):
    """A location field whose files or rows fail their checks; it has been moved aside already."""


def row_checksum(codes_row: np.ndarray, scales_row: np.ndarray) -> str:
    """sha256 (16 hex digits) of one lattice row as stored: its codes, then its float32 scales."""
    h = hashlib.sha256(memoryview(np.ascontiguousarray(codes_row)).cast("B"))
    h.update(memoryview(np.ascontiguousarray(scales_row)).cast("B"))
    return h.hexdigest()[:16]


def field_dir(cache_dir: os.PathLike, weights_digest: str, grid: Grid, dtype: str = DEFAULT_DTYPE) -> Path:
    """One folder per (weights, lattice, dtype): a field built for other weights or another lattice is never used,
    and an int8 and an int16 field of one lattice coexist. int16 keeps the key it had before int8 existed, so
    the fields already built are found (and resumed) where they are."""
    extra = {} if _checked_dtype(dtype) == "int16" else {"dtype": dtype}
    spec = json.dumps({"v": VERSION, "w": weights_digest, **_lattice(grid), **extra}, sort_keys=True)
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    tag = "" if dtype == "int16" else f"-{dtype}"
    return Path(cache_dir) / "fields" / f"field-{grid.res:g}deg-{grid.width}x{grid.height}{tag}-{key}"


def _lattice(grid: Grid) -> dict:
    return {"west": round(grid.west, 9), "north": round(grid.north, 9), "res": round(grid.res, 12),
            "width": grid.width, "height": grid.height}


class LocationField:
    """A built (or partly built) field: int16 or int8 codes (H, W, 512) and float32 scales (H, W), memory-mapped."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        try:
            with open_regular(meta_file, "location field metadata") as fh:
                self.meta = json.loads(fh.read())
            g = self.meta["grid"]
            self.grid = Grid(g["west"], g["north"] - g["height"] * g["res"], g["west"] + g["width"] * g["res"],
                             g["north"], g["res"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"unreadable location field metadata ({exc})", path=meta_file,
                             hint="delete the folder and build the field again") from exc
        H, W = self.grid.shape
        self.dtype = self.meta.get("dtype", "int16")  # fields from before int8 existed are int16
        if self.dtype not in CODE_LEVELS:
            raise InputError(f"unknown location field dtype {self.dtype!r}", path=meta_file,
                             hint="built by a newer version: update the plugin, or delete the folder")
        if self.meta.get("version") != VERSION:
            raise InputError(f"location field format {self.meta.get('version')!r} is not {VERSION} (built by an "
                             "older version, without row checksums)", path=self.path,
                             hint="build the field again, then delete this folder to free its space")
        sums = self.meta.get("row_sha256")
        if not isinstance(sums, list) or len(sums) != H:
            self._damaged("its metadata has no checksum for every row")
        for name, size in _file_sizes(self.grid, self.dtype):
            f = self.path / name
            if not f.is_file() or f.stat().st_size != size:
                self._damaged(f"{name} is missing or has the wrong size (want {size:,} bytes)")
        # Copy-on-write maps: readable as tensors without a copy, and nothing is ever written back.
        self.codes = np.memmap(self.path / f"codes.{self.dtype}", dtype=self.dtype, mode="c", shape=(H, W, DIMS))
        self.scales = np.memmap(self.path / "scales.float32", dtype=np.float32, mode="c", shape=(H, W))
        self.usable = True
        self._verified = np.zeros(H, dtype=bool)
        self._lock = threading.Lock()

    def _damaged(self, reason: str) -> None:
        """Report the field, move it aside and stop using it; raises CorruptField."""
        self.usable = False
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(self.path, aside)
            where = f"moved aside to {aside}"
        except OSError as exc:
            where = f"could not be moved aside ({exc.strerror or exc})"
        log.warning("location field %s is damaged: %s; %s. Maps use the encoder until it is built again.",
                    self.path, reason, where)
        raise CorruptField(f"location field is damaged: {reason}", path=self.path,
                           hint=f"it was {where}; build it again (geoclip-qgis field --resolution "
                                f"{self.grid.res:g}, or the manager's Build button), then delete the damaged copy")

    def _check_usable(self) -> None:
        if not self.usable:
            raise CorruptField("location field was found damaged and moved aside", path=self.path,
                               hint="build it again")

    def verify_rows(self, r0: int, r1: int) -> None:
        """Check rows [r0, r1) against their build-time checksums, each row once per process; CorruptField on the
        first that fails (the field is moved aside then)."""
        self._check_usable()
        sums = self.meta["row_sha256"]
        for r in range(max(0, r0), min(r1, self.rows_done)):
            if self._verified[r]:
                continue
            if row_checksum(self.codes[r], self.scales[r]) != sums[r]:
                with self._lock:
                    if self.usable:
                        self._damaged(f"row {r} does not match its checksum (changed after it was built)")
                raise CorruptField("location field was found damaged", path=self.path, hint="build it again")
            self._verified[r] = True

    @property
    def rows_done(self) -> int:
        return int(self.meta.get("rows_done", 0))

    @property
    def complete(self) -> bool:
        return self.rows_done >= self.grid.height

    @property
    def weights_digest(self) -> str:
        return str(self.meta.get("weights_digest", ""))

    @property
    def wraps(self) -> bool:
        """True for a field all the way round the globe: windows may then cross the antimeridian."""
        return abs(self.grid.width * self.grid.res - 360.0) < 1e-6

    @property
    def bytes(self) -> int:
        return self.grid.width * self.grid.height * bytes_per_cell(self.dtype)

    def info(self) -> dict:
        return {"path": str(self.path), "complete": self.complete, "rows_done": self.rows_done, "bytes": self.bytes,
                "dtype": self.dtype, **self.grid.to_dict()}

    # ---- which part of the field a grid reads -----------------------------------------------------------
    def snap(self, grid: Grid) -> Optional[Grid]:
        """The smallest grid on this field's lattice that covers `grid` (as gdalwarp -tap would), or None when
        the resolutions differ or the field does not reach that far."""
        if not self.usable or not self.complete or not math.isclose(grid.res, self.grid.res, rel_tol=1e-9):
            return None
        res = self.grid.res
        r0, r1 = lattice_span(self.grid.north - grid.north, self.grid.north - grid.south, 0.0, res)
        c0, c1 = lattice_span(grid.west, grid.east, self.grid.west, res)
        if r0 < 0 or r1 > self.grid.height or c1 - c0 > self.grid.width:
            return None
        if not self.wraps and (c0 < 0 or c1 > self.grid.width):
            return None
        west = self.grid.west + c0 * res
        if west >= 180.0:
            west -= 360.0
        north = self.grid.north - r0 * res
        # Rounded so that the GeoTIFF's origin reads 170.0, not 170.00000000000003.
        return Grid(round(west, 10), round(north - (r1 - r0) * res, 10), round(west + (c1 - c0) * res, 10),
                    round(north, 10), res)

    def window(self, grid: Grid) -> Optional[Tuple[int, List[Segment]]]:
        """Row offset and column segments of `grid` inside this field, if `grid` lies exactly on its lattice."""
        snapped = self.snap(grid)
        if snapped is None or snapped.shape != grid.shape or not math.isclose(snapped.west, grid.west, abs_tol=1e-6) \
                or not math.isclose(snapped.north, grid.north, abs_tol=1e-6):
            return None
        res, H, W = self.grid.res, self.grid.height, self.grid.width
        row0 = int(round((self.grid.north - grid.north) / res))
        c0 = int(round((grid.west - self.grid.west) / res)) % W if self.wraps else \
            int(round((grid.west - self.grid.west) / res))
        if row0 + grid.height > H:
            return None
        first = min(W - c0, grid.width)
        segments = [(c0, c0 + first, 0)]
        if first < grid.width:
            segments.append((0, grid.width - first, first))
        return row0, segments

    def overlap(self, grid: Grid) -> List[Tuple[int, int, int, int, Grid]]:
        """The rectangles of `grid` this field holds when `grid` lies on its lattice (same resolution, whole-cell
        offsets): (rows g0:g1, columns c0:c1 of `grid`, and that rectangle as a grid of its own, which `dot`
        reads). [] when it holds none of it. For a view only partly inside a regional field."""
        res = self.grid.res
        if not self.usable or not self.complete or not math.isclose(grid.res, res, rel_tol=1e-9):
            return []
        dr, dc = (self.grid.north - grid.north) / res, (grid.west - self.grid.west) / res
        if abs(dr - round(dr)) > 1e-6 or abs(dc - round(dc)) > 1e-6:
            return []
        dr, dc, n360 = int(round(dr)), int(round(dc)), int(round(360.0 / res))
        g0, g1 = max(0, -dr), min(grid.height, self.grid.height - dr)
        spans = [(0, grid.width)] if self.wraps else [
            (max(0, -d), min(grid.width, self.grid.width - d)) for d in (dc - n360, dc, dc + n360)]
        out = []
        for c0, c1 in spans:
            if g0 < g1 and c0 < c1:
                west = (grid.west + c0 * res + 180.0) % 360.0 - 180.0
                north = grid.north - g0 * res
                sub = Grid(round(west, 10), round(north - (g1 - g0) * res, 10), round(west + (c1 - c0) * res, 10),
                           round(north, 10), res)
                out.append((g0, g1, c0, c1, sub))
        return out

    def prefetch(self) -> int:
        """Read and verify the whole field once, so that the OS keeps it in its page cache and later maps skip the
        checks: the first map after start-up then does not wait ~10 s for the disk. Meant for a background
        thread; returns the bytes read (0 when the field turned out damaged: it is moved aside then)."""
        try:
            self.verify_rows(0, self.grid.height)
        except CorruptField:
            return 0
        return self.rows_done * self.grid.width * bytes_per_cell(self.dtype)

    # ---- reading ------------------------------------------------------------------------------------------
    def iter_tiles(self, grid: Grid, rows: Optional[Tuple[int, int]] = None, chunk: int = CHUNK_CELLS,
                   ) -> Iterator[Tuple[int, int, int, int, torch.Tensor, torch.Tensor]]:
        """(r0, r1, d0, d1, codes (n, 512) int16 or int8, scales (n,)) blocks of `grid` rows [rows) and output columns
        [d0, d1), straight from the maps, each row verified the first time; the caller turns codes into what it
        needs."""
        self._check_usable()
        win = self.window(grid)
        if win is None:
            raise InputError(f"the grid {grid.to_dict()} does not lie on the location field's lattice",
                             path=self.path, hint="snap the extent with LocationField.snap first")
        row0, segments = win
        lo, hi = rows or (0, grid.height)
        for s0, s1, d0 in segments:
            w = s1 - s0
            step = max(1, chunk // w)
            for r in range(lo, hi, step):
                r1 = min(hi, r + step)
                self.verify_rows(row0 + r, row0 + r1)
                codes = torch.from_numpy(self.codes[row0 + r:row0 + r1, s0:s1]).reshape(-1, DIMS)
                scales = torch.from_numpy(self.scales[row0 + r:row0 + r1, s0:s1]).reshape(-1)
                yield r, r1, d0, d0 + w, codes, scales

    @torch.inference_mode()
    def dot(self, vectors, grid: Grid, rows: Optional[Tuple[int, int]] = None,
            progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """f̂(cell) · vectors for every cell of `grid` (rows [rows) only, if given). `vectors` is one (512,)
        query — giving float64 (rows, W) — or a (512, k) projection, giving (rows, W, k)."""
        q = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        single = q.ndim == 1
        q = q.reshape(q.shape[0], -1)
        if q.shape[0] != DIMS:
            raise InputError(f"query must have {DIMS} values per column, got {q.shape[0]}")
        lo, hi = rows or (0, grid.height)
        out = np.empty((hi - lo, grid.width, q.shape[1]), dtype=np.float64)
        buf = torch.empty(CHUNK_CELLS, DIMS)
        for r0, r1, d0, d1, codes, scales in self.iter_tiles(grid, (lo, hi)):
            cancel.check()
            b = buf[:codes.shape[0]] if codes.shape[0] <= CHUNK_CELLS else torch.empty(codes.shape[0], DIMS)
            b.copy_(codes)  # int16 / int8 -> float32 into a reused buffer: the fast path measured in the module notes
            vals = (torch.mv(b, q[:, 0])[:, None] if single else b @ q).mul_(scales[:, None])
            out[r0 - lo:r1 - lo, d0:d1] = vals.reshape(r1 - r0, d1 - d0, -1).double().numpy()
            if progress:
                progress(r1 - lo, hi - lo)
        return out[..., 0] if single else out

    @torch.inference_mode()
    def unit_features(self, grid: Grid, r0: int, r1: int) -> torch.Tensor:
        """Unit location features of `grid` rows [r0, r1), row-major (n, 512) float32, as the encoder gives."""
        out = torch.empty((r1 - r0) * grid.width, DIMS)
        view = out.view(r1 - r0, grid.width, DIMS)
        for a, b, d0, d1, codes, scales in self.iter_tiles(grid, (r0, r1)):
            block = codes.float().mul_(scales[:, None])
            view[a - r0:b - r0, d0:d1] = block.view(b - a, d1 - d0, DIMS)
        return out


def quantise(unit: torch.Tensor, dtype: str = DEFAULT_DTYPE, in_place: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Unit features (n, 512) -> codes (int16 or int8) and float32 scales with codes · scale ≈ feature.
    `in_place` divides `unit` itself (the field build's own block): no 32 MB temporaries per block, same values."""
    top = CODE_LEVELS[_checked_dtype(dtype)]
    lo, hi = torch.aminmax(unit, dim=1)  # max |x| without a copy of |unit|
    scale = torch.maximum(hi, lo.neg_()).clamp_min_(1e-30).div_(float(top))
    codes = (unit.div_(scale[:, None]) if in_place else unit / scale[:, None]).round_().clamp_(-top, top)
    return codes.to(getattr(torch, dtype)).numpy(), scale.numpy().astype(np.float32)


def _allocated(path: Path) -> int:
    """Bytes a (sparse) file really occupies on disk."""
    st = path.stat()
    return int(getattr(st, "st_blocks", 0) * 512) or st.st_size


def _write_meta(path: Path, meta: dict) -> None:
    """Replace meta.json atomically and durably (shared/atomic.py); a failed write (full disk) leaves the old one
    and no temporary file."""
    atomic.write_text(path / "meta.json", json.dumps(meta, indent=1), "field-meta")


def check_disk(path: Path, grid: Grid, have: int = 0, dtype: str = DEFAULT_DTYPE, margin: int = DISK_MARGIN) -> None:
    """Refuse a build that cannot fit on the disk (leaving `margin` bytes free), before writing a byte: say the
    size and a resolution that fits."""
    need = grid.width * grid.height * bytes_per_cell(dtype) - have
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need + margin <= free:
        return
    usable = free - margin
    hint = "free some space, or use another cache folder (--cache-dir / GEOCLIP_QGIS_CACHE)"
    if usable > 0:
        hint += f", or build at {fitting_resolution(grid.res, need + have, usable):g}°"
    raise BudgetError(
        f"a location field of {grid.width} x {grid.height} cells at {grid.res:g}° needs {need / 2**30:.2f} GiB more "
        f"disk, and only {free / 2**30:.2f} GiB is free"
        + (f" (keeping {margin / 2**30:.1f} GiB free)" if margin > DISK_MARGIN else ""), path=probe, hint=hint)


def wait_while(should_pause: Optional[Callable[[], bool]], step: Optional[float] = None) -> None:
    """Sleep in small steps while `should_pause()` is true, so that an interactive request has the CPU; a cancel
    still lands within one step."""
    while should_pause is not None and should_pause():
        cancel.check()
        time.sleep(PAUSE_STEP if step is None else step)


def build_field(encoder, weights_digest: str, grid: Grid, cache_dir: os.PathLike, block_cells: int = 16384,
                progress: Optional[Callable[[int, int], None]] = None, dtype: str = DEFAULT_DTYPE,
                should_pause: Optional[Callable[[], bool]] = None) -> LocationField:
    """Encode `grid` (resuming a partial build) and return the complete field; `progress(rows, height)` may raise
    to cancel, which keeps every flushed row for the next call. While `should_pause()` is true the build sleeps
    between encoder steps of PAUSE_CELLS cells (~0.3 s of CPU each), never holding a request up for longer."""
    path = field_dir(cache_dir, weights_digest, grid, dtype)
    H, W = grid.shape
    meta = {"version": VERSION, "weights_digest": weights_digest, "grid": _lattice(grid), "rows_done": 0,
            "dtype": dtype, "bytes_per_cell": bytes_per_cell(dtype), "row_sha256": [None] * H}
    (codes_name, _), (scales_name, _) = _file_sizes(grid, dtype)
    codes_f, scales_f = path / codes_name, path / scales_name
    done = 0
    try:
        old = LocationField(path)  # checks the metadata and both files' sizes
        if old.dtype == dtype and {k: old.meta.get(k) for k in ("version", "weights_digest", "grid")} == \
                {k: meta[k] for k in ("version", "weights_digest", "grid")}:
            done = min(old.rows_done, H)
            old.verify_rows(0, done)  # the rows a resumed build keeps are checked, not trusted
            meta["row_sha256"] = list(old.meta["row_sha256"])
        del old
    except InputError:
        done = 0  # nothing there yet, or damaged (moved aside then): start over
        meta["row_sha256"] = [None] * H
    if done == 0:
        check_disk(path, grid, dtype=dtype)
        try:
            path.mkdir(parents=True, exist_ok=True)
            for name, size in _file_sizes(grid, dtype):
                with open(path / name, "wb") as fh:  # sparse: blocks are allocated as rows are written
                    fh.truncate(size)
            _write_meta(path, meta)
        except OSError as exc:
            raise InputError(f"cannot create the location field ({exc.strerror or exc})", path=path,
                             hint="choose a writable cache folder with free space (--cache-dir or "
                                  "GEOCLIP_QGIS_CACHE)") from exc
    elif done < H:
        check_disk(path, grid, have=_allocated(codes_f) + _allocated(scales_f), dtype=dtype)
    step = max(1, block_cells // W)
    # Plain writes, not a writable memory map: a full disk then raises ENOSPC here instead of killing the
    # process with SIGBUS, and the rows already flushed stay valid for the next run.
    with open(codes_f, "r+b") as fc, open(scales_f, "r+b") as fs:
        for r0 in range(done, H, step):
            r1 = min(H, r0 + step)
            # fp32 on every device: fp16 MLPs would cost more accuracy than the int16 storage does. The steps are
            # the encoder's own batches (CANCEL_STEP), so pausing between them changes no result.
            pts = grid.centres(r0, r1)
            unit = torch.empty(len(pts), DIMS)  # filled step by step: no list of parts to concatenate
            for a in range(0, len(pts), PAUSE_CELLS):
                wait_while(should_pause)
                unit[a:a + PAUSE_CELLS] = encoder.encode(pts[a:a + PAUSE_CELLS], batch=block_cells, normalise=True,
                                                         autocast=False)
            c, s = quantise(unit, dtype, in_place=True)
            try:
                for fh, offset, data in ((fc, r0 * W * c.shape[1] * c.itemsize, c), (fs, r0 * W * 4, s)):
                    fh.seek(offset)
                    fh.write(memoryview(data).cast("B"))  # the array's own bytes, not a copy
                    fh.flush()
                    os.fsync(fh.fileno())
                rows_c, rows_s = c.reshape(r1 - r0, -1), s.reshape(r1 - r0, -1)
                meta["row_sha256"][r0:r1] = [row_checksum(rows_c[i], rows_s[i]) for i in range(r1 - r0)]
                meta["rows_done"] = r1  # one atomic write records the rows' checksums and counts them as done
                _write_meta(path, meta)
            except OSError as exc:
                raise InputError(f"could not write the location field ({exc.strerror or exc})", path=path,
                                 hint="free some disk space and run the build again: it resumes") from exc
            if progress:
                progress(r1, H)
    return LocationField(path)


def available_memory() -> Optional[int]:
    """Memory available without swapping, in bytes, on every OS (psutil; Linux's /proc/meminfo without it);
    None where unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # not installed, or no answer on this platform
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
