"""Precision per machine (issue 22): the rule auto follows, and the bf16 path held to its fidelity gate against fp32
on the same inputs, with the real GeoCLIP location encoder, MLP, logit scale and gallery and the tiny random CLIP.

bf16 runs wherever torch runs (emulated where the CPU lacks it), so the gate is checked on every machine; only the
speed needs AMX or AVX512-BF16 (scripts/bench_precision.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoclip_qgis.core.model import precision as P
from geoclip_qgis.core.model.device import select_precision

CPU = torch.device("cpu")
AMX = {"isa": "AVX512", "amx": True, "avx512_bf16": True, "vnni": True}
ZEN4 = {"isa": "AVX512", "amx": False, "avx512_bf16": True, "vnni": True}
AVX2 = {"isa": "AVX2", "amx": False, "avx512_bf16": False, "vnni": True}
OLD = {"isa": "DEFAULT", "amx": False, "avx512_bf16": False, "vnni": False}


@pytest.fixture(autouse=True)
def _auto_not_pinned(monkeypatch):
    monkeypatch.delenv("GEOCLIP_PRECISION", raising=False)  # conftest pins the rest of the suite to fp32


@pytest.mark.parametrize("caps, want, why", [
    (AMX, "bf16", "AMX"), (ZEN4, "bf16", "AVX512-BF16"), (AVX2, "fp32", "no native bf16"), (OLD, "fp32", "no native"),
])
def test_auto_reads_the_cpus_capabilities(monkeypatch, caps, want, why):
    """Were bf16's gate to hold, auto would pick it exactly where the CPU runs it natively."""
    monkeypatch.setattr(P, "cpu_capabilities", lambda: dict(caps))
    monkeypatch.setitem(P.GATE_HELD, "bf16", True)
    chosen = select_precision("auto", CPU)
    assert chosen.precision == want and why in chosen.reason
    assert select_precision(None, CPU).precision == want


def test_auto_never_picks_a_precision_whose_gate_failed(monkeypatch):
    for caps in (AMX, ZEN4, AVX2, OLD):
        for held_bf16 in (True, False):
            for held_int8 in (True, False):
                monkeypatch.setattr(P, "GATE_HELD", {"fp32": True, "fp16": True, "bf16": held_bf16,
                                                     "int8": held_int8})
                chosen = select_precision("auto", CPU, caps=caps)
                assert P.GATE_HELD[chosen.precision], (caps, held_bf16, held_int8, chosen)
    monkeypatch.setattr(P, "GATE_HELD", {**P.GATE_HELD, "bf16": False})
    chosen = select_precision("auto", CPU, caps=AMX)
    assert chosen.precision == "fp32" and "failed its fidelity gate" in chosen.reason
    assert not P.GATE_HELD["int8"] and select_precision("auto", CPU, caps=AVX2).precision == "fp32"


def test_measured_gates_leave_auto_at_fp32_on_cpus(monkeypatch):
    """As measured (docs/benchmarks.md): bf16 misses the top-place bound, int8 all three; auto stays fp32 even on
    an AMX CPU and says why, and either still runs when asked."""
    monkeypatch.setattr(P, "cpu_capabilities", lambda: dict(AMX))
    chosen = select_precision("auto", CPU)
    assert chosen.precision == "fp32" and "AMX" in chosen.reason and "failed its fidelity gate" in chosen.reason
    assert select_precision("bf16", CPU).reason == "bf16: this CPU has AMX"


def test_named_precisions_and_refusals(monkeypatch):
    from geoclip_qgis.core.errors import InputError

    assert select_precision("fp32", CPU).reason == "fp32 requested"
    assert "emulated" in select_precision("bf16", CPU, caps=AVX2).reason
    assert select_precision("int8", CPU, caps=AVX2).precision == "int8"
    assert select_precision("auto", torch.device("cuda:0")).precision == "fp16"
    for bad, dev in (("fp16", CPU), ("int8", torch.device("cuda:0")), ("fp8", CPU)):
        with pytest.raises(InputError):
            select_precision(bad, dev)
    monkeypatch.setenv("GEOCLIP_PRECISION", "fp32")
    pinned = select_precision("auto", CPU, caps=AMX)
    assert pinned.precision == "fp32" and "GEOCLIP_PRECISION" in pinned.reason
    assert select_precision("bf16", CPU, caps=AMX).precision == "bf16"  # a named precision is not pinned


