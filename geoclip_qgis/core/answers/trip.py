"""A trip: photos of one journey answered jointly. Consecutive photos cannot lie farther apart than a travel speed
allows, so a confident photo pulls an ambiguous neighbour to its side, and a photo with EXIF GPS fixes the others.

The model (one chain, sum-product = forward-backward):
- the photos, ordered by their EXIF capture time (core/io/photos.read_taken_at; file order when none has one, said
  in the note); a photo without a time while others have one is answered alone, and the note says so;
- a shared lattice of gallery points: the union of every chain photo's top points (LATTICE_TOP, fewer per photo
  when many photos would make the lattice larger than MAX_LATTICE) and the gallery points nearest each GPS anchor;
- emission: the photo's own probability at each lattice point (from the full gallery softmax, the one rank uses:
  engine.gallery_probabilities); an anchor's is a narrow kernel (ANCHOR_SIGMA_KM) around its GPS point;
- between consecutive photos Δt apart, a symmetric reachability kernel on the great-circle distance d:
  K = exp(-max(0, d - v·Δt - slack) / SCALE_KM) + FLOOR. Within reach every place is as likely as any other (no
  preference for short hops), beyond it the weight decays with the excess; FLOOR keeps a photo that contradicts
  its neighbours answerable (its own evidence wins) instead of zeroing the chain. With v·Δt + slack beyond half
  the Earth's circumference the kernel is flat and the step decouples: an infinite speed gives back each photo's
  own answer on the lattice.
The marginals (the joint posterior of each photo) are then merged into places by the one place rule
(core/answers/places.PlaceFinder) at the run's radius; the 90 % region is the smallest set of lattice points
holding 90 % of the posterior, its area the sum of the REGION_CELL_DEG cells those points fall in.

Defaults (documented in docs/trip.md): 900 km/h (an airliner's cruise: nothing that photographs moves faster),
a slack of 50 km (a place is a town, not a point; clocks drift), a decay of 10 km beyond reach (near-hard: "cannot
be farther apart" is a physical limit, the slack already holds the imprecision)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...shared.geodesy import EARTH_RADIUS_KM
from ..errors import InputError

DEFAULT_SPEED_KMH = 900.0
DEFAULT_SLACK_KM = 50.0
SCALE_KM = 10.0  # beyond reach the weight falls by e every 10 km: 280 km too far weighs less than the floor
FLOOR = 1e-12
LATTICE_TOP = 512
MAX_LATTICE = 2048
MIN_TOP = 32
KEEP_OWN = 8  # each photo's best points on the lattice whatever the cap
ANCHOR_SIGMA_KM = 5.0
ANCHOR_NEIGHBOURS = 16
ANCHOR_REACH_POINTS = 128  # gallery points spread over the disc an anchor's neighbours must lie in
MAX_ANCHOR_REACH_KM = 2000.0  # beyond, the disc is a continent: the photos' own top points cover it
FILE_ORDER_GAP_H = 1.0  # no capture times at all: consecutive photos are taken as an hour apart (said in the note)
REGION_CELL_DEG = 0.25
HALF_EARTH_KM = math.pi * EARTH_RADIUS_KM
CHUNK = 64
MAX_TRIP_PHOTOS = 20_000

NOTE_ALONE = "no capture time in its EXIF while the others have one: answered alone"
NOTE_FILE_ORDER = f"no capture times: file order, {FILE_ORDER_GAP_H:g} h assumed between photos"
NOTE_LOCAL = "no time offset in EXIF: the camera's local clock is used"
NOTE_ANCHOR = "EXIF GPS: an anchor of the trip"
NOTE_SINGLE = "the only photo of the trip: its own answer"


@dataclass(frozen=True)
class TripOptions:
    """A request's trip: on or off, the travel speed and the slack (checked once, here)."""

    enabled: bool = False
    speed_kmh: float = DEFAULT_SPEED_KMH
    slack_km: float = DEFAULT_SLACK_KM

    @classmethod
    def make(cls, enabled=False, speed_kmh=None, slack_km=None) -> TripOptions:
        speed = DEFAULT_SPEED_KMH if speed_kmh is None else float(speed_kmh)
        slack = DEFAULT_SLACK_KM if slack_km is None else float(slack_km)
        if not (speed > 0 and math.isfinite(speed) or speed == math.inf):
            raise InputError(f"the trip's travel speed must be a positive number of km/h, got {speed_kmh!r}",
                             hint=f"e.g. {DEFAULT_SPEED_KMH:g} (an airliner), 120 (a car), 5 (on foot)")
        if not (slack >= 0 and math.isfinite(slack)):
            raise InputError(f"the trip's slack must be 0 km or more, got {slack_km!r}", hint="e.g. 50")
        return cls(bool(enabled), speed, slack)

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> TripOptions:
        """A worker request's trip (shared/protocol.py's `trip`, `trip_speed_kmh`, `trip_slack_km`)."""
        return cls.make(params.get("trip", False), params.get("trip_speed_kmh"), params.get("trip_slack_km"))


