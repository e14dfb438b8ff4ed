#!/usr/bin/env python3
"""Real-window check: start the QGIS desktop under Xvfb with the plugin installed from the release zip, run a
geolocation from the dock, and save a screenshot of the window with the result layer on the map.

    python scripts/screenshot_qgis.py --out out/screenshot.png --clip-path FOLDER [--query "snowy alpine village"]

Writes the PNG and a JSON status next to it (layer added? how many features and table rows?). Needs the Debian
packages qgis, xvfb and imagemagick (scripts/setup_env.sh installs them) and the engine's Python (this one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

STARTUP = r'''
import json, os, time
from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject,
                       QgsRasterLayer, QgsRectangle, QgsVectorLayer)
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

OUT, STATUS, QUERY = os.environ["GEOCLIP_SHOT"], os.environ["GEOCLIP_SHOT_STATUS"], os.environ["GEOCLIP_SHOT_QUERY"]
SCENARIO = os.environ.get("GEOCLIP_SHOT_SCENARIO", "text")
LIMIT = float(os.environ.get("GEOCLIP_SHOT_LIMIT", "240"))
state = {"started": time.time(), "scenario": SCENARIO}
LOG, BAR = [], []  # QGIS's log messages and message bar entries of the run (issue 24: what reaches the user)

def _logged(message, tag, level):
    LOG.append([tag, int(level), message[:300]])

def _bar_added(item):
    try:
        BAR.append(f"{item.title()}: {item.text()}")
    except Exception:
        pass

QgsApplication.messageLog().messageReceived.connect(_logged)
iface.messageBar().widgetAdded.connect(_bar_added)

def when_drawn(fn, since=None):
    """Call `fn` once the map canvas has finished drawing (a loaded machine renders a world raster slowly; a grab
    before that shows no raster, and its warnings come later), 60 s at most."""
    since = since or time.time()
    if iface.mapCanvas().isDrawing() and time.time() - since < 60:
        QTimer.singleShot(250, lambda: when_drawn(fn, since)); return
    QTimer.singleShot(1000, fn)

def warnings_seen():
    """Warnings and criticals logged (any tab) and every message bar entry, for the status file."""
    shown = []
    for item in iface.messageBar().items():
        try:
            shown.append(f"{item.title()}: {item.text()}")
        except Exception:
            pass
    return {"log_warnings": [m for m in LOG if m[1] >= 1], "bar": list(BAR), "bar_now": shown}

def guarded(fn):
    """A scenario step's error goes to the status file and ends QGIS (QGIS's own Python error dialog would wait for
    a click that never comes)."""
    import functools, traceback
    @functools.wraps(fn)
    def step(*a, **k):
        try:
            return fn(*a, **k)
        except Exception:
            write(error=traceback.format_exc()[-2000:])
            QgsApplication.exit(4)
    return step

def write(**kw):
    state.update(kw)
    with open(STATUS, "w") as f:
        json.dump({k: v for k, v in state.items() if not k.startswith("_")}, f)

def rasters():
    return [l for l in QgsProject.instance().mapLayers().values() if isinstance(l, QgsRasterLayer)]

def geoclip_layers():
    return [l for l in QgsProject.instance().mapLayers().values() if l.name().startswith("GeoCLIP")]

def tree():
    out = []
    def walk(node, depth):
        for child in node.children():
            out.append("  " * depth + child.name())
            if hasattr(child, "children") and child.children() and not hasattr(child, "layerId"):
                walk(child, depth + 1)
    walk(QgsProject.instance().layerTreeRoot(), 0)
    return out

@guarded
def begin():
    plugin = plugins.get("geoclip_qgis")
    if plugin is None:
        write(error="plugin not loaded"); QgsApplication.exit(3); return
    world = "/usr/share/qgis/resources/data/world_map.gpkg"
    if os.path.exists(world):
        base = QgsVectorLayer(world + "|layername=countries", "World", "ogr")
        if base.isValid():
            sym = base.renderer().symbol()
            sym.setColor(sym.color().fromRgb(238, 232, 213))
            sym.symbolLayer(0).setStrokeColor(sym.color().fromRgb(170, 160, 140))
            QgsProject.instance().addMapLayer(base)
    iface.mainWindow().showMaximized()
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QApplication, QDockWidget
    win = iface.mainWindow()
    # Xvfb has no window manager: on some QGIS/Qt builds (3.40) showMaximized() then keeps the saved, small size.
    win.setGeometry(QApplication.primaryScreen().availableGeometry())
    browser, tree_dock = win.findChild(QDockWidget, "Browser"), win.findChild(QDockWidget, "Layers")
    if browser is not None:
        browser.hide()
    if tree_dock is not None:  # wide enough to read the run groups and the raster's legend
        win.resizeDocks([tree_dock], [330], Qt.Orientation.Horizontal)
    state["_plugin"] = plugin
    if SCENARIO == "projected":
        QTimer.singleShot(500, projected); return
    if SCENARIO == "world":
        QTimer.singleShot(500, world_scenario); return
    if SCENARIO == "manager":
        QTimer.singleShot(500, manager_scenario); return
    plugin.gui.toggle_dock(True)
    dock = plugin.gui.dock
    state["_dock"] = dock
    dock.query.setText(QUERY)
    dock.top_k.setValue(25 if SCENARIO == "text" else 5)
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    if hasattr(dock, "store"):
        dock.store.setCurrentIndex(dock.store.findData("gpkg" if SCENARIO == "photos" else "memory"))
    if SCENARIO == "analyst":  # 24.1/3/5: photos + raster at the dock's default width, the dock's own zoom
        dock.store.setCurrentIndex(dock.store.findData("memory"))
        dock.query.setText("")
        dock.photos.add([os.environ["GEOCLIP_SHOT_PHOTOS"]])
        dock.raster.setChecked(True)
        dock.likelihood_resolution = float(os.environ.get("GEOCLIP_SHOT_RES", "2.0"))
        dock.region_res = 5.0  # per-photo regions: cheap on a loaded CI machine (the point is the window)
        state["statuses"] = []
        dock.run()
        QTimer.singleShot(100, analyst_poll); return
    if SCENARIO == "case":  # issue 25: a hint and a constraint typed in the dock, and the run's answer
        dock.store.setCurrentIndex(dock.store.findData("memory"))
        dock.query.setText("")
        dock.photos.add([os.environ["GEOCLIP_SHOT_PHOTOS"]])
        dock.case.hint.setText("snowy peaks above a mining town")
        dock.case.hint_weight.setValue(1.0)
        dock.case.limit.setText("Chile; Argentina")
    if SCENARIO == "why":  # issue 25: photos run with 'Why' ticked; the photo viewer's toggle on, under the dock
        dock.store.setCurrentIndex(dock.store.findData("memory"))
        dock.query.setText("")
        dock.photos.add([os.environ["GEOCLIP_SHOT_PHOTOS"]])
        dock.why.setChecked(True)
        viewer = plugin.gui.viewer
        if viewer is not None:
            viewer.setFloating(True)
            viewer.setFloating(False)
            win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, viewer)
            win.splitDockWidget(dock, viewer, Qt.Orientation.Vertical)
            viewer.show()
    if SCENARIO == "photos":  # a saved project (the GeoPackage goes next to it) and a folder with unreadable files
        QgsProject.instance().write(os.environ["GEOCLIP_SHOT_PROJECT"])
        write(project_dir=os.path.dirname(os.environ["GEOCLIP_SHOT_PROJECT"]))
        dock.query.setText("")
        dock.photos.add([os.environ["GEOCLIP_SHOT_PHOTOS"]])
        viewer = plugin.gui.viewer
        if viewer is not None:  # the photo tab under the dock, not behind it: both in the screenshot
            viewer.setFloating(True)
            viewer.setFloating(False)
            win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, viewer)
            win.splitDockWidget(dock, viewer, Qt.Orientation.Vertical)
            viewer.show()
    if SCENARIO == "trip":  # issue 25.3: photos of one trip answered jointly; the track with arrows on the map
        dock.query.setText("")
        dock.photos.add([os.environ["GEOCLIP_SHOT_PHOTOS"]])
        dock.trip.setChecked(True)
        dock.trip_speed.setValue(120)
    if SCENARIO == "waiting":  # a field build holds the worker; the query waits behind it
        from geoclip_qgis.gui import settings_dialog as gs
        from geoclip_qgis.gui.tasks import EngineTask
        build = EngineTask("GeoCLIP: building a location field", "build_field",
                           {"engine": gs.engine_options(), "resolution": 0.25})
        state["_build"] = build
        QgsApplication.taskManager().addTask(build)
        QTimer.singleShot(3000, lambda: (dock.run(), waiting())); return
    if SCENARIO in ("cancel", "layers"):
        dock.raster.setChecked(True)
    if SCENARIO == "cancel" and hasattr(dock, "likelihood_resolution"):
        dock.likelihood_resolution = 0.1  # long enough to cancel mid-scoring
    if SCENARIO == "layers" and hasattr(dock, "likelihood_resolution"):
        dock.likelihood_resolution = 1.0
    state["runs"] = 0
    dock.run()
    poll()

@guarded
def poll():
    dock = state["_dock"]
    elapsed = time.time() - state["started"]
    if SCENARIO == "cancel" and "cancel_at" not in state and dock.task is not None:
        task = dock.task
        text = dock.status.text()  # "…scoring the map cells…", then "…N of M map cells scored"
        if getattr(task, "op", "") == "likelihood" and ("scoring" in text or " map cells scored" in text):
            state.setdefault("_scoring_since", time.time())
            if time.time() - state["_scoring_since"] > 3:
                dock.cancel_button.click()
                state["cancel_at"] = time.time()
                write(status_at_cancel=dock.status.text())
    if dock.task is not None and elapsed < LIMIT:
        QTimer.singleShot(200, poll); return
    if SCENARIO == "cancel" and "cancel_at" in state and "cancel_seconds" not in state:
        write(cancel_seconds=round(time.time() - state["cancel_at"], 2))
        # the old dock added the raster after the job ended: give it the time to show that
        QTimer.singleShot(5000, poll); return
    if SCENARIO == "layers" and state["runs"] == 0 and elapsed < LIMIT:
        state["runs"] = 1
        dock.run()
        QTimer.singleShot(300, poll); return
    layers = geoclip_layers()
    if layers:
        iface.setActiveLayer(layers[0])
        canvas = iface.mapCanvas(); canvas.zoomToFullExtent(); canvas.refresh()
        if SCENARIO == "case":  # the constrained answer, close enough to see it keeps to Chile and Argentina
            ext = QgsRectangle(layers[0].extent()); ext.grow(12); canvas.setExtent(ext); canvas.refresh()
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QDockWidget
    win = iface.mainWindow()
    tree_dock = win.findChild(QDockWidget, "Layers")
    if tree_dock is not None:  # room for the run groups and the raster's legend
        win.resizeDocks([tree_dock, dock], [420, 560], Qt.Orientation.Horizontal)
    if SCENARIO == "photos":
        select_rows()
    if SCENARIO == "trip":
        trip_view(dock)
    if SCENARIO == "why":
        show_why()
    write(layer_added=bool(layers), features=max((l.featureCount() for l in layers if isinstance(l, QgsVectorLayer)),
                                                 default=0),
          layers=sorted(l.name() for l in layers), rasters=len(rasters()), tree=tree(),
          table_rows=dock.table.rowCount(), status=dock.status.text(),
          progress=[dock.progress.value(), dock.progress.maximum(), dock.progress.text()])
    QTimer.singleShot(2500, shoot)

def trip_view(dock):
    """The map on the trip: the track's extent (and the summary points'), in the canvas's CRS, with a margin."""
    canvas = iface.mapCanvas()
    run = dock.run_state
    track = run.layers.get("trip") if run else None
    if track is None:
        write(trip_track=False); return
    xf = QgsCoordinateTransform(track.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance())
    box = xf.transformBoundingBox(track.extent())
    box.scale(2.2)
    canvas.setExtent(box); canvas.refresh()
    iface.setActiveLayer(track)
    line = next(track.getFeatures())
    trip_cells = [dock.table.item(r, 7).text() for r in range(dock.table.rowCount())
                  if dock.table.item(r, 7) is not None and dock.table.item(r, 7).text()]
    write(trip_track=True, trip_vertices=len(line.geometry().asPolyline()), trip_photos=line["photos"],
          trip_cells=trip_cells)

