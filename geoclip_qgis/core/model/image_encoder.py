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

from ...shared import defaults
from ..errors import BackboneError, InputError
from ..io.files import open_regular, regular_file
from .precision import convert_mlp, convert_tower, flush_denormals, tower_context

CLIP_HUB_ID = defaults.CLIP_REPO  # one definition: shared/defaults.py
CLIP_ENV = "GEOCLIP_CLIP_PATH"
PROJECTION_DIM = 768
MAX_TEXT_TOKENS = 77
# No CLIP token spans more than 32 characters (its longest BPE entry is 32 bytes), so a text of normal words and
# single spaces longer than 77 x (32 + 1) characters cannot fit in 77 tokens. Longer texts are refused from their
# length alone, before the tokenizer sees them: a 50 MB text used to keep the worker busy for 100 s.
MAX_TEXT_CHARS = MAX_TEXT_TOKENS * 33
_HOWTO = (
    f"download {CLIP_HUB_ID} once (the plugin's model manager does it) and name its folder with --clip-path, "
    f"the {CLIP_ENV} environment variable, or the plugin setting 'CLIP folder'"
)


ALLOW_DOWNLOAD_ENV = "GEOCLIP_ALLOW_DOWNLOAD"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", "0"
    ).lower() in ("1", "true", "yes")


def _read_json(path: Path, what: str) -> dict:
    """A JSON object from a regular file, or a BackboneError naming the file."""
    try:
        with open_regular(path, what, _HOWTO, binary=False, error=BackboneError) as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        raise BackboneError(f"{what} is not valid JSON ({exc})", str(path), _HOWTO) from None
    if not isinstance(data, dict):
        raise BackboneError(f"{what} holds a {type(data).__name__}, not a JSON object", str(path), _HOWTO)
    return data


def _positive_int(cfg: dict, key: str, where: str, path: Path, required: bool = False,
                  most: int = 1 << 20) -> Optional[int]:
    """cfg[key] as a whole number in [1, most] (a config asking for absurd sizes would allocate them), or None."""
    value = cfg.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
        raise BackboneError(f"{where}{key} is {value!r}, not a whole number from 1 to {most:,}", str(path),
                            f"the file is damaged or not {CLIP_HUB_ID}'s: {_HOWTO}")
    return value


# Upper bounds far above ViT-L/14 (hidden 1024, MLP 4096, 24 layers, 16 heads), far below what would exhaust memory.
_TOWER_INTS = {"hidden_size": 16384, "intermediate_size": 65536, "num_hidden_layers": 256,
               "num_attention_heads": 256}
_MODEL_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model")


