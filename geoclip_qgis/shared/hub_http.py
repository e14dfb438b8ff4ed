"""The hub download's transport on the standard library (urllib), for QGIS's own Python before any engine exists.

It reads the hub's metadata as huggingface_hub does: a HEAD on `/{repo}/resolve/{revision}/{file}` that follows
same-host (relative) redirects and stops at the redirect to the CDN, where the LFS file's sha256 (X-Linked-Etag),
size (X-Linked-Size) and commit (X-Repo-Commit) are announced. Everything else (files, resume, checks, refusals)
is shared/hub_files.py's, the same rules as the engine's download.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Iterator, Optional

from .hub_files import CHUNK, HINT_NETWORK, DownloadError, RemoteFile, Transport, network_error

USER_AGENT = "geoclip-qgis"
MAX_REDIRECTS = 5


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        return None  # the 3xx comes back as an HTTPError, headers and all


class _Response:
    def __init__(self, resp):
        self.resp = resp

    @property
    def status(self) -> int:
        return int(getattr(self.resp, "status", None) or self.resp.getcode())

    def header(self, name: str) -> Optional[str]:
        return self.resp.headers.get(name)

    def chunks(self) -> Iterator[bytes]:
        while True:
            block = self.resp.read(CHUNK)
            if not block:
                return
            yield block


class UrllibTransport(Transport):
    """urllib with the caller's proxy (QGIS's network settings), else the environment's."""

    def __init__(self, proxy: Optional[str] = None):
        handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
        self._opener = urllib.request.build_opener(*handlers)
        self._head_opener = urllib.request.build_opener(*handlers, _NoRedirect())

    def is_transport_error(self, exc: BaseException) -> bool:
        if isinstance(exc, urllib.error.HTTPError):
            return False
        return isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout,
                                 urllib.error.ContentTooShortError)) or \
            type(exc).__name__ in ("IncompleteRead", "RemoteDisconnected")

    def metadata(self, repo_id: str, name: str, revision: str, endpoint: Optional[str], timeout: float,
                 optional: bool) -> Optional[RemoteFile]:
        base = (endpoint or "https://huggingface.co").rstrip("/")
        url = f"{base}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/{name}"
        host = urllib.parse.urlsplit(url).netloc
        headers: Dict[str, str] = {}
        status = 0
        for _ in range(MAX_REDIRECTS):
            req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT,
                                                                        "Accept-Encoding": "identity"})
            try:
                with self._head_opener.open(req, timeout=timeout) as resp:  # noqa: S310 - the model host only
                    status, headers = resp.status, {k.lower(): v for k, v in resp.headers.items()}
            except urllib.error.HTTPError as exc:
                status, headers = exc.code, {k.lower(): v for k, v in (exc.headers or {}).items()}
                exc.close()
            except Exception as exc:
                if self.is_transport_error(exc):
                    raise network_error(exc, host) from None
                raise
            location = headers.get("location")
            if 300 <= status < 400 and location and location.startswith("/"):
                url = urllib.parse.urljoin(url, location)  # a same-host redirect (a renamed repo): follow it
                continue
            break
        if status == 404 and optional:
            return None  # a tokenizer file this revision does not have
        if status >= 400:
            raise DownloadError(f"the model host refused {repo_id}/{name} at revision {revision!r} (HTTP {status}: "
                                f"{headers.get('x-error-code', 'error')})", hint=f"is {repo_id} still on the hub?")
        commit = headers.get("x-repo-commit")
        if not commit:
            raise DownloadError(f"{host} answered for {name} without an X-Repo-Commit header: it is not a Hugging "
                                "Face hub endpoint (a captive portal or a proxy page?)", hint=HINT_NETWORK)
        etag = (headers.get("x-linked-etag") or headers.get("etag") or "").replace("W/", "").strip('"').lower()
        if not etag:
            raise DownloadError(f"{host} gave no ETag for {name}: the file cannot be checked", hint=HINT_NETWORK)
        size_text = headers.get("x-linked-size") or headers.get("content-length")
        size = int(size_text) if size_text and size_text.isdigit() else None
        where = headers.get("location") if 300 <= status < 400 else None
        return RemoteFile(name, urllib.parse.urljoin(url, where) if where else url, size, etag, commit)

    @contextlib.contextmanager
    def stream(self, url: str, headers: Dict[str, str], timeout: float) -> Iterator[_Response]:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        try:
            resp = self._opener.open(req, timeout=timeout)  # noqa: S310 - the model host only
        except urllib.error.HTTPError as exc:  # 416 and friends: an answer, read like any other
            resp = exc
        try:
            yield _Response(resp)
        finally:
            resp.close()