def _grab_now(text, running_s):
    """When to grab the window during the raster: a second after it started (the tests' default), or, with
    GEOCLIP_SHOT_GRAB_ON_CELLS=1 (the docs' shot), at the second count of its map cells, when the map has drawn."""
    if os.environ.get("GEOCLIP_SHOT_GRAB_ON_CELLS") != "1":
        return running_s > 1.0
    return " map cells scored" in text and text != state.get("first_cells", text) or running_s > 12.0


@guarded
def analyst_poll():
    """Every status line the dock shows while it runs (with the seconds it stayed), and one grab while the raster
    is made: the photos' points must be on the map before it."""
    dock = state["_dock"]
    text, now = dock.status.text(), time.time()
    seen = state["statuses"]
    if " map cells scored" in text:
        state.setdefault("first_cells", text)  # the grab waits for the second count: the map has had time to draw
    if not seen or seen[-1][0] != text:
        seen.append([text, round(now - state["started"], 1), [dock.progress.value(), dock.progress.maximum()]])
    task = dock.task
    raster_task = task is not None and getattr(task, "op", "") == "likelihood"
    if raster_task and "points_before_raster" not in state:
        # Checked as soon as the raster's task exists: with the encoder as fast as it now is, a 2° raster can be
        # done within the second the grab below waits for.
        places = dock.run_state.layers.get("places") if dock.run_state else None
        state["points_before_raster"] = bool(places is not None and places.featureCount() and not rasters())
        write(points_before_raster=state["points_before_raster"])
    if raster_task and "progress_grab" not in state \
            and task.started_running and _grab_now(text, time.monotonic() - task.started_running):
        state["progress_grab"] = OUT[:-4] + "-progress.png"
        write(status_during_raster=text)
        iface.mainWindow().grab().save(state["progress_grab"])
    if dock.task is not None and now - state["started"] < LIMIT:
        QTimer.singleShot(100, analyst_poll); return
    QTimer.singleShot(1500, analyst_end)

