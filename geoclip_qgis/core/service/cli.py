"""Command line: geolocate photos or text queries into CSV / GeoJSON / GeoPackage, and make rasters.

    geoclip-qgis photos DIR_OR_FILES... -o out.gpkg -o out.csv --top-k 5 [--resume]
    geoclip-qgis text "snowy alpine village" -o text.geojson
    geoclip-qgis field --resolution 0.1        (once: later world 0.1° rasters take about a second)
    geoclip-qgis likelihood --text "snowy alpine village" --resolution 0.1 -o alps.tif
    geoclip-qgis download weights|clip   (the only commands that download models: nothing else goes online)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from typing import List, Optional

from ...shared.defaults import PRECISION_VALUES
from ..errors import GeoClipError, InputError
from ..io.results import DEFAULT_LAYER
from .cli_args import refuse_repeats, strip_seen
from .cli_case import case_report, check_trip, finish_trip, photo_options, plan_trip


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, refused with the option's name before anything runs."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--top-k", type=positive_int, default=5, help="predictions per input (default 5)")
    ap.add_argument("--device", default="auto",
                    help="auto (CUDA fp16, else an Apple GPU, when usable), cpu, cuda, cuda:N, mps")
    _precision_arg(ap)
    ap.add_argument("--clip-path", default=None, help="folder of openai/clip-vit-large-patch14 ($GEOCLIP_CLIP_PATH)")
    ap.add_argument("--weights", default=None,
                    help="GeoCLIP weights folder (default: what `download weights` unpacked into the cache folder)")
    ap.add_argument("--gallery", default="default", help="default | fibonacci:N | CSV with LAT,LON columns")
    ap.add_argument("--cache-dir", default=None, help="where gallery embeddings are cached")
    ap.add_argument("--batch-size", type=positive_int, default=8)
    ap.add_argument("-o", "--out", action="append", default=[], help=".csv, .geojson or .gpkg (repeatable)")
    ap.add_argument("--layer", default=None,
                    help=f"GeoPackage layer for the results (default {DEFAULT_LAYER}, plus _places and _summary); "
                         "other layers are never touched")
    ap.add_argument("--table", default="ranks", choices=["ranks", "places", "summary"],
                    help="what a CSV or GeoJSON output holds: the raw top-k points, the distinct places, or one "
                         "summary row per input (a GeoPackage holds all three)")
    ap.add_argument("--place-radius", type=float, default=25.0,
                    help="gallery points within this many km of a place's best point are one place (default 25)")
    ap.add_argument("--aoi", "--within", dest="aoi", default=None,
                    help="area of interest: a polygon file (.gpkg/.geojson/.shp), WKT, GeoJSON, W,S,E,N, or countries "
                         "and regions by name or ISO code separated by ';' (e.g. 'Chile; Argentina', 'DE-BY'); "
                         "probabilities renormalise inside it and the share outside is reported")
    ap.add_argument("--near", default=None, metavar="LAT,LON",
                    help="with --radius-km: only places within that distance of this point (with --aoi: either)")
    ap.add_argument("--radius-km", type=float, default=None, help="the radius of --near, in km")
    ap.add_argument("--region-res", type=float, default=None,
                    help="also map each input's likelihood at this resolution (degrees) for the summary's 90 %% "
                         "confidence-region area (fast with a built location field)")


def _precision_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--precision", default="auto", choices=PRECISION_VALUES,
                    help="auto (bf16 where the CPU has AMX or AVX512-BF16, fp16 on CUDA, else fp32), fp32 (exact), "
                         "bf16, int8 (CPU, when asked), fp16 (GPU)")


def _engine_options(args) -> dict:
    """GeoClipEngine's arguments from the command line: one definition for this process and for Ray actors."""
    return dict(
        weights=args.weights, clip_path=args.clip_path, device=args.device,
        precision=getattr(args, "precision", "auto"), gallery=args.gallery,
        cache_dir=args.cache_dir, batch_size=args.batch_size, place_radius_km=getattr(args, "place_radius", 25.0),
        aoi=getattr(args, "aoi", None), region_res=getattr(args, "region_res", None),
        exact_decode=getattr(args, "exact_decode", False),
        hint=getattr(args, "hint", None), hint_weight=getattr(args, "hint_weight", 1.0),
    )


def _engine(args):
    from ..model.engine import GeoClipEngine

    return GeoClipEngine(**_engine_options(args))


