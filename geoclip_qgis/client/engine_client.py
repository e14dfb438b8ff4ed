"""QGIS's side of the engine worker: start it, send requests, stream progress and rows back, restart on crash.

Only the standard library and core.protocol are used here, so QGIS never loads torch. A request blocks the calling
thread (a QgsTask or a Processing algorithm's thread, never the GUI thread), polling `is_cancelled` so a cancel
reaches the worker within a fraction of a second.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional

from ..shared import defaults, protocol

# One definition each, shared with the worker (every request carries all the engine options, so the dock, the
# map tool and Processing name one engine the same way; the worker exits when PARENT_ENV's process is gone).
from ..shared.protocol import ENGINE_DEFAULTS, PARENT_ENV, canonical_engine_options  # noqa: F401 - re-exported
from . import settings
from .log import LOG_TAG, StderrFilter, log_message, stderr_level  # noqa: F401 - re-exported
from .messages import MANAGER, SETTINGS, crash_error, for_analysts

PLUGIN_DIR = Path(__file__).resolve().parents[1]
ENGINE_PYTHON_ENV = "GEOCLIP_ENGINE_PYTHON"
SETTINGS_PREFIX = settings.PREFIX
# What a waiting request is told it waits for (op -> words); other ops are named as they are.
OP_WORDS = {"build_field": "the field build", "geolocate_images": "the photo geolocation",
            "geolocate_text": "the text query", "likelihood": "the likelihood map", "similar": "'places like here'",
            "features": "the feature raster", "info": "the engine check", "field_status": "the field check",
            "download_clip": "the CLIP download", "encode_locations": "the location encoding"}


def waiting_text(what: str) -> str:
    """What a request queued behind another says (the dock's status, Processing's log): one wording for both."""
    return f"Waiting for {what} to finish…"


class EngineError(Exception):
    """The worker refused a request (bad input, missing model); `info` holds code, message, path, hint."""

    def __init__(self, info: Dict[str, Any]):
        self.info = info
        self.code = info.get("code", "error")
        super().__init__(info.get("message") or "engine error")


class WorkerCrashed(EngineError):
    """The worker process died; the next request starts a new one."""


class EngineNotInstalled(EngineError):
    pass


def setting(key: str, default: Any = None) -> Any:
    """A plugin setting: the one store (client/settings.py)."""
    return settings.get(key, default)


def data_dir() -> Path:
    """The plugin's own data (engine venv, models, cache): in the QGIS settings folder, so upgrades keep it."""
    try:
        from qgis.core import QgsApplication

        base = Path(QgsApplication.qgisSettingsDirPath())
    except ImportError:
        base = Path.home() / ".local" / "share" / "geoclip_qgis"
    return base / "geoclip"


def managed_env_dir() -> Path:
    """Where the GUI's installer puts the engine's venv."""
    return data_dir() / "engine-venv"


def default_cache_dir() -> Path:
    """The one cache-folder rule (shared/defaults.py), the same folder the CLI and the worker use."""
    return defaults.default_cache_dir()


