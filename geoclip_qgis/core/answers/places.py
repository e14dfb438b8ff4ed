"""Distinct places: the retrieval's probability mass merged into places a person can read.

The 100K gallery is dense where Flickr photos are, so the raw top-k often names one city several times and splits
its probability between the copies. Places fix that with one greedy rule over the candidate points (below):

1. the most probable point not yet claimed seeds a place;
2. the place claims every unclaimed point within `radius_km` (great circle, default 25 km) of its seed;
3. repeat; the places are then ranked by their probability and the top k returned.

A place's probability is the *sum* of its points' probabilities; its position is the probability-weighted centre
(the normalised mean of unit vectors, so places across the antimeridian or at a pole come out right); its seed is
kept as the best point, with the number of points merged and their spread around the centre. The seeds of two
places are always more than `radius_km` apart (a later seed was unclaimed, so it lay outside every earlier seed's
radius). `remaining` is the mass that no returned place holds: places + remaining = 1.

An area of interest restricts the finder itself (`inside`, one flag per gallery point): only the points inside are
candidates, so a point outside never seeds a place, never merges into a place inside, and never counts in its
`n_points` or `max_km`, whatever probability the caller hands over for it. Every front door (the engine's `rank`,
the CLI, the worker, Ray) goes through `PlaceFinder.find`, so this is the one place the rule lives.

Candidates: the most probable points that hold 99.9 % of the mass, at most 2,000 (`top_mass`), so the work is
bounded whatever the query. Membership is a dot product of unit vectors (within r  <=>  u·v >= cos(r / R)); a seed
only scans the free candidates in its band of z (|Δz| is at most the chord of r), and the greedy pass stops as soon
as no later place could enter the top k: the k-th place so far outweighs the unclaimed mass, or the most unclaimed
mass in any 3 x 3 x 3 block of cubes (edge = the chord) around a free point. The mass
outside the candidates (`PlaceSet.tail`) belongs to no place and stays in `remaining`. On the real gallery the
2,000 cap often binds: scripts/bench_answers.py's photo-like queries leave ~2–4 % outside, random unit vectors (a
nearly flat softmax) ~64 %; their places are then lower bounds, which `tail` makes visible.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ...shared.geodesy import EARTH_RADIUS_KM
from ..errors import InputError

DEFAULT_RADIUS_KM = 25.0
DEFAULT_MAX_POINTS = 2000
DEFAULT_MASS = 0.999


def unit_vectors(latlon: np.ndarray) -> np.ndarray:
    """(N, 2) lat, lon in degrees -> (N, 3) float64 unit vectors (x towards 0°E, z towards the north pole)."""
    ll = np.radians(np.asarray(latlon, dtype=np.float64).reshape(-1, 2))
    cos_lat = np.cos(ll[:, 0])
    return np.stack([cos_lat * np.cos(ll[:, 1]), cos_lat * np.sin(ll[:, 1]), np.sin(ll[:, 0])], axis=1)


def to_latlon(vectors: np.ndarray) -> np.ndarray:
    """(N, 3) vectors (any length > 0) -> (N, 2) lat, lon in degrees, lon in [-180, 180]."""
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    lat = np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1])))
    lon = np.degrees(np.arctan2(v[:, 1], v[:, 0]))
    return np.stack([lat, lon], axis=1)


def chord_to_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle distance from the chord between unit vectors: 2R·asin(c/2), the haversine formula of
    core.geodesy (sqrt(a) there is c/2 here), accurate at small distances where arccos(u·v) is not."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0))


def distances_km(vectors: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Great-circle km from each of (N, 3) unit `vectors` to one unit vector `to`."""
    return chord_to_km(np.linalg.norm(np.asarray(vectors) - np.asarray(to)[None, :], axis=1))


