"""The engine's one public object: load once, then geolocate photo batches and text, and encode locations.

Everything heavy loads lazily and once: location-encoder queries need no CLIP, photos need only the vision
tower, text only the text tower. Bad photos become per-photo errors, never a lost batch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ... import __version__
from .. import cancel
from ..answers.hints import with_hint
from ..answers.options import AnswerOptions
from ..answers.query import Prediction, QueryResult  # noqa: F401 - re-exported (the engine's answers)
from ..errors import GeoClipError, ImageError, InputError
from ..io.photos import Photo, load_photo
from ..maps.field_choice import find_field
from ..maps.location_field import LocationField, available_memory, build_field
from ..maps.raster import Grid
from .device import DeviceChoice, select_device, select_precision
from .gallery import Gallery, check_coordinates, check_top_k, default_cache_dir, load_gallery
from .location_encoder import LocationEncoder
from .precision import PrecisionChoice, convert_location_encoder
from .retrieval import Retrieval
from .weights import GeoClipWeights, load_weights

log = logging.getLogger("geoclip_qgis")
ImageInput = Union[str, os.PathLike, "PIL.Image.Image"]  # noqa: F821


class GeoClipEngine(Retrieval):
    """GeoCLIP with a cached gallery. Arguments left as None come from environment variables or defaults."""

    def __init__(
        self,
        weights: Union[None, str, os.PathLike, GeoClipWeights] = None,
        clip_path: Optional[str] = None,
        device: Optional[str] = None,
        precision: Optional[str] = None,
        gallery: Union[None, str, Sequence, Gallery] = None,
        cache_dir: Optional[os.PathLike] = None,
        batch_size: int = 8,
        place_radius_km: float = 25.0,
        names: bool = True,
        aoi=None,
        region_res: Optional[float] = None,
        exact_decode: bool = False,
        decode_workers: Optional[int] = None,
        hint: Optional[str] = None,
        hint_weight: float = 1.0,
    ):
        self.weights = weights if isinstance(weights, GeoClipWeights) else load_weights(weights)
        self.choice: DeviceChoice = select_device(device)
        self.device = self.choice.device
        self.precision: PrecisionChoice = select_precision(precision, self.device)
        self.choice.fp16 = self.precision.precision == "fp16"
        log.info("device %s (%s); precision %s", self.device, self.choice.reason, self.precision.reason)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.clip_path = clip_path
        self.batch_size = max(1, int(batch_size))
        self.exact_decode = exact_decode  # full-size decode (core.decode); the fidelity tests against geoclip use it
        self.decode_workers = decode_workers or min(8, os.cpu_count() or 1)  # decoding threads ahead of the model
        self.scale = float(self.weights.logit_scale.exp())
        self._gallery_spec = gallery
        self._gallery: Optional[Gallery] = gallery if isinstance(gallery, Gallery) else None
        self._location: Optional[LocationEncoder] = None
        self._image = None
        self._text = None
        self._fields: Dict[float, list] = {}
        self._finders: Dict[tuple, object] = {}
        self.names = names
        self._aoi_mask: Optional[Tuple[object, np.ndarray]] = None
        # The answers' defaults for a direct API call; a request carries its own (AnswerOptions), never set here.
        self.answers = AnswerOptions.make(aoi, region_res, place_radius_km, hint, hint_weight)

    # ---- lazily built parts -------------------------------------------------------------------------
    @property
    def location_digest(self) -> str:
        """What gallery caches and location fields are keyed on: the weights' digest, plus the location encoder's
        scheme where it is not fp32 (a bf16 field never serves an fp32 engine, nor the reverse)."""
        return self.weights.digest + self.precision.location_key

    @property
    def location_encoder(self) -> LocationEncoder:
        if self._location is None:
            enc = LocationEncoder.from_state(self.weights.location, len(self.weights.sigmas))
            self._location = convert_location_encoder(enc, self.precision.location_scheme).to(self.device)
        return self._location

    def gallery(self, progress: Optional[Callable[[int, int], None]] = None) -> Gallery:
        if self._gallery is None:
            self._gallery = load_gallery(self._gallery_spec, self.weights.gallery_csv)
        if self._gallery.embeddings is None:
            self._gallery.attach(
                self.location_encoder, self.location_digest, self.cache_dir, device=self.device, progress=progress
            )
        return self._gallery

    def field_for(self, grid: Grid) -> Tuple[Optional[LocationField], Grid]:
        """A built location field that covers `grid` at its resolution, and `grid` snapped onto its lattice;
        (None, grid) when there is none (the products then call the encoder)."""
        key = round(grid.res, 12)
        if not self._fields.get(key):  # only hits are remembered: a field built meanwhile is found next time
            self._fields[key] = find_field(self.cache_dir, self.location_digest, grid.res)
        for candidate in self._fields[key]:
            snapped = candidate.snap(grid)
            if snapped is not None:
                return candidate, snapped
        return None, grid

    def prefetch_fields(self, headroom: float = 2.0) -> List[str]:
        """Warm the OS page cache with the built fields that fit comfortably in free memory (run on a thread
        at start-up, alongside the model load); returns the folders read."""
        done = []
        for candidate in find_field(self.cache_dir, self.location_digest):
            free = available_memory()
            if free is not None and candidate.info()["bytes"] * headroom <= free:
                candidate.prefetch()
                done.append(str(candidate.path))
        return done

    def build_field(self, grid: Grid, progress: Optional[Callable[[int, int], None]] = None) -> LocationField:
        """Encode `grid` once into the cache (resuming an interrupted build); later products read it."""
        built = build_field(self.location_encoder, self.location_digest, grid, self.cache_dir, progress=progress)
        self._fields.pop(round(grid.res, 12), None)
        return built

    @property
    def image_encoder(self):
        if self._image is None:
            from .image_encoder import ImageEncoder, resolve_clip_path

            path = resolve_clip_path(self.clip_path)
            self._image = ImageEncoder(path, self.weights.mlp, self.device, self.choice.fp16,
                                       self.precision.precision)
        return self._image

    @property
    def image_encoder_loaded(self) -> bool:
        return self._image is not None

    @property
    def text_encoder(self):
        if self._text is None:
            from .image_encoder import TextEncoder, resolve_clip_path

            path = resolve_clip_path(self.clip_path)
            self._text = TextEncoder(path, self.weights.mlp, self.device, self.choice.fp16,
                                     self.precision.precision)
        return self._text

    def info(self) -> dict:
        return {
            "device": self.choice.to_dict(),
            "precision": self.precision.to_dict(),
            "weights": self.weights.source,
            "logit_scale": self.scale,
            "cache_dir": str(self.cache_dir),
            "gallery": None if self._gallery is None else {"name": self._gallery.name, "size": len(self._gallery)},
            "clip_loaded": self._image is not None or self._text is not None,
            "clip_path": str(self.clip_path or ""),
            "weights_sha256": self.weights_sha256(),
            "version": __version__,
        }

    def ran_on(self) -> dict:
        """The device and precision this engine runs in, each with its reason: what a finished request tells the
        analyst (issue 22: "fp32: bf16 misses the fidelity gate here")."""
        return {"device": str(self.choice.device), "precision": self.precision.precision,
                "device_reason": self.choice.reason, "precision_reason": self.precision.reason}

    def weights_sha256(self) -> Dict[str, str]:
        """The weights' files and their SHA-256 (hashed once per engine), for reports."""
        from .weights import file_digests

        self._weights_sha256 = getattr(self, "_weights_sha256", None) or file_digests(self.weights)
        return self._weights_sha256

    def prepare(self, kind: str, top_k: int, backbone: bool = True) -> None:
        """Everything that can fail before a run writes anything: the gallery loaded, top-k within it, and the CLIP
        tower the run needs loaded (photos: vision, text: text; `backbone=False`: only its folder found, for a
        driver whose workers load it)."""
        from .image_encoder import resolve_clip_path

        resolve_clip_path(self.clip_path)  # cheap: a missing CLIP folder is named before the gallery is encoded
        check_top_k(top_k, len(self.gallery()))
        if backbone:
            _ = self.image_encoder if kind == "image" else self.text_encoder

    def run_fingerprint(self, kind: str, top_k: int) -> Dict[str, object]:
        """What makes two runs' rows comparable (what --resume insists on): kind, top-k, gallery and weights."""
        g = self.gallery()
        out = {"kind": kind, "top_k": int(top_k), "gallery": f"{g.name}:{len(g)}:{g.coords_hash}",
               "weights": self.weights.digest}
        if self.precision.precision not in ("fp32", "fp16"):  # fp32 / fp16 rows stay resumable as before
            out["precision"] = self.precision.precision
        return out

    # ---- embeddings ---------------------------------------------------------------------------------
    def encode_locations(self, latlon, normalise: bool = False, batch: int = 8192) -> np.ndarray:
        """(N, 2) lat, lon -> (N, 512) float32 location embeddings (unnormalised unless asked). Points are checked
        as the gallery's are: a latitude past ±90 or a NaN is refused, never encoded into a plausible vector."""
        try:
            pts = np.asarray(latlon, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError("points must be numbers", hint="give [[lat, lon], ...] in degrees") from exc
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise InputError(f"points must be pairs of (lat, lon); got an array of shape {pts.shape}",
                             hint="give [[lat, lon], ...] in degrees")
        if pts.shape[0] == 0:
            return np.zeros((0, 512), dtype=np.float32)
        check_coordinates(pts, "points")
        emb = self.location_encoder.encode(pts, batch=batch, normalise=normalise, autocast=self.choice.fp16)
        return emb.numpy()

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit-norm GeoCLIP image features for preprocessed pixels; out of GPU memory (CUDA or MPS), halves the
        batch, then falls back to the CPU for good."""
        enc = self.image_encoder
        try:
            return torch.nn.functional.normalize(enc(pixels), dim=1)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
            if not _out_of_memory(exc):
                raise
            gpu = "CUDA" if isinstance(exc, torch.cuda.OutOfMemoryError) else self.device.type.upper()
            if pixels.shape[0] > 1:
                torch.cuda.empty_cache()
                half = pixels.shape[0] // 2
                log.warning("%s out of memory; retrying with batches of %d", gpu, half)
                return torch.cat([self.embed_pixels(pixels[:half]), self.embed_pixels(pixels[half:])])
            log.warning("%s out of memory on a single image; falling back to the CPU", gpu)
            self._move_to_cpu(gpu)
            return torch.nn.functional.normalize(self.image_encoder(pixels), dim=1)

    def _move_to_cpu(self, gpu: str = "CUDA") -> None:
        self.choice = DeviceChoice(torch.device("cpu"), False, f"CPU, after {gpu} ran out of memory")
        if self.precision.precision == "fp16":
            self.precision = PrecisionChoice("fp32", f"fp32, after {gpu} ran out of memory")
        self.device = self.choice.device
        for part in (self._image, self._text):
            if part is not None:
                part.float().to(self.device)
                part.device = self.device
        if self._location is not None:
            self._location.to(self.device)
        if self._gallery is not None and self._gallery.embeddings is not None:
            self._gallery.embeddings = self._gallery.embeddings.float().cpu()
        torch.cuda.empty_cache()

    def embed_text(self, queries: Sequence[str]) -> torch.Tensor:
        """Unit-norm features for text queries, in batches (bounded memory; a cancel lands between batches)."""
        queries = list(queries)
        feats = []
        for start in range(0, len(queries), max(self.batch_size, 32)):
            cancel.check()
            feats.append(self.text_encoder(queries[start:start + max(self.batch_size, 32)]))
        return torch.nn.functional.normalize(torch.cat(feats), dim=1) if feats else torch.zeros(0, 512)

    def embed_images(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Unit-norm features for photos that must all be readable (rasters, fusion); errors name the file. Photos
        are opened a batch at a time, so memory stays bounded however many are fused."""
        images = list(images)
        feats = []
        for start in range(0, len(images), self.batch_size):
            cancel.check()
            chunk = [_as_photo(img, start + i) for i, img in enumerate(images[start:start + self.batch_size])]
            feats.append(self.embed_pixels(self.image_encoder.preprocess([p.image for p in chunk])).cpu())
        return torch.cat(feats) if feats else torch.zeros(0, 512)

    def iter_predict_images(
        self, images: Iterable[ImageInput], top_k: int = 5, batch_size: Optional[int] = None,
        options: Optional[AnswerOptions] = None, features: Optional[Dict[int, torch.Tensor]] = None,
    ) -> Iterator[QueryResult]:
        """Yield one QueryResult per input, in order, as soon as its batch is done; bad files yield errors.
        `options`: this request's answer options (else the engine's defaults). `features`: a dict that receives
        each readable input's image feature by its position (what a trip ranks again at the end, 2 KB a photo).

        Photos are decoded and preprocessed by core.decode's threads up to two batches ahead of the model, at
        reduced size unless `exact_decode`."""
        from ..answers.support import mass_support
        from ..io.decode import decode_ahead, input_side, open_photo

        opts = options or self.answers
        bs = max(1, int(batch_size or self.batch_size))
        pending: list = []
        results: dict = {}
        next_out = 0
        gallery_size = len(self.gallery())
        check_top_k(top_k, gallery_size)
        enc = self.image_encoder
        side = None if self.exact_decode else input_side(enc.processor)

        def load(img: ImageInput, i: int) -> Photo:
            return open_photo(img, side) if isinstance(img, (str, os.PathLike)) else _as_photo(img, i)

        def flush() -> None:
            if not pending:
                return
            feats = with_hint(self, self.embed_pixels(torch.stack([d.pixels for d in pending])), opts.hint,
                              opts.hint_weight)
            if features is not None:  # the trip reads each photo's feature, its hint fused in
                features.update((d.index, f) for d, f in zip(pending, feats.detach().float().cpu()))
            ranked = self.rank(feats, top_k, opts)
            regions = self.region_of(feats, opts.region_res, aoi=opts.aoi) if opts.region_res else \
                [None] * len(ranked)
            support = mass_support(self, feats, opts.aoi) if opts.support else [None] * len(ranked)
            for d, (preds, places, remaining, outside), region, sup in zip(pending, ranked, regions, support):
                results[d.index] = QueryResult(d.source, "image", preds, d.gps, places=places, remaining=remaining,
                                               aoi_outside=outside, region=region, exif_problem=d.gps_problem,
                                               sha256=d.sha256, support=sup, **opts.labels())
                if opts.saliency_dir and preds:  # only when asked: one backward pass per photo
                    from .saliency import explain_or_log

                    results[d.index].saliency = explain_or_log(self, d, preds[0].gallery_index, opts.saliency_dir,
                                                               side)
            pending.clear()

        for d in decode_ahead(images, load, lambda im: enc.preprocess([im])[0], self.decode_workers, 2 * bs):
            cancel.check()
            if d.error is not None:
                results[d.index] = QueryResult(d.source, "image", error=d.error.to_dict())
            else:
                pending.append(d)
            if len(pending) >= bs:
                flush()
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1
        flush()
        while next_out in results:
            yield results.pop(next_out)
            next_out += 1

    def predict_images(self, images: Sequence[ImageInput], top_k: int = 5) -> List[QueryResult]:
        return list(self.iter_predict_images(images, top_k))

    def iter_predict_text(self, queries: Sequence[str], top_k: int = 5, batch_size: int = 32,
                          options: Optional[AnswerOptions] = None) -> Iterator[QueryResult]:
        """Yield one QueryResult per text, in order, a batch at a time: memory stays bounded (one batch's
        softmax over the gallery, not one per query at once) and a cancel lands between batches. `options`: this
        request's answer options (else the engine's defaults)."""
        opts = options or self.answers
        if isinstance(queries, str):
            queries = [queries]
        queries = list(queries)
        check_top_k(top_k, len(self.gallery()))
        for start in range(0, len(queries), batch_size):
            chunk = queries[start:start + batch_size]
            feats = with_hint(self, self.embed_text(chunk), opts.hint, opts.hint_weight)
            ranked = self.rank(feats, top_k, opts)
            regions = self.region_of(feats, opts.region_res, aoi=opts.aoi) if opts.region_res else \
                [None] * len(ranked)
            for q, (preds, places, remaining, outside), region in zip(chunk, ranked, regions):
                yield QueryResult(q, "text", preds, places=places, remaining=remaining, aoi_outside=outside,
                                  region=region, **opts.labels())

    def predict_text(self, queries: Sequence[str], top_k: int = 5) -> List[QueryResult]:
        return list(self.iter_predict_text(queries, top_k))


def _out_of_memory(exc: BaseException) -> bool:
    """CUDA raises OutOfMemoryError; Apple's MPS a RuntimeError saying 'out of memory'."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _as_photo(img: ImageInput, i: int) -> Photo:
    from PIL import Image, ImageOps

    if isinstance(img, Image.Image):
        return Photo(f"<image {i}>", ImageOps.exif_transpose(img).convert("RGB"), None)
    if not isinstance(img, (str, os.PathLike)):
        raise ImageError(f"input {i} is a {type(img).__name__}, not a path or PIL image", str(img))
    return load_photo(img)


__all__ = ["GeoClipEngine", "GeoClipError", "Prediction", "QueryResult"]
