# nimsync — one Rust core, three front doors (C, Python, Nim).
#
#   make demo    build everything and run the showcase in C, Python and Nim
#   make test    build everything and run every test suite (ends "N passed, N failed")
#   make bench   run the benchmarks (nimsync beside its peers)
#
# Both install what they need on a fresh Debian machine (scripts/bootstrap.sh).

ROOT      := $(abspath .)
PREFIX    ?= $(ROOT)/build/prefix
VENV      := $(ROOT)/.venv
PYTHON    := $(VENV)/bin/python
MATURIN   := $(VENV)/bin/maturin
LIBDIR    := $(ROOT)/target/release
VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
NIMFLAGS  := --hints:off --mm:orc --threads:on -d:release

.PHONY: all deps build build-rust build-python build-nim install header test demo \
        demo-c demo-python demo-nim lint loom doc doc-rust doc-nim bench clean

all: build

deps:
	@scripts/bootstrap.sh

build: deps build-rust build-python build-nim

build-rust:
	cargo build --release -p nimsync-ffi

## Installs the header, the libraries and a pkg-config file under $(PREFIX).
install: build-rust
	install -d $(PREFIX)/include $(PREFIX)/lib/pkgconfig
	install -m 644 include/nimsync.h $(PREFIX)/include/
	install -m 755 $(LIBDIR)/libnimsync.so $(PREFIX)/lib/
	install -m 644 $(LIBDIR)/libnimsync.a $(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' ffi/nimsync.pc.in > $(PREFIX)/lib/pkgconfig/nimsync.pc

## Regenerates include/nimsync.h from ffi/src with cbindgen.
header:
	NIMSYNC_UPDATE_HEADER=1 cargo test -q -p nimsync-ffi --test header

build-python: deps
	cd python && VIRTUAL_ENV=$(VENV) $(MATURIN) develop --release --quiet

build-nim: build-rust
	cd nim && nim c $(NIMFLAGS) --outdir:$(ROOT)/build/nim examples/demo.nim

test: deps
	@scripts/test.sh

demo: deps install build-python build-nim demo-c demo-python demo-nim

demo-c: install
	@mkdir -p build/c
	cc -O2 -Wall examples/c/demo.c -o build/c/demo \
	    $$(PKG_CONFIG_PATH=$(PREFIX)/lib/pkgconfig pkg-config --cflags --libs nimsync) \
	    -lpthread -Wl,-rpath,$(PREFIX)/lib
	@echo; echo "== C"; build/c/demo

demo-python: build-python
	@echo; echo "== Python"; $(PYTHON) python/examples/demo.py

demo-nim: build-nim
	@echo; echo "== Nim"; build/nim/demo

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Model-checks the lock-free protocols with loom, three preemptions deep
## (`make test` runs the same models two deep to stay fast).
loom:
	RUSTFLAGS="--cfg loom" cargo test -p nimsync-core --release --target-dir target/loom --test loom_channel --test loom_cancel --test loom_metrics --test loom_tracing --lib

doc: doc-rust doc-nim

doc-rust:
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

## Nim API docs; any warning fails the build.
doc-nim:
	@mkdir -p build
	cd nim && nim doc --hints:off --project --index:on --outdir:$(ROOT)/build/nimdoc src/nimsync.nim \
	    > $(ROOT)/build/nimdoc.log 2>&1; status=$$?; cat $(ROOT)/build/nimdoc.log; \
	    test $$status -eq 0 && ! grep -q "Warning:" $(ROOT)/build/nimdoc.log

## One run of every benchmark (channels; spawning and fork-join), then a table
## of ratios to the peers measured in the same run and a chart
## (build/bench/nimsync-bench.png). Each
## program shows its progress on stderr. NIMSYNC_BENCH_MESSAGES, _ROUNDS and
## _PINGS (Rust, C) and NIMSYNC_BENCH_SCALE (Python, Nim) shrink it.
BENCH := $(ROOT)/build/bench
bench: deps build-rust build-python
	@mkdir -p $(BENCH) && rm -f $(BENCH)/*.jsonl
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check matplotlib
	cargo bench -q -p nimsync-core --bench channels > $(BENCH)/rust.jsonl
	cargo bench -q -p nimsync-core --bench tasks >> $(BENCH)/rust.jsonl
	cargo bench -q -p nimsync-core --bench metrics >> $(BENCH)/rust.jsonl
	cargo bench -q -p nimsync-core --bench tracing >> $(BENCH)/rust.jsonl
	@command -v go >/dev/null || apt-get install -y -qq golang-go
	cd bench/go && GOCACHE=$(BENCH)/gocache go run tasks.go > $(BENCH)/go.jsonl
	cc -O2 -Wall -Wextra bench/c_channels.c -Iinclude -L$(LIBDIR) -lnimsync -lpthread \
	    -Wl,-rpath,$(LIBDIR) -o $(BENCH)/c_channels
	cc -O2 -Wall -Wextra bench/c_channels.c -Iinclude $(LIBDIR)/libnimsync.a -lpthread -ldl -lm \
	    -o $(BENCH)/c_channels_static
	$(BENCH)/c_channels > $(BENCH)/c.jsonl
	$(BENCH)/c_channels_static "nimsync C ABI static" >> $(BENCH)/c.jsonl
	$(PYTHON) python/bench/bench_channels.py > $(BENCH)/python.jsonl
	cd nim && nim c $(NIMFLAGS) --outdir:$(BENCH) bench/bench_channels.nim
	$(BENCH)/bench_channels > $(BENCH)/nim.jsonl
	@$(PYTHON) bench/report.py $(BENCH)

clean:
	cargo clean
	rm -rf build
