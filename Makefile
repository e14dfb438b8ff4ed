# Two commands on a fresh machine: `make demo` (the main job on embedded defaults) and `make test`.
# Both run scripts/setup_env.sh first: apt packages, the venv and pinned pip installs, each skipped when done.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out
export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: setup test demo lint bench zip clean

setup:
	@bash scripts/setup_env.sh

test: setup
	$(PY) -m ruff check geoclip_qgis scripts tests
	$(PY) -m pytest -q

demo: setup
	$(PY) scripts/demo.py --out $(OUT)

lint: setup
	$(PY) -m ruff check geoclip_qgis scripts tests

bench: setup
	$(PY) scripts/bench_engine.py
	$(PY) scripts/bench_rasters.py

zip: setup
	$(PY) scripts/package_plugin.py --out dist

clean:
	rm -rf dist $(OUT) .pytest_cache .ruff_cache
