"""Our location encoder against the official package on identical weights."""

from __future__ import annotations

import numpy as np
import torch


def _points(n: int = 1200) -> np.ndarray:
    rng = np.random.default_rng(42)
    pts = np.c_[rng.uniform(-90, 90, n), rng.uniform(-180, 180, n)]
    edges = [[90, 0], [-90, 0], [90, 180], [-90, -180], [0, 180], [0, -180], [45, 179.999], [-45, -179.999],
             [89.9999, 12.5], [-89.9999, -77], [0, 0], [51.5, -0.12], [-33.86, 151.2]]
    return np.r_[pts, edges].astype(np.float32)


def test_matches_official_location_encoder(weights):
    from geoclip import LocationEncoder as Official

    from geoclip_qgis.core.model.location_encoder import LocationEncoder

    ours = LocationEncoder.from_state(weights.location)
    official = Official().eval()
    pts = torch.from_numpy(_points())
    assert pts.shape[0] >= 1000
    with torch.no_grad():
        got, want = ours(pts), official(pts)
    if torch.backends.mkl.is_available():
        # The engine's torch (PyPI, MKL): bit for bit (int32 views: torch.equal takes -0.0 for +0.0).
        assert torch.equal(got.view(torch.int32), want.view(torch.int32)), (got - want).abs().max().item()
    else:
        # Debian's torch 2.6 (the QGIS 3.44 lane: generic BLAS, no AVX kernels) runs the official package's
        # TorchScript Fourier features through its own fuser, and there the flushed denormal weights are not
        # below every partial sum: a few ulps apart (3.4e-8 measured), never more.
        assert (got - want).abs().max().item() <= 1e-6


def test_batched_encode_equals_single_pass(weights):
    from geoclip_qgis.core.model.location_encoder import LocationEncoder

    enc = LocationEncoder.from_state(weights.location)
    pts = _points(300)
    whole = enc.encode(pts, batch=100_000)
    chunked = enc.encode(pts, batch=37)
    assert whole.shape == (pts.shape[0], 512)
    assert torch.allclose(whole, chunked, atol=1e-6)
    unit = enc.encode(pts[:5], normalise=True)
    assert torch.allclose(unit.norm(dim=1), torch.ones(5), atol=1e-6)


def test_equal_earth_known_values():
    """Equator/Greenwich maps to the origin; the projection is odd in lat and lon and bounded."""
    from geoclip_qgis.core.model.location_encoder import equal_earth

    xy = equal_earth(torch.tensor([[0.0, 0.0], [30.0, 60.0], [-30.0, -60.0], [90.0, 180.0]]))
    assert torch.allclose(xy[0], torch.zeros(2))
    assert torch.allclose(xy[1], -xy[2])
    assert xy.abs().max() < 1.0


def test_lattice_encoding_is_within_the_score_bound_of_the_encoder(weights):
    """Lattice maps run each capsule on nodes spaced by its frequency and interpolate: the sigma = 256 capsule stays
    dense at 0.005°, and similarities stay within 5e-4 of the dense encoder's (0.02 nats at GeoCLIP's logit scale,
    the bound for stored fields). A lattice across the antimeridian is encoded cell by cell, exactly."""
    from geoclip_qgis.core.model.location_encoder import LocationEncoder

    enc = LocationEncoder.from_state(weights.location)
    scale = float(np.exp(weights.logit_scale)) if hasattr(weights, "logit_scale") else 39.69
    steps = enc.node_steps(0.005)
    assert steps[-1] == 1 and min(steps[:-1]) >= 3, steps  # a third of the work, or less
    cases = [(np.arange(48.9975, 48.5, -0.005), np.arange(2.0025, 2.5, 0.005), 0.005),  # city, 100 x 100
             (np.arange(55.95, 44.0, -0.1), np.arange(0.05, 20.0, 0.1), 0.1)]  # region, 120 x 200
    for lats, lons, res in cases:
        la, lo = np.meshgrid(lats, lons, indexing="ij")
        dense = enc.encode(np.stack([la.ravel(), lo.ravel()], 1), normalise=True)
        lattice = enc.encode_lattice(lats, lons, res, normalise=True)
        for q in (dense[len(dense) // 2 + 7], enc.encode([[35.0, 139.0]], normalise=True)[0]):
            err = float((dense @ q - lattice @ q).abs().max())
            assert err <= 5e-4, (res, err, err * scale)
    lons = np.r_[np.arange(179.9025, 180, 0.005), np.arange(-179.9975, -179.9, 0.005)]
    lats = np.arange(10.0025, 10.1, 0.005)
    la, lo = np.meshgrid(lats, lons, indexing="ij")
    exact = enc.encode(np.stack([la.ravel(), lo.ravel()], 1))
    assert torch.equal(enc.encode_lattice(lats, lons, 0.005), exact)


def test_lattice_interpolation_by_products_equals_the_gathers():
    """Up to DENSE_NODES nodes an axis is interpolated by one matrix product (location_encoder._interpolate); it
    gives the gathers' values (_bilinear) to an ulp, on both axes, with a short last interval and nodes exact."""
    from geoclip_qgis.core.model import location_encoder as L

    g = torch.Generator().manual_seed(0)
    for n_rows, n_cols, step in ((37, 50, 4), (200, 130, 82), (9, 11, 1 + 9)):
        rows, cols = L._nodes(n_rows, step), L._nodes(n_cols, step)
        node = torch.randn(len(rows), len(cols), 16, generator=g)
        want = L._bilinear(L._bilinear(node, rows, n_rows, 0), cols, n_cols, 1)
        got = L._interpolate(L._interpolate(node, rows, n_rows, 0), cols, n_cols, 1)
        assert got.shape == want.shape == (n_rows, n_cols, 16)
        assert float((got - want).abs().max()) <= 1e-6 * float(want.abs().max())
        assert float((got[rows][:, cols] - node).abs().max()) <= 1e-6 * float(node.abs().max())
