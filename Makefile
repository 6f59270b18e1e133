# Two commands: `make demo` and `make test`. Each sets itself up on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# command:debian-package pairs
DEMO_PKGS := mosquitto:mosquitto influxd:influxdb
TEST_PKGS := $(DEMO_PKGS) chromium:chromium systemd-analyze:systemd

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || bash deploy/ensure-packages.sh pyvenv:python3-venv
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

setup: $(STAMP)

demo: $(STAMP)
	@bash deploy/ensure-packages.sh $(DEMO_PKGS)
	$(BIN)/spinesense demo

test: $(STAMP)
	@bash deploy/ensure-packages.sh $(TEST_PKGS)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	@bash deploy/ensure-packages.sh $(DEMO_PKGS)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) work build *.egg-info .pytest_cache .ruff_cache
