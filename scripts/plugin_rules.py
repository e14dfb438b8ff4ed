#!/usr/bin/env python3
"""plugins.qgis.org's upload rules, checked on a release zip before anyone uploads it.

    python scripts/plugin_rules.py dist/geoclip_qgis.<version>.zip

The rules follow the site's validator (QGIS-Django, plugins/validator.py): size <= 25 MB, no path tricks, no .pyc,
no __MACOSX/.git/__pycache__ folder, one top folder with __init__.py and metadata.txt, the required metadata,
a valid package name, an author without slashes, http(s) links for tracker/repository/homepage, and LICENSE. Two
more come from its publishing guidelines and current QGIS: no compiled or binary files (executables, shared
libraries, Python bytecode; images and compiled translations are data), and qgisMaximumVersion >= 4.0 to be offered
on QGIS 4 (supportsQt6 is deprecated: neither QGIS 4 nor the site reads it any more).
"""

from __future__ import annotations

import configparser
import io
import re
import sys
import zipfile
from pathlib import Path
from typing import List
from urllib.parse import urlparse

MAX_BYTES = 25_000_000  # the site's PLUGIN_MAX_UPLOAD_SIZE
REQUIRED = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about", "tracker",
            "repository")
FORBIDDEN_DIRS = ("__MACOSX", ".git", "__pycache__")
COMPILED_SUFFIXES = (".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib", ".exe", ".bin", ".o", ".a", ".lib", ".jar",
                     ".class", ".whl", ".egg", ".zip")
# Binary content that is data, not code: images and Qt's compiled translations (QGIS loads .qm files).
BINARY_DATA_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".ico", ".qm")
EXECUTABLE_MAGIC = (b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
PACKAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-_]+$")


def _version(text: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def check_zip(path: Path) -> List[str]:
    """Every rule the zip breaks, as sentences (empty: the site and current QGIS accept it)."""
    problems: List[str] = []
    size = path.stat().st_size
    if size > MAX_BYTES:
        problems.append(f"the zip is {size / 1e6:.1f} MB; plugins.qgis.org takes at most 25 MB")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return problems + ["not a zip file"]
    with zf:
        names = zf.namelist()
        if zf.testzip() is not None:
            problems.append("the zip has a damaged member (CRC error)")
        for name in names:
            parts = name.split("/")
            if ".." in name or name.startswith("/") or "\\" in name:
                problems.append(f"{name}: path information is not allowed")
            for bad in FORBIDDEN_DIRS:
                if bad in parts[:-1] or (bad == parts[-1] and name.endswith("/")):
                    problems.append(f"{name}: a {bad} folder is not allowed")
            if name.endswith("/"):
                continue
            if name.lower().endswith(COMPILED_SUFFIXES):
                problems.append(f"{name}: compiled or binary files are not allowed")
                continue
            head = zf.read(name)[:8192]
            if head.startswith(EXECUTABLE_MAGIC) and not name.lower().endswith(BINARY_DATA_SUFFIXES):
                problems.append(f"{name}: an executable or library (by its first bytes)")
            elif b"\0" in head and not name.lower().endswith(BINARY_DATA_SUFFIXES):
                problems.append(f"{name}: binary content in a file that should be text")
        tops = sorted({n.split("/")[0] for n in names})
        if len(tops) != 1 or not names or "/" not in names[0]:
            return problems + [f"the zip must hold exactly one top folder (found {tops})"]
        package = tops[0]
        if not PACKAGE_NAME.match(package):
            problems.append(f"top folder {package!r}: must start with an ASCII letter and hold only letters, digits,"
                            " '-' and '_'")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{package}/{required}" not in names:
                problems.append(f"{package}/{required} is missing")
        if f"{package}/metadata.txt" not in names:
            return problems
        meta = configparser.ConfigParser(interpolation=None)
        meta.optionxform = str  # the site reads keys case-sensitively
        try:
            meta.read_file(io.StringIO(zf.read(f"{package}/metadata.txt").decode("utf-8")))
        except (UnicodeDecodeError, configparser.Error) as exc:
            return problems + [f"metadata.txt cannot be read: {exc}"]
    if not meta.has_section("general"):
        return problems + ["metadata.txt has no [general] section"]
    g = meta["general"]
    problems += [f"metadata.txt lacks {k}" for k in REQUIRED if not g.get(k, "").strip()]
    if "/" in g.get("author", ""):
        problems.append("author must not contain slashes")
    for key in ("tracker", "repository", "homepage"):
        url = g.get(key, "").strip()
        if url and not (urlparse(url).scheme in ("http", "https") and urlparse(url).netloc):
            problems.append(f"{key} is not an http(s) link: {url!r}")
    icon = g.get("icon", "").strip()
    if icon and f"{package}/{icon.removeprefix('./')}" not in names:
        problems.append(f"icon {icon} is not in the zip")
    for flag in ("experimental", "deprecated", "server"):
        if flag in g and g[flag].strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            problems.append(f"{flag} must be True or False, not {g[flag]!r}")
    if not _version(g.get("qgisMinimumVersion", "")) or _version(g.get("qgisMinimumVersion", "")) < (3, 0):
        problems.append("qgisMinimumVersion must be 3.x or later")
    if _version(g.get("qgisMaximumVersion", "0")) < (4, 0):
        problems.append("qgisMaximumVersion must be 4.0 or later (4.99) to be offered on QGIS 4")
    if "supportsQt6" in g:
        problems.append("supportsQt6 is deprecated (QGIS 4 and plugins.qgis.org use qgisMaximumVersion): drop it")
    return problems


def main() -> int:
    problems = [f"{p}: {msg}" for arg in sys.argv[1:] for p in [Path(arg)] for msg in check_zip(p)]
    print("\n".join(problems) or "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