# ---- the chain, pure numpy ---------------------------------------------------------------------------------------
def haversine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) great-circle km between (n, 2) and (m, 2) lat, lon arrays: shared/geodesy's formula, vectorised."""
    a, b = np.radians(np.asarray(a, np.float64).reshape(-1, 2)), np.radians(np.asarray(b, np.float64).reshape(-1, 2))
    dlat = b[None, :, 0] - a[:, None, 0]
    dlon = b[None, :, 1] - a[:, None, 1]
    h = np.sin(dlat / 2) ** 2 + np.cos(a[:, None, 0]) * np.cos(b[None, :, 0]) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def reach_km(hours: float, speed_kmh: float, slack_km: float) -> float:
    """How far the next photo can be: v·Δt + slack (an infinite speed reaches everywhere)."""
    return math.inf if math.isinf(speed_kmh) else speed_kmh * max(0.0, hours) + slack_km


class _Kernel:
    """The reachability kernel for any Δt from one precomputed exp(-d / SCALE_KM): a step costs a multiply and a
    clip, never an exp over the lattice."""

    def __init__(self, dist_km: np.ndarray, scale_km: float = SCALE_KM, floor: float = FLOOR):
        if not scale_km >= 10.0:
            raise ValueError(f"the decay beyond reach must be 10 km or more, got {scale_km!r}")
        # K = min(exp((reach - d) / s), 1) = min(exp((reach - d) / 4s), 1) ** 4: the stored exp(-d / 4s) stays
        # >= e^-501 for any d on Earth and s >= 10 km (no underflow in float64); the power: two squarings in place.
        self.scale, self.floor = 4.0 * scale_km, floor
        self.decay = np.exp(-np.asarray(dist_km, np.float64) / self.scale)
        # One float32 buffer for every step: no L x L temporaries, half the memory traffic (2.7x faster at 2,064
        # points). Its 7 digits suffice: messages are renormalised every step, and what float32 flushes to zero
        # lies far below the floor, added apart.
        self.k = np.empty(self.decay.shape, np.float32)

    def apply(self, msg: np.ndarray, reach: float) -> np.ndarray:
        """K @ msg for this reach (K is symmetric: the same as msg @ K, and the faster of the two); a reach past
        half the Earth is the flat kernel."""
        total = msg.sum()
        if reach >= HALF_EARTH_KM:
            return np.full_like(msg, total * (1.0 + self.floor))
        with np.errstate(over="ignore"):  # past float32's range is far past 1: the clip below makes it 1
            np.multiply(self.decay, math.exp(reach / self.scale), out=self.k, casting="unsafe")
        np.minimum(self.k, 1.0, out=self.k)
        np.multiply(self.k, self.k, out=self.k)
        np.multiply(self.k, self.k, out=self.k)
        return (self.k @ (msg / total).astype(np.float32)).astype(np.float64) * total + self.floor * total


def forward_backward(emission: np.ndarray, dist_km: np.ndarray, reaches: Sequence[float],
                     scale_km: float = SCALE_KM, floor: float = FLOOR) -> np.ndarray:
    """(T, L) marginals of a chain of T photos over L lattice points: `emission` (T, L) each photo's evidence
    (any positive scale), `dist_km` (L, L), `reaches[t]` the reach between photo t and t+1 in km."""
    e = np.asarray(emission, np.float64)
    t_len = e.shape[0]
    if len(reaches) != max(0, t_len - 1):
        raise ValueError(f"{t_len} photos need {t_len - 1} reaches, got {len(reaches)}")
    kern = _Kernel(dist_km, scale_km, floor)
    alpha = np.empty_like(e)
    alpha[0] = e[0] / e[0].sum()
    for t in range(1, t_len):
        a = e[t] * kern.apply(alpha[t - 1], reaches[t - 1])
        alpha[t] = a / a.sum()
    beta = np.ones_like(e)
    for t in range(t_len - 2, -1, -1):
        b = kern.apply(e[t + 1] * beta[t + 1], reaches[t])
        beta[t] = b / b.sum()
    post = alpha * beta
    return post / post.sum(axis=1, keepdims=True)


