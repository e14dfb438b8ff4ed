"""Photos decoded no larger than the model needs, ahead of the model, in a small bounded thread pool.

Why: a 12 MP JPEG costs 150-290 ms to decode fully and as much again to resize on this CPU, on the thread that
runs the model. CLIP sees 224 × 224. A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size by DCT scaling
(`Image.draft`), which is several times cheaper; other formats are box-reduced (`Image.reduce`) before the
processor's own bicubic resize and centre crop. Both stop at the smallest size whose shortest side is still at
least the processor's own input side (twice that for a box reduce, see `reduce_to`), so the model's resize
always scales down. `min_side=None` is the exact
path (full decode, exif.load_photo), kept for the fidelity tests against the official package.

Pillow's decoders and resizers release the GIL, so threads overlap decoding with the model's forward. The pool
holds at most `ahead` photos in flight (decoded and preprocessed, not yet consumed), so memory stays flat on a
batch of any length; each result keeps only the 3 × 224 × 224 pixels, never the decoded photo.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Tuple

from PIL import Image, ImageOps

from ..errors import ImageError
from .files import open_regular
from .photos import Photo, _to_rgb, check_pixels, file_sha256, load_photo, read_gps_exif


def input_side(processor) -> int:
    """The shortest side a photo must keep for the processor's resize + crop to scale down only: the largest of
    its `shortest_edge` and its crop and resize height/width (224 for ViT-L/14), read from its own config."""
    sides = []
    for spec in (getattr(processor, "size", None), getattr(processor, "crop_size", None)):
        if spec is None:
            continue
        get = spec.get if isinstance(spec, dict) else (lambda k, s=spec: getattr(s, k, None))
        sides += [get(k) for k in ("shortest_edge", "height", "width")]
    sides = [int(s) for s in sides if s]
    if not sides:
        raise ValueError(f"cannot read an input size from {type(processor).__name__}")
    return max(sides)


def reduce_to(image: Image.Image, min_side: int) -> Image.Image:
    """Box-reduce by the largest whole factor that keeps the shortest side >= 2 × min_side (no-op when none).

    Twice, not once: a box reduce to just above 224 px then bicubic to 224 differs from the exact path by
    ~32 dB PSNR on 12 MP photos; from >= 448 px it is >= 42 dB (scripts/bench_photos.py measures it)."""
    factor = min(image.size) // (2 * min_side)
    return image.reduce(factor) if factor >= 2 else image


def _draft_jpeg(path: str, min_side: int) -> Optional[Photo]:
    """A JPEG decoded by DCT scaling to the smallest size with both sides >= min_side; None for other formats.
    EXIF (orientation, GPS) is read from the file as on the exact path; only the pixel count differs."""
    with open_regular(path, "photo", error=ImageError) as fh, Image.open(fh) as im:
        if im.format != "JPEG":
            return None
        check_pixels(im, path)  # a bomb is refused by its size (thread-safe), as on the exact path
        gps, gps_problem = read_gps_exif(im.getexif())
        im.draft("RGB", (min_side, min_side))
        im.load()
        return Photo(path=path, image=_to_rgb(ImageOps.exif_transpose(im)), gps=gps, gps_problem=gps_problem)


def open_photo(path: os.PathLike | str, min_side: Optional[int] = None) -> Photo:
    """Like exif.load_photo, but decoded no larger than `min_side` needs (None: the exact, full decode).

    Any failure of the reduced decode falls back to load_photo, so that a bad file is reported (or read) by
    exactly the rules of the exact path: one definition of what an unreadable photo is."""
    name = str(path)
    if min_side is None:
        return load_photo(name)
    try:
        photo = _draft_jpeg(name, min_side)
    except Exception:
        photo = None
    if photo is None:
        photo = load_photo(name)
        photo.image = reduce_to(photo.image, min_side)
    return photo


@dataclass
class Decoded:
    """One input, ready for the model: its pixels (3 × H × W, preprocessed) or why it could not be used."""

    index: int
    source: str
    gps: Optional[Tuple[float, float]] = None
    pixels: Optional[object] = None  # torch.Tensor
    error: Optional[ImageError] = None
    gps_problem: Optional[str] = None  # why an EXIF GPS block was not used (carried to the summary's exif_problem)
    sha256: Optional[str] = None  # the file's SHA-256 (a path input only): one home for the report's fingerprint


def decode_ahead(
    items: Iterable,
    load: Callable[[object, int], Photo],
    preprocess: Callable[[Image.Image], object],
    workers: int = 2,
    ahead: int = 16,
) -> Iterator[Decoded]:
    """Yield a Decoded per item, in input order, while up to `ahead` later items are loaded and preprocessed by
    `workers` threads. An ImageError is carried in its item; any other exception is raised at its item."""

    def work(i: int, item) -> Decoded:
        try:
            photo = load(item, i)
        except ImageError as exc:
            return Decoded(i, exc.path or str(item), error=exc)
        digest = file_sha256(item) if isinstance(item, (str, os.PathLike)) else None
        return Decoded(i, photo.path, photo.gps, preprocess(photo.image),
                       gps_problem=getattr(photo, "gps_problem", None), sha256=digest)

    if workers <= 0:  # inline: no threads (debugging, or a caller that is already parallel)
        for i, item in enumerate(items):
            yield work(i, item)
        return
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="geoclip-decode") as pool:
        try:
            for i, item in enumerate(items):
                pending.append(pool.submit(work, i, item))
                if len(pending) >= max(1, ahead):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the consumer stopped early (cancel, error): drop what is queued, wait for what runs
            for fut in pending:
                fut.cancel()
