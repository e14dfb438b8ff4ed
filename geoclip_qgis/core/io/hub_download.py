"""CLIP ViT-L/14 from the Hugging Face hub: resumable, checksummed, free disk checked first, cancellable.

Why not plain `snapshot_download`: in huggingface_hub 1.x an interrupted or cancelled file is deleted (its temporary
file is unique to one call, so a rerun starts from byte 0: 1.7 GB again), and a plain HTTP download is never
checked against the sha256 the hub announces (only its size is). So the parts are split:

- huggingface_hub reads each file's metadata (`get_hf_file_metadata`). It stops at the hub's redirect to the CDN,
  so it sees `X-Linked-Etag` (an LFS file's sha256), `X-Linked-Size` and `X-Repo-Commit`. The hand-written
  downloader this replaces followed that redirect and so never saw the sha256.
- The bytes come through huggingface_hub's own HTTP session (its proxy, TLS and client-factory settings), into a
  partial file that outlives a cancel or a dropped connection: the next request resumes it with an HTTP Range.
  The digest is computed while the bytes arrive: sha256 for LFS files, the git blob sha1 for small files (the
  hub's ETag for them). A mismatch removes the file and names it.
- The files land in the standard Hugging Face cache layout (`models--openai--clip-vit-large-patch14/blobs`,
  `snapshots/<commit>`, `refs/main`), which transformers and every other tool share, or in a folder the user names.

The engine side only: no qgis/PyQt import. Progress is `progress(done_bytes, total_bytes)`; a cancel is
`core.cancel.check()` or the progress callback raising, once per chunk (1 MiB).
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
from typing import Callable, Dict, Iterator, List, Optional

from ...shared import defaults
from .. import cancel
from ..errors import ChecksumError, DiskSpaceError, DownloadError, GeoClipError, NetworkError  # noqa: F401

CLIP_REPO = defaults.CLIP_REPO  # one definition: shared/defaults.py
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
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")

Progress = Callable[[int, int], None]


_HINT_NETWORK = ("check the internet connection and QGIS's proxy settings (Settings › Options › Network), or "
                 "download the folder elsewhere and name it as the CLIP folder")


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


# ---- errors -------------------------------------------------------------------------------------------------------
def _is_transport_error(exc: BaseException) -> bool:
    """A failure to talk to the host at all (as opposed to an HTTP answer we do not like)."""
    try:
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError:  # huggingface_hub < 0.23
        from huggingface_hub.utils import HfHubHTTPError, OfflineModeIsEnabled  # type: ignore
    if isinstance(exc, OfflineModeIsEnabled):
        return True
    if isinstance(exc, HfHubHTTPError):
        return False
    try:
        import httpx

        if isinstance(exc, httpx.TransportError):
            return True
    except ImportError:
        pass
    try:
        import requests

        # ConnectionError, Timeout, ChunkedEncodingError (a connection cut mid-body), ...; not an HTTP status
        if isinstance(exc, requests.RequestException) and not isinstance(exc, requests.HTTPError):
            return True
    except ImportError:
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))


def _network_error(exc: BaseException, host: str) -> NetworkError:
    detail = f"{type(exc).__name__}: {exc}".strip()
    if len(detail) > 300:
        detail = detail[:300] + "…"
    return NetworkError(f"no connection to the model host ({host}: {detail})", hint=_HINT_NETWORK)


def _http_status(exc: BaseException) -> Optional[int]:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


# ---- huggingface_hub's HTTP session, with the proxy the caller names ---------------------------------------------
def _reset_session() -> None:
    import huggingface_hub

    reset = getattr(huggingface_hub, "close_session", None)  # 1.x (httpx: proxies are read when a client is made)
    if reset is None:
        from huggingface_hub import utils

        reset = getattr(utils, "reset_sessions", None)  # 0.x (requests)
    if reset is not None:
        reset()


@contextlib.contextmanager
def proxy_env(proxy: Optional[str]) -> Iterator[None]:
    """huggingface_hub honours HTTP(S)_PROXY: set them from QGIS's proxy URL for the download, then restore them.
    The shared session is rebuilt on both sides so that it picks up (and then drops) the proxy."""
    if not proxy:
        yield
        return
    saved = {k: os.environ.get(k) for k in PROXY_VARS}
    for k in PROXY_VARS:
        os.environ[k] = proxy
    _reset_session()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reset_session()


@contextlib.contextmanager
def online() -> Iterator[None]:
    """A download is the user asking to go online: HF_HUB_OFFLINE (which keeps model loads from touching the
    network) is lifted for huggingface_hub during the download only, and restored afterwards."""
    from huggingface_hub import constants

    saved = getattr(constants, "HF_HUB_OFFLINE", None)
    if saved is None:
        yield
        return
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


class _Stream:
    """One streamed GET through huggingface_hub's session: httpx (huggingface_hub 1.x) or requests (0.x)."""

    def __init__(self, url: str, headers: Dict[str, str], timeout: float):
        from huggingface_hub.utils import get_session

        self.session = get_session()
        self.url, self.headers, self.timeout = url, headers, timeout
        self._cm = None
        self.response = None

    def __enter__(self) -> _Stream:
        if callable(getattr(self.session, "stream", None)):  # httpx.Client (requests.Session.stream is a bool)
            self._cm = self.session.stream("GET", self.url, headers=self.headers, timeout=self.timeout,
                                           follow_redirects=True)
            self.response = self._cm.__enter__()
        else:  # requests.Session
            self.response = self.session.get(self.url, headers=self.headers, timeout=self.timeout, stream=True,
                                             allow_redirects=True)
        return self

    @property
    def status(self) -> int:
        return int(self.response.status_code)

    def header(self, name: str) -> Optional[str]:
        return self.response.headers.get(name)

    def chunks(self) -> Iterator[bytes]:
        if hasattr(self.response, "iter_bytes"):
            return self.response.iter_bytes(CHUNK)
        return self.response.iter_content(CHUNK)

    def __exit__(self, *exc) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)
        elif self.response is not None:
            self.response.close()


