# pipilot: the two commands a newcomer needs are `make sim` and `make test`.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
APT_PACKAGES := $(shell cat tools/apt/*.txt 2>/dev/null | sed -e 's/\#.*//' | tr -s ' \n' ' ')
PYTEST_ARGS ?=
# pytest-xdist workers for the parallel phase (auto: one per CPU; 0: in this process)
PYTEST_WORKERS ?= auto
# a marker expression to narrow the run (e.g. 'not browser'); it joins each phase's own
PYTEST_MARK ?=
MARK_AND := $(if $(strip $(PYTEST_MARK)),($(PYTEST_MARK)) and ,)

.PHONY: all sim test check lint typecheck bench system-deps venv build test-prep clean

all: build

# System packages the tests need (chromium, kernel headers, qemu, ngspice, ...).
# Installed only when we are root; otherwise we say what is missing and go on,
# and the tests that need a missing tool fail with a message naming it.
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "apt-get install:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get -o DPkg::Lock::Timeout=600 update -q && \
	    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $$missing; \
	  fi; \
	else \
	  echo "not root: skipping apt-get; needed packages: $(APT_PACKAGES)"; \
	fi

$(VENV)/.stamp: pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pipilot needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip 'setuptools>=77'
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.stamp

# Compile the Cython extensions in place (the editable install imports them from here).
build: venv
	$(VPY) setup.py -q build_ext --inplace

sim: build
	$(VENV)/bin/pipilot sim

# What the kernel tests fetch from the archive (the kernel images QEMU boots, the
# arm64 headers the cross build uses), fetched once, before pytest, so a test's
# time is its own. A failure here is not fatal: the test that needs the missing
# piece fails with a message naming it.
KERNEL_PREP := kernel/build/.stamp-prepare
$(KERNEL_PREP): tests/kernel/softuart_qemu.py tests/kernel/softuart_kbuild.py
	@mkdir -p $(@D)
	-$(VPY) tests/kernel/softuart_qemu.py --prepare && touch $@

test-prep: venv $(KERNEL_PREP)

# Bytecode is cached for the run even where the environment says not to
# (PYTHONDONTWRITEBYTECODE): without it every worker, and every `pipilot` process a
# test starts, compiles the package and rewrites the tests' asserts afresh.
test: export PYTHONDONTWRITEBYTECODE =

# Two phases: the suite on xdist workers, then the tests marked `alone` (they time a
# real-time process) with nothing beside them. Both run whatever the first gives; a
# phase that selects nothing (exit 5) is no failure unless neither selected anything.
test: system-deps build test-prep
	@a=0; b=0; \
	echo "pytest: parallel phase ($(PYTEST_WORKERS) workers)"; \
	PIPILOT_REQUIRE_CYTHON=1 $(VPY) -m pytest $(PYTEST_ARGS) -n $(PYTEST_WORKERS) \
	  --dist worksteal -m "$(MARK_AND)not alone" || a=$$?; \
	echo "pytest: the tests marked alone, one at a time"; \
	PIPILOT_REQUIRE_CYTHON=1 $(VPY) -m pytest $(PYTEST_ARGS) -n 0 \
	  -m "$(MARK_AND)alone" || b=$$?; \
	if [ $$a = 5 ] && [ $$b = 5 ]; then echo "pytest: no test selected"; exit 5; fi; \
	for rc in $$a $$b; do [ $$rc = 0 ] || [ $$rc = 5 ] || exit $$rc; done

lint: venv
	$(VENV)/bin/ruff check pipilot tests bench
	$(VENV)/bin/mypy

bench: build
	@for b in bench/[!_]*.py; do echo "== $$b"; $(VPY) $$b || exit 1; done

clean:
	rm -rf build $(VENV) pipilot/**/*.so pipilot/sbus/_pack.c .pytest_cache .mypy_cache
