"""What in the photo drove the answer: gradient × input through the CLIP image tower and GeoCLIP's MLP to the top
place's logit, written as a heat map blended on the photo (PNG).

Why gradient × input and not attention rollout: rollout multiplies the vision tower's attention maps and stops
there, so it says where the tower looked, for any answer, not what raised *this* place's score; it never sees the
MLP nor the location embedding. Gradient × input is target-specific (the logit of the top gallery point:
exp(logit_scale) · cosine with its location embedding), goes through every part that makes the score, works for any
tower the transformers package builds, and costs one forward and one backward pass (scripts/bench_saliency.py).

Computed only when a request asks for it (AnswerOptions.saliency_dir): a run without it never builds a graph.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import InputError
from ..io.files import atomic_output
from .precision import tower_context

log = logging.getLogger("geoclip_qgis")
OVERLAY_MAX_SIDE = 1024  # the PNG's longest side: enough to read on a report page, small enough to embed
SUFFIX = ".saliency.png"


def saliency_map(engine, pixels: torch.Tensor, gallery_index: int) -> np.ndarray:
    """(H, W) float32 in [0, 1] over the model's input crop: |Σ_channels gradient × input| of the logit of gallery
    point `gallery_index`, averaged per ViT patch (the tower's own resolution), scaled by its 99th percentile."""
    enc = engine.image_encoder
    if getattr(enc, "precision", "fp32") == "int8":
        raise InputError("a saliency map needs gradients, which int8 layers do not have",
                         hint="choose fp32 or bf16 precision for runs that ask 'why'")
    target = place_embedding(engine, gallery_index)
    dtype = next(enc.vision.parameters()).dtype
    x = pixels.detach()[None].to(enc.device, dtype).requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(place_logit(engine, x, target)[0], x)
    heat = (grad.float() * x.detach().float()).sum(dim=1, keepdim=True).abs()  # (1, 1, H, W)
    patch = _patch_size(enc)
    if patch > 1 and heat.shape[-1] % patch == 0 and heat.shape[-2] % patch == 0:
        heat = torch.nn.functional.avg_pool2d(heat, patch)
        heat = torch.nn.functional.interpolate(heat, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    arr = heat[0, 0].cpu().numpy().astype(np.float32)
    top = float(np.percentile(arr, 99)) if arr.size else 0.0
    if not np.isfinite(top) or top <= 0:
        return np.zeros_like(arr)
    return np.clip(arr / top, 0.0, 1.0)


def place_embedding(engine, gallery_index: int) -> torch.Tensor:
    """The unit location embedding of one gallery point, as a plain tensor (the gallery's are inference tensors,
    which autograd refuses to save)."""
    emb = engine.gallery().embeddings[int(gallery_index)].detach().clone().float()
    return torch.nn.functional.normalize(emb.to(engine.image_encoder.device), dim=0)


def place_logit(engine, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) the score retrieval ranks by, for preprocessed pixels `x` and one location embedding: exp(logit_scale)
    times the cosine of GeoCLIP's image feature with it (core/model/gallery.py logits), differentiable in `x`."""
    enc = engine.image_encoder
    with tower_context(enc.precision, enc.device):
        out = enc.vision(pixel_values=x)
        feats = out.image_embeds if hasattr(out, "image_embeds") else out[0]
    emb = torch.nn.functional.normalize(enc.mlp(feats.float()), dim=1)
    return engine.scale * (emb @ target)


def _patch_size(enc) -> int:
    cfg = getattr(getattr(enc.vision, "config", None), "patch_size", None)
    return int(cfg) if isinstance(cfg, int) and cfg > 0 else 1


def overlay_path(folder: os.PathLike | str, source: str) -> Path:
    """Where a photo's overlay goes: its name plus a short hash of its full path (two photos called IMG_0001.jpg in
    two folders never share a PNG)."""
    tag = hashlib.sha256(os.fsencode(str(source))).hexdigest()[:8]
    return Path(folder) / f"{Path(str(source)).stem}-{tag}{SUFFIX}"


def crop_box(size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """The part of a (w, h) photo the model sees: CLIP's processor resizes the short side and crops the centre
    square, so the map covers that square only (left, top, right, bottom)."""
    w, h = size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return left, top, left + side, top + side


def _colour(heat: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8: red through orange to yellow (reads on photos, in colour and in grey)."""
    r = np.full_like(heat, 1.0)
    g = np.clip(heat * 1.1, 0, 1) * 0.9
    b = np.clip(heat * 2.0 - 1.0, 0, 1) * 0.4
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def render_overlay(image, heat: np.ndarray):
    """The photo (PIL, any size) with `heat` blended over the square the model saw; outside it the photo is dimmed
    (the model did not see it). Same aspect as the photo, longest side at most OVERLAY_MAX_SIDE."""
    from PIL import Image

    photo = image.convert("RGB")
    photo.thumbnail((OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE))
    base = np.asarray(photo, dtype=np.float32)
    out = base * 0.45  # dimmed outside the crop
    left, top, right, bottom = crop_box(photo.size)
    side = right - left
    if side > 0:
        h = Image.fromarray((heat * 255).astype(np.uint8), "L").resize((side, side), Image.BILINEAR)
        h = np.asarray(h, dtype=np.float32) / 255.0
        # Shown: what stands out above the photo's typical pixel (its median), so a map that is high everywhere
        # does not paint the whole photo; below the median the photo stays clear.
        base_level = float(np.median(h))
        h = np.clip((h - base_level) / max(1e-6, 1.0 - base_level), 0, 1)
        alpha = (0.85 * np.clip(h * 1.2, 0, 1))[..., None]
        inside = base[top:bottom, left:right] * (1 - alpha) + _colour(h).astype(np.float32) * alpha
        out[top:bottom, left:right] = inside
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def write_overlay(image, heat: np.ndarray, path: os.PathLike | str) -> Path:
    """Render and write the overlay PNG atomically (core/io/files.py)."""
    from PIL.PngImagePlugin import PngInfo

    from ..io.plan import MARK

    info = PngInfo()
    info.add_text(MARK, "saliency")  # ours (core/io/plan.py is_ours), as the raster previews are
    final = Path(path)
    with atomic_output(final, "saliency") as tmp:
        render_overlay(image, heat).save(tmp, format="PNG", pnginfo=info)
    return final


def explain(engine, pixels: torch.Tensor, gallery_index: int, source: str, folder: os.PathLike | str,
            min_side: Optional[int] = None) -> Path:
    """One photo's overlay in `folder`: its saliency for gallery point `gallery_index`, blended on the photo
    (re-read at reduced size: the pixels the model saw are 224 × 224 and carry no colour to show)."""
    from ..io.decode import open_photo

    heat = saliency_map(engine, pixels, gallery_index)
    Path(folder).mkdir(parents=True, exist_ok=True)
    image = open_photo(source, max(min_side or 0, OVERLAY_MAX_SIDE)).image
    return write_overlay(image, heat, overlay_path(folder, source))


def explain_or_log(engine, decoded, gallery_index: int, folder: str, min_side: Optional[int]) -> Optional[str]:
    """`explain` for a decoded photo of a run; a photo whose overlay cannot be made keeps its answer, and the
    reason is logged (int8 precision, a file gone since it was read, a full disk)."""
    from ..errors import GeoClipError

    try:
        return str(explain(engine, decoded.pixels, gallery_index, decoded.source, folder, min_side))
    except (GeoClipError, OSError, RuntimeError) as exc:
        log.warning("no saliency map for %s: %s", decoded.source, exc)
        return None
