"""Where a photo's probability lies over the gallery, compactly: the highest-probability gallery points holding a
`level` share of the mass (at most `most` of them), for a report's map.

Why over the gallery and not a raster: the report maps every photo of a case, and the softmax over the gallery is
already computed (one matrix product, no location field, no encoder); the points are where GeoCLIP's answer can
be, and their density is the likelihood the analyst sees. The 90 % set drawn is the gallery's highest-density set,
not the raster region of core/answers/regions.py (the summary's region90_km2, when asked, is that one)."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch

Point = Tuple[float, float, float]  # lat, lon, probability
DEFAULT_MOST = 1500


@torch.inference_mode()
def mass_support(engine, feats: torch.Tensor, aoi=None, level: float = 0.9, most: int = DEFAULT_MOST
                 ) -> List[List[Point]]:
    """Per query: [(lat, lon, p), ...] by falling probability until their sum reaches `level` (or `most` points);
    inside the area of interest when there is one (renormalised there, as the answer is)."""
    gallery = engine.gallery()
    probs = gallery.logits(feats, engine.scale).softmax(dim=-1)
    if aoi is not None:
        engine._restrict(probs, aoi)
    top = torch.topk(probs, min(len(gallery), max(1, int(most))), dim=1)
    values, idx = top.values.double().cpu().numpy(), top.indices.cpu().numpy()
    out = []
    for prow, irow in zip(values, idx):
        n = int(np.searchsorted(np.cumsum(prow), level) + 1)
        keep = slice(0, min(n, len(prow)))
        out.append([(float(gallery.coords[i][0]), float(gallery.coords[i][1]), float(p))
                    for p, i in zip(prow[keep], irow[keep]) if p > 0])
    return out
