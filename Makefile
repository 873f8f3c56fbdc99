# Everything a fresh machine needs: `make demo` and `make test` create .venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT := build/demo
BENCH_ARGS ?=

.PHONY: setup test demo bench bench-quick clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU torch wheel first, so nothing that depends on torch pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[bench,dev]'
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

# Compress the shipped default texture set and decode it back: the main job, end to end.
demo: setup
	mkdir -p $(DEMO_OUT)
	$(BIN)/ntc-compress assets/WaterBottle -o $(DEMO_OUT)/WaterBottle.ntc --report $(DEMO_OUT)/WaterBottle.report.json
	$(BIN)/ntc-decode $(DEMO_OUT)/WaterBottle.ntc -o $(DEMO_OUT)/WaterBottle_decoded

# Rate-distortion against BC1/BC7/BC5/ASTC on the shared sets (long: see bench/README.md).
bench: setup
	$(BIN)/python -m bench.rate_distortion $(BENCH_ARGS)

clean:
	rm -rf build
