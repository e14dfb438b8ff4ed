"""Issue 11, class 3: the worker validates every request against one schema, survives any line it is sent,
forgets cancel ids it should not keep, never runs a cancelled queued job, and exits when QGIS is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT

from geoclip_qgis.core.service.worker import Worker, canonical_engine_options
from geoclip_qgis.shared import protocol


@pytest.fixture()
def worker_proc(cache_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", protocol.WORKER_MODULE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    assert json.loads(proc.stdout.readline())["type"] == "ready"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _send(proc, raw: bytes) -> dict:
    proc.stdin.write(raw if raw.endswith(b"\n") else raw + b"\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def _engine(tiny_clip):
    return {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:2000"}


HOSTILE_LINES = [
    (b'{"id": NaN, "op": "info"}', "protocol", "NaN"),
    (b'{"id": [1, 2], "op": "info"}', "protocol", "request id"),
    (b'{"id": true, "op": "info"}', "protocol", "request id"),
    (b"\xff\xfe\x00garbage", "protocol", "not UTF-8"),
    (b"[1, 2, 3]", "protocol", "JSON object"),
    (b"{not json", "protocol", "bad message"),
    (b'{"id": 3, "op": "launch_missiles"}', "input", "unknown op"),
    (b'{"id": 4, "op": "info", "params": "x"}', "input", "'params'"),
    (b'{"id": 5, "op": "geolocate_text", "params": {"queries": "abc"}}', "input", "'queries': must be a list"),
    (b'{"id": 6, "op": "geolocate_images", "params": {}}', "input", "'paths': is required"),
    (b'{"id": 7, "op": "geolocate_images", "params": {"paths": ["a.jpg"], "top_k": "5"}}', "input", "'top_k'"),
    (b'{"id": 8, "op": "geolocate_images", "params": {"paths": ["a.jpg"], "top_k": 0}}', "input", "'top_k'"),
    (b'{"id": 9, "op": "similar", "params": {"lat": 95, "lon": 0, "out": "x.tif"}}', "input", "'lat'"),
    (b'{"id": 10, "op": "similar", "params": {"lat": 1, "lon": 0, "out": "x.tif", "resolution": -1}}', "input",
     "'resolution'"),
    (b'{"id": 11, "op": "likelihood", "params": {"text": "x", "out": "x.tif", "extent": [1, 2]}}', "input",
     "'extent'"),
    (b'{"id": 12, "op": "encode_locations", "params": {"points": [[1, 2, 3]]}}', "input", "'points[0]'"),
    (b'{"id": 13, "op": "info", "params": {"engine": {"batch_size": "eight"}}}', "input", "'engine.batch_size'"),
    (b'{"id": 14, "op": "info", "params": {"engine": {"clip": "typo"}}}', "input", "'engine.clip'"),
    (b'{"id": 15, "op": "geolocate_text", "params": {"queries": ["' + b"a" * 5000 + b'"]}}', "input",
     "characters long"),
]


def test_hostile_lines_get_errors_and_the_worker_keeps_serving(worker_proc):
    for raw, code, text in HOSTILE_LINES:
        reply = _send(worker_proc, raw)
        assert reply["type"] == "error", (raw[:60], reply)
        assert reply["error"]["code"] == code and text in reply["error"]["message"], (raw[:60], reply)
    # a 50 MB line is skipped without being parsed or held, then the worker still answers
    worker_proc.stdin.write(b'{"id": 1, "op": "info", "params": {"x": "' + b"x" * (50 * 2**20) + b'"}}\n')
    worker_proc.stdin.flush()
    reply = json.loads(worker_proc.stdout.readline())
    assert reply["type"] == "error" and "longer than" in reply["error"]["message"]
    reply = _send(worker_proc, json.dumps({"id": 99, "op": "info", "params": {"device": "cpu"}}).encode())
    assert reply["type"] == "result" and reply["id"] == 99


def test_input_errors_name_the_parameter_through_the_api():
    sent = []
    Worker(sent.append).handle({"id": 1, "op": "geolocate_text", "params": {"queries": "abc", "top_k": 2}})
    assert sent[-1]["error"]["code"] == "input" and sent[-1]["error"]["path"] == "queries"


def test_cancel_ids_are_forgotten_and_cancelled_queued_jobs_never_run(tiny_clip, cache_dir):
    sent = []
    worker = Worker(sent.append)
    worker.cancel(12345)  # never seen: not kept
    assert worker.cancel_ids == set()
    worker.enqueue(2, "geolocate_text")
    worker.cancel(2)
    worker.handle({"id": 2, "op": "geolocate_text", "params": {"queries": ["a beach"], "engine": _engine(tiny_clip)}})
    assert sent[-1] == {"id": 2, "type": "result", "data": {"cancelled": True, "started": False}}
    assert worker.active == set() and worker.cancel_ids == set()
    assert worker._engine is None, "a cancelled queued job loads nothing"


def test_waiting_job_says_so_and_cancel_reaches_a_long_job(tiny_clip, cache_dir, tmp_path):
    """A likelihood map on a fine dense grid is cancelled mid-scoring through the engine's one cancel hook."""
    sent = []
    worker = Worker(sent.append)
    params = {"text": "a beach", "engine": _engine(tiny_clip), "extent": [-180, -60, 180, 60], "resolution": 0.05,
              "method": "dense", "out": str(tmp_path / "l.tif")}
    worker.enqueue(1, "likelihood")
    timer = {}

    def cancel_when_scoring():
        while not any(m.get("message") == "scoring the grid" for m in list(sent)):
            time.sleep(0.01)
        timer["t0"] = time.monotonic()
        worker.cancel(1)

    threading.Thread(target=cancel_when_scoring, daemon=True).start()
    worker.running = None
    t = threading.Thread(target=worker.handle, args=({"id": 1, "op": "likelihood", "params": params},))
    t.start()
    while worker.running is None:
        time.sleep(0.01)
    worker.enqueue(2, "info")
    assert "waiting for the running job (likelihood)" in sent[-1]["message"]
    t.join(120)
    stopped = time.monotonic() - timer["t0"]
    assert [m for m in sent if m.get("id") == 1][-1]["data"] == {"cancelled": True}
    assert stopped < 10, f"cancel took {stopped:.1f} s"
    assert not list(tmp_path.iterdir()), "a cancelled raster leaves no file"


