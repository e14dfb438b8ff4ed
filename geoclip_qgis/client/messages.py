"""The engine's errors as an analyst in QGIS reads them.

The engine speaks to command-line users too ("name its folder with --clip-path", "geoclip-qgis field",
"see shared/protocol.py"). Inside QGIS that advice is wrong: the fix is a Settings field or a manager button. This
turns each error the worker sends into a short message that fits the message bar and names the QGIS action that
fixes it; the engine's own words stay in `details` (the bar's "More" button, the log), minus code paths.
"""

from __future__ import annotations

import re
from typing import Any, Dict

MANAGER = "Plugins › GeoCLIP › Engine and models…"
SETTINGS = "Plugins › GeoCLIP › Settings…"
LOG_PANEL = "View › Panels › Log Messages (GeoCLIP tab)"
BAR_CHARS = 160  # what QGIS's message bar shows on one line at a usual window width

_CODE_PATH = re.compile(r"\s*[;(]?\s*see [\w./]+\.py\)?|\b(?:[\w-]+/)+[\w-]+\.py\b")
_CLI = re.compile(r"`?geoclip-qgis [^`;)]*`?|--[a-z][\w-]+(?: [^\s,;)]+)?|\$?GEOCLIP_[A-Z_]+")


def _no_cli(text: str) -> str:
    """Text with its command-line syntax and code paths taken out."""
    text = _CODE_PATH.sub("", text)
    return re.sub(r"\s{2,}", " ", _CLI.sub("", text)).strip(" ;,")


def for_analysts(error: Dict[str, Any]) -> Dict[str, Any]:
    """The worker's error (code, message, path, hint) with a message and hint for QGIS; `details` keeps what the
    engine said (for "More" and the log). Unknown errors keep their words, cleaned of CLI syntax and code paths."""
    info = dict(error)
    message = str(error.get("message") or "")
    hint = str(error.get("hint") or "")
    blob = f"{message} {hint}"
    low = blob.lower()
    info["details"] = blob.strip() if hint else message
    if "no module named 'torch'" in low or "no module named torch" in low or error.get("code") == "not_installed":
        info.update(code="not_installed", message="The engine's Python has no PyTorch.",
                    hint=f"Fix: {MANAGER} › Install engine, or choose an engine Python with PyTorch in {SETTINGS}")
    elif error.get("code") == "backbone" or "--clip-path" in blob:
        text = _no_cli(message)
        info.update(message=(text[:1].upper() + text[1:]).rstrip(".") + ".",
                    hint=f"Fix: set the CLIP folder in {SETTINGS}, or click Download CLIP in {MANAGER}")
    elif "geoclip-qgis field" in blob or "no location field" in low:
        info.update(message=_no_cli(message),
                    hint=f"Fix: click Build world field in {MANAGER}, or choose another resolution")
    elif "protocol" in low:
        param = error.get("path") or ""
        info.update(message=f"GeoCLIP refused the value of {param}: {_no_cli(message)}" if param
                    else f"GeoCLIP refused this request: {_no_cli(message)}",
                    hint="Check that parameter; if it looks right, report it with Copy diagnostics in " + MANAGER)
    else:
        info.update(message=_no_cli(message), hint=_no_cli(hint))
    return info


def crash_error(exit_code: Any, tail: str) -> Dict[str, Any]:
    """A worker that died: what happened and what to do, never "exit code None"; its last lines are details."""
    if "no module named 'torch'" in tail.lower():
        return for_analysts({"code": "not_installed", "message": "No module named 'torch'", "hint": tail})
    how = f" (exit code {exit_code})" if isinstance(exit_code, int) else ""
    return {"code": "crashed", "message": f"The GeoCLIP engine stopped unexpectedly{how}.",
            "hint": f"It starts again on the next run; its last messages are in {LOG_PANEL}.",
            "details": tail.strip() or "The engine printed nothing before it stopped."}


def bar_text(info: Dict[str, Any]) -> str:
    """One line for the message bar: the message and its fix, cut to BAR_CHARS at a word."""
    text = " ".join(p for p in (str(info.get("message") or ""), str(info.get("hint") or "")) if p).replace("\n", " ")
    if len(text) <= BAR_CHARS:
        return text
    return text[:BAR_CHARS].rsplit(" ", 1)[0] + "…"


def ran_on_parts(ran_on: Any) -> tuple:
    """(device, precision, reason) of a finished request's `ran_on` (the worker's: core/model/engine.ran_on), as the
    dock's status line and Processing's log say them: the device in capitals, the reason without the precision's
    name in front (the engine's reasons start with it). Empty strings when the worker said nothing."""
    if not isinstance(ran_on, dict):
        return "", "", ""
    precision = str(ran_on.get("precision") or "")
    reason = str(ran_on.get("precision_reason") or ran_on.get("device_reason") or "")
    if precision and reason.startswith(precision + ": "):
        reason = reason[len(precision) + 2:]
    return str(ran_on.get("device") or "").upper(), precision, reason
