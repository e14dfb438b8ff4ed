"""Device faults: CUDA out of memory halves the batch, then falls back to the CPU; no CUDA says why."""

from __future__ import annotations

import pytest
import torch

from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.model.device import cuda_status, select_device
from geoclip_qgis.core.model.engine import GeoClipEngine


def test_no_cuda_gives_the_reason():
    ok, why = cuda_status()
    choice = select_device("auto")
    if not ok:
        assert choice.device.type == "cpu" and why in choice.reason and not choice.fp16
        with pytest.raises(InputError, match="not usable"):
            select_device("cuda")
    assert select_device("cpu").device.type == "cpu"
    with pytest.raises(InputError, match="unknown device"):
        select_device("tpu")


def test_out_of_memory_halves_the_batch_then_falls_back(weights, tiny_clip, small_gallery, cache_dir, photos,
                                                        monkeypatch, caplog):
    engine = GeoClipEngine(weights=weights, clip_path=tiny_clip, device="cpu", gallery=small_gallery,
                           cache_dir=cache_dir)
    expected = [r.predictions for r in engine.predict_images(photos, 3)]
    encoder = engine.image_encoder
    real_forward = type(encoder).forward
    sizes = []

    def flaky(self, pixels):
        sizes.append(pixels.shape[0])
        if pixels.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(self, pixels)

    monkeypatch.setattr(type(encoder), "forward", flaky)
    got = [r.predictions for r in engine.predict_images(photos, 3, )]
    assert sizes[0] == 3 and 1 in sizes, sizes
    assert [[p.gallery_index for p in g] for g in got] == [[p.gallery_index for p in e] for e in expected]
    assert "retrying with batches" in caplog.text

    calls = {"n": 0}

    def always_oom_once(self, pixels):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(self, pixels)

    monkeypatch.setattr(type(encoder), "forward", always_oom_once)
    res = engine.predict_images(photos[:1], 3)
    assert res[0].ok and "after CUDA ran out of memory" in engine.choice.reason
    assert "falling back to the CPU" in caplog.text


def test_apple_gpu_is_chosen_by_auto_when_there_is_no_cuda(monkeypatch):
    """auto: CUDA, else MPS with the reason CUDA was not used, else the CPU; 'mps' absent is an error."""
    from geoclip_qgis.core.model import device

    monkeypatch.setattr(device, "cuda_status", lambda: (False, "no CUDA device or driver found"))
    monkeypatch.setattr(device, "mps_status", lambda: (True, "Apple GPU (MPS)"))
    choice = device.select_device("auto")
    assert choice.device.type == "mps" and not choice.fp16 and "no CUDA" in choice.reason
    assert device.select_device("mps").device.type == "mps"
    monkeypatch.setattr(device, "mps_status", lambda: (False, "no Apple GPU (MPS) available"))
    assert device.select_device("auto").device.type == "cpu"
    with pytest.raises(InputError, match="'mps' is not usable"):
        device.select_device("mps")


def test_mps_out_of_memory_is_recognised():
    from geoclip_qgis.core.model.engine import _out_of_memory

    assert _out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not _out_of_memory(RuntimeError("shape mismatch"))
