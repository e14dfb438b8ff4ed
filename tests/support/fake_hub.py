"""A local server that behaves like the Hugging Face hub, for the CLIP download tests of both transports.

The server answers `HEAD/GET /{repo}/resolve/{revision}/{file}` as huggingface.co does: small (git) files directly
with their git blob sha1 as ETag, LFS files with a 302 to a CDN URL on another host name (`localhost` instead of
`127.0.0.1`: huggingface_hub follows same-host redirects, so the CDN must look foreign for the metadata to be read
off the redirect, as on the real hub) carrying X-Linked-Etag (sha256), X-Linked-Size, X-Repo-Commit and ETag. The
CDN URL honours Range. Faults on demand: a corrupted byte, a connection dropped midway (once), a slow transfer.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
from pathlib import Path
from typing import Dict

from geoclip_qgis.shared.hub_files import CLIP_FILES, CLIP_REPO

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS = ("model.safetensors",)


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id


class FakeHub:
    """A hub for one repo at one commit; `log` holds (method, path, Range header) of every request."""

    def __init__(self, files: Dict[str, bytes]):
        self.files = files
        self.corrupt: set = set()  # served with one byte flipped (the headers announce the true digest)
        self.drop_once: set = set()  # the first CDN GET sends half the bytes, then the connection is cut
        self.slow = False  # the CDN sends 64 KiB every 10 ms
        self.log: list = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):  # noqa: N802
                hub.answer(self, head=True)

            def do_GET(self):  # noqa: N802
                hub.answer(self, head=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def body(self, name: str) -> bytes:
        data = self.files[name]
        if name in self.corrupt:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        return data

    def answer(self, h, head: bool) -> None:
        path = h.path
        proxied = path.startswith("http://")
        if proxied:  # a request through us as an HTTP proxy: the absolute URI names the real target
            path = "/" + path.split("/", 3)[3]
        self.log.append((h.command, path, h.headers.get("Range"), proxied))
        parts = path.split("?")[0].strip("/").split("/")
        if parts[0] == "cdn":
            return self.cdn(h, parts[2], head)
        if len(parts) != 5 or parts[2] != "resolve":
            return self.error(h, 404, "RepoNotFound")
        repo, rev, name = "/".join(parts[:2]), parts[3], parts[4]
        if repo != CLIP_REPO:
            return self.error(h, 404, "RepoNotFound")
        if rev not in ("main", COMMIT):
            return self.error(h, 404, "RevisionNotFound")
        if name not in self.files:
            return self.error(h, 404, "EntryNotFound", {"X-Repo-Commit": COMMIT})
        data = self.files[name]
        if name in LFS:
            sha = hashlib.sha256(data).hexdigest()
            h.send_response(302)
            for k, v in {"Location": f"http://localhost:{self.port}/cdn/{sha}/{name}?X-Amz-Signature=x",
                         "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)), "X-Repo-Commit": COMMIT,
                         "ETag": f'"{sha}"', "Content-Length": "0"}.items():
                h.send_header(k, v)
            h.end_headers()
            return
        h.send_response(200)
        for k, v in {"ETag": f'"{git_sha1(data)}"', "X-Repo-Commit": COMMIT,
                     "Content-Length": str(len(data))}.items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            h.wfile.write(self.body(name))

    def error(self, h, status: int, code: str, extra=None) -> None:
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("Content-Length", "0")
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()

    def cdn(self, h, name: str, head: bool) -> None:
        data = self.body(name)
        start = 0
        rng = h.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self.error(h, 416, "RangeNotSatisfiable")
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        h.send_header("Content-Length", str(len(data) - start))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", f'"{hashlib.sha256(self.files[name]).hexdigest()}"')
        h.end_headers()
        if head:
            return
        part = data[start:]
        if name in self.drop_once:
            self.drop_once.discard(name)
            h.wfile.write(part[:len(part) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        step = 1 << 16
        try:
            for i in range(0, len(part), step):  # bounded: one pass over the file
                h.wfile.write(part[i:i + step])
                if self.slow:
                    time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):  # the client cancelled and hung up
            h.close_connection = True


def repo_files_of(folder: Path) -> Dict[str, bytes]:
    """The files of a CLIP folder as the hub would list them (preprocessor_config.json, the hub's name)."""
    files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.name in CLIP_FILES}
    if "preprocessor_config.json" not in files:  # transformers 5 saves processor_config.json
        proc = json.loads((Path(folder) / "processor_config.json").read_text())
        files["preprocessor_config.json"] = json.dumps(proc.get("image_processor", proc)).encode()
    return files
