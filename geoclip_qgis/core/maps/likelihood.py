"""Likelihood maps: where on Earth a photo (or several, or a text) was most probably taken, per km².

The model scores a location x by s·cos(q, f(x)) (q: the query's GeoCLIP feature, f: the location encoder,
s = exp(logit_scale)). Taken as a density over the sphere's surface, a cell's probability mass is
exp(score) · area / Z, so the raster holds mass / area (per km²) and sums (times area) to 1 over the extent.

Multi-photo fusion: photos of one place are independent observations, so their likelihoods multiply and their
scores add: score(x) = Σ_i s·cos(q_i, f(x)) = s·(Σ_i q_i)·f̂(x). The fused query is the sum of the unit
features; the best estimate is the fused map's maximum.

Coarse-to-fine: a dense global 0.1° grid is 6.5M encoder calls. Instead, score block centres on a coarse
lattice, keep the blocks that hold all but `tol` of the mass (plus their neighbours, plus any block within
`margin` nats of the best), split those into factor × factor children, and repeat down to single cells.
Blocks left behind keep their centre's score; by construction they hold less than `tol` of the mass.

Location fields (core.field): when the lattice has been encoded once, a map is one pass over the stored unit
features, whatever the query's spread; coarse-to-fine is for the lattices that have not.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ...shared import photo_list
from .. import cancel as cancelling
from ..errors import InputError
from .field_choice import dot_covered, partial_cover
from .location_field import CorruptField
from .raster import Grid, check_budget, row_tiles

BYTES_PER_CELL = 26  # float64 scores + float64 upsampling buffer + float32 density + masks
# auto: dense up to this many cells, coarse-to-fine above with a first level of about cells / 25 blocks, so that
# a city view (10,000-40,000 cells) encodes a few thousand cells, not all of them (scripts/bench_rasters.py).
DENSE_CELLS = 2500
log = logging.getLogger("geoclip_qgis")


@dataclass
class LikelihoodMap:
    grid: Grid
    density: np.ndarray  # (H, W) float32, probability per km²
    best: Tuple[float, float]  # lat, lon of the densest cell
    stats: Dict = field(default_factory=dict)

    def mass(self) -> np.ndarray:
        return self.density.astype(np.float64) * self.grid.row_areas_km2()[:, None]


class LikelihoodMapper:
    """Scores grid cells for a query vector with the location encoder, densely or coarse-to-fine."""

    def __init__(self, encoder, scale: float, batch: int = 8192, autocast: bool = False,
                 on_cells: Optional[Callable[[int], None]] = None):
        self.encoder = encoder
        self.scale = float(scale)
        self.batch = batch
        self.autocast = autocast
        self.evaluated = 0
        self.on_cells = on_cells  # told the cells encoded so far, after each encoder batch (the dock's counts)

    def scores(self, query: torch.Tensor, latlon: np.ndarray) -> np.ndarray:
        """s·(query · f̂(x)) for (N, 2) points, float64."""
        q = query.detach().to(torch.float32).reshape(-1).cpu()
        out = np.empty(len(latlon), dtype=np.float64)
        done = 0
        for emb in self.encoder.iter_encode(latlon, batch=self.batch, normalise=True, autocast=self.autocast):
            out[done:done + len(emb)] = (emb @ q).double().numpy() * self.scale
            done += len(emb)
            if self.on_cells is not None:
                self.on_cells(self.evaluated + done)
        self.evaluated += len(latlon)
        return out

    def dense(self, query: torch.Tensor, grid: Grid, tile_cells: int = 65536) -> np.ndarray:
        check_budget(grid, BYTES_PER_CELL, "a likelihood raster")
        out = np.empty(grid.shape, dtype=np.float64)
        for r0, r1 in row_tiles(grid, tile_cells):
            out[r0:r1] = self.scores(query, grid.centres(r0, r1)).reshape(r1 - r0, grid.width)
        return out

    def coarse_to_fine(self, query: torch.Tensor, grid: Grid, factor: int = 5, coarse_cells: int = 12000,
                       tol: float = 1e-4, margin: float = 0.0, max_evaluations: Optional[int] = None,
                       ) -> Tuple[np.ndarray, Dict]:
        """Scores on the full grid, computed exactly where the mass is; see the module docstring.

        `max_evaluations` bounds the work (an interactive preview): when the next level would pass it, the blocks
        still selected keep their current score and stats['complete'] is False."""
        check_budget(grid, BYTES_PER_CELL, "a likelihood raster")
        H, W = grid.shape
        size = 1
        while math.ceil(H / size) * math.ceil(W / size) > coarse_cells:
            size *= factor
        out = np.full((H, W), np.nan, dtype=np.float64)
        rr, cc = np.meshgrid(np.arange(0, H, size), np.arange(0, W, size), indexing="ij")
        r0, c0 = rr.ravel(), cc.ravel()
        sin_edges = np.sin(np.radians(np.clip(grid.north - np.arange(H + 1) * grid.res, -90, 90)))
        dlon = math.radians(grid.res)
        levels = []
        start = self.evaluated
        complete = True
        t_level = time.perf_counter()
        while True:
            r1, c1 = np.minimum(r0 + size, H), np.minimum(c0 + size, W)
            lat = grid.north - (r0 + r1) / 2.0 * grid.res
            lon = grid.west + (c0 + c1) / 2.0 * grid.res
            lon = (lon + 180.0) % 360.0 - 180.0
            score = self.scores(query, np.stack([lat, lon], axis=1))
            levels.append({"block": size, "evaluated": int(len(score)), "seconds": time.perf_counter() - t_level})
            t_level = time.perf_counter()
            if size == 1:
                out[r0, c0] = score
                break
            logm = score + np.log((sin_edges[r0] - sin_edges[r1]) * dlon * (c1 - c0))
            keep = _select(logm, score, tol, margin)
            nh, nw = math.ceil(H / size), math.ceil(W / size)
            keep = _dilate(keep, r0 // size, c0 // size, nh, nw)
            next_cost = int(keep.sum()) * factor * factor
            if max_evaluations is not None and self.evaluated - start + next_cost > max_evaluations:
                complete = False
                levels.append({"block": size // factor, "needed": next_cost, "skipped": True})
                keep[:] = False
            lattice = np.full((nh, nw), np.nan)
            drop = ~keep
            lattice[r0[drop] // size, c0[drop] // size] = score[drop]
            up = np.repeat(np.repeat(lattice, size, axis=0), size, axis=1)[:H, :W]
            fill = ~np.isnan(up)
            out[fill] = up[fill]
            del up, fill, lattice
            child = size // factor
            offs = np.arange(factor) * child
            rows, cols = np.broadcast_arrays(r0[keep][:, None, None] + offs[None, :, None],
                                             c0[keep][:, None, None] + offs[None, None, :])
            r0, c0 = rows.ravel(), cols.ravel()
            inside = (r0 < H) & (c0 < W)
            r0, c0 = r0[inside], c0[inside]
            size = child
            if len(r0) == 0:
                break
        stats = {"method": "coarse-to-fine", "evaluated": int(self.evaluated - start), "cells": H * W,
                 "fraction_evaluated": (self.evaluated - start) / float(H * W), "levels": levels,
                 "factor": factor, "tol": tol, "margin": margin, "complete": complete}
        return out, stats


def _select(logm: np.ndarray, score: np.ndarray, tol: float, margin: float) -> np.ndarray:
    """Blocks holding all but `tol` of this level's mass, and any within `margin` nats of the best score."""
    order = np.argsort(-logm)
    w = np.exp(logm[order] - logm[order[0]])
    cum = np.cumsum(w)
    n_keep = int(np.searchsorted(cum, (1.0 - tol) * cum[-1]) + 1)
    keep = np.zeros(len(logm), dtype=bool)
    keep[order[:n_keep]] = True
    keep |= score >= score.max() - margin
    return keep


