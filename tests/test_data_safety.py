"""Issue 11, class 1: a run never destroys or corrupts what the user already has.

Mechanism under test (core/io/results.py): results go to a journal that is fsynced per query; outputs are written
whole at the end (temporary name + rename; in a GeoPackage only our own layer). So a run that fails early, fails
late, is interrupted or killed leaves every existing file as it was, and --resume is exact."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from conftest import ROOT, make_photo
from pyogrio import raw

from geoclip_qgis.core.io.journal import journal_path
from geoclip_qgis.core.io.results import DEFAULT_LAYER, PREDICTION_FIELDS, csv_safe
from geoclip_qgis.core.service.cli import main


def _args(tiny_clip, cache_dir, gallery="fibonacci:3000"):
    return ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", gallery, "--cache-dir", str(cache_dir)]


def _override(args, extra):
    """`args` with the options `extra` sets replaced by `extra`'s: an option given twice is refused (issue 20)."""
    drop = {a for a in extra if a.startswith("--")}
    out, i = [], 0
    while i < len(args):
        if args[i] in drop:
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out + list(extra)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _user_gpkg(path: Path, layers=("my_parcels",)) -> None:
    wkb = np.array([bytes.fromhex("0101000000000000000000f03f0000000000000040")], dtype=object)
    for name in layers:
        raw.write(str(path), wkb, [np.array(["field A"], dtype=object)], ["note"], layer=name, driver="GPKG",
                  geometry_type="Point", crs="EPSG:4326")


def _csv_sources(path: Path) -> list:
    with open(path, newline="", encoding="utf-8") as fh:
        return [r["source"] for r in csv.DictReader(fh) if r["rank"] == "1"]


@pytest.fixture()
def earlier(tmp_path, photos, tiny_clip, cache_dir):
    """Outputs of an earlier good run in every format, plus a user's layer in the GeoPackage."""
    outs = [tmp_path / "r.csv", tmp_path / "r.gpkg", tmp_path / "r.geojson"]
    _user_gpkg(outs[1])
    assert main(["photos", photos[0], *sum((["-o", str(o)] for o in outs), []), *_args(tiny_clip, cache_dir)]) == 0
    return outs


@pytest.mark.parametrize("argv,message", [
    (["--top-k", "0"], None),
    (["--top-k", "5000"], "top-k must be between 1"),
    (["--clip-path", "/nonexistent/clip"], "CLIP folder does not exist"),
    (["--weights", "/nonexistent/w"], "weights folder does not exist"),
    (["--gallery", "/nonexistent/g.csv"], "gallery"),
    (["--device", "tpu"], "unknown device"),
])
def test_failed_start_leaves_outputs_untouched(argv, message, earlier, photos, tiny_clip, cache_dir, capsys):
    before = {p: _digest(p) for p in earlier}
    args = ["photos", *photos, *sum((["-o", str(o)] for o in earlier), []),
            *_override(_args(tiny_clip, cache_dir), argv)]
    if message is None:  # refused by the argument parser itself
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
    else:
        assert main(args) == 2
        assert message in capsys.readouterr().err
    assert {p: _digest(p) for p in earlier} == before


def test_geopackage_keeps_every_other_layer(tmp_path, photos, tiny_clip, cache_dir):
    gpkg = tmp_path / "parcels.gpkg"
    _user_gpkg(gpkg, ("my_parcels", "parcels"))  # the second has the file's own name, as QGIS names layers
    for _ in range(2):  # a second run replaces our layer, nothing else
        assert main(["photos", *photos, "-o", str(gpkg), "--top-k", "2", *_args(tiny_clip, cache_dir)]) == 0
    layers = sorted(str(n) for n in pyogrio.list_layers(gpkg)[:, 0])
    ours = [DEFAULT_LAYER, f"{DEFAULT_LAYER}_places", f"{DEFAULT_LAYER}_summary"]
    assert layers == sorted(["my_parcels", "parcels", *ours])
    assert pyogrio.read_info(gpkg, layer="my_parcels")["features"] == 1
    assert pyogrio.read_info(gpkg, layer=DEFAULT_LAYER)["features"] == 6
    assert pyogrio.read_info(gpkg, layer=f"{DEFAULT_LAYER}_summary")["features"] == 3
    assert main(["photos", photos[0], "-o", str(gpkg), "--layer", "trip", *_args(tiny_clip, cache_dir)]) == 0
    assert "trip" in list(pyogrio.list_layers(gpkg)[:, 0])


def test_a_user_layer_with_our_name_is_refused(tmp_path, photos, tiny_clip, cache_dir, capsys):
    gpkg = tmp_path / "u.gpkg"
    _user_gpkg(gpkg, (DEFAULT_LAYER,))
    before = _digest(gpkg)
    assert main(["photos", photos[0], "-o", str(gpkg), *_args(tiny_clip, cache_dir)]) == 2
    assert "GeoCLIP did not write" in capsys.readouterr().err and _digest(gpkg) == before


