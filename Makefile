# Serverless MariaDB: top-level build.  `make demo` and `make test` are the two
# commands a user types; both install missing Debian packages first.

BUILD   := $(CURDIR)/build
PYTHON  := /usr/bin/python3
FUZZ_SECONDS ?= 20
export BUILD

.PHONY: test-containers all deps ensure-deps controller module plugin unit fuzz fuzz-short e2e test test-trixie trixie-root bench demo clean

all: controller module plugin

deps:
	scripts/install-deps.sh

# Quiet when everything is present; installs what is missing otherwise.
ensure-deps:
	@scripts/install-deps.sh

controller:
	$(MAKE) -C controller

module:
	$(MAKE) -C ngx_stream_wake_module

plugin:
	$(MAKE) -C mariadb_plugin

unit: all
	$(MAKE) -C controller unit
	$(MAKE) -C ngx_stream_wake_module unit
	$(MAKE) -C mariadb_plugin unit

fuzz-short: all
	$(MAKE) -C ngx_stream_wake_module fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz: all
	$(MAKE) -C ngx_stream_wake_module fuzz FUZZ_SECONDS=300

e2e: all
	cd tests/e2e && $(PYTHON) -m pytest -p no:cacheprovider -q -ra .

# On Debian 12 the suite runs a second time on Debian 13's nginx 1.26 and
# MariaDB 11.8 (test-trixie, below); SMDB_TRIXIE=0 skips that.
SMDB_TRIXIE ?= 1
test: ensure-deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) fuzz-short
	$(MAKE) e2e
	@if [ "$(SMDB_TRIXIE)" != 0 ] && grep -qs '^VERSION_ID="12"' /etc/os-release; then \
	    $(MAKE) test-trixie; fi

# Containers for real: podman's Docker Engine API, the images built from
# images/*/Dockerfile on a local Debian base (nothing is pulled), the docker
# backend's e2e tests and the compose demo; then the kubernetes backend
# against the fake API server (tests/k8s: a fake, whose pods are podman
# containers).  Needs root.  .ci/run runs it after `make test`.
test-containers: ensure-deps
	$(MAKE) all
	cd tests/containers && $(PYTHON) -m pytest -p no:cacheprovider -q -ra .
	cd tests/k8s && $(PYTHON) -m pytest -p no:cacheprovider -q -ra .

# The same build and tests inside a cached Debian 13 root (nginx 1.26,
# MariaDB 11.8, clang 19) under build/trixie; needs root (debootstrap,
# mount, chroot).  TRIXIE_TESTS picks e2e files (default: all of tests/e2e).
test-trixie:
	scripts/test-trixie.sh

trixie-root:
	scripts/trixie-root.sh

bench: ensure-deps
	$(MAKE) all
	$(PYTHON) bench/run.py

demo: ensure-deps
	$(MAKE) all
	scripts/demo.sh

# rm -rf would walk into the chroot's bind mounts (the worktree, /dev):
# refuse while anything is mounted under build/ (make test-trixie running).
clean:
	@if awk -v b="$(BUILD)/" 'index($$2, b) == 1 { f = 1 } END { exit !f }' /proc/mounts; then \
	    echo "clean: mounts under $(BUILD) (make test-trixie running?)" >&2; exit 1; fi
	rm -rf $(BUILD)
	$(MAKE) -C controller clean
	$(MAKE) -C ngx_stream_wake_module clean
	$(MAKE) -C mariadb_plugin clean