# ---- metadata -----------------------------------------------------------------------------------------------------
def _metadata(repo_id: str, name: str, revision: str, endpoint: Optional[str], timeout: float,
              optional: bool) -> Optional[RemoteFile]:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint)
    host = url.split("/")[2] if "://" in url else url
    try:
        meta = get_hf_file_metadata(url, timeout=timeout)
    except Exception as exc:
        if _is_transport_error(exc):
            raise _network_error(exc, host) from None
        status = _http_status(exc)
        if optional and status == 404:  # a tokenizer file this revision does not have
            return None
        raise DownloadError(f"the model host refused {repo_id}/{name} at revision {revision!r} "
                            f"(HTTP {status}: {type(exc).__name__})", hint=f"is {repo_id} still on the hub?") from None
    if not meta.commit_hash:
        raise DownloadError(f"{host} answered for {name} without an X-Repo-Commit header: it is not a Hugging Face hub "
                            "endpoint (a captive portal or a proxy page?)", hint=_HINT_NETWORK)
    if not meta.etag:
        raise DownloadError(f"{host} gave no ETag for {name}: the file cannot be checked", hint=_HINT_NETWORK)
    size = meta.size if meta.size is not None and meta.size >= 0 else None
    return RemoteFile(name, meta.location or url, size, meta.etag.lower(), meta.commit_hash)


# ---- layout -------------------------------------------------------------------------------------------------------
def _cache_root(cache_dir: Optional[os.PathLike | str]) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _storage(cache_dir: Path, repo_id: str) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


@dataclass
class _Target:
    remote: RemoteFile
    final: Path  # where the finished file goes (a cache blob or the user's folder)
    partial: Path  # the bytes so far; kept on cancel and on network failure
    pointer: Optional[Path] = None  # cache mode: snapshots/<commit>/<name>

    def partial_size(self) -> int:
        try:
            return self.partial.stat().st_size
        except OSError:
            return 0


def _plan(remote: RemoteFile, dest: Optional[Path], cache: Path, repo_id: str) -> _Target:
    if dest is not None:
        return _Target(remote, dest / remote.name,
                       dest / ".cache" / "huggingface" / "download" / f"{remote.name}.{remote.etag}.incomplete")
    storage = _storage(cache, repo_id)
    blob = storage / "blobs" / remote.etag
    return _Target(remote, blob, blob.with_name(blob.name + ".incomplete"),
                   storage / "snapshots" / remote.commit / remote.name)


def _new_hasher(remote: RemoteFile):
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


def _hash_file(path: Path, hasher, upto: Optional[int] = None) -> None:
    left = upto
    with open(path, "rb") as fh:
        while left is None or left > 0:
            cancel.check()
            block = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                break
            hasher.update(block)
            if left is not None:
                left -= len(block)


