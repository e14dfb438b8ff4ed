"""Numeric precision of the models on this machine: what the CPU runs natively, and how each model is converted.

fp32 is the reference (bit-for-bit the oracle). bf16 is only worth it where the CPU multiplies bf16 in hardware
(Intel AMX, AVX512-BF16 on Intel and AMD Zen 4+); elsewhere it is emulated and slower than fp32, so `auto` never
picks it there. int8 (dynamic quantisation of nn.Linear, VNNI) is only used when asked.

The CLIP towers in bf16 run under CPU autocast with fp32 weights (matrix products in bf16, the residual stream,
norms and softmax in fp32): on the full-size ViT-L/14 it keeps the embedding cosine at 0.99999 and the top-5
identical, where bf16 weights (cosine 0.9999) change the top-5 of one query in five; the GeoCLIP MLP stays fp32
(a thousandth of the work).

The location encoder is special: GeoCLIP's scores are 39.6 x cosine, and the 0.02-nat bound on maps and fields
allows a cosine error of 5e-4 only. Measured (scripts/bench_precision.py, docs/benchmarks.md), plain bf16 anywhere
in the sigma = 16 or sigma = 256 capsule breaks it (autocast ~0.12-0.15 nats, the hidden layers alone ~0.11). What
holds it is a split product, 'bf16x3': each fp32 operand is split into a bf16 high part and a bf16 low part, and
x_hi.w_hi + x_hi.w_lo + x_lo.w_hi run as ONE bf16 product over a three-times-longer inner dimension with fp32
accumulation and fp32 output (oneDNN's bf16 fp32-math mode, bf16_math). Its error is ~2^-16 relative: 0.0002 nats,
at 2.8-3.8x fp32's speed on AMX. So on a CPU with native bf16, `auto`, bf16 and int8 run the location encoder in
bf16x3 (gallery cache and fields keyed by it, PrecisionChoice.location_key); fp32 asked by name stays fp32, the
oracle's path. The mode is process-wide in torch, so it is only ever switched on under COMPUTE_LOCK, which the
worker also holds for each request: no fp32 product elsewhere can run while it is on.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Optional, Set

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "int8", "fp16")
# The fidelity gate every precision is held to against fp32 on the same inputs (tests/test_precision.py and
# scripts/bench_precision.py measure it): embedding cosine, identical top-5 share, top-place probability
# (relative), and map/field scores (nats, log-softmax over the gallery or the cells).
GATE = {"cosine": 0.999, "top5": 0.99, "top1_rel": 0.01, "nats": 0.02}
# Whether each precision held its gate when measured (docs/benchmarks.md, "Precision per CPU"): `auto` picks only
# a precision marked True. Measured on an AMX CPU with a random-init ViT-L/14 (the real CLIP weights cannot be had
# here): bf16 (autocast) holds the cosine and the top-5 but moves the top place's probability by 1.4 % (bound 1 %);
# int8 fails all three. So neither is auto's pick until a run on the real weights shows the gate holding; both
# run when asked. fp16 on CUDA is what the engine has always done there.
GATE_HELD: Dict[str, bool] = {"fp32": True, "bf16": False, "int8": False, "fp16": True}
# The location-encoder schemes the benchmark compares, and whether each held the 0.02-nat bound when measured
# (docs/benchmarks.md): the engine runs only a scheme marked True (select_precision).
LOCATION_SCHEMES = ("fp32", "bf16x3", "autocast", "hidden", "sigma1", "int8")
LOCATION_GATE_HELD: Dict[str, bool] = {"fp32": True, "bf16x3": True, "autocast": False, "hidden": False,
                                       "sigma1": False, "int8": False}
# Held while oneDNN's bf16 fp32-math mode is on (bf16_math), and by the worker for each request: the mode is
# process-wide, so nothing that must stay fp32 may run beside it. Re-entrant: a request's own bf16x3 products nest.
COMPUTE_LOCK = threading.RLock()


def cpu_flags() -> Set[str]:
    """The CPU's feature flags as the OS reports them (/proc/cpuinfo on Linux, py-cpuinfo elsewhere if present),
    lower case; empty when unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import cpuinfo  # py-cpuinfo, when installed (macOS, Windows)

        return {f.lower() for f in cpuinfo.get_cpu_info().get("flags", [])}
    except Exception:
        return set()