def check_clip_folder(folder: Path) -> Path:
    """A folder must hold a complete CLIP with 768-d projections: config, weights, tokenizer and image processor,
    each a regular file with well-formed values, and a vocabulary as large as the model's embedding table. Anything
    else is named and refused here, before a model is built (a 2-token vocabulary or an image_size of 0 would
    otherwise run, or fail deep inside transformers)."""
    cfg_path = folder / "config.json"
    if not os.path.lexists(cfg_path):
        raise BackboneError("no config.json: not a Hugging Face model folder", str(folder), _HOWTO)
    cfg = _read_json(cfg_path, "CLIP config.json")
    if cfg.get("model_type") != "clip":
        raise BackboneError(
            f"this is a {cfg.get('model_type')!r} model, not CLIP", str(folder), f"GeoCLIP needs {CLIP_HUB_ID}"
        )
    proj = _positive_int(cfg, "projection_dim", "", cfg_path, required=True)
    if proj != PROJECTION_DIM:
        raise BackboneError(
            f"CLIP projection_dim is {proj}, GeoCLIP needs {PROJECTION_DIM} (ViT-L/14)",
            str(folder),
            f"use {CLIP_HUB_ID}, not another CLIP size",
        )
    towers = {}
    for tower in ("text_config", "vision_config"):
        sub = cfg.get(tower)
        if not isinstance(sub, dict):
            raise BackboneError(f"config.json {tower} is {type(sub).__name__}, not an object", str(cfg_path),
                                _HOWTO)
        for key, most in _TOWER_INTS.items():
            _positive_int(sub, key, f"{tower}.", cfg_path, most=most)
        hidden, heads = sub.get("hidden_size"), sub.get("num_attention_heads")
        if hidden and heads and hidden % heads:
            raise BackboneError(f"{tower}.hidden_size {hidden} is not a multiple of num_attention_heads {heads}",
                                str(cfg_path), _HOWTO)
        towers[tower] = sub
    vision = towers["vision_config"]
    image_size = _positive_int(vision, "image_size", "vision_config.", cfg_path, most=4096) or 224
    patch = _positive_int(vision, "patch_size", "vision_config.", cfg_path, most=4096) or 32
    if image_size % patch:
        raise BackboneError(f"vision_config.image_size {image_size} is not a multiple of patch_size {patch}",
                            str(cfg_path), _HOWTO)
    vocab_size = _positive_int(towers["text_config"], "vocab_size", "text_config.", cfg_path) or 49408
    _positive_int(towers["text_config"], "max_position_embeddings", "text_config.", cfg_path, most=65536)
    weights = [folder / n for n in ("model.safetensors", "pytorch_model.bin") if os.path.lexists(folder / n)]
    weights += sorted(folder.glob("model-*.safetensors"))
    if not weights:
        raise BackboneError("no model weights (model.safetensors) in the folder", str(folder), _HOWTO)
    # transformers opens more files than these (tokenizer_config.json, special_tokens_map.json, ...): every model
    # file in the folder must be a regular file, or a FIFO among them would block the load forever.
    for f in sorted(folder.iterdir()):
        if f.suffix in _MODEL_SUFFIXES:
            regular_file(f, f"CLIP file {f.name}", _HOWTO, error=BackboneError)
    _check_processor(folder)
    _check_tokenizer(folder, vocab_size)
    return folder


def _check_processor(folder: Path) -> None:
    """preprocessor_config.json (the hub's layout), or processor_config.json with an image_processor section (what
    transformers 5 saves), with positive pixel sizes."""
    path = folder / "preprocessor_config.json"
    if os.path.lexists(path):
        proc = _read_json(path, "preprocessor_config.json")
    elif os.path.lexists(folder / "processor_config.json"):
        path = folder / "processor_config.json"
        proc = _read_json(path, "processor_config.json").get("image_processor")
        if not isinstance(proc, dict):
            raise BackboneError("processor_config.json has no image_processor section", str(path), _HOWTO)
    else:
        raise BackboneError("no preprocessor_config.json (CLIP's image processor)", str(folder), _HOWTO)
    for key in ("crop_size", "size"):
        value = proc.get(key)
        sizes = list(value.values()) if isinstance(value, dict) else [value]
        if value is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
            raise BackboneError(f"{path.name} {key} is {value!r}, not positive pixel sizes", str(path), _HOWTO)


def _check_tokenizer(folder: Path, vocab_size: int) -> None:
    """vocab.json + merges.txt, or tokenizer.json, with exactly the model's vocabulary size."""
    if os.path.lexists(folder / "vocab.json") or os.path.lexists(folder / "merges.txt"):
        vocab = _read_json(folder / "vocab.json", "tokenizer vocab.json")
        merges = regular_file(folder / "merges.txt", "tokenizer merges.txt", _HOWTO, error=BackboneError)
        if merges.stat().st_size == 0:
            raise BackboneError("tokenizer merges.txt is empty", str(merges), _HOWTO)
        where = folder / "vocab.json"
    elif os.path.lexists(folder / "tokenizer.json"):
        tok = _read_json(folder / "tokenizer.json", "tokenizer.json")
        model = tok.get("model")
        vocab = model.get("vocab") if isinstance(model, dict) else None
        if not isinstance(vocab, dict):
            raise BackboneError("tokenizer.json has no model.vocab", str(folder / "tokenizer.json"), _HOWTO)
        vocab = {**vocab, **{t.get("content"): t.get("id") for t in tok.get("added_tokens") or []
                             if isinstance(t, dict)}}
        where = folder / "tokenizer.json"
    else:
        raise BackboneError("no tokenizer files (vocab.json + merges.txt, or tokenizer.json)", str(folder), _HOWTO)
    ids = [v for v in vocab.values() if isinstance(v, int) and not isinstance(v, bool)]
    if len(vocab) != vocab_size or len(ids) != len(vocab) or (ids and (min(ids) < 0 or max(ids) >= vocab_size)):
        raise BackboneError(f"the tokenizer has {len(vocab):,} tokens, the model {vocab_size:,}: they do not belong "
                            "together", str(where), _HOWTO)


