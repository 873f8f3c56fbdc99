# Everything a fresh machine needs: `make demo` and `make test` create .venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Mesa's EGL + llvmpipe: headless OpenGL 4.5 for the GL decoder and its tests (Debian names).
GL_PACKAGES := libegl1 libgl1-mesa-dri libegl-mesa0 libgles2 libgl1 libglx-mesa0 xvfb xauth
# A C compiler for the trainer's CPU kernels (trainer/*.c; built at first use).
CC_PACKAGES := gcc libc6-dev
DEMO_OUT := build/demo
RUN_OUT := build/run
# The shipped default scene: assets/WaterBottle compressed by `ntc-compress scene.gltf -o DIR`.
DEFAULT_SRC := assets/WaterBottle
DEFAULT_SCENE := assets/WaterBottle_ntc
BENCH_ARGS ?=

.PHONY: setup system-packages test run demo assets bench clean

# Installs the GL packages and a C compiler with apt-get when they are missing and we are root;
# otherwise says what to install (the GL tests then fail with a message naming EGL; training
# falls back to its slower reference step).
system-packages:
	@if ldconfig -p | grep -q 'libEGL_mesa.so' && command -v xvfb-run >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(GL_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GL_PACKAGES) >/dev/null; \
	else echo "warning: Mesa EGL not found; install: $(GL_PACKAGES)" >&2; fi
	@if command -v cc >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(CC_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CC_PACKAGES) >/dev/null; \
	else echo "warning: no C compiler; training uses the slower reference step (install: $(CC_PACKAGES))" >&2; fi

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU torch wheel first, so nothing that depends on torch pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[bench,dev]'
	touch $(STAMP)

setup: system-packages $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

# ntc-view on the shipped default scene: a window when there is a display; otherwise each mode
# rendered headless (EGL) into $(RUN_OUT)/ with its stats and PSNR against reference.
run: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN)/ntc-view; else \
		echo "no display: rendering the default scene headless into $(RUN_OUT)/"; mkdir -p $(RUN_OUT); \
		for m in reference load sample feedback; do \
			$(BIN)/ntc-view --headless --mode $$m --compare --overlay --frames 3 --size 640x480 \
				--stats $(RUN_OUT)/$$m.json --screenshot $(RUN_OUT)/$$m.png || exit 1; \
		done; fi

# Regenerate the default scene's neural textures (and its copy of the scene) from $(DEFAULT_SRC).
# One torch thread: with two, the training's float sums run in another order each time and the
# file differs from run to run (0.2 dB apart); with one it is the same bytes on every run on one
# machine (the hidden layers train in bf16 where the CPU has it in hardware, else float32).
assets: setup
	OMP_NUM_THREADS=1 $(BIN)/ntc-compress $(DEFAULT_SRC)/PF_WaterBottle_MR.gltf -o $(DEFAULT_SCENE) --report $(DEFAULT_SCENE)/report.json
	cp $(DEFAULT_SRC)/LICENSE.md $(DEFAULT_SCENE)/LICENSE.md

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