def engine_defaults(**overrides: Any) -> Dict[str, Any]:
    """THE engine options: the plugin settings (engine Python aside) in canonical form, with `overrides` (a
    Processing run's parameters) on top where they are not empty. The dock, the map tool, the manager and
    Processing all send this, so they share one loaded engine (the worker keys it on these options) and one
    gallery cache; a `cuda:1` setting stays `cuda:1`."""
    opts: Dict[str, Any] = {key: str(setting(key, "") or "") for key in ("clip_path", "weights", "cache_dir",
                                                                          "device", "precision", "gallery")}
    opts["cache_dir"] = opts["cache_dir"] or str(default_cache_dir())
    opts.update({k: v for k, v in overrides.items() if v not in (None, "")})
    return canonical_engine_options(opts)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def child_env(base: Optional[Dict[str, str]] = None, worker: bool = False) -> Dict[str, str]:
    """The environment for the engine's Python (the worker, pip): QGIS's PYTHONHOME/PYTHONPATH point at QGIS's own
    Python (OSGeo4W, QGIS.app) and would break another one, so they are dropped; the plugin's parent folder is the
    path, so `python -m geoclip_qgis.core.service.worker` imports this copy. UTF-8 mode makes paths and messages
    cross the pipes the same way on Windows as elsewhere. For the worker (`worker=True`) it also names this process in
    $GEOCLIP_PARENT_PID: the worker exits when QGIS is gone, even when QGIS was killed."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k.upper() not in ("PYTHONHOME", "PYTHONPATH", PARENT_ENV)}
    env.update(PYTHONPATH=str(PLUGIN_DIR.parent), PYTHONUTF8="1", PYTHONIOENCODING="utf-8")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if worker:
        env[PARENT_ENV] = str(os.getpid())
        env[protocol.HEARTBEAT_ENV] = str(protocol.HEARTBEAT_SECONDS)  # liveness: see EngineClient.call
        if str(setting("background_fields", "on")).lower() in ("off", "false", "0", "no"):
            env["GEOCLIP_PYRAMID"] = "0"  # Settings: no background world fields (core/service/worker.py)
    return env


def engine_python() -> str:
    """The engine's Python: setting, then $GEOCLIP_ENGINE_PYTHON, then a checkout's .venv, then the managed venv."""
    candidates = [setting("engine_python", ""), os.environ.get(ENGINE_PYTHON_ENV, ""),
                  str(venv_python(PLUGIN_DIR.parent / ".venv")), str(venv_python(managed_env_dir()))]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    raise EngineNotInstalled({
        "code": "not_installed",
        "message": "The GeoCLIP engine (a Python with PyTorch) is not installed.",
        "hint": f"Fix: {MANAGER} › Install engine, or choose the engine Python in {SETTINGS}",
    })


def close_pipes(proc: subprocess.Popen) -> None:
    """Close our ends of a process's pipes (a reader thread still iterating one ends with ValueError)."""
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()


