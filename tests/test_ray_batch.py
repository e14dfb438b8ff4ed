"""The Ray Data batch on a local 2-CPU cluster with the tiny CLIP: the CLI's rows, resume, a killed actor.

Skipped as a whole when Ray is not installed: it is an optional extra (pip install 'geoclip-qgis[ray]')."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'geoclip-qgis[ray]'); not installed")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")

from geoclip_qgis.core.io.journal import journal_path  # noqa: E402
from geoclip_qgis.core.service import cli  # noqa: E402
from geoclip_qgis.core.service.ray_batch import Predictor, read_table, run_batch  # noqa: E402


class CrashOnce(Predictor):
    """An actor that dies (os._exit, as an OOM kill or a decoder crash would) on the first task holding a photo
    named 'crash'; Ray must restart it and retry the task."""

    def __call__(self, batch):
        marker = Path(self.out).parent / "crashed-once"
        if any("crash" in Path(str(p)).name for p in batch["path"]) and not marker.exists():
            marker.touch()
            os._exit(1)
        return super().__call__(batch)


@pytest.fixture(scope="module")
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_clip, small_gallery, cache_dir, photos):
    from conftest import make_photo

    folder = tmp_path_factory.mktemp("ray")
    gallery = folder / "gallery.csv"
    gallery.write_text("LAT,LON\n" + "\n".join(f"{a!r},{b!r}" for a, b in small_gallery.tolist()) + "\n")
    extra = [str(make_photo(folder / f"more_{i}.jpg", seed=10 + i)) for i in range(2)]
    bad = folder / "broken.jpg"
    bad.write_text("not a photo")
    opts = ["--clip-path", tiny_clip, "--gallery", str(gallery), "--cache-dir", str(cache_dir), "--device", "cpu",
            "--top-k", "3"]
    return {"folder": folder, "photos": [*photos, *extra, str(bad)], "opts": opts}


def _engine_options(setup) -> dict:
    return cli._engine_options(cli.build_parser().parse_args(["photos", *setup["opts"]]))


def _cli_tables(setup, tmp_path) -> dict:
    """What the single-machine CLI records for the same photos (its run journal: the rows its outputs hold)."""
    out = tmp_path / "cli.csv"
    assert cli.main(["photos", *setup["photos"], "-o", str(out), *setup["opts"]]) == 3  # one photo fails
    tables = {"predictions": [], "places": [], "summary": [], "failed": []}
    for line in journal_path(out).read_text().splitlines()[1:]:
        entry = json.loads(line)
        tables["predictions" if entry["t"] == "rows" else "failed"] += entry["rows"]
        tables["places"] += entry.get("places", [])
        tables["summary"] += entry.get("summary", [])
    return tables


def _same(a: list, b: list, columns: list) -> None:
    def key(row: dict) -> tuple:
        return row["source"], row.get("rank") or 0

    a, b = sorted(a, key=key), sorted(b, key=key)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for c in columns:
            u, v = x.get(c), y.get(c)
            if isinstance(u, float) or isinstance(v, float):
                assert u is not None and v is not None and math.isclose(u, v, rel_tol=1e-5, abs_tol=1e-6), (c, u, v)
            else:
                assert u == v, (c, u, v)


def test_ray_batch_matches_the_cli(cluster, setup, tmp_path):
    from geoclip_qgis.core.service.ray_batch import TABLES

    out = tmp_path / "dataset"
    rc = cli.main(["photos", *setup["photos"], "--ray=local", "-o", str(out), *setup["opts"]])
    assert rc == 3
    expected = _cli_tables(setup, tmp_path)
    for table, (fields, geometry) in TABLES.items():
        got = read_table(str(out), table)
        assert got.column_names == [n for n, _ in fields] + (["geometry"] if geometry else [])
        if geometry:
            assert json.loads(got.schema.metadata[b"geo"])["primary_column"] == "geometry"
        _same(got.drop_columns(["geometry"] if geometry else []).to_pylist(), expected[table],
              [n for n, _ in fields])
    assert len(read_table(str(out), "summary")) == len(setup["photos"])


def test_resume_skips_done_photos_and_drops_unfinished_tasks(cluster, setup, tmp_path):
    out = str(tmp_path / "dataset")
    opts = _engine_options(setup)
    first = run_batch(setup["photos"][:2], out, opts, top_k=3, task_photos=2, progress=False)
    assert (first["ok"], first["failed"], first["skipped"]) == (2, 0, 0)
    orphan = tmp_path / "dataset" / "predictions" / "part-0123456789abcdef0123.parquet"  # ours, its task unfinished
    orphan.write_bytes(b"cut off")
    mine = tmp_path / "dataset" / "predictions" / "mine.parquet"  # the user's own file: never deleted
    mine.write_bytes(b"the user's")
    with pytest.raises(Exception, match="already holds results"):
        run_batch(setup["photos"], out, opts, top_k=3, progress=False)
    # the rows' meaning must not change under --resume: another hint, top-k or area is refused, named
    with pytest.raises(Exception, match=r"made with other options \(hint, hint_weight\)"):
        run_batch(setup["photos"], out, {**opts, "hint": "a harbour"}, top_k=3, resume=True, progress=False)
    with pytest.raises(Exception, match=r"made with other options \(top_k\)"):
        run_batch(setup["photos"], out, opts, top_k=4, resume=True, progress=False)
    second = run_batch(setup["photos"], out, opts, top_k=3, task_photos=2, resume=True, progress=False)
    assert (second["skipped"], second["ok"] + second["failed"]) == (2, len(setup["photos"]) - 2)
    assert not orphan.exists() and mine.read_bytes() == b"the user's"
    summary = read_table(out, "summary").column("source").to_pylist()
    assert sorted(summary) == sorted(str(Path(p)) for p in setup["photos"])  # each photo once
    assert len(read_table(out, "predictions")) == 3 * (len(setup["photos"]) - 1)


def test_a_killed_actor_is_restarted_and_its_task_retried(cluster, setup, tmp_path):
    from conftest import make_photo

    crash = str(make_photo(tmp_path / "crash.jpg", seed=42))
    photos = [*setup["photos"][:3], crash, setup["photos"][3]]
    out = str(tmp_path / "dataset")
    report = run_batch(photos, out, _engine_options(setup), top_k=3, task_photos=2, actors=1, predictor=CrashOnce,
                       progress=False)
    assert (tmp_path / "crashed-once").exists()
    assert (report["ok"], report["failed"]) == (5, 0)
    assert sorted(read_table(out, "summary").column("source").to_pylist()) == sorted(photos)


class NoBackboneHere(Predictor):
    """An actor on a worker node without the CLIP folder: the driver's own checks passed."""

    def __init__(self, out, engine_options, top_k):
        from geoclip_qgis.core.errors import BackboneError

        raise BackboneError("CLIP folder does not exist", "/models/clip-vit-large-patch14", "copy it to every node")


