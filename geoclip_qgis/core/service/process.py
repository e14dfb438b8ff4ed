"""The worker process around core/service/worker.Worker: requests read on a thread (so a cancel arrives mid-job), run
one at a time, the parent watched (the worker exits when QGIS is gone), heartbeats for the client's liveness check,
and every engine log record sent as a protocol `log` message with its level."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Optional

from ...shared import protocol
from ...shared.protocol import PARENT_ENV

GRACE_SECONDS = 5.0  # after stdin closes or the parent dies: time for the running job to stop by itself


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


def serve(stdin, out, parent_pid: Optional[int] = None, grace: float = GRACE_SECONDS,
          make_worker: Optional[Callable[[Callable[[Dict[str, Any]], None]], Any]] = None) -> int:
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

    if make_worker is None:  # the worker module hands itself in (worker.serve); this module never imports it
        raise TypeError("serve() needs make_worker (core/service/worker.Worker)")
    worker = make_worker(send)
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


def main(make_worker: Callable[[Callable[[Dict[str, Any]], None]], Any]) -> int:
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
    return serve(sys.stdin.buffer, proto_out, parent_pid, make_worker=make_worker)
