# ngx_tunnel: build, test, install.  GNU make, Debian 12.
#
#   make                build/ngx_tunnel_module.so and build/tunnel
#   make test           every test stage, then a summary:
#     make test-unit      tests/unit/test_*.c, plain and with ASan+UBSan
#     make test-fuzz      replay of tests/fuzz/corpus/<fuzz_name>/
#     make interop        tests/interop/run.sh, if there is one
#     make test-t         prove -v -I t/lib t/ (integration, real nginx)
#   make test-asan      t/ against nginx built with ASan+UBSan (tests/asan/)
#   make fuzz           run each fuzzer for FUZZ_SECONDS (60)
#   make install        PREFIX (/usr/local), MODULES_DIR, DESTDIR
#   make deps           install missing Debian packages (.ci/deps)
#   make bench          ngx_tunnel beside its peers on loopback, one table
#                       (tests/bench/run.sh; T, ROUNDS, PATHS there)
#   make soak           SOAK_SECONDS (1800) of traffic, reloads and client
#                       restarts: RSS start/end, errors (tests/soak/run.sh)
#   make demo, clean
#
# make, make test and make demo check the Debian packages first
# (SKIP_DEPS=1 skips that).  Also: CC, CFLAGS, CLANG, TEST_TIMEOUT (per
# test program, seconds), NGINX_SRC, NGX_CC_OPT, NGX_LD_OPT.

SHELL := /bin/bash
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:

PREFIX       ?= /usr/local
MODULES_DIR  ?= /usr/lib/nginx/modules
NGINX_SRC    ?= /usr/share/nginx/src
FUZZ_SECONDS ?= 60
TEST_TIMEOUT ?= 300
CLANG        ?= clang

CFLAGS       ?= -O2 -g
ALL_CFLAGS    = $(CFLAGS) -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -Icore
# Sanitizer builds: no -Werror, so that a warning only clang gives does not
# hide what the sanitizers find.
SAN_CFLAGS    = -O1 -g -fno-omit-frame-pointer -Wall -Wextra -std=c11 \
                -D_GNU_SOURCE -Icore -fno-sanitize-recover=all
export UBSAN_OPTIONS ?= print_stacktrace=1

