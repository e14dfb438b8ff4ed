"""Opening photos the way a camera meant them: EXIF orientation applied, RGB, GPS read, errors by file name."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional, Tuple

from PIL import Image, ImageOps, UnidentifiedImageError

from ...shared import photo_list, protocol
from ..errors import ImageError, InputError
from .files import open_regular, regular_file

log = logging.getLogger("geoclip_qgis")
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
    """A decoded photo ready for CLIP, with the GPS position its EXIF claims, if any, or why it was not used."""

    path: str
    image: Image.Image
    gps: Optional[Tuple[float, float]]
    gps_problem: Optional[str] = None


def _ratio(value) -> float:
    try:
        return float(value)
    except (TypeError, ZeroDivisionError):
        num, den = value
        return float(num) / float(den)


def _letter(value) -> str:
    """An EXIF ASCII tag (str or bytes, NUL-padded) as upper-case text; '' when absent."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").upper()


# axis -> (positive reference letter, negative reference letter, largest magnitude, EXIF tag names)
_AXES = {"latitude": ("N", "S", 90.0, 1, 2), "longitude": ("E", "W", 180.0, 3, 4)}


def _gps_axis(gps: dict, axis: str) -> float:
    """One coordinate from its reference letter and its (degrees, minutes, seconds); ValueError says why not.

    The rule: the reference letter gives the hemisphere (N/E positive, S/W negative). Values are unsigned in the
    EXIF standard, but some writers store signed ones: a negative value with ref S/W is already signed and stays
    negative (−45 with S is −45, never +45); a negative value with ref N/E contradicts itself and is refused.
    Minutes and seconds must lie in [0, 60), every part must be finite, and any other letter is refused."""
    pos, neg, limit, ref_tag, val_tag = _AXES[axis]
    ref = _letter(gps.get(ref_tag))
    if ref not in (pos, neg):
        raise ValueError(f"{axis} reference is {ref!r}, not {pos} or {neg}" if ref else
                         f"no {axis} reference ({pos} or {neg})")
    raw = gps[val_tag]
    parts = list(raw) if isinstance(raw, (tuple, list)) else [raw]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"{axis} has {len(parts)} values, not degrees, minutes, seconds")
    try:
        vals = [_ratio(v) for v in parts]
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"{axis} values {raw!r} are not numbers") from None
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{axis} values {vals} are not finite")
    for name, v in zip(("minutes", "seconds"), vals[1:]):
        if not 0 <= v < 60:
            raise ValueError(f"{axis} {name} {v:g} outside [0, 60)")
    degrees = vals[0]
    if degrees < 0 and ref == pos:
        raise ValueError(f"{axis} {degrees:g} with reference {ref} contradicts itself")
    value = abs(degrees) + sum(v / 60**i for i, v in enumerate(vals[1:], start=1))
    if value > limit:
        raise ValueError(f"{axis} {value:g}° outside ±{limit:g}°")
    return -value if ref == neg else value


def read_gps_exif(exif: Image.Exif) -> Tuple[Optional[Tuple[float, float]], Optional[str]]:
    """((lat, lon), None) from an EXIF GPS block; (None, None) when there is none; (None, reason) when there is
    one that cannot be trusted, so that the caller can report why a photo's GPS was not used."""
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except Exception as exc:  # a damaged IFD: Pillow raises many kinds
        return None, f"unreadable EXIF GPS block ({type(exc).__name__})"
    if not gps or (2 not in gps and 4 not in gps):
        return None, None
    if 2 not in gps or 4 not in gps:
        return None, "EXIF GPS block has only one of latitude and longitude"
    if _letter(gps.get(9)) == "V":
        return None, "the GPS receiver recorded no fix (GPSStatus V)"
    try:
        lat, lon = _gps_axis(gps, "latitude"), _gps_axis(gps, "longitude")
    except ValueError as exc:
        return None, f"EXIF GPS ignored: {exc}"
    if lat == 0 and lon == 0:
        return None, "EXIF GPS is exactly 0, 0 (what cameras without a fix write)"
    return (lat, lon), None


def gps_from_exif(exif: Image.Exif) -> Optional[Tuple[float, float]]:
    """(lat, lon) in degrees from an EXIF GPS IFD, or None when absent or not trustworthy (see read_gps_exif)."""
    return read_gps_exif(exif)[0]


def read_gps(path: os.PathLike | str) -> Optional[Tuple[float, float]]:
    """EXIF GPS of a file without decoding its pixels; None when unreadable, absent or not trustworthy."""
    try:
        with open_regular(path, "photo", error=ImageError) as fh, Image.open(fh) as im:
            return gps_from_exif(im.getexif())
    except Exception:
        return None


_EXIF_IFD = 0x8769
# (time tag, its offset tag): DateTimeOriginal first (when the shutter fired), then DateTimeDigitized, then IFD0's
# DateTime (last modified in camera: what phones without the others write).
_TIME_TAGS = ((0x9003, 0x9011), (0x9004, 0x9012), (0x0132, 0x9010))


def _exif_time(text, offset) -> datetime:
    """'YYYY:MM:DD HH:MM:SS' (+ an OffsetTime '+HH:MM'): aware when the offset is readable, else naive (the camera
    clock's local time). ValueError when the text is no time (blank, '0000:00:00 00:00:00')."""
    when = datetime.strptime(_letter(text)[:19], "%Y:%m:%d %H:%M:%S")
    off = _letter(offset)
    if len(off) == 6 and off[0] in "+-" and off[3] == ":":
        minutes = int(off[1:3]) * 60 + int(off[4:6])
        if minutes <= 14 * 60:
            when = when.replace(tzinfo=timezone(timedelta(minutes=-minutes if off[0] == "-" else minutes)))
    return when