def region_area_km2(lat: np.ndarray, lon: np.ndarray, posterior: np.ndarray, level: float = 0.9,
                    cell_deg: float = REGION_CELL_DEG) -> float:
    """Area of the cells (cell_deg) holding the smallest set of lattice points with `level` of the posterior."""
    order = np.argsort(-posterior, kind="stable")
    n = int(np.searchsorted(np.cumsum(posterior[order]), level * posterior.sum()) + 1)
    pick = order[:n]
    cells = {(math.floor(a / cell_deg), math.floor(o / cell_deg)) for a, o in zip(lat[pick], lon[pick])}
    r = math.radians(cell_deg)
    return float(sum(EARTH_RADIUS_KM ** 2 * r * abs(math.sin(math.radians((i + 1) * cell_deg))
                                                    - math.sin(math.radians(i * cell_deg))) for i, _ in cells))


# ---- ordering by time ---------------------------------------------------------------------------------------------
@dataclass
class TripPlan:
    """Which photos form the chain, in time order, the hours between them, and each photo's note."""

    chain: List[int]
    hours: List[float]
    alone: List[int]
    notes: Dict[int, str] = field(default_factory=dict)
    taken_at: Dict[int, str] = field(default_factory=dict)


def order_photos(times: Sequence[Optional[datetime]]) -> TripPlan:
    """The chain from the photos' capture times (None: none read). With every time offset known the gaps are
    true (UTC); otherwise the camera's local clocks are compared, said in the note of each photo without offset."""
    idx = list(range(len(times)))
    timed = [i for i in idx if times[i] is not None]
    taken = {i: times[i].isoformat() for i in timed}
    if not timed:
        return TripPlan(idx, [FILE_ORDER_GAP_H] * max(0, len(idx) - 1), [], {i: NOTE_FILE_ORDER for i in idx}, taken)
    notes = {i: NOTE_ALONE for i in idx if times[i] is None}
    aware = all(times[i].tzinfo is not None for i in timed)
    if aware:
        key = {i: times[i].astimezone(timezone.utc).replace(tzinfo=None) for i in timed}
    else:
        key = {i: times[i].replace(tzinfo=None) for i in timed}
        notes.update({i: NOTE_LOCAL for i in timed if times[i].tzinfo is None})
    chain = sorted(timed, key=lambda i: (key[i], i))
    hours = [(key[b] - key[a]).total_seconds() / 3600.0 for a, b in zip(chain, chain[1:])]
    return TripPlan(chain, hours, [i for i in idx if times[i] is None], notes, taken)


def _note(*parts: Optional[str]) -> Optional[str]:
    said = [p for p in parts if p]
    return "; ".join(said) if said else None


# ---- the engine's side: collect a run's photos, answer the trip at its end ---------------------------------------
@dataclass
class TripAnswer:
    """Per source the trip's columns (shared/schema.SUMMARY_FIELDS' trip_*), and the track in time order."""

    rows: Dict[str, Dict[str, Any]]
    track: List[Tuple[float, float, str]]  # (lat, lon, source) of the chain's photos, in time order
    summary: Dict[str, Any]

    def to_dict(self, sources: Sequence[str]) -> Dict[str, Any]:
        """The worker's form: photos and track by their position in the request's `sources` (a reply never repeats
        the paths, so its size stays bounded by MAX_TRIP_PHOTOS, not by their length)."""
        at = {s: i for i, s in enumerate(sources)}
        return {"photos": [{"index": at[s], **row} for s, row in self.rows.items() if s in at],
                "track": [[lat, lon, at[s]] for lat, lon, s in self.track if s in at], "summary": self.summary}


def check_trip_size(n: int) -> None:
    """A trip is answered in memory over all its photos at once: at most MAX_TRIP_PHOTOS (one rule, every door)."""
    if n > MAX_TRIP_PHOTOS:
        raise InputError(f"a trip of {n:,} photos is more than the {MAX_TRIP_PHOTOS:,} answered jointly",
                         hint="split the photos into trips (by day, say), or run without the trip")