def run_queries(args, kind: str, inputs: List[str], unit: str) -> int:
    """The one safe order for a batch: check the outputs, load and check the models, read what --resume skips,
    and only then record results (journal, flushed per query) and write the outputs whole at the end."""
    from tqdm import tqdm

    from ..io.journal import ResultWriter
    from ..io.results import source_key, summary_row

    plan = input_plan(args, photos=inputs if kind == "image" else ())
    writer = ResultWriter.plan(args.out, resume=getattr(args, "resume", False), layer=args.layer, table=args.table,
                               plan=plan)
    trip, trip_outs = plan_trip(args, writer, plan)
    check_trip(trip, inputs)
    saliency, report_path = getattr(args, "saliency", None), getattr(args, "report", None)
    if saliency:
        plan.write(saliency, "saliency folder", "folder")
    if report_path:
        plan.write(report_path, "case report", "report")
    plan.check()  # every input against every output, before any model loads or any byte is written
    if kind == "text":
        from ..model.image_encoder import check_text_query

        inputs = [check_text_query(q) for q in inputs]  # length and emptiness, before any model loads
    engine = _engine(args)
    engine.prepare(kind, args.top_k)  # gallery, top-k and the CLIP tower: every slow or likely failure, first
    done = writer.load_previous(run_fingerprint(engine, args, kind))
    if writer.resume:
        before = len(inputs)
        inputs = [q for q in inputs if source_key(q, kind) not in done]
        print(f"resume: {before - len(inputs)} {unit}(s) already done, {len(inputs)} to go", file=sys.stderr)
    writer.open()
    n_ok = n_bad = 0
    try:  # from the journal's opening on, whatever stops the run closes it (the rows done are kept in it)
        collector = None
        if trip.enabled:
            from ..answers.trip import TripCollector

            collector = TripCollector(engine, engine.answers, trip)
        report = case_report(engine, args) if report_path else None
        extra = {} if collector is None else {"features": collector.features}  # without a case: the call as before
        options = photo_options(engine, saliency, report)
        if options is not None:
            extra["options"] = options
        results = engine.iter_predict_images(inputs, args.top_k, **extra) if kind == "image" else \
            engine.iter_predict_text(inputs, args.top_k)
        for res in tqdm(results, total=len(inputs), unit=unit, file=sys.stderr, disable=len(inputs) < 2):
            writer.add(res)
            if collector is not None:
                collector.add(res)
            if report is not None:
                report.add(res, summary_row(res))
            if res.ok:
                n_ok += 1
                if not writer.outputs:
                    _print_result(res)
            else:
                n_bad += 1
                print(f"skipped: {res.error['message']}", file=sys.stderr)
        trip_answer = finish_trip(collector, writer, trip_outs, args.layer) if collector is not None else None
    except BaseException:
        writer.close()
        if writer.outputs:
            print(f"stopped: the {n_ok + n_bad} {unit}(s) done are kept in {writer.journal}; the outputs are "
                  "unchanged. Run the same command with --resume to finish.", file=sys.stderr)
        raise
    writer.finish()
    if report is not None:
        if trip_answer is not None:  # the trip's columns on the report's rows too
            from ..answers.trip import apply_to_summary

            apply_to_summary([row for _, row in report.items], trip_answer)
        report.write(report_path)
        print(f"case report: {report_path}", file=sys.stderr)
    names = ", ".join(str(o.path) for o in writer.outputs + trip_outs)
    print(f"geolocated {n_ok} {unit}(s), {n_bad} failed" + (f"; wrote {names}" if names else ""), file=sys.stderr)
    return 0 if n_bad == 0 else 3


def input_plan(args, photos=()):
    """The run's I/O plan with every input it reads (photos, list file, gallery, area of interest, weights and CLIP
    folders); the command adds its outputs and checks it (core/io/plan.py)."""
    from ..io.plan import IOPlan

    return IOPlan("cli").read_run_inputs(photos, getattr(args, "list", None), getattr(args, "gallery", None),
                                         getattr(args, "aoi", None), getattr(args, "weights", None),
                                         getattr(args, "clip_path", None))


def run_fingerprint(engine, args, kind: str) -> dict:
    """What --resume insists on: the engine's (kind, top-k, gallery, weights) and the options that shape the
    answers (area of interest, place radius), so rows of different meaning never share one table."""
    import hashlib

    fp = dict(engine.run_fingerprint(kind, args.top_k))
    aoi = getattr(args, "aoi", None)
    if isinstance(aoi, str) and os.path.isfile(os.path.expanduser(aoi)):
        with open(os.path.expanduser(aoi), "rb") as fh:
            aoi = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    fp.update(aoi=aoi or None, place_radius_km=float(getattr(args, "place_radius", 25.0)))
    if getattr(args, "hint", None):  # a hinted run's rows never mix with the photo-alone ones
        fp.update(hint=args.hint, hint_weight=float(args.hint_weight))
    return fp