@guarded
def analyst_end():
    dock = state["_dock"]
    table = dock.table
    canvas = iface.mapCanvas()
    places = dock.run_state.layers.get("places") if dock.run_state else None
    outside = []
    if places is not None:
        xf = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                    QgsProject.instance())
        for f in places.getFeatures():
            p = xf.transform(f.geometry().asPoint())
            if not canvas.extent().contains(p):
                outside.append([round(p.x(), 3), round(p.y(), 3)])
    widths = [table.columnWidth(c) if not table.isColumnHidden(c) else 0 for c in range(table.columnCount())]
    write(table_rows=table.rowCount(), table_viewport=table.viewport().width(), column_widths=widths,
          hscroll_max=table.horizontalScrollBar().maximum(), dock_width=dock.width(),
          region_cell=table.item(0, 6).text() if table.rowCount() and table.item(0, 6) else "",
          place_tooltip=table.item(0, 3).toolTip() if table.rowCount() and table.item(0, 3) else "",
          points_outside_view=outside, status=dock.status.text(), layers=sorted(l.name() for l in geoclip_layers()),
          layer_added=bool(geoclip_layers()), rasters=len(rasters()), statuses=state["statuses"],
          failure_count_text=dock.failure_toggle.text(), tree=tree())
    QTimer.singleShot(1000, lambda: when_drawn(lambda: (write(**warnings_seen()), shoot())))

