"""Where the model runs: CUDA (fp16) when it is really usable, else an Apple GPU (MPS, fp32), else the CPU, always
with the reason said."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import InputError


@dataclass
class DeviceChoice:
    device: torch.device
    fp16: bool
    reason: str

    def to_dict(self) -> dict:
        return {"device": str(self.device), "fp16": self.fp16, "reason": self.reason}


def cuda_status() -> tuple[bool, str]:
    """(usable, why) for CUDA; `why` is what a user should read when it is not usable."""
    if torch.version.cuda is None:
        return False, f"this torch build ({torch.__version__}) has no CUDA support"
    try:
        if not torch.cuda.is_available():
            return False, "no CUDA device or driver found (nvidia-smi shows none?)"
        n = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
    except Exception as exc:  # broken driver, mismatched runtime
        return False, f"CUDA initialisation failed: {exc}"
    return True, f"{n} CUDA device(s), using {name}"


def mps_status() -> tuple[bool, str]:
    """(usable, why) for Apple's Metal GPU (MPS): built into this torch, macOS 12.3+, and actually usable."""
    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_built():
        return False, f"this torch build ({torch.__version__}) has no Apple GPU (MPS) support"
    try:
        if not backend.is_available():
            return False, "no Apple GPU (MPS) available (macOS 12.3 or later on Apple silicon or an AMD GPU)"
        torch.zeros(1, device="mps")  # a driver that is there but broken fails here, not mid-job
    except Exception as exc:
        return False, f"Apple GPU (MPS) initialisation failed: {exc}"
    return True, "Apple GPU (MPS)"


def select_device(requested: Optional[str] = None) -> DeviceChoice:
    """Resolve 'auto' / None / 'cpu' / 'cuda' / 'cuda:N' / 'mps' to a device; asking for a GPU that is absent is an
    error. auto: CUDA (fp16), else MPS (fp32: fp16 on MPS is not faster for these models and less proven), else
    the CPU, with the reason."""
    req = (requested or "auto").strip().lower()
    if req == "cpu":
        return DeviceChoice(torch.device("cpu"), False, "CPU requested")
    if req == "mps":
        ok, why = mps_status()
        if not ok:
            raise InputError(f"device 'mps' is not usable: {why}", hint="use --device cpu or auto")
        return DeviceChoice(torch.device("mps"), False, why)
    ok, why = cuda_status()
    if req == "auto":
        if ok:
            return DeviceChoice(torch.device("cuda:0"), True, why)
        mps_ok, mps_why = mps_status()
        if mps_ok:
            return DeviceChoice(torch.device("mps"), False, f"{mps_why}, because {why}")
        return DeviceChoice(torch.device("cpu"), False, f"CPU, because {why}")
    if req.startswith("cuda"):
        if not ok:
            raise InputError(f"device {requested!r} is not usable: {why}", hint="use --device cpu or auto")
        dev = torch.device(req)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device {requested!r} does not exist ({torch.cuda.device_count()} CUDA device(s))",
                hint="use cuda:0, or auto",
            )
        return DeviceChoice(dev, True, why)
    raise InputError(f"unknown device {requested!r}", hint="use auto, cpu, cuda, cuda:N or mps")
