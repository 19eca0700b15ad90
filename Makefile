# uvchat: `make run` and `make test` are all a new machine needs (Debian; installs what is missing).
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin

BUILD   := .build
VENV    := $(BUILD)/venv
PY      := $(VENV)/bin/python
JOBS    ?= 2
FUZZ_SECONDS ?= 120
FUZZ_SECONDS_TEST ?= 8
PORT    ?= 8080
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT     := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends
RELEASE := $(BUILD)/release/uvchatd

.PHONY: run test build debug clean deps test-deps unit e2e conformance venv bench microbench fuzz test-asan asan-smoke check-layers

## run: install what is missing, build a release binary, serve www on http://localhost:$(PORT)
run: build
	$(RELEASE) --port $(PORT) --www www

## build: release binary at .build/release/uvchatd
build: deps
	swift build -c release -j $(JOBS) --product uvchatd

debug: deps
	swift build -j $(JOBS)

## test: everything CI checks: unit tests, end-to-end protocol and browser tests, Autobahn conformance
test: test-deps venv check-layers
	swift build -j $(JOBS) --build-tests
	swift test -j $(JOBS) --skip-build
	swift build -c release -j $(JOBS) --product uvchatd
	swift build -c release -j $(JOBS) --product uvchat-bench
	bash Benchmarks/run.sh --build-only
	$(MAKE) --no-print-directory e2e conformance asan-smoke
	bash Fuzz/run.sh $(FUZZ_SECONDS_TEST)

## check-layers (part of test): only Sources/UVChat/Loop (and the load generator) may import libuv, only Loop imports
## hiredis, only Sources/UVChat/Crypto loads libcrypto
check-layers:
	@bad=$$(grep -rlE '^[[:space:]]*(@[_A-Za-z]+[[:space:]]+)*import[[:space:]]+(struct |func )?CHiredis' \
	    Sources Tests Benchmarks Fuzz --include='*.swift' | grep -vE '^Sources/UVChat/Loop/'); \
	if [ -n "$$bad" ]; then echo "hiredis is imported outside Sources/UVChat/Loop:" $$bad; exit 1; fi; \
	bad=$$(grep -rlE '^[[:space:]]*(@[_A-Za-z]+[[:space:]]+)*import[[:space:]]+(CLibUV|struct CLibUV|func CLibUV)' \
	    Sources Tests Benchmarks Fuzz --include='*.swift' | grep -vE '^Sources/UVChat/Loop/|^Sources/uvchat-bench/'); \
	if [ -n "$$bad" ]; then echo "libuv is imported outside Sources/UVChat/Loop:" $$bad; exit 1; fi; \
	bad=$$(grep -rlE '\bdlopen\(' Sources Tests Benchmarks Fuzz --include='*.swift' | grep -vE '^Sources/UVChat/Crypto/'); \
	if [ -n "$$bad" ]; then echo "a library is loaded outside Sources/UVChat/Crypto:" $$bad; exit 1; fi; \
	echo "check-layers: libuv and hiredis are imported only in Sources/UVChat/Loop (libuv also in the load generator), libcrypto loaded only in Sources/UVChat/Crypto"

## asan-smoke (part of test): Autobahn and the fault tests against an AddressSanitizer build (leaks fail the exit)
asan-smoke: venv
	swift build -j $(JOBS) --sanitize=address --scratch-path $(BUILD)-asan --product uvchatd
	$(PY) Tests/conformance/autobahn.py --binary $(BUILD)-asan/debug/uvchatd --www www --outdir $(BUILD)/autobahn-asan
	UVCHATD=$(BUILD)-asan/debug/uvchatd $(VENV)/bin/pytest -q -p no:cacheprovider Tests/e2e/test_faults.py

## unit: only the Swift unit tests
unit: deps
	swift test -j $(JOBS)

## e2e (part of test): the browser suites run beside the socket suites (they mostly wait on Chromium)
e2e: venv
	@UVCHATD=$(RELEASE) $(VENV)/bin/pytest -q -p no:cacheprovider Tests/e2e/test_browser.py Tests/e2e/test_browser_resume.py Tests/e2e/test_browser_images.py \
	    Tests/e2e/test_browser_calls.py Tests/e2e/test_browser_webrtc.py Tests/e2e/test_browser_moderation.py \
	    > $(BUILD)/e2e-browser.log 2>&1 & browser=$$!; \
	UVCHATD=$(RELEASE) $(VENV)/bin/pytest -q -p no:cacheprovider Tests/e2e --ignore=Tests/e2e/test_browser.py \
	    --ignore=Tests/e2e/test_browser_resume.py --ignore=Tests/e2e/test_browser_images.py \
	    --ignore=Tests/e2e/test_browser_calls.py --ignore=Tests/e2e/test_browser_webrtc.py \
	    --ignore=Tests/e2e/test_browser_moderation.py; sockets=$$?; \
	wait $$browser; browsers=$$?; echo "--- browser suites:"; cat $(BUILD)/e2e-browser.log; \
	test $$sockets = 0 && test $$browsers = 0

