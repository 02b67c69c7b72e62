# Build and install capsa's binaries.
#
#   make                      cargo build --release (every crate: see default-members)
#   make install              copy the built binaries to $(DESTDIR)$(PREFIX)/bin, the labs
#                             and rootfs-examples to $(DESTDIR)$(PREFIX)/share/capsa
#   make install PREFIX=/opt/capsa
#   make uninstall
#
# `install` does not build (run `make` or `cargo build --release` first, e.g. as your
# own user, then `make install` as root): it only copies, so it never writes to the
# build tree. capsa execs capsa-image and capsa-shim from its own directory, so they
# are always installed side by side.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
# The labs (capsa lab ...) and the bundle/image builders they use.
SHAREDIR ?= $(PREFIX)/share/capsa
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
RELEASE := $(CARGO_TARGET_DIR)/release

# Every binary of the workspace (tests/readme.rs checks the list against cargo's).
BINS := capsa capsa-image capsa-shim capsa-cri

.PHONY: all build install uninstall

all: build

build:
	$(CARGO) build --release

install:
	@for b in $(BINS); do \
	  [ -x "$(RELEASE)/$$b" ] || { echo "make install: $(RELEASE)/$$b is missing: build first with 'make' (or 'cargo build --release')" >&2; exit 1; }; \
	done
	install -d "$(DESTDIR)$(BINDIR)"
	install -m 0755 $(addprefix $(RELEASE)/,$(BINS)) "$(DESTDIR)$(BINDIR)/"
	install -d "$(DESTDIR)$(SHAREDIR)"
	rm -rf "$(DESTDIR)$(SHAREDIR)/labs" "$(DESTDIR)$(SHAREDIR)/rootfs-examples"
	cp -R --no-preserve=ownership labs rootfs-examples "$(DESTDIR)$(SHAREDIR)/"

uninstall:
	cd "$(DESTDIR)$(BINDIR)" && rm -f $(BINS)
	rm -rf "$(DESTDIR)$(SHAREDIR)/labs" "$(DESTDIR)$(SHAREDIR)/rootfs-examples"
	rmdir "$(DESTDIR)$(SHAREDIR)" 2>/dev/null || true
