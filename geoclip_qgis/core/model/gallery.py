"""The GPS gallery that retrieval ranks: coordinates plus their normalised location embeddings, cached.

Encoding 100K points costs ~20 s on a CPU; the reference package pays it on every call. Here it is paid once:
the embeddings are written to the cache folder under a key made of the location-encoder weights' digest, the
coordinates' hash and the dtype (any change makes a new key), and memory-mapped afterwards.

The cache proves its integrity. It is one file: a 4 KiB header (a magic line, then JSON with the shape, dtype and
the sha256 of the data) followed by the raw array, so data and checksum are written together and renamed into
place together. Every load checks the header, the exact size and the sha256 of all the data: 0.18 s for the 100K
gallery (205 MB, float32) on the idle 2-core development CPU (SHA extensions), 0.37 s with its cores shared
(measured with `python -c "from geoclip_qgis.core.model.gallery import time_checksum; print(time_checksum())"`, and
load + verify of the real 100K cache: 0.37 s), against 20-136 s to encode it again. A cache that fails any check
is reported (a warning naming the file), moved aside as `<name>.corrupt-<time>` and rebuilt: one overwritten row
can no longer become every photo's top-1 with p = 1.0.
When the cache folder cannot be written (read-only, full, a file in its place) the embeddings are kept in
memory for this run with a warning, and no temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from ...shared import atomic, defaults
from ..errors import BudgetError, GeoClipError, InputError, WeightsError
from ..io.files import open_regular

log = logging.getLogger("geoclip_qgis")
CACHE_ENV = defaults.CACHE_ENV
EMBED_DIM = 512
CACHE_MAGIC = b"GEOCLIP-GALLERY-CACHE 2\n"
HEADER_BYTES = 4096
BYTES_PER_POINT = EMBED_DIM * 4 + 2 * 4  # float32 embedding + float32 lat, lon: what a gallery point holds in memory
_CSV_HINT = "give a CSV with LAT and LON columns of numbers in degrees"


def default_cache_dir() -> Path:
    """The one cache-folder rule (shared/defaults.py): $GEOCLIP_QGIS_CACHE, else the OS's cache folder; the plugin
    resolves the same folder."""
    return defaults.default_cache_dir()


def max_gallery_points() -> int:
    """The most gallery points whose embeddings fit in the memory budget (GEOCLIP_MEMORY_BUDGET_MB)."""
    from ..maps.raster import budget_bytes

    return budget_bytes("memory") // BYTES_PER_POINT


def check_gallery_size(n: int, what: str = "gallery", path: Optional[str] = None) -> int:
    """Refuse `n` points whose embeddings would not fit in the memory budget, before anything is allocated: a
    gallery (fibonacci:N, a CSV, an array) or any batch of points to encode."""
    limit = max_gallery_points()
    if n > limit:
        spec = f" (e.g. fibonacci:{limit})" if "gallery" in what.lower() else ""
        raise BudgetError(
            f"{what}: {n:,} points need {n * BYTES_PER_POINT / 2**20:,.0f} MiB for their embeddings, over the "
            f"{limit * BYTES_PER_POINT / 2**20:,.0f} MiB memory budget", path,
            f"use at most {limit:,} points{spec}, or raise GEOCLIP_MEMORY_BUDGET_MB")
    return n


def read_coordinates_csv(path: os.PathLike | str) -> np.ndarray:
    """(N, 2) float32 lat, lon from a CSV with LAT/LON (or lat/lon, latitude/longitude) columns.

    Only a regular file is opened (a FIFO would block forever), it is read in chunks so that a huge file is
    refused by the memory budget before it is all in memory, and a cell that is not a number is named by its
    line and column instead of becoming NaN or a crash."""
    import pandas as pd

    p = Path(path)
    parts, lat, lon, n = [], None, None, 0
    with open_regular(p, "gallery CSV", _CSV_HINT, binary=False) as fh:
        from ..maps.raster import budget_bytes

        size = os.fstat(fh.fileno()).st_size
        if size > budget_bytes("memory"):  # parsing holds at least the text: no CSV this big fits the budget
            raise BudgetError(f"the gallery CSV is {size / 2**20:,.0f} MiB, over the "
                              f"{budget_bytes('memory') / 2**20:,.0f} MiB memory budget", str(p),
                              "give a smaller gallery (GeoCLIP's 100K points are 2 MB), or raise "
                              "GEOCLIP_MEMORY_BUDGET_MB")
        try:
            for chunk in pd.read_csv(fh, chunksize=65536, dtype=str, keep_default_na=False):
                if lat is None:
                    cols = {str(c).strip().lower(): c for c in chunk.columns}
                    lat = next((cols[c] for c in ("lat", "latitude", "y") if c in cols), None)
                    lon = next((cols[c] for c in ("lon", "lng", "long", "longitude", "x") if c in cols), None)
                    if lat is None or lon is None:
                        raise InputError(f"gallery CSV has no lat/lon columns (found {list(chunk.columns)[:6]})",
                                         str(p), "name the columns LAT and LON")
                nums = chunk[[lat, lon]].apply(pd.to_numeric, errors="coerce")
                bad = nums.isna().to_numpy()
                if bad.any():
                    r, c = np.argwhere(bad)[0]
                    value = chunk[[lat, lon]].iat[r, c]
                    raise InputError(f"gallery CSV data row {n + r + 1}, column {(lat, lon)[c]}: {value!r} is not "
                                     f"a number", str(p), _CSV_HINT)
                n += len(nums)
                check_gallery_size(n, "the gallery CSV", str(p))
                parts.append(nums.to_numpy(np.float64))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            raise InputError(f"cannot read gallery CSV ({exc})", str(p), _CSV_HINT) from None
    if lat is None:
        raise InputError("gallery CSV is empty", str(p), _CSV_HINT)
    coords = np.concatenate(parts) if parts else np.zeros((0, 2))
    return check_coordinates(coords, "gallery CSV points", str(p))


def check_coordinates(coords, what: str = "gallery points", path: Optional[str] = None,
                      allow_empty: bool = False) -> np.ndarray:
    """The one coordinate validator: `coords` as an (N, 2) float32 array of lat, lon in degrees, or an InputError
    that names `what` was given (e.g. "points", "gallery CSV points") and, for a file, its `path`.

    Refused: anything that is not numbers in (lat, lon) pairs (a (3, 4) array is not six points), non-finite
    values, latitudes outside ±90, longitudes outside ±180 (checked before float32 rounding), and no points at
    all unless `allow_empty`."""
    hint = "give (lat, lon) pairs in degrees, latitude first"
    try:
        arr = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be (lat, lon) pairs of numbers", path, hint) from None
    if arr.ndim == 1 and arr.size in (0, 2):
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{what} must be (lat, lon) pairs; got an array of shape {arr.shape}", path, hint)
    if arr.shape[0] == 0 and not allow_empty:
        raise InputError(f"{what}: no points", path, "give at least one (lat, lon)")
    bad = ~np.isfinite(arr).all(axis=1)
    with np.errstate(invalid="ignore"):
        bad |= (np.abs(arr[:, 0]) > 90) | (np.abs(arr[:, 1]) > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{int(bad.sum())} of the {what} are not finite or lie outside lat ±90 / lon ±180, the "
                         f"first at row {i}: {arr[i].tolist()}", path, "fix or drop those rows; " + hint)
    return arr.astype(np.float32)


def fibonacci_grid(n: int) -> np.ndarray:
    """n near-uniform points on the sphere (Fibonacci lattice): an unbiased alternative to Flickr's gallery."""
    if n < 1:
        raise InputError("a Fibonacci gallery needs at least one point")
    check_gallery_size(n, "a Fibonacci gallery")
    i = np.arange(n, dtype=np.float64) + 0.5
    lat = np.degrees(np.arcsin(1.0 - 2.0 * i / n))
    golden = math.pi * (3.0 - math.sqrt(5.0))
    lon = np.degrees((i * golden) % (2 * math.pi)) - 180.0
    return np.stack([lat, lon], axis=1).astype(np.float32)


