"""A case report to hand on: ONE self-contained HTML file (every image a data: URI, no script, no internet), a case
summary page first, then one page per photo (printing puts each on its own page).

Per photo: the photo and what drove its answer (the saliency overlay, when the run made one), a world map and a
zoomed map of its likelihood and places (core/maps/report_map.py), the places table, the hints and constraints
used and the trip context (columns other parts of the engine add to the summary row: shown when present, nothing
when absent), EXIF (time, camera, GPS and its distance to the answer), the file's SHA-256; every page's footer
names the model, the weights' SHA-256, the software version and the date. Written atomically (core/io/files.py).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .files import atomic_output
from .plan import REPORT_MARK

PHOTO_SIDE = 640  # embedded photos and overlays: enough for a printed page, small enough for 100 photos
HINT_KEYS = ("hint", "hint_weight", "constraint")
TRIP_KEYS = ("taken_at", "trip_note")  # and every trip_* column
_CSS = """
body{font-family:Helvetica,Arial,sans-serif;font-size:12px;color:#222;margin:0 auto;max-width:980px;padding:12px}
h1{font-size:20px;margin:4px 0} h2{font-size:16px;margin:2px 0 6px;word-break:break-all}
section{border-top:2px solid #555;padding-top:8px;margin-top:18px}
section.page{page-break-before:always;break-before:page}
.row{display:-webkit-flex;display:flex;-webkit-flex-wrap:wrap;gap:10px;flex-wrap:wrap;align-items:flex-start}
.row figure{margin:0;display:inline-block;vertical-align:top} figcaption{font-size:11px;color:#555}
img.photo{max-width:470px;max-height:330px} img.map{width:470px}
table{border-collapse:collapse;margin:4px 0} td,th{border:1px solid #bbb;padding:2px 6px;text-align:left}
th{background:#eee} td.num{text-align:right;font-variant-numeric:tabular-nums}
.kv td:first-child{color:#555;white-space:nowrap} .mono{font-family:monospace;font-size:11px;word-break:break-all}
footer{font-size:10px;color:#666;margin-top:8px} .failed{color:#a00}
@media print{body{max-width:none} section{border:none}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def data_uri(image, side: int = PHOTO_SIDE, fmt: str = "JPEG") -> str:
    """A PIL image as a data: URI, its longest side at most `side` (JPEG for photos, PNG for maps)."""
    im = image.convert("RGB")
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 82} if fmt == "JPEG" else {"optimize": False}))
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def photo_exif(path: str) -> Dict[str, Optional[str]]:
    """The EXIF a report shows besides GPS (read by the engine, core/io/photos.py): capture time and camera."""
    from PIL import Image

    out: Dict[str, Optional[str]] = {"time": None, "camera": None}
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            sub = exif.get_ifd(0x8769)
            when = sub.get(0x9003) or exif.get(0x0132)
            offset = sub.get(0x9011)
            out["time"] = (f"{when} {offset}" if offset else str(when)).strip("\x00 ") if when else None
            camera = " ".join(str(exif.get(t) or "").strip("\x00 ") for t in (0x010F, 0x0110)).strip()
            out["camera"] = camera or None
    except Exception:  # a damaged EXIF block costs these two lines, never the report
        pass
    return out


def _open_upright(path: str, side: int):
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.draft("RGB", (side, side))
        return ImageOps.exif_transpose(im).convert("RGB")


def _kv(rows: Sequence[tuple]) -> str:
    body = "".join(f"<tr><td>{_e(k)}</td><td{' class=mono' if m else ''}>{v}</td></tr>" for k, v, m in rows)
    return f"<table class=kv>{body}</table>"


def _num(value: Optional[float], fmt: str) -> str:
    return "" if value is None else format(float(value), fmt)


def _pct(p: Optional[float]) -> str:
    return "" if p is None else f"{100 * float(p):.1f} %"


class CaseReport:
    """Collects a run's results (QueryResult + its summary row), then writes the HTML in one go."""

    def __init__(self, engine, options: Dict[str, Any], title: str = "GeoCLIP case report"):
        self.engine = engine
        self.options = options
        self.title = title
        self.items: List[tuple] = []
        self.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)

    def add(self, result, row: Dict[str, Any]) -> None:
        self.items.append((result, row))

    # ---- the pieces ---------------------------------------------------------------------------------------
    def footer(self) -> str:
        info = self.engine.info()
        digests = info.get("weights_sha256") or {}
        model = f"CLIP {info.get('clip_path') or 'ViT-L/14'} + GeoCLIP weights, {info['precision']['precision']}"
        return (f"<footer>GeoCLIP for QGIS {_e(info.get('version'))} · {_e(model)} · weights SHA-256: "
                + "; ".join(f"{_e(k)} <span class=mono>{_e(v)}</span>" for k, v in digests.items())
                + f" · report made {_e(self.created.isoformat())}</footer>")

    def _maps(self, result, row) -> str:
        from ..maps import report_map

        best = result.places[0] if result.places else None
        gps = result.gps
        world = report_map.draw_answer(self._world, report_map.WORLD, result.support, result.places, gps)
        figs = [f"<figure><img class=map src='{data_uri(world, 720, 'PNG')}' alt='world map'>"
                "<figcaption>The world: the 90 % most likely gallery points (yellow to dark red: more likely), "
                "the places (numbered rings), the EXIF position (blue cross).</figcaption></figure>"]
        if best is not None:
            ext = report_map.zoom_extent(best["lat"], best["lon"], result.support, gps)
            base = report_map.basemap(self.engine.gallery().coords, ext, (720, 360))
            zoom = report_map.draw_answer(base, ext, result.support, result.places, gps)
            figs.append(f"<figure><img class=map src='{data_uri(zoom, 720, 'PNG')}' alt='zoomed map'>"
                        f"<figcaption>Around the top place: {ext[0]:.1f}° to {ext[2]:.1f}° E, {ext[1]:.1f}° to "
                        f"{ext[3]:.1f}° N.</figcaption></figure>")
        return f"<div class=row>{''.join(figs)}</div>"

    def _places(self, result) -> str:
        head = "<tr><th>#</th><th>place</th><th>probability</th><th>lat</th><th>lon</th><th>gallery points</th>" \
               "<th>spread km</th></tr>"
        body = "".join(
            f"<tr><td class=num>{pl['rank']}</td><td>{_e(pl.get('label') or '')}</td>"
            f"<td class=num>{_pct(pl['probability'])}</td><td class=num>{pl['lat']:.4f}</td>"
            f"<td class=num>{pl['lon']:.4f}</td><td class=num>{pl.get('n_points', '')}</td>"
            f"<td class=num>{_num(pl.get('spread_km'), '.0f')}</td></tr>"
            for pl in result.places)
        tail = f"<tr><td></td><td>elsewhere</td><td class=num>{_pct(result.remaining)}</td><td colspan=4></td></tr>" \
            if result.remaining is not None else ""
        return f"<table>{head}{body}{tail}</table>"

    def _context(self, result, row) -> str:
        rows = []
        hints = [(k, _e(row[k]), False) for k in HINT_KEYS if row.get(k) not in (None, "")]
        if self.options.get("aoi"):
            hints.append(("area of interest", _e(self.options["aoi"]), False))
        if result.aoi_outside is not None:
            hints.append(("mass outside the area", _e(_pct(result.aoi_outside)), False))
        trip = [(k, _e(v), False) for k, v in row.items()
                if (k.startswith("trip_") or k in TRIP_KEYS) and v not in (None, "")]
        exif = photo_exif(result.source)
        when = row.get("taken_at") or exif["time"]
        rows += [("EXIF time", _e(when or "none"), False), ("camera", _e(exif["camera"] or "none"), False)]
        if result.gps:
            rows.append(("EXIF GPS", f"{result.gps[0]:.5f}, {result.gps[1]:.5f}", False))
            if row.get("error_km") is not None:
                rows.append(("distance to the answer", f"{row['error_km']:,.1f} km", False))
        else:
            rows.append(("EXIF GPS", _e(result.exif_problem or "none"), False))
        if result.region:
            rows.append(("90 % region", _e(result.region.get("summary")), False))
        rows += [("file", _e(result.source), True), ("SHA-256", _e(result.sha256 or "not read"), True)]
        out = "<h3>The photo</h3>" + _kv(rows)
        out += "<h3>Hints and constraints</h3>" + (_kv(hints) if hints else "<p>None: the pixels alone.</p>")
        if trip:
            out += "<h3>Trip</h3>" + _kv(trip)
        return out

    def photo_page(self, n: int, result, row) -> str:
        figs = []
        try:
            figs.append(f"<figure><img class=photo src='{data_uri(_open_upright(result.source, PHOTO_SIDE))}' "
                        "alt='photo'><figcaption>The photo</figcaption></figure>")
        except Exception as exc:
            figs.append(f"<p class=failed>The photo cannot be shown ({_e(type(exc).__name__)}).</p>")
        if result.saliency and os.path.isfile(result.saliency):
            from PIL import Image

            with Image.open(result.saliency) as ov:
                figs.append(f"<figure><img class=photo src='{data_uri(ov)}' alt='what drove the answer'>"
                            "<figcaption>What drove the answer (gradient × input to the top place; the sides the "
                            "model does not see are dimmed)</figcaption></figure>")
        best = result.places[0] if result.places else None
        answer = f"{_e(best.get('label'))} — {_pct(best['probability'])}" if best else "no place"
        return (f"<section class=page><h2>{n}. {_e(Path(result.source).name)}</h2><p><b>Answer:</b> {answer}</p>"
                f"<div class=row>{''.join(figs)}</div>{self._maps(result, row)}<h3>Places</h3>"
                f"{self._places(result)}{self._context(result, row)}{self.footer()}</section>")

    def summary_page(self) -> str:
        from ..maps import report_map

        info = self.engine.info()
        ok = [(r, row) for r, row in self.items if r.ok]
        bad = [(r, row) for r, row in self.items if not r.ok]
        case = self._world
        for r, _row in ok:
            if r.places:
                case = report_map.draw_answer(case, report_map.WORLD, highlight=(r.places[0]["lat"],
                                                                                r.places[0]["lon"]))
        table = "".join(
            f"<tr><td class=num>{i}</td><td>{_e(Path(r.source).name)}</td>"
            f"<td>{_e(r.places[0].get('label') if r.places else '')}</td>"
            f"<td class=num>{_pct(r.places[0]['probability']) if r.places else ''}</td>"
            f"<td class=num>{_num(row.get('error_km'), ',.0f')}</td></tr>"
            for i, (r, row) in enumerate(ok, 1))
        failed = "".join(f"<li class=failed>{_e(Path(r.source).name)}: {_e((r.error or {}).get('message'))}</li>"
                         for r, _row in bad)
        facts = [("made", _e(self.created.isoformat()), False),
                 ("photos", f"{len(ok)} answered, {len(bad)} could not be read", False),
                 ("software", f"GeoCLIP for QGIS {_e(info.get('version'))}", False),
                 ("model", _e(f"CLIP {info.get('clip_path') or 'ViT-L/14'}, precision "
                              f"{info['precision']['precision']}, device {info['device']['device']}"), False),
                 ("gallery", _e(f"{info['gallery']['name']} ({info['gallery']['size']:,} points)"
                                if info.get("gallery") else ""), False)]
        facts += [(f"weights {k}", _e(v), True) for k, v in (info.get("weights_sha256") or {}).items()]
        facts += [(k, _e(v), False) for k, v in self.options.items() if v not in (None, "")]
        return (f"<section><h1>{_e(self.title)}</h1>{_kv(facts)}<div class=row><figure><img class=map "
                f"src='{data_uri(case, 720, 'PNG')}' alt='case map'><figcaption>Every photo's top place"
                "</figcaption></figure></div><h3>Photos</h3><table><tr><th>#</th><th>photo</th><th>top place</th>"
                f"<th>probability</th><th>EXIF distance km</th></tr>{table}</table>"
                + (f"<h3>Not answered</h3><ul>{failed}</ul>" if failed else "") + f"{self.footer()}</section>")

    # ---- the file -------------------------------------------------------------------------------------------
    def html(self) -> str:
        from ..maps import report_map

        self._world = report_map.basemap(self.engine.gallery().coords)
        pages = [self.summary_page()]
        pages += [self.photo_page(i, r, row) for i, (r, row) in enumerate((x for x in self.items if x[0].ok), 1)]
        return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>{REPORT_MARK}<title>{_e(self.title)}"
                f"</title><style>{_CSS}</style></head><body>{''.join(pages)}</body></html>\n")

    def write(self, path: os.PathLike | str) -> Path:
        """The whole file under a temporary name, then renamed (core/io/files.py atomic_output)."""
        text = self.html()
        with atomic_output(path, "report") as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        return Path(path)