def _photo_like(anchors: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = 0.55 + 0.35 * torch.rand(anchors.shape[0], 1, generator=g)
    noise = torch.nn.functional.normalize(torch.randn(anchors.shape, generator=g), dim=1)
    return torch.nn.functional.normalize(w * anchors + (1 - w) * noise, dim=1)


def _gate(ref_q, q, ref_emb, emb, scale):
    """(top-5 identical share, max top-place probability relative error, max log-softmax error in nats)."""
    a = torch.log_softmax(scale * ref_q @ ref_emb.T, dim=1)
    b = torch.log_softmax(scale * q @ emb.T, dim=1)
    ta, tb = a.topk(5, dim=1).indices, b.topk(5, dim=1).indices
    same = sum(set(x.tolist()) == set(y.tolist()) for x, y in zip(ta, tb)) / len(ta)
    pa, pb = a.gather(1, ta[:, :1]).exp(), b.gather(1, ta[:, :1]).exp()
    return same, float(((pb - pa).abs() / pa).max()), float((a - b).abs().max())


def test_location_encoder_schemes_against_the_nat_bound(weights):
    """Every location-encoder scheme against fp32 on the real gallery's first 10,000 points (200 photo-like queries)
    and a 1° city at 0.005° (where the sigma = 256 capsule matters): the scheme each precision uses is
    fp32 (the oracle's path), bf16 in the sigma = 16/256 capsules breaks the 0.02-nat bound (why the engine keeps
    them fp32), and the sigma = 1 capsule alone in bf16 errs far less (yet sits at the bound: 0.0201 nats in
    scripts/bench_precision.py)."""
    from geoclip_qgis.core.model.gallery import read_coordinates_csv
    from geoclip_qgis.core.model.location_encoder import LocationEncoder

    scale = float(weights.logit_scale.exp())
    enc = LocationEncoder.from_state(weights.location)
    gallery = read_coordinates_csv(weights.gallery_csv)[:10_000]
    lat, lon = np.meshgrid(48.5 + 0.005 * np.arange(100), 2.0 + 0.005 * np.arange(100), indexing="ij")
    city = np.c_[lat.ravel(), lon.ravel()]
    ref_g, ref_c = enc.encode(gallery, normalise=True), enc.encode(city, normalise=True)
    rng = np.random.default_rng(0)
    queries = _photo_like(ref_g[rng.choice(len(gallery), 200, replace=False)], 0)
    map_q = _photo_like(ref_c[[0, 5050, 9999]], 1)
    for precision in ("fp32", "bf16", "int8"):
        assert P.convert_location_encoder(enc, P.LOCATION_SCHEME[precision]) is enc  # fp32: the oracle's path
    worst = {}
    for scheme in ("hidden", "autocast", "sigma1"):
        model = P.convert_location_encoder(enc, scheme)
        with P.location_context(scheme):
            got_g, got_c = model.encode(gallery, normalise=True), model.encode(city, normalise=True)
        cos = torch.nn.functional.cosine_similarity(torch.cat([ref_g, ref_c]), torch.cat([got_g, got_c]), dim=1)
        same, rel, nats = _gate(queries, queries, ref_g, got_g, scale)
        worst[scheme] = (float(cos.min()), same, rel, max(nats, _gate(map_q, map_q, ref_c, got_c, scale)[2]))
    assert worst["hidden"][3] > P.GATE["nats"] and worst["autocast"][3] > P.GATE["nats"], worst
    cos, same, rel, nats = worst["sigma1"]
    assert cos >= P.GATE["cosine"] and same >= P.GATE["top5"] and rel <= P.GATE["top1_rel"], worst
    assert nats < 0.03 and nats < worst["hidden"][3] / 3, worst


def test_engine_bf16_towers_and_keys(weights, tiny_clip, small_gallery, tmp_path, photos, monkeypatch):
    """The engine in bf16 (towers under autocast; the MLP and the location encoder stay fp32) against fp32 with the
    tiny random CLIP and the real MLP: embeddings within the gate's cosine, and the gallery cache shared with fp32
    (same bytes, same key). The ranking part of the tower gate is measured on the full-size ViT-L/14 by
    scripts/bench_precision.py: a 32-wide random CLIP ranks the gallery by near-ties, so its top-5 flips at any
    rounding and says nothing."""
    from geoclip_qgis.core.model.engine import GeoClipEngine

    kw = dict(weights=weights, clip_path=tiny_clip, device="cpu", gallery=small_gallery, cache_dir=tmp_path)
    e32, e16 = GeoClipEngine(precision="fp32", **kw), GeoClipEngine(precision="bf16", **kw)
    assert e32.location_digest == e16.location_digest == weights.digest  # bf16 keeps the location encoder fp32
    assert e16.info()["precision"]["precision"] == "bf16"
    assert e16.text_encoder.precision == "bf16"
    cast = [m for m in e16.text_encoder.text.modules() if isinstance(m, P.CastLinear)]
    assert cast and not any(isinstance(m, torch.nn.Linear) for m in e16.text_encoder.text.modules())
    texts = ["snowy alpine village", "harbour with red roofs", "desert market", "rice terraces in the rain"]
    imgs32, imgs16 = e32.embed_images(photos[:4]), e16.embed_images(photos[:4])
    txt32, txt16 = e32.embed_text(texts), e16.embed_text(texts)
    for a, b in ((imgs32, imgs16), (txt32, txt16)):
        assert float(torch.nn.functional.cosine_similarity(a, b, dim=1).min()) >= P.GATE["cosine"]
    # The weights cast once give autocast's own products, bit for bit (autocast alone re-casts them every call).
    lin = e32.text_encoder.text.text_model.encoder.layers[0].self_attn.q_proj
    x = torch.randn(6, lin.in_features)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(lin(x), P.CastLinear(lin)(x))
    # Without the fold, the whole converted tower (CastLinear, fused or not, and BF16Output) gives plain autocast's
    # embeddings bit for bit; the fold alone changes the arithmetic (test_quick_gelu_folds_into_silu bounds it).
    import copy

    tokens = e32.text_encoder.tokenizer(texts, padding=True, return_tensors="pt")
    with monkeypatch.context() as m:
        m.setattr(P, "fold_quick_gelu", lambda model: 0)
        unfolded = P.convert_tower(copy.deepcopy(e32.text_encoder.text), "bf16")
    assert any(isinstance(mod, P.BF16Output) for mod in unfolded.modules())
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(e32.text_encoder.text(**tokens).text_embeds, unfolded(**tokens).text_embeds)
    # Every layer's QuickGELU became SiLU and its norms give bf16 (fold_quick_gelu, BF16Output).
    layers = e16.text_encoder.text.text_model.encoder.layers
    assert all(layer.mlp.fc1.silu and isinstance(layer.mlp.activation_fn, torch.nn.Identity) for layer in layers)
    assert all(isinstance(layer.layer_norm1, P.BF16Output) for layer in layers)
    g32, g16 = e32.gallery(), e16.gallery()
    assert g32.cache_file == g16.cache_file and torch.equal(g32.embeddings, g16.embeddings)


def test_quick_gelu_folds_into_silu():
    """silu(1.702 x) / 1.702 is QuickGELU: with 1.702 moved into fc1 (weights and bias) and its inverse into fc2,
    the bf16 MLP stays as close to fp32 as autocast's own QuickGELU; a fold that missed the bias or the inverse
    would be off by far more."""
    import copy

    from transformers import CLIPVisionConfig
    from transformers.models.clip.modeling_clip import CLIPMLP

    torch.manual_seed(0)
    mlp = CLIPMLP(CLIPVisionConfig(hidden_size=64, intermediate_size=256, num_attention_heads=4)).eval()
    with torch.no_grad():
        mlp.fc1.bias.normal_()
    x = torch.randn(64, 64)
    folded = copy.deepcopy(mlp)
    assert P.fold_quick_gelu(folded) == 1 and isinstance(folded.activation_fn, torch.nn.Identity)
    assert isinstance(folded.fc1, P.CastLinear) and folded.fc1.silu and isinstance(folded.fc2, P.CastLinear)
    with torch.inference_mode():
        ref = mlp(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain, got = mlp(x).float(), folded(x).float()
    err, err_plain = float((got - ref).abs().max()), float((plain - ref).abs().max())
    assert err <= 1.5 * err_plain and err < 0.02 * float(ref.abs().max()), (err, err_plain)
    # With gradients recorded (a saliency map) the unfused path runs (the fused op has no backward): as close to
    # fp32, and a gradient flows.
    xg = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = folded(xg)
    out.float().sum().backward()
    assert float((out.detach().float() - ref).abs().max()) <= 1.5 * err_plain
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and float(xg.grad.abs().sum()) > 0


def test_int8_is_used_only_when_asked(weights, tiny_clip, small_gallery, tmp_path):
    from geoclip_qgis.core.model.engine import GeoClipEngine

    e8 = GeoClipEngine(weights=weights, clip_path=tiny_clip, device="cpu", gallery=small_gallery,
                       cache_dir=tmp_path, precision="int8")
    assert e8.precision.location_scheme == "fp32" and e8.location_digest == weights.digest
    feats = e8.embed_text(["a lighthouse on a cliff"])
    assert feats.shape == (1, 512) and torch.isfinite(feats).all()


def test_caches_are_keyed_by_the_location_scheme(weights, small_gallery, tmp_path, monkeypatch):
    """Were bf16 to run a location-encoder scheme whose bytes differ, its gallery cache and fields get their own key:
    an fp32 field never serves a bf16 engine, nor the reverse."""
    from geoclip_qgis.core.model.engine import GeoClipEngine

    monkeypatch.setitem(P.LOCATION_SCHEME, "bf16", "sigma1")
    kw = dict(weights=weights, device="cpu", gallery=small_gallery[:300], cache_dir=tmp_path)
    e32, e16 = GeoClipEngine(precision="fp32", **kw), GeoClipEngine(precision="bf16", **kw)
    assert e16.location_digest == weights.digest + "-sigma1" and e32.location_digest == weights.digest
    assert e16.location_encoder.capsules[0].hidden[2].weight.dtype == torch.bfloat16
    assert e32.gallery().cache_file != e16.gallery().cache_file
    assert not torch.equal(e32.gallery().embeddings, e16.gallery().embeddings)


def test_one_option_from_the_cli_to_the_worker_and_ray():
    """--precision on every engine-building command, in the options Ray actors receive, and one canonical engine
    option in the protocol (an unknown value is refused there, before any engine is built)."""
    from geoclip_qgis.core.service.cli import _engine_options, build_parser
    from geoclip_qgis.shared import protocol

    for argv in (["photos", "x.jpg"], ["text", "a harbour"], ["similar", "--lat", "1", "--lon", "2", "-o", "o.tif"],
                 ["field"]):
        args = build_parser().parse_args(argv + ["--precision", "bf16"])
        assert args.precision == "bf16"
    opts = _engine_options(build_parser().parse_args(["photos", "x.jpg", "--precision", "int8"]))
    assert opts["precision"] == "int8"  # what run_batch hands to each Ray actor's GeoClipEngine
    assert build_parser().parse_args(["photos", "x.jpg"]).precision == "auto"
    assert protocol.canonical_engine_options({})["precision"] == "auto"
    assert protocol.canonical_engine_options({"precision": " BF16 "})["precision"] == "bf16"
    assert protocol.validate("geolocate_text", {"queries": ["a"], "engine": {"precision": "bf16"}})
    with pytest.raises(protocol.SchemaError):
        protocol.validate("geolocate_text", {"queries": ["a"], "engine": {"precision": "fp8"}})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["photos", "x.jpg", "--precision", "fp8"])


def test_denormal_weights_are_flushed_bit_identically(weights):
    """GeoCLIP's trained location encoder holds tens of thousands of denormal floats (x86 multiplies them through a
    microcode assist: the encoder ran 4.7x slower for them); loading zeroes them, and what it encodes is the same
    to the bit on world and city points. fp16 weights are left alone (their smallest normal is a real weight)."""
    from geoclip_qgis.core.model.location_encoder import LocationEncoder

    tiny = torch.finfo(torch.float32).tiny

    def denormals(module) -> int:  # counted here, not by the function under test
        return sum(int(((p.abs() < tiny) & (p != 0)).sum()) for p in module.parameters())

    raw = LocationEncoder(len(weights.sigmas))
    raw.load_state_dict(weights.location, strict=True)
    raw.eval().requires_grad_(False)
    assert denormals(raw) > 50_000
    enc = LocationEncoder.from_state(weights.location, len(weights.sigmas))
    assert denormals(enc) == 0
    rng = np.random.default_rng(5)
    world = np.c_[np.degrees(np.arcsin(rng.uniform(-1, 1, 6000))), rng.uniform(-180, 180, 6000)]
    lat, lon = np.meshgrid(48.5 + 0.005 * np.arange(40), 2.0 + 0.005 * np.arange(50), indexing="ij")
    pts = np.r_[world, np.c_[lat.ravel(), lon.ravel()]]
    assert torch.equal(raw.encode(pts), enc.encode(pts))
    half = torch.nn.Linear(4, 4).half()
    with torch.no_grad():
        half.weight[0, 0] = 1e-6  # an fp16 denormal, a real weight at that precision
    assert P.flush_denormals(half) == 0 and float(half.weight[0, 0]) != 0