def _print_result(res) -> None:
    """No output file named: the distinct places, named, one line each (the raw top-k is in the files)."""
    print(res.source)
    for pl in res.places:
        print(f"  {pl['rank']}. {pl['probability']:6.1%}  {pl['lat']:9.4f} {pl['lon']:10.4f}  "
              f"{pl.get('label') or ''}  ({pl['n_points']} gallery points)")
    if res.remaining is not None:
        print(f"     {res.remaining:6.1%}  elsewhere")


def cmd_photos(args) -> int:
    from ..io.photos import collect_photos

    if args.ray is not None:
        if args.trip:
            raise InputError("--trip is not offered with --ray", hint="run the trip's photos without --ray")
        if args.saliency or args.report:
            raise InputError("--saliency and --report are not offered with --ray",
                             hint="run the photos of a case without --ray")
        return cmd_photos_ray(args)
    return run_queries(args, "image", collect_photos(args.inputs, args.recursive, args.list), "photo")


def cmd_photos_ray(args) -> int:
    """`photos --ray`: the batch on a Ray cluster into a Parquet dataset (core.ray_batch); Ray is imported here."""
    from .ray_batch import cli_inputs, run_batch

    if len(args.out) != 1:
        raise InputError("with --ray, give one output folder (a Parquet dataset): -o results/", hint="e.g. -o trip/")
    photos = cli_inputs(args.inputs, args.recursive, args.list, args.path_column)
    if "://" not in args.out[0]:
        plan = input_plan(args, [p for p in photos if "://" not in p])
        plan.write(args.out[0], "output dataset folder", "folder")
        plan.check()
    report = run_batch(photos, args.out[0], _engine_options(args), args.top_k,
                       address=None if args.ray == "local" else args.ray, actors=args.actors, resume=args.resume)
    print(json.dumps(report), file=sys.stderr)
    return 0 if report["failed"] == 0 else 3


def cmd_text(args) -> int:
    return run_queries(args, "text", list(args.queries), "query")


