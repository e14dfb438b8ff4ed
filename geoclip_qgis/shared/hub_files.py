"""THE download of a model repo from the Hugging Face hub, written once for both wings: which files, where they land,
how a partial file resumes, how each file is checked and when a download is refused. Standard library only.

Why one home: the plugin must be able to fetch CLIP before any engine is installed (QGIS's own Python, no
huggingface_hub), and the engine fetches it through huggingface_hub's session (its proxy, TLS and client settings).
Both used to carry their own downloader, with different file lists, partial-file names and checks (the plugin's
followed the hub's redirect to the CDN and so never saw the sha256). Now the two differ only in their transport:
`shared/hub_http.UrllibTransport` (standard library) and `core/io/hub_download.HubTransport` (huggingface_hub).

The rules, whatever the transport:
- The first file's metadata pins the commit; the rest are asked for at that commit, so the folder is one snapshot.
- The free disk is checked before the first byte; a partial file (`*.incomplete`, huggingface_hub's own names)
  outlives a cancel or a dropped connection, and the next run resumes it with an HTTP Range.
- The digest is computed while the bytes arrive: sha256 for LFS files (X-Linked-Etag), the git blob sha1 for small
  files (their ETag). A mismatch removes the file and names it; the weights must carry a sha256.
- Files land in the Hugging Face cache layout (`models--org--name/blobs`, `snapshots/<commit>`, `refs/`) or in a
  folder the caller names.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Dict, List, Optional, Sequence

from . import atomic, defaults

CLIP_REPO = defaults.CLIP_REPO
# What the engine loads; the repo's pytorch_model.bin / flax / tf duplicates are left out (4 GB saved).
REQUIRED_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
OPTIONAL_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
CLIP_FILES = REQUIRED_FILES + OPTIONAL_FILES
# Files that must carry a sha256: the weights are the one file a corrupt byte could hide in without failing a load.
MUST_HAVE_SHA256 = ("model.safetensors",)
CHUNK = 1 << 20
MAX_STALLS = 5  # reconnects in a row without a new byte before a transfer is given up
RETRY_PAUSE = 0.2  # seconds before a reconnect (times the number of stalls in a row)
DISK_MARGIN = 64 << 20  # bytes kept free beyond what the download needs
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
HINT_NETWORK = ("check the internet connection and QGIS's proxy settings (Settings › Options › Network), or "
                "download the folder elsewhere and name it as the CLIP folder")

Progress = Callable[[int, int], None]


class HubError(Exception):
    """A download failure a user can act on: `path` is the file at fault, `hint` the fix. The engine re-raises each
    as its own GeoClipError of the same name (core/io/hub_download.py), so its codes reach the worker's answers."""

    def __init__(self, message: str, path: Optional[str] = None, hint: Optional[str] = None):
        self.message, self.path, self.hint = message, None if path is None else str(path), hint
        text = message if not hint else f"{message} — {hint}"
        super().__init__(text)


class NetworkError(HubError):
    """The model host cannot be reached (no network, DNS, proxy, TLS, a dropped connection that never came back)."""


class DownloadError(HubError):
    """The host answered, but not with what we need (missing repo/revision/file, a server error, a disk error)."""


class ChecksumError(DownloadError):
    """The bytes are not the file the host announced; the bad file is removed."""


class DiskSpaceError(DownloadError):
    """The download would not fit; refused before the first byte."""


class Cancelled(HubError):
    """The caller cancelled; the partial file is kept and the next run resumes it."""


@dataclass
class RemoteFile:
    name: str
    url: str  # where the bytes are: the CDN location for LFS files
    size: Optional[int]
    etag: str
    commit: str

    @property
    def digest_kind(self) -> Optional[str]:
        if _SHA256.match(self.etag):
            return "sha256"
        if _SHA1.match(self.etag):
            return "git-sha1"
        return None


