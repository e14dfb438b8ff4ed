"""Build the engine's offline country and first-level region boundaries (core/answers/data/boundaries.geojson).

Source: the Natural Earth 1:10m admin-0 countries and admin-1 states/provinces (v4.1.0, public domain) as QGIS
ships them generalised in resources/data/world_map.gpkg (every QGIS 3.x install has it). The ISO codes are
joined at build time with pycountry (ISO 3166-1 alpha-2/alpha-3 and 3166-2, names and official names), so the
engine needs neither QGIS nor pycountry at run time: only shapely, which it already has.

    python scripts/build_boundaries.py [--gpkg /usr/share/qgis/resources/data/world_map.gpkg] [--tolerance 0.01]
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "geoclip_qgis" / "core" / "answers" / "data" / "boundaries.geojson"  # text: no binary


def norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


def geometry(wkb: bytes, tolerance: float):
    import shapely

    g = shapely.from_wkb(wkb)
    g = shapely.make_valid(g.simplify(tolerance, preserve_topology=True))
    g = shapely.set_precision(g, 0.001)
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.geometry.mapping(shapely.union_all(parts)) if parts else None


def main(argv=None) -> int:
    import pycountry
    from pyogrio.raw import read

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpkg", default="/usr/share/qgis/resources/data/world_map.gpkg")
    ap.add_argument("--tolerance", type=float, default=0.01, help="simplification in degrees (0.01: ~1 km)")
    args = ap.parse_args(argv)
    feats = []
    by_a2 = {}
    _, _, wkb, cols = read(args.gpkg, layer="countries", columns=["iso_a2", "NAME", "ISO_A3"])
    for a2, name, a3, w in zip(cols[0], cols[1], cols[2], wkb):
        c = (pycountry.countries.get(alpha_2=a2) if a2 and a2 != "-99" else None) or \
            (pycountry.countries.get(alpha_3=a3) if a3 and a3 != "-99" else None)
        if c is None:
            try:
                c = pycountry.countries.lookup(name)
            except LookupError:
                c = None
        geom = geometry(w, args.tolerance)
        if geom is None:
            continue
        aliases = sorted({n for n in (name, c and c.name, c and getattr(c, "official_name", None),
                                      c and getattr(c, "common_name", None)) if n} - {c.name if c else name})
        feats.append({"type": "Feature", "geometry": geom, "properties": {
            "kind": "country", "name": c.name if c else name, "iso2": c.alpha_2 if c else None,
            "iso3": c.alpha_3 if c else None, "aliases": aliases}})
        if c:
            by_a2[c.alpha_2] = c.name
    _, _, wkb, cols = read(args.gpkg, layer="states_provinces", columns=["iso_a2", "name", "woe_name", "gn_name",
                                                                          "admin"])
    matched = 0
    subs = {}
    for s in pycountry.subdivisions:
        subs.setdefault(s.country_code, []).append(s)
    for a2, name, woe, gn, admin, w in zip(*cols, wkb):
        names = [n for n in (name, woe, gn) if n]
        keys = {norm(n) for n in names}
        code = None
        for s in subs.get(a2, []):
            if norm(s.name) in keys or any(norm(s.name) in k or k in norm(s.name) for k in keys if len(k) > 4):
                code = s.code
                break
        matched += code is not None
        geom = geometry(w, args.tolerance)
        if geom is None or not name:
            continue
        feats.append({"type": "Feature", "geometry": geom, "properties": {
            "kind": "region", "name": name, "code": code, "country": by_a2.get(a2, admin), "iso2": a2,
            "aliases": sorted(set(names) - {name})}})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    data = {"type": "FeatureCollection", "source": "Natural Earth 1:10m admin-0 and admin-1 v4.1.0 (public domain), "
            f"generalised by QGIS (world_map.gpkg), simplified {args.tolerance} deg; ISO codes joined with pycountry "
            f"{getattr(pycountry, '__version__', '')}", "features": feats}
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    OUT.write_bytes(raw)
    n_c = sum(f["properties"]["kind"] == "country" for f in feats)
    print(f"{OUT}: {n_c} countries, {len(feats) - n_c} regions ({matched} with an ISO 3166-2 code), "
          f"{OUT.stat().st_size / 1e6:.2f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
