"""Where the model runs and in which precision: CUDA (fp16) when it is really usable, else an Apple GPU (MPS,
fp32), else the CPU (bf16 where the CPU runs it natively, else fp32), always with the reason said."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

from ...shared.defaults import PRECISION_ENV, PRECISION_VALUES
from ..errors import InputError
from . import precision as _precision
from .precision import PrecisionChoice


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


def select_precision(requested: Optional[str], device: torch.device,
                     caps: Optional[dict] = None) -> PrecisionChoice:
    """Resolve 'auto' / None / 'fp32' / 'bf16' / 'int8' / 'fp16' for `device`, with the reason. auto: fp16 on CUDA
    (as before), fp32 on an Apple GPU, and on a CPU bf16 only where it is native (AMX or AVX512-BF16, read from the
    CPU by precision.cpu_capabilities, not guessed) and its fidelity gate held (precision.GATE_HELD), else fp32. A
    precision whose gate failed is never picked by auto; asked for by name it is used, and the reason says so."""
    req = (requested or "auto").strip().lower()
    pinned = (os.environ.get(PRECISION_ENV) or "").strip().lower()
    if req == "auto" and pinned not in ("", "auto"):
        if pinned not in PRECISION_VALUES:
            raise InputError(f"{PRECISION_ENV}={pinned!r} is no precision", hint="use " + ", ".join(PRECISION_VALUES))
        chosen = select_precision(pinned, device, caps)
        return PrecisionChoice(chosen.precision, f"{chosen.reason} (auto pinned by {PRECISION_ENV})")
    if req not in PRECISION_VALUES:
        raise InputError(f"unknown precision {requested!r}", hint="use " + ", ".join(PRECISION_VALUES))
    held = _precision.GATE_HELD
    kind = device.type
    if req == "auto":
        if kind == "cuda":
            return PrecisionChoice("fp16", "fp16: a CUDA GPU")
        if kind != "cpu":
            return PrecisionChoice("fp32", f"fp32: fp16 on {kind.upper()} is not faster for these models")
        caps = _precision.cpu_capabilities() if caps is None else caps
        native = _precision.native_bf16(caps)
        if native and held.get("bf16"):
            return PrecisionChoice("bf16", f"bf16: {native}")
        if native:
            return PrecisionChoice("fp32", f"fp32: {native}, but bf16 failed its fidelity gate")
        if caps.get("vnni") and held.get("int8"):
            return PrecisionChoice("int8", "int8: this CPU has VNNI and no native bf16")
        return PrecisionChoice("fp32", f"fp32: this CPU ({caps.get('isa', 'unknown')}) has no native bf16 "
                                       "(AMX or AVX512-BF16)")
    if req == "fp32":
        return PrecisionChoice("fp32", "fp32 requested")
    if req == "fp16":
        if kind == "cpu":
            raise InputError("precision fp16 runs on a GPU only", hint="on a CPU use auto, bf16 or fp32")
        return PrecisionChoice("fp16", f"fp16 requested on {kind.upper()}")
    if req == "int8":
        if kind != "cpu":
            raise InputError("precision int8 (dynamic quantisation) runs on the CPU only",
                             hint="use --device cpu, or fp16 / fp32 on a GPU")
        caps = _precision.cpu_capabilities() if caps is None else caps
        why = "this CPU has VNNI" if caps.get("vnni") else "this CPU has no VNNI: int8 may be slower"
        gate = "" if held.get("int8") else "; the location encoder stays fp32 (int8 breaks the 0.02-nat bound)"
        return PrecisionChoice("int8", f"int8 requested ({why}){gate}")
    # bf16
    if kind != "cpu":
        return PrecisionChoice("bf16", f"bf16 requested on {kind.upper()}")
    caps = _precision.cpu_capabilities() if caps is None else caps
    native = _precision.native_bf16(caps)
    return PrecisionChoice("bf16", f"bf16: {native}" if native else
                           "bf16 requested, but this CPU has no native bf16 (AMX or AVX512-BF16): emulated, likely "
                           "slower than fp32")
