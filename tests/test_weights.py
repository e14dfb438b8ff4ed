"""Weights load from the wheel or a release folder; every wrong file is refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from geoclip_qgis.core.errors import WeightsError
from geoclip_qgis.core.model.weights import KNOWN_SHA256, load_weights, sha256_file, wheel_data_dir


def _copy_wheel(tmp_path: Path) -> Path:
    dst = tmp_path / "w"
    shutil.copytree(wheel_data_dir() / "weights", dst / "weights")
    shutil.copytree(wheel_data_dir() / "gps_gallery", dst / "gps_gallery")
    return dst


def test_wheel_files_have_the_recorded_sha256(weights):
    for path in [*weights.files.values()]:
        assert sha256_file(Path(path)) == KNOWN_SHA256[Path(path).name]
    assert weights.logit_scale.shape == ()
    assert set(weights.mlp) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert len(weights.location) == 27


def test_missing_file_is_named(tmp_path):
    folder = _copy_wheel(tmp_path)
    (folder / "weights" / "logit_scale_weights.pth").unlink()
    with pytest.raises(WeightsError, match="logit_scale_weights.pth.*not found"):
        load_weights(folder)


def test_empty_and_truncated_files_are_named(tmp_path):
    folder = _copy_wheel(tmp_path)
    target = folder / "weights" / "image_encoder_mlp_weights.pth"
    target.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        load_weights(folder)
    data = (wheel_data_dir() / "weights" / "image_encoder_mlp_weights.pth").read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="image_encoder_mlp_weights.pth"):
        load_weights(folder)


def test_wrong_shape_and_wrong_keys(tmp_path):
    folder = _copy_wheel(tmp_path)
    mlp = folder / "weights" / "image_encoder_mlp_weights.pth"
    state = torch.load(mlp, weights_only=True)
    state["0.weight"] = torch.zeros(512, 768)
    torch.save(state, mlp)
    with pytest.raises(WeightsError, match=r"shape \(512, 768\), expected \(768, 768\)"):
        load_weights(folder, verify=False)
    del state["0.weight"]
    torch.save(state, mlp)
    with pytest.raises(WeightsError, match="missing"):
        load_weights(folder, verify=False)


def test_sha_mismatch_is_caught(tmp_path):
    folder = _copy_wheel(tmp_path)
    mlp = folder / "weights" / "image_encoder_mlp_weights.pth"
    state = torch.load(mlp, weights_only=True)
    state["0.bias"] = state["0.bias"] + 1
    torch.save(state, mlp)
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(folder)


def test_pickled_code_is_refused(tmp_path):
    folder = _copy_wheel(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, folder / "weights" / "logit_scale_weights.pth")
    with pytest.raises(WeightsError, match="cannot read weights"):
        load_weights(folder, verify=False)


def test_release_layout_safetensors(tmp_path, weights):
    """config.json + model.safetensors + gallery CSV, in the official key naming, loads to the same tensors."""
    from safetensors.torch import save_file

    wd = wheel_data_dir()
    tensors = {f"location_encoder.{k}": v for k, v in torch.load(
        wd / "weights" / "location_encoder_weights.pth", weights_only=True).items()}
    tensors.update({f"image_encoder.mlp.{k}": v for k, v in torch.load(
        wd / "weights" / "image_encoder_mlp_weights.pth", weights_only=True).items()})
    tensors["logit_scale"] = torch.load(wd / "weights" / "logit_scale_weights.pth", weights_only=True)
    rel = tmp_path / "release"
    rel.mkdir()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(rel / "model.safetensors"))
    shutil.copy(wd / "gps_gallery" / "coordinates_100K.csv", rel / "gallery.csv")
    cfg = {"model_type": "geoclip-geolocation", "format_version": 1, "sigma": [1, 16, 256],
           "gallery_file": "gallery.csv", "backbone": {"repo_id": "openai/clip-vit-large-patch14"}}
    (rel / "config.json").write_text(json.dumps(cfg))
    loaded = load_weights(rel)
    assert loaded.digest == weights.digest
    assert torch.equal(loaded.logit_scale, weights.logit_scale)
    cfg["format_version"] = 2
    (rel / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="format_version"):
        load_weights(rel)


def test_folder_that_does_not_exist(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "nope")
