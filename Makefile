# ddb2es — see README.md.  `make` builds ./ddb2es; `make check` runs every test
# twice: once as built, once under AddressSanitizer + UBSan.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
SETUP   := scripts/setup.sh

# libcurl: by default the project's own build of Debian's curl source, HTTP and
# HTTPS only, linked statically (scripts/curl.sh says why); CURL=system links
# Debian's shared libcurl (debian/rules does).
CURL   ?= own
ifeq ($(CURL),own)
CURL_DIR  := $(or $(DDB2ES_CACHE),.cache)/curl/current
CURL_LIB  := $(CURL_DIR)/lib/libcurl.a
PKGS   := libuv jansson libssl libcrypto inih zlib
CURL_CFLAGS := -I$(CURL_DIR)/include -DDDB2ES_OWN_CURL
else ifeq ($(CURL),system)
PKGS   := libuv libcurl jansson libssl libcrypto inih zlib
else
$(error CURL=$(CURL): own (the default) or system)
endif
WARN   := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
          -Wvla -Wpointer-arith -Wwrite-strings -Wimplicit-fallthrough -Wno-unused-parameter
OPT    ?= -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
BUILD  ?= build
# A build folder holds one libcurl's objects: another CURL needs another BUILD.
ifeq ($(filter clean,$(MAKECMDGOALS)),)
ifneq ($(wildcard $(BUILD)/.curl-*),)
ifeq ($(wildcard $(BUILD)/.curl-$(CURL)),)
$(error $(BUILD) was built with $(patsubst $(BUILD)/.curl-%,CURL=%,$(wildcard $(BUILD)/.curl-*)), not CURL=$(CURL): give another BUILD (or make clean))
endif
endif
endif
CURL_MARK := $(BUILD)/.curl-$(CURL)

CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -MMD -MP $(OPT) $(WARN) -Werror -I. $(CURL_CFLAGS) \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(EXTRA_CFLAGS)
LDFLAGS_ALL = -Wl,-z,relro,-z,now $(EXTRA_LDFLAGS)
LIBS   := $(CURL_LIB) $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