class Transport:
    """How bytes and metadata travel; the rules above never change with it."""

    def metadata(self, repo_id: str, name: str, revision: str, endpoint: Optional[str], timeout: float,
                 optional: bool) -> Optional[RemoteFile]:
        """The file's RemoteFile (size, etag, commit, CDN url); None for a missing optional file."""
        raise NotImplementedError

    def stream(self, url: str, headers: Dict[str, str], timeout: float) -> ContextManager:
        """A GET: an object with `status`, `header(name)` and `chunks()`."""
        raise NotImplementedError

    def is_transport_error(self, exc: BaseException) -> bool:
        """A failure to talk to the host at all (as opposed to an HTTP answer we do not like)."""
        return isinstance(exc, (ConnectionError, TimeoutError))

    def lock(self, target: Target, cache: Path, repo_id: str) -> ContextManager:
        return contextlib.nullcontext()

    def link(self, target: Target) -> None:
        link_pointer(target)


def network_error(exc: BaseException, host: str) -> NetworkError:
    """"no connection to the model host (host: why)": the OS's words where there are some (urllib wraps them in
    a URLError's `reason`), never a library's repr."""
    why = getattr(exc, "reason", None)
    if isinstance(why, BaseException):
        exc = why
    detail = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}".strip()
    if len(detail) > 300:
        detail = detail[:300] + "…"
    return NetworkError(f"no connection to the model host ({host}: {detail})", hint=HINT_NETWORK)


# ---- layout -------------------------------------------------------------------------------------------------------
def storage(cache_dir: Path, repo_id: str) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


@dataclass
class Target:
    remote: RemoteFile
    final: Path  # where the finished file goes (a cache blob or the user's folder)
    partial: Path  # the bytes so far; kept on cancel and on network failure
    pointer: Optional[Path] = None  # cache mode: snapshots/<commit>/<name>

    def partial_size(self) -> int:
        try:
            return self.partial.stat().st_size
        except OSError:
            return 0


def plan_target(remote: RemoteFile, dest: Optional[Path], cache: Path, repo_id: str) -> Target:
    if dest is not None:
        return Target(remote, dest / remote.name,
                      dest / ".cache" / "huggingface" / "download" / f"{remote.name}.{remote.etag}.incomplete")
    blob = storage(cache, repo_id) / "blobs" / remote.etag
    return Target(remote, blob, blob.with_name(blob.name + ".incomplete"),
                  storage(cache, repo_id) / "snapshots" / remote.commit / remote.name)


def link_pointer(t: Target) -> None:
    """snapshots/<commit>/<name> -> ../../blobs/<etag>, as huggingface_hub makes it (a copy where symlinks fail)."""
    assert t.pointer is not None
    t.pointer.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.remove(t.pointer)
    try:
        os.symlink(os.path.relpath(t.final, t.pointer.parent), t.pointer)
    except OSError:
        shutil.copyfile(t.final, t.pointer)


# ---- checks -------------------------------------------------------------------------------------------------------
def new_hasher(remote: RemoteFile):
    kind = remote.digest_kind
    if kind == "sha256":
        return hashlib.sha256()
    if kind == "git-sha1":
        if remote.size is None:
            return None  # the git header needs the size
        h = hashlib.sha1()  # noqa: S324 - git's object id, compared with the hub's, not a security boundary
        h.update(b"blob %d\0" % remote.size)
        return h
    return None


def hash_file(path: Path, hasher, check: Callable[[], None], upto: Optional[int] = None) -> None:
    left = upto
    with open(path, "rb") as fh:
        while left is None or left > 0:
            check()
            block = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                break
            hasher.update(block)
            if left is not None:
                left -= len(block)


