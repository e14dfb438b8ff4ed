"""Small maps for a case report, drawn with Pillow and no internet: the gallery's own 100,000 points are the land
(GeoCLIP's gallery is where photos are taken, so its points draw the inhabited world), a photo's likelihood is its
90 % gallery points coloured by probability (core/answers/support.py), its places are numbered rings and the
photo's EXIF GPS position is a blue cross.

Plate carrée, degrees to pixels linearly: a report's map must be read, not measured."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

Extent = Tuple[float, float, float, float]  # W, S, E, N
WORLD: Extent = (-180.0, -90.0, 180.0, 90.0)
SEA = (236, 242, 248)
LAND = (150, 156, 150)
GPS = (20, 90, 220)


def _xy(extent: Extent, size: Tuple[int, int], lat, lon):
    w, s, e, n = extent
    x = (np.asarray(lon, dtype=np.float64) - w) / (e - w) * (size[0] - 1)
    y = (n - np.asarray(lat, dtype=np.float64)) / (n - s) * (size[1] - 1)
    return x, y


def basemap(coords: np.ndarray, extent: Extent = WORLD, size: Tuple[int, int] = (720, 360)) -> Image.Image:
    """The land as the gallery's points: a grey 2 × 2 dot per point inside `extent`."""
    arr = np.empty((size[1], size[0], 3), dtype=np.uint8)
    arr[:] = SEA
    coords = np.asarray(coords, dtype=np.float64)
    if coords.size:
        x, y = _xy(extent, size, coords[:, 0], coords[:, 1])
        ok = (x >= 0) & (x < size[0] - 1) & (y >= 0) & (y < size[1] - 1)
        xi, yi = x[ok].astype(int), y[ok].astype(int)
        arr[yi, xi] = LAND  # a 2 x 2 dot: single pixels of 100,000 points on 720 x 360 read as dust
        arr[yi + 1, xi] = LAND
        arr[yi, xi + 1] = LAND
        arr[yi + 1, xi + 1] = LAND
    return Image.fromarray(arr, "RGB")


def _heat(t: np.ndarray) -> np.ndarray:
    """[0, 1] -> yellow (low) to dark red (high)."""
    t = np.clip(t, 0, 1)[:, None]
    low, high = np.array([250, 210, 60]), np.array([170, 0, 20])
    return (low * (1 - t) + high * t).astype(np.uint8)


def draw_answer(base: Image.Image, extent: Extent, support: Optional[Sequence] = None,
                places: Sequence[dict] = (), gps: Optional[Sequence[float]] = None,
                highlight: Optional[Sequence[float]] = None) -> Image.Image:
    """A copy of `base` with the likelihood (support points, log-scaled colour), the places (numbered rings,
    largest first) and the EXIF position. `highlight` (lat, lon): a single dark dot (a case map's photos)."""
    img = base.copy()
    size = img.size
    draw = ImageDraw.Draw(img)
    if support:
        pts = np.asarray(support, dtype=np.float64)
        x, y = _xy(extent, size, pts[:, 0], pts[:, 1])
        p = pts[:, 2]
        t = np.log(p / p.max() + 1e-12) / np.log(1e-3) if p.max() > 0 else np.zeros_like(p)
        colours = _heat(1.0 - np.clip(t, 0, 1))
        r = 1 if (extent[2] - extent[0]) >= 120 else 3
        for xi, yi, c in sorted(zip(x, y, map(tuple, colours)), key=lambda v: v[2][1], reverse=True):
            if 0 <= xi < size[0] and 0 <= yi < size[1]:
                draw.rectangle([xi - r, yi - r, xi + r, yi + r], fill=c)
    for pl in list(places)[::-1]:
        x, y = _xy(extent, size, pl["lat"], pl["lon"])
        x, y = float(x), float(y)
        if not (0 <= x < size[0] and 0 <= y < size[1]):
            continue
        draw.ellipse([x - 7, y - 7, x + 7, y + 7], outline=(0, 0, 0), width=2)
        draw.text((x + 9, y - 7), str(pl.get("rank", "")), fill=(0, 0, 0))
    if gps is not None:
        x, y = (float(v) for v in _xy(extent, size, gps[0], gps[1]))
        draw.line([x - 7, y - 7, x + 7, y + 7], fill=GPS, width=3)
        draw.line([x - 7, y + 7, x + 7, y - 7], fill=GPS, width=3)
    if highlight is not None:
        x, y = (float(v) for v in _xy(extent, size, highlight[0], highlight[1]))
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(200, 0, 20), outline=(255, 255, 255), width=2)
    draw.rectangle([0, 0, size[0] - 1, size[1] - 1], outline=(120, 120, 120))
    return img


def zoom_extent(lat: float, lon: float, support: Optional[Sequence] = None, gps: Optional[Sequence[float]] = None,
                min_span: float = 12.0) -> Extent:
    """A 2:1 extent around the top place that holds its likelihood's points (and the EXIF position), at least
    `min_span` degrees wide, clamped to the world."""
    lats, lons = [lat], [lon]
    if support:
        pts = np.asarray(support, dtype=np.float64)
        near = (np.abs(pts[:, 0] - lat) < 30) & (np.abs(pts[:, 1] - lon) < 60)  # the main mode, not the far tail
        lats += pts[near, 0].tolist()
        lons += pts[near, 1].tolist()
    if gps is not None and abs(gps[0] - lat) < 30 and abs(gps[1] - lon) < 60:
        lats.append(gps[0])
        lons.append(gps[1])
    width = max(min_span, (max(lons) - min(lons)) * 1.3, (max(lats) - min(lats)) * 2.6)
    width = min(width, 360.0)
    cx, cy = (max(lons) + min(lons)) / 2, (max(lats) + min(lats)) / 2
    w = min(max(cx - width / 2, -180.0), 180.0 - width)
    s = min(max(cy - width / 4, -90.0), 90.0 - width / 2)
    return (w, s, w + width, s + width / 2)
