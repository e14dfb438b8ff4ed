"""Images and text into GeoCLIP's 512-d space: a frozen CLIP tower, then GeoCLIP's MLP (768 -> 768 -> 512).

The vision and text towers are loaded separately and only when needed, so photo geolocation never holds the
text tower in memory (ViT-L/14 alone is 1.2 GB in fp32) and text queries never hold the vision tower.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import nn

from .errors import BackboneError, InputError

CLIP_HUB_ID = "openai/clip-vit-large-patch14"
CLIP_ENV = "GEOCLIP_CLIP_PATH"
PROJECTION_DIM = 768
MAX_TEXT_TOKENS = 77
_HOWTO = (
    f"download {CLIP_HUB_ID} once (the plugin's model manager does it) and name its folder with --clip-path, "
    f"the {CLIP_ENV} environment variable, or the plugin setting 'CLIP folder'"
)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", "0"
    ).lower() in ("1", "true", "yes")


def check_clip_folder(folder: Path) -> Path:
    """A folder must hold a CLIP with 768-d projections and its weights; anything else is named and refused."""
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise BackboneError("no config.json: not a Hugging Face model folder", str(folder), _HOWTO)
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackboneError(f"config.json is not valid JSON ({exc})", str(cfg_path), _HOWTO) from exc
    if cfg.get("model_type") != "clip":
        raise BackboneError(
            f"this is a {cfg.get('model_type')!r} model, not CLIP", str(folder), f"GeoCLIP needs {CLIP_HUB_ID}"
        )
    if int(cfg.get("projection_dim", 0)) != PROJECTION_DIM:
        raise BackboneError(
            f"CLIP projection_dim is {cfg.get('projection_dim')}, GeoCLIP needs {PROJECTION_DIM} (ViT-L/14)",
            str(folder),
            f"use {CLIP_HUB_ID}, not another CLIP size",
        )
    if not any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")) and not any(
        folder.glob("model-*.safetensors")
    ):
        raise BackboneError("no model weights (model.safetensors) in the folder", str(folder), _HOWTO)
    return folder


def resolve_clip_path(clip_path: Optional[os.PathLike | str] = None) -> str:
    """A local folder (argument, then environment), then the Hugging Face cache, then the hub when online."""
    explicit = clip_path or os.environ.get(CLIP_ENV)
    if explicit:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise BackboneError("CLIP folder does not exist", str(folder), _HOWTO)
        return str(check_clip_folder(folder))
    try:
        from huggingface_hub import snapshot_download

        cached = snapshot_download(CLIP_HUB_ID, local_files_only=True)
        return str(check_clip_folder(Path(cached)))
    except BackboneError:
        raise
    except Exception:
        pass
    if _hub_offline():
        raise BackboneError(f"the CLIP backbone {CLIP_HUB_ID} is not available offline", hint=_HOWTO)
    return CLIP_HUB_ID


def quiet_transformers() -> None:
    """Loading reports and progress bars go nowhere: stdout may be the worker's protocol channel."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _load(cls, path: str, device: torch.device, fp16: bool):
    kwargs = {"dtype": torch.float16} if fp16 else {}
    quiet_transformers()
    try:
        model = cls.from_pretrained(path, local_files_only=path != CLIP_HUB_ID, **kwargs)
    except Exception as exc:
        raise BackboneError(f"cannot load CLIP ({type(exc).__name__}: {exc})", path, _HOWTO) from exc
    return model.to(device).eval().requires_grad_(False)


def _mlp(state: dict) -> nn.Sequential:
    mlp = nn.Sequential(nn.Linear(768, 768), nn.ReLU(), nn.Linear(768, 512))
    mlp.load_state_dict(state, strict=True)
    return mlp.eval().requires_grad_(False)


def _features(out) -> torch.Tensor:
    """Projected embeddings from a *WithProjection output, or a tensor, across transformers 4.x and 5.x."""
    if isinstance(out, torch.Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected CLIP output {type(out).__name__}")


class ImageEncoder(nn.Module):
    """CLIP vision tower + GeoCLIP MLP; `preprocess` uses the folder's own CLIP image processor."""

    def __init__(self, clip_path: str, mlp_state: dict, device: torch.device, fp16: bool = False):
        super().__init__()
        from transformers import CLIPVisionModelWithProjection

        try:
            from transformers import CLIPImageProcessorPil as Processor  # transformers 5 without torchvision
        except ImportError:  # transformers 4.x
            from transformers import CLIPImageProcessor as Processor
        self.clip_path = clip_path
        self.vision = _load(CLIPVisionModelWithProjection, clip_path, device, fp16)
        self.processor = Processor.from_pretrained(clip_path, local_files_only=clip_path != CLIP_HUB_ID)
        self.mlp = _mlp(mlp_state).to(device)
        self.device = device

    def preprocess(self, images: Sequence) -> torch.Tensor:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vision.parameters()).dtype
        feats = _features(self.vision(pixel_values=pixel_values.to(self.device, dtype)))
        return self.mlp(feats.float())


class TextEncoder(nn.Module):
    """CLIP text tower + the same GeoCLIP MLP: text lands where GeoCLIP's image features do."""

    def __init__(self, clip_path: str, mlp_state: dict, device: torch.device, fp16: bool = False):
        super().__init__()
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        self.text = _load(CLIPTextModelWithProjection, clip_path, device, fp16)
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(clip_path, local_files_only=clip_path != CLIP_HUB_ID)
        except Exception as exc:
            raise BackboneError(f"cannot load the CLIP tokenizer ({exc})", clip_path, _HOWTO) from exc
        self.mlp = _mlp(mlp_state).to(device)
        self.device = device

    def tokenize(self, queries: Sequence[str]) -> dict:
        texts: List[str] = []
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise InputError("empty text query", hint="type a description, e.g. 'snowy alpine village'")
            n = len(self.tokenizer(q.strip())["input_ids"])
            if n > MAX_TEXT_TOKENS:
                raise InputError(
                    f"text query is {n} tokens long; CLIP reads at most {MAX_TEXT_TOKENS}",
                    hint=f"shorten it: {q[:60]!r}...",
                )
            texts.append(q.strip())
        return self.tokenizer(texts, padding=True, return_tensors="pt")

    @torch.inference_mode()
    def forward(self, queries: Sequence[str]) -> torch.Tensor:
        tokens = {k: v.to(self.device) for k, v in self.tokenize(queries).items()}
        return self.mlp(_features(self.text(**tokens)).float())
