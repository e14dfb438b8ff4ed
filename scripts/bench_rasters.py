#!/usr/bin/env python3
"""Likelihood rasters: location field and coarse-to-fine against dense, side by side in one run, real weights.

1. A 20° x 12° region at 0.1° (24,000 cells), where dense is affordable: time of each method, the L1 distance
   between its probability map and dense's, and the relative error of the total (unnormalised) mass.
2. The global 0.1° raster (6.48M cells) read from the world location field (built first if missing: a one-time
   ~15-20 min here), written as a GeoTIFF, and coarse-to-fine capped; the dense time is extrapolated from the
   dense throughput measured in step 1 (running it would take about 15 minutes on a 2-core CPU).
Queries are photo-like: a place's location feature mixed with an unrelated direction (weight w); lower w
spreads the mass, which is the hard case. No CLIP is needed: the query is a 512-d vector either way.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoclip_qgis.core.engine import GeoClipEngine  # noqa: E402
from geoclip_qgis.core.features import pca_raster, similarity_raster  # noqa: E402
from geoclip_qgis.core.likelihood import (  # noqa: E402
    LikelihoodMapper,
    density_from_scores,
    likelihood_map,
    write_likelihood,
)
from geoclip_qgis.core.raster import Grid  # noqa: E402


def photo_like(engine, lat, lon, weight, seed=0):
    g = torch.Generator().manual_seed(seed)
    place = torch.from_numpy(engine.encode_locations([[lat, lon]], normalise=True)[0])
    noise = torch.nn.functional.normalize(torch.randn(512, generator=g), dim=0)
    return torch.nn.functional.normalize(weight * place + (1 - weight) * noise, dim=0)


def drop_page_cache() -> bool:
    """Make the next read come from disk (root on Linux only); False when not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def mass_errors(maps, reference, grid):
    areas = grid.row_areas_km2()[:, None]
    dd, _ = density_from_scores(reference, grid)
    df, _ = density_from_scores(maps, grid)
    l1 = float((np.abs(dd.astype(np.float64) - df) * areas).sum())
    top = reference.max()
    z = np.exp(maps + np.log(areas) - top).sum() / np.exp(reference + np.log(areas) - top).sum()
    return l1, abs(z - 1)


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the capped global coarse-to-fine runs")
    ap.add_argument("--max-evaluations", type=int, default=600_000,
                    help="cap on encoder calls for the global coarse-to-fine run (~90 s here); the rest is reported")
    ap.add_argument("--cold", action="store_true", help="also time a first map after dropping the OS page cache")
    args = ap.parse_args()
    engine = GeoClipEngine(device="cpu", gallery="fibonacci:16")
    mapper = LikelihoodMapper(engine.location_encoder, engine.scale)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {engine.device}")
    world = Grid.over(None, 0.1)
    field, _ = engine.field_for(world)
    if field is None:
        print(f"building the world 0.1° location field once into {engine.cache_dir} ...", flush=True)
        t0 = time.perf_counter()
        field = engine.build_field(world)
        print(f"   built in {time.perf_counter() - t0:.0f} s, {field.info()['bytes'] / 2**30:.2f} GiB")
    print(f"world field: {field.path} ({field.info()['bytes'] / 2**30:.2f} GiB)")

    region = Grid.over((0, 38, 20, 50), 0.1)
    throughput = []
    print(f"\n1) region {region.width}x{region.height} at 0.1°: dense vs coarse-to-fine (tol 1e-4) vs field")
    print(f"{'query':22s} {'dense s':>8s} {'c2f s':>7s} {'field s':>7s} {'c2f L1':>8s} {'|Z/Z-1|':>8s} "
          f"{'field L1':>8s} {'|Z/Z-1|':>8s}")
    for w, (lat, lon) in [(0.9, (46, 8)), (0.8, (41, 14)), (0.55, (46, 8))]:
        q = photo_like(engine, lat, lon, w)
        t0 = time.perf_counter()
        dense = mapper.dense(q, region)
        td = time.perf_counter() - t0
        throughput.append(region.width * region.height / td)
        t0 = time.perf_counter()
        fine, st = mapper.coarse_to_fine(q, region, coarse_cells=500)
        tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        stored = field.dot(q.numpy(), region) * engine.scale
        tfield = time.perf_counter() - t0
        c2f_l1, c2f_z = mass_errors(fine, dense, region)
        fl_l1, fl_z = mass_errors(stored, dense, region)
        print(f"w={w} at ({lat},{lon}){'':4s} {td:8.2f} {tf:7.2f} {tfield:7.3f} {c2f_l1:8.1e} {c2f_z:8.1e} "
              f"{fl_l1:8.1e} {fl_z:8.1e}")
    rate = float(np.median(throughput))
    dense_s = world.width * world.height / rate
    print(f"\n2) global 0.1° ({world.width}x{world.height} = {world.width * world.height / 1e6:.2f}M cells); dense "
          f"throughput {rate:,.0f} cells/s -> dense would take ~{dense_s:.0f} s")
    queries = [(0.9, (46, 8)), (0.55, (46, 8))]
    if args.cold:
        # The worker reads a built field into the OS cache on a thread while the model loads (prefetch_fields);
        # here the two costs are timed apart: the disk read, and a first map straight after dropping the cache.
        if drop_page_cache():
            t0 = time.perf_counter()
            likelihood_map(engine, photo_like(engine, 46, 8, 0.9, seed=1), world)
            print(f"cold: first map straight after dropping the page cache: {time.perf_counter() - t0:.1f} s")
            drop_page_cache()
            t0 = time.perf_counter()
            warmed = engine.prefetch_fields()
            took = time.perf_counter() - t0
            print(f"cold: the worker's start-up prefetch read {len(warmed)} field(s) in {took:.1f} s")
        else:
            print("could not drop the page cache (needs root on Linux): cold reads not measured")
    with tempfile.TemporaryDirectory() as tmp:
        for w, (lat, lon) in queries:
            q = photo_like(engine, lat, lon, w)
            t0 = time.perf_counter()
            lmap = likelihood_map(engine, q, world)
            tmap = time.perf_counter() - t0
            write_likelihood(lmap, Path(tmp) / "world.tif", "bench")
            ttot = time.perf_counter() - t0
            assert lmap.stats["method"] == "field"
            print(f"w={w} at ({lat},{lon}): field map {tmap:5.2f} s, + GeoTIFF {ttot - tmap:4.2f} s = {ttot:5.2f} s "
                  f"(goal <= 10 s); dense ~{dense_s:.0f} s -> {dense_s / ttot:,.0f}x faster; "
                  f"best ({lmap.best[0]:.2f}, {lmap.best[1]:.2f}), mass {lmap.mass().sum():.6f}")
        # The other products on the same lattice read the field too (similarity: one projection; PCA: three).
        for name, make in (("places like Paris", lambda out: similarity_raster(engine, 48.857, 2.352, world, out)),
                           ("location-feature PCA", lambda out: pca_raster(engine, world, out))):
            t0 = time.perf_counter()
            make(Path(tmp) / "product.tif")
            took = time.perf_counter() - t0
            print(f"{name} world 0.1° GeoTIFF from the field: {took:5.2f} s; from the encoder ~{dense_s:.0f} s -> "
                  f"{dense_s / took:,.0f}x faster")
    for w, (lat, lon) in [] if args.quick else queries:
        q = photo_like(engine, lat, lon, w)
        t0 = time.perf_counter()
        _, st = mapper.coarse_to_fine(q, world, max_evaluations=args.max_evaluations)
        tf = time.perf_counter() - t0
        for lv in st["levels"]:
            if lv.get("skipped"):
                print(f"   level {lv['block'] * 0.1:g}°: {lv['needed']:,} cells needed -> "
                      f"~{lv['needed'] / rate:.0f} s more (over --max-evaluations: not computed)")
            else:
                print(f"   level {lv['block'] * 0.1:g}°: {lv['evaluated']:,} cells in {lv['seconds']:.1f} s")
        state = "exact where it matters" if st["complete"] else "INCOMPLETE (capped)"
        print(f"w={w} at ({lat},{lon}): coarse-to-fine without the field {tf:6.1f} s, {st['evaluated']:,} cells "
              f"evaluated ({st['fraction_evaluated']:.2%}), {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
