"""The one road into QGIS's Log Messages panel (GeoCLIP tab): the worker's log messages with their levels, raw
stderr lines, and the plugin's own notes. QgsMessageLog is thread-safe, so the client's reader threads call it."""

from __future__ import annotations

import re
from typing import Optional, Tuple

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


_PY_WARNING = re.compile(r"^\S.*?\.py:\d+: (\w*Warning): (.*)$")  # warnings.showwarning's first line


class StderrFilter:
    """The worker's stderr as the Log Messages panel shows it: a Python warning as "Category: message" (no code
    path, not the source line that follows it), and each warning once per worker: pyproj's "PROJ data directory
    not found" came twice, as two GeoCLIP warnings."""

    def __init__(self):
        self.seen: set = set()
        self.after_warning = False

    def __call__(self, line: str) -> Optional[Tuple[str, str]]:
        """(text, level) to log, or None to skip the line."""
        m = _PY_WARNING.match(line)
        if m:
            self.after_warning = True
            text, level = f"{m.group(1)}: {m.group(2)}", "warning"
        elif self.after_warning and line[:1] in (" ", "\t"):
            self.after_warning = False  # the source line Python prints under a warning
            return None
        else:
            self.after_warning = False
            text, level = line, stderr_level(line)
        if level == "warning":
            key = re.sub(r"\d+", "#", text.split(":", 1)[-1].strip().lower())
            if key in self.seen:
                return None
            self.seen.add(key)
        return text, level
