"""The plugin's CLIP download without an engine (client/downloader.py: shared/hub_files.py over the standard
library) against the same local hub as the engine's download: the same files, the sha256 read off the CDN
redirect, Range resume after a drop or a cancel, a corrupt byte refused, the free disk checked first, and a
folder the engine loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support.fake_hub import FakeHub, repo_files_of

from geoclip_qgis.client import downloader
from geoclip_qgis.shared import hub_files


@pytest.fixture(scope="module")
def repo_files(tiny_clip):
    return repo_files_of(tiny_clip)


@pytest.fixture()
def hub(repo_files):
    server = FakeHub(dict(repo_files))
    yield server
    server.close()


def _partials(root: Path) -> list:
    return sorted(root.rglob("*.incomplete"))


def test_the_folder_holds_the_hubs_files_checked_as_the_engine_checks_them(hub, repo_files, tmp_path):
    seen = []
    out = downloader.download_clip_folder(tmp_path / "clip", lambda d, t: seen.append((d, t)),
                                          endpoint=hub.endpoint)
    folder = Path(out["path"])
    assert sorted(out["files"]) == sorted(repo_files)
    for name, data in repo_files.items():
        assert (folder / name).read_bytes() == data
    # the weights' sha256 came from the CDN redirect's X-Linked-Etag, the small files' git sha1 from their ETag
    assert out["verified"]["model.safetensors"] == "sha256"
    assert out["verified"]["config.json"] == "git-sha1"
    assert seen[-1][0] == seen[-1][1] == sum(len(d) for d in repo_files.values())
    assert _partials(folder) == []
    from geoclip_qgis.core.model.image_encoder import check_clip_folder

    check_clip_folder(folder)  # the engine loads what the plugin fetched
    again = downloader.download_clip_folder(folder, lambda d, t: None, endpoint=hub.endpoint)
    assert again["downloaded"] == 0  # all there and intact: nothing fetched twice


def test_a_corrupted_byte_is_refused_and_the_file_removed(hub, tmp_path):
    hub.corrupt.add("model.safetensors")
    with pytest.raises(hub_files.ChecksumError, match="model.safetensors is corrupt"):
        downloader.download_clip_folder(tmp_path / "clip", lambda d, t: None, endpoint=hub.endpoint)
    assert not (tmp_path / "clip" / "model.safetensors").exists()
    assert _partials(tmp_path / "clip") == []


def test_a_dropped_connection_resumes_with_a_range_request(hub, repo_files, tmp_path):
    hub.drop_once.add("model.safetensors")
    downloader.download_clip_folder(tmp_path / "clip", lambda d, t: None, endpoint=hub.endpoint)
    data = repo_files["model.safetensors"]
    assert (tmp_path / "clip" / "model.safetensors").read_bytes() == data
    ranges = [r for m, p, r, _ in hub.log if m == "GET" and p.startswith("/cdn/") and r]
    assert ranges and int(ranges[0].split("=")[1].rstrip("-")) > 0


def test_cancel_keeps_the_partial_file_and_a_rerun_resumes_it(hub, repo_files, tmp_path):
    hub.slow = True
    data = repo_files["model.safetensors"]
    state = {"bytes": 0}

    def progress(done, total):
        state["bytes"] = done

    with pytest.raises(downloader.Cancelled):
        downloader.download_clip_folder(tmp_path / "clip", progress, lambda: state["bytes"] > len(data) // 4,
                                        endpoint=hub.endpoint)
    kept = _partials(tmp_path / "clip")
    assert len(kept) == 1 and 0 < kept[0].stat().st_size < len(data)
    hub.slow = False
    hub.log.clear()
    downloader.download_clip_folder(tmp_path / "clip", lambda d, t: None, endpoint=hub.endpoint)
    assert hashlib.sha256((tmp_path / "clip" / "model.safetensors").read_bytes()).hexdigest() == \
        hashlib.sha256(data).hexdigest()
    ranges = [r for m, p, r, _ in hub.log if m == "GET" and p.startswith("/cdn/")]
    assert ranges and ranges[0] is not None  # resumed, not started again


def test_free_disk_is_checked_before_the_first_byte(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(hub_files, "free_bytes", lambda folder: 1024)
    with pytest.raises(hub_files.DiskSpaceError, match="not enough free disk space"):
        downloader.download_clip_folder(tmp_path / "clip", lambda d, t: None, endpoint=hub.endpoint)
    assert not any(m == "GET" for m, *_ in hub.log)


def test_no_network_says_no_connection(tmp_path):
    with pytest.raises(hub_files.NetworkError, match="no connection to the model host"):
        downloader.download_clip_folder(tmp_path / "clip", lambda d, t: None, endpoint="http://127.0.0.1:9",
                                        timeout=2)


def test_an_unknown_revision_or_repo_is_named(hub, tmp_path):
    with pytest.raises(hub_files.DownloadError, match="refused openai/clip-vit-large-patch14/config.json"):
        hub_files.download(downloader.UrllibTransport(), dest=tmp_path / "clip", revision="nope",
                           endpoint=hub.endpoint)


def test_one_download_rule_for_both_wings():
    """The engine's download and the plugin's are one function with two transports: the file list, the checks
    and the partial-file names cannot drift apart."""
    from geoclip_qgis.core.io import hub_download

    assert hub_download.CLIP_FILES is hub_files.CLIP_FILES
    src = Path(hub_download.__file__).read_text(encoding="utf-8")
    assert "hub_files.download(" in src and "def _fetch" not in src
    assert "hub_files.download(" in Path(downloader.__file__).read_text(encoding="utf-8")
