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
import queue
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Optional

from ...shared import protocol
from ...shared.protocol import ENGINE_DEFAULTS, PARENT_ENV, canonical_engine_options  # noqa: F401 - re-exported
from ..cancel import Cancelled, cancel_scope
from ..errors import GeoClipError, InputError

GRACE_SECONDS = 5.0  # after stdin closes or the parent dies: time for the running job to stop by itself
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
        from ..maps.location_field import PYRAMID, build_pyramid

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
                return protocol.result(rid, getattr(self, f"op_{op}")(rid, params))
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
        paths = params["paths"]
        top_k = params.get("top_k", 5)
        engine = self.engine(params.get("engine"))
        if engine.image_encoder_loaded:
            self.send(protocol.progress(rid, 0, len(paths), "geolocating"))
        else:  # the gallery first, counted (encoded once per cache), then CLIP, which cannot be counted
            engine.gallery(progress=self._progress(rid, "encoding the gallery"))
            self.send(protocol.progress(rid, 0, len(paths), "loading the model"))
        engine.prepare("image", top_k)  # top-k and the model checked before the first photo
        self._answers(engine, params)
        n_ok = n_bad = 0
        for i, res in enumerate(engine.iter_predict_images(paths, top_k)):
            self.send(protocol.row(rid, res.to_dict()))
            n_ok += res.ok
            n_bad += not res.ok
            self.send(protocol.progress(rid, i + 1, len(paths), res.source))
            if self.cancelled(rid):
                return {"done": n_ok, "failed": n_bad, "cancelled": True}
        return {"done": n_ok, "failed": n_bad, "cancelled": False}

    def op_geolocate_text(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from ..model.image_encoder import check_text_query

        queries = [check_text_query(q) for q in params["queries"]]  # before the engine or CLIP loads
        engine = self.engine(params.get("engine"))
        self._answers(engine, params)
        done = 0
        for res in engine.iter_predict_text(queries, params.get("top_k", 5)):
            self.send(protocol.row(rid, res.to_dict()))  # each query's row as soon as its batch is ranked
            done += 1
            self.send(protocol.progress(rid, done, len(queries), res.source[:80]))
        return {"done": done, "failed": 0, "cancelled": False}

    @staticmethod
    def _answers(engine, params: Dict[str, Any]) -> None:
        """Per-request answer options on the shared engine (no reload): area of interest, region maps, radius."""
        from ..answers.places import check_radius

        engine.set_aoi(params.get("aoi"))
        engine.region_res = params.get("region_res")
        radius = check_radius(params.get("place_radius_km", 25.0))
        if radius != engine.place_radius_km:
            engine.place_radius_km, engine._places = radius, None

    def op_likelihood(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from ..answers.aoi import AreaOfInterest, restrict_map
        from ..answers.regions import DEFAULT_LEVELS, check_levels, confidence_regions, region_features
        from ..io.results import write_regions
        from ..maps.likelihood import field_plan, likelihood_map, query_for, write_likelihood
        from ..maps.raster import render_preview
        from ..model.gallery import check_top_k

        levels = check_levels(params.get("levels") or DEFAULT_LEVELS)  # before the engine, before any write
        aoi = None if params.get("aoi") is None else AreaOfInterest.parse(params["aoi"])
        self.io_plan(params, photos=params.get("photos") or ())  # before any model loads
        engine = self.engine(params.get("engine"))
        top_k = params.get("top_k", 5)
        grid = self._grid(engine, params, "auto")
        field_plan(engine, grid, params.get("method", "auto"))  # a missing field is reported before CLIP loads
        check_top_k(top_k, len(engine.gallery()))
        self.send(protocol.progress(rid, 0, 3, "encoding the query"))
        notes: list = []
        query, label = query_for(engine, params.get("photos"), params.get("text"), notes)
        for note in notes:  # a photo named twice is fused once, and the caller is told
            self.send(protocol.progress(rid, 0, 3, note))
        if self.cancelled(rid):
            raise Cancelled()
        self.send(protocol.progress(rid, 1, 3, "scoring the grid"))
        lmap = likelihood_map(engine, query, grid, method=params.get("method", "auto"))
        outside = None
        if aoi is not None:
            lmap, outside = restrict_map(lmap, aoi)
        self.send(protocol.progress(rid, 2, 3, "writing the GeoTIFF"))
        path = write_likelihood(lmap, params["out"], label, cog=bool(params.get("cog")))
        regions = confidence_regions(lmap, levels, polygons=bool(params.get("regions_out")))
        if params.get("regions_out"):
            write_regions(params["regions_out"], region_features(regions, label))
        if params.get("preview"):
            render_preview(path, params["preview"])
        top = engine.rank_query(query[None], top_k, aoi)[0]  # with an area: its points only
        return {"path": str(path), "best_lat": lmap.best[0], "best_lon": lmap.best[1], "stats": lmap.stats,
                "notes": notes,
                "top": [p.__dict__ for p in top], "max_density": float(lmap.density.max()), "aoi_outside": outside,
                "regions": [{"level": r.level, "area_km2": r.area_km2, "parts": r.parts, "summary": r.summary()}
                            for r in regions], "regions_path": params.get("regions_out")}

    @staticmethod
    def io_plan(params: Dict[str, Any], photos=()) -> None:
        """The request's I/O plan (core/io/plan.py), as the CLI's: every file it reads and writes, checked against
        each other before any work (a GeoTIFF named as the user's GeoPackage, a preview over a photo)."""
        from ..io.plan import IOPlan

        plan = IOPlan("worker")
        plan.read_many(photos, "photo")
        if isinstance(params.get("aoi"), str):
            plan.read_if_file(params["aoi"], "area of interest")
        eng = params.get("engine") or {}
        plan.read_if_exists(eng.get("weights") or None, "weights folder")
        plan.read_if_exists(eng.get("clip_path") or None, "CLIP folder")
        gallery = eng.get("gallery")
        if gallery and gallery != "default" and not str(gallery).startswith("fibonacci:"):
            plan.read(gallery, "gallery")
        plan.write(params["out"], "output GeoTIFF", "raster")
        if params.get("preview"):
            plan.write(params["preview"], "preview", "preview")
        if params.get("regions_out"):
            plan.write(params["regions_out"], "regions output", "regions", ("geoclip_regions",))
        plan.check()

    @staticmethod
    def _grid(engine, params: Dict[str, Any], default):
        """The request's extent and resolution as a Grid. 'auto' sizes the raster to the view (`view_px`, else a
        nominal screen): about one cell per 3 pixels, read from the finest built field that covers the view,
        the encoder only where no field does (core/maps/location_field.py `view_grid`, Processing's rule too)."""
        from ..maps.location_field import view_grid
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
        path = field_dir(engine.cache_dir, engine.weights.digest, grid)
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


def _parent_alive(pid: int) -> bool:
    """Is the process that started us still there? psutil where installed (every OS), else POSIX signals."""
    try:
        import psutil

        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except ImportError:
        pass
    except Exception:  # the process vanished between the two calls
        return False
    if os.name != "posix":
        return True
    if os.getppid() != pid:  # re-parented: our parent is gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProtocolLogHandler(logging.Handler):
    """Every log record of the engine (and Python's warnings, captured) as a protocol `log` message with its level:
    the client maps the level onto QgsMessageLog's, instead of guessing it from words in stderr. Repeats of one
    message are sent once (a warning raised per batch would flood the panel)."""

    LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
              logging.CRITICAL: "critical"}

    def __init__(self, send: Callable[[Dict[str, Any]], None]):
        super().__init__(level=logging.INFO)
        self._send = send
        self._seen: set = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.name == "py.warnings":  # "file:line: Category: text\n  source" -> the text alone
                text = text.strip().splitlines()[0].split(": ", 2)[-1]
            if text in self._seen:
                return
            self._seen.add(text)
            self._send(protocol.log(self.LEVELS.get(record.levelno, "info"), text))
        except Exception:  # logging must never break a job
            self.handleError(record)


def serve(stdin, out, parent_pid: Optional[int] = None, grace: float = GRACE_SECONDS) -> int:
    """Read requests on a thread (so cancel arrives mid-job), run them one at a time on this one.

    The reader never dies: every line is decoded and checked on its own (a bad one gets a protocol error), and a
    line longer than MAX_LINE_BYTES is skipped without being held in memory. When stdin closes (QGIS quit or
    was killed) or the parent process disappears, the running job is cancelled and the worker exits; a job that
    does not stop within `grace` seconds is cut short by ending the process."""
    send_lock = threading.Lock()

    def send(message: Dict[str, Any]) -> None:
        line = protocol.encode(message)
        if len(line) > protocol.MAX_REPLY_BYTES:  # a backstop: the schema's maxima keep every reply below it
            line = protocol.encode(protocol.error(
                message.get("id"), "too_large", f"the reply would be {len(line):,} bytes, over the "
                f"{protocol.MAX_REPLY_BYTES:,}-byte limit", hint="ask for fewer items at once (top-k, points)"))
        with send_lock:
            try:
                out.write(line)
                out.flush()
            except (OSError, ValueError):  # QGIS has gone: nobody reads any more
                pass

    worker = Worker(send)
    handler = ProtocolLogHandler(send)
    logging.getLogger().addHandler(handler)  # the engine's log records reach QGIS with their levels
    jobs: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()
    stopping = threading.Event()

    def stop(reason: str) -> None:
        if stopping.is_set():
            return
        stopping.set()
        logging.getLogger("geoclip_qgis").info("worker stopping: %s", reason)
        worker.cancel_all()
        worker.stop_background()
        jobs.put(None)

        def cut_short() -> None:
            time.sleep(grace)
            sys.stderr.flush()
            os._exit(0)

        threading.Thread(target=cut_short, name="geoclip-exit", daemon=True).start()

    def read_line() -> Optional[bytes]:
        line = stdin.readline(protocol.MAX_LINE_BYTES + 1)
        if len(line) > protocol.MAX_LINE_BYTES and not line.endswith(b"\n"):
            rid = protocol.peek_id(line)  # the caller waits for this id: it gets its answer
            del line
            while True:  # drop the rest of the over-long line, a bounded piece at a time
                more = stdin.readline(protocol.MAX_LINE_BYTES)
                if not more or more.endswith(b"\n"):
                    break
            send(protocol.error(rid, "too_large", f"request line longer than {protocol.MAX_LINE_BYTES:,} bytes "
                                "ignored", hint="send less at once (fewer photos or queries, a simpler area of "
                                                "interest, or the area as a file path)"))
            return b"\n"
        return line or None

    def one(line: bytes) -> None:
        if not line.strip():
            return
        try:
            msg = protocol.decode(line)
        except ValueError as exc:
            send(protocol.error(protocol.peek_id(line), "protocol", f"bad message: {exc}"))
            return
        op = msg.get("op")
        if op == "cancel":
            worker.cancel(msg.get("target"))
        elif op == "shutdown":
            stop("shutdown requested")
        else:
            try:
                rid = protocol.check_id(msg.get("id"))
            except ValueError as exc:
                send(protocol.error(None, "protocol", str(exc)))
                return
            worker.enqueue(rid, op)
            jobs.put(msg)

    def reader() -> None:
        while not stopping.is_set():
            line = b""
            try:
                line = read_line()
                if line is None:
                    break
                one(line)
            except Exception as exc:  # never let one message end the reader: QGIS would wait forever
                traceback.print_exc(file=sys.stderr)
                send(protocol.error(protocol.peek_id(line or b""), "protocol",
                                    f"message ignored ({type(exc).__name__}: {exc})"))
            worker.line_done()  # after any error reply for it: a heartbeat never overtakes that reply
        stop("stdin closed")

    def beat(every: float) -> None:
        while not stopping.wait(every):
            send(worker.heartbeat())

    def watch_parent() -> None:
        while not stopping.is_set():
            if not _parent_alive(parent_pid):
                stop(f"parent process {parent_pid} is gone")
                return
            time.sleep(1.0)

    threading.Thread(target=reader, name="geoclip-stdin", daemon=True).start()
    if parent_pid:
        threading.Thread(target=watch_parent, name="geoclip-parent", daemon=True).start()
    from .. import __version__

    ready = {"type": "ready", "protocol": protocol.PROTOCOL_VERSION, "version": __version__, "pid": os.getpid()}
    every = heartbeat_seconds()
    if every:
        ready["heartbeat"] = every
    send(ready)
    if every:
        threading.Thread(target=beat, args=(every,), name="geoclip-heartbeat", daemon=True).start()
    while True:
        req = jobs.get()
        if req is None:
            return 0
        worker.handle(req)


def heartbeat_seconds() -> Optional[float]:
    """Seconds between heartbeats as the client asked ($GEOCLIP_HEARTBEAT), or None: none asked, none sent."""
    try:
        every = float(os.environ.get(protocol.HEARTBEAT_ENV, "") or 0)
    except ValueError:
        return None
    return min(every, 60.0) if every > 0 and every == every else None


def main() -> int:
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else written to stdout, from Python or C, lands on stderr
    sys.stdout = sys.stderr
    # Log records travel as protocol `log` messages (ProtocolLogHandler, added by serve); stderr keeps only what
    # is not ours to format (C libraries, a crash's traceback).
    logging.getLogger().setLevel(logging.WARNING)  # other libraries: their warnings and errors only
    logging.getLogger("geoclip_qgis").setLevel(logging.INFO)
    logging.captureWarnings(True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parent = os.environ.get(PARENT_ENV, "")
    parent_pid = int(parent) if parent.isdigit() else (os.getppid() if os.name == "posix" else None)
    return serve(sys.stdin.buffer, proto_out, parent_pid)


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Skip interpreter teardown: daemon threads (prefetch, reader) still inside C code during finalisation are
    # what aborted the worker with "terminate called without an active exception". Nothing is left unflushed.
    os._exit(code)