@guarded
def manager_scenario():
    """24.7: the manager open, then Install engine pointed at a Python without torch (a bare venv's): the rows
    must leave the old engine's ticks, say they are checking, and resolve with the reason in the log."""
    plugin = state["_plugin"]
    plugin.gui.open_manager()
    dlg = plugin.gui.manager
    state["_dlg"] = dlg
    dlg.resize(900, 640)
    QTimer.singleShot(int(os.environ.get("GEOCLIP_SHOT_MANAGER_WAIT", "20000")), manager_switch)

@guarded
def manager_switch():
    dlg = state["_dlg"]
    write(rows_before=manager_rows(dlg))
    bare = os.environ["GEOCLIP_SHOT_BARE_PYTHON"]
    state["switched_at"] = time.time()
    if hasattr(dlg, "use_engine"):
        dlg.use_engine(bare)
    else:  # what the manager did at the end of Install engine before issue 24
        from geoclip_qgis.client.engine_client import shutdown_shared
        from geoclip_qgis.gui import settings_dialog as gs
        gs.put("engine_python", bare)
        shutdown_shared(wait=False)
        dlg.refresh()
    # what the rows say right after the switch, before the event loop delivers the new engine's answer
    write(rows_at_switch=manager_rows(dlg))
    dlg.grab().save(OUT[:-4] + "-checking.png")
    state["_samples"] = []
    QTimer.singleShot(300, manager_sample)

def manager_rows(dlg):
    return {k: label.text() for k, label in dlg.labels.items()}

@guarded
def manager_sample():
    dlg = state["_dlg"]
    state["_samples"].append([round(time.time() - state["switched_at"], 1), manager_rows(dlg)])
    if time.time() - state["switched_at"] < float(os.environ.get("GEOCLIP_SHOT_MANAGER_RESOLVE", "25")):
        QTimer.singleShot(1000, manager_sample); return
    log = dlg.log.toPlainText() if hasattr(dlg, "log") else ""
    write(samples=state["_samples"], log_tail=log[-1500:], layer_added=True)
    dlg.grab().save(OUT)
    write(screenshot=OUT)
    QTimer.singleShot(300, leave)

