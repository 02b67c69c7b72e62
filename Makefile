# Build and install capsa's binaries.
#
#   make                      cargo build --release (every crate: see default-members)
#   make install              copy the built binaries to $(DESTDIR)$(PREFIX)/bin
#   make install PREFIX=/opt/capsa
#   make uninstall
#
# `install` does not build (run `make` or `cargo build --release` first, e.g. as your
# own user, then `make install` as root): it only copies, so it never writes to the
# build tree. capsa execs capsa-image and capsa-shim from its own directory, so they
# are always installed side by side.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
RELEASE := $(CARGO_TARGET_DIR)/release

# Binaries every install needs, and binaries installed when they were built (crates
# being added: cri/ gives capsa-cri; move it to BINS once it is a default member).
BINS := capsa capsa-image capsa-shim
OPTIONAL_BINS := capsa-cri

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
	@for b in $(OPTIONAL_BINS); do \
	  if [ -x "$(RELEASE)/$$b" ]; then echo "install -m 0755 $(RELEASE)/$$b $(DESTDIR)$(BINDIR)/"; \
	    install -m 0755 "$(RELEASE)/$$b" "$(DESTDIR)$(BINDIR)/" || exit 1; fi; \
	done

uninstall:
	cd "$(DESTDIR)$(BINDIR)" && rm -f $(BINS) $(OPTIONAL_BINS)
