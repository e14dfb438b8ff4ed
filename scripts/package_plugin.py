#!/usr/bin/env python3
"""Build the release zip: one folder, geoclip_qgis/, exactly as QGIS's plugin installer expects it."""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "geoclip_qgis"
REQUIRED = ("name", "description", "about", "version", "qgisMinimumVersion", "author", "email", "tracker",
            "repository", "tags", "icon")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".partial", ".tmp"}


def check_metadata() -> configparser.ConfigParser:
    meta = configparser.ConfigParser()
    meta.read(PLUGIN / "metadata.txt", encoding="utf-8")
    missing = [k for k in REQUIRED if not meta.get("general", k, fallback="").strip()]
    if missing:
        raise SystemExit(f"metadata.txt lacks: {', '.join(missing)}")
    if not (PLUGIN / meta.get("general", "icon")).is_file():
        raise SystemExit(f"metadata.txt names icon {meta.get('general', 'icon')}, which does not exist")
    return meta


def build(out_dir: Path) -> Path:
    meta = check_metadata()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"geoclip_qgis-{meta.get('general', 'version')}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PLUGIN.rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_dir() or SKIP_DIRS & set(rel.parts) or path.suffix in SKIP_SUFFIXES:
                continue
            zf.write(path, rel.as_posix())
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "dist"))
    target = build(Path(ap.parse_args().out))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
