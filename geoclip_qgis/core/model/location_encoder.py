"""GeoCLIP's location encoder: (lat, lon) -> Equal Earth -> three random-Fourier-feature capsules -> 512-d.

The arithmetic follows the paper's definition in float32 and in the same order of operations as the reference
package, because the sigma = 256 capsule turns a one-ulp change of the projected coordinate into ~1e-4 of
phase: matching the oracle to 1e-5 needs identical rounding, not merely the same formula.
"""

from __future__ import annotations

import math
from typing import Dict, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .. import cancel
from .precision import flush_denormals

# Equal Earth polynomial coefficients (Šavrič, Patterson & Jenny 2018) and GeoCLIP's scale factor.
_A1, _A2, _A3, _A4 = 1.340264, -0.081106, 0.000893, 0.003796
_SCALE = 66.50336
# Points per encoder step: large enough for full-speed matrix products, small enough that a cancel (checked
# between steps) lands within a fraction of a second on a CPU.
CANCEL_STEP = 2048
# Lattice maps (core/maps/encoder_rasters.py): a capsule is evaluated only on interpolation nodes spaced so that its
# highest Fourier frequency advances at most NODE_PHASE radians from node to node, and bilinear between them.
# At 0.005° that leaves the sigma = 256 capsule dense and the other two on nodes 0.02°+ apart: a third of the
# work, with cosine similarities within ~3e-4 of the dense encoder (<= 0.012 nats at GeoCLIP's logit scale,
# inside the 0.02-nat bound used for stored fields; tests/test_location_encoder.py measures it).
NODE_PHASE = 0.06
PLANE_PER_DEGREE = 0.008  # an upper bound of |d(xy)/d(degree)| on GeoCLIP's scaled Equal Earth plane


def equal_earth(latlon: torch.Tensor) -> torch.Tensor:
    """Project (N, 2) degrees (lat, lon) to GeoCLIP's scaled Equal Earth plane, float32."""
    lat = torch.deg2rad(latlon[:, 0])
    lon = torch.deg2rad(latlon[:, 1])
    root3 = torch.sqrt(torch.tensor(3.0, device=latlon.device))
    theta = torch.asin(root3 / 2 * torch.sin(lat))
    t2 = theta**2
    denom = 3 * (9 * _A4 * theta**8 + 7 * _A3 * theta**6 + 3 * _A2 * t2 + _A1)
    x = (2 * root3 * lon * torch.cos(theta)) / denom
    y = _A4 * theta**9 + _A3 * theta**7 + _A2 * theta**3 + _A1 * theta
    return torch.stack((x, y), dim=1) * _SCALE / 180


