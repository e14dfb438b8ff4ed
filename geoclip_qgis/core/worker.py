"""The engine as a long-lived process speaking core.protocol on stdin/stdout.

QGIS starts `python -m geoclip_qgis.core.worker` once; the model loads on the first request and stays loaded.
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
import traceback
from typing import Any, Callable, Dict, Optional

from . import protocol
from .errors import GeoClipError, InputError


class Cancelled(Exception):
    """Raised inside a job when QGIS asked to cancel it; finished rows have already been sent."""


class Worker:
    def __init__(self, send: Callable[[Dict[str, Any]], None]):
        self.send = send
        self.cancel_ids: set = set()
        self.lock = threading.Lock()
        self._engine = None
        self._engine_key: Optional[str] = None

    # ---- plumbing ---------------------------------------------------------------------------------------------
    def cancelled(self, rid: int) -> bool:
        with self.lock:
            return rid in self.cancel_ids

    def cancel(self, rid: int) -> None:
        with self.lock:
            self.cancel_ids.add(rid)

    def engine(self, opts: Dict[str, Any]):
        """One engine at a time, rebuilt only when its options change (the model stays loaded otherwise)."""
        from .engine import GeoClipEngine

        key = json.dumps(opts, sort_keys=True)
        if self._engine is None or key != self._engine_key:
            self._engine = None
            self._engine = GeoClipEngine(
                weights=opts.get("weights") or None, clip_path=opts.get("clip_path") or None,
                device=opts.get("device") or "auto", gallery=opts.get("gallery") or "default",
                cache_dir=opts.get("cache_dir") or None, batch_size=int(opts.get("batch_size") or 8),
            )
            self._engine_key = key
            # A built world field is read into the OS cache while the model loads: the first map is then fast.
            threading.Thread(target=self._engine.prefetch_fields, name="field-prefetch", daemon=True).start()
        return self._engine

    def handle(self, req: Dict[str, Any]) -> None:
        rid = req.get("id")
        op = req.get("op")
        params = req.get("params") or {}
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            self.send(protocol.error(rid, "protocol", f"unknown op {op!r}"))
            return
        try:
            data = handler(rid, params)
            self.send(protocol.result(rid, data))
        except Cancelled:
            self.send(protocol.result(rid, {"cancelled": True}))
        except GeoClipError as exc:
            e = exc.to_dict()
            self.send(protocol.error(rid, e["code"], e["message"], e["path"], e["hint"]))
        except Exception as exc:  # a bug or a library failure: report it, stay alive
            traceback.print_exc(file=sys.stderr)
            self.send(protocol.error(rid, "internal", f"{type(exc).__name__}: {exc}"))
        finally:
            with self.lock:
                self.cancel_ids.discard(rid)

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

        from .device import cuda_status, select_device

        usable, why = cuda_status()
        info = {"python": sys.version.split()[0], "executable": sys.executable, "torch": torch.__version__,
                "transformers": transformers.__version__, "cuda_usable": usable, "cuda": why,
                "device": select_device(params.get("device")).to_dict(), "pid": os.getpid()}
        if params.get("engine") is not None:
            info["engine"] = self.engine(params["engine"]).info()
        if params.get("check_models"):
            info.update(self._check_models(params.get("clip_path") or None, params.get("weights") or None))
        return info

    @staticmethod
    def _check_models(clip_path, weights) -> Dict[str, Any]:
        """What the model manager shows: is each model present and valid, and if not, why."""
        from .image_encoder import resolve_clip_path
        from .weights import load_weights

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
        paths = list(params.get("paths") or [])
        if not paths:
            raise InputError("no photos to geolocate", hint="choose photo files, a folder or a layer with paths")
        engine = self.engine(params.get("engine") or {})
        self.send(protocol.progress(rid, 0, len(paths), "loading the model"))
        n_ok = n_bad = 0
        for i, res in enumerate(engine.iter_predict_images(paths, int(params.get("top_k", 5)))):
            self.send(protocol.row(rid, res.to_dict()))
            n_ok += res.ok
            n_bad += not res.ok
            self.send(protocol.progress(rid, i + 1, len(paths), res.source))
            if self.cancelled(rid):
                return {"done": n_ok, "failed": n_bad, "cancelled": True}
        return {"done": n_ok, "failed": n_bad, "cancelled": False}

    def op_geolocate_text(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        queries = list(params.get("queries") or [])
        engine = self.engine(params.get("engine") or {})
        results = engine.predict_text(queries, int(params.get("top_k", 5)))
        for res in results:
            self.send(protocol.row(rid, res.to_dict()))
        return {"done": len(results), "failed": 0, "cancelled": False}

    def op_likelihood(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from .likelihood import field_plan, likelihood_map, query_for, write_likelihood
        from .raster import render_preview

        engine = self.engine(params.get("engine") or {})
        grid = self._grid(engine, params, "auto")
        field_plan(engine, grid, params.get("method", "auto"))  # a missing field is reported before CLIP loads
        self.send(protocol.progress(rid, 0, 3, "encoding the query"))
        query, label = query_for(engine, params.get("photos"), params.get("text"))
        if self.cancelled(rid):
            raise Cancelled()
        self.send(protocol.progress(rid, 1, 3, "scoring the grid"))
        lmap = likelihood_map(engine, query, grid, method=params.get("method", "auto"))
        self.send(protocol.progress(rid, 2, 3, "writing the GeoTIFF"))
        path = write_likelihood(lmap, params["out"], label, cog=bool(params.get("cog")))
        if params.get("preview"):
            render_preview(path, params["preview"])
        top = engine.rank_query(query[None], int(params.get("top_k", 5)))[0]
        return {"path": str(path), "best_lat": lmap.best[0], "best_lon": lmap.best[1], "stats": lmap.stats,
                "top": [p.__dict__ for p in top], "max_density": float(lmap.density.max())}

    @staticmethod
    def _grid(engine, params: Dict[str, Any], default):
        """The request's extent and resolution as a Grid. The likelihood's default, 'auto', is 0.1° where a built
        location field makes that take seconds, else 0.5°."""
        from .raster import Grid

        extent, res = params.get("extent"), params.get("resolution", default)
        if default != "auto" or res not in (None, "", "auto"):
            return Grid.over(extent, float(res))
        fine = Grid.over(extent, 0.1)
        return fine if engine.field_for(fine)[0] is not None else Grid.over(extent, 0.5)

    def op_features(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from .features import feature_raster, pca_raster
        engine = self.engine(params.get("engine") or {})
        grid = self._grid(engine, params, 1.0)
        report = self._progress(rid, "rasterising location features")
        if params.get("pca"):
            return pca_raster(engine, grid, params["out"], cog=bool(params.get("cog")), progress=report)
        return feature_raster(engine, grid, params["out"], params.get("bands") or None,
                              normalise=bool(params.get("normalise")), cog=bool(params.get("cog")), progress=report)

    def op_similar(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        from .features import similarity_raster
        engine = self.engine(params.get("engine") or {})
        grid = self._grid(engine, params, 0.5)
        return similarity_raster(engine, float(params["lat"]), float(params["lon"]), grid, params["out"],
                                 cog=bool(params.get("cog")), progress=self._progress(rid, "similarity"))

    def op_field_status(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        """Is there a location field for this lattice (default: the world at 0.1°), and how far is its build?"""
        from .field import BYTES_PER_CELL, LocationField, field_dir
        engine = self.engine(params.get("engine") or {})
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
        engine = self.engine(params.get("engine") or {})
        grid = self._grid(engine, params, 0.1)
        return engine.build_field(grid, progress=self._progress(rid, "encoding the location field")).info()

    def op_encode_locations(self, rid: int, params: Dict[str, Any]) -> Dict[str, Any]:
        engine = self.engine(params.get("engine") or {})
        emb = engine.encode_locations(params.get("points") or [], normalise=bool(params.get("normalise")))
        return {"embeddings": emb.tolist()}


def serve(stdin, out) -> int:
    """Read requests on a thread (so cancel arrives mid-job), run them one at a time on this one."""
    send_lock = threading.Lock()

    def send(message: Dict[str, Any]) -> None:
        with send_lock:
            out.write(protocol.encode(message))
            out.flush()

    worker = Worker(send)
    jobs: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()

    def reader() -> None:
        for line in stdin:
            if not line.strip():
                continue
            try:
                msg = protocol.decode(line)
            except ValueError as exc:
                send(protocol.error(None, "protocol", f"bad message: {exc}"))
                continue
            if msg.get("op") == "cancel":
                worker.cancel(msg.get("target"))
            elif msg.get("op") == "shutdown":
                break
            else:
                jobs.put(msg)
        jobs.put(None)

    threading.Thread(target=reader, name="geoclip-stdin", daemon=True).start()
    from . import __version__

    send({"type": "ready", "protocol": protocol.PROTOCOL_VERSION, "version": __version__, "pid": os.getpid()})
    while True:
        req = jobs.get()
        if req is None:
            return 0
        worker.handle(req)


def main() -> int:
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else written to stdout, from Python or C, lands on stderr
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="geoclip-worker %(levelname)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return serve(sys.stdin, proto_out)


if __name__ == "__main__":
    sys.exit(main())
