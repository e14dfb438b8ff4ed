"""One press of Run: its layers, rows and failures, the names it gets, and where its results are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from qgis.core import QgsLayerTreeGroup, QgsProject, QgsVectorFileWriter, QgsVectorLayer

from ...shared import geopackage
from .. import settings_dialog as settings
from ..settings_dialog import plural, tr

STORE_GPKG, STORE_MEMORY = "gpkg", "memory"


def error_text(error: Dict[str, Any]) -> str:
    """What the status line says about a failed job: the message, then its fix once (client/messages.py has made
    both fit for QGIS); a missing engine or torch points at the manager."""
    message = str(error.get("message") or tr("failed"))
    hint = str(error.get("hint") or "")
    blob = (message + " " + hint).lower()
    if error.get("code") == "not_installed" or "no module named 'torch'" in blob or "no module named torch" in blob:
        return tr("The engine is not installed — open Plugins › GeoCLIP › Engine and models… and click Install "
                  "engine.")
    if hint and hint.strip() not in message:
        return f"{message}\n{hint.strip()}"
    return message


def results_store() -> str:
    value = settings.get("results_store")
    return value if value in (STORE_GPKG, STORE_MEMORY) else STORE_GPKG


def results_gpkg() -> str:
    """Where kept results go: next to the project when it is saved, else in the cache folder."""
    home = QgsProject.instance().absolutePath()
    if home:
        return str(Path(home) / "geoclip_results.gpkg")
    folder = Path(settings.engine_options()["cache_dir"]) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "geoclip_results.gpkg")


def saliency_folder() -> str:
    """Where a run's 'why' overlays go: beside the kept results (the GeoPackage's folder), one PNG per photo."""
    return str(Path(results_gpkg()).parent / "geoclip_why")


def unique_layer_name(name: str, own=None) -> str:
    """`name`, or `name (2)`, (3)… when a layer or group has it already (`own`: the run's group, not counted)."""
    root = QgsProject.instance().layerTreeRoot()
    groups = [g for g in root.findGroups(True) if g is not own]
    skip = {n.layerId() for n in own.findLayers()} if own is not None else set()
    taken = {lyr.name().rsplit(" · ", 1)[0] if lyr.id() not in skip else ""
             for lyr in QgsProject.instance().mapLayers().values()}
    taken |= {lyr.name() for lyr in QgsProject.instance().mapLayers().values() if lyr.id() not in skip}
    taken |= {g.name() for g in groups}
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


class Run:
    """One press of Run: its layers (made when their first row exists), rows, failures and its layer-tree group."""

    def __init__(self, kind: str, n_inputs: int, text: str = ""):
        self.kind, self.n_inputs, self.text = kind, n_inputs, text
        self.rows: List[Dict[str, Any]] = []
        self.failures: List[Dict[str, str]] = []
        self.layers: Dict[str, QgsVectorLayer] = {}
        self.group: Optional[QgsLayerTreeGroup] = None
        self.pending_summary: List[Dict[str, Any]] = []
        self.paths: List[str] = []  # the request's photos: a trip's answer names them by position

    def title(self, final: bool = False) -> str:
        if self.kind == "text":
            return tr("GeoCLIP · “{}”").format(self.text if len(self.text) <= 40 else self.text[:39] + "…")
        ok = len(self.rows)
        n = self.n_inputs
        if final and ok != n:
            return plural(n, "GeoCLIP · {} of {} photo", "GeoCLIP · {} of {} photos").format(ok, n)
        if final:
            return plural(ok, "GeoCLIP · {} photo", "GeoCLIP · {} photos").format(ok)
        return plural(n, "GeoCLIP · {} photo (running)", "GeoCLIP · {} photos (running)").format(n)


def keep_in_geopackage(run: Run, title: str,
                       relink: Callable[[QgsVectorLayer, QgsVectorLayer], None]) -> str:
    """Write each memory layer of the run to the results GeoPackage under a new layer name (never one that is
    there: a user's layer is never replaced) and swap it in, same place in the tree, same style."""
    import re

    path = results_gpkg()
    existing = set(geopackage.layer_names(path))  # the one GeoPackage reader (shared/geopackage.py)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    for key, layer in list(run.layers.items()):
        if layer.providerType() != "memory":
            continue
        base = re.sub(r"[^A-Za-z0-9_]+", "_", f"geoclip_{stamp}_{key}").strip("_")
        name, n = base, 2
        while name in existing:
            name, n = f"{base}_{n}", n + 1
        opts = QgsVectorFileWriter.SaveVectorOptions()
        opts.driverName = "GPKG"
        opts.layerName = name
        opts.fileEncoding = "UTF-8"
        opts.actionOnExistingFile = (QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
                                     if os.path.exists(path) else
                                     QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteFile)
        write = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None) or \
            QgsVectorFileWriter.writeAsVectorFormatV2  # V3 from QGIS 3.20
        res = write(layer, path, QgsProject.instance().transformContext(), opts)
        if res[0] != QgsVectorFileWriter.WriterError.NoError:
            raise OSError(res[1] or "GeoPackage write failed")
        existing.add(name)
        geopackage.mark(path, name)  # the one GeoPackage policy (shared/geopackage.py)
        kept = QgsVectorLayer(f"{path}|layername={name}", layer.name(), "ogr")
        if not kept.isValid():
            raise OSError(tr("cannot read back {}").format(name))
        kept.setRenderer(layer.renderer().clone())
        kept.setMapTipTemplate(layer.mapTipTemplate())
        kept.setCustomProperty("geoclip/kind", key)
        node = run.group.findLayer(layer.id())
        index = run.group.children().index(node) if node is not None else 0
        visible = node.itemVisibilityChecked() if node is not None else True
        QgsProject.instance().addMapLayer(kept, False)
        new_node = run.group.insertLayer(index, kept)
        new_node.setItemVisibilityChecked(visible)
        relink(layer, kept)
        run.layers[key] = kept  # first: the dock drops the table rows of a layer removed while it is the run's
        QgsProject.instance().removeMapLayer(layer.id())
    return path