def read_time_exif(exif: Image.Exif) -> Tuple[Optional[datetime], Optional[str]]:
    """(when the photo was taken, None); (None, None) when EXIF holds no time; (None, reason) when it holds one that
    cannot be read. Aware (UTC offset known, EXIF 2.31 OffsetTimeOriginal) or naive (the camera's local clock)."""
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception as exc:  # a damaged IFD: Pillow raises many kinds
        sub, problem = {}, f"unreadable EXIF block ({type(exc).__name__})"
    else:
        problem = None
    for tag, off_tag in _TIME_TAGS:
        text = exif.get(tag) if tag == 0x0132 else sub.get(tag)
        if text is None:
            continue
        try:
            return _exif_time(text, sub.get(off_tag)), None
        except (ValueError, TypeError, UnicodeError):
            problem = f"EXIF time {_letter(text)[:19]!r} is not a date and time"
    return None, problem


def read_taken_at(path: os.PathLike | str) -> Tuple[Optional[datetime], Optional[str]]:
    """A file's EXIF capture time without decoding its pixels (read_time_exif); (None, reason) when unreadable."""
    try:
        with open_regular(path, "photo", error=ImageError) as fh, Image.open(fh) as im:
            return read_time_exif(im.getexif())
    except Exception as exc:
        return None, f"EXIF unreadable ({type(exc).__name__})"


_PHOTO_HINT = "check the path; give photo files (JPEG, PNG, TIFF, WebP, HEIC), or a folder as a folder input"


def file_sha256(path: os.PathLike | str) -> Optional[str]:
    """The file's SHA-256 (hex), the fingerprint a case report cites; None when it cannot be read again. Hashed on
    the decoding threads, next to the decode (the file is then in the page cache), never on QGIS's side."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open_regular(path, "photo", error=ImageError) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except (OSError, ImageError):
        return None
    return digest.hexdigest()


def check_pixels(im: Image.Image, name: str) -> None:
    """Refuse an image over Pillow's pixel limit before its pixels are decoded (a decompression bomb), by its
    size. Not by turning Pillow's DecompressionBombWarning into an error: warning filters are process-wide and
    warnings.catch_warnings is not thread-safe, so the decode threads restored each other's filters and a bomb
    between one and two times the limit was sometimes decoded (a flaky test showed it)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and im.width * im.height > limit:
        raise ImageError(
            f"image is too large to decode safely ({im.width} x {im.height} = {im.width * im.height:,} pixels)",
            name,
            f"Pillow's limit is {limit} pixels; downscale the photo first",
        )


def load_photo(path: os.PathLike | str) -> Photo:
    """Decode `path` fully, upright and RGB; every failure is an ImageError naming the file and the fix. Only a
    regular file is opened (core.files): a FIFO, a device or a folder is refused by what it is, never read."""
    p = Path(path)
    name = str(p)
    if p.suffix.lower() in {".heic", ".heif"} and not HEIF_SUPPORTED:
        regular_file(p, "photo", _PHOTO_HINT, error=ImageError)
        raise ImageError(
            "HEIC/HEIF photos need the optional pillow-heif package",
            name,
            "install pillow-heif in the engine's Python, or convert the photo to JPEG",
        )
    fh = open_regular(p, "photo", _PHOTO_HINT, error=ImageError)
    try:
        if os.fstat(fh.fileno()).st_size == 0:
            raise ImageError("file is empty (0 bytes)", name, "re-copy the photo from its source")
        with Image.open(fh) as im:
            check_pixels(im, name)
            try:
                gps, gps_problem = read_gps_exif(im.getexif())
            except Exception as exc:  # a damaged EXIF block costs the GPS, never the photo
                gps, gps_problem = None, f"unreadable EXIF ({type(exc).__name__})"
            im.load()
            upright = ImageOps.exif_transpose(im)
            rgb = _to_rgb(upright)
    except Image.DecompressionBombError as exc:  # over twice the limit: Pillow's open refuses it itself
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
    finally:
        fh.close()
    return Photo(path=name, image=rgb, gps=gps, gps_problem=gps_problem)


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


def list_photos(folder: os.PathLike | str, recursive: bool = False, skipped: Optional[List] = None) -> List[str]:
    """The one listing rule (shared/photo_list.py), with a folder that cannot be listed as an ImageError."""
    try:
        return photo_list.list_photos(folder, recursive, skipped)
    except photo_list.ListingError as exc:
        raise ImageError(str(exc), exc.path, exc.hint) from None


def collect_photos(inputs: List[str], recursive: bool, list_file: Optional[str]) -> List[str]:
    """The one photo-list rule (shared/photo_list.collect): list-file lines, files as given, folders expanded, each
    file once however it is spelled; whatever it skips or merges is said."""
    from .files import open_regular

    text = None
    if list_file:
        hint = "give a UTF-8 text file with one photo path per line"
        with open_regular(list_file, "list file", hint) as fh:
            try:
                text = fh.read().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise InputError(f"list file is not UTF-8 text ({exc.reason} at byte {exc.start})", list_file,
                                 hint) from None
    notes: List[str] = []
    try:
        unique = photo_list.collect(inputs, recursive, text, Path(list_file).parent if list_file else ".",
                                    notes=notes)
    except photo_list.ListingError as exc:
        raise InputError(str(exc), exc.path, exc.hint) from None
    for note in notes:
        logging.warning("%s", note)
    if not unique:
        raise InputError("no photos to geolocate", hint="give photo files, a folder with photos, or --list FILE")
    return unique