class FourierCapsule(nn.Module):
    """One scale: fixed Gaussian Fourier features (sigma sets the spatial frequency), an MLP and a head."""

    def __init__(self, n_freq: int = 256, width: int = 1024, out: int = 512):
        super().__init__()
        self.register_buffer("rff_b", torch.zeros(n_freq, 2))
        # ReLU in place: the same values without a fresh buffer per layer (the encoder is never differentiated).
        self.hidden = nn.Sequential(
            nn.Linear(2 * n_freq, width), nn.ReLU(inplace=True),
            nn.Linear(width, width), nn.ReLU(inplace=True),
            nn.Linear(width, width), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(width, out)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        # Phases reach thousands of radians at sigma = 256: never let autocast run this product in fp16.
        with torch.autocast(xy.device.type, enabled=False):
            phase = (2 * math.pi * xy.float()) @ self.rff_b.T
        feats = torch.cat((torch.cos(phase), torch.sin(phase)), dim=-1)
        return self.head(self.hidden(feats))


class LocationEncoder(nn.Module):
    """Sum of the capsules' outputs; not normalised (retrieval normalises)."""

    def __init__(self, n_capsules: int = 3, dim: int = 512):
        super().__init__()
        self.dim = dim
        self.capsules = nn.ModuleList(FourierCapsule(out=dim) for _ in range(n_capsules))

    @classmethod
    def from_state(cls, state: Dict[str, torch.Tensor], n_capsules: int = 3) -> LocationEncoder:
        enc = cls(n_capsules)
        enc.load_state_dict(state, strict=True)
        flush_denormals(enc)  # bit-identical, 4.7x faster on x86 (precision.flush_denormals)
        return enc.eval().requires_grad_(False)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        xy = equal_earth(latlon.to(torch.float32))
        out: Optional[torch.Tensor] = None
        for capsule in self.capsules:  # ((0 + a) + b) + c, as the reference sums, without a zeros tensor
            y = capsule(xy).float()
            out = y.add_(0.0) if out is None else out.add_(y)  # 0 + a: a, and -0.0 becomes +0.0 as there
        return out if out is not None else torch.zeros(latlon.shape[0], self.dim, device=latlon.device)

    @property
    def device(self) -> torch.device:
        return self.capsules[0].rff_b.device

    def node_steps(self, res_deg: float) -> list:
        """Per capsule: the spacing of its interpolation nodes in cells of a `res_deg` lattice (1: every cell)."""
        steps = []
        for capsule in self.capsules:
            freq = float(capsule.rff_b.norm(dim=1).max())  # cycles per unit of the plane
            spacing = NODE_PHASE / (2 * math.pi * max(freq, 1e-9) * PLANE_PER_DEGREE)  # degrees
            steps.append(max(1, int(spacing // res_deg)))
        return steps

    @torch.inference_mode()
    def encode_lattice(self, lats: np.ndarray, lons: np.ndarray, res_deg: float,
                       normalise: bool = False) -> torch.Tensor:
        """(len(lats) * len(lons), 512) features of a regular lattice (rows of `lats`, columns of `lons`, row-major)
        at `res_deg` spacing, on the CPU. Each capsule runs only on its nodes (node_steps; the lattice's first and
        last rows and columns always among them) and is bilinear in between; a lattice crossing the antimeridian
        (where the plane jumps) or too small to gain is encoded cell by cell, exactly as `encode`."""
        lats = np.asarray(lats, dtype=np.float64)
        lons = np.asarray(lons, dtype=np.float64)
        steps = self.node_steps(res_deg)
        if np.any(np.diff(lons) <= 0) or max(steps) == 1 or min(len(lats), len(lons)) < 3:
            la, lo = np.meshgrid(lats, lons, indexing="ij")
            return self.encode(np.stack([la.ravel(), lo.ravel()], 1), normalise=normalise)
        dev = self.device
        out: Optional[torch.Tensor] = None
        for capsule, step in zip(self.capsules, steps):
            rows = _nodes(len(lats), step)
            cols = _nodes(len(lons), step)
            la, lo = np.meshgrid(lats[rows], lons[cols], indexing="ij")
            pts = torch.as_tensor(np.stack([la.ravel(), lo.ravel()], 1), dtype=torch.float32)
            node = torch.empty(pts.shape[0], self.dim)
            for start in range(0, pts.shape[0], CANCEL_STEP):
                cancel.check()
                xy = equal_earth(pts[start:start + CANCEL_STEP].to(dev))
                node[start:start + CANCEL_STEP] = capsule(xy).float().cpu()
            if step > 1:
                node = node.reshape(len(rows), len(cols), self.dim)
                node = _interpolate(_interpolate(node, rows, len(lats), 0), cols, len(lons), 1).reshape(-1, self.dim)
            out = node if out is None else out.add_(node)
        return torch.nn.functional.normalize(out, dim=1) if normalise else out

    @torch.inference_mode()
    def encode(
        self, latlon: Sequence | np.ndarray | torch.Tensor, batch: int = 8192, normalise: bool = False,
        autocast: bool = False,
    ) -> torch.Tensor:
        """Encode points in batches; returns float32 on the CPU. The (N, 512) result is refused up front when it
        would not fit in the memory budget (callers with more points stream through iter_encode)."""
        from .gallery import check_gallery_size

        check_gallery_size(int(np.asarray(latlon).size) // 2, "points to encode")
        parts = list(self.iter_encode(latlon, batch, normalise, autocast))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)  # one step: no copy

    @torch.inference_mode()
    def iter_encode(
        self, latlon: Sequence | np.ndarray | torch.Tensor, batch: int = 8192, normalise: bool = False,
        autocast: bool = False,
    ) -> Iterator[torch.Tensor]:
        pts = torch.as_tensor(np.asarray(latlon, dtype=np.float32)).reshape(-1, 2)
        if pts.shape[0] == 0:
            yield torch.zeros(0, self.dim)
            return
        dev = self.device
        batch = min(batch, CANCEL_STEP)
        for start in range(0, pts.shape[0], batch):
            cancel.check()  # one step is ~0.3 s on a 2-core CPU: a cancel lands here
            chunk = pts[start:start + batch].to(dev)
            if autocast and dev.type == "cuda":
                # Projection and Fourier phases stay fp32 (large phases); the MLPs run in fp16.
                with torch.autocast("cuda", dtype=torch.float16):
                    emb = self(chunk).float()
            else:
                emb = self(chunk)
            if normalise:
                emb = torch.nn.functional.normalize(emb, dim=1)
            yield emb.cpu()


def _nodes(n: int, step: int) -> np.ndarray:
    """Every `step`-th index of 0 … n-1, with n-1 always included."""
    return np.unique(np.r_[np.arange(0, n, step), n - 1])


# Up to this many nodes on an axis, interpolating along it is one matrix product with the (n, nodes) weights (two
# non-zeros a row): BLAS speed, no gathered copies; 4-6x faster on a city lattice (a fifth of a "places like here"
# raster's time went to the gathers). Beyond it the products' cost (nodes per output value) outgrows the gathers.
DENSE_NODES = 128


def _weights(at: np.ndarray, n: int):
    """For each of 0 … n-1: the index of the node before it and its weight towards the next node (float32)."""
    pos = np.interp(np.arange(n), at, np.arange(len(at)))
    lo = np.minimum(np.floor(pos).astype(np.int64), len(at) - 2)
    return torch.as_tensor(lo), torch.as_tensor(pos - lo, dtype=torch.float32)


def _interpolate(node: torch.Tensor, at: np.ndarray, n: int, axis: int) -> torch.Tensor:
    """Linear interpolation along `axis` (0 or 1 of a (rows, cols, dim) tensor) from values at indices `at` onto
    0 … n-1: a matrix product for up to DENSE_NODES nodes, gathers beyond (within one ulp of each other)."""
    if len(at) > DENSE_NODES:
        return _bilinear(node, at, n, axis)
    lo, w = _weights(at, n)
    m = torch.zeros(n, len(at))
    idx = torch.arange(n)
    m[idx, lo] = 1 - w
    m[idx, lo + 1] = w
    if axis == 0:
        return (m @ node.reshape(len(at), -1)).reshape(n, *node.shape[1:])
    return torch.matmul(m, node)


def _bilinear(node: torch.Tensor, at: np.ndarray, n: int, axis: int) -> torch.Tensor:
    """Linear interpolation along `axis` from values at indices `at` onto 0 … n-1, by gathers."""
    lo_t, w = _weights(at, n)
    a, b = node.index_select(axis, lo_t), node.index_select(axis, lo_t + 1)
    shape = [1, 1, 1]
    shape[axis] = n
    w = w.reshape(shape)
    return a * (1 - w) + b * w

