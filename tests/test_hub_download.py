"""CLIP downloads through huggingface_hub against a local server that behaves like the hub (core/io/hub_download.py).

The server answers `HEAD/GET /{repo}/resolve/{revision}/{file}` as huggingface.co does: small (git) files directly
with their git blob sha1 as ETag, LFS files with a 302 to a CDN URL on another host name (`localhost` instead of
`127.0.0.1`: huggingface_hub follows same-host redirects, so the CDN must look foreign for the metadata to be read
off the redirect, as on the real hub) carrying X-Linked-Etag (sha256), X-Linked-Size, X-Repo-Commit and ETag. The
CDN URL honours Range. Faults on demand: a corrupted byte, a connection dropped midway (once), a slow transfer.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path
from typing import Dict

import pytest
from support.fake_hub import COMMIT, FakeHub, git_sha1, repo_files_of

from geoclip_qgis.core.cancel import Cancelled, cancel_scope
from geoclip_qgis.core.io import hub_download
from geoclip_qgis.core.io.hub_download import CLIP_REPO, ChecksumError, DiskSpaceError, NetworkError, download_clip
from geoclip_qgis.core.model.image_encoder import check_clip_folder
from geoclip_qgis.core.service.worker import Worker
from geoclip_qgis.shared import hub_files

LFS = ("model.safetensors",)


@pytest.fixture(scope="module")
def repo_files(tiny_clip) -> Dict[str, bytes]:
    files = repo_files_of(tiny_clip)
    assert "model.safetensors" in files and "special_tokens_map.json" not in files  # an optional file is missing
    return files


@pytest.fixture()
def hub(repo_files):
    server = FakeHub(dict(repo_files))
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch):
    for k in hub_download.PROXY_VARS + ("ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(k, raising=False)
    hub_download._reset_session()
    yield
    hub_download._reset_session()


def _blob(cache: Path, name: str, files) -> Path:
    data = files[name]
    etag = hashlib.sha256(data).hexdigest() if name in LFS else git_sha1(data)
    return cache / "models--openai--clip-vit-large-patch14" / "blobs" / etag


def _partials(root: Path) -> list:
    return sorted(root.rglob("*.incomplete"))


def test_download_into_the_hub_cache(hub, repo_files, tmp_path):
    cache = tmp_path / "hf"
    seen = []
    out = download_clip(endpoint=hub.endpoint, cache_dir=cache, progress=lambda d, t: seen.append((d, t)))
    folder = Path(out["path"])
    assert folder == cache / "models--openai--clip-vit-large-patch14" / "snapshots" / COMMIT
    check_clip_folder(folder)
    assert sorted(out["files"]) == sorted(repo_files)
    assert out["bytes"] == out["downloaded"] == sum(len(b) for b in repo_files.values())
    assert out["verified"]["model.safetensors"] == "sha256" and out["verified"]["config.json"] == "git-sha1"
    for name, data in repo_files.items():
        assert (folder / name).read_bytes() == data
        assert (folder / name).is_symlink() and (folder / name).resolve() == _blob(cache, name, repo_files)
    assert (folder.parents[1] / "refs" / "main").read_text() == COMMIT
    assert seen[-1] == (out["bytes"], out["bytes"]) and all(d <= t for d, t in seen)
    assert not _partials(cache)
    # The metadata came off the hub's redirect; the bytes from the CDN host; the other files at the pinned commit.
    assert ("HEAD", f"/{CLIP_REPO}/resolve/main/config.json", None, False) in hub.log
    assert any(m == "GET" and p.startswith("/cdn/") for m, p, _, _ in hub.log)
    assert all(f"/resolve/{COMMIT}/" in p for m, p, _, _ in hub.log if "/resolve/" in p and "config.json" not in p)
    # Other tools find it where they look: huggingface_hub's own offline lookup returns this very folder.
    from huggingface_hub import snapshot_download

    assert Path(snapshot_download(CLIP_REPO, cache_dir=cache, local_files_only=True)) == folder
    # A second run finds everything and downloads nothing.
    n_get = sum(m == "GET" for m, *_ in hub.log)
    again = download_clip(endpoint=hub.endpoint, cache_dir=cache)
    assert again["downloaded"] == 0 and again["path"] == out["path"]
    assert sum(m == "GET" for m, *_ in hub.log) == n_get
    # A blob of the right name with a wrong byte (huggingface_hub 1.33 itself stores unchecked bytes under the
    # announced sha256) is found out and replaced.
    blob = _blob(cache, "model.safetensors", repo_files)
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    fixed = download_clip(endpoint=hub.endpoint, cache_dir=cache)
    assert fixed["downloaded"] == len(repo_files["model.safetensors"])
    assert blob.read_bytes() == repo_files["model.safetensors"]


def test_download_into_a_named_folder(hub, repo_files, tmp_path):
    dest = tmp_path / "my models" / "clip"
    out = download_clip(dest, endpoint=hub.endpoint, cache_dir=tmp_path / "unused")
    assert Path(out["path"]) == dest
    check_clip_folder(dest)
    assert {p.name for p in dest.iterdir() if p.is_file()} == set(repo_files)
    assert not (tmp_path / "unused").exists() and not _partials(dest)
    # A rerun checks the files it finds (by digest) and fetches only what is wrong.
    (dest / "vocab.json").write_bytes(b"{}")
    again = download_clip(dest, endpoint=hub.endpoint)
    assert again["downloaded"] == len(repo_files["vocab.json"])
    assert (dest / "vocab.json").read_bytes() == repo_files["vocab.json"]


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_corrupted_byte_is_refused_and_the_file_removed(hub, repo_files, tmp_path, name):
    hub.corrupt.add(name)
    cache = tmp_path / "hf"
    with pytest.raises(ChecksumError) as err:
        download_clip(endpoint=hub.endpoint, cache_dir=cache)
    assert err.value.code == "checksum"
    msg = str(err.value)
    assert name in msg and "corrupt" in msg and "removed" in msg
    expected = hashlib.sha256(repo_files[name]).hexdigest() if name in LFS else git_sha1(repo_files[name])
    assert expected in msg
    assert not _blob(cache, name, repo_files).exists() and not _partials(cache)
    assert not (cache / "models--openai--clip-vit-large-patch14" / "snapshots" / COMMIT / name).exists()
    # Once the host serves the right bytes, the same call succeeds.
    hub.corrupt.clear()
    check_clip_folder(Path(download_clip(endpoint=hub.endpoint, cache_dir=cache)["path"]))


def test_a_dropped_connection_resumes_with_a_range_request(hub, repo_files, tmp_path):
    hub.drop_once.add("model.safetensors")
    out = download_clip(endpoint=hub.endpoint, cache_dir=tmp_path / "hf")
    check_clip_folder(Path(out["path"]))
    gets = [r for m, p, r, _ in hub.log if m == "GET" and p.startswith("/cdn/")]
    half = len(repo_files["model.safetensors"]) // 2
    assert gets[0] is None and len(gets) == 2 and gets[1].startswith("bytes=")
    resumed_at = int(gets[1][6:-1])  # what reached the disk: whole chunks of the half that was sent
    assert half - hub_files.CHUNK < resumed_at <= half
    assert out["downloaded"] == out["bytes"]  # the file counted once: the resume continued, it did not restart


def test_cancel_keeps_the_partial_file_and_a_rerun_resumes_it(hub, repo_files, tmp_path):
    cache = tmp_path / "hf"
    size = len(repo_files["model.safetensors"])

    def cancelled() -> bool:
        return any(p.stat().st_size >= 2 << 20 for p in _partials(cache))

    with cancel_scope(cancelled), pytest.raises(Cancelled):
        download_clip(endpoint=hub.endpoint, cache_dir=cache)
    partial = _partials(cache)
    assert len(partial) == 1 and partial[0].name == _blob(cache, "model.safetensors", repo_files).name + ".incomplete"
    kept = partial[0].stat().st_size
    assert 2 << 20 <= kept < size
    assert partial[0].read_bytes() == repo_files["model.safetensors"][:kept]  # a clean prefix
    seen = []
    out = download_clip(endpoint=hub.endpoint, cache_dir=cache, progress=lambda d, t: seen.append(d))
    check_clip_folder(Path(out["path"]))
    assert [r for m, p, r, _ in hub.log if m == "GET" and p.startswith("/cdn/")][-1] == f"bytes={kept}-"
    assert out["downloaded"] == out["bytes"] - kept - len(repo_files["config.json"]) - len(
        repo_files["preprocessor_config.json"])
    assert seen[0] >= kept  # progress starts where the partial file ends


def test_cancel_through_the_progress_callback(hub, repo_files, tmp_path):
    hub.slow = True
    before_model = len(repo_files["config.json"]) + len(repo_files["preprocessor_config.json"])

    def progress(done, total):
        if done > before_model + (1 << 20):
            raise Cancelled()

    with pytest.raises(Cancelled):
        download_clip(tmp_path / "clip", endpoint=hub.endpoint, progress=progress)
    assert not (tmp_path / "clip" / "model.safetensors").exists()
    partial = _partials(tmp_path / "clip")
    assert len(partial) == 1 and (1 << 20) <= partial[0].stat().st_size < len(repo_files["model.safetensors"])


def test_no_network(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    with pytest.raises(NetworkError) as err:
        download_clip(endpoint=f"http://127.0.0.1:{port}", cache_dir=tmp_path / "hf")
    assert err.value.code == "network"
    assert str(err.value).startswith("no connection to the model host (127.0.0.1")
    assert not (tmp_path / "hf").exists()


def test_the_proxy_is_honoured(hub, repo_files, tmp_path):
    """The hub's name does not resolve; only a request through the proxy (our server) can reach it."""
    out = download_clip(tmp_path / "clip", endpoint="http://hub.invalid", proxy=hub.endpoint)
    check_clip_folder(Path(out["path"]))
    assert hub.log and all(proxied for *_, proxied in hub.log)
    import os

    assert not any(os.environ.get(k) for k in hub_download.PROXY_VARS)  # restored afterwards