def test_interrupt_keeps_old_outputs_and_resume_finishes(earlier, photos, tiny_clip, cache_dir, monkeypatch,
                                                         capsys):
    from geoclip_qgis.core.model import engine as engine_mod

    before = {p: _digest(p) for p in earlier}
    real = engine_mod.GeoClipEngine.iter_predict_images

    def interrupted(self, images, top_k=5, batch_size=None):
        for i, res in enumerate(real(self, images, top_k, batch_size=1)):
            if i == 2:
                raise KeyboardInterrupt
            yield res

    monkeypatch.setattr(engine_mod.GeoClipEngine, "iter_predict_images", interrupted)
    outs = sum((["-o", str(o)] for o in earlier), [])
    assert main(["photos", *photos, *outs, *_args(tiny_clip, cache_dir)]) == 130
    assert "--resume" in capsys.readouterr().err
    assert {p: _digest(p) for p in earlier} == before, "an interrupted run changes no output"
    monkeypatch.setattr(engine_mod.GeoClipEngine, "iter_predict_images", real)
    assert main(["photos", *photos, *outs, "--resume", *_args(tiny_clip, cache_dir)]) == 0
    assert "2 photo(s) already done, 1 to go" in capsys.readouterr().err
    assert sorted(_csv_sources(earlier[0])) == sorted(photos)
    for o in earlier[1:]:
        layer = DEFAULT_LAYER if o.suffix == ".gpkg" else None
        assert pyogrio.read_info(o, layer=layer)["features"] == 15
    assert "my_parcels" in list(pyogrio.list_layers(earlier[1])[:, 0])


def test_sigkill_mid_batch_keeps_every_finished_row(tmp_path, tiny_clip, cache_dir):
    folder = tmp_path / "many"
    for i in range(30):
        make_photo(folder / f"p{i:02d}.jpg", seed=i)
    out = tmp_path / "k.csv"
    earlier_text = ",".join(n for n, _ in PREDICTION_FIELDS) + "\n"  # an earlier output of ours (our header)
    out.write_text(earlier_text)
    code = "import sys; from geoclip_qgis.core.service.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["photos", str(folder), "-o", str(out), "--batch-size", "1", "--top-k", "1", *_args(tiny_clip, cache_dir)]
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=ROOT, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    journal = journal_path(out)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out.read_text() == earlier_text, "a killed run changes no output"
    kept = [json.loads(line) for line in journal.read_bytes().split(b"\n")[1:] if line.strip()]
    assert len(kept) >= 3
    assert main([*argv, "--resume"]) == 0
    assert sorted(_csv_sources(out)) == sorted(str(p) for p in folder.iterdir())


def test_torn_journal_line_is_cut_not_glued(earlier, photos, tiny_clip, cache_dir):
    journal = journal_path(earlier[0])
    with open(journal, "ab") as fh:
        fh.write(b'{"t": "rows", "rows": [{"source": "half')  # a crash mid-write
    assert main(["photos", *photos, "-o", str(earlier[0]), "--resume", *_args(tiny_clip, cache_dir)]) == 0
    sources = _csv_sources(earlier[0])
    assert sorted(sources) == sorted(photos) and len(sources) == len(set(sources))