def top_mass(probs: np.ndarray, max_points: int = DEFAULT_MAX_POINTS, mass: float = DEFAULT_MASS
             ) -> Tuple[np.ndarray, np.ndarray]:
    """The most probable points, best first, that hold `mass` of the total, at most `max_points`:
    (probabilities float64, indices). What to ship from a GPU instead of the whole vector."""
    return _top_mass(_as_probs(probs), max_points, mass)


def _top_mass(p: np.ndarray, max_points: int, mass: float) -> Tuple[np.ndarray, np.ndarray]:
    m = min(int(max_points), p.size)
    idx = np.argpartition(p, p.size - m)[p.size - m:] if m < p.size else np.arange(p.size)
    cp = p[idx].astype(np.float64)
    order = np.argsort(-cp, kind="stable")
    idx, cp = idx[order], cp[order]
    keep = int(np.searchsorted(np.cumsum(cp), mass * float(p.sum(dtype=np.float64)), side="left")) + 1
    return cp[:keep], idx[:keep]


def _as_probs(probs) -> np.ndarray:
    """A flat float view (float32 stays float32: one pass fewer over 100K points) after one finiteness/sign check."""
    p = np.asarray(probs).ravel()
    if p.dtype.kind != "f":
        p = p.astype(np.float64)
    if p.size and (not np.isfinite(p.sum(dtype=np.float64)) or p.min() < 0):
        raise InputError("probabilities must be finite and non-negative")
    return p


@dataclass
class Place:
    """One distinct place: where, how likely, and how spread out the gallery points it merged are."""

    rank: int
    lat: float  # probability-weighted centre
    lon: float
    probability: float  # sum of the merged points' probabilities
    best_lat: float  # the seed: the most probable point of the place
    best_lon: float
    best_probability: float
    best_index: int  # the seed's index in the gallery
    n_points: int
    spread_km: float  # probability-weighted mean distance of the points to the centre
    max_km: float  # the farthest merged point from the centre

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PlaceSet:
    """The top-k places of one query and the mass they leave: sum(p.probability) + remaining == 1."""

    places: List[Place]
    remaining: float
    radius_km: float
    candidates: int  # how many gallery points were considered
    tail: float  # mass outside the candidates (part of `remaining`)
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"places": [p.to_dict() for p in self.places], "remaining": self.remaining,
                "radius_km": self.radius_km, "candidates": self.candidates, "tail": self.tail}