LIB_SRC   := $(wildcard base/*.c aws/*.c indexer/*.c config/*.c daemon/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/cmd/main.o
SUP_SRC   := $(wildcard tests/support/*.c)
SUP_OBJ   := $(SUP_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(wildcard tests/test_*.c)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(BUILD)/tests/ddb2es-tests
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%) $(BUILD)/tools/searchd
SEARCHD_SRC := $(wildcard tests/tools/searchd/*.c)
SEARCHD_OBJ := $(SEARCHD_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: ddb2es all setup tools tests check check-timetravel check-fleet check-image test test-asan \
        test-valgrind asan clean install demo fuzz setup-deb deb check-deb \
        fuzz-build fuzz-check bench lint bench-records bench-ceilings bench-replay bench-idle \
        bench-stall bench-run bench-floor bench-leases
.DEFAULT_GOAL := all

all: ddb2es

# The copy at the top is always the last BUILD's binary (build-asan's too).
ddb2es: $(BUILD)/ddb2es
	@cmp -s $< $@ || cp $< $@

$(BUILD)/ddb2es: $(MAIN_OBJ) $(BUILD)/libddb2es.a $(CURL_LIB)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/libddb2es.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Asked at every make: it rebuilds only when apt has a newer curl source.
ifeq ($(CURL),own)
$(CURL_LIB): FORCE
	@scripts/curl.sh >/dev/null
FORCE:
endif

$(CURL_MARK):
	@mkdir -p $(dir $@) && touch $@

$(BUILD)/%.o: %.c | $(CURL_LIB) $(CURL_MARK)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c -o $@ $<

# All unit and integration tests link into one criterion binary:
# run a part with  build/tests/ddb2es-tests --filter 'sigv4/*'
# (libyaml reads the YAML files of deploy/, in the tests only.)
TEST_LIBS := $(shell pkg-config --libs yaml-0.1 2>/dev/null)
$(TEST_BIN): $(TEST_OBJ) $(SUP_OBJ) $(BUILD)/libddb2es.a $(CURL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(TEST_LIBS) -lcriterion

# Tools and benchmarks are plain programs: they link the library and the one
# support module that does not use criterion.
$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/tests/support/ddbsign.o $(BUILD)/libddb2es.a $(CURL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# The search double is one program of several files (tests/tools/searchd/).
$(BUILD)/tools/searchd: $(SEARCHD_OBJ) $(BUILD)/tests/support/sigv4check.o $(BUILD)/libddb2es.a \
                       $(CURL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

tools: $(TOOL_BIN)

$(BUILD)/bench/%: bench/%.c $(BUILD)/tests/support/ddbsign.o $(BUILD)/tests/support/fakehttp.o \
                  $(BUILD)/tests/support/ddbproxy.o $(BUILD)/libddb2es.a $(CURL_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# Benchmarks: not part of `make check`; results go to bench/RESULTS.md.
# `make bench` runs them all (about 40 minutes); the finer targets run one
# part of bench/records.sh: bench-run SHARDS=64, bench-replay, ...  RUNS=5.
SHARDS ?= 64
RUNS   ?= 5
BENCH_RECORDS = @BUILD=$(BUILD) RUNS=$(RUNS) bench/records.sh
bench: setup all tools $(BENCH_BIN)
	@BUILD=$(BUILD) bench/pipeline.sh
	$(BENCH_RECORDS)
bench-records: all tools $(BENCH_BIN)
	$(BENCH_RECORDS)
bench-floor bench-ceilings bench-replay bench-idle bench-stall: all tools $(BENCH_BIN)
	$(BENCH_RECORDS) $(@:bench-%=%)
bench-run: all tools $(BENCH_BIN)
	$(BENCH_RECORDS) run:$(SHARDS)
# Coordinated mode ([leases]): shards per worker, GetRecords and lease-table
# calls per shard-hour at 1, 2, 4 workers for 64 and 1,024 shards (~15 min).
bench-leases: setup all tools $(BENCH_BIN)
	@BUILD=$(BUILD) bench/leases.sh

tests: $(BUILD)/ddb2es $(TEST_BIN) $(TOOL_BIN)

setup:
	@sh $(SETUP)

# Every unit and integration test, against DynamoDB Local and the search double.
# The integration tests mostly wait (on DynamoDB Local, the double, the
# daemon's timers), so they run four at a time even on two cores.
TEST_JOBS ?= 4
test: setup tests
	@BUILD=$(BUILD) tests/run.sh -j$(TEST_JOBS)

test-asan: setup
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) BUILD=build-asan \
	    OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" tests
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run.sh -j$(TEST_JOBS)

# The readers of outside input once more under valgrind, for what ASan does
# not see (reads of uninitialised bytes) and leaks.  criterion runs each
# test in a process of its own, started anew: valgrind follows them
# (--trace-children) and each writes its own log; any error in any log
# fails the step (valgrind's exit code would be the runner's alone, which
# is how this step once passed without checking a test).  About 2 s a test
# under valgrind, so the suites are the parsers: `make test-valgrind
# VALGRIND_SUITES='@(...)/*'` runs others.  Randomized tests run a
# twentieth of their rounds there (tests/support/rounds.h).
VALGRIND_SUITES := @(transform|ddbnum|bulk|jsonx|records|dbehead)/*
VALGRIND_LOGS = $(BUILD)/valgrind
test-valgrind: tests
	@command -v valgrind >/dev/null || { echo "valgrind missing: run scripts/setup.sh"; exit 1; }
	@echo "valgrind: $(VALGRIND_SUITES)"
	@rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	@DDB2ES_VALGRIND=1 valgrind -q --trace-children=yes --log-file=$(VALGRIND_LOGS)/%p.log \
	    --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite \
	    --suppressions=tests/valgrind.supp \
	    $(BUILD)/tests/ddb2es-tests --filter '$(VALGRIND_SUITES)' -j2
	@if find $(VALGRIND_LOGS) -name '*.log' -size +0 | grep -q .; then \
	    find $(VALGRIND_LOGS) -name '*.log' -size +0 -exec cat {} +; \
	    echo "valgrind: errors above"; exit 1; fi

# DynamoDB Local with its clock moved on (tests/test_timetravel.c): iterator
# expiry, a real shard rollover, the 24 h trim.  Not part of `check`: it
# waits for the instance's rollover job (README "Tests" has the times).
# BUILD=build-asan runs it on the sanitizer build (built by test-asan).
check-timetravel: setup tests
	@BUILD=$(BUILD) DDB2ES_TIMETRAVEL=1 tests/run.sh --filter 'timetravel/*' -j4

# Several `ddb2es run` processes sharing the shards through leases
# (tests/test_fleet.c): the long version, with a dozen SIGKILLs at random
# moments, a SIGTERM and a fourth worker started late (about 2 minutes).
check-fleet: setup tests
	@BUILD=$(BUILD) DDB2ES_FLEET_LONG=1 tests/run.sh --filter 'fleet/*' -j1

# The container image: the Dockerfile built with buildah (chroot isolation,
# no daemon) on a debian:bookworm-slim made locally with debootstrap, then run
# as a sidecar configured by the environment alone against DynamoDB Local
# and the search double (tests/image/check-image.sh, tests/test_image.c).
# Root only; not part of `check` (README "As a sidecar" has the times).
check-image:
	@BUILD=$(BUILD) tests/image/check-image.sh

# The three builds of `check` (plain, sanitizers, fuzz) compile BUILD_JOBS
# files at a time; the tests then run as their own targets say.
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check: setup
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all tests
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory test-valgrind
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz-check

# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang into build-fuzz/.
# `make fuzz` runs each for FUZZ_SECONDS on a scratch copy of its corpus;
# `make fuzz-check` (part of check) replays the regression inputs and runs
# each target briefly (FUZZ_CHECK_SECONDS).  See tests/fuzz/README.md.
FUZZ_SECONDS       ?= 300
FUZZ_CHECK_SECONDS ?= 5
FUZZ_CC   := clang
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,build-fuzz/fuzz/%,$(filter-out %/fuzz_util.c,$(FUZZ_SRC)))

fuzz-build:
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) BUILD=build-fuzz CC=$(FUZZ_CC) \
	    OPT="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" build-fuzz/libddb2es.a
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) $(FUZZ_BIN)

# The SigV4 target also parses Authorization values (tests/support/sigv4check.c).
FUZZ_SUPPORT := tests/support/sigv4check.c

build-fuzz/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_util.c tests/fuzz/fuzz.h $(FUZZ_SUPPORT) \
                   build-fuzz/libddb2es.a $(CURL_LIB)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	@$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) $(WARN) -Werror -I. \
	    $(CURL_CFLAGS) \
	    $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -o $@ $< tests/fuzz/fuzz_util.c \
	    $(FUZZ_SUPPORT) build-fuzz/libddb2es.a $(LIBS)

fuzz: setup fuzz-build
	@tests/fuzz/run.sh long $(FUZZ_SECONDS) $(FUZZ_BIN)

fuzz-check: fuzz-build
	@tests/fuzz/run.sh check $(FUZZ_CHECK_SECONDS) $(FUZZ_BIN)

demo:
	@BUILD=$(BUILD) scripts/demo.sh

clean:
	rm -rf build build-asan build-fuzz build-deb build-sys ddb2es

SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man

# The binary, the unit (with ExecStart pointing at this PREFIX), the example
# configuration and the man pages ddb2es(8) and ddb2es.conf(5).
install: $(BUILD)/ddb2es
	install -D -m 0755 $(BUILD)/ddb2es $(DESTDIR)$(PREFIX)/bin/ddb2es
	install -D -m 0644 man/ddb2es.8 $(DESTDIR)$(MANDIR)/man8/ddb2es.8
	install -D -m 0644 man/ddb2es.conf.5 $(DESTDIR)$(MANDIR)/man5/ddb2es.conf.5
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/ddb2es
	sed -e 's|/usr/local/bin/ddb2es|$(PREFIX)/bin/ddb2es|g' \
	    -e 's|/etc/ddb2es/|$(SYSCONFDIR)/ddb2es/|g' \
	    systemd/ddb2es.service >$(DESTDIR)$(UNITDIR)/ddb2es.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/ddb2es.service
	install -m 0640 config/ddb2es.conf.example $(DESTDIR)$(SYSCONFDIR)/ddb2es/ddb2es.conf.example

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(SUP_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(SEARCHD_OBJ:.o=.d)

# The Debian package (debian/), built with Debian's own tools from a copy of
# the tree's files (tracked or new, not ignored) in build-deb/, where the
# .deb lands; then lintian, which must pass (README "Install from a Debian
# package" says what it reports), and mandoc's lint of the man pages.  Not
# part of `check`: `make check-deb` builds it, installs it on this machine,
# checks what it installed and purges it.
VERSION  := $(shell sed -n 's/^\#define DDB2ES_VERSION "\(.*\)"/\1/p' base/version.h)
DEB_DIR  := build-deb
DEB_ARCH  = $(shell dpkg --print-architecture)
DEB_FILE  = $(DEB_DIR)/ddb2es_$(VERSION)_$(DEB_ARCH).deb

setup-deb:
	@sh $(SETUP) deb

deb: setup-deb
	@v=$$(dpkg-parsechangelog -S Version); [ "$$v" = "$(VERSION)" ] || \
	    { echo "debian/changelog is at $$v, base/version.h at $(VERSION)" >&2; exit 1; }
	@mandoc -Tlint -Wwarning man/ddb2es.8 man/ddb2es.conf.5
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/ddb2es-$(VERSION)
	git ls-files -z --cached --others --exclude-standard | \
	    tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(DEB_DIR)/ddb2es-$(VERSION)
	cd $(DEB_DIR)/ddb2es-$(VERSION) && dpkg-buildpackage -us -uc -b -jauto
	lintian --fail-on error,warning --display-info --pedantic \
	    $(DEB_DIR)/ddb2es_$(VERSION)_$(DEB_ARCH).changes
	@echo "deb: $(DEB_FILE)"

check-deb: deb
	@DEB=$(DEB_FILE) VERSION=$(VERSION) tests/check-deb.sh