class EngineClient:
    """One long-lived worker process; requests are served one at a time, in order."""

    def __init__(self, python: Optional[str] = None, startup_timeout: float = 120.0):
        self.python = python
        self.startup_timeout = startup_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.messages: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()
        self.stderr_tail: Deque[str] = collections.deque(maxlen=60)
        self.ids = itertools.count(1)
        self.lock = threading.Lock()  # one request at a time
        self.ready: Dict[str, Any] = {}
        self.restarts = 0
        self.running_op: Optional[str] = None  # the op of the request holding the lock (what others wait for)
        self.running_id: Optional[int] = None
        self.log_to_qgis = True  # worker stderr lines and log messages go to the Log Messages panel
        self.stopping = False  # shutdown() was asked: the worker's end is not a crash
        self.lines_sent = 0  # lines written to this worker (a heartbeat's `lines` is compared with it)
        # A worker that promised heartbeats and sends nothing at all for this long is wedged: it is stopped and the
        # request fails (the next one starts a new worker). Generous: a heartbeat needs only the GIL for a moment.
        self.silence_limit = 120.0

    # ---- process life -----------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.stopping = False
        python = self.python or engine_python()
        self.messages = queue.Queue()
        self.stderr_tail.clear()
        self.lines_sent = 0
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self.proc = subprocess.Popen(
            [python, "-m", protocol.WORKER_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=child_env(worker=True), text=True, encoding="utf-8", errors="replace",
            bufsize=1,
            creationflags=flags,
        )
        threading.Thread(target=self._read_stdout, args=(self.proc, self.messages), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            msg = self._next(deadline)
            if msg is not None and msg.get("type") == "ready":
                self.ready = msg
                return

    def _read_stdout(self, proc: subprocess.Popen, messages: queue.Queue) -> None:
        """Undecodable bytes arrive as U+FFFD (errors="replace"), so no line can end this thread early; the end of
        stream is always reported, to this process's queue (a restarted worker has its own)."""
        try:
            for line in proc.stdout:
                try:
                    msg = protocol.decode(line)
                except ValueError:
                    self.stderr_tail.append(f"(unframed stdout) {line.rstrip()}")
                    continue
                if msg.get("type") == "log":  # the worker's warnings: to the log, never to a request
                    text = str(msg.get("message", ""))
                    self.stderr_tail.append(f"({msg.get('level', 'info')}) {text}")
                    if self.log_to_qgis:
                        log_message(text, str(msg.get("level", "info")))
                    continue
                messages.put(msg)
        except (OSError, ValueError):  # our end of the pipe was closed (_release)
            pass
        finally:
            messages.put(None)  # end of stream: the process is gone

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        """Drained to the end whatever it holds: a full stderr pipe would block the worker (Windows' is small)."""
        shown = StderrFilter()
        with contextlib.suppress(OSError, ValueError):
            for line in proc.stderr:
                line = line.rstrip()
                self.stderr_tail.append(line)
                forward = shown(line) if line else None
                if self.log_to_qgis and forward is not None:
                    log_message(f"worker: {forward[0]}", forward[1])

    def _next(self, deadline: Optional[float]) -> Optional[Dict[str, Any]]:
        while True:
            try:
                msg = self.messages.get(timeout=0.1)
            except queue.Empty:
                if not self.alive:
                    self._crashed()
                if deadline is not None and time.monotonic() > deadline:
                    self.kill()
                    raise WorkerCrashed({"code": "timeout", "message": "the engine worker did not answer in time",
                                         "hint": "see the log for details"}) from None
                return None
            if msg is None:
                self._crashed()
            return msg

    def _release(self) -> None:
        """Close our ends of the pipes (the reader threads end with them) and forget the process."""
        if self.proc is not None:
            close_pipes(self.proc)
        self.proc = None

    def _crashed(self) -> None:
        code = None
        if self.proc is not None:  # its pipes closed first: give it a moment to report how it ended
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                code = self.proc.wait(timeout=2)
        tail = "\n".join(list(self.stderr_tail)[-15:])
        self._release()
        if self.stopping:
            raise WorkerCrashed({"code": "stopped", "message": "the GeoCLIP engine was stopped (plugin unloaded or "
                                                               "engine changed)", "hint": ""})
        self.restarts += 1
        info = crash_error(code, tail)
        if self.log_to_qgis:
            log_message(f"{info['message']} Its last lines:\n{tail or '(none)'}", "critical")
        raise WorkerCrashed(info)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Stop the worker: cancel the running request, ask it to shut down and close its stdin (it exits on EOF
        too). `wait=False` (plugin unload, QGIS quitting, the GUI thread) returns at once: a daemon thread waits
        for the exit and kills the worker after `timeout`; were QGIS gone first, the worker still exits by itself
        (stdin EOF, parent gone)."""
        proc = self.proc
        self.stopping = True
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                if self.running_id is not None:
                    proc.stdin.write(protocol.encode({"op": "cancel", "target": self.running_id}))
                proc.stdin.write(protocol.encode({"op": "shutdown"}))
                proc.stdin.flush()
            with contextlib.suppress(OSError, ValueError, AttributeError):
                proc.stdin.close()

            def reap() -> None:
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(OSError):
                        proc.kill()
                    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                        proc.wait(timeout=10)
                close_pipes(proc)  # after the exit: no "unclosed file" and no "still running" ResourceWarning

            if wait:
                reap()
            else:
                threading.Thread(target=reap, name="geoclip-worker-reaper", daemon=True).start()
        if wait or proc is None or proc.poll() is not None:
            self._release()
        else:  # the reader threads end when the worker does; only forget the process here
            self.proc = None

    # ---- requests ---------------------------------------------------------------------------------------------
    def _send(self, message: Dict[str, Any], line: Optional[str] = None) -> int:
        """Write one message; returns its line number on this worker (what heartbeats count)."""
        try:
            self.proc.stdin.write(line or protocol.encode(message))
            self.proc.stdin.flush()
        except (OSError, AttributeError):
            self._crashed()
        self.lines_sent += 1
        return self.lines_sent

    def call(self, op: str, params: Optional[Dict[str, Any]] = None, *,
             on_progress: Optional[Callable[[int, int, str], None]] = None,
             on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
             is_cancelled: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None,
             on_waiting: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
        """Run one request to completion; rows arrive through `on_row` as the worker finishes them.

        Requests run one at a time. While another holds the worker, `on_waiting("Waiting for the field build to
        finish")` is called (once, and again if the request it waits for changes), and `is_cancelled` is polled:
        a request cancelled while it waits returns {"cancelled": True, "started": False} without ever reaching
        the worker."""
        waited_for: Optional[str] = None
        while not self.lock.acquire(timeout=0.1):
            if is_cancelled is not None and is_cancelled():
                return {"cancelled": True, "started": False}
            running = self.running_op
            if on_waiting is not None and running and running != waited_for:
                waited_for = running
                on_waiting(waiting_text(OP_WORDS.get(running, running)))
        try:
            if is_cancelled is not None and is_cancelled():
                return {"cancelled": True, "started": False}
            self.running_op = op
            if not self.alive:
                self.start()
            rid = next(self.ids)
            line = request_line(rid, op, params)  # too long for the worker: refused here, before anything is sent
            self.running_id = rid
            my_line = self._send({}, line)
            deadline = None if timeout is None else time.monotonic() + timeout
            heard = time.monotonic()
            cancel_sent = False
            while True:
                if is_cancelled is not None and not cancel_sent and is_cancelled():
                    self._send({"op": "cancel", "target": rid})
                    cancel_sent = True
                msg = self._next(deadline)
                if msg is None:
                    if self.ready.get("heartbeat") and time.monotonic() - heard > self.silence_limit:
                        self.kill()
                        raise WorkerCrashed({"code": "timeout", "message": f"the engine worker sent nothing for "
                                             f"{self.silence_limit:.0f} s, not even its heartbeat; it was stopped",
                                             "hint": "it restarts on the next request; see the log for details"})
                    continue
                heard = time.monotonic()
                lost = lost_reply(msg, rid, my_line)
                if lost is not None:
                    raise EngineError(lost)
                if msg.get("id") != rid:
                    continue
                kind = msg.get("type")
                if kind == "progress" and on_progress:
                    on_progress(int(msg.get("done", 0)), int(msg.get("total", 0)), str(msg.get("message", "")))
                elif kind == "row" and on_row:
                    on_row(msg["data"])
                elif kind == "result":
                    return msg["data"]
                elif kind == "error":
                    raise EngineError(for_analysts(msg["error"]))
        finally:
            self.running_op = self.running_id = None
            self.lock.release()

    def diagnostics(self) -> List[str]:
        return list(self.stderr_tail)


def request_line(rid: int, op: str, params: Optional[Dict[str, Any]]) -> str:
    """The request as one protocol line, or an EngineError when it is longer than the worker reads
    (protocol.MAX_LINE_BYTES), naming the parameter that makes it so and what to do: refused before sending."""
    line = protocol.encode(protocol.request(rid, op, **(params or {})))
    size = len(line.encode("utf-8"))
    if size <= protocol.MAX_LINE_BYTES:
        return line
    sizes = {k: len(protocol.encode({k: v})) for k, v in (params or {}).items()}
    big = max(sizes, key=sizes.get) if sizes else "params"
    hints = {"aoi": "simplify the area of interest, or save it to a file and give the file's path",
             "paths": "send the photos in several smaller runs", "queries": "send fewer queries at once",
             "points": f"send at most {protocol.MAX_ENCODE_POINTS:,} points at once"}
    raise EngineError({"code": "too_large", "path": big,
                       "message": f"the request is {size:,} bytes, over the engine's {protocol.MAX_LINE_BYTES:,}-byte "
                                  f"limit; '{big}' alone is {sizes.get(big, size):,} bytes",
                       "hint": hints.get(big, "send less at once")})


def lost_reply(msg: Dict[str, Any], rid: int, my_line: int) -> Optional[Dict[str, Any]]:
    """The error for request `rid` (sent as line `my_line`) that `msg` reveals, or None. Two messages do: an error
    with a null id (the worker could not read the id of a line: with one request outstanding, it is ours), and a
    heartbeat that has read our line but holds no such id, while no reply came (the request was lost)."""
    kind = msg.get("type")
    if kind == "error" and msg.get("id") is None:
        return dict(msg.get("error") or {}, code=(msg.get("error") or {}).get("code") or "protocol")
    if kind == "heartbeat" and int(msg.get("lines") or 0) >= my_line and rid not in (msg.get("active") or []):
        return {"code": "lost", "message": "the engine worker read this request but holds no job for it and sent no "
                "reply", "hint": "run it again; if it happens again, see the log (GeoCLIP tab)"}
    return None


_shared: Optional[EngineClient] = None
_shared_lock = threading.Lock()


def shared_client() -> EngineClient:
    """The session's one worker (the model stays loaded between algorithm runs)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = EngineClient()
        return _shared


def shutdown_shared(wait: bool = True) -> None:
    """Stop the session's worker; the next request starts a new one (after a change of engine Python). On the GUI
    thread pass wait=False: it returns at once and the worker is reaped in the background."""
    global _shared
    with _shared_lock:
        client, _shared = _shared, None
    if client is not None:
        client.shutdown(wait=wait)
