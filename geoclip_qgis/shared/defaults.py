"""The defaults both wings must agree on, defined once: the cache folder, the CLIP model, the device and precision
choices. Standard library only, so the QGIS side (which never imports torch or platformdirs) and the engine read the
same rule; before this file the plugin and the CLI could each build their own 6.7 GB world field."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Tuple

APP = "geoclip_qgis"
CACHE_ENV = "GEOCLIP_QGIS_CACHE"  # overrides the cache folder for the plugin, the worker and the CLI alike
CLIP_REPO = "openai/clip-vit-large-patch14"  # the CLIP the GeoCLIP weights were trained on top of
CLIP_ENV = "GEOCLIP_CLIP_PATH"


def tr_noop(text: str) -> str:
    """Marks a label for translation (scripts/update_translations.py collects it); the QGIS side translates it."""
    return text


def os_cache_dir(env: Optional[Mapping[str, str]] = None, platform: Optional[str] = None) -> Path:
    """The OS's own cache folder for us, as platformdirs' `user_cache_dir(APP, appauthor=False)` gives it (the same
    path, so caches made before this rule are found): ~/.cache (XDG), ~/Library/Caches, %LOCALAPPDATA%."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    home = Path(env.get("HOME") or env.get("USERPROFILE") or os.path.expanduser("~"))
    if platform == "win32":
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / APP / "Cache"
    if platform == "darwin":
        return home / "Library" / "Caches" / APP
    base = env.get("XDG_CACHE_HOME", "").strip()
    return Path(base if base and os.path.isabs(base) else home / ".cache") / APP


def default_cache_dir(env: Optional[Mapping[str, str]] = None, platform: Optional[str] = None) -> Path:
    """THE cache folder (gallery embeddings, location fields, place names, downloads): $GEOCLIP_QGIS_CACHE, else the
    OS's cache folder. Outside the plugin folder, so plugin upgrades keep it. The plugin's Settings may name another
    one; it is then sent with every request, so the worker never falls back to a second rule."""
    env = os.environ if env is None else env
    override = (env.get(CACHE_ENV) or "").strip()
    if override:
        return Path(os.path.expanduser(override))
    return os_cache_dir(env, platform)


# Devices, in the order every front door offers them (dock, Settings, Processing, CLI help): (value sent, label).
# 'cuda' means the first CUDA device; the engine resolves each and says why (core/model/device.py).
# The order keeps Processing's saved enum indices meaning what they meant (1 CPU, 2 CUDA, 3 Apple GPU; see
# processing/base.py); new entries go at the end.
DEVICES: Tuple[Tuple[str, str], ...] = (
    ("auto", tr_noop("Auto (best available)")),
    ("cpu", tr_noop("CPU")),
    ("cuda:0", tr_noop("CUDA device 0")),
    ("mps", tr_noop("Apple GPU (MPS)")),
    ("cuda:1", tr_noop("CUDA device 1")),
)
DEVICE_VALUES: Tuple[str, ...] = tuple(v for v, _ in DEVICES)


def canonical_device(value: Optional[str]) -> str:
    """'' / None -> 'auto'; 'cuda' -> 'cuda:0' (one spelling, so one loaded engine per device)."""
    v = (value or "auto").strip().lower()
    return "cuda:0" if v == "cuda" else v


# Numeric precisions (issue 22): the engine resolves 'auto' per machine and says why.
PRECISIONS: Tuple[Tuple[str, str], ...] = (
    ("auto", tr_noop("Auto (fastest that keeps the answers)")),
    ("fp32", tr_noop("fp32 (exact)")),
    ("bf16", tr_noop("bf16")),
    ("int8", tr_noop("int8")),
    ("fp16", tr_noop("fp16 (GPU)")),
)
PRECISION_VALUES: Tuple[str, ...] = tuple(v for v, _ in PRECISIONS)
# Pins what 'auto' resolves to on this machine (an administrator's or a test suite's explicit choice, e.g. fp32).
PRECISION_ENV = "GEOCLIP_PRECISION"