def test_bad_inputs_are_refused_before_ray_runs_or_the_output_is_touched(cluster, setup, tmp_path, capsys):
    """A missing CLIP folder is named (no traceback) before any actor starts, and an output folder holding an
    earlier run's unfinished task files keeps them; an actor that cannot start gives the engine's message."""
    out = tmp_path / "dataset"
    (out / "predictions").mkdir(parents=True)
    keep = out / "predictions" / "part-earlier.parquet"
    keep.write_bytes(b"an earlier run's task, not finished")
    opts = [o if o != setup["opts"][1] else str(tmp_path / "no-clip") for o in setup["opts"]]
    rc = cli.main(["photos", *setup["photos"][:2], "--ray=local", "-o", str(out), *opts])
    err = capsys.readouterr().err
    assert rc == 2 and "no-clip" in err and "CLIP folder does not exist" in err and "Traceback" not in err, err
    assert keep.read_bytes() == b"an earlier run's task, not finished"
    with pytest.raises(Exception) as caught:
        run_batch(setup["photos"][:2], str(tmp_path / "other"), _engine_options(setup), top_k=3,
                  predictor=NoBackboneHere, progress=False)
    assert type(caught.value).__name__ == "BackboneError", repr(caught.value)
    assert "copy it to every node" in str(caught.value)
