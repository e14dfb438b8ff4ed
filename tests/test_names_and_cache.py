"""Issue 20: file names that are not UTF-8 round-trip through every result format, and a cache folder that cannot be
used (a file in its place, a file above it, read-only) costs a warning, never a traceback."""

from __future__ import annotations

import csv
import logging
import os
import re
import sys

import numpy as np
import pyogrio
import pytest
from conftest import make_photo

from geoclip_qgis.core.io.names import from_text, to_text
from geoclip_qgis.core.io.results import FAILURE_FIELDS, _write_csv, read_csv_rows
from geoclip_qgis.core.service.cli import main

posix_only = pytest.mark.skipif(os.name != "posix" or sys.platform == "darwin",
                                reason="undecodable file names exist on Linux (macOS and Windows refuse them)")


def _random_names(seed: int, n: int):
    rng = np.random.default_rng(seed)
    alphabet = [b"a", b"/", b".", b" ", b"\\", b"x", b"e9", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x93\xb7"]
    for _ in range(n):
        parts = []
        for _ in range(int(rng.integers(1, 12))):
            if rng.random() < 0.3:
                parts.append(bytes([int(rng.integers(0x80, 0x100))]))  # a byte that is not UTF-8 on its own
            else:
                parts.append(alphabet[int(rng.integers(0, len(alphabet)))])
        yield os.fsdecode(b"/photos/" + b"".join(parts) + b".jpg")


@pytest.mark.parametrize("seed", range(10))
def test_every_name_is_written_as_text_and_reads_back(seed):
    """500 random byte names per seed: to_text is always valid UTF-8, a valid name is never changed, and
    from_text gives the name back (the one ambiguity, a literal \\xNN in a valid name, is excluded by design)."""
    for name in _random_names(seed, 500):
        text = to_text(name)
        text.encode("utf-8")  # never raises
        try:
            name.encode("utf-8")
            valid = True
        except UnicodeEncodeError:
            valid = False
        if valid:
            assert text == name
            if "\\x" not in name:
                assert from_text(text) == name
        else:
            assert from_text(text) == name, (name, text)


@pytest.mark.parametrize("name", [b"caf\xe9.jpg", b"\xff\xfe.jpg", b"ok\xc3\xa9\xe9.jpg", b"\x80", b"a\\xe9\xe9"])
def test_csv_keeps_the_name_bytes_and_reads_them_back(tmp_path, name):
    source = os.fsdecode(b"/p/" + name)
    path = tmp_path / "f.csv"
    _write_csv(path, FAILURE_FIELDS, [{"source": source, "code": "image", "message": f"cannot read {source}"}])
    assert b"/p/" + name in path.read_bytes(), "the cell holds the name's own bytes"
    rows = read_csv_rows(path, FAILURE_FIELDS)
    assert rows[0]["source"] == source and rows[0]["message"] == f"cannot read {source}"
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        assert next(csv.DictReader(fh))["source"] == source


@posix_only
def test_a_folder_with_undecodable_names_geolocates_into_every_format_and_resumes(tmp_path, tiny_clip, cache_dir,
                                                                                   capsys):
    folder = tmp_path / "photos"
    names = [b"caf\xe9.jpg", b"\xff\xfe.jpg", b"ok.jpg", "été.jpg".encode()]
    for i, n in enumerate(names):
        make_photo(folder / os.fsdecode(n), seed=i)
    (folder / os.fsdecode(b"bad\xe9.jpg")).write_bytes(b"not a photo")  # a failure with an undecodable name
    outs = [tmp_path / "r.csv", tmp_path / "r.gpkg", tmp_path / "r.geojson"]
    common = ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir",
              str(cache_dir)]
    args = ["photos", str(folder), *[a for o in outs for a in ("-o", str(o))], *common]
    assert main(args) == 3, "the bad photo fails; the run does not"
    sources = {os.fsdecode(bytes(folder) + b"/" + n) for n in names}
    with open(outs[0], newline="", encoding="utf-8", errors="surrogateescape") as fh:
        assert {r["source"] for r in csv.DictReader(fh)} == sources
    failed = tmp_path / "r.failed.csv"
    assert b"bad\xe9.jpg" in failed.read_bytes()
    for out in outs[1:]:
        layer = "geoclip_predictions" if out.suffix == ".gpkg" else None
        got = set(pyogrio.raw.read(out, layer=layer, columns=["source"], read_geometry=False)[3][0])
        assert {from_text(s) for s in got} == sources, got
    capsys.readouterr()
    for out in outs:  # resume from each output alone (no journal): every photo is recognised as done
        journal = [p for p in tmp_path.iterdir() if p.name.endswith(".geoclip-run.jsonl")]
        for j in journal:
            j.unlink()
        rc = main(["photos", str(folder), "-o", str(out), "--resume", *common])
        assert rc in (0, 3)
        done = re.search(r"resume: (\d+) photo\(s\) already done", capsys.readouterr().err)
        assert done and int(done.group(1)) >= len(names), out  # every good photo (the failed one may be retried)


@posix_only
def test_a_name_that_is_not_utf8_prints_without_an_output_file(tmp_path, tiny_clip, cache_dir):
    import subprocess

    from conftest import ROOT

    photo = make_photo(tmp_path / os.fsdecode(b"caf\xe9.jpg"), seed=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"}
    proc = subprocess.run([sys.executable, "-m", "geoclip_qgis.core.service.cli", "photos", str(photo), "--clip-path",
                           tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir", str(cache_dir)],
                          capture_output=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.fsencode(str(photo)) in proc.stdout


# ---- the cache folder ---------------------------------------------------------------------------------------------
def _cache_cases(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    return {"a file": a_file, "below a file": a_file / "sub", "read-only": ro, "below read-only": ro / "sub"}


@pytest.mark.parametrize("case", ["a file", "below a file", "read-only", "below read-only"])
def test_place_names_with_an_unusable_cache_folder_warn_and_still_name(tmp_path, case, caplog, monkeypatch):
    from geoclip_qgis.core.answers import placenames

    pytest.importorskip("reverse_geocode")
    folder = _cache_cases(tmp_path)[case]
    monkeypatch.setattr(placenames, "_INDEX", None)
    if case.endswith("read-only") and os.geteuid() == 0:  # root writes anyway: make the write itself fail
        real_open = open

        def refuse(path, mode="r", *args, **kwargs):
            if "w" in mode and str(path).startswith(str(folder)):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, mode, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refuse)
    with caplog.at_level(logging.WARNING, logger="geoclip_qgis"):
        names = placenames.place_names(np.array([[48.8566, 2.3522]]), cache_dir=folder)
    assert names[0].country == "France"
    assert any("place-names cache" in r.getMessage() and str(folder.parent if "below" in case else folder)
               in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert not list(tmp_path.rglob("*.tmp*")), "no temporary file left behind"
    monkeypatch.setattr(placenames, "_INDEX", None)


@pytest.mark.parametrize("case", ["a file", "below a file"])
def test_the_cli_with_a_cache_folder_that_is_a_file_geolocates(tmp_path, case, tiny_clip, photos, capsys):
    folder = _cache_cases(tmp_path)[case]
    out = tmp_path / "r.csv"
    rc = main(["photos", photos[0], "-o", str(out), "--clip-path", tiny_clip, "--device", "cpu", "--gallery",
               "fibonacci:3000", "--cache-dir", str(folder)])
    err = capsys.readouterr().err
    assert rc == 0 and out.is_file(), err
    assert "Traceback" not in err
