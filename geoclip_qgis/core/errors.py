"""Errors the engine raises on purpose: each names the file at fault and says what to do."""

from __future__ import annotations

from typing import Optional


class GeoClipError(Exception):
    """A failure a user can act on; `path` is the file at fault and `hint` the fix."""

    code = "error"

    def __init__(self, message: str, path: Optional[str] = None, hint: Optional[str] = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        text = message
        if self.path and self.path not in message:
            text = f"{self.path}: {message}"
        if hint:
            text = f"{text} — {hint}"
        super().__init__(text)

    def __reduce__(self):  # pickled whole (message, path, hint): Ray hands an actor's error back to the driver
        return type(self), (self.message, self.path, self.hint)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": str(self), "path": self.path, "hint": self.hint}


class WeightsError(GeoClipError):
    code = "weights"


class BackboneError(GeoClipError):
    code = "backbone"


class ImageError(GeoClipError):
    code = "image"


class InputError(GeoClipError):
    code = "input"


class BudgetError(GeoClipError):
    """A request that would not fit in memory; refused before anything is allocated."""

    code = "budget"


class NetworkError(GeoClipError):
    """The model host cannot be reached (no network, DNS, proxy, TLS, a dropped connection that never came back)."""

    code = "network"


class DownloadError(GeoClipError):
    """The host answered, but not with what we need (missing repo/revision/file, a server error)."""

    code = "download"


class ChecksumError(DownloadError):
    code = "checksum"


class DiskSpaceError(DownloadError):
    code = "disk"
