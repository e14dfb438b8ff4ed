"""The one atomic writer's mechanics, for both wings (standard library only): every file we produce, the engine's
outputs and caches as well as the plugin's PDF reports and the downloader's files, is written under a temporary
name of its own beside the target, fsynced, renamed over it, and the folder fsynced.

Why one home: a kill, a power cut or a full disk at any moment must leave the old file or the new one, never a
torn one, never neither, and a temporary name must never be one a user's file can have or two writers can share.
Each writer that did this on its own got one step wrong (a fixed ``.partial.pdf`` name that deleted a user's file
of that name, a rename without fsync). core/io/files.py adds the engine's error messages on top of this.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional


class NotWritten(FileNotFoundError):
    """The writer inside atomic_path returned without creating its temporary file."""


KILL_ENV = "GEOCLIP_KILL_AT"  # tests only: "writer:point" SIGKILLs this process there (see tests/test_kill_matrix.py)


def crash_point(writer: str, point: str) -> None:
    """A named point inside a writer where the kill tests SIGKILL the process, to show that a kill at any moment
    leaves the old file or the new one. Costs one environment look-up when unset."""
    want = os.environ.get(KILL_ENV)
    if want and want in (f"{writer}:{point}", f"*:{point}"):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


TAGS = ("tmp", "partial", "cog")  # the tags our writers give temp_sibling: the only names the sweep may remove


def temp_sibling(final: os.PathLike | str, tag: str = "tmp") -> Path:
    """A name of our own next to `final` (same folder, so the rename is atomic), unique per process and call, so
    concurrent writers of one output never share a temporary file; the real suffix is kept for GDAL and PIL."""
    if tag not in TAGS:
        raise ValueError(f"temporary tag {tag!r} is not one sweep_temporaries knows: add it to TAGS")
    p = Path(final)
    return p.with_name(f".{p.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{tag}{p.suffix}")


STALE_S = 3600.0  # untouched this long: a writer on another host (a shared folder) or in another process namespace
# (whose pid this machine cannot see) has not been writing it for an hour, so it is no live writer's


def sweep_temporaries(final: os.PathLike | str, stale_s: float = STALE_S) -> int:
    """Remove the temporary files (temp_sibling's names, our tags only) that killed writers of `final` left
    beside it: those whose process is gone and that nobody has written for `stale_s`. A live writer's file and
    every other name are left alone. Returns how many."""
    p = Path(final)
    pattern = re.compile(rf"^\.{re.escape(p.stem)}\.(\d{{1,10}})\.[0-9a-f]{{8}}\.(?:{'|'.join(TAGS)})"
                         rf"{re.escape(p.suffix)}$")
    removed = 0
    try:
        names = os.listdir(p.parent if str(p.parent) else ".")
    except OSError:
        return 0
    now = time.time()
    for name in names:
        m = pattern.match(name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            if now - os.stat(p.with_name(name)).st_mtime >= stale_s:
                os.unlink(p.with_name(name))
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    if os.name == "nt":  # no signal 0 there: leave it (a stale hidden file, never a lost one)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # another user's process, or no pid at all: leave it
        return True
    return True


def fsync_file(path: os.PathLike | str) -> None:
    """fsync a closed file by name. Windows' fsync (FlushFileBuffers) needs a handle open for writing."""
    fd = os.open(path, (os.O_RDWR if os.name == "nt" else os.O_RDONLY) | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: os.PathLike | str) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace(tmp: os.PathLike | str, final: os.PathLike | str, writer: str = "file", keep: bool = False) -> Path:
    """fsync `tmp`, rename it over `final`, fsync the folder: the rename is the only moment `final` changes.
    On failure the OSError is raised, `final` is as it was and `tmp` is removed (kept with `keep`: a verified
    download worth gigabytes is renamed again next time, not fetched again)."""
    tmp, final = Path(tmp), Path(final)
    try:
        crash_point(writer, "before-fsync")
        fsync_file(tmp)
        crash_point(writer, "before-rename")
        os.replace(tmp, final)
    except BaseException:
        if not keep:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    crash_point(writer, "after-rename")
    fsync_dir(final.parent if str(final.parent) else ".")
    return final


@contextlib.contextmanager
def atomic_path(final: os.PathLike | str, writer: str = "file", tag: str = "tmp",
                commit: Optional[Callable[[Path, Path, str], Path]] = None) -> Iterator[Path]:
    """`with atomic_path(path) as tmp:` write the whole file at `tmp`; on success it replaces `path` (fsync,
    rename, fsync the folder; or `commit(tmp, final, writer)`), on any error or interrupt `tmp` is removed and
    `path` is untouched. Temporaries that killed writers of `path` left are swept first."""
    final = Path(final)
    sweep_temporaries(final)
    tmp = temp_sibling(final, tag)
    crash_point(writer, "start")
    try:
        yield tmp
        if not tmp.exists():
            raise NotWritten(f"{final}: the output was not written")
        crash_point(writer, "written")
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    (commit or replace)(tmp, final, writer)


def write_bytes(final: os.PathLike | str, data: bytes, writer: str = "file") -> Path:
    """Replace `final` with `data` atomically and durably (small files: metadata, references)."""
    with atomic_path(final, writer) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(final)


def write_text(final: os.PathLike | str, text: str, writer: str = "file") -> Path:
    return write_bytes(final, text.encode("utf-8"), writer)
