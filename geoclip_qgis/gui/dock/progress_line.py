"""The dock's status line and progress bar while a job runs: what is happening, and that it is still happening.

A step without a count (loading the model, scoring a map) used to leave "loading the model" and a frozen 0/N on
screen for a minute or two. Here each step is named in an analyst's words, a step without counts shows Qt's busy bar
and its elapsed seconds, and a counted step shows "3 of 8 photos" with the bar.
"""

from __future__ import annotations

import os
import time
from typing import Optional

from qgis.PyQt.QtCore import QObject, QTimer
from qgis.PyQt.QtWidgets import QLabel, QProgressBar

from ..settings_dialog import plural, tr, tr_noop

SHOW_SECONDS_AFTER = 3.0  # a step shorter than this never shows a clock

# The worker's step messages, as the dock says them (others are shown as they come, capitalised).
WORDS = {
    "encoding the gallery": tr_noop("Preparing the gallery of places (once per cache folder)…"),
    "loading the model": tr_noop("Loading the model (CLIP, the first time in a session)…"),
    "geolocating": tr_noop("Geolocating the photos…"),
    "encoding the query": tr_noop("Likelihood raster: encoding the query…"),
    "scoring the grid": tr_noop("Likelihood raster: scoring the map cells…"),
    "writing the GeoTIFF": tr_noop("Likelihood raster: writing the map…"),
    "tracing the confidence regions": tr_noop("Likelihood raster: tracing the 50 % / 90 % regions…"),
}


def step_words(message: str) -> str:
    """A worker message in the dock's words: a known step translated; a photo's path -> its file name."""
    if message in WORDS:
        return tr(WORDS[message])
    if os.sep in message or "/" in message:
        return tr("Geolocated {}").format(os.path.basename(message))
    return message[:1].upper() + message[1:]


class ProgressLine(QObject):
    """Drives the dock's status label and progress bar for the running job (main thread only)."""

    def __init__(self, label: QLabel, bar: QProgressBar, parent=None):
        super().__init__(parent)
        self.label, self.bar = label, bar
        self.text = ""
        self.since = time.monotonic()
        self.counted: Optional[tuple] = None
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self._show)

    def begin(self, text: str) -> None:
        """A job starts: its first words, a busy bar until the worker counts something."""
        self.counted = None
        self.bar.setRange(0, 0)  # busy: moving, not a frozen 0 %
        self.bar.setFormat("")
        self.stage(text)
        self.timer.start()

    def stage(self, message: str) -> None:
        """A new step (the worker's progress text, or ours: waiting, cancelling)."""
        text = step_words(message) if message else self.text
        if text != self.text:  # a new step: the last step's counts are not its own (the worker says a step first)
            self.text, self.since, self.counted = text, time.monotonic(), None
        self._show()

    def counts(self, done: int, total: int) -> None:
        """The worker counted: a real bar (photos, queries, bytes, rows of a field)."""
        if total <= 0:
            return
        if self.counted is None or self.counted[1] != total:
            self.since = time.monotonic()
        self.counted = (done, total)
        if done == 0:  # "0 of 8" says nothing yet (the model may still be loading): stay busy
            self._show()
            return
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.bar.setFormat("%v/%m")
        self._show()

    def end(self, complete: bool = True) -> None:
        """The job ended: the clock stops; a busy bar becomes full (done) or empty (cancelled, failed)."""
        self.timer.stop()
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 100)
            self.bar.setFormat("%p%")
            self.bar.setValue(100 if complete else 0)

    def _show(self) -> None:
        text = self.text
        elapsed = time.monotonic() - self.since
        if self.counted is not None and self.text == step_words("scoring the grid") and self.counted[1] > 3:
            done, total = self.counted
            text = plural(total, "Likelihood raster: {:,} of {:,} map cell scored",
                          "Likelihood raster: {:,} of {:,} map cells scored").format(done, total)
        elif self.counted is not None and self.text.startswith(tr("Geolocated")):
            done, total = self.counted
            text = plural(total, "{} of {} photo geolocated", "{} of {} photos geolocated").format(done, total)
            if elapsed >= SHOW_SECONDS_AFTER and done < total and self.timer.isActive():  # a batch takes a while
                text += tr("; geolocating the next ones… {:.0f} s").format(elapsed)
            else:
                text += f" ({self.text.split(' ', 1)[-1]})"
        elif elapsed >= SHOW_SECONDS_AFTER and self.timer.isActive():
            text = tr("{} {:.0f} s").format(text, elapsed)
        self.label.setText(text)
