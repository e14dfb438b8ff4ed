"""A pytest plugin for the chroot lanes (scripts/qgis_lane.sh loads it with -p): each failure's report is printed
the moment the test fails, and each test's outcome is appended to a log file ($GEOCLIP_LANE_LOG), so a process that
QGIS aborts at teardown (a Qt fatal error kills pytest before its summary) still leaves every failure on record."""

from __future__ import annotations

import os
import sys


def pytest_runtest_logreport(report):
    log = os.environ.get("GEOCLIP_LANE_LOG")
    if log and (report.when == "call" or report.outcome != "passed"):
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{report.outcome.upper()} {report.nodeid} ({report.when}, {report.duration:.1f}s)\n")
    if report.failed:
        sys.stderr.write(f"\n---- {report.nodeid} ({report.when}) FAILED ----\n{report.longreprtext}\n----\n")
        sys.stderr.flush()
