#!/usr/bin/env python3
"""Map rasters at the speed of the map canvas (issue 16): measured side by side in one run, real weights.

0. The field pyramid: the 0.5° world field (then 0.25° if asked) built from a fresh cache, timed from the engine's
   start, as the worker starts it.
1. Storage: int16 and int8 fields against the encoder on the two test regions (a 20° x 12° region at 0.1°,
   24,000 cells, and a 1° x 1° city at 0.005°, 40,000 cells): score error in nats at GeoCLIP's real logit scale
   (max, 99th percentile), similarity error, L1 of likelihood maps against dense; dense and coarse-to-fine times.
2. Views sized by the one rule (field.view_grid): world and continent "places like here" and likelihood rasters
   (GeoTIFF included) read from the coarse field, against the encoder's time for the same cells (extrapolated
   from its throughput, measured interleaved with them); repeats interleaved, medians.
3. A city-scale view from the encoder: 1° x 1° at 0.005° (the goal's grid) and at the rule's resolution.
4. The 0.1° world figures, when a 0.1° world field is in the default cache (--build-world builds it, ~15-20 min).
5. The 0.1° world field's build rate: a band of it built into a fresh cache (encoder + int16 + write), per precision,
   extrapolated to the 6.48M cells of the world.
--precisions (default before,fp32; 'before' = fp32 with the weights' denormals kept) runs sections 0, 3 and 5 once
per precision side by side (interleaved repeats, each
in its own cache, so that no field one built serves another; ratios are against the first listed); sections 1, 2 and
4 use fp32. The CPU's flags come first: every figure belongs to that CPU.
Queries are photo-like: a place's location feature mixed with an unrelated direction (weight w); lower w
spreads the mass, which is the hard case. No CLIP is needed: the query is a 512-d vector either way.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoclip_qgis.core.maps.encoder_rasters import pca_raster, similarity_raster  # noqa: E402
from geoclip_qgis.core.maps.field_choice import build_pyramid, view_grid  # noqa: E402
from geoclip_qgis.core.maps.likelihood import LikelihoodMapper, density_from_scores, likelihood_map, write_likelihood  # noqa: E402
from geoclip_qgis.core.maps.location_field import build_field  # noqa: E402
from geoclip_qgis.core.maps.raster import Grid  # noqa: E402
from geoclip_qgis.core.model.engine import GeoClipEngine  # noqa: E402


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


class Replay:
    """Hands build_field the unit features already encoded for its grid, in its row-major order: the fields then
    hold exactly what the encoder gives, and the region is encoded once for the encoder, int16 and int8."""

    def __init__(self, feats: torch.Tensor):
        self.feats, self.at = feats, 0

    def encode(self, latlon, **_):
        out = self.feats[self.at:self.at + len(latlon)]
        self.at += len(latlon)
        return out


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def load() -> str:
    try:
        return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


DTYPES = ("int16", "int8")
REGIONS = {"region 20x12 deg at 0.1": ((0, 38, 20, 50), 0.1), "city 1x1 deg at 0.005": ((2.0, 48.5, 3.0, 49.5), 0.005)}
QUERIES = [(0.9, (46, 8)), (0.8, (41, 14)), (0.55, (46, 8))]
VIEWS = {"world view 1920x960 px": (None, 1920, 960), "continent view 1920x1150 px": ((-25, 30, 45, 72), 1920, 1150)}
CITY = ((2.0, 48.5, 3.0, 49.5), 0.005, 800)  # extent, the goal's resolution, the view's size in pixels


def storage(engine, mapper, cache: Path) -> float:
    """Section 1; returns the encoder's throughput (cells/s) measured on the regions."""
    print("\n1) int16 vs int8 fields against the encoder, at the real logit scale s = "
          f"{engine.scale:.2f} (score = s * cos)")
    errs = {d: {"score": [], "sim": [], "l1": []} for d in DTYPES}
    rates = []
    for name, (extent, res) in REGIONS.items():
        grid = Grid.over(extent, res)
        took, exact = timed(engine.location_encoder.encode, grid.centres(), normalise=True)
        rates.append(grid.width * grid.height / took)
        fields = {d: build_field(Replay(exact), engine.weights.digest, grid, cache / d, dtype=d) for d in DTYPES}
        lat0, lon0 = (extent[1] + extent[3]) / 2, (extent[0] + extent[2]) / 2
        photo = [photo_like(engine, lat, lon, w) for w, (lat, lon) in QUERIES]
        here = [torch.from_numpy(engine.encode_locations([[lat0 + dy, lon0 + dx]], normalise=True)[0])
                for dy, dx in ((0, 0), (0.3 * (extent[3] - extent[1]), 0.2 * (extent[2] - extent[0])))]
        e64 = exact.double()
        print(f"   {name} ({grid.width}x{grid.height} = {grid.width * grid.height:,} cells): encoded in {took:.1f} s")
        for q in photo:
            ref = (e64 @ q.double()).numpy().reshape(grid.shape) * engine.scale
            for d, f in fields.items():
                got = f.dot(q.numpy(), grid) * engine.scale
                errs[d]["score"].append(np.abs(got - ref).ravel())
                errs[d]["l1"].append(mass_errors(got, ref, grid)[0])
        for q in here:
            ref = (e64 @ q.double()).numpy().reshape(grid.shape)
            for d, f in fields.items():
                errs[d]["sim"].append(np.abs(f.dot(q.numpy(), grid) - ref).max())
        if grid.width * grid.height <= 30000:
            print(f"   {'query':22s} {'c2f s':>7s} {'c2f L1':>8s} {'int16 s':>8s} {'int8 s':>7s}")
            for (w, (lat, lon)), q in zip(QUERIES, photo):
                tf, (fine, _) = timed(mapper.coarse_to_fine, q, grid, coarse_cells=500)
                ref = (e64 @ q.double()).numpy().reshape(grid.shape) * engine.scale
                t16 = timed(fields["int16"].dot, q.numpy(), grid)[0]
                t8 = timed(fields["int8"].dot, q.numpy(), grid)[0]
                print(f"   w={w} at ({lat},{lon}){'':4s} {tf:7.2f} {mass_errors(fine, ref, grid)[0]:8.1e} {t16:8.3f} "
                      f"{t8:7.3f}")
    print(f"   {'':8s} {'score max':>10s} {'score p99':>10s} {'sim max':>9s} {'L1 max':>8s} {'bytes/cell':>10s} "
          f"{'world 0.1°':>10s}")
    for d in DTYPES:
        sc = np.concatenate(errs[d]["score"])
        cell = 4 + 512 * np.dtype(d).itemsize
        print(f"   {d:8s} {sc.max():10.2e} {np.percentile(sc, 99):10.2e} {max(errs[d]['sim']):9.1e} "
              f"{max(errs[d]['l1']):8.1e} {cell:10d} {3600 * 1800 * cell / 1e9:7.2f} GB")
    worst = float(np.concatenate(errs["int8"]["score"]).max())
    verdict = "meets" if worst <= 0.02 else f"MISSES it by {worst / 0.02:.1f}x"
    print(f"   int8 max score error {worst:.3f} nats against the 0.02-nat bound: {verdict}; the default stays "
          f"{'int8' if worst <= 0.02 else 'int16'}")
    return float(np.median(rates))