def _is_done(t: _Target) -> bool:
    """Already there and intact. A cache blob is hashed too, not trusted for its name: huggingface_hub itself
    (1.33) stores whatever bytes arrived under the announced sha256, so a blob of the right name can be corrupt."""
    try:
        size = t.final.stat().st_size
    except OSError:
        return False
    if t.remote.size is not None and size != t.remote.size:
        return False
    hasher = _new_hasher(t.remote)
    if hasher is None:
        return t.remote.size is not None
    _hash_file(t.final, hasher)
    return hasher.hexdigest() == t.remote.etag


def _free_bytes(folder: Path) -> int:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(targets: List[_Target], folder: Path) -> int:
    """Refuse before the first byte when the rest of the download does not fit (with a margin)."""
    need = sum(max(0, (t.remote.size or 0) - t.partial_size()) for t in targets)
    free = _free_bytes(folder)
    if need + DISK_MARGIN > free:
        raise DiskSpaceError(
            f"not enough free disk space for CLIP ViT-L/14: {need / 1e9:.2f} GB to download, "
            f"{free / 1e9:.2f} GB free", str(folder),
            "free some space or choose another folder for the model")
    return need


@contextlib.contextmanager
def _lock(t: _Target, cache: Path, repo_id: str) -> Iterator[None]:
    """The lock huggingface_hub itself takes for this blob, so two tools never write the same file at once."""
    if t.pointer is None:
        yield
        return
    try:
        from huggingface_hub.utils import WeakFileLock
    except ImportError:
        yield
        return
    lock = cache / ".locks" / _storage(cache, repo_id).name / f"{t.remote.etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(str(lock)):
        yield


def _link(t: _Target) -> None:
    """snapshots/<commit>/<name> -> ../../blobs/<etag>, as huggingface_hub makes it (a copy where symlinks fail)."""
    assert t.pointer is not None
    t.pointer.parent.mkdir(parents=True, exist_ok=True)
    try:
        from huggingface_hub.file_download import _create_symlink

        _create_symlink(str(t.final), str(t.pointer), new_blob=False)
        return
    except ImportError:
        pass
    with contextlib.suppress(OSError):
        os.remove(t.pointer)
    try:
        os.symlink(os.path.relpath(t.final, t.pointer.parent), t.pointer)
    except OSError:
        shutil.copyfile(t.final, t.pointer)