def cmd_download(args) -> int:
    """The models, fetched on the user's explicit command: GeoCLIP's weights (the geoclip 1.3.0 wheel's data files,
    40 MB from PyPI) or CLIP ViT-L/14 (1.7 GB from Hugging Face)."""
    if args.what == "weights":
        from ...shared import weights_release

        try:
            folder = weights_release.download(args.dest)
        except weights_release.WeightsReleaseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        from ..io.hub_download import download_clip

        folder = download_clip(args.dest)["path"]
    print(folder)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="geoclip-qgis", description="GeoCLIP geolocation from the command line")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("photos", help="geolocate photos (files and/or folders)")
    p.add_argument("inputs", nargs="*", help="photo files or folders")
    p.add_argument("--list", help="text file with one photo path per line")
    p.add_argument("--recursive", action="store_true", help="look into sub-folders")
    p.add_argument("--resume", action="store_true", help="skip photos already in the outputs, append the rest")
    p.add_argument("--exact-decode", action="store_true",
                   help="decode photos at full size (default: JPEGs at the smallest DCT scale CLIP needs)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install 'geoclip-qgis[ray]'): a local cluster, or ADDRESS (auto, "
                        "ray://host:10001); -o names a folder for the Parquet dataset; inputs may be CSV/Parquet "
                        "manifests")
    p.add_argument("--actors", type=positive_int, default=None, help="with --ray: engines (default: one per GPU)")
    p.add_argument("--path-column", default="path", help="with --ray: the manifests' photo path column")
    p.add_argument("--hint", default=None, help="words fused with each photo, e.g. 'signs in Cyrillic' "
                                                "(p ∝ p_photo · p_text^weight)")
    p.add_argument("--hint-weight", type=float, default=1.0,
                   help="the hint's weight (default 1: as much as the photo; 0: the photo alone)")
    p.add_argument("--trip", action="store_true",
                   help="the photos are one trip: answer them jointly in EXIF time order (file order without "
                        "times), consecutive photos no farther apart than --trip-speed allows; adds the trip_* "
                        "summary columns and a track line layer (geoclip_trip)")
    p.add_argument("--trip-speed", type=float, default=None, metavar="KMH",
                   help="with --trip: the fastest travel between two photos (default 900 km/h, an airliner)")
    p.add_argument("--trip-slack", type=float, default=None, metavar="KM",
                   help="with --trip: km allowed beyond speed × time (default 50)")
    p.add_argument("--saliency", default=None, metavar="DIR",
                   help="also write, per photo, what in it drove the top place (a heat map on the photo, PNG) into "
                        "DIR; one backward pass per photo (about 2× its forward pass)")
    p.add_argument("--report", default=None, metavar="FILE.html",
                   help="also write a case report: one self-contained HTML file, a summary page then a page per "
                        "photo (photo, its 'why' overlay with --saliency, maps, places, EXIF, SHA-256, model)")
    _common(p)
    p.set_defaults(func=cmd_photos)
    t = sub.add_parser("text", help="geolocate text descriptions")
    t.add_argument("queries", nargs="+", help='e.g. "snowy alpine village"')
    t.add_argument("--resume", action="store_true", help="skip queries already in the outputs, append the rest")
    _common(t)
    t.set_defaults(func=cmd_text)
    lk = sub.add_parser("likelihood", help="likelihood raster (probability per km²) for photos or a text")
    lk.add_argument("--photos", nargs="*", action="extend", default=[],
                    help="one photo, or several of one place (fused once each; repeatable)")
    lk.add_argument("--text", help="a text description instead of photos")
    lk.add_argument("--method", default="auto", choices=["auto", "field", "dense", "coarse-to-fine"],
                    help="auto: a built location field when one covers the extent, else dense or coarse-to-fine")
    lk.add_argument("--aoi", default=None, help="area of interest (polygon file, WKT, GeoJSON or W,S,E,N): the map "
                                                "is renormalised inside it")
    lk.add_argument("--hint", default=None, help="words fused with the photos or text (p ∝ p · p_hint^weight)")
    lk.add_argument("--hint-weight", type=float, default=1.0, help="the hint's weight (default 1; 0: no hint)")
    lk.add_argument("--regions", default=None,
                    help="also write the highest-density confidence regions as polygons (.gpkg or .geojson)")
    lk.add_argument("--levels", default="0.5,0.9", help="confidence-region levels (default 0.5,0.9)")
    _raster_args(lk)
    lk.set_defaults(func=cmd_likelihood)
    ft = sub.add_parser("features", help="rasterise the location encoder's features (bands or PCA RGB)")
    ft.add_argument("--pca", action="store_true", help="3-band RGB of the first principal components")
    ft.add_argument("--bands", default="", help="comma-separated dimensions 0-511 (default: all 512)")
    _raster_args(ft)
    ft.set_defaults(func=cmd_features)
    sm = sub.add_parser("similar", help="'places like here': similarity to one point's location feature")
    sm.add_argument("--lat", type=float, required=True)
    sm.add_argument("--lon", type=float, required=True)
    _raster_args(sm)
    sm.set_defaults(func=cmd_similar)
    fd = sub.add_parser("field", help="encode a lattice once (default: the world at 0.1°) so rasters on it are fast")
    fd.add_argument("--extent", default="-180,-90,180,90", help="W,S,E,N in degrees")
    fd.add_argument("--resolution", type=float, default=0.1, help="cell size in degrees (default 0.1)")
    fd.add_argument("--device", default="auto")
    _precision_arg(fd)
    fd.add_argument("--weights", default=None)
    fd.add_argument("--cache-dir", default=None)
    fd.set_defaults(func=cmd_field, clip_path=None, gallery="default", batch_size=8)
    dl = sub.add_parser("download", help="download a model: weights (GeoCLIP, 40 MB from PyPI, into the cache "
                                         "folder) or clip (CLIP ViT-L/14, 1.7 GB from Hugging Face, into its cache)")
    dl.add_argument("what", choices=["weights", "clip"])
    dl.add_argument("--dest", default=None, help="a folder instead of the default place")
    dl.set_defaults(func=cmd_download)
    return refuse_repeats(ap)  # a single-valued option given twice is refused, never 'last one wins'