def _likelihood_tif(engine, q, grid, tmp: Path) -> str:
    lmap = likelihood_map(engine, q, grid)
    write_likelihood(lmap, tmp / "lik.tif", "bench")
    return lmap.stats["method"]


def _similarity_tif(engine, q, grid, tmp: Path) -> str:
    similarity_raster(engine, 48.857, 2.352, grid, tmp / "sim.tif")
    return "field" if engine.field_for(grid)[0] is not None else "encoder"


def views(engine, repeats: int, tmp: Path) -> None:
    """Section 2: world and continent views by the rule, from the coarse field, interleaved repeats."""
    sample = Grid.over((0, 38, 20, 50), 0.1).centres()[:8192]
    times: dict = {}
    grids = {name: view_grid(engine, ext, w, h) for name, (ext, w, h) in VIEWS.items()}
    q = photo_like(engine, 46, 8, 0.55)
    for _ in range(repeats):
        times.setdefault("rate", []).append(len(sample) / timed(engine.location_encoder.encode, sample)[0])
        for name, grid in grids.items():
            for kind, fn in (("likelihood", _likelihood_tif), ("places like here", _similarity_tif)):
                took, method = timed(fn, engine, q, grid, tmp)
                times.setdefault((name, kind), []).append((took, method))
    rate = statistics.median(times["rate"])
    print(f"\n2) views sized by field.view_grid; {repeats} interleaved repeats, medians; encoder throughput "
          f"{rate:,.0f} cells/s (median, measured between the maps)")
    for name, grid in grids.items():
        cells = grid.width * grid.height
        for kind in ("likelihood", "places like here"):
            runs = times[(name, kind)]
            took = statistics.median(t for t, _ in runs)
            enc = cells / rate
            print(f"   {name}: {grid.res:g}° ({grid.width}x{grid.height}) {kind:16s} + GeoTIFF {took:5.2f} s from the "
                  f"{runs[0][1]} (goal <= 1 s: {'met' if took <= 1 else 'MISSED'}); the encoder ~{enc:5.1f} s for "
                  f"these cells -> {enc / took:,.0f}x")


