"""GeoCLIP for QGIS.

metadata.txt is the one source of the version (QGIS's plugin manager and plugins.qgis.org read it there); the
package and pyproject.toml (setuptools' dynamic version) read it from here. Standard library only: the engine's
Python imports this too.
"""

from __future__ import annotations

import configparser
from pathlib import Path


def _metadata_version() -> str:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(Path(__file__).resolve().parent / "metadata.txt", encoding="utf-8")
    return meta.get("general", "version", fallback="0+unknown")


__version__ = _metadata_version()


def classFactory(iface):  # noqa: N802 - QGIS plugin entry point
    from .plugin import GeoClipPlugin

    return GeoClipPlugin(iface)
