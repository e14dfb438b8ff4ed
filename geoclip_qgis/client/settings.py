"""THE plugin settings store (QgsSettings under `geoclip/`), for the worker client, the dock, the manager, the
Settings dialog and Processing alike: one prefix, one table of defaults, one typed reader. Before, the client and
the GUI each had a reader with its own defaults."""

from __future__ import annotations

from typing import Any, Dict

PREFIX = "geoclip"
DEFAULTS: Dict[str, Any] = {
    "engine_python": "", "device": "auto", "precision": "auto", "clip_path": "", "weights": "", "gallery": "default",
    "cache_dir": "", "top_k": 5, "background_fields": "on",
    "trip_speed_kmh": 900,  # a trip's fastest travel between two photos (core/answers/trip.py's default)
}


def _store():
    try:
        from qgis.core import QgsSettings
    except ImportError:  # outside QGIS (a test of the client alone): the defaults
        return None
    return QgsSettings()


def get(key: str, default: Any = None) -> Any:
    """The setting, typed like its default (an int stays an int whatever QgsSettings stored); the table's default
    when unset, else `default`."""
    fallback = DEFAULTS.get(key, default) if default is None else default
    store = _store()
    value = fallback if store is None else store.value(f"{PREFIX}/{key}", fallback)
    if isinstance(fallback, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if isinstance(fallback, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            return fallback
    return value if value is not None else fallback


def put(key: str, value: Any) -> None:
    store = _store()
    if store is not None:
        store.setValue(f"{PREFIX}/{key}", value)


def remove_all() -> None:
    """Forget every GeoCLIP setting (uninstall, tests)."""
    store = _store()
    if store is not None:
        store.remove(PREFIX)
