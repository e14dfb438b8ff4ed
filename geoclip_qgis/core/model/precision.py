"""Numeric precision of the models on this machine: what the CPU runs natively, and how each model is converted.

fp32 is the reference (bit-for-bit the oracle). bf16 is only worth it where the CPU multiplies bf16 in hardware
(Intel AMX, AVX512-BF16 on Intel and AMD Zen 4+); elsewhere it is emulated and slower than fp32, so `auto` never
picks it there. int8 (dynamic quantisation of nn.Linear, VNNI) is only used when asked.

The CLIP towers in bf16 run under CPU autocast (matrix products in bf16, the residual stream, norms and softmax in
fp32): on the full-size ViT-L/14 it keeps the embedding cosine at 0.99999 and the top-5 identical, where a tower
cast to bf16 throughout (cosine 0.9999) changes the top-5 of one query in five. Autocast would cast every Linear's
weights again on each call (a single text query ran slower than fp32 for it); CastLinear holds them cast once,
bit-identical to autocast's products, with half the memory. Profiled, the matrix products were then under half of
the ViT-L/14's time: QuickGELU's three eager passes took 27 %, so fold_quick_gelu rewrites it as SiLU with its
constant moved into the weights, and CastLinear applies the bias and the SiLU in oneDNN's product epilogue (6.2x
fp32 per image, from 3.7x; docs/benchmarks.md). The GeoCLIP MLP stays fp32 (a thousandth of the work).

The location encoder is special: GeoCLIP's scores are 39.6 x cosine, and the 0.02-nat bound on maps and fields
allows a cosine error of 5e-4 only. Measured (scripts/bench_precision.py, docs/benchmarks.md), bf16 anywhere in the
sigma = 16 or sigma = 256 capsule breaks it: plain autocast by ~0.15 nats, bf16 only in the two 1024 x 1024 hidden
layers ('hidden') by ~0.12; the sigma = 1 capsule's hidden layers alone ('sigma1') sit at the bound (0.0201). A
split product (bf16x3: x_hi.w_hi + x_hi.w_lo + x_lo.w_hi with fp32 accumulation and output, in the benchmark) holds
it at 0.0002 nats but runs at 0.62x fp32 once fp32 is not slowed by denormals. For what made fp32 slow was not
fp32: the trained weights hold ~97,000 denormal floats (the sigma = 1 capsule), which x86 CPUs multiply through a
microcode assist. flush_denormals zeroes them at load, bit-identical, and the fp32 encoder runs 3.3-5x faster on
the x86 kernels measured (AVX-512 and AVX2). So in every precision the location encoder, the gallery cache and the
fields stay fp32 (exact, shared by all precisions); the mechanism to key them by scheme
(PrecisionChoice.location_key) is in place for a scheme that holds the bound and is faster.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import platform
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Set

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
# The location-encoder schemes the benchmark compares; LOCATION_SCHEME is what the engine uses per precision.
LOCATION_SCHEMES = ("fp32", "autocast", "hidden", "sigma1", "int8")
LOCATION_SCHEME = {"fp32": "fp32", "bf16": "fp32", "int8": "fp32", "fp16": "fp32"}


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

    @property
    def location_scheme(self) -> str:
        return LOCATION_SCHEME[self.precision]

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
def flush_denormals(module: nn.Module) -> int:
    """Zero the fp32 parameters and buffers below the smallest normal float (denormals), in place; returns how many.
    Trained weights decay into denormals (GeoCLIP's sigma = 1 capsule holds ~97,000) and x86 CPUs multiply a
    denormal through a microcode assist many times slower, which made the real location encoder 4.7x slower. A
    product with a weight under 1.2e-38 lies far below one ulp of any sum it joins, so the outputs stay
    bit-identical with PyPI's torch (tests/test_precision.py checks it on the real weights; Debian's torch 2.6,
    generic BLAS, differs by a few ulps, 3.4e-8). Other dtypes are left alone: a GPU's fp16
    has no such penalty, and its smallest normal (6e-5) is a real weight. The CLIP towers are not passed through
    it: their real weights cannot be inspected here, and the pass costs 1-2 s per ViT-L/14 load on 2 cores."""
    tiny = torch.finfo(torch.float32).tiny
    flushed = 0
    with torch.no_grad():
        for t in itertools.chain(module.parameters(), module.buffers()):
            if t.dtype == torch.float32:
                mask = (t.abs() < tiny) & (t != 0)
                count = int(mask.sum())
                if count:
                    t.masked_fill_(mask, 0.0)
                    flushed += count
    return flushed


@functools.cache
def fused_linear_available() -> bool:
    """Whether this torch has oneDNN's fused bf16 linear (torch.ops.mkldnn._linear_pointwise, the op torch.compile's
    CPU backend emits), it gives F.linear's values bit for bit on a tower-like product (K = 256, with and without a
    bias), and its SiLU epilogue runs; probed once per process. oneDNN held to AVX2 refuses it: False there."""
    try:
        g = torch.Generator().manual_seed(0)
        x, w = torch.randn(2, 37, 256, generator=g).bfloat16(), torch.randn(96, 256, generator=g).bfloat16()
        b = torch.randn(96, generator=g).bfloat16()
        op = torch.ops.mkldnn._linear_pointwise
        with torch.inference_mode():
            same = all(torch.equal(op(x, w, bias, "none", [], ""), nn.functional.linear(x, w, bias))
                       for bias in (b, None))
            silu = op(x, w, b, "swish", [], "").float()
            near = float((silu - nn.functional.silu(x.float() @ w.float().T + b.float())).abs().max())
        return same and near < 0.05 * float(silu.abs().max())
    except Exception:  # an old torch, a build without oneDNN, a CPU it refuses: F.linear, as before
        return False


class CastLinear(nn.Module):
    """A Linear for a tower under bf16 autocast, its weights cast to bf16 once instead of on every call: the same
    products as autocast's, bit for bit (tests/test_precision.py), in half the memory; the output is bf16, as
    autocast's linear is. `scale` multiplies the fp32 weights (and `bias_scale` the bias) before the one rounding:
    how fold_quick_gelu moves QuickGELU's constant into the layers around it; `silu` applies SiLU to the output.

    On a CPU, when no gradient is recorded and the input is contiguous, it runs as one oneDNN call with the bias
    (and SiLU) applied in the product's epilogue: no copy of the bias into a fresh output, no second pass for SiLU,
    which rounds once from the fp32 accumulator (7 % of the bf16 ViT-L/14; the plain product is bit-identical).
    With gradients on (a saliency map) it is F.linear and F.silu, as the fused op has no backward: SiLU then rounds
    twice, and a folded fc1's outputs differ from the fused ones by up to one bf16 ulp. Should the fused op refuse
    an input, the layer falls back to F.linear for good."""

    def __init__(self, lin: nn.Linear, scale: float = 1.0, bias_scale: float = 1.0, silu: bool = False):
        super().__init__()
        weight, bias = lin.weight.detach(), None if lin.bias is None else lin.bias.detach()
        self.weight = nn.Parameter((weight * scale if scale != 1.0 else weight).to(torch.bfloat16),
                                   requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(
            (bias * bias_scale if bias_scale != 1.0 else bias).to(torch.bfloat16), requires_grad=False)
        self.silu = silu
        self.fused = fused_linear_available()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.bfloat16)
        if self.fused and x.device.type == "cpu" and x.is_contiguous() and not torch.is_grad_enabled():
            try:
                return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias,
                                                          "swish" if self.silu else "none", [], "")
            except RuntimeError:
                self.fused = False
        y = nn.functional.linear(x, self.weight, self.bias)
        return nn.functional.silu(y, inplace=not torch.is_grad_enabled()) if self.silu else y


class BF16Linear(CastLinear):
    """A Linear whose weights are bf16 and whose input and output stay fp32 (the rounding is the input's and
    the weights', accumulation is fp32 inside the kernel): the benchmark's location-encoder schemes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).float()