@guarded
def waiting():
    dock, build = state["_dock"], state["_build"]
    text = dock.status.text()
    if "Waiting for" not in text and time.time() - state["started"] < LIMIT:
        QTimer.singleShot(200, waiting); return
    write(waiting_status=text, waiting_task=getattr(dock.task, "waited", None))
    iface.mainWindow().grab().save(OUT)
    QTimer.singleShot(6000, cancel_waiting)  # QGIS says how a task ended only after 5 s: wait that long

@guarded
def cancel_waiting():
    dock = state["_dock"]
    task = dock.task
    dock.cancel_button.click()
    state["_cancelled_task"] = task
    QTimer.singleShot(1500, after_waiting)

@guarded
def after_waiting():
    dock, build, task = state["_dock"], state["_build"], state["_cancelled_task"]
    write(after_cancel_status=dock.status.text(), cancelled_reached_worker=bool(getattr(task, "started_running", True)),
          rows_after_cancel=dock.rows, build_still_running=build.status() in (build.Running, build.Queued))
    build.cancel()
    state["build_cancel_at"] = time.time()
    QTimer.singleShot(500, after_build_cancel)

@guarded
def after_build_cancel():
    """24.2: what QGIS and the dock say once both jobs are cancelled (grabbed with the message bar)."""
    build = state["_build"]
    try:
        ended = build.status() in (build.Complete, build.Terminated)
    except RuntimeError:  # QGIS deleted the finished task
        ended = True
    if not ended and time.time() - state["build_cancel_at"] < 30:
        QTimer.singleShot(300, after_build_cancel); return
    if "build_ended_at" not in state:
        state["build_ended_at"] = time.time()
        QTimer.singleShot(1500, after_build_cancel); return
    write(final_status=state["_dock"].status.text(), build_cancel_s=round(state["build_ended_at"] -
                                                                          state["build_cancel_at"], 1),
          **warnings_seen())
    iface.mainWindow().grab().save(OUT[:-4] + "-after-cancel.png")
    QTimer.singleShot(300, lambda: (write(screenshot=OUT), leave()))

@guarded
def show_why():
    """The first photo of the summary layer selected: the viewer shows it, with 'Show what drove the answer' on."""
    dock, viewer = state["_dock"], state["_plugin"].gui.viewer
    summary = dock.run_state.layers.get("summary") if dock.run_state is not None else None
    if summary is None or viewer is None:
        write(why="no summary layer or no viewer"); return
    iface.setActiveLayer(summary)
    summary.selectByIds([sorted(summary.allFeatureIds())[0]])
    viewer.why.setChecked(True)
    write(why_visible=viewer.why.isVisible(), why_checked=viewer.why.isChecked(), overlay=viewer.overlay_path,
          overlays=[f["saliency"] for f in summary.getFeatures()])

@guarded
def select_rows():
    """Table -> map and map -> table (12.11): a row selects its point, a point selects its row."""
    dock = state["_dock"]
    places = dock.run_state.layers.get("places") if dock.run_state is not None else None
    info = {}
    if places is not None and dock.table.rowCount() >= 2:
        dock.table.selectRow(0)
        info["row0_selects_points"] = places.selectedFeatureCount()
        fid = sorted(places.allFeatureIds())[-1]
        places.selectByIds([fid])
        info["point_selects_rows"] = sorted({i.row() for i in dock.table.selectedItems()})
        dock.table.selectRow(0)
        info["layer_source"] = places.source()
    info["failure_count_text"] = dock.failure_toggle.text()
    dock.failure_toggle.setChecked(True)
    write(**info)

@guarded
def world_scenario():
    """16: the engine starts (a text query), its pyramid builds the 0.5° world field in the background; once it is
    on disk, a click of "places like here" on the whole world, timed from the click to the raster on the map."""
    plugin = state["_plugin"]
    plugin.gui.toggle_dock(True)
    dock = plugin.gui.dock
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.store.setCurrentIndex(dock.store.findData("memory"))
    dock.query.setText(QUERY)
    dock.top_k.setValue(3)
    state["_dock"] = dock
    dock.run()
    state["engine_started_at"] = time.time()
    QTimer.singleShot(1000, wait_field)

def field_ready() -> bool:
    import glob
    for meta in glob.glob(os.path.join(os.environ["GEOCLIP_SHOT_CACHE"], "fields", "field-0.5deg*", "meta.json")):
        with open(meta) as f:
            m = json.load(f)
        if m.get("rows_done", 0) >= 360:
            return True
    return False

