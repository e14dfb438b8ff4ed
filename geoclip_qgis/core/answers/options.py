"""The options that shape one request's answers, carried by the request (never set on the shared engine): the area of
interest, the per-photo region maps' resolution, the place radius and a text hint with its weight (hints.py). The
worker builds one per request from the schema's fields; the CLI once per run; the engine's own are the defaults of a
direct API call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from .hints import DEFAULT_HINT_WEIGHT, check_hint, check_hint_weight
from .places import check_radius
from .regions import check_region_res

DEFAULT_RADIUS_KM = 25.0


@dataclass(frozen=True)
class AnswerOptions:
    aoi: Any = None  # an AreaOfInterest, or None
    region_res: Optional[float] = None  # degrees; None: no per-query region map
    place_radius_km: float = DEFAULT_RADIUS_KM
    hint: Optional[str] = None  # words fused with each photo (core/answers/hints.py)
    hint_weight: float = DEFAULT_HINT_WEIGHT
    saliency_dir: Optional[str] = None  # photos: write a 'why' overlay per photo here (core/model/saliency.py)
    support: bool = False  # keep each answer's 90 % gallery points (core/answers/support.py): a report's map

    @classmethod
    def make(cls, aoi=None, region_res=None, place_radius_km=DEFAULT_RADIUS_KM, hint=None,
             hint_weight=DEFAULT_HINT_WEIGHT, saliency_dir: Optional[str] = None) -> AnswerOptions:
        """Checked and parsed once, by the one rule of each: the area (any form AreaOfInterest.parse takes), the
        region resolution (regions.check_region_res), the radius (places.check_radius)."""
        from .aoi import AreaOfInterest

        if aoi is not None and not isinstance(aoi, AreaOfInterest):
            aoi = AreaOfInterest.parse(aoi)
        return cls(aoi, check_region_res(region_res), check_radius(place_radius_km), check_hint(hint),
                   check_hint_weight(hint_weight), saliency_dir or None)

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> AnswerOptions:
        """A worker request's answer options (shared/protocol.py's `aoi`, `region_res`, `place_radius_km`, `hint`,
        `hint_weight`, `saliency`)."""
        return cls.make(params.get("aoi"), params.get("region_res"),
                        params.get("place_radius_km", DEFAULT_RADIUS_KM), params.get("hint"),
                        params.get("hint_weight", DEFAULT_HINT_WEIGHT), params.get("saliency"))

    def labels(self) -> Dict[str, Any]:
        """What each result says it was answered with: the hint, its weight and the area's description."""
        name = None if self.aoi is None else self.aoi.name
        if name and len(name) > 200:  # a union of many areas: its start, so every row stays small
            name = name[:197] + "..."
        return {"hint": self.hint, "hint_weight": self.hint_weight if self.hint else None, "constraint": name}
