"""One rule for every file a user names: inputs must be regular files, outputs must land in a writable folder.

Why: a FIFO named as a gallery blocks `open()` forever, a device streams without end, a folder raises an
IsADirectoryError deep inside a library. Every reader in the engine (photos, galleries, weights, list files,
configs) goes through `regular_file` / `open_regular` first, and every writer through `check_output`, so the whole
class fails the same way: an error naming the file and the fix, before anything is read or written.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Iterator, Type

from ...shared import atomic
from ...shared.atomic import KILL_ENV, crash_point, fsync_dir, fsync_file, temp_sibling  # noqa: F401 - re-exported
from ..errors import GeoClipError, InputError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def regular_file(path: os.PathLike | str, what: str = "file", hint: str = "check the path",
                 error: Type[GeoClipError] = InputError) -> Path:
    """`path` if it is a readable regular file (symlinks followed), else `error` naming it and the fix."""
    p = Path(path).expanduser()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{what} not found", str(p), hint) from None
    except PermissionError:
        raise error(f"{what}: permission denied", str(p), "make it readable, or copy it somewhere readable") from None
    except OSError as exc:  # too long a name, a loop of links, a bad path
        raise error(f"{what} cannot be read ({exc.strerror or exc})", str(p), hint) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} is {_kind(st.st_mode)}, not a regular file", str(p), hint)
    if not os.access(p, os.R_OK):
        raise error(f"{what}: permission denied", str(p), "make it readable, or copy it somewhere readable")
    return p


def open_regular(path: os.PathLike | str, what: str = "file", hint: str = "check the path", binary: bool = True,
                 error: Type[GeoClipError] = InputError) -> IO:
    """Open a regular file for reading without ever blocking: opened non-blocking and checked with fstat, so a
    FIFO swapped in after `regular_file` is still refused instead of hanging the reader."""
    p = regular_file(path, what, hint, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise error(f"{what} cannot be opened ({exc.strerror or exc})", str(p), hint) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise error(f"{what} is {_kind(st.st_mode)}, not a regular file", str(p), hint)
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb") if binary else open(fd, encoding="utf-8", errors="strict")  # noqa: SIM115


def check_output(path: os.PathLike | str, what: str = "output") -> Path:
    """An output path we may create or replace: its folder exists and is writable, and the path itself is not a
    folder or special file. Checked before any work starts, so no run fails at the end for want of a folder."""
    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{what} folder does not exist", str(parent), "create it first, or choose another folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} folder is not writable", str(parent), "choose a folder you can write to")
    if p.exists() or p.is_symlink():
        try:
            st = os.stat(p)
        except OSError as exc:
            raise InputError(f"{what} cannot be replaced ({exc.strerror or exc})", str(p), "choose another name") \
                from None
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} is {_kind(st.st_mode)}, not a file", str(p), "choose a file name")
        if not os.access(p, os.W_OK):
            raise InputError(f"{what} exists and is read-only", str(p), "choose another name, or make it writable")
    return p


# ---- the one atomic writer (its mechanics: shared/atomic.py, also used by the plugin's side) --------------------
def commit_file(tmp: Path, final: Path, writer: str = "file") -> Path:
    """fsync `tmp`, rename it over `final`, fsync the folder (atomic.replace); a refused rename is an InputError
    naming the output and the fix."""
    try:
        return atomic.replace(tmp, final, writer)
    except OSError as exc:
        raise InputError(f"cannot replace the output ({exc.strerror or exc})", str(final),
                         "close it in any program that has it open, then run again") from exc


@contextlib.contextmanager
def atomic_output(final: os.PathLike | str, writer: str = "file") -> Iterator[Path]:
    """`with atomic_output(path) as tmp:` write the whole file at `tmp`; on success it replaces `path` atomically
    (fsync, rename, fsync the folder), on any error or interrupt `tmp` is removed and `path` is untouched."""
    try:
        with atomic.atomic_path(final, writer, commit=commit_file) as tmp:
            yield tmp
    except atomic.NotWritten:
        raise InputError("the output was not written", str(final), "see the message above") from None