CORE_SRCS    := $(sort $(wildcard core/*.c))
CORE_HDRS    := $(sort $(wildcard core/*.h))
MODULE_SRCS  := $(sort $(wildcard ngx_tunnel_module/*.c))
MODULE_HDRS  := $(sort $(wildcard ngx_tunnel_module/*.h))
CLIENT_SRCS  := $(sort $(wildcard client/*.c))
CLIENT_HDRS  := $(sort $(wildcard client/*.h))
UNIT_TESTS   := $(sort $(basename $(notdir $(wildcard tests/unit/test_*.c))))
FUZZERS      := $(sort $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c))))
T_FILES      := $(sort $(wildcard t/*.t))

# Debian's nginx has these in its "nginx -V" but not in conf_flags; the
# stream ones change NGX_STREAM_SSL and friends, so give them to match.
NGX_EXTRA_FLAGS = --with-stream --with-stream_ssl_module \
                  --with-stream_ssl_preread_module --with-stream_realip_module
# Debian's own hardening flags (as in "nginx -V"); -O2 also lets gcc find
# more uninitialized uses, and nginx's Makefile adds -Werror.
NGX_CC_OPT   ?= -g -O2 -fstack-protector-strong -Wformat \
                -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2
NGX_LD_OPT   ?= -Wl,-z,relro -Wl,-z,now -fPIC
NGX_BUILD    := build/nginx

RESULTS      := build/test-results
.PHONY: all deps test test-unit test-fuzz interop test-t test-asan fuzz \
        install \
        clean demo FORCE


all: build/ngx_tunnel_module.so build/tunnel

deps:
ifeq ($(SKIP_DEPS),)
	@bash .ci/deps
endif


# The module is built by nginx's own configure and Makefile, against
# Debian's nginx-dev, so that it loads into Debian's nginx (--with-compat).
# configure runs again only when the set of files or the configure flags
# change, not on every edit: nginx's Makefile rebuilds what an edit touches.
# build/module-files holds both and is rewritten only when they differ.

NGX_CONFIGURE = ./configure "$${NGX_CONF_FLAGS[@]}" $(NGX_EXTRA_FLAGS) \
    --with-cc-opt='$(NGX_CC_OPT)' --with-ld-opt='$(NGX_LD_OPT)' \
    --add-dynamic-module=$(CURDIR) --builddir=$(CURDIR)/$(NGX_BUILD)

build/module-files: FORCE | deps
	@mkdir -p build
	@printf '%s\n' "$(NGX_CONFIGURE)" $(MODULE_SRCS) $(MODULE_HDRS) \
	    $(CORE_SRCS) $(CORE_HDRS) > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# conf_flags: a new nginx-dev (Debian update) means configuring again.
$(NGX_BUILD)/Makefile: build/module-files config \
                       $(wildcard $(NGINX_SRC)/conf_flags)
	rm -rf build/nginx-src $(NGX_BUILD)
	cp -r $(NGINX_SRC) build/nginx-src
	@echo "configure nginx (log: build/configure.log)"
	@cd build/nginx-src && . ./conf_flags && $(NGX_CONFIGURE) \
	    > $(CURDIR)/build/configure.log 2>&1 \
	    || { tail -20 $(CURDIR)/build/configure.log; exit 1; }

# With a static --with-stream, "modules" builds our .so and nothing else.
$(NGX_BUILD)/ngx_tunnel_module.so: $(NGX_BUILD)/Makefile $(MODULE_SRCS) \
                                   $(MODULE_HDRS) $(CORE_SRCS) $(CORE_HDRS)
	$(MAKE) -C build/nginx-src -f $(CURDIR)/$(NGX_BUILD)/Makefile modules

# A new file, renamed into place: an nginx that runs the old one keeps its
# mapping intact (cp would rewrite the file under it and crash it).
build/ngx_tunnel_module.so: $(NGX_BUILD)/ngx_tunnel_module.so
	cp $< $@.tmp && mv -f $@.tmp $@


build/tunnel: $(CLIENT_SRCS) $(CLIENT_HDRS) $(CORE_SRCS) $(CORE_HDRS) | deps
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -Iclient -o $@ $(CLIENT_SRCS) $(CORE_SRCS) \
	    $(LDFLAGS) -lssl -lcrypto


# Tests.  Each stage appends "PASS|FAIL|SKIP <what>" lines to $(RESULTS);
# "make test" runs every stage, even after a failure, and sums them up.

build/unit/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(CORE_SRCS) \
              $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(CORE_SRCS)

build/unit-san/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(CORE_SRCS) \
                  $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -fsanitize=address,undefined -Itests/unit \
	    -o $@ $< $(CORE_SRCS)

# Unit tests that compile a client file in (test_options.c includes
# client/options.c, test_view.c client/view.c): rebuilt when it changes.
build/unit/test_options build/unit-san/test_options: client/options.c \
    $(CLIENT_HDRS)
build/unit/test_view build/unit-san/test_view: client/view.c $(CLIENT_HDRS)

build/fuzz/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(CORE_SRCS) \
              $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -fsanitize=fuzzer,address,undefined \
	    -Itests/fuzz -o $@ $< $(CORE_SRCS)

# $(call check,NAME,COMMAND): run COMMAND, log to build/log/NAME.log,
# record the result; the log is shown when it fails.
check = log=build/log/$(1).log; mkdir -p $$(dirname $$log); \
    if ( $(2) ) > $$log 2>&1; then echo "PASS $(1)" | tee -a $(RESULTS); \
    else echo "FAIL $(1)" | tee -a $(RESULTS); tail -40 $$log; fail=1; fi

# $(call stage_begin,NAME) forgets this stage's earlier results;
# $(call stage_end,NAME) prints its counts and exits with its status.
stage_begin = mkdir -p build; touch $(RESULTS); fail=0; \
    sed -i '/^[A-Z]* $(1)[-/ ]/d' $(RESULTS)
stage_end = n() { grep -c "^$$1 $(1)[-/ ]" $(RESULTS) || true; }; \
    echo "$(1): $$(n PASS) passed, $$(n FAIL) failed, $$(n SKIP) skipped"; \
    exit $$fail

test-unit: | deps
	@$(call stage_begin,unit); \
	for t in $(UNIT_TESTS); do \
	    for v in unit unit-san; do \
	        $(call check,$$v/$$t,$(MAKE) -s --no-print-directory \
	            build/$$v/$$t && timeout $(TEST_TIMEOUT) build/$$v/$$t); \
	    done; \
	done; \
	[ -n "$(UNIT_TESTS)" ] || echo "SKIP unit (no tests/unit/test_*.c)" \
	    | tee -a $(RESULTS); \
	$(call stage_end,unit)

test-fuzz: | deps
	@$(call stage_begin,fuzz); mkdir -p build/fuzz/empty; \
	for f in $(FUZZERS); do \
	    c=tests/fuzz/corpus/$$f; \
	    [ -d $$c ] || { echo "fuzz: no $$c/, replaying an empty input"; \
	                    c=build/fuzz/empty; }; \
	    $(call check,fuzz/$$f,$(MAKE) -s --no-print-directory \
	        build/fuzz/$$f && timeout $(TEST_TIMEOUT) build/fuzz/$$f \
	        -runs=0 $$c/); \
	done; \
	[ -n "$(FUZZERS)" ] || echo "SKIP fuzz (no tests/fuzz/fuzz_*.c)" \
	    | tee -a $(RESULTS); \
	$(call stage_end,fuzz)

interop: | deps
	@$(call stage_begin,interop); \
	if [ -f tests/interop/run.sh ]; then \
	    $(call check,interop/run.sh,bash tests/interop/run.sh); \
	else \
	    echo "SKIP interop (no tests/interop/run.sh)" | tee -a $(RESULTS); \
	fi; \
	$(call stage_end,interop)

# prove's own output is the point here: it is shown, not only logged.
test-t: all
	@$(call stage_begin,t); \
	if [ -n "$(T_FILES)" ]; then \
	    if TUNNEL_MODULE=$(CURDIR)/build/ngx_tunnel_module.so \
	       TUNNEL_CLIENT=$(CURDIR)/build/tunnel \
	       prove -v -I t/lib t/; \
	    then echo "PASS t/ (prove)" | tee -a $(RESULTS); \
	    else echo "FAIL t/ (prove)" | tee -a $(RESULTS); fail=1; fi; \
	else \
	    echo "SKIP t (no t/*.t)" | tee -a $(RESULTS); \
	fi; \
	$(call stage_end,t)

test: all
	@rm -f $(RESULTS); rc=0; \
	for s in test-unit test-fuzz interop test-t; do \
	    echo "== $$s"; \
	    $(MAKE) --no-print-directory SKIP_DEPS=1 $$s || rc=1; \
	done; \
	echo "== summary"; \
	grep -v '^PASS' $(RESULTS) || true; \
	n() { grep -c "^$$1" $(RESULTS) || true; }; \
	echo "test: $$(n PASS) passed, $$(n FAIL) failed, $$(n SKIP) skipped"; \
	exit $$rc


# The t/ suite again, against nginx 1.22.1 built from source with ASan and
# UBSan and the module linked in, and the client built with them too.
build/asan/tunnel: $(CLIENT_SRCS) $(CLIENT_HDRS) $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -fsanitize=address,undefined -Iclient -o $@ \
	    $(CLIENT_SRCS) $(CORE_SRCS) -lssl -lcrypto

test-asan: build/asan/tunnel | deps
	@$(call stage_begin,asan); \
	$(call check,asan/build-nginx,bash tests/asan/build-nginx.sh \
	    $(CURDIR) $(CURDIR)/build/asan); \
	if [ $$fail = 0 ]; then \
	    if NGINX_BINARY=$(CURDIR)/build/asan/nginx TUNNEL_MODULE= \
	       TUNNEL_CLIENT=$(CURDIR)/build/asan/tunnel \
	       ASAN_OPTIONS=detect_leaks=0 prove -I t/lib t/; \
	    then echo "PASS asan/t/ (prove)" | tee -a $(RESULTS); \
	    else echo "FAIL asan/t/ (prove)" | tee -a $(RESULTS); fail=1; fi; \
	fi; \
	$(call stage_end,asan)


# New inputs go to build/fuzz/corpus/<name>/ (libFuzzer writes to the first
# directory given), crashes to build/fuzz/artifacts/: the repository's corpus
# only changes when someone copies inputs over on purpose.
fuzz: | deps
	@[ -n "$(FUZZERS)" ] || echo "fuzz: no tests/fuzz/fuzz_*.c"; \
	for f in $(FUZZERS); do \
	    $(MAKE) -s --no-print-directory build/fuzz/$$f || exit 1; \
	    mkdir -p build/fuzz/corpus/$$f build/fuzz/artifacts; \
	    c=tests/fuzz/corpus/$$f; [ -d $$c ] || c=; \
	    echo "== fuzz $$f for $(FUZZ_SECONDS)s"; \
	    build/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/$$f- \
	        build/fuzz/corpus/$$f $$c || exit 1; \
	done


# Debian loads modules-enabled/*.conf in name order and the tunnel module
# needs ngx_stream_module.so loaded first (50-mod-stream.conf): hence 60-.
MODCONF_DIR = $(DESTDIR)/usr/share/nginx/modules-available
ifeq ($(MODULES_DIR),/usr/lib/nginx/modules)
LOAD_PATH   = modules/ngx_tunnel_module.so
else
LOAD_PATH   = $(MODULES_DIR)/ngx_tunnel_module.so
endif

install: build/ngx_tunnel_module.so build/tunnel
	install -d $(DESTDIR)$(MODULES_DIR) $(DESTDIR)$(PREFIX)/bin \
	    $(MODCONF_DIR) $(DESTDIR)/etc/nginx/modules-enabled
	install -m 644 build/ngx_tunnel_module.so $(DESTDIR)$(MODULES_DIR)/
	install -m 755 build/tunnel $(DESTDIR)$(PREFIX)/bin/
	echo 'load_module $(LOAD_PATH);' > $(MODCONF_DIR)/mod-tunnel.conf
	ln -sf /usr/share/nginx/modules-available/mod-tunnel.conf \
	    $(DESTDIR)/etc/nginx/modules-enabled/60-mod-tunnel.conf


demo: all
	@bash examples/demo.sh


# Benchmarks (issue 6): builds what it needs, starts and stops every path.
.PHONY: bench
bench: all
	@bash tests/bench/run.sh

# The soak (issue 7): SOAK_SECONDS (1800) of mixed traffic with reloads and
# client restarts; RSS and fds at the start and the end, errors beyond the
# injected ones (tests/soak/run.sh).
.PHONY: soak
soak: all
	@bash tests/soak/run.sh

clean:
	rm -rf build

FORCE:
