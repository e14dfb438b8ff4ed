#!/usr/bin/env python3
"""Build the release zip the way qgis-plugin-ci lays one out: one top folder, geoclip_qgis/, holding metadata.txt,
the repository's LICENSE and the compiled translations (.qm), and no caches, tests or translation sources.

    python scripts/package_plugin.py [--out dist]

metadata.txt is the one source of the version; the build stops when CHANGELOG.md has no section for it or when a
translation has not been compiled (scripts/update_translations.py).
"""

from __future__ import annotations

import argparse
import configparser
import re
import sys
import zipfile
from pathlib import Path
from typing import Iterator, Tuple

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "geoclip_qgis"
LICENSE = ROOT / "LICENSE"
CHANGELOG = ROOT / "CHANGELOG.md"
# What plugins.qgis.org requires in metadata.txt, and what QGIS 4 reads to offer the plugin at all.
REQUIRED = ("name", "description", "about", "version", "qgisMinimumVersion", "qgisMaximumVersion", "supportsQt6",
            "author", "email", "tracker", "repository", "tags", "icon", "license")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", "tests", "test"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".partial", ".tmp", ".ts", ".orig", ".rej"}


def check_metadata() -> configparser.ConfigParser:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(PLUGIN / "metadata.txt", encoding="utf-8")
    missing = [k for k in REQUIRED if not meta.get("general", k, fallback="").strip()]
    if missing:
        raise SystemExit(f"metadata.txt lacks: {', '.join(missing)}")
    if not (PLUGIN / meta.get("general", "icon")).is_file():
        raise SystemExit(f"metadata.txt names icon {meta.get('general', 'icon')}, which does not exist")
    version = meta.get("general", "version")
    if not re.search(rf"^## \[{re.escape(version)}\]", CHANGELOG.read_text(encoding="utf-8"), re.M):
        raise SystemExit(f"CHANGELOG.md has no '## [{version}]' section for the version in metadata.txt")
    if not LICENSE.is_file():
        raise SystemExit("LICENSE is missing: plugins.qgis.org requires it in the zip")
    for ts in (PLUGIN / "i18n").glob("*.ts"):
        qm = ts.with_suffix(".qm")
        if not qm.is_file():
            raise SystemExit(f"{qm.relative_to(ROOT)} is missing: run scripts/update_translations.py")
    return meta


def members() -> Iterator[Tuple[Path, str]]:
    """(file on disk, name in the zip) for everything the zip holds."""
    for path in sorted(PLUGIN.rglob("*")):
        rel = path.relative_to(ROOT)
        if path.is_dir() or SKIP_DIRS & set(rel.parts) or path.suffix in SKIP_SUFFIXES:
            continue
        yield path, rel.as_posix()
    if not (PLUGIN / "LICENSE").exists():
        yield LICENSE, f"{PLUGIN.name}/LICENSE"


def build(out_dir: Path) -> Path:
    meta = check_metadata()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN.name}-{meta.get('general', 'version')}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, name in members():
            zf.write(path, name)
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "dist"))
    target = build(Path(ap.parse_args().out))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