class TripCollector:
    """What every front door does for a trip: hand `features` to engine.iter_predict_images, `add` each result as it
    comes, `solve` at the end (the photos' times are read then, from the files' EXIF headers)."""

    def __init__(self, engine, options, trip: TripOptions):
        self.engine, self.options, self.trip = engine, options, trip
        self.features: Dict[int, Any] = {}
        self.results: List[Any] = []

    def add(self, result) -> None:
        self.results.append(result)

    def solve(self) -> TripAnswer:
        """The joint answer of the readable photos, their capture times read now from the files' EXIF."""
        from ..io.photos import read_taken_at

        ok = [(i, r) for i, r in enumerate(self.results) if r.ok and i in self.features]
        times = [read_taken_at(r.source)[0] if r.kind == "image" else None for _, r in ok]
        return solve(self.engine, [r for _, r in ok], [self.features[i] for i, _ in ok], times, self.options,
                     self.trip)


def predict_trip(engine, images: Sequence[Any], top_k: int = 5, trip: Optional[TripOptions] = None,
                 options=None) -> Tuple[List[Any], TripAnswer]:
    """The API's trip: every photo's own answer (engine.iter_predict_images) and the trip's joint answer."""
    opts = options or engine.answers
    collector = TripCollector(engine, opts, trip or TripOptions.make(True))
    results = []
    for res in engine.iter_predict_images(images, top_k, options=opts, features=collector.features):
        collector.add(res)
        results.append(res)
    return results, collector.solve()


def _lattice(engine, feats, options, anchors: Dict[int, Tuple[float, float]], per_photo: int,
             reach: Optional[Dict[int, float]] = None):
    """Gallery indices of the lattice: each photo's top points, and around each anchor its nearest points and
    ANCHOR_REACH_POINTS spread over the disc its neighbours must lie in (`reach`, km: the farther of its two
    steps), so that a neighbour always has places in reach even where no photo ranks any."""
    import torch

    coords = engine.gallery().coords
    score = np.zeros(len(coords))  # each gallery point's best probability among the photos that put it on top
    own = []  # every photo's own best points stay, whatever the cap drops
    for start in range(0, len(feats), CHUNK):
        probs, _ = engine.gallery_probabilities(torch.stack(feats[start:start + CHUNK]), options)
        top = torch.topk(probs, min(per_photo, probs.shape[1]), dim=1)
        idx = top.indices.cpu().numpy()
        np.maximum.at(score, idx.ravel(), top.values.double().cpu().numpy().ravel())
        own.append(idx[:, :KEEP_OWN].ravel())
    picked = np.flatnonzero(score)
    if picked.size > MAX_LATTICE:  # many photos: the points they hold most, the lattice bounded (L² memory)
        picked = picked[np.argsort(-score[picked], kind="stable")[:MAX_LATTICE]]
    near = [picked, *own]
    for i, (lat, lon) in anchors.items():
        d = haversine_matrix(np.array([[lat, lon]]), coords)[0]
        near.append(np.argpartition(d, min(ANCHOR_NEIGHBOURS, d.size - 1))[:ANCHOR_NEIGHBOURS])
        inside = np.flatnonzero(d <= min((reach or {}).get(i, 0.0), MAX_ANCHOR_REACH_KM))
        if inside.size:  # evenly over the distances: near and far rings alike
            ring = inside[np.argsort(d[inside], kind="stable")]
            near.append(ring[np.linspace(0, ring.size - 1, min(ANCHOR_REACH_POINTS, ring.size)).astype(np.int64)])
    return np.unique(np.concatenate(near)).astype(np.int64)  # the cap + KEEP_OWN a photo + around the anchors


def _emissions(engine, feats, options, lattice: np.ndarray) -> np.ndarray:
    import torch

    out = []
    for start in range(0, len(feats), CHUNK):
        probs, _ = engine.gallery_probabilities(torch.stack(feats[start:start + CHUNK]), options)
        out.append(probs[:, torch.from_numpy(lattice).to(probs.device)].double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, lattice.size))


def anchor_emission(lattice_coords: np.ndarray, gps: Tuple[float, float], sigma_km: float = ANCHOR_SIGMA_KM
                    ) -> np.ndarray:
    """A narrow kernel at an anchor's GPS point, scaled so its nearest lattice point weighs 1 (no underflow)."""
    d = haversine_matrix(np.array([gps]), lattice_coords)[0]
    return np.exp(-(d ** 2 - d.min() ** 2) / (2 * sigma_km ** 2))