@guarded
def wait_field():
    if not field_ready() and time.time() - state["started"] < LIMIT:
        QTimer.singleShot(500, wait_field); return
    write(field_ready_s_after_engine_start=round(time.time() - state["engine_started_at"], 1),
          field_ready=field_ready())
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.setExtent(QgsRectangle(-180, -90, 180, 90))
    canvas.refresh()
    QTimer.singleShot(2000, world_click)

@guarded
def world_click():
    plugin = state["_plugin"]
    plugin.gui.activate_tool()
    tool = plugin.gui.tool
    state["_tool"] = tool
    state["click_at"] = time.time()
    tool.clicked(QgsPointXY(2.35, 48.85), None)
    wait_world()

@guarded
def wait_world():
    tool = state["_tool"]
    if not rasters() and time.time() - state["started"] < LIMIT:
        QTimer.singleShot(20, wait_world); return
    rs = rasters()
    info = {"click_to_raster_s": round(time.time() - state["click_at"], 2)} if rs else {}
    if rs:
        info["raster_res"] = rs[0].rasterUnitsPerPixelX()
        info["raster_size"] = [rs[0].width(), rs[0].height()]
    write(layer_added=bool(rs), rasters=len(rs), tree=tree(), **info)
    QTimer.singleShot(3000, shoot)

@guarded
def projected():
    plugin = state["_plugin"]
    canvas = iface.mapCanvas()
    crs = QgsCoordinateReferenceSystem(os.environ.get("GEOCLIP_SHOT_CRS", "EPSG:3857"))
    canvas.setDestinationCrs(crs)
    # the CRS's whole domain (Web Mercator: ±85.06°), as a user's "zoom to world" shows it
    dom = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), crs,
                                 QgsProject.instance()).transformBoundingBox(crs.bounds())
    canvas.setExtent(dom)
    canvas.refresh()
    plugin.gui.activate_tool()
    tool = plugin.gui.tool
    state["_tool"] = tool
    xf = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                QgsProject.instance())
    tool.clicked(xf.transform(QgsPointXY(2.35, 48.85)), None)
    write(view=[canvas.extent().xMinimum(), canvas.extent().yMinimum(), canvas.extent().xMaximum(),
                canvas.extent().yMaximum()])
    wait_tool()

@guarded
def wait_tool():
    tool = state["_tool"]
    if tool.task is not None and time.time() - state["started"] < LIMIT:
        QTimer.singleShot(300, wait_tool); return
    rs = rasters()
    info = {}
    if rs:
        e = rs[0].extent()
        info = {"raster_extent": [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()]}
    write(layer_added=bool(rs), rasters=len(rs), tree=tree(), **info)
    QTimer.singleShot(1500, lambda: when_drawn(lambda: (write(**warnings_seen()), shoot())))

@guarded
def shoot():
    iface.mainWindow().grab().save(OUT)
    if SCENARIO == "layers":  # the layer tree on its own, wide enough to read the groups and the legend
        from qgis.PyQt.QtWidgets import QDockWidget
        tree_dock = iface.mainWindow().findChild(QDockWidget, "Layers")
        if tree_dock is not None:
            tree_dock.setFloating(True)
            tree_dock.resize(460, 620)
            iface.layerTreeView().expandAll()
            QTimer.singleShot(800, lambda: (tree_dock.grab().save(OUT[:-4] + "-tree.png"), None))
            QTimer.singleShot(1200, leave)
            write(screenshot=OUT)
            return
    write(screenshot=OUT)
    QTimer.singleShot(200, leave)

@guarded
def leave():
    import qgis.utils
    write(unloaded=qgis.utils.unloadPlugin("geoclip_qgis"))
    QgsProject.instance().clear()
    QTimer.singleShot(300, lambda: QgsApplication.exit(0))

