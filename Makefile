# plexer: every target works on a fresh Debian machine with a Rust toolchain.
#   make test   install the real peers the tests run (Debian packages, a Python venv), build
#               once, run every test
#   make run    build, and start the quickstart
#   make lint   rustfmt and clippy, warnings as errors
#   make bench  benchmarks beside the peers, printed as tables (docs/benchmarks.md)
#   make clean  remove build output

SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
PLEXER := $(TARGET_DIR)/debug/plexer
HELLO := $(TARGET_DIR)/debug/examples/hello

# The real peers the end-to-end tests talk to, from Debian's packages: a program missing from
# the first list installs all of the second (nginx where a release has no nginx-light). `ip`
# (iproute2) makes the cluster tests' network namespaces and veth pairs.
DEB_PROGRAMS := cgi-fcgi php-cgi nginx lighttpd psql sqlite3 redis-server chromium ip pgbouncer haproxy
DEB_PACKAGES := libfcgi-bin php-cgi nginx-light lighttpd postgresql sqlite3 redis-server chromium iproute2 pgbouncer haproxy
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: test deps c-compiler build run lint bench clean

# Install what the tests need, build once, then run all tests and the doctests.
# nextest, not cargo test: each supervisor test reaps with waitpid(-1) as a subreaper, so it
# needs a process of its own, which nextest gives every test.
test: deps build
	@$(CARGO) nextest --version >/dev/null 2>&1 || { \
		echo "missing: cargo-nextest - installing it"; \
		$(CARGO) install --locked cargo-nextest; }
	$(CARGO) nextest run --workspace
	$(CARGO) test --workspace --doc

# rustc links through `cc`, and rustup brings no C compiler: Debian's build-essential has it.
# Every target that builds needs it first.
c-compiler:
	@command -v cc >/dev/null || { \
		echo "missing: cc - installing build-essential"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y build-essential; }

# Install the Debian packages of the test peers when any of their programs is missing.
deps: c-compiler
	@missing=$$(for p in $(DEB_PROGRAMS); do \
		PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v $$p >/dev/null || echo $$p; \
	done; ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo initdb); \
	if [ -n "$$missing" ]; then \
		echo "missing:" $$missing "- installing $(DEB_PACKAGES)"; \
		$(SUDO) apt-get update && \
		packages="$(DEB_PACKAGES)" && \
		if ! apt-cache show nginx-light >/dev/null 2>&1; then packages="$${packages/nginx-light/nginx}"; fi && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$packages; \
	fi

# The Python peers (Django with flup, for examples/django and its tests; the database clients of
# the audit's tests and py-spy for the slowlog's, tests/requirements.txt): a virtualenv at .venv,
# or at $PLEXER_VENV, where the tests look for it. pip runs again whenever the pinned
# requirements change; Debian's python3 needs python3-venv for `python3 -m venv`.
VENV := $(or $(PLEXER_VENV),$(CURDIR)/.venv)
PY_REQUIREMENTS := examples/django/requirements.txt tests/requirements.txt
VENV_STAMP := $(VENV)/.requirements-installed

deps: $(VENV_STAMP)