def _raster_args(p: argparse.ArgumentParser) -> None:
    p.set_defaults(aoi=None)
    p.add_argument("--extent", default="-180,-90,180,90", help="W,S,E,N in degrees (W > E crosses the antimeridian)")
    p.add_argument("--resolution", type=float, default=0.5, help="cell size in degrees (default 0.5)")
    p.add_argument("--cog", action="store_true", help="write a Cloud Optimised GeoTIFF")
    p.add_argument("--preview", help="also render a PNG preview here")
    p.add_argument("--device", default="auto")
    _precision_arg(p)
    p.add_argument("--clip-path", default=None)
    p.add_argument("--weights", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("-o", "--out", required=True, help="output GeoTIFF")
    p.set_defaults(gallery="default", batch_size=8, top_k=5)


def _grid(args):
    from ..maps.raster import Grid

    try:
        extent = [float(v) for v in args.extent.split(",")]
    except ValueError as exc:
        raise InputError(f"bad extent {args.extent!r}", hint="give W,S,E,N, e.g. -10,35,30,60") from exc
    if len(extent) != 4:
        raise InputError(f"extent needs 4 numbers, got {len(extent)}", hint="W,S,E,N")
    return Grid.over(extent, args.resolution)


def _raster_outputs(args, photos=(), regions: bool = False) -> None:
    """The run's I/O plan for a raster command: the GeoTIFF, the preview and the regions against every input and
    each other, before any model loads. Each is written under a temporary name and renamed when complete."""
    input_plan(args, photos).write_raster(args.out, args.preview, args.regions if regions else None).check()


def _finish_raster(args, info: dict) -> int:
    if args.preview:
        from ..maps.raster import render_preview

        render_preview(args.out, args.preview)
    print(json.dumps(info, default=str))
    return 0


def cmd_likelihood(args) -> int:
    from ..maps.likelihood import LikelihoodJob, run_likelihood

    levels = _levels(args.levels)
    _raster_outputs(args, args.photos, regions=True)
    grid = _grid(args)
    engine = _engine(args)
    job = LikelihoodJob(grid, args.out, args.photos, args.text, args.method, engine.aoi, levels, args.regions,
                        None, args.cog, hint=args.hint, hint_weight=args.hint_weight)  # preview: _finish_raster
    res = run_likelihood(engine, job)
    for note in res["notes"]:
        logging.warning("%s", note)
    info = {"out": args.out, "best_lat": res["best_lat"], "best_lon": res["best_lon"], **res["stats"]}
    if args.regions:
        info["regions"] = {f"{r['level']:g}": {k: r[k] for k in ("area_km2", "parts", "summary")}
                           for r in res["regions"]}
    return _finish_raster(args, info)


def _levels(text: str) -> List[float]:
    from ..answers.regions import check_levels

    try:
        return check_levels([float(v) for v in text.split(",") if v.strip()])
    except ValueError:
        raise InputError(f"bad --levels {text!r}", hint="give probabilities between 0 and 1, e.g. 0.5,0.9") from None


def cmd_features(args) -> int:
    from ..maps.encoder_rasters import feature_raster, pca_raster

    _raster_outputs(args)
    grid = _grid(args)
    engine = _engine(args)
    if args.pca:
        info = pca_raster(engine, grid, args.out, cog=args.cog)
    else:
        try:
            bands = [int(b) for b in args.bands.split(",") if b.strip()]
        except ValueError:
            raise InputError(f"bad --bands {args.bands!r}", hint="give comma-separated numbers 0-511, e.g. 0,1,2") \
                from None
        info = feature_raster(engine, grid, args.out, bands, cog=args.cog)
    return _finish_raster(args, info)


def cmd_similar(args) -> int:
    from ..maps.encoder_rasters import similarity_raster

    _raster_outputs(args)
    info = similarity_raster(_engine(args), args.lat, args.lon, _grid(args), args.out, cog=args.cog)
    return _finish_raster(args, info)


def cmd_field(args) -> int:
    """Build (or finish) a location field with a progress bar; Ctrl-C keeps the rows done for the next run."""
    from tqdm import tqdm

    grid = _grid(args)
    engine = _engine(args)
    with tqdm(total=grid.height, unit="row", desc=f"location field {grid.res:g}°", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            field = engine.build_field(grid, progress=progress)
        except KeyboardInterrupt:
            print("interrupted: the rows done are kept; run the same command again to resume", file=sys.stderr)
            return 130
    print(json.dumps(field.info()))
    return 0


def _glue_extent(argv: List[str]) -> List[str]:
    """`--extent -10,35,30,60` (or --aoi) would read as an unknown option to argparse: pass it as `--extent=...`."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--extent", "--aoi", "--within", "--near") and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = strip_seen(build_parser().parse_args(_glue_extent(list(sys.argv[1:] if argv is None else argv))))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    with contextlib.suppress(AttributeError, ValueError):  # a name that is not UTF-8 prints as its bytes, as ls does
        sys.stdout.reconfigure(errors="surrogateescape")
        sys.stderr.reconfigure(errors="backslashreplace")  # Python's own default for stderr, whatever wraps it
    try:
        if hasattr(args, "near"):  # --aoi and a circle, one area (core/answers/aoi.area_spec)
            from ..answers.aoi import area_spec

            args.aoi = area_spec(args.aoi, args.near, args.radius_km)
        return args.func(args)
    except GeoClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rows written so far are kept; re-run with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
