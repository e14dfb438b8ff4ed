"""CLIP ViT-L/14 from the Hugging Face hub for the engine: shared/hub_files.py's download (the one rule of files,
resume, checks and refusals) through huggingface_hub's own HTTP session (its proxy, TLS and client-factory settings),
its file locks and its symlinks; then the folder is checked as a CLIP the engine can load.

Why not plain `snapshot_download`: in huggingface_hub 1.x an interrupted or cancelled file is deleted (its temporary
file is unique to one call, so a rerun starts from byte 0: 1.7 GB again), and a plain HTTP download is never
checked against the sha256 the hub announces (only its size is).

The engine side only: no qgis/PyQt import. Progress is `progress(done_bytes, total_bytes)`; a cancel is
`core.cancel.check()` or the progress callback raising, once per chunk (1 MiB).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, Optional

from ...shared import hub_files
from ...shared.hub_files import CLIP_FILES, CLIP_REPO, OPTIONAL_FILES, REQUIRED_FILES, RemoteFile  # noqa: F401
from .. import cancel
from ..errors import ChecksumError, DiskSpaceError, DownloadError, GeoClipError, NetworkError  # noqa: F401

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")
Progress = hub_files.Progress
# shared/hub_files' errors -> the engine's own (their codes reach the worker's answers and the CLI's exit status)
_AS_ENGINE = ((hub_files.ChecksumError, ChecksumError), (hub_files.DiskSpaceError, DiskSpaceError),
              (hub_files.NetworkError, NetworkError), (hub_files.DownloadError, DownloadError))


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
            return self.response.iter_bytes(hub_files.CHUNK)
        return self.response.iter_content(hub_files.CHUNK)

    def __exit__(self, *exc) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)
        elif self.response is not None:
            self.response.close()


class HubTransport(hub_files.Transport):
    """huggingface_hub's metadata call, session, file locks and symlinks."""

    def is_transport_error(self, exc: BaseException) -> bool:
        return _is_transport_error(exc)

    def stream(self, url: str, headers: Dict[str, str], timeout: float) -> _Stream:
        return _Stream(url, headers, timeout)

    def metadata(self, repo_id: str, name: str, revision: str, endpoint: Optional[str], timeout: float,
                 optional: bool) -> Optional[RemoteFile]:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint)
        host = url.split("/")[2] if "://" in url else url
        try:
            meta = get_hf_file_metadata(url, timeout=timeout)
        except Exception as exc:
            if _is_transport_error(exc):
                raise hub_files.network_error(exc, host) from None
            status = _http_status(exc)
            if optional and status == 404:  # a tokenizer file this revision does not have
                return None
            raise hub_files.DownloadError(
                f"the model host refused {repo_id}/{name} at revision {revision!r} (HTTP {status}: "
                f"{type(exc).__name__})", hint=f"is {repo_id} still on the hub?") from None
        if not meta.commit_hash:
            raise hub_files.DownloadError(
                f"{host} answered for {name} without an X-Repo-Commit header: it is not a Hugging Face hub endpoint "
                "(a captive portal or a proxy page?)", hint=hub_files.HINT_NETWORK)
        if not meta.etag:
            raise hub_files.DownloadError(f"{host} gave no ETag for {name}: the file cannot be checked",
                                          hint=hub_files.HINT_NETWORK)
        size = meta.size if meta.size is not None and meta.size >= 0 else None
        return RemoteFile(name, meta.location or url, size, meta.etag.lower(), meta.commit_hash)

    @contextlib.contextmanager
    def lock(self, target: hub_files.Target, cache: Path, repo_id: str) -> Iterator[None]:
        """The lock huggingface_hub itself takes for this blob, so two tools never write the same file at once."""
        if target.pointer is None:
            yield
            return
        try:
            from huggingface_hub.utils import WeakFileLock
        except ImportError:
            yield
            return
        lock = cache / ".locks" / hub_files.storage(cache, repo_id).name / f"{target.remote.etag}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with WeakFileLock(str(lock)):
            yield

    def link(self, target: hub_files.Target) -> None:
        assert target.pointer is not None
        target.pointer.parent.mkdir(parents=True, exist_ok=True)
        try:
            from huggingface_hub.file_download import _create_symlink
        except ImportError:
            hub_files.link_pointer(target)
            return
        _create_symlink(str(target.final), str(target.pointer), new_blob=False)


def _cache_root(cache_dir: Optional[os.PathLike | str]) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


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
    folder_dest = Path(dest).expanduser() if dest else None
    try:
        with proxy_env(proxy), online():
            out = hub_files.download(HubTransport(), repo_id=repo_id, dest=folder_dest,
                                     cache=None if folder_dest else _cache_root(cache_dir), revision=revision,
                                     endpoint=endpoint, progress=progress, timeout=timeout, check=cancel.check)
    except hub_files.HubError as exc:
        engine_error = next(mine for theirs, mine in _AS_ENGINE if isinstance(exc, theirs))
        raise engine_error(exc.message, exc.path, exc.hint) from None
    if check:
        from ..model.image_encoder import check_clip_folder

        check_clip_folder(Path(str(out["path"])))
    return out