class BF16Output(nn.Module):
    """A LayerNorm computed in fp32 (as autocast does) whose output is rounded to bf16 once, here: the q, k and v
    projections that read it then share one cast instead of making three. The same values as before, bit for bit."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x).to(torch.bfloat16)


QUICK_GELU = 1.702  # OpenAI CLIP's activation: x * sigmoid(1.702 x)


def fold_quick_gelu(model: nn.Module) -> int:
    """Rewrite each CLIP MLP's QuickGELU as SiLU, in bf16 Linears cast once (CastLinear): x * sigmoid(1.702 x) equals
    silu(1.702 x) / 1.702, so fc1's weights and bias take the factor 1.702 and fc2's weights its inverse before
    their one rounding to bf16. Eager QuickGELU is three passes over the 4096-wide activations and two temporaries
    (27 % of the bf16 ViT-L/14's time on 2 cores, most of it in page faults on fresh buffers); fc1 applies the
    SiLU itself (CastLinear), and it rounds once where QuickGELU rounded three times. Returns how many MLPs were
    folded (0 for other activations). bf16 only: in fp32 the towers stay exactly the oracle's."""
    from transformers.activations import QuickGELUActivation

    folded = 0
    for mlp in model.modules():
        if isinstance(getattr(mlp, "activation_fn", None), QuickGELUActivation) and \
                isinstance(getattr(mlp, "fc1", None), nn.Linear) and isinstance(getattr(mlp, "fc2", None), nn.Linear):
            mlp.fc1 = CastLinear(mlp.fc1, QUICK_GELU, QUICK_GELU, silu=True)
            mlp.fc2 = CastLinear(mlp.fc2, 1.0 / QUICK_GELU)
            mlp.activation_fn = nn.Identity()  # fc1 applies the SiLU (in its epilogue where it can)
            folded += 1
    return folded


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
    """A CLIP tower's weights for `precision`: int8 Linear layers; bf16 Linear weights cast once (CastLinear, run
    under tower_context's autocast) with QuickGELU folded into SiLU and the layers' norms cast where made (with
    CastLinear's fused epilogue, 180 -> 116 ms per ViT-L/14 image against the weights cast once alone on 2 AMX
    cores; docs/benchmarks.md); else unchanged (fp32; fp16 is loaded as such on CUDA). 'bf16-weights' (the whole
    tower cast to bf16, the benchmark's comparison) casts everything."""
    if precision == "bf16-weights":
        return model.to(torch.bfloat16)
    if precision == "int8":
        return int8_linears(model)
    if precision == "bf16":
        fold_quick_gelu(model)
        _replace(model, [n for n, m in model.named_modules() if isinstance(m, nn.Linear)], CastLinear)
        # Each transformer layer's two norms feed only bf16 products: their output is cast once, where made.
        _replace(model, [f"{n}.{norm}" for n, m in model.named_modules() for norm in ("layer_norm1", "layer_norm2")
                         if isinstance(getattr(m, norm, None), nn.LayerNorm) and hasattr(m, "self_attn")], BF16Output)
        # The rest (norms, embeddings: a few MB) is copied out of the weights file's memory map, so that the map,
        # whose pages the cast has read, is released (1.2 GB of RSS for ViT-L/14) instead of held by them.
        with torch.no_grad():
            for t in itertools.chain(model.parameters(), model.buffers()):
                if t.dtype != torch.bfloat16:
                    t.data = t.data.clone()
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
    capsules = range(1) if scheme == "sigma1" else range(len(enc.capsules))
    names = [f"capsules.{i}.{name}" for i in capsules for name in ("hidden.2", "hidden.4")]
    return _converted(enc, names, BF16Linear)


def location_context(scheme: str):
    """The context a location-encoder scheme runs in: bf16 autocast for 'autocast', nothing otherwise."""
    import contextlib

    if scheme == "autocast":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