def city(engines: dict, repeats: int, tmp: Path) -> None:
    """Section 3: a 1° x 1° view from the encoder (no field covers it), per precision, repeats interleaved."""
    extent, res, px = CITY
    first = next(iter(engines.values()))
    grids = {f"{res:g}° (the goal's grid)": Grid.over(extent, res),
             f"rule, {px}x{px} px": view_grid(first, extent, px, px)}
    q = photo_like(first, 48.8, 2.4, 0.55)
    times: dict = {}
    for _ in range(repeats):
        for prec, engine in engines.items():
            for name, grid in grids.items():
                times.setdefault((prec, name, "likelihood"), []).append(timed(likelihood_map, engine, q, grid))
                times.setdefault((prec, name, "places like here"), []).append(
                    timed(similarity_raster, engine, 48.857, 2.352, grid, tmp / "city.tif"))
    print(f"\n3) city-scale view 1°x1° from the encoder; {repeats} interleaved repeats, medians")
    for name, grid in grids.items():
        for kind in ("likelihood", "places like here"):
            base = None
            for prec, engine in engines.items():
                runs = times[(prec, name, kind)]
                took = statistics.median(t for t, _ in runs)
                base = base or took
                extra = ""
                if kind == "likelihood":
                    st = runs[0][1].stats
                    extra = f", {st['method']}, {st['evaluated']:,} cells encoded"
                goal = 1 if kind == "places like here" and grid.res == res else 3
                print(f"   {name}: {grid.res:g}° ({grid.width}x{grid.height} = {grid.width * grid.height:,} cells) "
                      f"{kind:16s} [{_label(engine)}] {took:5.2f} s ({base / took:4.2f}x){extra} "
                      f"(goal <= {goal} s: {'met' if took <= goal else 'MISSED'})")


def _with_denormals(engine):
    """The fp32 location encoder as it ran before precision.flush_denormals (bench_precision's 'denormals'
    scheme), marked for _label: the 'before' of --precisions before,fp32."""
    from bench_precision import bench_scheme

    enc = bench_scheme(engine, "denormals")
    enc.denormals_kept = True
    return enc


def _label(engine) -> str:
    """What ran the towers, and the location encoder where its scheme is not fp32."""
    if getattr(engine.location_encoder, "denormals_kept", False):
        return "fp32, denormals kept (before)"
    c = engine.precision
    return c.precision if c.location_scheme == "fp32" else f"{c.precision}, location {c.location_scheme}"


def pyramids(engines: dict, levels, repeats: int, tmp: Path, t_started: dict) -> None:
    """Section 0 per precision: the world pyramid built into a fresh cache each time, precisions interleaved."""
    print(f"\n0) field pyramid {levels} into fresh caches under {tmp}, {repeats} interleaved build(s) per precision")
    took: dict = {}
    for r in range(repeats):
        for prec, engine in engines.items():
            engine.cache_dir = tmp / f"pyramid-{prec}-{r}"
            for st in build_pyramid(engine, levels):
                took.setdefault((prec, st["res"]), []).append((st["seconds"], st))
    base: dict = {}
    for (prec, res), runs in took.items():
        seconds = statistics.median(t for t, _ in runs)
        st = runs[0][1]
        cells = Grid.over(None, res).width * Grid.over(None, res).height
        base.setdefault(res, seconds)
        ready = t_started[prec] + sum(statistics.median(t for t, _ in took[(prec, r2)])
                                      for (p2, r2) in took if p2 == prec and r2 >= res)
        print(f"   [{_label(engines[prec])}] {res:g}° world field: {st['status']} in {seconds:.1f} s "
              f"({base[res] / seconds:4.2f}x; {cells:,} cells, {cells / seconds:,.0f} cells/s, "
              f"{st['bytes'] / 2**20:,.0f} MiB); ready {ready:.1f} s after the engine start "
              f"(goal for 0.5°: <= 15 s)")


