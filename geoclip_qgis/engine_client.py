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

from .core import protocol

PLUGIN_DIR = Path(__file__).resolve().parent
ENGINE_PYTHON_ENV = "GEOCLIP_ENGINE_PYTHON"
SETTINGS_PREFIX = "geoclip"


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
    """A plugin setting from QgsSettings when QGIS is there, else the default."""
    try:
        from qgis.core import QgsSettings
    except ImportError:
        return default
    return QgsSettings().value(f"{SETTINGS_PREFIX}/{key}", default)


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
    """$GEOCLIP_QGIS_CACHE; else the OS's cache folder (platformdirs: ~/.cache, %LOCALAPPDATA%, ~/Library/Caches)
    when QGIS's Python has platformdirs; else, and for users who already have one, the cache in the settings folder."""
    if os.environ.get("GEOCLIP_QGIS_CACHE"):
        return Path(os.environ["GEOCLIP_QGIS_CACHE"])
    legacy = data_dir() / "cache"
    try:
        import platformdirs
    except ImportError:
        return legacy
    return legacy if legacy.is_dir() else Path(platformdirs.user_cache_dir("geoclip_qgis", appauthor=False))


def engine_defaults() -> Dict[str, str]:
    """Engine options from the plugin settings, the same for the dock, the map tool and Processing, so they share
    one loaded engine (the worker keys it on its options) and one gallery cache."""
    opts = {key: str(setting(key, "")) for key in ("clip_path", "weights", "cache_dir") if setting(key, "")}
    opts.setdefault("cache_dir", str(default_cache_dir()))
    return opts


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def child_env(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment for the engine's Python (the worker, pip): QGIS's PYTHONHOME/PYTHONPATH point at QGIS's own
    Python (OSGeo4W, QGIS.app) and would break another one, so they are dropped; the plugin's parent folder is the
    path, so `python -m geoclip_qgis.core.worker` imports this copy. UTF-8 mode makes paths and messages cross the
    pipes the same way on Windows as elsewhere."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k.upper() not in ("PYTHONHOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(PLUGIN_DIR.parent), PYTHONUTF8="1", PYTHONIOENCODING="utf-8")
    env.setdefault("PYTHONUNBUFFERED", "1")
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
        "message": "the GeoCLIP engine (a Python with torch) is not installed",
        "hint": "open GeoCLIP > Engine and models and click 'Install engine', or set the engine Python in settings",
    })


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

    # ---- process life -----------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        python = self.python or engine_python()
        self.messages = queue.Queue()
        self.stderr_tail.clear()
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self.proc = subprocess.Popen(
            [python, "-m", protocol.WORKER_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=child_env(), text=True, encoding="utf-8", errors="replace", bufsize=1,
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
                    messages.put(protocol.decode(line))
                except ValueError:
                    self.stderr_tail.append(f"(unframed stdout) {line.rstrip()}")
        except (OSError, ValueError):  # our end of the pipe was closed (_release)
            pass
        finally:
            messages.put(None)  # end of stream: the process is gone

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        """Drained to the end whatever it holds: a full stderr pipe would block the worker (Windows' is small)."""
        with contextlib.suppress(OSError, ValueError):
            for line in proc.stderr:
                self.stderr_tail.append(line.rstrip())

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
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
        self.proc = None

    def _crashed(self) -> None:
        code = self.proc.poll() if self.proc else None
        tail = "\n".join(list(self.stderr_tail)[-15:])
        self._release()
        self.restarts += 1
        raise WorkerCrashed({"code": "crashed", "message": f"the GeoCLIP engine stopped (exit code {code})",
                             "hint": "it restarts on the next request; details:\n" + tail})

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def shutdown(self) -> None:
        if self.alive:
            try:
                self.proc.stdin.write(protocol.encode({"op": "shutdown"}))
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._release()

    # ---- requests ---------------------------------------------------------------------------------------------
    def _send(self, message: Dict[str, Any]) -> None:
        try:
            self.proc.stdin.write(protocol.encode(message))
            self.proc.stdin.flush()
        except (OSError, AttributeError):
            self._crashed()

    def call(self, op: str, params: Optional[Dict[str, Any]] = None, *,
             on_progress: Optional[Callable[[int, int, str], None]] = None,
             on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
             is_cancelled: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Run one request to completion; rows arrive through `on_row` as the worker finishes them."""
        with self.lock:
            if not self.alive:
                self.start()
            rid = next(self.ids)
            self._send(protocol.request(rid, op, **(params or {})))
            deadline = None if timeout is None else time.monotonic() + timeout
            cancel_sent = False
            while True:
                if is_cancelled is not None and not cancel_sent and is_cancelled():
                    self._send({"op": "cancel", "target": rid})
                    cancel_sent = True
                msg = self._next(deadline)
                if msg is None or msg.get("id") != rid:
                    continue
                kind = msg.get("type")
                if kind == "progress" and on_progress:
                    on_progress(int(msg.get("done", 0)), int(msg.get("total", 0)), str(msg.get("message", "")))
                elif kind == "row" and on_row:
                    on_row(msg["data"])
                elif kind == "result":
                    return msg["data"]
                elif kind == "error":
                    raise EngineError(msg["error"])

    def diagnostics(self) -> List[str]:
        return list(self.stderr_tail)


_shared: Optional[EngineClient] = None
_shared_lock = threading.Lock()


def shared_client() -> EngineClient:
    """The session's one worker (the model stays loaded between algorithm runs)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = EngineClient()
        return _shared


def shutdown_shared() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.shutdown()
            _shared = None