conformance: venv
	$(PY) Tests/conformance/autobahn.py --binary $(RELEASE) --www www --outdir $(BUILD)/autobahn

venv: $(VENV)/.installed
$(VENV)/.installed: Tests/requirements.txt
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && $(APT) python3-venv python3-pip; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/requirements.txt
	touch $@

## deps: libuv (and pkg-config), hiredis (the cluster's Redis client) and OpenSSL's libcrypto (loaded at run time)
## from Debian, only when missing
deps:
	@{ pkg-config --exists libuv hiredis && /sbin/ldconfig -p | grep -q 'libcrypto\.so\.3 '; } 2>/dev/null || \
	    { echo "installing libuv1-dev libhiredis-dev libssl3"; $(SUDO) apt-get update -qq && \
	      $(APT) libuv1-dev libhiredis-dev libssl3 pkg-config; }

## test-deps: also the tools the tests drive: Chromium and its driver, nginx, promtool, systemd's tools, openssl,
## coturn (the call tests start its turnserver), iproute2 (their network namespaces) and redis-server (the cluster
## tests start their own)
TEST_TOOLS := chromium:chromium chromedriver:chromium-driver nginx:nginx-light promtool:prometheus \
	systemd-socket-activate:systemd systemd-analyze:systemd openssl:openssl groff:groff-base setpriv:util-linux \
	turnserver:coturn ip:iproute2 redis-server:redis-server
# No package may start a daemon while they install (a policy-rc.d that answers 101, "forbidden", unless the machine
# has one of its own): Debian's coturn would start a TURN server with its default configuration on every address,
# and its init script's failure would fail the install. Where systemd runs, the coturn unit the package enabled is
# disabled again, so that a reboot does not start it either; the tests run their own turnserver. The same holds for
# Debian's redis-server: the cluster tests start their own on a unix socket in a temporary folder.
POLICY_RC := /usr/sbin/policy-rc.d
test-deps: deps
	@missing=""; for t in $(TEST_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	    if [ ! -e $(POLICY_RC) ]; then trap '$(SUDO) rm -f $(POLICY_RC)' EXIT; \
	        printf '#!/bin/sh\n# make test-deps: no daemon starts while the test tools install\nexit 101\n' \
	            | $(SUDO) tee $(POLICY_RC) >/dev/null && $(SUDO) chmod 755 $(POLICY_RC); fi; \
	    $(SUDO) apt-get update -qq && $(APT) $$missing || exit 1; \
	    if [ -d /run/systemd/system ]; then for unit in coturn redis-server; do case "$$missing " in *" $$unit "*) \
	        $(SUDO) systemctl disable --now $$unit.service >/dev/null 2>&1 || true;; esac; done; fi; \
	fi

## fuzz: each libFuzzer target for FUZZ_SECONDS seconds
fuzz:
	bash Fuzz/run.sh $(FUZZ_SECONDS)

## test-asan: the end-to-end and conformance suites against an AddressSanitizer build
test-asan: test-deps venv
	swift build -j $(JOBS) --sanitize=address --scratch-path $(BUILD)-asan --product uvchatd
	UVCHATD=$(BUILD)-asan/debug/uvchatd $(VENV)/bin/pytest -q -p no:cacheprovider Tests/e2e --ignore=Tests/e2e/test_browser.py \
	    --ignore=Tests/e2e/test_browser_resume.py --ignore=Tests/e2e/test_browser_images.py \
	    --ignore=Tests/e2e/test_browser_calls.py --ignore=Tests/e2e/test_browser_webrtc.py \
	    --ignore=Tests/e2e/test_browser_moderation.py
	$(PY) Tests/conformance/autobahn.py --binary $(BUILD)-asan/debug/uvchatd --www www --outdir $(BUILD)/autobahn-asan

## bench: the load generator against a release build, server and generator pinned to separate cores
bench: deps
	bash bench/run.sh

## microbench: ordo-one/benchmark microbenchmarks of the per-message code (Benchmarks/), then the allocation check
microbench: deps
	bash Benchmarks/run.sh

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-micro

-include mk/install.mk