class PlaceFinder:
    """Merges probabilities over one fixed gallery into places; holds the gallery's unit vectors (built once)."""

    def __init__(self, coords: np.ndarray, radius_km: float = DEFAULT_RADIUS_KM,
                 max_points: int = DEFAULT_MAX_POINTS, mass: float = DEFAULT_MASS,
                 inside: Optional[np.ndarray] = None):
        self.coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        self.vectors = unit_vectors(self.coords)
        self.inside = None if inside is None else np.asarray(inside, dtype=bool).ravel()
        if self.inside is not None and self.inside.size != self.coords.shape[0]:
            raise InputError(f"an area mask of {self.inside.size} flags for a gallery of {self.coords.shape[0]} "
                             "points")
        self.radius_km = check_radius(radius_km)
        if int(max_points) < 1:
            raise InputError(f"max_points must be at least 1, got {max_points}")
        if not 0.0 < float(mass) <= 1.0:
            raise InputError(f"mass must lie in (0, 1], got {mass}")
        self.max_points = int(max_points)
        self.mass = float(mass)

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def find(self, probs: np.ndarray, k: int = 5, indices: Optional[np.ndarray] = None,
             radius_km: Optional[float] = None) -> PlaceSet:
        """Top-k places from a probability vector over the whole gallery, or from `probs` of the gallery points
        `indices` (a top-M the caller already has; the mass they do not hold stays in `remaining`). With an area
        (`inside`), points outside it are no candidates at all: the places are those of the area only."""
        radius = self.radius_km if radius_km is None else check_radius(radius_km)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
            raise InputError(f"the number of places must be a positive integer, got {k!r}")
        p = _as_probs(probs)
        if indices is None:
            if p.size != len(self):
                raise InputError(f"{p.size} probabilities for a gallery of {len(self)} points",
                                 hint="pass the whole softmax row, or indices= for a top-M")
            if self.inside is not None:
                p = np.where(self.inside, p, p.dtype.type(0))
            cp, ci = _top_mass(p, self.max_points, self.mass)
        else:
            ci = np.asarray(indices, dtype=np.int64).ravel()
            if ci.size != p.size:
                raise InputError(f"{p.size} probabilities for {ci.size} indices")
            if ci.size and (ci.min() < 0 or ci.max() >= len(self)):
                raise InputError("place indices fall outside the gallery")
            order = np.argsort(-p, kind="stable")[: self.max_points]
            cp, ci = p[order].astype(np.float64), ci[order]
        if self.inside is not None:  # the area's points only: nothing outside seeds, joins or is counted
            keep = self.inside[ci]
            cp, ci = cp[keep], ci[keep]
        if not cp.size:
            return PlaceSet([], 1.0, radius, 0, 1.0, {"places_formed": 0})
        vec = self.vectors[ci]
        labels, sums = _greedy(cp, vec, int(k), math.cos(radius / EARTH_RADIUS_KM))
        top = np.argsort(-sums, kind="stable")[: int(k)]  # stable: ties keep the seed order
        places = [self._place(r + 1, labels == j, cp, ci, vec) for r, j in enumerate(top.tolist())]
        claimed = math.fsum(pl.probability for pl in places)
        stats = {"places_formed": int(sums.size)}
        return PlaceSet(places, max(0.0, 1.0 - claimed), radius, int(cp.size), max(0.0, 1.0 - math.fsum(cp)), stats)

    def _place(self, rank: int, members: np.ndarray, cp: np.ndarray, ci: np.ndarray, vec: np.ndarray) -> Place:
        seed = int(np.argmax(members))  # candidates are sorted, so the first member is the seed
        w = cp[members]
        v = vec[members]
        total = math.fsum(w)
        centre = (w[:, None] * v).sum(axis=0) if total > 0 else v.sum(axis=0)
        norm = float(np.linalg.norm(centre))
        centre = centre / norm if norm > 1e-12 and len(w) > 1 else vec[seed]
        d = distances_km(v, centre)
        spread = float((w * d).sum() / total) if total > 0 else float(d.mean())
        best = int(ci[seed])
        blat, blon = self.coords[best]
        lat, lon = (blat, blon) if len(w) == 1 else to_latlon(centre)[0]
        return Place(rank, float(lat), float(lon), total, float(blat), float(blon), float(cp[seed]), best,
                     int(members.sum()), spread, float(d.max()))


def _greedy(cp: np.ndarray, vec: np.ndarray, k: int, cos_r: float) -> Tuple[np.ndarray, np.ndarray]:
    """Label each candidate (sorted best first) with its place; returns (labels, place sums).

    A seed only looks at the free candidates in its band of z (|Δz| <= the chord of the radius, found by bisection
    in a z-sorted list), so a place costs a few operations on a handful of points. The pass stops as soon as no
    later place could enter the top k: when the k-th largest place so far outweighs every place still possible,
    bounded by the unclaimed mass in the 3 x 3 x 3 block of cubes (edge = the chord) around any free point, which
    holds every point its place could claim. Points never reached keep the label -1."""
    labels = np.full(cp.size, -1, dtype=np.int64)
    free = np.ones(cp.size, dtype=bool)
    by_z = np.argsort(vec[:, 2], kind="stable")
    zs = vec[by_z, 2].tolist()
    z_of = vec[:, 2].tolist()
    chord = math.sqrt(max(0.0, 2.0 * (1.0 - cos_r))) + 1e-12
    cell_of, neighbours, cell_mass, cell_count = _cube_cells(vec, cp, max(chord, 2.0**-18))
    sums: List[float] = []
    kth: List[float] = []  # min-heap of the k largest sums
    free_mass = float(cp.sum())
    pending: List[np.ndarray] = []  # claimed since the cubes' masses were last brought up to date
    seed = 0
    while free[seed]:
        band = by_z[bisect.bisect_left(zs, z_of[seed] - chord):bisect.bisect_right(zs, z_of[seed] + chord)]
        band = band[free[band]]
        members = band[(vec[band] @ vec[seed] >= cos_r) | (band == seed)]  # rounding never drops the seed
        free[members] = False
        labels[members] = len(sums)
        pending.append(members)
        s = float(cp[members].sum())
        sums.append(s)
        free_mass -= s
        if len(kth) < k:
            heapq.heappush(kth, s)
        elif s > kth[0]:
            heapq.heapreplace(kth, s)
        if len(kth) == k and (free_mass < kth[0] or (len(sums) % 4 == 0 and _bound(
                pending, cp, cell_of, neighbours, cell_mass, cell_count) < kth[0])):
            break
        seed = int(free.argmax())
    return labels, np.asarray(sums)


