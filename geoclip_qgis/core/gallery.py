"""The GPS gallery that retrieval ranks: coordinates plus their normalised location embeddings, cached.

Encoding 100K points costs ~20 s on a CPU; the reference package pays it on every call. Here it is paid once:
the embeddings are written to the cache folder under a key made of the location-encoder weights' digest, the
coordinates' hash and the dtype (any change makes a new key), and memory-mapped afterwards.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import InputError

CACHE_ENV = "GEOCLIP_QGIS_CACHE"


def default_cache_dir() -> Path:
    """Outside the plugin folder, so that plugin upgrades keep the cache."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "geoclip_qgis"


def read_coordinates_csv(path: os.PathLike | str) -> np.ndarray:
    """(N, 2) float32 lat, lon from a CSV with LAT/LON (or lat/lon, latitude/longitude) columns."""
    import pandas as pd

    p = Path(path)
    try:
        df = pd.read_csv(p)
    except Exception as exc:
        raise InputError(f"cannot read gallery CSV ({exc})", str(p), "give a CSV with LAT and LON columns") from exc
    cols = {c.strip().lower(): c for c in df.columns}
    lat = next((cols[c] for c in ("lat", "latitude", "y") if c in cols), None)
    lon = next((cols[c] for c in ("lon", "lng", "long", "longitude", "x") if c in cols), None)
    if lat is None or lon is None:
        raise InputError(
            f"gallery CSV has no lat/lon columns (found {list(df.columns)[:6]})",
            str(p),
            "name the columns LAT and LON",
        )
    coords = df[[lat, lon]].to_numpy(dtype=np.float32)
    return check_coordinates(coords, str(p))


def check_coordinates(coords: np.ndarray, where: str = "gallery") -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
    if coords.shape[0] == 0:
        raise InputError("gallery has no points", where, "give at least one (lat, lon)")
    bad = ~np.isfinite(coords).all(axis=1) | (np.abs(coords[:, 0]) > 90) | (np.abs(coords[:, 1]) > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{int(bad.sum())} gallery point(s) outside lat ±90 / lon ±180, first at row {i}: {coords[i].tolist()}",
            where,
            "fix or drop those rows",
        )
    return coords


def fibonacci_grid(n: int) -> np.ndarray:
    """n near-uniform points on the sphere (Fibonacci lattice): an unbiased alternative to Flickr's gallery."""
    if n < 1:
        raise InputError("a Fibonacci gallery needs at least one point")
    i = np.arange(n, dtype=np.float64) + 0.5
    lat = np.degrees(np.arcsin(1.0 - 2.0 * i / n))
    golden = math.pi * (3.0 - math.sqrt(5.0))
    lon = np.degrees((i * golden) % (2 * math.pi)) - 180.0
    return np.stack([lat, lon], axis=1).astype(np.float32)


class Gallery:
    """Coordinates and (once `attach`ed) their unit-norm embeddings, on the retrieval device."""

    def __init__(self, coords: np.ndarray, name: str = "custom"):
        self.coords = check_coordinates(coords, name)
        self.name = name
        self.embeddings: Optional[torch.Tensor] = None
        self.cache_file: Optional[Path] = None

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def coords_hash(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.coords).tobytes()).hexdigest()[:16]

    def cache_path(self, cache_dir: Path, weights_digest: str, dtype: str) -> Path:
        return Path(cache_dir) / f"gallery-{weights_digest}-{self.coords_hash}-{len(self)}-{dtype}.npy"

    def attach(
        self,
        encoder,
        weights_digest: str,
        cache_dir: Optional[Path] = None,
        dtype: str = "float32",
        device: Optional[torch.device] = None,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Gallery:
        """Load cached embeddings, or encode and cache them; a cache whose shape is wrong is rebuilt."""
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        path = self.cache_path(cache_dir, weights_digest, dtype)
        arr = _load_cache(path, len(self), dtype)
        if arr is None:
            arr = self._encode(encoder, dtype, progress)
            _save_cache(path, arr)
            arr = _load_cache(path, len(self), dtype)
            assert arr is not None
        self.cache_file = path
        tensor = torch.from_numpy(np.asarray(arr))
        dev = device or torch.device("cpu")
        # CPU: keep the memory map (pages shared with the OS cache); CUDA: one copy on the card.
        self.embeddings = tensor.to(dev) if dev.type != "cpu" else tensor
        return self

    def _encode(self, encoder, dtype: str, progress) -> np.ndarray:
        out = np.empty((len(self), 512), dtype=dtype)
        done = 0
        for chunk in encoder.iter_encode(self.coords, batch=4096, normalise=True, autocast=True):
            out[done:done + len(chunk)] = chunk.numpy().astype(dtype)
            done += len(chunk)
            if progress:
                progress(done, len(self))
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


def _load_cache(path: Path, n: int, dtype: str) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="c")  # copy-on-write: a writable view, pages still shared
    except (OSError, ValueError):
        return None
    if arr.shape != (n, 512) or arr.dtype != np.dtype(dtype) or not np.isfinite(arr[:: max(1, n // 64)]).all():
        return None
    return arr


def _save_cache(path: Path, arr: np.ndarray) -> None:
    """Write next to the target, then rename: a crash never leaves a half-written cache under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def load_gallery(spec: Optional[str | Sequence] = None, default_csv: Optional[Path] = None) -> Gallery:
    """'default' (GeoCLIP's 100K Flickr points), 'fibonacci:N', a CSV path, or an (N, 2) array of lat, lon."""
    if spec is None or (isinstance(spec, str) and spec in ("", "default")):
        if default_csv is None:
            raise InputError("no default gallery CSV is known", hint="pass --gallery CSV")
        return Gallery(read_coordinates_csv(default_csv), "default")
    if isinstance(spec, str) and spec.startswith("fibonacci"):
        _, _, n = spec.partition(":")
        try:
            count = int(n or 100_000)
        except ValueError as exc:
            raise InputError(f"bad gallery spec {spec!r}", hint="use fibonacci:100000") from exc
        return Gallery(fibonacci_grid(count), f"fibonacci-{count}")
    if isinstance(spec, (str, os.PathLike)):
        return Gallery(read_coordinates_csv(spec), Path(spec).stem)
    return Gallery(np.asarray(spec, dtype=np.float32), "custom")
