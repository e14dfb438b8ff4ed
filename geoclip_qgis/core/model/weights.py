"""GeoCLIP's trained weights: location encoder, image MLP, logit scale and the GPS gallery.

Two layouts are read, both without unpickling arbitrary objects:
- the `geoclip` 1.3.0 wheel's files (`weights/*.pth` read with `torch.load(weights_only=True)`, `gps_gallery/*.csv`):
  by default unpacked from the wheel into the cache folder (shared/weights_release.py: the wheel requires Python
  3.11+, its data files do not), else from an installed `geoclip` distribution, found through its metadata so that
  `geoclip` itself is never imported;
- a release folder (`config.json` + `model.safetensors` + the gallery CSV that config names).
Every tensor is checked for its key set, shape and finiteness (a NaN in the location encoder would make every
gallery embedding NaN; an infinite logit scale every probability), and only regular files are opened (core.files),
so a wrong, damaged or special file fails here, by name, before any model runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ...shared import weights_release
from ..errors import WeightsError
from ..io.files import open_regular, regular_file

SIGMAS: Tuple[float, ...] = (2.0**0, 2.0**4, 2.0**8)
WHEEL_FILES = {
    "location": "location_encoder_weights.pth",
    "mlp": "image_encoder_mlp_weights.pth",
    "logit_scale": "logit_scale_weights.pth",
}
GALLERY_CSV = "coordinates_100K.csv"
# sha256 of the files shipped in the geoclip==1.3.0 wheel (one list: shared/weights_release.py); a mismatch means a
# corrupt or foreign file.
KNOWN_SHA256: Dict[str, str] = {Path(rel).name: sha for rel, sha in weights_release.DATA_FILES.values()}

# Official state-dict layout of one capsule (prefix LocEnc{i}.) -> (our name, shape).
_CAPSULE_LAYOUT = {
    "capsule.0.b": ("rff_b", (256, 2)),
    "capsule.1.weight": ("hidden.0.weight", (1024, 512)),
    "capsule.1.bias": ("hidden.0.bias", (1024,)),
    "capsule.3.weight": ("hidden.2.weight", (1024, 1024)),
    "capsule.3.bias": ("hidden.2.bias", (1024,)),
    "capsule.5.weight": ("hidden.4.weight", (1024, 1024)),
    "capsule.5.bias": ("hidden.4.bias", (1024,)),
    "head.0.weight": ("head.weight", (512, 1024)),
    "head.0.bias": ("head.bias", (512,)),
}
_MLP_LAYOUT = {
    "0.weight": ("0.weight", (768, 768)),
    "0.bias": ("0.bias", (768,)),
    "2.weight": ("2.weight", (512, 768)),
    "2.bias": ("2.bias", (512,)),
}
_FIX = "download them again (`geoclip-qgis download weights`, or GeoCLIP > Engine and models > Install engine), or "
_FIX += "name a folder holding the release files (config.json + model.safetensors + gallery CSV) with --weights"


@dataclass
class GeoClipWeights:
    """Tensors in our own modules' naming, plus where they came from and a digest for cache keys."""

    location: Dict[str, torch.Tensor]
    mlp: Dict[str, torch.Tensor]
    logit_scale: torch.Tensor
    gallery_csv: Path
    source: str
    sigmas: Tuple[float, ...] = SIGMAS
    files: Dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def digest(self) -> str:
        """Hash of the location-encoder tensors: what gallery caches are keyed on. Computed once (28 MB hashed took
        41 ms, paid on every raster that looked for a field)."""
        h = hashlib.sha256()
        for name in sorted(self.location):
            h.update(name.encode())
            h.update(self.location[name].detach().cpu().contiguous().numpy().tobytes())
        h.update(repr(tuple(self.sigmas)).encode())
        return h.hexdigest()[:20]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open_regular(path, "weights file", _FIX, error=WeightsError) as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def default_weights_dir() -> Path:
    """Where the weights are when no folder is named: $GEOCLIP_WEIGHTS, else the files unpacked into the cache
    folder (what the engine install and `geoclip-qgis download weights` put there), else an installed geoclip
    wheel (a development set-up). Nothing is downloaded here: a download needs the user's click or command."""
    if os.environ.get("GEOCLIP_WEIGHTS"):
        return Path(os.environ["GEOCLIP_WEIGHTS"]).expanduser()
    unpacked = weights_release.weights_dir()
    if weights_release.is_unpacked(unpacked):
        return unpacked
    try:
        return wheel_data_dir()
    except WeightsError:
        raise WeightsError(
            "GeoCLIP's weights are not downloaded yet", unpacked,
            hint="GeoCLIP > Engine and models > Install engine downloads them (the geoclip 1.3.0 wheel from PyPI, "
                 "40 MB); or run `geoclip-qgis download weights`; or pass --weights FOLDER") from None


