"""What the engine answers for one photo or text: the raw top-k gallery points (Prediction) and the query's result
(QueryResult: its distinct places, the mass they leave, the area's outside share, the 90 % region, or the error)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple


@dataclass
class Prediction:
    """One gallery point of the raw top-k, with its offline name (country, region, nearest populated place)."""

    rank: int
    lat: float
    lon: float
    probability: float
    gallery_index: int
    country: Optional[str] = None
    region: Optional[str] = None
    place: Optional[str] = None
    place_km: Optional[float] = None


@dataclass
class QueryResult:
    """One photo or text query: the raw top-k gallery points, and the top-k distinct places (their probability
    is the summed mass of the gallery points within the place radius; `remaining` is the mass no place holds).
    `error` is set instead when the input could not be used."""

    source: str
    kind: str
    predictions: List[Prediction] = field(default_factory=list)
    gps: Optional[Tuple[float, float]] = None
    error: Optional[dict] = None
    places: List[dict] = field(default_factory=list)
    remaining: Optional[float] = None
    aoi_outside: Optional[float] = None  # with an area of interest: the share of the mass that fell outside it
    region: Optional[dict] = None  # with region_res: the 90 % confidence region's area and parts
    exif_problem: Optional[str] = None  # why the photo's EXIF GPS was not used (out of range, no fix…)
    hint: Optional[str] = None  # the words fused with the photo (core/answers/hints.py)
    hint_weight: Optional[float] = None
    constraint: Optional[str] = None  # the area of interest's description ("Chile, Argentina", "within 50 km of …")
    sha256: Optional[str] = None  # the photo file's SHA-256, hashed when it was read (core/io/decode.py)
    saliency: Optional[str] = None  # with AnswerOptions.saliency_dir: the 'why' overlay PNG
    support: Optional[list] = None  # with AnswerOptions.support: [(lat, lon, p), ...] holding 90 % of the mass

    @property
    def gps_problem(self) -> Optional[str]:
        """The name the result writers read (core/io/results.py summary_row); the rows carry `exif_problem`."""
        return self.exif_problem

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return asdict(self)