def resolve_clip_path(clip_path: Optional[os.PathLike | str] = None) -> str:
    """A local folder (argument, then environment), then the Hugging Face cache, then the hub when online."""
    explicit = clip_path or os.environ.get(CLIP_ENV)
    if explicit:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise BackboneError("CLIP folder does not exist" if not folder.exists() else "CLIP path is not a folder",
                                str(folder), _HOWTO)
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
    if not downloads_allowed():  # 1.7 GB: only on the user's explicit word, never as a side effect of a run
        raise BackboneError(f"the CLIP backbone {CLIP_HUB_ID} is not downloaded (1.7 GB; nothing is downloaded "
                            "without asking)", hint=f"run `geoclip-qgis download clip`, or {_HOWTO}, or set "
                            f"{ALLOW_DOWNLOAD_ENV}=1 to let this run download it")
    return CLIP_HUB_ID


def downloads_allowed() -> bool:
    """The user's explicit consent to fetch models on first use ($GEOCLIP_ALLOW_DOWNLOAD=1); off by default."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def quiet_transformers() -> None:
    """Loading reports and progress bars go nowhere: stdout may be the worker's protocol channel."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _load(cls, path: str, device: torch.device, fp16: bool, precision: str = "fp32"):
    """A CLIP tower on `device`: fp16 (CUDA), int8 Linear layers quantised after an fp32 load, bf16 Linear weights
    cast once for autocast (core/model/precision.py says why not a tower cast to bf16 throughout), else fp32."""
    kwargs = {"dtype": torch.float16} if fp16 else {}
    quiet_transformers()
    try:
        model = cls.from_pretrained(path, local_files_only=path != CLIP_HUB_ID, **kwargs)
    except Exception as exc:
        raise BackboneError(f"cannot load CLIP ({type(exc).__name__}: {exc})", path, _HOWTO) from exc
    model = model.to(device).eval().requires_grad_(False)
    return convert_tower(model, precision)


def _mlp(state: dict) -> nn.Sequential:
    mlp = nn.Sequential(nn.Linear(768, 768), nn.ReLU(), nn.Linear(768, 512))
    mlp.load_state_dict(state, strict=True)
    flush_denormals(mlp)  # none in geoclip 1.3.0's MLP; cheap (1M weights), and other weights may hold some
    return mlp.eval().requires_grad_(False)


def _features(out, clip_path: str = "") -> torch.Tensor:
    """Projected embeddings from a *WithProjection output, or a tensor, across transformers 4.x and 5.x. Features
    that are not finite mean damaged CLIP weights (a NaN anywhere in a tower reaches every output): refused here,
    before they could become NaN probabilities."""
    feats = out if isinstance(out, torch.Tensor) else next(
        (v for v in (getattr(out, n, None) for n in ("image_embeds", "text_embeds", "pooler_output"))
         if isinstance(v, torch.Tensor)), None)
    if feats is None:
        raise TypeError(f"unexpected CLIP output {type(out).__name__}")
    if not torch.isfinite(feats).all():
        raise BackboneError("CLIP gives non-finite features (NaN or infinity): its weights are damaged", clip_path,
                            _HOWTO)
    return feats