def test_free_disk_is_checked_first(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(hub_files, "free_bytes", lambda folder: 1000)
    with pytest.raises(DiskSpaceError) as err:
        download_clip(tmp_path / "clip", endpoint=hub.endpoint)
    assert err.value.code == "disk" and "free" in str(err.value)
    assert not any(m == "GET" for m, *_ in hub.log)


def test_unknown_revision_is_a_clear_error(hub, tmp_path):
    with pytest.raises(hub_download.DownloadError) as err:
        download_clip(tmp_path / "clip", endpoint=hub.endpoint, revision="v9")
    assert "'v9'" in str(err.value) and "config.json" in str(err.value)


# ---- through the worker -------------------------------------------------------------------------------------------
def _run(params, cancel_when=None):
    sent = []
    worker = Worker(lambda m: (sent.append(m), cancel_when and cancel_when(m) and worker.cancel(1)))
    worker.handle({"id": 1, "op": "download_clip", "params": params})
    return sent


def test_worker_download_clip(hub, repo_files, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # dest null: the standard cache
    sent = _run({"dest": None, "endpoint": hub.endpoint, "proxy": None, "revision": None})
    assert sent[-1]["type"] == "result", sent[-1]
    data = sent[-1]["data"]
    assert Path(data["path"]).is_relative_to(tmp_path / "hf")
    check_clip_folder(Path(data["path"]))
    assert sorted(data["files"]) == sorted(repo_files) and data["bytes"] == sum(map(len, repo_files.values()))
    progress = [m for m in sent if m["type"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == data["bytes"]


def test_worker_errors(hub, tmp_path):
    hub.corrupt.add("model.safetensors")
    err = _run({"dest": str(tmp_path / "a"), "endpoint": hub.endpoint})[-1]
    assert err["type"] == "error" and err["error"]["code"] == "checksum"
    assert "model.safetensors" in err["error"]["message"]
    err = _run({"dest": str(tmp_path / "b"), "endpoint": "http://127.0.0.1:9"})[-1]
    assert err["error"]["code"] == "network"
    assert err["error"]["message"].startswith("no connection to the model host (")
    err = _run({"dest": str(tmp_path / "c"), "endpoint": hub.endpoint, "repo": "x/y"})[-1]
    assert err["error"]["code"] == "input"


def test_worker_cancel_keeps_the_partial_file(hub, repo_files, tmp_path):
    hub.slow = True
    dest = tmp_path / "clip"
    before_model = len(repo_files["config.json"]) + len(repo_files["preprocessor_config.json"])
    sent = _run({"dest": str(dest), "endpoint": hub.endpoint},  # cancelled once 1 MiB of the weights is in
                cancel_when=lambda m: m.get("type") == "progress" and m["done"] > before_model + (1 << 20))
    assert sent[-1] == {"id": 1, "type": "result", "data": {"cancelled": True}}
    partial = _partials(dest)
    assert len(partial) == 1 and partial[0].name.startswith("model.safetensors.")
    kept = partial[0].stat().st_size
    assert 0 < kept < len(repo_files["model.safetensors"])
    hub.slow = False
    done = _run({"dest": str(dest), "endpoint": hub.endpoint})[-1]
    assert done["type"] == "result" and not _partials(dest)
    check_clip_folder(dest)
    assert [r for m, p, r, _ in hub.log if m == "GET" and p.startswith("/cdn/")][-1] == f"bytes={kept}-"


def test_the_op_is_in_the_protocol(hub, tmp_path):
    """What QGIS sends (protocol.request, one JSON line) is what the worker runs."""
    from geoclip_qgis.shared import protocol

    req = protocol.decode(protocol.encode(protocol.request(
        5, "download_clip", dest=str(tmp_path / "clip"), endpoint=hub.endpoint, proxy=None, revision=COMMIT)))
    sent = []
    Worker(sent.append).handle(req)
    assert sent[-1]["type"] == "result" and sent[-1]["data"]["commit"] == COMMIT
    assert all(protocol.decode(protocol.encode(m)) == m for m in sent)  # every reply fits the framing


def test_the_worker_process_downloads_and_cancels_over_json_lines(hub, repo_files, tmp_path):
    """The real `python -m geoclip_qgis.core.service.worker`: progress lines on stdout only, a cancel line keeps the
    partial file, the next request resumes it."""
    import os
    import queue
    import subprocess
    import sys

    from geoclip_qgis.shared import protocol

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}  # as QGIS may start it: offline loads
    proc = subprocess.Popen([sys.executable, "-m", protocol.WORKER_MODULE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=root)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()

    def send(msg: dict) -> None:
        proc.stdin.write(protocol.encode(msg).encode())
        proc.stdin.flush()

    def until_result(rid, on_progress=None) -> dict:
        for _ in range(100_000):  # bounded; each get waits at most 60 s
            msg = protocol.decode(lines.get(timeout=60))  # every stdout line is a protocol message
            if msg.get("id") == rid and msg["type"] == "progress" and on_progress:
                on_progress(msg)
            if msg.get("id") == rid and msg["type"] in ("result", "error"):
                return msg
        raise AssertionError("no result")

    try:
        assert protocol.decode(lines.get(timeout=60))["type"] == "ready"
        dest = tmp_path / "clip"
        hub.slow = True
        before_model = len(repo_files["config.json"]) + len(repo_files["preprocessor_config.json"])
        cancelled = []

        def maybe_cancel(msg):
            if msg["done"] > before_model + (1 << 20) and not cancelled:
                cancelled.append(msg["done"])
                send({"op": "cancel", "target": 1})

        send(protocol.request(1, "download_clip", dest=str(dest), endpoint=hub.endpoint))
        assert until_result(1, maybe_cancel) == {"id": 1, "type": "result", "data": {"cancelled": True}}
        kept = _partials(dest)[0].stat().st_size
        assert kept >= 1 << 20
        hub.slow = False
        send(protocol.request(2, "download_clip", dest=str(dest), endpoint=hub.endpoint))
        done = until_result(2)
        assert done["type"] == "result" and done["data"]["path"] == str(dest), done
        assert done["data"]["downloaded"] < done["data"]["bytes"] - kept + 1
        check_clip_folder(dest)
        send({"op": "shutdown"})
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
