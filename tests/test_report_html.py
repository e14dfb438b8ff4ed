"""The CLI's case report (core/io/report_html.py): one self-contained HTML file, a summary page and one page per
photo with its maps, places, EXIF (time, camera, GPS and the distance), SHA-256, model, weights' SHA-256 and
version; hint and trip columns shown when a row has them and not otherwise; declared and refused by the I/O plan."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from conftest import make_photo
from PIL import Image

from geoclip_qgis import __version__
from geoclip_qgis.core.io.plan import REPORT_MARK
from geoclip_qgis.core.service.cli import main
from geoclip_qgis.shared.weights_release import DATA_FILES


def _exif(lat: float, lon: float) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Fujifilm", "X-T3"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:20:30"
    exif.get_ifd(0x8825).update({1: "N", 2: (abs(lat), 0.0, 0.0), 3: "E", 4: (abs(lon), 0.0, 0.0)})
    return exif


@pytest.fixture(scope="module")
def case(tmp_path_factory, tiny_clip, cache_dir):
    folder = tmp_path_factory.mktemp("case")
    a = make_photo(folder / "photos" / "street.jpg", seed=3, size=(400, 300), exif=_exif(45.0, 7.0))
    b = make_photo(folder / "photos" / "beach.jpg", seed=4, size=(300, 400))
    (folder / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    out = folder / "case.html"
    rc = main(["photos", str(folder / "photos"), "--clip-path", tiny_clip, "--device", "cpu", "--gallery",
               "fibonacci:2000", "--cache-dir", str(cache_dir), "--top-k", "3", "--saliency", str(folder / "why"),
               "--report", str(out), "-o", str(folder / "out.csv"), "--table", "summary"])
    assert rc == 3  # one photo failed: said, and the report still written
    return folder, out.read_text(encoding="utf-8"), (a, b)


def test_one_self_contained_file_with_a_page_per_photo(case):
    folder, text, (a, b) = case
    assert text.startswith("<!DOCTYPE html>") and REPORT_MARK in text[:4096]
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|file:|/)""", text), "nothing outside the file"
    assert len(re.findall(r"<section class=page>", text)) == 2  # the two answered photos, after the summary
    assert text.index("<h1>") < text.index("<section class=page>")
    images = re.findall(r"src='data:image/(png|jpeg);base64,", text)
    assert len(images) == 1 + 2 * 4  # case map; per photo: photo, overlay, world map, zoomed map
    for photo in (a, b):
        assert hashlib.sha256(Path(photo).read_bytes()).hexdigest() in text
    assert "broken.jpg" in text and "Not answered" in text
    assert __version__ in text
    for _rel, sha in DATA_FILES.values():
        assert sha in text  # the weights' SHA-256, file by file
    assert not list(folder.glob(".*.tmp*")) and not list(folder.glob("*.tmp"))


def test_exif_time_camera_gps_and_the_distance(case):
    _folder, text, (a, _b) = case
    page = text[text.index(f"{Path(a).name}</h2>"):]
    page = page[:page.index("</section>")]
    assert "2024:05:01 10:20:30" in page and "Fujifilm X-T3" in page
    assert "45.00000, 7.00000" in page and re.search(r"distance to the answer</td><td>[\d,]+\.\d km", page)
    assert "None: the pixels alone." in page and "Trip" not in page  # no hint, no trip columns: nothing shown


def test_hint_and_trip_columns_are_shown_when_a_row_has_them(engine, photos):
    from geoclip_qgis.core.io.report_html import CaseReport
    from geoclip_qgis.core.io.results import summary_row

    res = engine.predict_images([photos[0]], top_k=2)[0]
    row = dict(summary_row(res), hint="signs in Cyrillic", hint_weight=0.5, constraint="country: Chile",
               trip_probability=0.8, taken_at="2024-05-01T10:20:30+02:00")
    report = CaseReport(engine, {"top-k": 2})
    report.add(res, row)
    text = report.html()
    for shown in ("signs in Cyrillic", "country: Chile", "trip_probability", "2024-05-01T10:20:30+02:00"):
        assert shown in text


def test_the_plan_refuses_bad_report_names(tmp_path, tiny_clip, photos, capsys):
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html>the analyst's own notes</html>")
    for name, said in ((tmp_path / "case.pdf", "name it .html"), (foreign, "GeoCLIP did not write it"),
                       (Path(photos[0]), "case report")):
        rc = main(["photos", photos[0], "--clip-path", tiny_clip, "--device", "cpu", "--report", str(name)])
        assert rc == 2 and said in capsys.readouterr().err, name
    assert foreign.read_text() == "<html>the analyst's own notes</html>"
