"""Model downloads for the plugin: resumable (HTTP Range), checksummed, and refused early when the disk is full.

Standard library only, so it runs in a QgsTask on QGIS's own Python. The Hugging Face hub reports each
large (LFS) file's sha256 in the X-Linked-ETag header: that is what the finished file is checked against.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..shared import defaults

HUB = "https://huggingface.co"
CLIP_REPO = defaults.CLIP_REPO  # one definition: shared/defaults.py
CLIP_FILES = ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
              "merges.txt", "special_tokens_map.json", "model.safetensors"]
CHUNK = 1 << 20


class DownloadError(Exception):
    pass


class Cancelled(DownloadError):
    pass


@dataclass
class RemoteFile:
    name: str
    url: str
    size: int
    sha256: Optional[str]


def _head(url: str, timeout: float) -> Dict[str, str]:
    req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "geoclip-qgis"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - https/http model host only
        return {k.lower(): v for k, v in resp.headers.items()}


def describe(base_url: str, names: List[str], timeout: float = 30.0) -> List[RemoteFile]:
    """Size and (for LFS files) sha256 of each file, from HEAD requests."""
    out = []
    for name in names:
        url = f"{base_url.rstrip('/')}/{name}"
        headers = _head(url, timeout)
        etag = (headers.get("x-linked-etag") or headers.get("etag") or "").strip('"').replace("W/", "").strip('"')
        size = int(headers.get("x-linked-size") or headers.get("content-length") or 0)
        out.append(RemoteFile(name, url, size, etag if len(etag) == 64 else None))
    return out


def check_free_space(folder: Path, needed: int, margin: float = 1.1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * margin:
        raise DownloadError(
            f"not enough free disk space in {folder}: {needed * margin / 2**30:.2f} GiB needed, "
            f"{free / 2**30:.2f} GiB free — free some space or choose another models folder")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(remote: RemoteFile, folder: Path, progress: Callable[[int], None],
          is_cancelled: Callable[[], bool] = lambda: False, timeout: float = 60.0) -> Path:
    """Download into NAME.part, resuming from its size; verify sha256; then rename into place."""
    target = folder / remote.name
    part = folder / (remote.name + ".part")
    complete = target.is_file() and (remote.size == 0 or target.stat().st_size == remote.size)
    if complete and (remote.sha256 is None or sha256_file(target) == remote.sha256):
        progress(target.stat().st_size)
        return target
    start = part.stat().st_size if part.is_file() else 0
    if remote.size and start > remote.size:
        part.unlink()
        start = 0
    headers = {"User-Agent": "geoclip-qgis"}
    if start and start < remote.size:
        headers["Range"] = f"bytes={start}-"
    if not remote.size or start < remote.size:
        req = urllib.request.Request(remote.url, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            if start and resp.status != 206:  # the server ignored Range: start again
                start = 0
            with open(part, "ab" if start else "wb") as out:
                done = start
                progress(done)
                while True:
                    if is_cancelled():
                        raise Cancelled(f"cancelled; {done} bytes of {remote.name} kept to resume later")
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    progress(done)
    if remote.size and part.stat().st_size != remote.size:
        raise DownloadError(f"{remote.name}: got {part.stat().st_size} bytes, expected {remote.size}; run again "
                            "to resume")
    if remote.sha256 is not None:
        got = sha256_file(part)
        if got != remote.sha256:
            part.unlink()
            raise DownloadError(f"{remote.name}: sha256 {got[:12]}… does not match the published "
                                f"{remote.sha256[:12]}…; the partial file was removed, run again")
    os.replace(part, target)
    return target


def download_all(base_url: str, names: List[str], folder: Path, progress: Callable[[int, int, str], None],
                 is_cancelled: Callable[[], bool] = lambda: False) -> Path:
    """All files, one after the other; progress(done_bytes, total_bytes, current_name)."""
    remotes = describe(base_url, names)
    total = sum(r.size for r in remotes)
    have = sum((folder / r.name).stat().st_size for r in remotes if (folder / r.name).is_file())
    check_free_space(folder, max(0, total - have))
    base = 0
    for r in remotes:
        fetch(r, folder, lambda n, r=r, base=base: progress(base + n, total, r.name), is_cancelled)
        base += r.size
    (folder / "geoclip-download.json").write_text(json.dumps({"source": base_url, "files": {
        r.name: r.sha256 for r in remotes}}, indent=1), encoding="utf-8")
    return folder


def clip_url(revision: str = "main") -> str:
    return f"{HUB}/{CLIP_REPO}/resolve/{revision}"
