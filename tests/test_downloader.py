"""Model downloads against a local HTTP server: Range resume, sha256 checks, free-space refusal."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from geoclip_qgis.client import downloader

PAYLOAD = bytes(range(256)) * 16384  # 4 MiB: several read chunks


class Handler(http.server.BaseHTTPRequestHandler):
    files = {"model.safetensors": PAYLOAD, "config.json": b'{"model_type": "clip"}'}
    ranges_seen: list = []

    def log_message(self, *args):
        pass

    def _headers(self, name: str, body: bytes, status: int = 200, extra=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if name.endswith(".safetensors"):
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(self.files[name]).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(self.files[name])))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self):  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        self._headers(name, self.files[name])

    def do_GET(self):  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        data = self.files[name]
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            type(self).ranges_seen.append(start)
            body = data[start:]
            self._headers(name, body, 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        else:
            body = data
            self._headers(name, body)
        self.wfile.write(body)


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.ranges_seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/repo/resolve/main"
    httpd.shutdown()


def test_download_checks_sha256(server, tmp_path):
    seen = []
    downloader.download_all(server, ["config.json", "model.safetensors"], tmp_path, lambda d, t, n: seen.append(d))
    assert (tmp_path / "model.safetensors").read_bytes() == PAYLOAD
    assert seen[-1] == len(PAYLOAD) + len(Handler.files["config.json"])
    assert not list(tmp_path.glob("*.part"))


def test_resume_from_partial(server, tmp_path):
    (tmp_path / "model.safetensors.part").write_bytes(PAYLOAD[:300_000])
    downloader.download_all(server, ["model.safetensors"], tmp_path, lambda *a: None)
    assert Handler.ranges_seen == [300_000]
    assert (tmp_path / "model.safetensors").read_bytes() == PAYLOAD


def test_corrupt_partial_is_caught_and_removed(server, tmp_path):
    (tmp_path / "model.safetensors.part").write_bytes(b"\x00" * 300_000)  # wrong bytes, resumed after
    with pytest.raises(downloader.DownloadError, match="does not match"):
        downloader.download_all(server, ["model.safetensors"], tmp_path, lambda *a: None)
    assert not (tmp_path / "model.safetensors.part").exists() and not (tmp_path / "model.safetensors").exists()


def test_cancel_keeps_partial_for_resume(server, tmp_path):
    calls = {"n": 0}

    def cancel_soon():
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(downloader.Cancelled):
        downloader.fetch(downloader.describe(server, ["model.safetensors"])[0], tmp_path, lambda d: None, cancel_soon)
    assert 0 < (tmp_path / "model.safetensors.part").stat().st_size < len(PAYLOAD)


def test_free_space_refusal(tmp_path):
    with pytest.raises(downloader.DownloadError, match="not enough free disk space"):
        downloader.check_free_space(Path(tmp_path), 1 << 60)
