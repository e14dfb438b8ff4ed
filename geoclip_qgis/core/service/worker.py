"""The engine as a long-lived process speaking core.protocol on stdin/stdout.

QGIS starts `python -m geoclip_qgis.core.service.worker` once; the model loads on the first request and stays loaded.
A crash here (torch, CUDA, a bad photo in C code) ends this process only: QGIS reports it and restarts it.
stdout carries protocol lines only: file descriptor 1 is re-pointed to stderr at start-up, so library prints and
C-level output cannot corrupt the framing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import traceback
from typing import Any, Callable, Dict, Optional

from ...shared import protocol
from ...shared.protocol import ENGINE_DEFAULTS, PARENT_ENV, canonical_engine_options  # noqa: F401 - re-exported
from ..cancel import Cancelled, cancel_scope
from ..errors import GeoClipError, InputError
from . import process
from .process import GRACE_SECONDS, ProtocolLogHandler, heartbeat_seconds  # noqa: F401 - re-exported

NOMINAL_VIEW_PX = (1800, 900)  # the view an 'auto' raster is sized for when the request names none
# Background world fields at engine start: "" (default) 0.5° then 0.25°; "0" none; "10,5" those resolutions.
PYRAMID_ENV = "GEOCLIP_PYRAMID"  # "0"/"off": no background fields; "1"/"on" or unset: field.PYRAMID; "0.5,0.25": these
class Worker:
    def __init__(self, send: Callable[[Dict[str, Any]], None]):
        self.send = send
        self.active: set = set()  # ids queued or running: the only ids a cancel is remembered for
        self.cancel_ids: set = set()
        self.running: Optional[Dict[str, Any]] = None
        self.lock = threading.Lock()
        self._engine = None
        self._engine_key: Optional[str] = None
        self._pyramid_stop: Optional[threading.Event] = None
        self.lines_read = 0  # request lines fully handled by the reader (heartbeats report it; see protocol.py)

    # ---- plumbing ---------------------------------------------------------------------------------------------
    def cancelled(self, rid: Any) -> bool:
        with self.lock:
            return rid in self.cancel_ids

    def cancel(self, rid: Any) -> None:
        """Cancel a queued or running request; an id never seen, or already finished, is ignored (not kept)."""
        with self.lock:
            if rid in self.active:
                self.cancel_ids.add(rid)

    def cancel_all(self) -> None:
        with self.lock:
            self.cancel_ids |= self.active

    def enqueue(self, rid: Any, op: Any) -> None:
        """A request arrived: remember its id, and tell QGIS when it has to wait behind a running job."""
        with self.lock:
            self.active.add(rid)
            running = self.running
        if running is not None:
            self.send(protocol.progress(rid, 0, 0, f"waiting for the running job ({running.get('op')}) to finish"))

    def engine(self, opts: Optional[Dict[str, Any]]):
        """One engine at a time, rebuilt only when its options change (the model stays loaded otherwise)."""
        from ..model.engine import GeoClipEngine

        canon = canonical_engine_options(opts)
        key = json.dumps(canon, sort_keys=True)
        if self._engine is None or key != self._engine_key:
            self._engine = None
            self._engine = GeoClipEngine(
                weights=canon["weights"] or None, clip_path=canon["clip_path"] or None, device=canon["device"],
                precision=canon["precision"], gallery=canon["gallery"], cache_dir=canon["cache_dir"] or None,
                batch_size=int(canon["batch_size"]),
            )
            self._engine_key = key
            self._start_pyramid(self._engine)
            # A built world field is read into the OS cache while the model loads: the first map is then fast.
            threading.Thread(target=self._engine.prefetch_fields, name="field-prefetch", daemon=True).start()
        return self._engine

    def busy(self) -> bool:
        """A request is queued or running: background work steps aside (the request wins)."""
        with self.lock:
            return bool(self.active)

    def stop_background(self) -> None:
        if self._pyramid_stop is not None:
            self._pyramid_stop.set()

    def _start_pyramid(self, engine) -> None:
        """Build the coarse world fields in the background once the engine exists, so that world and continent
        maps read a field within a minute instead of waiting for the encoder. It pauses while any request is
        waiting or running, stops when the engine is replaced or the worker stops, keeps finished rows, and is
        skipped (with a message) when the disk budget forbids it."""
        from ..maps.field_choice import PYRAMID, build_pyramid

        self.stop_background()
        spec = os.environ.get(PYRAMID_ENV, "").strip().lower()
        if spec in ("0", "off", "no", "false", "none"):
            return
        try:  # "1"/"on" is the default pyramid, not a 1° field
            levels = tuple(float(v) for v in spec.split(",")) if spec not in ("", "1", "on", "yes", "true") \
                else PYRAMID
        except ValueError:
            logging.getLogger("geoclip_qgis").warning("%s=%r is not a list of resolutions; no background field "
                                                      "build", PYRAMID_ENV, spec)
            return
        stop = self._pyramid_stop = threading.Event()

        def run() -> None:
            log = logging.getLogger("geoclip_qgis")
            with cancel_scope(stop.is_set):
                try:
                    for status in build_pyramid(engine, levels, should_pause=self.busy):
                        log.info("background field %s°: %s", status["res"], status.get("message", status["status"]))
                except Cancelled:
                    pass
                except Exception as exc:  # a background nicety: never a reason to stop serving
                    log.warning("background field build stopped: %s", exc)

        threading.Thread(target=run, name="field-pyramid", daemon=True).start()

    def handle(self, req: Dict[str, Any]) -> None:
        """Run one request: validated against the protocol's schema first (an `input` error naming the parameter),
        skipped when it was cancelled while it waited, and always answered exactly once — after its id is
        forgotten, so that nothing sent later is told to wait for a job that has ended."""
        rid = req.get("id")
        with self.lock:
            self.running = req
            self.active.add(rid)
        reply = protocol.error(rid, "internal", "the request ended without a reply")
        try:
            reply = self._run(rid, req.get("op"), req.get("params"))
        finally:
            with self.lock:  # the reply leaves before a heartbeat can say the id is no longer held
                self.running = None
                self.active.discard(rid)
                self.cancel_ids.discard(rid)
                self.send(reply)

    def heartbeat(self) -> Dict[str, Any]:
        """Lines read and ids held, taken together: what lets the client tell a lost request from a slow one."""
        with self.lock:
            return {"type": "heartbeat", "lines": self.lines_read, "active": sorted(self.active, key=str)}

    def line_done(self) -> None:
        with self.lock:
            self.lines_read += 1

    def _run(self, rid: Any, op: Any, raw_params: Any) -> Dict[str, Any]:
        try:
            try:
                params = protocol.validate(op, raw_params)
            except protocol.SchemaError as exc:
                return protocol.error(rid, "input", str(exc), exc.param,
                                      "this request does not fit the worker's protocol; see shared/protocol.py")
            if self.cancelled(rid):
                return protocol.result(rid, {"cancelled": True, "started": False})
            with cancel_scope(lambda: self.cancelled(rid)):
                out = getattr(self, f"op_{op}")(rid, params)
            if isinstance(params.get("engine"), dict) and self._engine is not None and isinstance(out, dict):
                out = {**out, "ran_on": self._engine.ran_on()}  # what ran it, and why (the dock, Processing say it)
            return protocol.result(rid, out)
        except Cancelled:
            return protocol.result(rid, {"cancelled": True})
        except GeoClipError as exc:
            e = exc.to_dict()
            return protocol.error(rid, e["code"], e["message"], e["path"], e["hint"])
        except MemoryError:
            return protocol.error(rid, "budget", "the engine ran out of memory for this request",
                                  hint="use a coarser resolution, a smaller extent or fewer photos at once")
        except Exception as exc:  # a bug or a library failure: report it, stay alive
            traceback.print_exc(file=sys.stderr)
            return protocol.error(rid, "internal", f"{type(exc).__name__}: {exc}")

    def _progress(self, rid: int, message: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if self.cancelled(rid):
                raise Cancelled()
            self.send(protocol.progress(rid, done, total, message))
        return report

    # ---- operations -------------------------------------------------------------------------------------------
    def op_info(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        import torch
        import transformers

        from ..model.device import cuda_status, select_device, select_precision

        usable, why = cuda_status()
        info = {"python": sys.version.split()[0], "executable": sys.executable, "torch": torch.__version__,
                "transformers": transformers.__version__, "cuda_usable": usable, "cuda": why,
                "device": select_device(params.get("device")).to_dict(), "pid": os.getpid()}
        try:  # the precision auto picks on this machine, with its reason (what Settings and the dock show)
            chosen = select_precision(params.get("precision"), torch.device(info["device"]["device"]))
            info["precision"] = chosen.to_dict()
        except GeoClipError as exc:
            info["precision"] = {"precision": params.get("precision"), "reason": str(exc), "location": None}
        if params.get("engine") is not None:
            info["engine"] = self.engine(params["engine"]).info()
        if params.get("check_models"):
            info.update(self._check_models(params.get("clip_path") or None, params.get("weights") or None))
        return info

    @staticmethod
    def _check_models(clip_path, weights) -> Dict[str, Any]:
        """What the model manager shows: is each model present and valid, and if not, why."""
        from ..model.image_encoder import resolve_clip_path
        from ..model.weights import load_weights

        out: Dict[str, Any] = {}
        try:
            out["clip"] = {"ok": True, "path": resolve_clip_path(clip_path)}
        except GeoClipError as exc:
            out["clip"] = {"ok": False, "message": str(exc)}
        try:
            w = load_weights(weights)
            out["weights"] = {"ok": True, "path": w.source, "gallery": str(w.gallery_csv)}
        except GeoClipError as exc:
            out["weights"] = {"ok": False, "message": str(exc)}
        return out

    def op_geolocate_images(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from ..answers.options import AnswerOptions
        from ..answers.trip import TripCollector, TripOptions, check_trip_size

        paths = params["paths"]
        top_k = params.get("top_k", 5)
        options = AnswerOptions.from_params(params)  # this request's own, checked before the engine loads
        trip = TripOptions.from_params(params)
        if trip.enabled:
            check_trip_size(len(paths))  # before the engine loads
        if options.saliency_dir:  # the overlays' folder against the photos, before any model loads
            from ..io.plan import IOPlan

            plan = IOPlan("worker").read_run_inputs(paths)
            plan.write(options.saliency_dir, "saliency folder", "folder")
            plan.check()
        engine = self.engine(params.get("engine"))
        if engine.image_encoder_loaded:
            self.send(protocol.progress(rid, 0, len(paths), "geolocating"))
        else:  # the gallery first, counted (encoded once per cache), then CLIP, which cannot be counted
            engine.gallery(progress=self._progress(rid, "encoding the gallery"))
            self.send(protocol.progress(rid, 0, len(paths), "loading the model"))
        engine.prepare("image", top_k)  # top-k and the model checked before the first photo
        n_ok = n_bad = 0
        collector = TripCollector(engine, options, trip) if trip.enabled else None
        extra = {} if collector is None else {"features": collector.features}  # without a trip: the call as before
        for i, res in enumerate(engine.iter_predict_images(paths, top_k, options=options, **extra)):
            self.send(protocol.row(rid, res.to_dict()))
            n_ok += res.ok
            n_bad += not res.ok
            if collector is not None:
                collector.add(res)
            self.send(protocol.progress(rid, i + 1, len(paths), res.source))
            if self.cancelled(rid):
                return {"done": n_ok, "failed": n_bad, "cancelled": True}
        out = {"done": n_ok, "failed": n_bad, "cancelled": False}
        if collector is not None:  # the joint answer needs every photo: it comes with the result
            self.send(protocol.progress(rid, len(paths), len(paths), "answering the trip"))
            out["trip"] = collector.solve().to_dict(paths)
        return out

    def op_geolocate_text(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from ..answers.options import AnswerOptions
        from ..model.image_encoder import check_text_query

        queries = [check_text_query(q) for q in params["queries"]]  # before the engine or CLIP loads
        options = AnswerOptions.from_params(params)  # this request's own: nothing is set on the shared engine
        engine = self.engine(params.get("engine"))
        done = 0
        for res in engine.iter_predict_text(queries, params.get("top_k", 5), options=options):
            self.send(protocol.row(rid, res.to_dict()))  # each query's row as soon as its batch is ranked
            done += 1
            self.send(protocol.progress(rid, done, len(queries), res.source[:80]))
        return {"done": done, "failed": 0, "cancelled": False}

    def op_likelihood(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from ..answers.aoi import AreaOfInterest
        from ..answers.regions import DEFAULT_LEVELS, check_levels
        from ..maps.likelihood import LikelihoodJob, run_likelihood

        levels = check_levels(params.get("levels") or DEFAULT_LEVELS)  # before the engine, before any write
        from ..answers.hints import check_hint, check_hint_weight

        aoi = None if params.get("aoi") is None else AreaOfInterest.parse(params["aoi"])
        hint, weight = check_hint(params.get("hint")), check_hint_weight(params.get("hint_weight"))
        self.io_plan(params, photos=params.get("photos") or ())  # before any model loads
        engine = self.engine(params.get("engine"))
        job = LikelihoodJob(self._grid(engine, params, "auto"), params["out"], params.get("photos") or (),
                            params.get("text"), params.get("method", "auto"), aoi, levels, params.get("regions_out"),
                            params.get("preview"), bool(params.get("cog")), params.get("top_k", 5), hint, weight)
        return run_likelihood(engine, job, lambda d, n, m: self.send(protocol.progress(rid, d, n, m)),
                              lambda: self.cancelled(rid))

    @staticmethod
    def io_plan(params: Dict[str, Any], photos=()) -> None:
        """The request's I/O plan (core/io/plan.py), as the CLI's: every file it reads and writes, checked against
        each other before any work (a GeoTIFF named as the user's GeoPackage, a preview over a photo)."""
        from ..io.plan import IOPlan

        eng = params.get("engine") or {}
        IOPlan("worker").read_run_inputs(photos, None, eng.get("gallery"), params.get("aoi"), eng.get("weights"),
                                         eng.get("clip_path")) \
            .write_raster(params["out"], params.get("preview"), params.get("regions_out")).check()

    @staticmethod
    def _grid(engine, params: Dict[str, Any], default):
        """The request's extent and resolution as a Grid. 'auto' sizes the raster to the view (`view_px`, else a
        nominal screen): about one cell per 3 pixels, read from the finest built field that covers the view,
        the encoder only where no field does (core/maps/field_choice.py `view_grid`, Processing's rule too)."""
        from ..maps.field_choice import view_grid
        from ..maps.raster import Grid

        extent, res = params.get("extent"), params.get("resolution", default)
        if res in (None, ""):
            res = default
        if res == "auto":
            return view_grid(engine, extent, *(params.get("view_px") or NOMINAL_VIEW_PX))
        return Grid.over(extent, float(res))

    def op_features(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from ..maps.encoder_rasters import feature_raster, pca_raster

        self.io_plan(params)
        engine = self.engine(params.get("engine"))
        grid = self._grid(engine, params, 1.0)
        report = self._progress(rid, "rasterising location features")
        if params.get("pca"):
            return pca_raster(engine, grid, params["out"], cog=bool(params.get("cog")), progress=report)
        return feature_raster(engine, grid, params["out"], params.get("bands") or None,
                              normalise=bool(params.get("normalise")), cog=bool(params.get("cog")), progress=report)

    def op_similar(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from ..maps.encoder_rasters import similarity_raster

        self.io_plan(params)
        engine = self.engine(params.get("engine"))
        grid = self._grid(engine, params, 0.5)
        return similarity_raster(engine, float(params["lat"]), float(params["lon"]), grid, params["out"],
                                 cog=bool(params.get("cog")), progress=self._progress(rid, "similarity"))

    def op_field_status(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        """Is there a location field for this lattice (default: the world at 0.1°), and how far is its build?"""
        from ..maps.location_field import BYTES_PER_CELL, LocationField, field_dir
        engine = self.engine(params.get("engine"))
        grid = self._grid(engine, params, 0.1)
        path = field_dir(engine.cache_dir, engine.location_digest, grid)
        out = {"path": str(path), "bytes": grid.width * grid.height * BYTES_PER_CELL, "rows": grid.height,
               "rows_done": 0, "complete": False}
        if (path / "meta.json").is_file():
            try:
                out.update(LocationField(path).info())
            except InputError as exc:  # damaged: the manager says so; building again repairs it
                out["problem"] = str(exc)
        return out

    def op_build_field(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        """Build or resume a location field; cancel stops after the current row block and keeps what is done."""
        engine = self.engine(params.get("engine"))
        grid = self._grid(engine, params, 0.1)
        return engine.build_field(grid, progress=self._progress(rid, "encoding the location field")).info()

    def op_encode_locations(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        engine = self.engine(params.get("engine"))
        emb = engine.encode_locations(params["points"], normalise=bool(params.get("normalise")))
        return {"embeddings": emb.tolist()}

    def op_download_clip(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        """Download CLIP ViT-L/14 into the Hugging Face cache (dest null) or the folder `dest`: free disk checked
        first, sha256/git-sha1 checked, progress in bytes; a cancel keeps the partial file and a rerun resumes it."""
        from ..io.hub_download import download_clip

        return download_clip(params.get("dest") or None, endpoint=params.get("endpoint") or None,
                             proxy=params.get("proxy") or None, revision=params.get("revision") or None,
                             progress=self._progress(rid, "downloading CLIP ViT-L/14 (bytes)"))


# The process around the Worker (the serve loop, the parent watch, heartbeats, log records as messages) lives in
# core/service/process.py, which never imports this module: the Worker is handed in.
def serve(stdin, out, parent_pid: Optional[int] = None, grace: float = GRACE_SECONDS) -> int:
    """The worker process around a Worker (core/service/process.serve)."""
    return process.serve(stdin, out, parent_pid, grace, make_worker=Worker)


def main() -> int:
    return process.main(Worker)


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Skip interpreter teardown: daemon threads (prefetch, reader) still inside C code during finalisation are
    # what aborted the worker with "terminate called without an active exception". Nothing is left unflushed.
    os._exit(code)
