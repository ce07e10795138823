# mt: build, test, install. `make test` is what CI runs.

PREFIX  ?= /usr/local
DESTDIR ?=
CARGO   ?= cargo
BINDIR   = $(DESTDIR)$(PREFIX)/bin
SHAREDIR = $(DESTDIR)$(PREFIX)/share
MANDIR   = $(SHAREDIR)/man

# Where cargo builds: CARGO_TARGET_DIR when set (as cargo reads it), else
# target/ here. Every path into the build below derives from it.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

# Every [[bin]] of Cargo.toml except the build-time generator.
BINS := $(filter-out mt-gen,$(shell sed -n 's/^name = "\(mt-[a-z-]*\)"/\1/p' Cargo.toml))
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
# Release builds link the C library statically on Linux: the hot paths
# (mt-post, mt-read, the hooks) then start without the dynamic loader,
# about a quarter faster. Static linking needs an explicit --target (so
# that proc macros stay dynamic), hence the target directory.
ifneq ($(findstring linux,$(HOST)),)
RELEASE = RUSTFLAGS="$(RUSTFLAGS) -C target-feature=+crt-static" $(CARGO)
RELEASE_ARGS = --target $(HOST)
REL := $(TARGET_DIR)/$(HOST)/release
else
RELEASE = $(CARGO)
RELEASE_ARGS =
REL := $(TARGET_DIR)/release
endif
GEN  := $(TARGET_DIR)/gen

# The real Claude Code CLI the tests drive, pinned, installed from npm into a
# cache (never globally). tests/it/support/claude.rs looks for it there.
CLAUDE_CODE_VERSION := $(shell cat tests/it/support/claude-code.version)
CLAUDE_CODE_CACHE ?= $(or $(MT_CLAUDE_CACHE),$(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME)/mt,$(HOME)/.cache/mt))
CLAUDE_CODE_DIR := $(CLAUDE_CODE_CACHE)/claude-code-$(CLAUDE_CODE_VERSION)

.PHONY: all build test check-long lint man completions install uninstall bench demo clean claude-code

all: build

build:
	$(RELEASE) build --release --locked $(RELEASE_ARGS)

test:
	@command -v npm >/dev/null 2>&1 && $(MAKE) --no-print-directory claude-code || \
	  echo "make test: could not install the real Claude Code CLI (npm missing or failing); its tests will be skipped"
	$(CARGO) build --locked --all-targets
	$(CARGO) test --locked
	$(MAKE) --no-print-directory man completions CARGO_PROFILE=debug

claude-code:
	@mkdir -p "$(CLAUDE_CODE_DIR)"
	@if ls "$(CLAUDE_CODE_DIR)"/node_modules/@anthropic-ai/claude-code-*/claude >/dev/null 2>&1; then \
	  echo "claude-code $(CLAUDE_CODE_VERSION): already in $(CLAUDE_CODE_DIR)"; \
	else \
	  npm install --prefix "$(CLAUDE_CODE_DIR)" --no-save --no-audit --no-fund --loglevel=error \
	    "@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)" && \
	  ls "$(CLAUDE_CODE_DIR)"/node_modules/@anthropic-ai/claude-code-*/claude; \
	fi

check-long:
	MT_LONG_TESTS=1 $(CARGO) test --locked --release -- --include-ignored

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

CARGO_PROFILE ?= release
GENBIN = $(TARGET_DIR)/$(CARGO_PROFILE)/mt-gen
# Always ask cargo: it rebuilds mt-gen only when a source changed.
.PHONY: $(GENBIN)

$(GENBIN):
	$(CARGO) build --locked $(if $(filter release,$(CARGO_PROFILE)),--release) --bin mt-gen

man: $(GENBIN)
	rm -rf $(GEN)/man && mkdir -p $(GEN)/man/man1
	$(GENBIN) man $(GEN)/man/man1
	cp -R share/man/. $(GEN)/man/

completions: $(GENBIN)
	rm -rf $(GEN)/completions
	$(GENBIN) completions $(GEN)/completions

install: build man completions
	install -d $(BINDIR) $(SHAREDIR)/mt/hooks
	install -m 0755 $(addprefix $(REL)/,$(BINS)) $(BINDIR)/
	for f in hooks/*; do [ -f "$$f" ] && install -m 0755 "$$f" $(SHAREDIR)/mt/hooks/ || :; done
	for d in systemd cron launchd examples; do if [ -d share/$$d ]; then install -d $(SHAREDIR)/mt/$$d && install -m 0644 share/$$d/* $(SHAREDIR)/mt/$$d/ || exit 1; fi; done
	for d in $(GEN)/man/man*; do install -d $(MANDIR)/$${d##*/}; install -m 0644 $$d/* $(MANDIR)/$${d##*/}/; done
	install -d $(SHAREDIR)/bash-completion/completions $(SHAREDIR)/zsh/site-functions $(SHAREDIR)/fish/vendor_completions.d
	for b in $(BINS); do \
	  install -m 0644 $(GEN)/completions/bash/$$b.bash $(SHAREDIR)/bash-completion/completions/$$b; \
	  install -m 0644 $(GEN)/completions/zsh/_$$b $(SHAREDIR)/zsh/site-functions/_$$b; \
	  install -m 0644 $(GEN)/completions/fish/$$b.fish $(SHAREDIR)/fish/vendor_completions.d/$$b.fish; \
	done

uninstall:
	rm -f $(addprefix $(BINDIR)/,$(BINS))
	rm -rf $(SHAREDIR)/mt

# The main job: a whole team session in a throwaway repository, with the
# built-in fake agent (MT_DEMO_AGENT=claude for the real one).
demo: build
	PATH="$(abspath $(REL)):$$PATH" sh demo/mt-demo

bench:
	$(RELEASE) bench --locked $(RELEASE_ARGS) --bench '*'

clean:
	$(CARGO) clean
