"""Which files a run reads as photos: ONE rule for the CLI, the worker, the Ray batch, the dock and Processing.

Standard library only, so the QGIS side lists a folder exactly as the engine does (before this module there were
four listings, and the CLI and QGIS could read the same folder differently). It answers what to read, never whether
a file is a readable image: a file with a photo suffix that is not a regular file (a FIFO, a broken link) is listed,
so the engine reports it by name instead of its vanishing from the batch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

log = logging.getLogger("geoclip_qgis")

IMAGE_SUFFIXES: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".heic",
                                   ".heif")
Skipped = List[Tuple[str, str]]


class ListingError(ValueError):
    """A folder or list file that cannot be listed at all (the engine turns it into its own input error)."""

    def __init__(self, message: str, path: str, hint: str = "") -> None:
        super().__init__(message)
        self.path, self.hint = path, hint


def is_photo_name(path: os.PathLike | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_photos(folder: os.PathLike | str, recursive: bool = False, skipped: Optional[Skipped] = None) -> List[str]:
    """Files in `folder` with a photo suffix (any case), sorted for a stable batch order (resume depends on it).

    Recursively, links to folders are followed, but each real folder (device, inode) is listed once: a link loop or
    a second link to a folder already listed is skipped, never walked again. Whatever is skipped is logged and
    appended to `skipped` as (path, reason)."""
    root = Path(folder)
    if not root.is_dir():
        raise ListingError("folder does not exist" if not root.exists() else "is not a folder", str(root),
                           "check the path")
    found: List[str] = []
    seen: dict = {}

    def skip(path: Path, reason: str) -> None:
        log.warning("%s: skipped, %s", path, reason)
        if skipped is not None:
            skipped.append((str(path), reason))

    stack = [root]
    while stack:
        folder_now = stack.pop()
        try:
            st = os.stat(folder_now)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                skip(folder_now, f"the same folder as {seen[key]} (through a symbolic link), listed once")
                continue
            seen[key] = folder_now
            entries = list(os.scandir(folder_now))
        except OSError as exc:
            skip(folder_now, f"the folder cannot be read ({exc.strerror or exc})")
            continue
        subfolders = []
        for entry in entries:
            path = folder_now / entry.name
            try:
                is_dir = entry.is_dir()  # follows links; False for a broken one
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(path)
            elif is_photo_name(path):
                found.append(str(path))
        if recursive:
            stack.extend(sorted(subfolders, reverse=True))
    return sorted(found)


def read_list_file(text: str, base: os.PathLike | str, notes: Optional[List[str]] = None) -> List[str]:
    """The photo paths of a list file's text, one per line, relative ones against `base` (the list's folder).

    A line is taken as written (only its line break is removed), so ' spaced.jpg' keeps its space; blank lines are
    skipped. A line starting with '#' is a comment, unless a file of exactly that name exists. Where a name with
    leading or trailing spaces does not exist but the trimmed one does, the trimmed one is read and said. Every
    skipped comment is counted in `notes`, so nothing vanishes without a word."""
    out: List[str] = []
    comments = 0
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        path = Path(line) if os.path.isabs(line) else Path(base) / line
        if line.startswith("#") and not os.path.lexists(path):
            comments += 1
            continue
        if not os.path.lexists(path) and line != line.strip():
            trimmed = line.strip()
            alt = Path(trimmed) if os.path.isabs(trimmed) else Path(base) / trimmed
            if os.path.lexists(alt):
                if notes is not None:
                    notes.append(f"{line!r}: no such file; read {trimmed!r} (spaces trimmed)")
                path = alt
        out.append(str(path))
    if comments and notes is not None:
        notes.append(f"{comments} comment line(s) starting with '#' skipped")
    return out


def path_key(path: os.PathLike | str) -> str:
    """One written form of a path (absolute, ~ expanded, links resolved, case as the OS compares it): the key a
    file is stored under (the run journal's sources), stable across runs where an inode is not."""
    return os.path.normcase(os.path.realpath(os.path.expanduser(os.fspath(path))))


def identity(path: os.PathLike | str) -> Tuple:
    """One key per file however it is spelled (./a.jpg, a link to it, another case on a case-insensitive disk):
    (device, inode) when it exists, else its path_key."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", path_key(path))


def unique(paths: Iterable[str], notes: Optional[List[str]] = None) -> List[str]:
    """`paths` with each file once (by identity), in first-seen order; each duplicate is said in `notes`."""
    seen: dict = {}
    out: List[str] = []
    for p in paths:
        key = identity(p)
        if key in seen:
            if notes is not None:
                notes.append(f"{p}: the same file as {seen[key]}, read once")
            continue
        seen[key] = p
        out.append(p)
    return out


def collect(inputs: Iterable[str], recursive: bool = False, list_text: Optional[str] = None,
            list_base: os.PathLike | str = ".", skipped: Optional[Skipped] = None,
            notes: Optional[List[str]] = None) -> List[str]:
    """Every front door's photo list: list-file lines first, then files as given and folders expanded, each file
    once. A folder with no photos is said in `notes`."""
    items: List[str] = []
    if list_text is not None:
        items.extend(read_list_file(list_text, list_base, notes))
    for item in inputs:
        if os.path.isdir(item):
            found = list_photos(item, recursive, skipped)
            if not found and notes is not None:
                notes.append(f"{item}: no photos found in this folder"
                             + ("" if recursive else " (sub-folders are read when recursive)"))
            items.extend(found)
        else:
            items.append(str(item))
    return unique(items, notes)
