"""Hints: a photo plus words. A text hint is fused with the photo (or a fused set) in GeoCLIP's shared space.

The fused distribution over any set of places (the gallery, a likelihood grid) is

    p(x) ∝ p_photo(x) · p_text(x)^w

renormalised: the photo's answer tempered by the hint, `w` the hint's weight (default 1: the hint counts as much as
one photo; 0: the photo's answer, exactly; large: the hint alone). Because GeoCLIP's scores are linear in the query
feature (score(x) = scale · loc(x) · q), log p_photo + w · log p_text equals, up to a constant that renormalising
removes, the score of the one feature q + w·t. So the fusion is done once, in log space, on the feature: the gallery
ranking, the places, the 90 % region and the likelihood map all read the same fused query, as photos are fused
(core/maps/likelihood.fused_query: a sum of unit features). A hint alone is the text query (geolocate_text).
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Optional

import torch

from ..errors import InputError

DEFAULT_HINT_WEIGHT = 1.0
MAX_HINT_WEIGHT = 100.0
_TEXT_FEATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_hint(hint: Optional[str]) -> Optional[str]:
    """The hint's text, stripped; None when there is none. Too long a text is refused as a text query is."""
    if hint is None or not str(hint).strip():
        return None
    from ..model.image_encoder import check_text_query

    return check_text_query(str(hint).strip())


def check_hint_weight(weight: Any) -> float:
    try:
        w = float(DEFAULT_HINT_WEIGHT if weight is None else weight)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the hint weight must be a number, got {weight!r}", hint="e.g. --hint-weight 1") from exc
    if not (math.isfinite(w) and 0.0 <= w <= MAX_HINT_WEIGHT):
        raise InputError(f"the hint weight must be between 0 and {MAX_HINT_WEIGHT:g}, got {weight!r}",
                         hint="0: the photo alone; 1 (default): the hint counts as much as the photo")
    return w


def hint_feature(engine, hint: str) -> torch.Tensor:
    """The hint's unit text feature (512,), computed once per engine and text (a batch of photos shares it)."""
    held = _TEXT_FEATURES.setdefault(engine, {})
    feat = held.get(hint)
    if feat is None:
        feat = engine.embed_text([hint])[0].float().cpu()
        if len(held) >= 16:
            held.pop(next(iter(held)))
        held[hint] = feat
    return feat


def with_hint(engine, feats: torch.Tensor, hint: Optional[str], weight: float) -> torch.Tensor:
    """(Q, 512) query features fused with the hint: feats + w·t. No hint or w = 0: `feats` itself, untouched, so the
    answer is the photo's bit for bit."""
    if not hint or weight == 0:
        return feats
    t = hint_feature(engine, hint).to(feats.device, feats.dtype)
    return feats + weight * t