def check_text_query(q: object) -> str:
    """A text query stripped, or an InputError: not a string, empty, or longer than any 77-token text can be
    (MAX_TEXT_CHARS). Cheap and model-free, so callers can run it before CLIP loads; the exact token count is
    checked after, by the tokenizer, on a text already known to be short."""
    if not isinstance(q, str):
        raise InputError(f"a text query must be a string, got {type(q).__name__}",
                         hint="type a description, e.g. 'snowy alpine village'")
    q = q.strip()
    if not q:
        raise InputError("empty text query", hint="type a description, e.g. 'snowy alpine village'")
    if len(q) > MAX_TEXT_CHARS:
        raise InputError(f"text query is {len(q):,} characters long; CLIP reads at most {MAX_TEXT_TOKENS} tokens "
                         f"(no text over {MAX_TEXT_CHARS:,} characters fits)", hint=f"shorten it: {q[:60]!r}...")
    return q


def load_processor(clip_path: str):
    """The CLIP folder's own image processor (its resize, crop and normalisation), in the class this transformers
    has: what the engine and the benchmarks preprocess photos with."""
    try:
        from transformers import CLIPImageProcessorPil as Processor  # transformers 5 without torchvision
    except ImportError:  # transformers 4.x
        from transformers import CLIPImageProcessor as Processor
    return Processor.from_pretrained(clip_path, local_files_only=clip_path != CLIP_HUB_ID)


class ImageEncoder(nn.Module):
    """CLIP vision tower + GeoCLIP MLP; `preprocess` uses the folder's own CLIP image processor."""

    def __init__(self, clip_path: str, mlp_state: dict, device: torch.device, fp16: bool = False,
                 precision: str = "fp32"):
        super().__init__()
        from transformers import CLIPVisionModelWithProjection

        self.clip_path = clip_path
        self.vision = _load(CLIPVisionModelWithProjection, clip_path, device, fp16, precision)
        self.processor = load_processor(clip_path)
        self.mlp = convert_mlp(_mlp(mlp_state), precision).to(device)
        self.device = device
        self.precision = precision

    def preprocess(self, images: Sequence) -> torch.Tensor:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vision.parameters()).dtype
        with tower_context(self.precision, self.device):
            feats = _features(self.vision(pixel_values=pixel_values.to(self.device, dtype)), self.clip_path)
        return self.mlp(feats.float())


class TextEncoder(nn.Module):
    """CLIP text tower + the same GeoCLIP MLP: text lands where GeoCLIP's image features do."""

    def __init__(self, clip_path: str, mlp_state: dict, device: torch.device, fp16: bool = False,
                 precision: str = "fp32"):
        super().__init__()
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        self.clip_path = clip_path
        self.text = _load(CLIPTextModelWithProjection, clip_path, device, fp16, precision)
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(clip_path, local_files_only=clip_path != CLIP_HUB_ID)
        except Exception as exc:
            raise BackboneError(f"cannot load the CLIP tokenizer ({exc})", clip_path, _HOWTO) from exc
        self.mlp = convert_mlp(_mlp(mlp_state), precision).to(device)
        self.device = device
        self.precision = precision

    def tokenize(self, queries: Sequence[str]) -> dict:
        texts: List[str] = []
        for q in queries:
            q = check_text_query(q)
            n = len(self.tokenizer(q)["input_ids"])
            if n > MAX_TEXT_TOKENS:
                raise InputError(
                    f"text query is {n} tokens long; CLIP reads at most {MAX_TEXT_TOKENS}",
                    hint=f"shorten it: {q[:60]!r}...",
                )
            texts.append(q)
        return self.tokenizer(texts, padding=True, return_tensors="pt")

    @torch.inference_mode()
    def forward(self, queries: Sequence[str]) -> torch.Tensor:
        tokens = {k: v.to(self.device) for k, v in self.tokenize(queries).items()}
        with tower_context(self.precision, self.device):
            feats = _features(self.text(**tokens), self.clip_path)
        return self.mlp(feats.float())
