"""Opening photos the way a camera meant them: EXIF orientation applied, RGB, GPS read, errors by file name."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from PIL import Image, ImageOps, UnidentifiedImageError

from . import protocol
from .errors import ImageError

IMAGE_SUFFIXES = set(protocol.IMAGE_SUFFIXES)
_GPS_IFD = 0x8825


def _register_heif() -> bool:
    try:
        from pillow_heif import register_heif_opener  # optional
    except ImportError:
        return False
    register_heif_opener()
    return True


HEIF_SUPPORTED = _register_heif()


@dataclass
class Photo:
    """A decoded photo ready for CLIP, with the GPS position its EXIF claims, if any."""

    path: str
    image: Image.Image
    gps: Optional[Tuple[float, float]]


def _ratio(value) -> float:
    try:
        return float(value)
    except (TypeError, ZeroDivisionError):
        num, den = value
        return float(num) / float(den)


def gps_from_exif(exif: Image.Exif) -> Optional[Tuple[float, float]]:
    """(lat, lon) in degrees from an EXIF GPS IFD, or None when absent or malformed."""
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:
        return None
    if not gps or 2 not in gps or 4 not in gps:
        return None
    try:
        lat = sum(_ratio(v) / 60**i for i, v in enumerate(gps[2]))
        lon = sum(_ratio(v) / 60**i for i, v in enumerate(gps[4]))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if str(gps.get(1, "N")).upper().startswith("S"):
        lat = -lat
    if str(gps.get(3, "E")).upper().startswith("W"):
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon


def read_gps(path: os.PathLike | str) -> Optional[Tuple[float, float]]:
    """EXIF GPS of a file without decoding its pixels; None when unreadable or absent."""
    try:
        with Image.open(path) as im:
            return gps_from_exif(im.getexif())
    except Exception:
        return None


def load_photo(path: os.PathLike | str) -> Photo:
    """Decode `path` fully, upright and RGB; every failure is an ImageError naming the file and the fix."""
    p = Path(path)
    name = str(p)
    if not p.exists():
        raise ImageError("file not found", name, "check the path, or remove it from the list")
    if p.is_dir():
        raise ImageError("is a folder, not a photo", name, "pass the photos inside it, or use a folder input")
    if not os.access(p, os.R_OK):
        raise ImageError("permission denied", name, "make the file readable (chmod +r) or copy it elsewhere")
    if p.stat().st_size == 0:
        raise ImageError("file is empty (0 bytes)", name, "re-copy the photo from its source")
    if p.suffix.lower() in {".heic", ".heif"} and not HEIF_SUPPORTED:
        raise ImageError(
            "HEIC/HEIF photos need the optional pillow-heif package",
            name,
            "install pillow-heif in the engine's Python, or convert the photo to JPEG",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                exif = im.getexif()
                gps = gps_from_exif(exif)
                im.load()
                upright = ImageOps.exif_transpose(im)
                rgb = _to_rgb(upright)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"image is too large to decode safely ({exc})",
            name,
            f"Pillow's limit is {Image.MAX_IMAGE_PIXELS} pixels; downscale the photo first",
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            "not a readable image (unknown format, or not an image at all)",
            name,
            "check the file is really a photo (JPEG, PNG, TIFF, WebP)",
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
            f"image is corrupt or truncated ({exc})", name, "re-copy the photo from its source"
        ) from exc
    return Photo(path=name, image=rgb, gps=gps)


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB for CLIP: alpha is composited on white, 16-bit and float images are rescaled, CMYK converted."""
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.astype("uint8"), "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def list_photos(folder: os.PathLike | str, recursive: bool = False) -> list:
    """Image files in `folder`, sorted for a stable batch order (resume depends on it)."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError("folder does not exist", str(root), "check the path")
    pattern = "**/*" if recursive else "*"
    return sorted(str(p) for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