def test_worker_exits_on_stdin_eof_mid_job(worker_proc, tiny_clip, tmp_path):
    req = {"id": 1, "op": "likelihood", "params": {
        "text": "a beach", "engine": _engine(tiny_clip), "extent": [-180, -60, 180, 60], "resolution": 0.05,
        "method": "dense", "out": str(tmp_path / "l.tif")}}
    worker_proc.stdin.write((json.dumps(req) + "\n").encode())
    worker_proc.stdin.flush()
    while "scoring" not in json.loads(worker_proc.stdout.readline()).get("message", ""):
        pass
    t0 = time.monotonic()
    worker_proc.stdin.close()
    worker_proc.wait(timeout=30)
    assert time.monotonic() - t0 < 8 and worker_proc.returncode == 0


def test_worker_exits_when_its_parent_dies():
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GEOCLIP_PARENT_PID": str(parent.pid)}
    proc = subprocess.Popen([sys.executable, "-m", protocol.WORKER_MODULE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    try:
        assert json.loads(proc.stdout.readline())["type"] == "ready"
        parent.wait()
        t0 = time.monotonic()
        proc.wait(timeout=20)  # stdin is still open: only the parent watch can end it
        assert time.monotonic() - t0 < 8
    finally:
        if proc.poll() is None:
            proc.kill()


def test_same_engine_options_mean_one_engine():
    a = canonical_engine_options({"device": "auto", "clip_path": "~/clip/", "gallery": "default"})
    b = canonical_engine_options({"clip_path": os.path.expanduser("~/clip"), "batch_size": 8, "weights": ""})
    assert a == b
    assert canonical_engine_options({"device": "cuda:1"})["device"] == "cuda:1"


def test_background_field_pyramid_builds_and_steps_aside(tmp_path, tiny_clip, monkeypatch):
    """At engine start the worker builds a coarse world field (here 1°: 64,800 cells) on a thread that pauses
    while a request waits or runs; afterwards an 'auto' world map is sized to the view and read from that field."""
    from geoclip_qgis.core.maps.field_choice import find_field

    monkeypatch.setenv("GEOCLIP_PYRAMID", "1.0")  # a 1° field; "1" alone means the default pyramid
    sent = []
    worker = Worker(sent.append)
    opts = {"cache_dir": str(tmp_path / "cache"), "device": "cpu", "clip_path": tiny_clip}
    engine = worker.engine(opts)
    worker.active.add("busy")  # a request is waiting: the build must not finish meanwhile
    time.sleep(3)
    assert not any(f.complete for f in find_field(engine.cache_dir, engine.weights.digest))
    worker.active.discard("busy")
    deadline = time.monotonic() + 600
    done = []
    while time.monotonic() < deadline and not done:
        done = [f for f in find_field(engine.cache_dir, engine.weights.digest) if f.complete]
        time.sleep(0.5)
    assert [f.grid.res for f in done] == [1.0]
    grid = worker._grid(engine, {"resolution": "auto", "view_px": [1800, 900]}, "auto")
    assert grid.res == 1.0 and engine.field_for(grid)[0] is not None, "the world view reads the field"
    worker.handle({"id": 1, "op": "similar", "params": {"lat": 45.0, "lon": 5.0, "engine": opts,
                                                       "resolution": "auto", "view_px": [1800, 900],
                                                       "out": str(tmp_path / "s.tif")}})
    assert sent[-1]["type"] == "result" and sent[-1]["data"]["res"] == 1.0
    worker.stop_background()


def test_the_worker_sends_its_log_records_as_log_messages_with_levels():
    """The protocol's `log` type is used: the engine's records arrive with their level (no guessing from words in
    stderr), Python warnings included, each repeated message once."""
    import logging
    import warnings

    from geoclip_qgis.core.service.worker import ProtocolLogHandler

    sent = []
    handler = ProtocolLogHandler(sent.append)
    log = logging.getLogger("geoclip_qgis.test_levels")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(handler)
    try:
        log.info("field built")
        log.warning("an error-free warning")
        log.error("a plain failure")
        log.warning("an error-free warning")
        warnings.warn("PROJ data directory not found", UserWarning, stacklevel=1)
    finally:
        log.removeHandler(handler)
        logging.getLogger("py.warnings").removeHandler(handler)
        logging.captureWarnings(False)
    assert [(m["type"], m["level"], m["message"]) for m in sent] == [
        ("log", "info", "field built"), ("log", "warning", "an error-free warning"),
        ("log", "error", "a plain failure"), ("log", "warning", "PROJ data directory not found")]