def world_band(engines: dict, repeats: int, tmp: Path, rows: int = 20) -> None:
    """Section 5: a band of the 0.1° world field built into fresh caches per precision (interleaved), extrapolated
    to the whole world's 6.48M cells."""
    band = Grid.over((-180.0, 10.0, 180.0, 10.0 + rows * 0.1), 0.1)
    cells = band.width * band.height
    took: dict = {}
    for r in range(repeats):
        for prec, engine in engines.items():
            t0 = time.perf_counter()
            build_field(engine.location_encoder, engine.location_digest, band, tmp / f"band-{prec}-{r}")
            took.setdefault(prec, []).append(time.perf_counter() - t0)
    print(f"\n5) 0.1° world field build rate: a {band.width}x{band.height} band ({cells:,} cells) per precision, "
          f"{repeats} interleaved repeats, medians; extrapolated to 3600x1800 = 6.48M cells")
    base = None
    for prec, runs in took.items():
        seconds = statistics.median(runs)
        base = base or seconds
        world = seconds * 3600 * 1800 / cells
        print(f"   [{_label(engines[prec])}] {seconds:6.2f} s ({base / seconds:4.2f}x) -> {cells / seconds:,.0f} "
              f"cells/s -> world 0.1° ~{world / 60:.1f} min (goal <= 2 min: {'met' if world <= 120 else 'MISSED'})")


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", help="where the pyramid is built (default: a new temporary folder, so that the "
                                        "first build is what is timed)")
    ap.add_argument("--pyramid", default="0.5", help="pyramid resolutions to build, e.g. 0.5,0.25 (default 0.5)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each timed map (medians)")
    ap.add_argument("--city-repeats", type=int, default=None, help="repeats of the encoder-bound city maps")
    ap.add_argument("--build-world", action="store_true", help="build the 0.1° world field if missing (~15-20 min)")
    ap.add_argument("--sections", default="012345", help="which of sections 0-5 to run (default all; 2 needs 0)")
    ap.add_argument("--quick", action="store_true", help="skip the capped global coarse-to-fine runs")
    ap.add_argument("--max-evaluations", type=int, default=600_000,
                    help="cap on encoder calls for the global coarse-to-fine run (~90 s here); the rest is reported")
    ap.add_argument("--cold", action="store_true", help="also time a first map after dropping the OS page cache")
    ap.add_argument("--precisions", default="before,fp32",
                    help="precisions compared side by side in sections 0, 3 and 5; 'before' is fp32 with the weights' "
                         "denormal floats kept, as before issue 22 (default before,fp32)")
    ap.add_argument("--pyramid-repeats", type=int, default=1, help="interleaved pyramid builds per precision")
    args = ap.parse_args()
    from bench_precision import cpu_header

    print(cpu_header(), flush=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cache = Path(args.cache_dir) if args.cache_dir else tmp / "cache"
        engines, started = {}, {}
        for prec in args.precisions.split(","):
            t_start = time.perf_counter()
            engines[prec] = GeoClipEngine(device="cpu", gallery="fibonacci:16", cache_dir=cache,
                                          precision="fp32" if prec == "before" else prec)
            if prec == "before":
                engines[prec]._location = _with_denormals(engines[prec])
            _ = engines[prec].location_encoder
            started[prec] = time.perf_counter() - t_start
            print(f"[{prec}] -> {_label(engines[prec])}: {engines[prec].precision.reason}")
        engine = engines.get("fp32") or next(iter(engines.values()))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {engine.device}, {load()}")
        if "0" in args.sections:
            pyramids(engines, [float(r) for r in args.pyramid.split(",")], args.pyramid_repeats, tmp, started)
            for prec, e in engines.items():  # section 2 reads the first build's fields
                e.cache_dir = tmp / f"pyramid-{prec}-0"
        print(f"   {load()}")
        mapper = LikelihoodMapper(engine.location_encoder, engine.scale)
        rate = storage(engine, mapper, tmp / "regions") if "1" in args.sections else 6000.0
        if "2" in args.sections:
            views(engine, args.repeats, tmp)
        if "3" in args.sections:
            city(engines, args.city_repeats or args.repeats, tmp)
        if "5" in args.sections:
            world_band(engines, args.repeats, tmp)
        print(f"   {load()}")
    if "4" in args.sections:
        world_01(args, rate)
    return 0


def world_01(args, rate: float) -> None:
    """Section 4: the global 0.1° figures from the world field in the default cache, when there is one."""
    engine = GeoClipEngine(device="cpu", gallery="fibonacci:16")
    mapper = LikelihoodMapper(engine.location_encoder, engine.scale)
    world = Grid.over(None, 0.1)
    field, _ = engine.field_for(world)
    if field is None and not args.build_world:
        print(f"\n4) no 0.1° world field in {engine.cache_dir}: the 0.1° world figures are not measured (--build-world "
              "builds it once, ~15-20 min and 6.7 GB)")
        return
    if field is None:
        print(f"building the world 0.1° location field once into {engine.cache_dir} ...", flush=True)
        t0 = time.perf_counter()
        field = engine.build_field(world)
        print(f"   built in {time.perf_counter() - t0:.0f} s, {field.info()['bytes'] / 2**30:.2f} GiB")
    print(f"world field: {field.path} ({field.info()['bytes'] / 2**30:.2f} GiB)")
    dense_s = world.width * world.height / rate
    print(f"\n4) global 0.1° ({world.width}x{world.height} = {world.width * world.height / 1e6:.2f}M cells); dense "
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
                  f"(goal <= 2.5 s); dense ~{dense_s:.0f} s -> {dense_s / ttot:,.0f}x faster; "
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


if __name__ == "__main__":
    sys.exit(main())
