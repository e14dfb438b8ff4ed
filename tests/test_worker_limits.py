"""Issue 20, worker limits: the schema's maxima, the line limit and the reply limit agree; every error carries the
request id whenever one can be read; the plugin's client refuses what the worker cannot read before sending it, and
never waits without a bound (a lost request is an error, a silent worker is stopped)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT

from geoclip_qgis.client import engine_client
from geoclip_qgis.client.engine_client import EngineClient, EngineError, WorkerCrashed, lost_reply, request_line
from geoclip_qgis.core.service.worker import Worker
from geoclip_qgis.shared import protocol

BIG = protocol.MAX_LINE_BYTES + 1024


@pytest.mark.parametrize("line,rid", [
    (b'{"id": 41, "op": "info"', 41),
    (b'{"id":"job-7","op":"x","params":{"a":', "job-7"),
    (b'  {  "op" : "geolocate_text" , "id" : -3 , "params": [', -3),
    (b'{"op": "likelihood", "jsonrpc": "2", "id": 12}', 12),
    (b'{"id": 12.5, "op": "info"}', None),
    (b'{"id": true, "op": "info"}', None),
    (b'{"params": {"id": 5}, "id": 6}', None),  # an id inside params is never taken for the request's
    (b'{"op": "info", "params": {}, "id": 9}', None),  # after a nested member: not read
    (b'[{"id": 1}]', None),
    (b'\xff\xfe{"id": 1}', None),
    (b'{"id": "' + b"x" * 65 + b'"}', None),
    (b"", None),
])
def test_peek_id_reads_the_id_at_the_start_only(line, rid):
    assert protocol.peek_id(line) == rid
    assert protocol.peek_id(line + b"x" * 10_000) == rid


@pytest.fixture()
def worker_proc(cache_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(protocol.HEARTBEAT_ENV, None)
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


@pytest.mark.parametrize("head,rid", [
    (b'{"id": 41, "op": "geolocate_text", "params": {"queries": ["', 41),  # a 17 MB text
    (b'{"id": "aoi-1", "op": "geolocate_images", "params": {"paths": ["a.jpg"], "aoi": "POLYGON ((', "aoi-1"),
    (b'{"op": "info", "params": {"x": "', None),  # no id before the bulk: the documented null id
])
def test_an_over_long_line_is_answered_with_its_id(worker_proc, head, rid):
    reply = _send(worker_proc, head + b"1 " * (BIG // 2) + b'"]}}')
    assert reply["type"] == "error" and reply["id"] == rid and reply["error"]["code"] == "too_large", reply
    assert f"{protocol.MAX_LINE_BYTES:,}" in reply["error"]["message"]
    assert _send(worker_proc, b'{"id": 2, "op": "info", "params": {"device": "cpu"}}')["id"] == 2


@pytest.mark.parametrize("raw,rid", [
    (b'{"id": 5, "op": "info", "params": {"x": NaN}}', 5),
    (b'{"id": 6, "op": "info", "params": {', 6),
    (b'{"id": "s", "op": "info"} trailing', "s"),
    (b'{"op": "info", "params": {"x": NaN}, "id": 7}', None),
])
def test_a_line_that_is_not_json_is_answered_with_its_id_when_readable(worker_proc, raw, rid):
    reply = _send(worker_proc, raw)
    assert reply["type"] == "error" and reply["id"] == rid, reply


def test_schema_maxima_fit_the_line_and_reply_limits():
    """Every op's worst reply that the schema lets through is below MAX_REPLY_BYTES; no string the schema
    accepts is longer than a line can carry."""
    worst = -1.2345678901234567e-305  # the longest repr a float takes
    emb = protocol.encode(protocol.result(2**62, {"embeddings": [[worst] * 512] * protocol.MAX_ENCODE_POINTS}))
    assert len(emb) < protocol.MAX_REPLY_BYTES
    with pytest.raises(protocol.SchemaError, match="'points'"):
        protocol.validate("encode_locations", {"points": [[0, 0]] * (protocol.MAX_ENCODE_POINTS + 1)})
    with pytest.raises(protocol.SchemaError, match="'aoi'"):
        protocol.validate("geolocate_text", {"queries": ["x"], "aoi": "x" * (protocol.MAX_LINE_BYTES + 1)})
    # a row of 10,000 predictions and places with long names; the schema's top-k (100,000) is ten of these
    from geoclip_qgis.core.model.engine import Prediction, QueryResult

    p = Prediction(99_999, -89.12345678901234, -179.12345678901234, worst, 99_999, "c" * 60, "r" * 80, "p" * 120,
                   12_345.678_901_234)
    pl = {"rank": 99_999, "lat": worst, "lon": worst, "probability": worst, "best_lat": worst, "best_lon": worst,
          "best_probability": worst, "best_index": 99_999, "n_points": 99_999, "spread_km": worst, "max_km": worst,
          "country": "c" * 60, "region": "r" * 80, "place": "p" * 120, "place_km": worst, "label": "l" * 300}
    row = QueryResult("/" + "a" * 4096, "image", [p] * 10_000, (worst, worst), places=[pl] * 10_000,
                      remaining=worst, aoi_outside=worst, region={"summary": "s" * 200}, exif_problem="e" * 200)
    size = len(protocol.encode(protocol.row(2**62, row.to_dict())))
    assert size * 10 < protocol.MAX_REPLY_BYTES, size


def test_encode_locations_beyond_the_maximum_is_refused_before_the_engine_loads():
    sent = []
    worker = Worker(sent.append)
    worker.handle({"id": 3, "op": "encode_locations", "params": {"points": [[1.0, 2.0]] * 1_000_000}})
    assert sent[-1]["id"] == 3 and sent[-1]["error"]["code"] == "input" and sent[-1]["error"]["path"] == "points"
    assert worker._engine is None


def test_the_largest_encode_locations_request_fits_both_limits(tiny_clip, cache_dir):
    sent = []
    points = [[(i % 180) - 89.5, (i * 7 % 360) - 179.5] for i in range(protocol.MAX_ENCODE_POINTS)]
    req = {"id": 4, "op": "encode_locations", "params": {"points": points, "engine": {"device": "cpu"}}}
    assert len(protocol.encode(req)) < protocol.MAX_LINE_BYTES
    Worker(sent.append).handle(req)
    assert sent[-1]["type"] == "result" and len(sent[-1]["data"]["embeddings"]) == len(points)
    assert len(protocol.encode(sent[-1])) < protocol.MAX_REPLY_BYTES


def test_an_oversized_reply_becomes_an_error_with_its_id(cache_dir):
    """The backstop in the worker's send: never reached by what the schema accepts, tested by lowering the limit."""
    code = ("import sys; from geoclip_qgis.shared import protocol; protocol.MAX_REPLY_BYTES = 100; "
            "from geoclip_qgis.core.service import worker; sys.exit(worker.main())")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        assert json.loads(proc.stdout.readline())["type"] == "ready"
        reply = _send(proc, b'{"id": 8, "op": "info", "params": {"device": "cpu"}}')
    finally:
        proc.kill()
        proc.wait()
    assert reply["id"] == 8 and reply["type"] == "error" and reply["error"]["code"] == "too_large", reply


