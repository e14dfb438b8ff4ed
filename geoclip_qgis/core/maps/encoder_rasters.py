"""Rasters of the location encoder itself: its 512 features, a PCA colour view of them, and similarity.

These need no CLIP backbone, only GeoCLIP's location encoder. Everything is computed in row tiles of at most
TILE_CELLS cells and written as it goes, so memory stays bounded (~64 MB) whatever the raster's size. Unit
features come from a built location field when one covers the grid (the extent is then snapped onto its
lattice), else from the encoder.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import InputError
from .field_choice import Part, dot_covered, partial_cover
from .location_field import CorruptField, LocationField
from .raster import GeoTiffWriter, Grid, check_budget, row_tiles

TILE_CELLS = 32768


def _bands(bands: Optional[Sequence[int]]) -> list:
    if bands is None or len(bands) == 0:
        return list(range(512))
    out = sorted(set(int(b) for b in bands))
    if out[0] < 0 or out[-1] > 511:
        raise InputError(f"feature bands must be between 0 and 511, got {out[0]}..{out[-1]}")
    return out


def _on_field(engine, grid: Grid, normalise: bool = True) -> Tuple[Optional[LocationField], Grid]:
    """A built location field for unit features on this grid (snapped onto its lattice), or (None, grid)."""
    if not normalise:
        return None, grid
    return engine.field_for(grid)


def _parts(engine, field: Optional[LocationField], grid: Grid) -> Sequence[Part]:
    """Without a field for the whole grid: the parts of it that fields hold (projections read them)."""
    return partial_cover(engine, grid) if field is None else ()


def _write_tiled(engine, grid: Grid, writer: GeoTiffWriter, bands_of: Callable[[torch.Tensor], np.ndarray],
                 progress=None, normalise: bool = True, field: Optional[LocationField] = None,
                 project: Optional[np.ndarray] = None, parts: Sequence[Part] = ()) -> str:
    """Per row tile: the cells' embeddings — or, with a (512, k) `project`ion, embeddings @ project, which a
    location field computes without expanding its features — turned into (bands, cells) by `bands_of` and
    written. With a projection and no `field`, the `parts` of the grid that fields hold are read and only the
    other cells encoded. Any failure (cancel included) removes the partial file."""
    proj = None if project is None else torch.as_tensor(np.asarray(project, dtype=np.float32))

    def from_field(r0: int, r1: int) -> torch.Tensor:
        if proj is not None:
            return torch.from_numpy(field.dot(proj, grid, rows=(r0, r1)).reshape(-1, proj.shape[1]))
        return field.unit_features(grid, r0, r1)

    try:
        for r0, r1 in row_tiles(grid, TILE_CELLS):
            data = None
            if field is not None:
                try:
                    data = from_field(r0, r1)
                except CorruptField:  # reported and moved aside: this tile and the rest come from the encoder
                    field = None
            if data is None and proj is not None and parts:
                dots, _ = dot_covered(parts, engine.location_encoder, proj.numpy(), grid, (r0, r1))
                data = torch.from_numpy(dots.reshape(-1, proj.shape[1]))
            if data is None:
                emb = engine.location_encoder.encode_lattice(grid.row_lats(np.arange(r0, r1)),
                                                             grid.col_lons(np.arange(grid.width)), grid.res,
                                                             normalise=normalise)
                data = emb if proj is None else emb.double() @ proj.double()
            writer.write_rows(r0, np.asarray(bands_of(data)).reshape(-1, r1 - r0, grid.width))
            if progress:
                progress(r1, grid.height)
    except BaseException:
        writer.abort()
        raise
    return str(writer.close())


def feature_raster(engine, grid: Grid, path: os.PathLike, bands: Optional[Sequence[int]] = None,
                   normalise: bool = False, cog: bool = False, progress=None) -> Dict:
    """Write the chosen location-embedding dimensions as float32 bands (all 512 by default)."""
    chosen = _bands(bands)
    field, grid = _on_field(engine, grid, normalise)
    check_budget(grid, 4 * len(chosen), "a feature raster", kind="output")
    idx = torch.tensor(chosen)
    writer = GeoTiffWriter(path, grid, len(chosen), "float32", descriptions=[f"feature {b}" for b in chosen],
                           tags={"source": "GeoCLIP location encoder", "normalised": normalise}, cog=cog)
    out = _write_tiled(engine, grid, writer, lambda emb: emb[:, idx].numpy().T, progress, normalise, field)
    return {"path": out, "bands": len(chosen), **grid.to_dict()}


def fit_pca(engine, grid: Grid, sample_cells: int = 16384) -> Dict[str, np.ndarray]:
    """Standardise + PCA fitted on a coarse sample of the extent; per-channel 2-98% stretch from the sample."""
    # A strided subset of the grid's own cell centres: no second grid, so no second snapping of the extent.
    step = max(1, int(np.ceil(np.sqrt(grid.width * grid.height / sample_cells))))
    lat = grid.row_lats(np.arange(step // 2, grid.height, step))
    lon = grid.col_lons(np.arange(step // 2, grid.width, step))
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    sample = np.stack([la.ravel(), lo.ravel()], axis=1).astype(np.float32)
    x = engine.location_encoder.encode(sample, normalise=True).numpy().astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8
    z = (x - mean) / std
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    comps = vt[:3]
    # Deterministic signs: the largest loading of each component is positive.
    comps *= np.sign(comps[np.arange(3), np.abs(comps).argmax(axis=1)])[:, None]
    proj = z @ comps.T
    lo, hi = np.percentile(proj, 2, axis=0), np.percentile(proj, 98, axis=0)
    return {"mean": mean, "std": std, "components": comps, "lo": lo, "hi": hi}


def pca_raster(engine, grid: Grid, path: os.PathLike, cog: bool = False, progress=None) -> Dict:
    """3-band uint8 RGB: the first three principal components of the (unit) location features."""
    field, grid = _on_field(engine, grid)
    check_budget(grid, 3, "a PCA raster", kind="output")
    pca = fit_pca(engine, grid)
    writer = GeoTiffWriter(path, grid, 3, "uint8", descriptions=["PC1 (red)", "PC2 (green)", "PC3 (blue)"],
                           tags={"source": "GeoCLIP location encoder, PCA of unit features"}, cog=cog)

    # Standardise-then-project is linear: ((x - mean) / std) @ C.T = x @ (C / std).T - (mean / std) @ C.T
    project = (pca["components"] / pca["std"]).T
    offset = (pca["mean"] / pca["std"]) @ pca["components"].T

    def rgb(proj: torch.Tensor) -> np.ndarray:
        z = proj.numpy() - offset
        return np.clip((z - pca["lo"]) / (pca["hi"] - pca["lo"]) * 255.0, 0, 255).round().astype(np.uint8).T

    out = _write_tiled(engine, grid, writer, rgb, progress, field=field, project=project,
                       parts=_parts(engine, field, grid))
    return {"path": out, "explained": pca["components"].shape, **grid.to_dict()}


def similarity_raster(engine, lat: float, lon: float, grid: Grid, path: os.PathLike, cog: bool = False,
                      progress=None) -> Dict:
    """'Places like here': cosine similarity between (lat, lon)'s location feature and every cell's."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(f"point ({lat}, {lon}) is outside lat ±90 / lon ±180", hint="give lat, lon in degrees")
    field, grid = _on_field(engine, grid)
    check_budget(grid, 4, "a similarity raster", kind="output")
    q = engine.location_encoder.encode([[lat, lon]], normalise=True)[0]
    writer = GeoTiffWriter(path, grid, 1, "float32", nodata=-9999.0,
                           descriptions=[f"cosine similarity to ({lat:.5f}, {lon:.5f})"],
                           tags={"query_lat": lat, "query_lon": lon}, cog=cog)
    out = _write_tiled(engine, grid, writer, lambda sim: sim[:, 0].float().numpy(), progress, field=field,
                       project=q.numpy()[:, None], parts=_parts(engine, field, grid))
    return {"path": out, **grid.to_dict()}
