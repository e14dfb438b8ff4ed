"""CLIP folders are found, checked and refused with a message that says how to provide one."""

from __future__ import annotations

import json

import pytest

from geoclip_qgis.core.errors import BackboneError
from geoclip_qgis.core.model.image_encoder import resolve_clip_path


def test_explicit_folder_is_accepted(tiny_clip):
    assert resolve_clip_path(tiny_clip) == tiny_clip


def test_env_variable_is_used(tiny_clip, monkeypatch):
    monkeypatch.setenv("GEOCLIP_CLIP_PATH", tiny_clip)
    assert resolve_clip_path(None) == tiny_clip


def test_offline_with_nothing_local_says_how(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv("GEOCLIP_CLIP_PATH", raising=False)
    with pytest.raises(BackboneError) as info:
        resolve_clip_path(None)
    text = str(info.value)
    assert "not available offline" in text and "--clip-path" in text and "GEOCLIP_CLIP_PATH" in text


def test_wrong_model_folder(tmp_path, tiny_clip):
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BackboneError, match="'bert' model, not CLIP"):
        resolve_clip_path(other)
    small = tmp_path / "b32"
    small.mkdir()
    cfg = json.loads((__import__("pathlib").Path(tiny_clip) / "config.json").read_text())
    cfg["projection_dim"] = 512
    (small / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BackboneError, match="projection_dim is 512"):
        resolve_clip_path(small)
    with pytest.raises(BackboneError, match="does not exist"):
        resolve_clip_path(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackboneError, match="no config.json"):
        resolve_clip_path(empty)