# ---- the client ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params,big", [
    ({"queries": ["x" * (protocol.MAX_LINE_BYTES + 1)]}, "queries"),
    ({"paths": ["a.jpg"], "aoi": {"type": "Polygon", "coordinates": [[[i * 1e-6, 45.123456] for i in
                                                                      range(1_000_000)]]}}, "aoi"),
    ({"paths": [f"/photos/{i:09d}.jpg" for i in range(1_000_000)]}, "paths"),
    ({"points": [[45.123456789, 5.123456789]] * 1_000_000}, "points"),
])
def test_the_client_refuses_a_line_the_worker_cannot_read_before_sending(params, big):
    with pytest.raises(EngineError) as exc:
        request_line(1, "geolocate_images", params)
    assert exc.value.code == "too_large" and exc.value.info["path"] == big and exc.value.info["hint"]


def test_a_request_within_the_limit_is_one_line():
    line = request_line(1, "geolocate_text", {"queries": ["x" * 1000] * 1000})
    assert line.endswith("\n") and line.count("\n") == 1 and len(line) <= protocol.MAX_LINE_BYTES


@pytest.mark.parametrize("msg,lost", [
    ({"id": None, "type": "error", "error": {"code": "too_large", "message": "m"}}, "too_large"),
    ({"id": None, "type": "error", "error": {}}, "protocol"),
    ({"type": "heartbeat", "lines": 5, "active": []}, "lost"),
    ({"type": "heartbeat", "lines": 6, "active": [9]}, "lost"),
    ({"type": "heartbeat", "lines": 4, "active": []}, None),  # our line (5) not read yet
    ({"type": "heartbeat", "lines": 5, "active": [7]}, None),  # queued or running
    ({"id": 8, "type": "error", "error": {"code": "input"}}, None),  # someone else's error
    ({"id": 7, "type": "result", "data": {}}, None),
])
def test_lost_reply_rule(msg, lost):
    got = lost_reply(msg, 7, 5)
    assert (got and got["code"]) == lost