def _dilate(keep: np.ndarray, bi: np.ndarray, bj: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Also keep the 8 neighbours of kept blocks (a peak near a block edge shows in its neighbour's centre)."""
    grid = np.zeros((nh + 2, nw + 2), dtype=bool)
    grid[bi[keep] + 1, bj[keep] + 1] = True
    grown = grid.copy()
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            grown[1:-1, 1:-1] |= grid[1 + di:nh + 1 + di, 1 + dj:nw + 1 + dj]
    return grown[bi + 1, bj + 1]


def density_from_scores(scores: np.ndarray, grid: Grid) -> Tuple[np.ndarray, Tuple[float, float]]:
    """Probability per km² (float32) whose mass sums to 1 over the grid, and the densest cell's centre."""
    areas = grid.row_areas_km2()[:, None]
    logm = scores + np.log(areas)
    top = np.nanmax(logm)
    mass = np.exp(logm - top)
    mass /= mass.sum()
    density = (mass / areas).astype(np.float32)
    r, c = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
    return density, (float(grid.row_lats(r)), float(grid.col_lons(c)))


def fused_query(features: torch.Tensor) -> torch.Tensor:
    """Sum of unit features: the query whose score is the sum of each photo's score (product of likelihoods)."""
    if features.ndim != 2 or features.shape[0] == 0:
        raise InputError("no photo or text to map", hint="give at least one readable photo or a text query")
    return torch.nn.functional.normalize(features.float(), dim=1).sum(dim=0)


def query_for(engine, photos=None, text: Optional[str] = None,
              notes: Optional[List[str]] = None) -> Tuple[torch.Tensor, str]:
    """The query to map — photos of one place (fused) or a text, never both — and a label naming it.

    Photos are fused once per file, whatever the spelling (a.jpg, ./a.jpg, a link to it: shared/photo_list's one
    identity rule): a photo counted twice would square its likelihood. Each duplicate dropped is said, in `notes`
    when given, else as a warning."""
    photos, text = list(photos or []), (text or "").strip()
    if photos:
        said: List[str] = []
        paths = [p for p in photos if isinstance(p, (str, os.PathLike))]
        if len(paths) == len(photos):
            photos = photo_list.unique([os.fspath(p) for p in photos], said)
        for note in said:
            if notes is not None:
                notes.append(note)
            else:
                log.warning("%s", note)
    if bool(photos) == bool(text):
        raise InputError("give either photos or a text query for the likelihood raster",
                         hint="e.g. --text 'snowy alpine village', or --photos a.jpg b.jpg")
    feats = engine.embed_text([text]) if text else engine.embed_images(photos)
    return fused_query(feats), text or ", ".join(os.path.basename(p) for p in photos)


def field_plan(engine, grid: Grid, method: str = "auto"):
    """The location field a map of `grid` will read (or None) and the grid it will have. Cheap: callers run it
    before loading CLIP, so a bad method or a missing field is reported before any slow work."""
    if method not in ("auto", "field", "dense", "coarse-to-fine"):
        raise InputError(f"unknown method {method!r}", hint="use auto, field, dense or coarse-to-fine")
    if method not in ("auto", "field"):
        return None, grid
    field, snapped = engine.field_for(grid)
    if field is None and method == "field":
        raise InputError(f"no location field at {grid.res:g}° covers this extent",
                         hint=f"build one first: geoclip-qgis field --resolution {grid.res:g} (or use the "
                              "plugin's model manager); the world at 0.1° takes 6.7 GB of disk")
    return field, snapped


class CellMeter:
    """Map cells scored so far, passed on as progress(done, cells) at most every 0.25 s (and once at the end), so
    a long map says how far it is without flooding the worker's line."""

    def __init__(self, progress: Optional[Callable[[int, int], None]], cells: int):
        self.progress, self.cells, self.last = progress, cells, 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if self.progress is not None and now - self.last >= 0.25:
            self.last = now
            self.progress(min(int(done), self.cells), self.cells)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.cells, self.cells)


def likelihood_map(engine, query: torch.Tensor, grid: Grid, method: str = "auto",
                   progress: Optional[Callable[[int, int], None]] = None, **kwargs) -> LikelihoodMap:
    """Score `grid` for `query` (one unit feature or a fused sum) and turn it into a density per km².
    `progress(done, cells)`: the map cells scored so far (read from a field, or encoded; coarse-to-fine counts
    the cells it encodes, then the whole grid once the rest is filled in).

    auto: read a built location field when one covers the grid at its resolution (the extent is then snapped
    outward onto the field's lattice; the map's grid says so); else, when fields at that resolution hold part of
    the grid, read that part and encode only the rest; else dense for small grids, else coarse-to-fine."""
    t0 = time.perf_counter()
    field, grid = field_plan(engine, grid, method)
    meter = CellMeter(progress, grid.width * grid.height)
    problem = None
    if field is not None:
        check_budget(grid, BYTES_PER_CELL, "a likelihood raster")
        try:
            scores = field.dot(query.detach().float().cpu().numpy(), grid,
                               progress=lambda rows, _h, w=grid.width: meter(rows * w)) * float(engine.scale)
            stats = {"method": "field", "evaluated": 0, "cells": grid.width * grid.height, "field": str(field.path)}
        except CorruptField as exc:  # reported and moved aside; the encoder gives the same map
            field, problem = None, str(exc)
            method = "auto" if method == "field" else method
    parts = partial_cover(engine, grid) if field is None and method == "auto" else []
    if parts:
        check_budget(grid, BYTES_PER_CELL, "a likelihood raster")
        dots, encoded = dot_covered(parts, engine.location_encoder, query.detach().float().cpu().numpy(), grid)
        scores = dots * float(engine.scale)
        stats = {"method": "field+encoder", "evaluated": encoded, "cells": grid.width * grid.height,
                 "field": sorted({str(p[0].path) for p in parts})}
    elif field is None:
        mapper = LikelihoodMapper(engine.location_encoder, engine.scale, autocast=engine.choice.fp16, on_cells=meter)
        cells = grid.width * grid.height
        if method == "dense" or (method == "auto" and cells <= DENSE_CELLS):
            scores = mapper.dense(query, grid)
            stats = {"method": "dense", "evaluated": cells, "cells": cells}
        else:
            if method == "auto":
                kwargs.setdefault("coarse_cells", min(12000, cells // 25))
            scores, stats = mapper.coarse_to_fine(query, grid, **kwargs)
        if problem:
            stats["field_problem"] = problem
    meter.finish()
    density, best = density_from_scores(scores, grid)
    stats["seconds"] = time.perf_counter() - t0
    return LikelihoodMap(grid, density, best, stats)


def write_likelihood(lmap: LikelihoodMap, path, description: str, cog: bool = False,
                     tags: Optional[Dict] = None):
    from .raster import write_geotiff

    meta = {"units": "probability per km2", "crs": "EPSG:4326", "best_lat": lmap.best[0], "best_lon": lmap.best[1],
            "fusion_rule": "sum of scores (product of per-photo likelihoods)", "inputs": description,
            **(tags or {})}
    return write_geotiff(path, lmap.grid, lmap.density, nodata=-1.0, cog=cog,
                         descriptions=[f"probability density per km2: {description}"[:200]], tags=meta)



@dataclass
class LikelihoodJob:
    """One likelihood request, from any front door (the CLI's `likelihood`, the worker's op, so Processing and the
    dock): what to map, where, and what to write. The caller has checked its I/O plan and the levels."""

    grid: Grid
    out: str
    photos: Sequence = ()
    text: Optional[str] = None
    method: str = "auto"
    aoi: object = None  # an AreaOfInterest, or None
    levels: Sequence[float] = (0.5, 0.9)
    regions_out: Optional[str] = None
    preview: Optional[str] = None
    cog: bool = False
    top_k: int = 5
    hint: Optional[str] = None  # words fused with the query (core/answers/hints.py), weighted
    hint_weight: float = 1.0


def run_likelihood(engine, job: LikelihoodJob, progress: Optional[Callable[[int, int, str], None]] = None,
                   cancelled: Callable[[], bool] = lambda: False) -> Dict[str, object]:
    """THE likelihood pipeline: field plan (a missing field said before CLIP loads), the fused query, the map, the
    area of interest, the GeoTIFF, the confidence regions, the preview and the raw top-k, in that order."""
    from ..answers.aoi import restrict_map
    from ..answers.regions import confidence_regions, region_features
    from ..io.results import write_regions
    from ..model.gallery import check_top_k
    from .raster import render_preview

    say = progress or (lambda done, total, message: None)
    field_plan(engine, job.grid, job.method)
    check_top_k(job.top_k, len(engine.gallery()))
    say(0, 3, "encoding the query")
    notes: List[str] = []
    query, label = query_for(engine, job.photos, job.text, notes)
    if job.hint and job.hint_weight:
        from ..answers.hints import with_hint

        query = with_hint(engine, query[None], job.hint, job.hint_weight)[0]  # p ∝ p_query · p_hint^w
        label = f"{label} + hint '{job.hint}' (weight {job.hint_weight:g})"
    for note in notes:  # a photo named twice is fused once, and the caller is told
        say(0, 3, note)
    if cancelled():
        raise cancelling.Cancelled()
    say(1, 3, "scoring the grid")
    lmap = likelihood_map(engine, query, job.grid, method=job.method,
                          progress=lambda done, cells: say(done, cells, "scoring the grid"))
    outside = None
    if job.aoi is not None:
        lmap, outside = restrict_map(lmap, job.aoi)
    say(2, 3, "writing the GeoTIFF")
    path = write_likelihood(lmap, job.out, label, cog=job.cog)
    say(2, 3, "tracing the confidence regions")
    regions = confidence_regions(lmap, job.levels, polygons=bool(job.regions_out))
    if job.regions_out:
        write_regions(job.regions_out, region_features(regions, label))
    if job.preview:
        render_preview(path, job.preview)
    top = engine.rank_query(query[None], job.top_k, job.aoi)[0]  # with an area: its points only
    return {"path": str(path), "best_lat": lmap.best[0], "best_lon": lmap.best[1], "stats": lmap.stats,
            "notes": notes, "top": [p.__dict__ for p in top], "max_density": float(lmap.density.max()),
            "aoi_outside": outside,
            "regions": [{"level": r.level, "area_km2": r.area_km2, "parts": r.parts, "summary": r.summary()}
                        for r in regions], "regions_path": job.regions_out}