def cpu_capabilities() -> Dict[str, object]:
    """What this CPU runs natively, from torch's own runtime checks (the ones its kernels dispatch on), with the
    OS's flags as a second witness."""
    flags = cpu_flags()

    def probe(name: str, *flag_names: str) -> bool:
        fn = getattr(torch.cpu, name, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:
            pass
        return any(f in flags for f in flag_names)

    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except Exception:
        isa = "unknown"
    return {
        "isa": isa,
        "amx": probe("_is_amx_tile_supported", "amx_bf16"),
        "avx512_bf16": probe("_is_avx512_bf16_supported", "avx512_bf16"),
        "vnni": probe("_is_vnni_supported", "avx512_vnni", "avx_vnni"),
        "machine": platform.machine(),
    }


def physical_cores() -> int:
    """Physical cores (not hyper-threads): what torch's matrix kernels scale with."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except Exception:
        pass
    return max(1, os.cpu_count() or 1)


@dataclass
class PrecisionChoice:
    """The precision the models run in, the reason (said to the user like the device's), and the scheme of the
    location encoder."""

    precision: str
    reason: str
    location: str = "fp32"  # the location encoder's scheme (LOCATION_SCHEMES), chosen with the precision

    @property
    def location_scheme(self) -> str:
        return self.location

    @property
    def location_key(self) -> str:
        """Suffix for caches whose bytes depend on the location encoder's precision ('' for fp32: the existing
        caches stay valid)."""
        scheme = self.location_scheme
        return "" if scheme == "fp32" else f"-{scheme}"

    def to_dict(self) -> dict:
        return {"precision": self.precision, "reason": self.reason, "location": self.location_scheme}


def native_bf16(caps: Dict[str, object]) -> Optional[str]:
    """Why bf16 is native here ('this CPU has AMX'), or None."""
    if caps.get("amx"):
        return "this CPU has AMX"
    if caps.get("avx512_bf16"):
        return "this CPU has AVX512-BF16"
    return None


# ---- conversions ------------------------------------------------------------------------------------------------
class BF16Linear(nn.Module):
    """A Linear whose weights are bf16 and whose input and output stay fp32 (the rounding is the input's and
    the weights', accumulation is fp32 inside the kernel)."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(lin.weight.detach().to(torch.bfloat16), requires_grad=False)
        self.bias = None if lin.bias is None else nn.Parameter(lin.bias.detach().to(torch.bfloat16),
                                                                requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.to(self.weight.dtype), self.weight, self.bias).float()


@contextlib.contextmanager
def bf16_math() -> Iterator[None]:
    """fp32 matrix products computed by oneDNN from bf16-rounded operands with fp32 accumulation and fp32 output,
    for the duration (under COMPUTE_LOCK: the switch is process-wide). torch >= 2.9 names it
    torch.backends.mkldnn.matmul.fp32_precision = 'bf16'; earlier releases turn it on with
    set_float32_matmul_precision('medium'). bf16_math_works() says whether it changes anything here."""
    with COMPUTE_LOCK:
        new = getattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision", None)
        if new is not None:
            mode = torch.backends.mkldnn.matmul
            old = mode.fp32_precision
            mode.fp32_precision = "bf16"
            try:
                yield
            finally:
                mode.fp32_precision = old
            return
        old = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("medium")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(old)


_BF16_MATH: Optional[bool] = None


def bf16_math_works() -> bool:
    """Whether bf16_math really runs fp32 products in bf16 on this machine (a 64 x 64 product must come out as the
    bf16-rounded operands' product, not the fp32 one); measured once per process, never assumed from the torch
    version."""
    global _BF16_MATH
    if _BF16_MATH is None:
        try:
            g = torch.Generator().manual_seed(0)
            a, b = torch.randn(64, 64, generator=g), torch.randn(64, 64, generator=g)
            with bf16_math():
                got = a @ b
            rounded = a.bfloat16().float() @ b.bfloat16().float()
            _BF16_MATH = bool((got - rounded).abs().max() < 1e-3 < (got - a @ b).abs().max())
        except Exception:
            _BF16_MATH = False
    return _BF16_MATH


class SplitBF16Linear(nn.Module):
    """A Linear as three bf16 products with fp32 accumulation and output: x_hi.w_hi + x_hi.w_lo + x_lo.w_hi,
    one product over the concatenated inner dimension under bf16_math. Each part is exact in bf16, so only the
    dropped terms (~2^-16 relative) and the accumulation order differ from fp32."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        w = lin.weight.detach().float()
        hi = w.bfloat16().float()
        lo = (w - hi).bfloat16().float()
        self.register_buffer("w3", torch.cat((hi, lo, hi), dim=1).T.contiguous())  # (3K, out)
        self.register_buffer("bias", None if lin.bias is None else lin.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        hi = x.bfloat16().float()
        x3 = torch.cat((hi, hi, (x - hi).bfloat16().float()), dim=-1)  # every part exact in bf16: the same
        # products whether oneDNN runs them in bf16 (AMX) or fp32 (bf16_math off), so the gate is testable anywhere
        with bf16_math():
            if self.bias is None:
                return x3 @ self.w3
            return torch.addmm(self.bias, x3.reshape(-1, x3.shape[-1]), self.w3).reshape(*x.shape[:-1], -1)


def _replace(module: nn.Module, names: Iterable[str], make) -> None:
    for name in names:
        parent, _, leaf = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        setattr(owner, leaf, make(owner.get_submodule(leaf)))


def int8_linears(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of every nn.Linear (weights int8, activations quantised per batch: VNNI)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


def convert_tower(model: nn.Module, precision: str) -> nn.Module:
    """A CLIP tower's weights for `precision`: int8 Linear layers, else unchanged (fp32, and bf16 which runs them
    under tower_context; fp16 is loaded as such on CUDA). 'bf16-weights' (bf16 weights, the benchmark's
    comparison) casts them."""
    if precision == "bf16-weights":
        return model.to(torch.bfloat16)
    if precision == "int8":
        return int8_linears(model)
    return model


def tower_context(precision: str, device: torch.device):
    """The context a tower runs in: bf16 autocast for bf16 (CPU or GPU), nothing otherwise."""
    import contextlib

    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def convert_mlp(mlp: nn.Sequential, precision: str) -> nn.Module:
    """The GeoCLIP image MLP: fp32 in and out whatever runs inside; int8 when asked, bf16 weights only for the
    benchmark's 'bf16-weights' comparison, fp32 otherwise (bf16 leaves it fp32: it is a thousandth of the work)."""
    if precision == "bf16-weights":
        return _converted(mlp, [n for n, m in mlp.named_modules() if isinstance(m, nn.Linear)], BF16Linear)
    if precision == "int8":
        return int8_linears(mlp)
    return mlp


def _converted(module: nn.Module, names, make) -> nn.Module:
    out = copy.deepcopy(module)
    _replace(out, names, make)
    return out


def convert_location_encoder(enc: nn.Module, scheme: str) -> nn.Module:
    """A copy of the location encoder in one of LOCATION_SCHEMES (the input is returned for 'fp32' and
    'autocast': autocast is a context, see location_context)."""
    if scheme in ("fp32", "autocast"):
        return enc
    if scheme == "int8":
        return int8_linears(copy.deepcopy(enc))
    if scheme == "bf16x3":
        return _converted(enc, [n for n, m in enc.named_modules() if isinstance(m, nn.Linear)], SplitBF16Linear)
    capsules = range(1) if scheme == "sigma1" else range(len(enc.capsules))
    names = [f"capsules.{i}.{name}" for i in capsules for name in ("hidden.2", "hidden.4")]
    return _converted(enc, names, BF16Linear)


def location_context(scheme: str):
    """The context a location-encoder scheme runs in: bf16 autocast for 'autocast', nothing otherwise."""
    import contextlib

    if scheme == "autocast":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
