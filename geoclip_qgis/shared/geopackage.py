"""THE GeoPackage policy, for the CLI, the worker, the Ray batch, the dock and Processing alike: a GeoPackage is the
user's database, and we touch only layers that carry our mark.

A layer is ours when its GDAL layer metadata holds the key LAYER_MARK (written by GDAL as
`<MDI key="GEOCLIP_QGIS">1</MDI>`, or by older GDAL as `<Item name=...>`, in gpkg_metadata, referenced with scope
'table'). Standard library only (sqlite3), so both wings read and write the mark the same way; before this module the
CLI checked it with pyogrio, Processing replaced `geoclip_*` tables without checking or marking, and the dock marked
through ogr, so a layer Processing wrote was refused by the CLI.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from contextlib import closing
from typing import Dict, Iterable, List, Optional, Set

from .schema import LAYER_MARK

GDAL_URI = "http://gdal.org"
RESERVED = re.compile(r"^(gpkg_|gpkgext_|rtree_|sqlite_)", re.IGNORECASE)
_MARK = re.compile(r"""(key|name)\s*=\s*["']""" + re.escape(LAYER_MARK) + r"""["']""")


class NotAGeoPackage(ValueError):
    """The file exists but is not a GeoPackage we can read (the caller refuses it as an output)."""


def _connect(path: str, write: bool = False) -> sqlite3.Connection:
    uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23") + ("" if write else "?mode=ro")
    try:
        con = sqlite3.connect(uri, uri=True, timeout=30)
        con.execute("SELECT count(*) FROM gpkg_contents").fetchone()
    except sqlite3.Error as exc:
        raise NotAGeoPackage(f"not a GeoPackage that can be read ({exc})") from None
    return con


def layer_names(path: str) -> List[str]:
    """The tables of a GeoPackage (features and attributes), [] for a file that does not exist yet."""
    if not os.path.exists(path):
        return []
    with closing(_connect(path)) as con:
        return [r[0] for r in con.execute("SELECT table_name FROM gpkg_contents ORDER BY table_name")]


def marked_layers(path: str) -> Set[str]:
    """The layers that carry our mark."""
    if not os.path.exists(path):
        return set()
    with closing(_connect(path)) as con:
        return _marked(con)


def layer_name_problem(name: str) -> Optional[str]:
    """Why `name` cannot be one of our layers, or None."""
    if not name or not name.strip():
        return "a layer name cannot be empty"
    if RESERVED.match(name):
        return f"{name!r} is a GeoPackage system table name"
    if len(name) > 255 or any(ord(c) < 32 for c in name):
        return f"{name!r} is not a valid layer name"
    return None


def refusals(path: str, layers: Iterable[str]) -> List[str]:
    """What stops us writing `layers` into `path`: a reserved or invalid name, a layer of our name that is not ours
    (the user's), a file that is not a GeoPackage. [] means every layer may be created or replaced."""
    wanted = list(layers)
    out = [p for p in (layer_name_problem(n) for n in wanted) if p]
    if not os.path.exists(path):
        return out
    try:
        names = {n.lower(): n for n in layer_names(path)}
        ours = {n.lower() for n in marked_layers(path)}
    except NotAGeoPackage as exc:
        return [str(exc)]
    for layer in wanted:
        if layer.lower() in names and layer.lower() not in ours:
            out.append(f"the GeoPackage already has a layer {names[layer.lower()]!r} that GeoCLIP did not write")
    return out


def is_ours(path: str, layer: str) -> bool:
    return layer.lower() in {n.lower() for n in marked_layers(path)}


_DDL = (
    "CREATE TABLE IF NOT EXISTS gpkg_metadata (id INTEGER CONSTRAINT m_pk PRIMARY KEY ASC NOT NULL, "
    "md_scope TEXT NOT NULL DEFAULT 'dataset', md_standard_uri TEXT NOT NULL, "
    "mime_type TEXT NOT NULL DEFAULT 'text/xml', metadata TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS gpkg_metadata_reference (reference_scope TEXT NOT NULL, table_name TEXT, "
    "column_name TEXT, row_id_value INTEGER, timestamp DATETIME NOT NULL DEFAULT "
    "(strftime('%Y-%m-%dT%H:%M:%fZ','now')), md_file_id INTEGER NOT NULL, md_parent_id INTEGER, "
    "CONSTRAINT crmr_mfi_fk FOREIGN KEY (md_file_id) REFERENCES gpkg_metadata(id), "
    "CONSTRAINT crmr_mpi_fk FOREIGN KEY (md_parent_id) REFERENCES gpkg_metadata(id))",
)
_EXT = "http://www.geopackage.org/spec120/#extension_metadata"