# ---- the transfer -------------------------------------------------------------------------------------------------
class _Meter:
    """Bytes done over all files, reported at most every 0.2 s (and at each file's end)."""

    def __init__(self, progress: Optional[Progress], done: int, total: int):
        self.progress, self.done, self.total, self.last = progress, done, total, 0.0

    def add(self, n: int, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if self.progress is not None and (force or now - self.last >= 0.2):
            self.last = now
            self.progress(self.done, self.total)


def _fetch(t: _Target, meter: _Meter, timeout: float, host: str) -> None:
    """Bring t.partial to the remote size, resuming what is there; then check the digest and move it in place."""
    r = t.remote
    t.partial.parent.mkdir(parents=True, exist_ok=True)
    t.partial.touch()  # an empty file has no bytes to fetch, but still a partial to move in place
    offset = t.partial_size()
    if r.size is not None and offset > r.size:  # not ours, or a different file: start again
        t.partial.unlink()
        meter.add(-offset)
        offset = 0
    hasher = _new_hasher(r)
    if hasher is not None and offset:
        _hash_file(t.partial, hasher, offset)
    stalls = 0
    while r.size is None or offset < r.size:
        cancel.check()
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        got = 0
        try:
            with _Stream(r.url, headers, timeout) as s:
                if s.status == 416 and offset and r.size is None:
                    break
                if s.status not in (200, 206):
                    raise DownloadError(f"the model host answered HTTP {s.status} for {r.name}", hint=_HINT_NETWORK)
                if offset and s.status == 200:  # the server ignored our Range: start the file again
                    t.partial.unlink()
                    meter.add(-offset)
                    offset = 0
                    hasher = _new_hasher(r)
                elif s.status == 206:
                    start = (s.header("Content-Range") or "").split(" ")[-1].split("-")[0]
                    if start != str(offset):
                        raise DownloadError(f"the model host resumed {r.name} at byte {start}, not {offset}")
                with open(t.partial, "ab") as fh:
                    for chunk in s.chunks():
                        cancel.check()  # before writing: the partial file is always a prefix of the file
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
        except (GeoClipError, cancel.Cancelled):
            raise
        except Exception as exc:
            if not _is_transport_error(exc):
                if isinstance(exc, OSError):  # the disk, not the network
                    raise DownloadError(f"could not write {r.name}: {exc}", str(t.partial)) from None
                raise
            stalls = 0 if got else stalls + 1
            if stalls >= MAX_STALLS:
                raise _network_error(exc, host) from None
            time.sleep(RETRY_PAUSE * max(stalls, 1))
            continue
        if r.size is not None and offset < r.size and not got:
            stalls += 1
            if stalls >= MAX_STALLS:
                raise NetworkError(f"no connection to the model host ({host}: {r.name} stopped at byte "
                                   f"{offset:,} of {r.size:,})", hint=_HINT_NETWORK)
    if hasher is None:
        if r.name in MUST_HAVE_SHA256:
            t.partial.unlink()
            raise ChecksumError(f"the model host gave no sha256 for {r.name} (ETag {r.etag!r}): refusing a file "
                                "that cannot be checked", hint=_HINT_NETWORK)
    else:
        got_digest = hasher.hexdigest()
        if got_digest != r.etag:
            t.partial.unlink()
            meter.add(-offset)
            kind = r.digest_kind
            raise ChecksumError(
                f"{r.name} is corrupt: its {kind} is {got_digest}, the model host announced {r.etag}; "
                "the bad file was removed", hint="download again; if it happens again, the network or a proxy "
                "alters the file")
    t.final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(t.partial, t.final)
    meter.add(0, force=True)


def download_clip(dest: Optional[os.PathLike | str] = None, *, endpoint: Optional[str] = None,
                  proxy: Optional[str] = None, revision: Optional[str] = None, repo_id: str = CLIP_REPO,
                  cache_dir: Optional[os.PathLike | str] = None, progress: Optional[Progress] = None,
                  timeout: float = 30.0, check: bool = True) -> Dict[str, object]:
    """Download CLIP ViT-L/14's files into the Hugging Face cache (default) or into `dest`, and return
    {"path": folder, "files": [...], "bytes": n, "downloaded": n, "commit": sha, "verified": {name: kind}}.

    `endpoint` replaces https://huggingface.co (HF_ENDPOINT; a mirror, or the tests' local hub); `proxy` is an
    http(s) proxy URL (QGIS's settings). A rerun after a cancel or a dropped connection resumes the partial file.
    Raises NetworkError ("no connection to the model host (…)"), DownloadError, ChecksumError (the bad file is
    removed), DiskSpaceError (before anything is downloaded), BackboneError (the folder is not a usable CLIP),
    core.cancel.Cancelled (the partial file is kept)."""
    revision = revision or "main"
    if endpoint:
        endpoint = endpoint.rstrip("/")
    host_url = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    host = host_url.split("/")[2] if "://" in host_url else host_url
    folder_dest = Path(dest).expanduser() if dest else None
    cache = _cache_root(cache_dir)
    with proxy_env(proxy), online():
        # The first file pins the commit; the rest are asked for at that commit, so the folder is one snapshot.
        remotes: List[RemoteFile] = []
        commit = revision
        for name in CLIP_FILES:
            cancel.check()
            remote = _metadata(repo_id, name, commit, endpoint, timeout, optional=name in OPTIONAL_FILES)
            if remote is not None:
                commit = remote.commit
                remotes.append(remote)
        targets = [_plan(r, folder_dest, cache, repo_id) for r in remotes]
        todo = [t for t in targets if not _is_done(t)]
        check_free_space(todo, folder_dest if folder_dest is not None else cache)
        total = sum(t.remote.size or 0 for t in targets)
        already = sum(t.remote.size or 0 for t in targets if t not in todo) + sum(t.partial_size() for t in todo)
        meter = _Meter(progress, already, total)
        if progress is not None:
            progress(already, total)
        downloaded = 0
        for t in todo:
            before = meter.done
            with _lock(t, cache, repo_id):
                if not (t.final.exists() and _is_done(t)):  # another process may have finished it meanwhile
                    _fetch(t, meter, timeout, host)
            downloaded += max(0, meter.done - before)
    if folder_dest is None:
        for t in targets:
            _link(t)
        storage = _storage(cache, repo_id)
        if revision != commit:
            (storage / "refs").mkdir(parents=True, exist_ok=True)
            (storage / "refs" / revision).write_text(commit)
        folder = storage / "snapshots" / commit
    else:
        folder = folder_dest
    if check:
        from ..model.image_encoder import check_clip_folder

        check_clip_folder(folder)
    return {"path": str(folder), "files": [t.remote.name for t in targets], "bytes": total,
            "downloaded": downloaded, "commit": commit,
            "verified": {t.remote.name: t.remote.digest_kind or "size only" for t in targets}}