def _fake_worker(tmp_path, body: str) -> str:
    """An executable standing in for the engine's Python: it ignores `-m module` and runs `body`."""
    script = tmp_path / "fake_worker.py"
    script.write_text("import json, sys, time\n"
                      "def send(m):\n    sys.stdout.write(json.dumps(m) + '\\n'); sys.stdout.flush()\n" + body)
    exe = tmp_path / "fake-python"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def _call_bounded(client, *args, limit=30.0, **kwargs):
    box = {}

    def run():
        try:
            box["result"] = client.call(*args, **kwargs)
        except Exception as exc:  # the test looks at it
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    t.start()
    t.join(limit)
    assert not t.is_alive(), "the client waited without a bound"
    return box, time.monotonic() - start


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for the engine's Python")
def test_a_request_the_worker_dropped_is_an_error_not_a_hang(tmp_path):
    exe = _fake_worker(tmp_path, (
        "send({'type': 'ready', 'protocol': 1, 'heartbeat': 0.2})\n"
        "n = 0\n"
        "for line in sys.stdin:\n"
        "    n += 1\n"  # read, then forgotten: no job, no reply
        "    send({'type': 'heartbeat', 'lines': n, 'active': []})\n"))
    client = EngineClient(python=exe)
    try:
        box, took = _call_bounded(client, "info", {})
    finally:
        client.shutdown()
    assert isinstance(box.get("error"), EngineError) and box["error"].code == "lost" and took < 20


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for the engine's Python")
def test_a_silent_worker_is_stopped_and_the_request_fails(tmp_path):
    exe = _fake_worker(tmp_path, "send({'type': 'ready', 'protocol': 1, 'heartbeat': 0.2})\ntime.sleep(600)\n")
    client = EngineClient(python=exe)
    client.silence_limit = 1.0
    try:
        box, took = _call_bounded(client, "info", {})
    finally:
        client.shutdown()
    assert isinstance(box.get("error"), WorkerCrashed) and box["error"].code == "timeout" and took < 20


def test_the_real_worker_beats_and_answers_a_null_id_error_to_the_waiting_request(monkeypatch, cache_dir):
    """The plugin's client asks the worker for heartbeats; a line whose id the worker cannot read (forced here by
    putting the id after the bulk) comes back as an error for the one outstanding request, at once."""
    assert protocol.HEARTBEAT_ENV in engine_client.child_env(worker=True)
    client = EngineClient(python=sys.executable)
    monkeypatch.setattr(engine_client, "request_line", lambda rid, op, params: json.dumps(
        {"op": op, "params": {"device": "cpu", "pad": "x" * BIG}, "id": rid}) + "\n")
    try:
        box, took = _call_bounded(client, "info", {}, limit=60)
        assert client.ready.get("heartbeat") == protocol.HEARTBEAT_SECONDS
        assert isinstance(box.get("error"), EngineError) and box["error"].code == "too_large", box
        monkeypatch.undo()
        box, _ = _call_bounded(client, "info", {"device": "cpu"}, limit=60)
        assert box.get("result", {}).get("pid"), box
    finally:
        client.shutdown()