$(VENV_STAMP): $(PY_REQUIREMENTS)
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { \
		echo "missing: python3-venv - installing it"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; }
	[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(addprefix -r ,$(PY_REQUIREMENTS))
	cat $(PY_REQUIREMENTS) > $@

# Build every crate and target once, and the two binaries the end-to-end tests run.
build: c-compiler
	$(CARGO) build --workspace --all-targets
	$(CARGO) build -p plexer-fcgi --example hello
	$(CARGO) build -p plexer --bin plexer

# Quickstart (README.md): plexer serving examples/quickstart/ on a copy in target/quickstart/,
# so that `plexer accounts add` writes there and not into the repository. The config and the
# accounts are copied fresh each time; the secret is made once and kept, so cookies a browser
# holds stay valid across runs. QUICKSTART_HTTP is where the development HTTP front listens.
QUICKSTART := $(TARGET_DIR)/quickstart
QUICKSTART_HTTP ?= 127.0.0.1:8080
# How the printed commands name the binary and the config: relative to the checkout when they
# are inside it.
SHOWN_PLEXER := $(patsubst $(CURDIR)/%,%,$(PLEXER))
SHOWN_QUICKSTART := $(patsubst $(CURDIR)/%,%,$(QUICKSTART))
SHOWN_CONFIG := $(SHOWN_QUICKSTART)/plexer.yaml
# The quickstart's accounts have no `user:`: run as root, plexer refuses them unless told.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
run: c-compiler
	$(CARGO) build -p plexer-fcgi --example hello
	$(CARGO) build -p plexer --bin plexer
	@rm -rf $(QUICKSTART)/accounts.d && mkdir -p $(QUICKSTART)/accounts.d
	@cp examples/quickstart/accounts.d/*.yaml $(QUICKSTART)/accounts.d/
	@sed 's|HELLO_PROGRAM|"$(HELLO)"|' examples/quickstart/plexer.yaml > $(QUICKSTART)/plexer.yaml
	@[ -s $(QUICKSTART)/secret ] || { (umask 077; head -c 48 /dev/urandom | base64 -w0 > $(QUICKSTART)/secret; echo >> $(QUICKSTART)/secret); }
	@$(PLEXER) serve -c $(QUICKSTART)/plexer.yaml --check $(ALLOW_ROOT)
	@echo
	@echo "plexer serves the quickstart on http://$(QUICKSTART_HTTP)/ until Ctrl-C. Try, in a browser:"
	@echo "  http://$(QUICKSTART_HTTP)/              the login app (no cookie yet)"
	@echo "  http://$(QUICKSTART_HTTP)/?login=alice  signs in as alice; then / is alice's account"
	@echo "  http://$(QUICKSTART_HTTP)/plexer-status?html  the status page"
	@echo "or with curl, from another shell in this directory (cookie jars in $(SHOWN_QUICKSTART)/):"
	@echo "  curl -c $(SHOWN_QUICKSTART)/alice.jar 'http://$(QUICKSTART_HTTP)/?login=alice'"
	@echo "  curl -b $(SHOWN_QUICKSTART)/alice.jar http://$(QUICKSTART_HTTP)/"
	@echo "  $(SHOWN_PLEXER) accounts -c $(SHOWN_CONFIG) add carol --user carol"
	@echo "  curl -c $(SHOWN_QUICKSTART)/carol.jar 'http://$(QUICKSTART_HTTP)/?login=carol' && curl -b $(SHOWN_QUICKSTART)/carol.jar http://$(QUICKSTART_HTTP)/"
	@echo "  $(SHOWN_PLEXER) accounts -c $(SHOWN_CONFIG) list"
	@echo "  $(SHOWN_PLEXER) status -c $(SHOWN_CONFIG)"
	@echo
	@exec $(PLEXER) serve -c $(QUICKSTART)/plexer.yaml --http $(QUICKSTART_HTTP) $(ALLOW_ROOT)

# Formatting and clippy, as CI would judge them.
lint: c-compiler
	@command -v rustup >/dev/null && rustup component add rustfmt clippy >/dev/null 2>&1 || true
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks beside the peers, printed as markdown tables for docs/benchmarks.md: once as
# installed, once with glibc's rep-movsb copy path off (docs/benchmarks.md says why).
# The Django page of the real-pages benchmark runs in the virtualenv `make deps` makes.
NO_REP_MOVSB := GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4294967295
bench: c-compiler $(VENV_STAMP)
	$(CARGO) bench -p plexer-bench --bench codec_round_trip
	$(CARGO) run -q -p plexer-bench --bin plexer-bench-table
	CRITERION_HOME=$(TARGET_DIR)/criterion-no-rep-movsb $(NO_REP_MOVSB) \
		$(CARGO) bench -p plexer-bench --bench codec_round_trip
	$(CARGO) run -q -p plexer-bench --bin plexer-bench-table $(TARGET_DIR)/criterion-no-rep-movsb
	@# The supervisor beside php-fpm (issue 3), and the real pages (issue 15): Debian's php-fpm,
	@# installed when missing.
	@PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v php-fpm8.2 >/dev/null || \
		ls /usr/sbin/php-fpm* >/dev/null 2>&1 || { \
		echo "missing: php-fpm - installing php-fpm"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y php-fpm; }
	$(CARGO) build --release -q -p plexer-fcgi --example hello
	$(CARGO) run --release -q -p plexer-bench --bin plexer-bench-pool -- \
		--hello $(TARGET_DIR)/release/examples/hello
	@# The plexer's hop behind nginx (issue 4): nginx and php-cgi as `make deps` installs them.
	@PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v nginx >/dev/null && \
		command -v php-cgi >/dev/null || { \
		echo "missing: nginx or php-cgi - installing them"; \
		$(SUDO) apt-get update && \
		packages="nginx-light php-cgi" && \
		if ! apt-cache show nginx-light >/dev/null 2>&1; then packages="nginx php-cgi"; fi && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$packages; }
	@# The generic relays the hop is measured beside (issue 15): nginx's stream module, HAProxy.
	@[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] && [ -x /usr/sbin/haproxy ] || { \
		echo "missing: libnginx-mod-stream or haproxy - installing them"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y libnginx-mod-stream haproxy; }
	$(CARGO) build --release -q -p plexer --bin plexer
	$(CARGO) run --release -q -p plexer-bench --bin plexer-bench-front -- \
		--plexer $(TARGET_DIR)/release/plexer --hello $(TARGET_DIR)/release/examples/hello
	@# Real pages (issue 15): a PHP table of 3,000 rows under php-fpm and under plexer serve
	@# with php-cgi, OPcache on for both; Django's hello view under flup, with plexer and without.
	$(CARGO) run --release -q -p plexer-bench --bin plexer-bench-pages -- \
		--plexer $(TARGET_DIR)/release/plexer --python $(VENV)/bin/python
	@# 1 GiB bodies through nginx, with plexer and without (issue 15).
	$(CARGO) run --release -q -p plexer-bench --bin plexer-bench-bodies -- \
		--plexer $(TARGET_DIR)/release/plexer --hello $(TARGET_DIR)/release/examples/hello
	@# Routing by the authorizer beside the cookie (issue 12).
	$(CARGO) run --release -q -p plexer-bench --bin plexer-bench-authorizer -- \
		--plexer $(TARGET_DIR)/release/plexer --hello $(TARGET_DIR)/release/examples/hello
	@# Live accounts (issue 5): add to first request, 1,000 files, 10,000 accounts beside 10.
	$(CARGO) run --release -q -p plexer-bench --bin plexer-bench-accounts -- \
		--plexer $(TARGET_DIR)/release/plexer --hello $(TARGET_DIR)/release/examples/hello
	@# Many nodes, one registry (issue 14): propagation between two nodes through PostgreSQL,
	@# and a node started with 10,000 accounts in the table beside 10,000 files.
	@command -v psql >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "missing: PostgreSQL - installing postgresql"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }
	$(CARGO) run --release -q -p plexer-bench --bin plexer-bench-cluster -- \
		--plexer $(TARGET_DIR)/release/plexer --hello $(TARGET_DIR)/release/examples/hello

# Remove build output.
clean:
	$(CARGO) clean
