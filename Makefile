# deepafx-fxlib: the two commands are `make reproduce` and `make test`; both set up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
BIN := $(VENV)/bin
STAMP := $(VENV)/.fxlib-installed
# Debian packages the project uses: the audio plugins, liblilv for LV2, FluidSynth and a soundfont,
# real drum samples and wideband speech prompts (decoded with ffmpeg) for the offline data sets,
# and Chromium for the JupyterLab test.
APT_PACKAGES := zam-plugins calf-plugins lsp-plugins-lv2 invada-studio-plugins-lv2 guitarix-lv2 \
	liblilv-0-0 lilv-utils fluidsynth fluid-soundfont-gm hydrogen-drumkits ffmpeg \
	asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722 \
	asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722 chromium chromium-driver

.PHONY: setup system-deps reproduce test test-all lab bench clean

setup: system-deps $(STAMP)

# Installs the Debian packages with apt-get when root, with sudo when allowed, else prints the command.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "system packages: all present"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "NOTE: no apt-get here; install LV2 (lilv), VST3 plugins and FluidSynth by hand (see README). Missing: $$missing"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	elif sudo -n true 2>/dev/null; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
		echo "NOTE: cannot install system packages (not root, no sudo). Run:"; \
		echo "  sudo apt-get update && sudo apt-get install -y $$missing"; \
		echo "Tests that need those plugins are skipped until then."; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[speech,mastering,listeners,test,notebooks]'
	$(BIN)/python -m ipykernel install --sys-prefix --name fxlib --display-name 'Python (fxlib)'
	touch $(STAMP)

# The main job: build the data, run the three task notebooks with papermill on $(PROFILE) (quick by
# default), write paper/results, figures, audio examples and paper/REPORT.md (fxlib/reproduce.py).
reproduce: setup
	$(BIN)/fxlib reproduce --profile $(PROFILE)

test: setup
	$(BIN)/pytest -m "not slow"

test-all: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/hosting.py
	$(BIN)/python benchmarks/spsa.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/encoder.py

lab: setup
	$(BIN)/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
