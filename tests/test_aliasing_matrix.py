"""The output-aliasing matrix (issue 20): every output option named as every input option, through every front door
that takes both (the CLI's commands and the worker's ops; Processing's raster outputs reach the same worker op).

Each cell must be refused before any model loads, with a message naming the clash, and must leave the input file
byte for byte as it was. A second matrix names two outputs as one file, and a third names outputs that exist and are
not ours. The classes come from core/io/plan.py; the cases are generated, not picked.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path

import pytest
from conftest import make_photo

from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.service.cli import main

GALLERY_CSV = "LAT,LON\n45.0,7.0\n10.0,20.0\n-33.9,151.2\n"
AOI_GEOJSON = json.dumps({"type": "Polygon", "coordinates": [[[0, 40], [20, 40], [20, 50], [0, 50], [0, 40]]]})


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def inputs(tmp_path):
    """One file per input option, each with a suffix that some output option accepts, so the clash is the only
    thing wrong. (A photo named .png/.tif is a real image too.)"""
    d = tmp_path / "in"
    d.mkdir()
    files = {
        "photo.jpg": make_photo(d / "p.jpg", seed=1),
        "photo.png": make_photo(d / "p.png", seed=2),
        "photo.tif": make_photo(d / "p.tif", seed=3),
        "list.csv": d / "list.csv",
        "gallery.csv": d / "g.csv",
        "aoi.geojson": d / "area.geojson",
    }
    files["list.csv"].write_text(str(files["photo.jpg"]) + "\n")
    files["gallery.csv"].write_text(GALLERY_CSV)
    files["aoi.geojson"].write_text(AOI_GEOJSON)
    return files


def _base(tiny_clip, cache_dir):
    return ["--clip-path", tiny_clip, "--device", "cpu", "--cache-dir", str(cache_dir)]


# (command, output option, suffixes that option accepts)
CLI_OUTPUTS = [
    ("photos", "-o", (".csv", ".geojson", ".gpkg")),
    ("text", "-o", (".csv", ".geojson", ".gpkg")),
    ("likelihood", "-o", (".tif",)),
    ("likelihood", "--preview", (".png",)),
    ("likelihood", "--regions", (".geojson", ".gpkg")),
    ("similar", "-o", (".tif",)),
    ("similar", "--preview", (".png",)),
    ("features", "-o", (".tif",)),
]
# input option -> (the input file's key in `inputs`, the commands that take it)
CLI_INPUTS = {
    "photo": (("photo.jpg", "photo.png", "photo.tif"), ("photos", "likelihood")),
    "--list": (("list.csv",), ("photos",)),
    "--gallery": (("gallery.csv",), ("photos", "text")),
    "--aoi": (("aoi.geojson",), ("photos", "text", "likelihood")),
}


def _cli_cells():
    for (cmd, out_opt, _suffixes), (in_opt, (keys, cmds)) in itertools.product(CLI_OUTPUTS, CLI_INPUTS.items()):
        if cmd not in cmds:
            continue
        for key in keys:  # every cell, whatever the suffix: the clash must be said even beside a format problem
            for spelling in ("same", "link"):
                yield pytest.param(cmd, out_opt, in_opt, key, spelling, id=f"{cmd}{out_opt}={in_opt}:{key}:{spelling}")


def _argv(cmd, out_opt, in_opt, in_path, files, tmp_path, tiny_clip, cache_dir):
    """A command line whose `out_opt` names `in_path`, every other output a fresh name."""
    photo = str(files["photo.jpg"]) if in_opt != "photo" else str(in_path)
    argv = [cmd]
    if cmd == "photos":
        argv += [] if in_opt == "--list" else [photo]
    elif cmd == "text":
        argv += ["a snowy village"]
    elif cmd == "likelihood":
        argv += ["--photos", photo, "--resolution", "5"]
    elif cmd == "similar":
        argv += ["--lat", "45", "--lon", "7", "--resolution", "5"]
    elif cmd == "features":
        argv += ["--pca", "--resolution", "5"]
    if in_opt in ("--list", "--gallery", "--aoi"):
        argv += [in_opt, str(in_path)]
    if cmd in ("likelihood", "similar", "features") and out_opt != "-o":
        argv += ["-o", str(tmp_path / "fresh.tif")]
    argv += [out_opt, str(in_path)]
    return argv + _base(tiny_clip, cache_dir)


@pytest.mark.parametrize("cmd,out_opt,in_opt,key,spelling", list(_cli_cells()))
def test_cli_output_named_as_an_input_is_refused_and_the_input_kept(cmd, out_opt, in_opt, key, spelling, inputs,
                                                                     tmp_path, tiny_clip, cache_dir, capsys):
    """`same`: the output option names the input's path; `link`: it names a symbolic link to the input (another
    spelling of the same file)."""
    target = inputs[key]
    before = _digest(target)
    argv = _argv(cmd, out_opt, in_opt, target, inputs, tmp_path, tiny_clip, cache_dir)
    if spelling == "link":
        link = tmp_path / ("link" + target.suffix)
        link.symlink_to(target)
        i = len(argv) - 1 - argv[::-1].index(out_opt)
        argv[i + 1] = str(link)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "would be overwritten" in err, err
    assert _digest(target) == before
    assert not list(tmp_path.glob("**/.*tmp*")), "a refused run leaves no temporary file"


def test_the_cli_matrix_covers_every_cell():
    cells = list(_cli_cells())
    assert len(cells) >= 40, len(cells)
    assert {c.values[0] for c in cells} == {"photos", "text", "likelihood"}  # similar/features read no user file


# ---- two outputs that are one file -----------------------------------------------------------------------------
def _two_outputs_cases(tmp_path):
    a = tmp_path / "x.tif"
    return [
        ["likelihood", "--photos", "{photo}", "-o", str(a), "--preview", str(tmp_path / "x.png"),
         "--regions", str(tmp_path / "x.geojson")],  # control: all distinct, not refused by the plan
        ["similar", "--lat", "1", "--lon", "2", "-o", str(a), "--preview", str(a)],
        ["features", "--pca", "-o", str(a), "--preview", str(tmp_path / "link.tif")],
        ["photos", "{photo}", "-o", str(tmp_path / "r.csv"), "-o", str(tmp_path / "r.failed.csv")],
        ["photos", "{photo}", "-o", str(tmp_path / "r.csv"), "-o", str(tmp_path / ".r.csv.geoclip-run.jsonl")],
    ]


@pytest.mark.parametrize("case", range(1, 5))
def test_two_outputs_that_are_one_file_are_refused(case, inputs, tmp_path, tiny_clip, cache_dir, capsys):
    (tmp_path / "link.tif").symlink_to(tmp_path / "x.tif")
    argv = [a.replace("{photo}", str(inputs["photo.jpg"])) for a in _two_outputs_cases(tmp_path)[case]]
    code = main(argv + ["--resolution", "5"] * (argv[0] != "photos") + _base(tiny_clip, cache_dir))
    err = capsys.readouterr().err
    assert code == 2 and ("one file" in err or "cannot be" in err), err
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "r.csv").exists()


# ---- outputs that exist and are not ours ---------------------------------------------------------------------
NOT_OURS = {
    ".csv": b"id,name\n1,my own table\n",
    ".geojson": b'{"type": "FeatureCollection", "name": "parcels", "features": []}',
    ".tif": None,  # a real GeoTIFF without our tag
    ".png": None,  # a real PNG without our tag
}


def _foreign(path: Path) -> None:
    data = NOT_OURS[path.suffix]
    if data is not None:
        path.write_bytes(data)
    elif path.suffix == ".tif":
        import numpy as np
        import rasterio
        from rasterio.transform import from_origin

        with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", crs="EPSG:4326",
                           transform=from_origin(0, 4, 1, 1)) as ds:
            ds.write(np.ones((1, 4, 4), np.uint8))
    else:
        make_photo(path, seed=9)


@pytest.mark.parametrize("argv,target", [
    (["text", "x", "-o", "{t}"], "r.csv"),
    (["text", "x", "-o", "{t}"], "r.geojson"),
    (["photos", "{photo}", "-o", "ok.csv"], "ok.failed.csv"),
    (["similar", "--lat", "1", "--lon", "2", "--resolution", "5", "-o", "{t}"], "r.tif"),
    (["similar", "--lat", "1", "--lon", "2", "--resolution", "5", "-o", "s.tif", "--preview", "{t}"], "r.png"),
    (["likelihood", "--photos", "{photo}", "--resolution", "5", "-o", "l.tif", "--regions", "{t}"], "r.geojson"),
])
def test_a_file_we_would_replace_that_is_not_ours_is_refused(argv, target, inputs, tmp_path, tiny_clip, cache_dir,
                                                              capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = tmp_path / target
    _foreign(t)
    before = _digest(t)
    argv = [a.replace("{t}", str(t)).replace("{photo}", str(inputs["photo.jpg"])) for a in argv]
    code = main(argv + _base(tiny_clip, cache_dir))
    err = capsys.readouterr().err
    assert code == 2 and "GeoCLIP did not write" in err, err
    assert _digest(t) == before


def test_our_own_outputs_are_replaced_on_a_second_run(inputs, tmp_path, tiny_clip, cache_dir):
    """The mark makes the rule bearable: what we wrote, we may rewrite."""
    argv = ["similar", "--lat", "1", "--lon", "2", "--resolution", "5", "-o", str(tmp_path / "s.tif"), "--preview",
            str(tmp_path / "s.png"), *_base(tiny_clip, cache_dir)]
    assert main(argv) == 0
    first = _digest(tmp_path / "s.tif")
    assert main(argv[:2] + ["3"] + argv[3:]) == 0
    assert _digest(tmp_path / "s.tif") != first


# ---- the worker's ops: the same plan ---------------------------------------------------------------------------
def _worker_cases(files, tmp_path):
    photo, png, tif = str(files["photo.jpg"]), str(files["photo.png"]), str(files["photo.tif"])
    aoi = str(files["aoi.geojson"])
    user_gpkg = tmp_path / "notes.gpkg"
    shutil.copy(files["aoi.geojson"], tmp_path / "a.geojson")
    fresh = str(tmp_path / "fresh.tif")
    return [
        ("likelihood", {"photos": [tif], "out": tif}, tif),
        ("likelihood", {"photos": [png], "out": fresh, "preview": png}, png),
        ("likelihood", {"photos": [photo], "out": fresh, "aoi": aoi, "regions_out": aoi}, aoi),
        ("similar", {"lat": 1, "lon": 2, "out": str(user_gpkg)}, None),
        ("similar", {"lat": 1, "lon": 2, "out": fresh, "preview": fresh}, None),
        ("features", {"pca": True, "out": tif}, tif),
    ]


@pytest.mark.parametrize("case", range(6))
def test_worker_ops_use_the_same_plan(case, inputs, tmp_path, tiny_clip, cache_dir):
    from geoclip_qgis.core.service.worker import Worker

    op, params, kept = _worker_cases(inputs, tmp_path)[case]
    before = _digest(Path(kept)) if kept else None
    w = Worker(lambda message: None)
    params = {**params, "resolution": 5, "engine": {"clip_path": tiny_clip, "device": "cpu",
                                                    "cache_dir": str(cache_dir)}}
    with pytest.raises(InputError) as info:
        getattr(w, f"op_{op}")(1, params)
    said = str(info.value)
    assert any(s in said for s in ("would be overwritten", "one file", "cannot be", "GeoCLIP did not write")), said
    if kept:
        assert _digest(Path(kept)) == before
    assert w._engine is None, "refused before any model loads"


# ---- Processing: its rasters are written by the worker's op, through the same plan ---------------------------
@pytest.mark.parametrize("alg,params,clash", [
    ("likelihood_raster", {"PHOTOS": ["{tif}"], "RESOLUTION": 5, "OUTPUT": "{tif}"}, "{tif}"),
    ("places_like_here", {"POINT": "7,45 [EPSG:4326]", "RESOLUTION": 5, "OUTPUT": "{gpkg}"}, "{gpkg}"),
])
def test_processing_output_named_as_an_input_or_a_users_file_is_refused(alg, params, clash, inputs, tmp_path,
                                                                      tiny_clip, cache_dir, geoclip_provider,
                                                                      monkeypatch):
    import sys

    import processing
    from qgis.core import QgsProcessingContext, QgsProject

    from geoclip_qgis.client.engine_client import shutdown_shared
    monkeypatch.setenv("GEOCLIP_ENGINE_PYTHON", sys.executable)
    user_gpkg = tmp_path / "notes.gpkg"
    user_gpkg.write_bytes((inputs["aoi.geojson"]).read_bytes())  # the user's own file, whatever it holds
    subst = {"{tif}": str(inputs["photo.tif"]), "{gpkg}": str(user_gpkg)}
    params = {k: ([subst.get(x, x) for x in v] if isinstance(v, list) else subst.get(v, v)) for k, v in params.items()}
    target = Path(subst[clash])
    before = _digest(target)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    try:
        with pytest.raises(Exception) as info:
            processing.run(f"geoclip:{alg}", {**params, "DEVICE": 1, "CLIP_PATH": tiny_clip}, context=context)
    finally:
        shutdown_shared()
    said = str(info.value)
    assert any(s in said for s in ("would be overwritten", "cannot be", "did not write")), said
    assert _digest(target) == before