def is_done(t: Target, check: Callable[[], None]) -> bool:
    """Already there and intact. A cache blob is hashed too, not trusted for its name: huggingface_hub itself
    (1.33) stores whatever bytes arrived under the announced sha256, so a blob of the right name can be corrupt."""
    try:
        size = t.final.stat().st_size
    except OSError:
        return False
    if t.remote.size is not None and size != t.remote.size:
        return False
    hasher = new_hasher(t.remote)
    if hasher is None:
        return t.remote.size is not None
    hash_file(t.final, hasher, check)
    return hasher.hexdigest() == t.remote.etag


def free_bytes(folder: Path) -> int:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(targets: Sequence[Target], folder: Path) -> int:
    """Refuse before the first byte when the rest of the download does not fit (with a margin)."""
    need = sum(max(0, (t.remote.size or 0) - t.partial_size()) for t in targets)
    free = free_bytes(folder)
    if need + DISK_MARGIN > free:
        raise DiskSpaceError(
            f"not enough free disk space for CLIP ViT-L/14: {need / 1e9:.2f} GB to download, "
            f"{free / 1e9:.2f} GB free", str(folder), "free some space or choose another folder for the model")
    return need


class Meter:
    """Bytes done over all files, reported at most every 0.2 s (and at each file's end)."""

    def __init__(self, progress: Optional[Progress], done: int, total: int):
        self.progress, self.done, self.total, self.last = progress, done, total, 0.0

    def add(self, n: int, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if self.progress is not None and (force or now - self.last >= 0.2):
            self.last = now
            self.progress(self.done, self.total)


# ---- the transfer -------------------------------------------------------------------------------------------------
def _fetch(t: Target, meter: Meter, transport: Transport, timeout: float, host: str,
           check: Callable[[], None]) -> None:
    """Bring t.partial to the remote size, resuming what is there; then check the digest and move it in place."""
    r = t.remote
    t.partial.parent.mkdir(parents=True, exist_ok=True)
    t.partial.touch()  # an empty file has no bytes to fetch, but still a partial to move in place
    offset = t.partial_size()
    if r.size is not None and offset > r.size:  # not ours, or a different file: start again
        t.partial.unlink()
        meter.add(-offset)
        offset = 0
    hasher = new_hasher(r)
    if hasher is not None and offset:
        hash_file(t.partial, hasher, check, offset)
    stalls = 0
    while r.size is None or offset < r.size:
        check()
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        got = 0
        try:
            with transport.stream(r.url, headers, timeout) as s:
                if s.status == 416 and offset and r.size is None:
                    break
                if s.status not in (200, 206):
                    raise DownloadError(f"the model host answered HTTP {s.status} for {r.name}", hint=HINT_NETWORK)
                if offset and s.status == 200:  # the server ignored our Range: start the file again
                    t.partial.unlink()
                    meter.add(-offset)
                    offset = 0
                    hasher = new_hasher(r)
                elif s.status == 206:
                    start = (s.header("Content-Range") or "").split(" ")[-1].split("-")[0]
                    if start != str(offset):
                        raise DownloadError(f"the model host resumed {r.name} at byte {start}, not {offset}")
                with open(t.partial, "ab") as fh:
                    for chunk in s.chunks():
                        check()  # before writing: the partial file is always a prefix of the file
                        if not chunk:
                            continue
                        if r.size is not None and offset + len(chunk) > r.size:
                            raise DownloadError(f"the model host sent more than the {r.size:,} bytes of {r.name}")
                        fh.write(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        offset += len(chunk)
                        got += len(chunk)
                        meter.add(len(chunk))
            if r.size is None:
                break  # a complete response of unknown length
        except HubError:
            raise
        except Exception as exc:
            if not transport.is_transport_error(exc):
                if isinstance(exc, OSError):  # the disk, not the network
                    raise DownloadError(f"could not write {r.name}: {exc}", str(t.partial)) from None
                raise  # a cancel, or a bug: never retried
            stalls = 0 if got else stalls + 1
            if stalls >= MAX_STALLS:
                raise network_error(exc, host) from None
            time.sleep(RETRY_PAUSE * max(stalls, 1))
            continue
        if r.size is not None and offset < r.size and not got:
            stalls += 1
            if stalls >= MAX_STALLS:
                raise NetworkError(f"no connection to the model host ({host}: {r.name} stopped at byte "
                                   f"{offset:,} of {r.size:,})", hint=HINT_NETWORK)
    if hasher is None:
        if r.name in MUST_HAVE_SHA256:
            t.partial.unlink()
            raise ChecksumError(f"the model host gave no sha256 for {r.name} (ETag {r.etag!r}): refusing a file "
                                "that cannot be checked", hint=HINT_NETWORK)
    else:
        got_digest = hasher.hexdigest()
        if got_digest != r.etag:
            t.partial.unlink()
            meter.add(-offset)
            raise ChecksumError(
                f"{r.name} is corrupt: its {r.digest_kind} is {got_digest}, the model host announced {r.etag}; "
                "the bad file was removed", hint="download again; if it happens again, the network or a proxy "
                "alters the file")
    t.final.parent.mkdir(parents=True, exist_ok=True)
    atomic.replace(t.partial, t.final, "download", keep=True)  # fsynced: a power cut never leaves a torn file
    meter.add(0, force=True)


def host_of(endpoint: Optional[str]) -> str:
    url = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return url.split("/")[2] if "://" in url else url


def download(transport: Transport, *, repo_id: str = CLIP_REPO, files: Sequence[str] = CLIP_FILES,
             optional: Sequence[str] = OPTIONAL_FILES, dest: Optional[Path] = None, cache: Optional[Path] = None,
             revision: Optional[str] = None, endpoint: Optional[str] = None, progress: Optional[Progress] = None,
             timeout: float = 30.0, check: Callable[[], None] = lambda: None) -> Dict[str, object]:
    """Download `files` of `repo_id` into the cache layout under `cache` (dest None) or into the folder `dest`, and
    return {"path", "files", "bytes", "downloaded", "commit", "verified": {name: kind}}. `check()` raises to cancel
    (once per chunk); the partial file is kept. Raises NetworkError, DownloadError, ChecksumError, DiskSpaceError."""
    if dest is None and cache is None:
        raise ValueError("download: name a folder or a cache")
    revision = revision or "main"
    endpoint = endpoint.rstrip("/") if endpoint else None
    host = host_of(endpoint)
    remotes: List[RemoteFile] = []
    commit = revision
    for name in files:
        check()
        remote = transport.metadata(repo_id, name, commit, endpoint, timeout, optional=name in optional)
        if remote is not None:
            commit = remote.commit
            remotes.append(remote)
    root = dest if dest is not None else cache
    assert root is not None
    targets = [plan_target(r, dest, root, repo_id) for r in remotes]
    todo = [t for t in targets if not is_done(t, check)]
    check_free_space(todo, root)
    total = sum(t.remote.size or 0 for t in targets)
    already = sum(t.remote.size or 0 for t in targets if t not in todo) + sum(t.partial_size() for t in todo)
    meter = Meter(progress, already, total)
    if progress is not None:
        progress(already, total)
    downloaded = 0
    for t in todo:
        before = meter.done
        with transport.lock(t, root, repo_id):
            if not (t.final.exists() and is_done(t, check)):  # another process may have finished it meanwhile
                _fetch(t, meter, transport, timeout, host, check)
        downloaded += max(0, meter.done - before)
    if dest is None:
        for t in targets:
            transport.link(t)
        where = storage(root, repo_id)
        if revision != commit:
            (where / "refs").mkdir(parents=True, exist_ok=True)
            atomic.write_text(where / "refs" / revision, commit, "hub-ref")
        folder = where / "snapshots" / commit
    else:
        folder = dest
    return {"path": str(folder), "files": [t.remote.name for t in targets], "bytes": total,
            "downloaded": downloaded, "commit": commit,
            "verified": {t.remote.name: t.remote.digest_kind or "size only" for t in targets}}