QTimer.singleShot(1500, begin)
'''


def free_display() -> int:
    numbers = list(range(90, 190))
    random.shuffle(numbers)  # two runs started at once must not both take the first free number
    for n in numbers:
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise SystemExit("no free X display number")


def make_profile(root: Path, settings: dict, plugin_dir: Optional[str] = None) -> Path:
    """A throw-away profile with the plugin from the release zip (or, for before/after screenshots, copied from
    another source tree's geoclip_qgis folder)."""
    plugins = root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    if plugin_dir:
        shutil.copytree(plugin_dir, plugins / "geoclip_qgis", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        from package_plugin import build

        zip_path = build(root / "dist")
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(plugins)
    ini = root / "profiles" / "default" / "QGIS"
    ini.mkdir(parents=True)
    lines = ["[PythonPlugins]", "geoclip_qgis=true", "", "[qgis]", "showTips322=false", "checkVersion=false",
             "", "[geoclip]"] + [f"{k}={v}" for k, v in settings.items()]
    (ini / "QGIS3.ini").write_text("\n".join(lines) + "\n")
    return root


def make_photos(folder: Path) -> None:
    """Six readable photos (two with camera GPS) and two that are not photos: what an analyst's folder holds."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(6):
        img = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        exif = Image.Exif()
        if i < 2:
            exif.get_ifd(0x8825).update({1: "N", 2: (46.0, 33.0, 0.0), 3: "E", 4: (7.0, 59.0, 0.0)})
        img.save(folder / f"trip_{i + 1:02d}.jpg", quality=90, exif=exif)
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "empty.jpg").write_bytes(b"")


def make_trip_photos(folder: Path) -> None:
    """A day's trip Lyon -> Geneva -> Milan: eight photos half an hour apart (+02:00), three with camera GPS (the
    anchors), and one without any time (answered alone)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(11)
    gps = {0: (45.76, 4.84), 4: (46.20, 6.14), 7: (45.46, 9.19)}
    for i in range(9):
        img = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        exif = Image.Exif()
        if i < 8:
            sub = exif.get_ifd(0x8769)
            sub[0x9003] = f"2026:05:01 {9 + i // 2:02d}:{30 * (i % 2):02d}:00"
            sub[0x9011] = "+02:00"
        if i in gps:
            lat, lon = gps[i]
            exif.get_ifd(0x8825).update({1: "N", 2: (lat, 0.0, 0.0), 3: "E", 4: (lon, 0.0, 0.0)})
        img.save(folder / (f"day_{i + 1:02d}.jpg" if i < 8 else "no_time.jpg"), quality=90, exif=exif)


def make_scenes(folder: Path) -> None:
    """Three photo-like scenes (sky, a skyline, a street) for the 'why' overlay to be read on."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(25)
    for i in range(3):
        w, h = 800, 600
        sky = np.linspace([120, 170, 235], [230, 240, 250], h // 2).astype(np.uint8)
        img = Image.new("RGB", (w, h), (90, 95, 90))
        img.paste(Image.fromarray(np.repeat(sky[:, None, :], w, axis=1)), (0, 0))
        draw = ImageDraw.Draw(img)
        x = 0
        while x < w:
            bw, bh = int(rng.integers(40, 110)), int(rng.integers(80, 260))
            colour = tuple(int(c) for c in rng.integers(90, 220, 3))
            draw.rectangle([x, h // 2 - bh + 60, x + bw, h // 2 + 60], fill=colour)
            for wy in range(h // 2 - bh + 75, h // 2 + 50, 22):
                for wx in range(x + 6, x + bw - 10, 16):
                    draw.rectangle([wx, wy, wx + 8, wy + 12], fill=(250, 235, 160) if rng.random() < 0.4 else
                                   (60, 70, 80))
            x += bw + int(rng.integers(2, 12))
        draw.polygon([(w * 0.35, h), (w * 0.48, h // 2 + 60), (w * 0.52, h // 2 + 60), (w * 0.65, h)],
                     fill=(60, 60, 65))
        img.save(folder / f"scene_{i + 1}.jpg", quality=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "qgis_window.png"))
    ap.add_argument("--clip-path", required=True)
    ap.add_argument("--query", default="snowy alpine village")
    ap.add_argument("--gallery", default="default")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--scenario", choices=("text", "cancel", "layers", "projected", "photos", "waiting", "world",
                                           "analyst", "manager", "case", "trip", "why"),
                    default="text",
                    help="text: a query's points; cancel: Cancel while the likelihood grid is scored; layers: two "
                         "text runs with the raster (layer tree, legend); projected: places like here in --crs; "
                         "photos: a folder with unreadable files, kept in a GeoPackage, table/map selection; "
                         "waiting: a query behind a field build, cancelled while it waits; world: the 0.5° field "
                         "built from the engine start, then a world 'places like here', timed; analyst: photos "
                         "with the raster at the dock's default width (table, progress, view after the run); "
                         "manager: the manager switched to a Python without torch; case: photos with a hint and "
                         "'Limit to: Chile; Argentina' (issue 25); trip: a day's photos as one trip (three with GPS, "
                         "one without a time), the track on the map; why: photos with 'Why' ticked, the photo viewer's "
                         "'Show what drove the answer' on")
    ap.add_argument("--crs", default="EPSG:3857", help="the map's CRS for --scenario projected")
    ap.add_argument("--plugin-dir", help="install this geoclip_qgis folder instead of the zip (before/after)")
    ap.add_argument("--size", default="1600x1000", help="the Xvfb screen, WIDTHxHEIGHT")
    ap.add_argument("--grab-after-cancel", type=int, default=0,
                    help="also grab the screen this many seconds after Cancel (scenario cancel)")
    args = ap.parse_args()
    for tool in ("Xvfb", "qgis"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/setup_env.sh (it installs qgis, xvfb, imagemagick)")
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    status = out.with_suffix(".json")
    status.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="geoclip-shot-"))
    prefs = {"engine_python": sys.executable, "clip_path": args.clip_path, "device": "cpu", "gallery": args.gallery}
    extra_env = {"GEOCLIP_SHOT_CACHE": str(work / "cache"), "GEOCLIP_SHOT_PROJECT": str(work / "project.qgz"),
                 "GEOCLIP_SHOT_PHOTOS": str(work / "photos")}
    if args.scenario in ("waiting", "world"):  # field builds go to a fresh cache, never the user's
        prefs["cache_dir"] = str(work / "cache")
        if args.gallery == "default":  # the 100K gallery is encoded once per cache: a small one keeps it short
            prefs["gallery"] = "fibonacci:3000"
    if args.scenario == "world":
        extra_env["GEOCLIP_PYRAMID"] = "on"  # the default pyramid, as a user's engine builds it (tests turn it off)
    if args.scenario in ("photos", "analyst", "case"):
        make_photos(work / "photos")
    if args.scenario == "trip":
        make_trip_photos(work / "photos")
    if args.scenario == "why":
        make_scenes(work / "photos")
    if args.scenario == "manager":  # a Python without torch: a bare venv of the system's Python
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(work / "bare")], check=True)
        extra_env["GEOCLIP_SHOT_BARE_PYTHON"] = str(work / "bare" / "bin" / "python")
    profile = make_profile(work / "config", prefs, args.plugin_dir)
    (work / "startup.py").write_text(STARTUP)
    display = free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", f"{args.size}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "PYTHONPATH")}
    env.update(DISPLAY=f":{display}", GEOCLIP_SHOT=str(out), GEOCLIP_SHOT_STATUS=str(status),
               GEOCLIP_SHOT_QUERY=args.query, GEOCLIP_ENGINE_PYTHON=sys.executable, HF_HUB_OFFLINE="1",
               GEOCLIP_SHOT_SCENARIO=args.scenario, GEOCLIP_SHOT_CRS=args.crs,
               GEOCLIP_SHOT_LIMIT=str(max(30, args.timeout - 40)), **extra_env)
    try:
        log = open(work / "qgis.log", "w+")  # noqa: SIM115 - read back after QGIS ends
        qgis = subprocess.Popen(["qgis", "--profiles-path", str(profile), "--nologo", "--noversioncheck",
                                 "--code", str(work / "startup.py")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        deadline, grabbed = time.monotonic() + args.timeout, False
        while qgis.poll() is None and time.monotonic() < deadline:
            time.sleep(1.0)
            if args.grab_after_cancel and not grabbed and status.exists():
                try:
                    cancel_at = json.loads(status.read_text()).get("cancel_at")
                except ValueError:  # being written
                    cancel_at = None
                if cancel_at and time.time() - cancel_at >= args.grab_after_cancel and shutil.which("import"):
                    # What the user sees N s after Cancel, from the X server: works even when QGIS is frozen.
                    grab = out.with_name(f"{out.stem}-{args.grab_after_cancel}s-after-cancel.png")
                    subprocess.run(["import", "-display", f":{display}", "-window", "root", str(grab)], check=False)
                    grabbed = True
        if qgis.poll() is None:
            qgis.kill()
            qgis.wait()
        log.seek(0)
        stderr = log.read()
        log.close()
        if shutil.which("import") and not out.exists():  # fall back to a screen grab of the whole display
            subprocess.run(["import", "-display", f":{display}", "-window", "root", str(out)], check=False)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)  # the throw-away QGIS profile: nothing of it is kept
    info = json.loads(status.read_text()) if status.exists() else {"error": "no status written"}
    info["qgis_exit"] = qgis.returncode
    info["qgis_stderr_tail"] = [ln for ln in stderr.splitlines() if ln.strip()][-6:]
    print(json.dumps(info, indent=1))
    if not out.exists() or (args.scenario in ("text", "layers", "photos", "world", "analyst", "case", "trip", "why")
                            and not info.get("layer_added")):
        sys.stderr.write(stderr[-3000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