class Gallery:
    """Coordinates and (once `attach`ed) their unit-norm embeddings, on the retrieval device."""

    def __init__(self, coords: np.ndarray, name: str = "custom"):
        self.coords = check_coordinates(coords, f"{name} gallery points")
        check_gallery_size(len(self.coords), f"the {name} gallery")
        self.name = name
        self.embeddings: Optional[torch.Tensor] = None
        self.cache_file: Optional[Path] = None

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def coords_hash(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.coords).tobytes()).hexdigest()[:16]

    def cache_path(self, cache_dir: Path, weights_digest: str, dtype: str) -> Path:
        return Path(cache_dir) / f"gallery-{weights_digest}-{self.coords_hash}-{len(self)}-{dtype}.emb"

    def attach(
        self,
        encoder,
        weights_digest: str,
        cache_dir: Optional[Path] = None,
        dtype: str = "float32",
        device: Optional[torch.device] = None,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Gallery:
        """Load verified cached embeddings, or encode and cache them. A cache that fails its checks is moved aside
        and rebuilt; one that cannot be written leaves the embeddings in memory (`cache_file` is then None)."""
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        path = self.cache_path(cache_dir, weights_digest, dtype)
        legacy = path.with_suffix(".npy")  # the format before checksums: never read again, so not kept either
        if os.path.lexists(legacy):
            with contextlib.suppress(OSError):
                legacy.unlink()
                log.info("removed %s, a gallery cache without a checksum (it is rebuilt in the new format)", legacy)
        arr = _load_cache(path, len(self), dtype)
        self.cache_file = path
        if arr is None:
            arr = self._encode(encoder, dtype, progress)
            if _save_cache(path, arr):
                mapped = _load_cache(path, len(self), dtype)  # the file just written, memory-mapped
                arr = arr if mapped is None else mapped
            else:
                self.cache_file = None
        tensor = torch.from_numpy(np.asarray(arr))
        dev = device or torch.device("cpu")
        # CPU: keep the memory map (pages shared with the OS cache); CUDA: one copy on the card.
        self.embeddings = tensor.to(dev) if dev.type != "cpu" else tensor
        return self

    def _encode(self, encoder, dtype: str, progress) -> np.ndarray:
        out = np.empty((len(self), EMBED_DIM), dtype=dtype)
        done = 0
        for chunk in encoder.iter_encode(self.coords, batch=4096, normalise=True, autocast=True):
            out[done:done + len(chunk)] = chunk.numpy().astype(dtype)
            done += len(chunk)
            if progress:
                progress(done, len(self))
        if not np.isfinite(out).all():
            raise WeightsError("the location encoder gives non-finite embeddings for this gallery",
                               hint="the GeoCLIP weights are damaged: reinstall them (geoclip==1.3.0)")
        return out

    @torch.inference_mode()
    def logits(self, queries: torch.Tensor, scale: float) -> torch.Tensor:
        """scale * cosine(query, gallery) for unit-norm `queries` (Q, 512) -> (Q, N) float32."""
        if self.embeddings is None:
            raise RuntimeError("gallery embeddings are not attached")
        emb = self.embeddings
        q = queries.to(emb.device, emb.dtype)
        sims = q @ emb.T if emb.device.type != "cpu" or emb.dtype == torch.float32 else (q.float() @ emb.float().T)
        return scale * sims.float()

    @torch.inference_mode()
    def topk(self, queries: torch.Tensor, scale: float, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Softmax over the whole gallery, then the k most probable points: (probs, indices), (Q, k) each."""
        check_top_k(k, len(self))
        probs = self.logits(queries, scale).softmax(dim=-1)
        top = torch.topk(probs, k, dim=1)
        return top.values.cpu(), top.indices.cpu()


def check_top_k(k: int, n: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= int(k) <= n:
        raise InputError(f"top-k must be between 1 and the gallery size {n}, got {k!r}", hint="e.g. --top-k 5")
    return int(k)


class _BadCache(Exception):
    """A cache file that is there but fails a check; the message says which."""


def _checksum(arr: np.ndarray, chunk: int = 1 << 22) -> str:
    """sha256 of an array's bytes, fed in 4 MiB slices of the (memory-mapped) array: no copy is made."""
    h = hashlib.sha256()
    flat = memoryview(np.ascontiguousarray(arr)).cast("B")
    for i in range(0, len(flat), chunk):
        h.update(flat[i:i + chunk])
    return h.hexdigest()


def time_checksum(n: int = 100_000) -> str:
    """How long the load-time check of an n-point float32 gallery cache takes on this machine."""
    arr = np.random.default_rng(0).standard_normal((n, EMBED_DIM), dtype=np.float32)
    t = time.perf_counter()
    _checksum(arr)
    return f"sha256 of {arr.nbytes / 1e6:.0f} MB: {time.perf_counter() - t:.3f} s"


def _read_verified(path: Path, n: int, dtype: str) -> np.ndarray:
    """The cache's array, memory-mapped from the very file whose header, size and checksum were checked."""
    try:
        fh = open_regular(path, "gallery cache")
    except GeoClipError as exc:
        raise _BadCache(exc.message) from None
    with fh:
        head = fh.read(HEADER_BYTES)
        size = os.fstat(fh.fileno()).st_size
        if not head.startswith(CACHE_MAGIC):
            raise _BadCache("not a gallery cache (no header)")
        try:
            meta = json.loads(head[len(CACHE_MAGIC):].rstrip(b" \n\x00").decode("utf-8"))
            want_sum = str(meta["sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _BadCache(f"unreadable header ({type(exc).__name__})") from None
        if meta.get("shape") != [n, EMBED_DIM] or meta.get("dtype") != dtype:
            raise _BadCache(f"header says {meta.get('shape')} {meta.get('dtype')}, want {[n, EMBED_DIM]} {dtype}")
        want = HEADER_BYTES + n * EMBED_DIM * np.dtype(dtype).itemsize
        if size != want:
            raise _BadCache(f"{size:,} bytes, want {want:,} (truncated or extended)")
        # Copy-on-write map of the open file: a writable view for torch, nothing is ever written back.
        arr = np.memmap(fh, dtype=dtype, mode="c", offset=HEADER_BYTES, shape=(n, EMBED_DIM))
    if _checksum(arr) != want_sum:
        raise _BadCache("sha256 of the data does not match its header (changed after it was written)")
    return arr


def _move_aside(path: Path, reason: str) -> None:
    """Report a damaged cache file and rename it out of the way (kept for inspection), so that it is rebuilt."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        os.replace(path, aside)
        where = f"moved aside to {aside.name}"
    except OSError as exc:
        where = f"cannot be moved aside ({exc.strerror or exc})"
    log.warning("gallery cache %s is damaged: %s; %s, rebuilding it", path, reason, where)


def _load_cache(path: Path, n: int, dtype: str) -> Optional[np.ndarray]:
    """Verified embeddings from `path`, or None when there is no cache or it was damaged (then moved aside)."""
    if not os.path.lexists(path):
        return None
    try:
        return _read_verified(path, n, dtype)
    except _BadCache as exc:
        _move_aside(path, str(exc))
        return None


def _save_cache(path: Path, arr: np.ndarray) -> bool:
    """Write header and data to a temporary file beside the target, fsync, then rename (shared/atomic.py): a
    crash never leaves a half-written cache under the real name. False, with a warning, when the cache folder
    cannot be written (full or read-only disk, a file in its place); the temporary file is removed then."""
    arr = np.ascontiguousarray(arr)
    meta = json.dumps({"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": _checksum(arr)}).encode()
    header = (CACHE_MAGIC + meta + b"\n").ljust(HEADER_BYTES, b" ")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # shared/atomic.py: our own temporary name, fsync, rename; killed writers' temporaries swept first.
        with atomic.atomic_path(path, "gallery") as tmp, open(tmp, "wb") as f:
            f.write(header)
            flat = memoryview(arr).cast("B")
            for i in range(0, len(flat), 1 << 24):
                f.write(flat[i:i + (1 << 24)])
        return True
    except OSError as exc:
        log.warning("cannot write the gallery cache in %s (%s): the embeddings stay in memory for this run and "
                    "will be encoded again next time; free some space or choose a writable cache folder "
                    "(--cache-dir or %s)", path.parent, exc.strerror or exc, CACHE_ENV)
        return False


def load_gallery(spec: Optional[str | Sequence] = None, default_csv: Optional[Path] = None) -> Gallery:
    """'default' (GeoCLIP's 100K Flickr points), 'fibonacci:N', a CSV path, or an (N, 2) array of lat, lon."""
    if spec is None or (isinstance(spec, str) and spec in ("", "default")):
        if default_csv is None:
            raise InputError("no default gallery CSV is known", hint="pass --gallery CSV")
        return Gallery(read_coordinates_csv(default_csv), "default")
    if isinstance(spec, str) and (spec == "fibonacci" or spec.startswith("fibonacci:")):
        _, _, n = spec.partition(":")
        try:
            count = int(n.strip() or 100_000)
        except ValueError:
            raise InputError(f"bad gallery spec {spec!r}: the point count is not a whole number",
                             hint="use fibonacci:100000") from None
        return Gallery(fibonacci_grid(count), f"fibonacci-{count}")
    if isinstance(spec, (str, os.PathLike)):
        return Gallery(read_coordinates_csv(spec), Path(spec).stem)
    return Gallery(spec, "custom")