def wheel_data_dir() -> Path:
    """The `geoclip/model` folder of the installed wheel, located without importing `geoclip`."""
    from importlib import metadata

    try:
        dist = metadata.distribution("geoclip")
    except metadata.PackageNotFoundError as exc:
        raise WeightsError(
            "the geoclip package (weights source) is not installed",
            hint="run `pip install --no-deps geoclip==1.3.0` in the engine's Python, or pass --weights FOLDER",
        ) from exc
    return Path(str(dist.locate_file("geoclip/model")))


def _check_tensor(t: object, shape: tuple, path: Path, key: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise WeightsError(f"entry {key!r} is a {type(t).__name__}, not a tensor", path, _FIX)
    if tuple(t.shape) != tuple(shape):
        raise WeightsError(
            f"entry {key!r} has shape {tuple(t.shape)}, expected {tuple(shape)} (not GeoCLIP's weights?)",
            path,
            _FIX,
        )
    t = t.detach().to(torch.float32).contiguous()
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise WeightsError(f"entry {key!r} has {bad:,} non-finite value(s) (NaN or infinity): damaged weights", path,
                           _FIX)
    return t


def _check_logit_scale(t: object, path: Path, key: str = "logit_scale") -> torch.Tensor:
    """GeoCLIP's temperature: a finite scalar whose exp is a usable softmax scale (CLIP-style training keeps it
    at most ln 100 = 4.6; GeoCLIP's is 3.68). A value past 10 (scale 22,000) can only be damage."""
    t = _check_tensor(t, (), path, key)
    if not -10.0 <= float(t) <= 10.0 or not math.isfinite(math.exp(float(t))):
        raise WeightsError(f"{key} is {float(t):g}: exp() of it is no usable scale (GeoCLIP's is 3.68)", path, _FIX)
    return t


def _remap(state: dict, layout: dict, path: Path, what: str) -> Dict[str, torch.Tensor]:
    missing = sorted(set(layout) - set(state))
    unexpected = sorted(set(state) - set(layout))
    if missing or unexpected:
        raise WeightsError(
            f"{what}: keys do not match GeoCLIP's (missing {missing[:4]}, unexpected {unexpected[:4]})",
            path,
            _FIX,
        )
    return {ours: _check_tensor(state[k], shape, path, k) for k, (ours, shape) in layout.items()}


def location_from_official(state: dict, path: Path, n_capsules: int) -> Dict[str, torch.Tensor]:
    """Map `LocEnc{i}.capsule.*` keys to our `capsules.{i}.*` names, checking every shape."""
    layout = {
        f"LocEnc{i}.{k}": (f"capsules.{i}.{ours}", shape)
        for i in range(n_capsules)
        for k, (ours, shape) in _CAPSULE_LAYOUT.items()
    }
    return _remap(state, layout, path, "location encoder")


def _torch_load(path: Path) -> object:
    with open_regular(path, "weights file", _FIX, error=WeightsError) as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise WeightsError("weights file is empty (0 bytes)", path, _FIX)
        try:
            return torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, pickle with code, not a torch file at all
            raise WeightsError(f"cannot read weights ({type(exc).__name__}: {exc})", path, _FIX) from exc


def _load_wheel_layout(folder: Path) -> GeoClipWeights:
    wdir = folder / "weights" if (folder / "weights").is_dir() else folder
    files = {k: wdir / v for k, v in WHEEL_FILES.items()}
    gallery = folder / "gps_gallery" / GALLERY_CSV
    if not os.path.lexists(gallery):
        gallery = folder / GALLERY_CSV
    loc_state = _torch_load(files["location"])
    mlp_state = _torch_load(files["mlp"])
    scale = _torch_load(files["logit_scale"])
    for name, obj in (("location", loc_state), ("mlp", mlp_state)):
        if not isinstance(obj, dict):
            raise WeightsError("expected a state dict", files[name], _FIX)
    scale = _check_logit_scale(scale, files["logit_scale"])
    regular_file(gallery, "gallery CSV", _FIX, error=WeightsError)
    return GeoClipWeights(
        location=location_from_official(loc_state, files["location"], len(SIGMAS)),
        mlp=_remap(mlp_state, _MLP_LAYOUT, files["mlp"], "image MLP"),
        logit_scale=scale,
        gallery_csv=gallery,
        source=str(folder),
        files={**{k: str(v) for k, v in files.items()}, "gallery": str(gallery)},
    )


def _load_release_layout(folder: Path) -> GeoClipWeights:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path = folder / "config.json"
    try:
        with open_regular(cfg_path, "release config", _FIX, binary=False, error=WeightsError) as fh:
            config = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read release config ({exc})", cfg_path, _FIX) from exc
    if not isinstance(config, dict) or config.get("model_type") != "geoclip-geolocation":
        raise WeightsError("config.json is not a geoclip-geolocation release", cfg_path, _FIX)
    if config.get("format_version") != 1:
        raise WeightsError(f"unsupported format_version {config.get('format_version')!r}", cfg_path, _FIX)
    sigmas = config.get("sigma", list(SIGMAS))
    if not isinstance(sigmas, list) or not sigmas or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in sigmas):
        raise WeightsError(f"config.json sigma must be a list of positive numbers, got {sigmas!r}", cfg_path, _FIX)
    sigmas = tuple(float(v) for v in sigmas)
    gname = config.get("gallery_file")
    if not isinstance(gname, str) or Path(gname).name != gname or not gname.endswith(".csv"):
        raise WeightsError("config.json gallery_file must name a CSV inside the folder", cfg_path, _FIX)
    st_path = regular_file(folder / "model.safetensors", "model.safetensors", _FIX, error=WeightsError)
    try:
        tensors = load_file(str(st_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read safetensors ({exc})", st_path, _FIX) from exc
    loc = {k[len("location_encoder."):]: v for k, v in tensors.items() if k.startswith("location_encoder.")}
    mlp = {k[len("image_encoder.mlp."):]: v for k, v in tensors.items() if k.startswith("image_encoder.mlp.")}
    extra = set(tensors) - {"logit_scale"} - {f"location_encoder.{k}" for k in loc}
    extra -= {f"image_encoder.mlp.{k}" for k in mlp}
    if extra or "logit_scale" not in tensors:
        raise WeightsError(f"unexpected or missing tensors: {sorted(extra)[:4]}", st_path, _FIX)
    gallery = regular_file(folder / gname, "gallery CSV named in config.json", _FIX, error=WeightsError)
    return GeoClipWeights(
        location=location_from_official(loc, st_path, len(sigmas)),
        mlp=_remap(mlp, _MLP_LAYOUT, st_path, "image MLP"),
        logit_scale=_check_logit_scale(tensors["logit_scale"], st_path),
        gallery_csv=gallery,
        source=str(folder),
        sigmas=sigmas,
        files={"safetensors": str(st_path)},
    )


def load_weights(folder: Optional[os.PathLike] = None, verify: bool = True) -> GeoClipWeights:
    """Load GeoCLIP's weights from `folder` (either layout) or, by default, from default_weights_dir()."""
    path = default_weights_dir() if folder is None else Path(folder).expanduser()
    if not path.is_dir():
        raise WeightsError("weights folder does not exist" if not path.exists() else "weights path is not a folder",
                           path, _FIX)
    release = os.path.lexists(path / "config.json")
    weights = _load_release_layout(path) if release else _load_wheel_layout(path)
    if verify:
        verify_known_files(weights)
    return weights


def file_digests(weights: GeoClipWeights) -> Dict[str, str]:
    """{file name: sha256} of the weights' files, what a case report cites: the release's known value where the
    file is one of the release's (verify_known_files checked it at load), else hashed here (small files)."""
    out: Dict[str, str] = {}
    for fname in sorted(weights.files.values()):
        name = Path(fname).name
        try:
            out[name] = KNOWN_SHA256.get(name) or sha256_file(Path(fname))
        except WeightsError:
            out[name] = "unreadable"
    return out


def verify_known_files(weights: GeoClipWeights) -> None:
    """Compare the wheel's files with their recorded sha256, so a corrupt copy is named, not used."""
    for key, fname in weights.files.items():
        expected = KNOWN_SHA256.get(Path(fname).name)
        if expected and sha256_file(Path(fname)) != expected:
            raise WeightsError(
                f"sha256 does not match the geoclip 1.3.0 release ({key})", fname, _FIX
            )