def mark(path: str, layer: str, extra: Optional[Dict[str, str]] = None) -> None:
    """Put our mark on `layer` (which must exist), in one transaction; a layer already marked is left as it is."""
    if is_ours(path, layer):
        return
    items = {LAYER_MARK: "1", **(extra or {})}
    body = "".join(f'    <MDI key="{_xml(k)}">{_xml(v)}</MDI>\n' for k, v in items.items())
    xml = f"<GDALMultiDomainMetadata>\n  <Metadata>\n{body}  </Metadata>\n</GDALMultiDomainMetadata>\n"
    with closing(_connect(path, write=True)) as con, con:
        if not con.execute("SELECT 1 FROM gpkg_contents WHERE lower(table_name) = lower(?)", (layer,)).fetchone():
            raise NotAGeoPackage(f"no layer {layer!r} to mark")
        for ddl in _DDL:
            con.execute(ddl)
        for table in ("gpkg_metadata", "gpkg_metadata_reference"):
            if not con.execute("SELECT 1 FROM gpkg_extensions WHERE table_name = ? AND extension_name = "
                               "'gpkg_metadata'", (table,)).fetchone():
                con.execute("INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, "
                            "scope) VALUES (?, NULL, 'gpkg_metadata', ?, 'read-write')", (table, _EXT))
        # GDAL keeps one metadata row per table: replace an unmarked one rather than add a second
        old = con.execute("SELECT md_file_id FROM gpkg_metadata_reference WHERE reference_scope = 'table' AND "
                          "lower(table_name) = lower(?)", (layer,)).fetchall()
        for (md_id,) in old:
            con.execute("DELETE FROM gpkg_metadata_reference WHERE md_file_id = ?", (md_id,))
            con.execute("DELETE FROM gpkg_metadata WHERE id = ?", (md_id,))
        cur = con.execute("INSERT INTO gpkg_metadata (md_scope, md_standard_uri, mime_type, metadata) "
                          "VALUES ('dataset', ?, 'text/xml', ?)", (GDAL_URI, xml))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        con.execute("INSERT INTO gpkg_metadata_reference (reference_scope, table_name, timestamp, md_file_id) "
                    "VALUES ('table', ?, ?, ?)", (layer, stamp, cur.lastrowid))


def _xml(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _drop_layer_sql(con: sqlite3.Connection, layer: str) -> None:
    """Remove one layer and everything GeoPackage keeps about it (inside the caller's transaction)."""
    geom = con.execute("SELECT column_name FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)",
                       (layer,)).fetchone()
    if geom is not None:
        rtree = f"rtree_{layer}_{geom[0]}"
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (rtree,)).fetchone():
            con.execute(f'DROP TABLE "{_q(rtree)}"')
    con.execute(f'DROP TABLE IF EXISTS "{_q(layer)}"')
    for table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "gpkg_data_columns",
                  "gpkg_ogr_contents"):
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            con.execute(f"DELETE FROM {table} WHERE lower(table_name) = lower(?)", (layer,))
    if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_metadata_reference'").fetchone():
        ids = [r[0] for r in con.execute("SELECT md_file_id FROM gpkg_metadata_reference WHERE "
                                         "lower(table_name) = lower(?)", (layer,))]
        con.execute("DELETE FROM gpkg_metadata_reference WHERE lower(table_name) = lower(?)", (layer,))
        for md_id in ids:
            if not con.execute("SELECT 1 FROM gpkg_metadata_reference WHERE md_file_id = ?", (md_id,)).fetchone():
                con.execute("DELETE FROM gpkg_metadata WHERE id = ?", (md_id,))


def _q(name: str) -> str:
    return name.replace('"', '""')


def replace_layer(path: str, staged: str, layer: str, on_step=None) -> None:
    """Put the layer `staged` (written beside it, without a spatial index) in the place of `layer`, in ONE SQLite
    transaction: a kill at any moment leaves the old layer or the new one, never neither. Refuses to replace a
    layer that is not ours. `on_step(name)` is called at named points (the kill tests use it)."""
    step = on_step or (lambda _name: None)
    con = _connect(path, write=True)
    try:
        con.isolation_level = None
        con.execute("BEGIN IMMEDIATE")
        names = {n.lower(): n for (n,) in con.execute("SELECT table_name FROM gpkg_contents")}
        if layer.lower() in names and layer.lower() not in {n.lower() for n in _marked(con)}:
            raise NotAGeoPackage(f"the GeoPackage already has a layer {names[layer.lower()]!r} that GeoCLIP did "
                                 "not write")
        if layer.lower() in names:
            _drop_layer_sql(con, names[layer.lower()])
        step("dropped")
        con.execute(f'ALTER TABLE "{_q(staged)}" RENAME TO "{_q(layer)}"')
        for table in ("gpkg_geometry_columns", "gpkg_extensions", "gpkg_data_columns", "gpkg_ogr_contents",
                      "gpkg_metadata_reference"):
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
                con.execute(f"UPDATE {table} SET table_name = ? WHERE table_name = ?", (layer, staged))
        con.execute("UPDATE gpkg_contents SET table_name = ?, identifier = ? WHERE table_name = ?",
                    (layer, layer, staged))
        step("renamed")
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def drop_layer(path: str, layer: str) -> None:
    """Remove a staged layer of ours that a failed write left behind."""
    with closing(_connect(path, write=True)) as con, con:
        _drop_layer_sql(con, layer)


def _marked(con: sqlite3.Connection) -> Set[str]:
    try:
        rows = con.execute("SELECT r.table_name, m.metadata FROM gpkg_metadata_reference r JOIN gpkg_metadata m "
                           "ON m.id = r.md_file_id WHERE r.reference_scope = 'table'").fetchall()
    except sqlite3.Error:
        return set()
    return {name for name, md in rows if name and md and _MARK.search(md)}