def solve(engine, results: Sequence[Any], feats: Sequence[Any], times: Sequence[Optional[datetime]], options,
          trip: TripOptions) -> TripAnswer:
    """The trip's joint answer for readable photo results (their features and capture times, by position)."""
    check_trip_size(len(results))
    plan = order_photos(times)
    n = len(results)
    anchors = {i: tuple(r.gps) for i, r in enumerate(results) if r.gps is not None}
    per_photo = max(MIN_TOP, min(LATTICE_TOP, MAX_LATTICE // max(1, n)))
    rows: Dict[str, Dict[str, Any]] = {}
    if n == 0:
        return TripAnswer(rows, [], {"photos": 0})
    chain_reach = {}
    if len(plan.chain) > 1:
        steps = [reach_km(h, trip.speed_kmh, trip.slack_km) for h in plan.hours]
        for k, i in enumerate(plan.chain):
            chain_reach[i] = max(steps[k - 1] if k > 0 else 0.0, steps[k] if k < len(steps) else 0.0)
    lattice = _lattice(engine, list(feats), options, anchors, per_photo, chain_reach)
    coords = engine.gallery().coords[lattice]
    emission = _emissions(engine, list(feats), options, lattice)
    peak = emission.max(axis=1, keepdims=True)
    emission = np.where(peak > 0, emission / np.where(peak > 0, peak, 1.0), 1.0)  # none on the lattice: no opinion
    for i, gps in anchors.items():
        emission[i] = anchor_emission(coords, gps)
    post = np.empty_like(emission)
    if len(plan.chain) > 1:
        dist = haversine_matrix(coords, coords)
        post[plan.chain] = forward_backward(emission[plan.chain], dist, steps)
    for i in (plan.alone if len(plan.chain) > 1 else range(n)):
        post[i] = emission[i] / emission[i].sum()
    finder = engine.finder(options)
    order = {i: k + 1 for k, i in enumerate(plan.chain)} if len(plan.chain) > 1 else {}
    track = []
    for i, res in enumerate(results):
        if i in anchors:
            lat, lon = anchors[i]
            prob = float(post[i][haversine_matrix(np.array([anchors[i]]), coords)[0] <= finder.radius_km].sum())
        else:
            found = finder.find(post[i], 1, indices=lattice)
            best = found.places[0] if found.places else None
            lat, lon, prob = (best.lat, best.lon, best.probability) if best else (None, None, None)
        single = NOTE_SINGLE if len(plan.chain) == 1 and i in plan.chain else None
        rows[res.source] = {
            "trip_order": order.get(i), "taken_at": plan.taken_at.get(i), "trip_lat": lat, "trip_lon": lon,
            "trip_probability": prob,
            "trip_region90_km2": region_area_km2(coords[:, 0], coords[:, 1], post[i]),
            "trip_note": _note(NOTE_ANCHOR if i in anchors else None, plan.notes.get(i), single),
        }
        if i in order and lat is not None:
            track.append((float(lat), float(lon), res.source))
    track.sort(key=lambda t: rows[t[2]]["trip_order"])
    summary = {"photos": n, "chain": len(order), "alone": len(plan.alone), "anchors": len(anchors),
               "lattice": int(lattice.size), "speed_kmh": trip.speed_kmh, "slack_km": trip.slack_km,
               "start": plan.taken_at.get(plan.chain[0]) if order else None,
               "end": plan.taken_at.get(plan.chain[-1]) if order else None,
               "note": NOTE_FILE_ORDER if order and not plan.taken_at else None}
    return TripAnswer(rows, track, summary)


def track_length_km(track: Sequence[Tuple[float, float, str]]) -> float:
    pts = np.array([t[:2] for t in track], np.float64).reshape(-1, 2)
    if len(pts) < 2:
        return 0.0
    return float(sum(haversine_matrix(pts[k:k + 1], pts[k + 1:k + 2])[0, 0] for k in range(len(pts) - 1)))


def apply_to_summary(rows: List[Dict[str, Any]], answer: TripAnswer) -> None:
    """Write the trip's columns into summary rows (dicts from core/io/results.summary_row), by source, in place."""
    for row in rows:
        got = answer.rows.get(row.get("source"))
        if got is not None:
            row.update(got)