def test_torn_csv_without_journal_is_repaired(earlier, photos, tiny_clip, cache_dir, caplog):
    csv_out = earlier[0]
    journal_path(csv_out).unlink()
    text = csv_out.read_text()
    csv_out.write_text(text + photos[1] + ",image,1,0.3")  # a torn last row, no newline
    assert main(["photos", *photos, "-o", str(csv_out), "--resume", *_args(tiny_clip, cache_dir)]) == 0
    assert "cut off" in caplog.text
    with open(csv_out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(None not in r and r["lon"] for r in rows), "no row is glued onto another"
    assert sorted(r["source"] for r in rows if r["rank"] == "1") == sorted(photos)


@pytest.mark.parametrize("change,message", [
    (["--top-k", "3"], "top_k"),
    (["--gallery", "fibonacci:2500"], "gallery"),
])
def test_resume_with_other_options_is_refused(change, message, earlier, photos, tiny_clip, cache_dir, capsys):
    before = _digest(earlier[0])
    argv = ["photos", *photos, "-o", str(earlier[0]), "--resume", *_override(_args(tiny_clip, cache_dir), change)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and message in err and _digest(earlier[0]) == before


def test_paths_compare_in_one_form(tmp_path, photos, tiny_clip, cache_dir, capsys, monkeypatch):
    monkeypatch.chdir(Path(photos[0]).parent)
    out = tmp_path / "n.csv"
    name = Path(photos[0]).name
    assert main(["photos", name, f"./{name}", photos[0], "-o", str(out), "-o", str(out),
                 *_args(tiny_clip, cache_dir)]) == 0
    assert len(_csv_sources(out)) == 1, "one photo in three spellings is geolocated once, the output written once"
    assert main(["photos", photos[0], "-o", str(out), "--resume", *_args(tiny_clip, cache_dir)]) == 0
    assert "1 photo(s) already done, 0 to go" in capsys.readouterr().err


def test_resume_reads_our_layer_not_the_first(tmp_path, photos, tiny_clip, cache_dir, capsys):
    gpkg = tmp_path / "first.gpkg"
    _user_gpkg(gpkg)
    assert main(["photos", photos[0], "-o", str(gpkg), *_args(tiny_clip, cache_dir)]) == 0
    journal_path(gpkg).unlink()  # only the GeoPackage itself says what was done
    assert main(["photos", *photos, "-o", str(gpkg), "--resume", *_args(tiny_clip, cache_dir)]) == 0
    assert "1 photo(s) already done, 2 to go" in capsys.readouterr().err
    assert pyogrio.read_info(gpkg, layer=DEFAULT_LAYER)["features"] == 15
    assert pyogrio.read_info(gpkg, layer="my_parcels")["features"] == 1


def test_csv_cells_cannot_run_as_formulas(tmp_path, tiny_clip, cache_dir):
    nasty = make_photo(tmp_path / '=HYPERLINK("http://x")+1.jpg', seed=5)
    outs = [tmp_path / "f.csv", tmp_path / "f.gpkg"]
    assert main(["photos", str(nasty), "-o", str(outs[0]), "-o", str(outs[1]), "--top-k", "1",
                 *_args(tiny_clip, cache_dir)]) == 0
    with open(outs[0], newline="") as fh:
        row = next(csv.DictReader(fh))
    assert not row["source"].startswith(("=", "+", "-", "@")) and row["source"].startswith(str(tmp_path))
    assert float(row["lon"]) == float(row["lon"])  # numbers stay numbers (a negative lon is not quoted)
    _, _, _, data = raw.read(str(outs[1]), layer=DEFAULT_LAYER, columns=["source"], read_geometry=False)
    assert data[0][0] == str(nasty), "the GeoPackage keeps the raw value"
    for cell in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_safe(cell) == "'" + cell
    assert csv_safe(-45.5) == -45.5


def test_output_problems_are_named_before_any_work(tmp_path, photos, tiny_clip, cache_dir, capsys):
    (tmp_path / "adir.csv").mkdir()
    cases = [
        (tmp_path / "adir.csv", "a folder"),
        (tmp_path / "missing" / "x.csv", "folder does not exist"),
        (tmp_path / "x.shp", "unknown output format"),
    ]
    for out, message in cases:
        assert main(["photos", *photos, "-o", str(out), "--clip-path", "/nonexistent"]) == 2
        assert message in capsys.readouterr().err  # reported before the CLIP folder is even looked at
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    if os.geteuid() != 0:
        assert main(["photos", *photos, "-o", str(ro / "x.csv")]) == 2
        assert "not writable" in capsys.readouterr().err


def test_raster_outputs_survive_a_failed_run(tmp_path, capsys):
    tif = tmp_path / "keep.tif"
    tif.write_bytes(b"the user's raster")
    assert main(["similar", "--lat", "95", "--lon", "0", "-o", str(tif)]) == 2
    assert main(["likelihood", "--text", "x", "--clip-path", "/nonexistent", "--extent", "0,0,10,10",
                 "-o", str(tif)]) == 2
    assert tif.read_bytes() == b"the user's raster"
    assert not [p for p in tmp_path.iterdir() if p.name != "keep.tif"], "no stray temporary files"


def test_a_summary_csv_an_earlier_release_wrote_is_still_ours(tmp_path):
    """Issue 25 appended columns to the summary; a summary CSV written before (19 columns) is still ours to replace,
    a CSV whose header only looks like the start of ours (a user's 3 columns) is not, and a reordered one is not."""
    from geoclip_qgis.core.io.plan import is_ours
    from geoclip_qgis.shared.schema import SUMMARY_FIELDS

    names = [n for n, _ in SUMMARY_FIELDS]
    assert len(names) > 19 and names[18] == "message"  # new columns are appended after the old ones
    old = tmp_path / "old_summary.csv"
    old.write_text(",".join(names[:19]) + "\n/p/a.jpg,image,ok\n", encoding="utf-8")
    now = tmp_path / "summary.csv"
    now.write_text(",".join(names) + "\n", encoding="utf-8")
    users = tmp_path / "users.csv"
    users.write_text(",".join(names[:3]) + "\n", encoding="utf-8")
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text(",".join([names[1], names[0], *names[2:19]]) + "\n", encoding="utf-8")
    assert is_ours(old, "csv") and is_ours(now, "csv")
    assert not is_ours(users, "csv") and not is_ours(shuffled, "csv")


def test_a_failure_before_the_first_row_closes_the_journal(photos, tiny_clip, cache_dir, tmp_path, monkeypatch):
    """Whatever stops a run after its journal opened (here the engine failing before its first row) closes the
    journal: no file left open for the garbage collector, and the outputs untouched."""
    import contextlib
    import gc
    import warnings

    from geoclip_qgis.core.model import engine as engine_mod

    def broken(self, *args, **kwargs):
        raise RuntimeError("the engine broke before its first row")

    monkeypatch.setattr(engine_mod.GeoClipEngine, "iter_predict_images", broken)
    out = tmp_path / "r.csv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with contextlib.suppress(RuntimeError):
            main(["photos", *photos, "-o", str(out), *_args(tiny_clip, cache_dir)])
        gc.collect()
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not out.exists()
