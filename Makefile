# Two commands on a fresh machine: `make demo` (the main job on embedded defaults) and `make test` (both test lanes).
# Both run their set-up first (scripts/setup_env.sh, scripts/qgis_lane.sh), each step skipped when done.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out
export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE = 1
SHELL := /bin/bash

.PHONY: setup test test-322 test-340 test-344 demo lint bench zip repo clean

setup:
	@bash scripts/setup_env.sh

# `make test`: both lanes, each with its own idempotent set-up, then one summary line per lane (also on failure).
#   test-322: lint + the suite on this machine's QGIS 3.22 (Debian 12, Python 3.11) in .venv: the minimum version
#   test-344: on QGIS 3.44 LTR (Debian 13 trixie + trixie-backports, Python 3.13, numpy 2, Debian's torch 2.6) in a
#             debootstrap chroot: every test that touches QGIS (zip install and load/unload, the plugin repository
#             through QGIS's own installer, plugins.qgis.org's rules, Processing, dock and manager, the worker, the
#             real window, Qt6 and import rules) plus the engine's oracle, answers and data-safety tests; the
#             QGIS-free engine tests run once, in the 3.22 lane (LANE_TESTS; `make test-344 LANE_TESTS=` runs the
#             whole suite there)
#   test-340: the same on trixie's QGIS 3.40 (the previous LTR); not part of `make test` (its own chroot, ~8 min
#             to build the first time)
LANES := 322 344
test:
	@mkdir -p .cache; rm -f .cache/lane-*.txt; rc=0; \
	for lane in $(LANES); do $(MAKE) --no-print-directory test-$$lane || rc=1; done; \
	echo "== lanes =="; for lane in $(LANES); do cat .cache/lane-$$lane.txt 2>/dev/null; done; \
	for lane in $(LANES); do cat .cache/lane-$$lane.txt 2>/dev/null; done | awk '{ for (i = 1; i < NF; i++) { w = $$(i + 1); \
	  gsub(/[,;]/, "", w); if (w == "passed") p += $$i; else if (w == "failed" || w ~ /^errors?$$/) f += $$i; \
	  else if (w == "skipped") k += $$i }; if ($$0 ~ /no summary/) c++ } \
	  END { printf "total: %d passed, %d failed, %d skipped%s\n", p, f, k, c ? sprintf("; %d lane(s) crashed or gave no summary", c) : "" }'; \
	exit $$rc

test-322: setup
	@mkdir -p .cache; s=$$(date +%s); set -o pipefail; rc=0; lint=ok; \
	$(PY) -m ruff check geoclip_qgis scripts tests || { rc=1; lint=FAILED; }; \
	$(PY) -m pytest -q $(PYTEST_ARGS) 2>&1 | tee .cache/pytest-322.log || rc=$$?; \
	sum=$$(grep -E '(passed|failed|error).* in [0-9.]+s' .cache/pytest-322.log | tail -1 | tr -d '=' | xargs); \
	echo "LANE qgis-3.22 (host .venv): $${sum:-no summary: pytest ended with exit code $$rc (a crash?) FAILED} ; ruff $$lint ; ruff+pytest $$(( $$(date +%s) - s )) s" \
	  | tee .cache/lane-322.txt; \
	exit $$rc

LANE_TESTS ?= tests/test_plugin_zip.py tests/test_plugin_repository.py tests/test_plugin_rules.py tests/test_engine_install.py \
	tests/test_processing.py tests/test_gui.py tests/test_gui_manager.py \
	tests/test_real_window.py tests/test_worker_protocol.py tests/test_import_rules.py tests/test_qt6_ready.py \
	tests/test_bad_input.py tests/test_engine.py tests/test_location_encoder.py tests/test_answers.py \
	tests/test_data_safety.py tests/test_one_rule.py tests/test_aliasing_matrix.py \
	tests/test_case_qgis.py tests/test_trip_gui.py tests/test_report_qgis.py tests/test_downloader.py

# test-344 / test-340: scripts/qgis_lane.sh SUITE builds (or reuses) the chroot and runs LANE_TESTS there.
test-344: LANE_SUITE = trixie-backports
test-340: LANE_SUITE = trixie
test-344 test-340:
	@mkdir -p .cache; lane=$(subst test-,,$@); s=$$(date +%s); set -o pipefail; rc=0; \
	bash scripts/qgis_lane.sh $(LANE_SUITE) -q $(LANE_TESTS) $(PYTEST_ARGS) 2>&1 | tee .cache/lane-$$lane.log || rc=$$?; \
	grep '^LANE' .cache/lane-$$lane.log | tail -1 > .cache/lane-$$lane.txt \
	  || echo "LANE qgis-$$lane (chroot $(LANE_SUITE)): set-up failed after $$(( $$(date +%s) - s )) s" > .cache/lane-$$lane.txt; \
	exit $$rc

demo: setup
	$(PY) scripts/demo.py --out $(OUT)

lint: setup
	$(PY) -m ruff check geoclip_qgis scripts tests

bench: setup
	$(PY) scripts/bench_engine.py
	$(PY) scripts/bench_rasters.py

# `make repo`: dist/geoclip_qgis.<version>.zip and dist/plugins.xml, the plugin repository QGIS's Plugin Manager
# reads (Settings > Plugin Repositories > Add: the URL of plugins.xml). REPO_URL: where the zip will be served from
# (default: the GitHub release's assets); `make zip` is the same build.
REPO_URL ?=
repo zip:
	python3 scripts/package_plugin.py --out dist $(if $(REPO_URL),--repo-url $(REPO_URL))

clean:
	rm -rf dist $(OUT) .pytest_cache .ruff_cache
