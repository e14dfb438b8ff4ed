"""The journal is the run's manifest (issue 20): resume rebuilds every output from it whatever the order of `-o`,
refuses other options with the reason, retries failed inputs, refuses what it cannot rebuild, and reads a foreign or
damaged line as an error naming the line."""

from __future__ import annotations

from pathlib import Path

import pyogrio
import pytest
from conftest import make_photo

from geoclip_qgis.core.io.journal import journal_path
from geoclip_qgis.core.service.cli import main


def _args(tiny_clip, cache_dir):
    return ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir", str(cache_dir)]


def _features(gpkg: Path, layer: str) -> int:
    return pyogrio.read_info(gpkg, layer=layer)["features"]


@pytest.fixture()
def two_runs(tmp_path):
    folder = tmp_path / "photos"
    for i in range(4):
        make_photo(folder / f"p{i}.jpg", seed=40 + i)
    return sorted(str(p) for p in folder.iterdir())


def test_resume_with_the_outputs_in_the_other_order_keeps_every_table(two_runs, tmp_path, tiny_clip, cache_dir):
    gpkg, csv = tmp_path / "r.gpkg", tmp_path / "r.csv"
    assert main(["photos", *two_runs[:2], "-o", str(gpkg), "-o", str(csv), "--top-k", "2",
                 *_args(tiny_clip, cache_dir)]) == 0
    assert main(["photos", *two_runs, "-o", str(csv), "-o", str(gpkg), "--top-k", "2", "--resume",
                 *_args(tiny_clip, cache_dir)]) == 0
    assert _features(gpkg, "geoclip_predictions") == 8
    assert _features(gpkg, "geoclip_predictions_summary") == 4, "the first run's summary rows are kept"
    assert _features(gpkg, "geoclip_predictions_places") >= 4


def test_resume_without_the_journal_rebuilds_from_a_geopackage_or_refuses(two_runs, tmp_path, tiny_clip, cache_dir,
                                                                          capsys):
    gpkg = tmp_path / "r.gpkg"
    assert main(["photos", *two_runs[:2], "-o", str(gpkg), *_args(tiny_clip, cache_dir)]) == 0
    journal_path(gpkg).unlink()
    assert main(["photos", *two_runs, "-o", str(gpkg), "--resume", *_args(tiny_clip, cache_dir)]) == 0
    assert _features(gpkg, "geoclip_predictions_summary") == 4

    csv, gpkg2 = tmp_path / "ranks.csv", tmp_path / "new.gpkg"
    assert main(["photos", *two_runs[:2], "-o", str(csv), *_args(tiny_clip, cache_dir)]) == 0
    journal_path(csv).unlink()
    capsys.readouterr()
    # a CSV of the ranks holds no places and no summary: a GeoPackage added now cannot be rebuilt, so refused
    assert main(["photos", *two_runs, "-o", str(csv), "-o", str(gpkg2), "--resume",
                 *_args(tiny_clip, cache_dir)]) == 2
    err = capsys.readouterr().err
    assert "cannot be rebuilt" in err and "places" in err, err


@pytest.mark.parametrize("line,said", [
    (b'{"t": "rows", "rows": [{"source": "x.jpg"}], "places": [], "summary": []}\n["a", "list"]\n', "line 3"),
    (b'{"hello": "world"}\n', "line 2"),
    (b'{"t": "rows", "rows": "not a list"}\n', "line 2"),
    (b'{"t": "rows", "rows": [{"no_source": 1}]}\n', "line 2"),
    (b"not json at all\n", "line 2"),
])
def test_a_foreign_or_damaged_journal_line_is_named(line, said, two_runs, tmp_path, tiny_clip, cache_dir, capsys):
    out = tmp_path / "r.csv"
    assert main(["photos", two_runs[0], "-o", str(out), *_args(tiny_clip, cache_dir)]) == 0
    journal = journal_path(out)
    head = journal.read_bytes().split(b"\n")[0] + b"\n"
    journal.write_bytes(head + line)
    capsys.readouterr()
    assert main(["photos", *two_runs, "-o", str(out), "--resume", *_args(tiny_clip, cache_dir)]) == 2
    err = capsys.readouterr().err
    assert said in err and "journal" in err and "Traceback" not in err, err


def test_a_journal_header_that_is_a_list_is_not_ours(two_runs, tmp_path, tiny_clip, cache_dir, capsys):
    out = tmp_path / "r.csv"
    assert main(["photos", two_runs[0], "-o", str(out), *_args(tiny_clip, cache_dir)]) == 0
    journal_path(out).write_text('["journal", 2]\n')
    capsys.readouterr()
    code = main(["photos", *two_runs, "-o", str(out), "--resume", *_args(tiny_clip, cache_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err


def test_resume_retries_a_photo_that_failed_and_is_readable_now(tmp_path, tiny_clip, cache_dir):
    folder = tmp_path / "trip"
    make_photo(folder / "good.jpg", seed=1)
    (folder / "late.jpg").write_bytes(b"not yet a photo")
    out = tmp_path / "r.csv"
    assert main(["photos", str(folder), "-o", str(out), *_args(tiny_clip, cache_dir)]) == 3  # one failed
    assert "late.jpg" in (tmp_path / "r.failed.csv").read_text()
    make_photo(folder / "late.jpg", seed=2)  # the user fixed it
    assert main(["photos", str(folder), "-o", str(out), "--resume", *_args(tiny_clip, cache_dir)]) == 0
    assert "late.jpg" in out.read_text(), "the fixed photo was tried again"
    assert "late.jpg" not in (tmp_path / "r.failed.csv").read_text(), "and is no longer listed as failed"


@pytest.mark.parametrize("change", [["--top-k", "3"], ["--place-radius", "50"], ["--aoi", "0,40,20,50"],
                                    ["--gallery", "fibonacci:2000"]])
def test_resume_with_other_options_is_refused_with_the_reason(change, two_runs, tmp_path, tiny_clip, cache_dir,
                                                              capsys):
    out = tmp_path / "r.csv"
    base = ["photos", two_runs[0], "-o", str(out), *_args(tiny_clip, cache_dir)]
    assert main(base) == 0
    capsys.readouterr()
    argv = ["photos", *two_runs, "-o", str(out), "--resume", *_args(tiny_clip, cache_dir)]
    if change[0] == "--gallery":
        argv[argv.index("--gallery") + 1] = change[1]
    else:
        argv += change
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "other options" in err, err


def test_text_takes_resume_as_its_advice_says(tmp_path, tiny_clip, cache_dir):
    out = tmp_path / "t.csv"
    assert main(["text", "a beach", "-o", str(out), *_args(tiny_clip, cache_dir)]) == 0
    assert main(["text", "a beach", "a snowy village", "-o", str(out), "--resume", *_args(tiny_clip, cache_dir)]) == 0
    rows = out.read_text().splitlines()[1:]
    assert sum("a beach" in r for r in rows) == sum("a snowy village" in r for r in rows) > 0
