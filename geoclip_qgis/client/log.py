"""The one road into QGIS's Log Messages panel (GeoCLIP tab): the worker's log messages with their levels, raw
stderr lines, and the plugin's own notes. QgsMessageLog is thread-safe, so the client's reader threads call it."""

from __future__ import annotations

LOG_TAG = "GeoCLIP"  # the Log Messages panel's tab


def log_message(text: str, level: str = "info") -> None:
    """One line to QGIS's Log Messages panel, GeoCLIP tab (QgsMessageLog is thread-safe: the reader threads call
    it); outside QGIS (the CLI, tests without QGIS) nothing happens."""
    try:
        from qgis.core import Qgis, QgsMessageLog
    except ImportError:
        return
    levels = {"debug": Qgis.MessageLevel.Info, "info": Qgis.MessageLevel.Info, "warning": Qgis.MessageLevel.Warning,
              "critical": Qgis.MessageLevel.Critical, "error": Qgis.MessageLevel.Critical}
    QgsMessageLog.logMessage(text, LOG_TAG, levels.get(level, Qgis.MessageLevel.Info), False)


def stderr_level(line: str) -> str:
    """The level of a raw stderr line, which carries only what is not the engine's own logging (that arrives as
    protocol `log` messages with their level): C libraries' output, and a crash's traceback (critical)."""
    low = line.lower()
    if "traceback" in low or "error" in low or "exception" in low:
        return "critical"
    return "warning" if "warn" in low else "info"