def _bound(pending: List[np.ndarray], cp: np.ndarray, cell_of: np.ndarray, neighbours: np.ndarray,
           cell_mass: np.ndarray, cell_count: np.ndarray) -> float:
    """The largest place still possible: the most unclaimed mass in any occupied cube's 27-cube block."""
    done = np.concatenate(pending)
    pending.clear()
    cell_mass -= np.bincount(cell_of[done], weights=cp[done], minlength=cell_mass.size)
    cell_count -= np.bincount(cell_of[done], minlength=cell_count.size)
    live = cell_count[:-1] > 0
    return float(cell_mass[neighbours[live]].sum(axis=1).max()) if live.any() else 0.0


def _cube_cells(vec: np.ndarray, cp: np.ndarray, edge: float):
    """Cubes of `edge` over the unit vectors: each point's cube, the 27 neighbouring cubes of every occupied cube
    (an empty pad cube where none), and each cube's mass and point count (the pad last, always 0)."""
    off = 1 << 19
    keys = np.floor(vec / edge).astype(np.int64) + off
    code = (keys[:, 0] << 40) | (keys[:, 1] << 20) | keys[:, 2]
    cubes, cell_of = np.unique(code, return_inverse=True)
    cell_of = cell_of.ravel()
    steps = np.array([(dx << 40) + (dy << 20) + dz for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)])
    want = cubes[:, None] + steps[None, :]
    at = np.minimum(np.searchsorted(cubes, want), cubes.size - 1)
    neighbours = np.where(cubes[at] == want, at, cubes.size)
    cell_mass = np.append(np.bincount(cell_of, weights=cp, minlength=cubes.size), 0.0)
    cell_count = np.append(np.bincount(cell_of, minlength=cubes.size), 0)
    return cell_of, neighbours, cell_mass, cell_count


def distinct_places(probs: np.ndarray, coords: np.ndarray, k: int = 5, radius_km: float = DEFAULT_RADIUS_KM,
                    indices: Optional[np.ndarray] = None, max_points: int = DEFAULT_MAX_POINTS,
                    mass: float = DEFAULT_MASS, inside: Optional[np.ndarray] = None) -> PlaceSet:
    """One-off form of `PlaceFinder(coords, ...).find(probs, k, indices)`; keep a PlaceFinder per gallery when
    ranking many queries (it holds the gallery's unit vectors)."""
    return PlaceFinder(coords, radius_km, max_points, mass, inside).find(probs, k, indices)


def check_radius(radius_km: float) -> float:
    r = float(radius_km)
    if not (math.isfinite(r) and 0.0 < r <= math.pi * EARTH_RADIUS_KM):
        raise InputError(f"the place radius must be a positive number of km up to half the Earth's circumference, "
                         f"got {radius_km}", hint="e.g. --place-radius 25")
    return r
