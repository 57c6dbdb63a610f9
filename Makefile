# SPDX-License-Identifier: GPL-2.0
#
# vduse-rs: VDUSE (vDPA Device in Userspace) as an out-of-tree Rust kernel module.
#
#   make                 build vduse_rs.ko against KDIR (default: the cached test kernel)
#   make KDIR=/path      build against your own Rust-enabled Linux 7.3 build tree
#   make check-style     rustfmt --check, and a CLIPPY=1 W=e build with zero findings
#   make demo            set everything up, boot the test VM, show vduse_rs.ko answering
#   make check           set everything up and run the whole test suite (what CI runs)
#   make bootstrap       install the toolchain and build the test kernel (idempotent)
#   make check-debug     the suite on the sanitizer kernel (KASAN, UBSAN, lockdep, kmemleak,
#                        fault injection; clang-built, cached like the test kernel): every step
#                        but the C-oracle boot (see Documentation/security.rst)
#   make fuzz            the long fuzz run in one boot: FUZZ_OPS (1000000) operations per seed
#                        of FUZZ_SEEDS on each driver, compared; racing threads; a misbehaving
#                        daemon; trinity
#   make bench           the block benchmark in one boot of the bench kernel: C vduse.ko,
#                        vduse_rs.ko, ublk and NBD (bench/results/: table, JSON, chart)
#   make install         install vduse_rs.ko for KDIR's kernel (/lib/modules/KREL/updates/) and
#                        run depmod; INSTALL_MOD_PATH=DIR stages under DIR instead (no depmod);
#                        STANDIN=1 also installs tools/modprobe/vduse-rs.conf, so that
#                        `modprobe vduse` loads vduse_rs
#   make uninstall       remove both again (same variables)
#
# This file is read by make directly; Kbuild (next to it) is what the kernel build reads.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
KDIR ?= $(shell $(ROOT)/tools/kdir)
KMAKE := $(ROOT)/tools/kmake

.PHONY: all modules clean check-style fmt bootstrap check check-debug fuzz demo kernel bench profile patches install \
	uninstall observe-orphan-c

# Kbuild's default for external modules; INSTALL_MOD_PATH stages into a root filesystem.
INSTALL_MOD_DIR ?= updates
INSTALL_MOD_PATH ?=
KREL = $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null)
MODDIR = $(INSTALL_MOD_PATH)/lib/modules/$(KREL)/$(INSTALL_MOD_DIR)
MODPROBE_CONF = $(INSTALL_MOD_PATH)/etc/modprobe.d/vduse-rs.conf

all: modules

modules:
	@test -n "$(KDIR)" || { echo "no KDIR: run 'make bootstrap' or pass KDIR=" >&2; exit 1; }
	$(KMAKE) $(KDIR) modules

clean:
	@test -z "$(KDIR)" || $(KMAKE) $(KDIR) clean

# rustfmt with the kernel's settings (.rustfmt.toml is a copy of the kernel's), from the crate
# root: rustfmt follows the `mod` declarations.
fmt:
	rustfmt --config-path $(ROOT)/.rustfmt.toml $(ROOT)/rust/vduse_rs.rs

check-style:
	@test -n "$(KDIR)" || { echo "no KDIR: run 'make bootstrap' or pass KDIR=" >&2; exit 1; }
	$(ROOT)/tools/check-style $(KDIR)

bootstrap:
	$(ROOT)/tools/bootstrap

kernel:
	$(ROOT)/tools/build-kernel

demo: bootstrap
	$(MAKE) -C $(ROOT) modules KDIR=$$($(ROOT)/tools/kdir)
	$(ROOT)/tools/demo

bench:
	$(ROOT)/tools/bench/run

# Instructions per I/O of each driver, by function (the tcg-profile plugin; the bench kernel).
profile:
	$(ROOT)/tools/bench/profile

# The upstream dry run: the abstractions as kernel crate modules and the driver under
# drivers/vdpa/vdpa_user/, one commit each, written to build/patches/ and built in-tree.
patches: bootstrap
	$(ROOT)/tools/patches

# What the C driver does when a daemon dies with requests in flight (the del hangs; recorded in
# Documentation/differences.rst, D8): a boot of its own, ended by its time limit.
observe-orphan-c: bootstrap
	$(ROOT)/tools/vm-run --module c --timeout 330 -- $(ROOT)/tools/testing/orphan/observe-c.sh

check: bootstrap
	$(MAKE) -C $(ROOT) modules KDIR=$$($(ROOT)/tools/kdir)
	$(ROOT)/tools/testing/run-all

# The sanitizer kernel's run. The module in the checkout is then built for that kernel; `make` or
# `make check` builds it for the test kernel again. The C-oracle boot (our scripts on C vduse.ko)
# checks the scripts, not vduse_rs.ko: left out. VDUSE_FUZZ_OPS: the no-driver boot's fuzz length.
check-debug:
	$(ROOT)/tools/bootstrap --debug
	$(MAKE) -C $(ROOT) modules KDIR=$$(KERNEL_FLAVOUR=debug $(ROOT)/tools/kdir)
	KERNEL_FLAVOUR=debug VDUSE_TESTS_SKIP=$${VDUSE_TESTS_SKIP:-guest-c} \
		VDUSE_RS_LOGS=$${VDUSE_RS_LOGS:-$${XDG_CACHE_HOME:-$$HOME/.cache}/vduse-rs/test-logs-debug} \
		$(ROOT)/tools/testing/run-all

# The long fuzz run (tools/testing/fuzz/run.sh) in one boot of the test kernel; the transcripts
# of a seed whose drivers disagree are kept in FUZZ_OUT/fuzz/.
FUZZ_OPS ?= 1000000
FUZZ_SEEDS ?= 1
FUZZ_RACE ?= 120
FUZZ_DAEMON ?= 20
# trinity syscalls per driver: about 45 s under TCG (2026-12-03: 30000 in 42-46 s).
FUZZ_TRINITY ?= 30000
FUZZ_OUT ?= $(shell bash -c '. $(ROOT)/tools/lib/common.sh && echo $$VDUSE_RS_CACHE')/fuzz
fuzz:
	$(ROOT)/tools/bootstrap --fuzz
	$(MAKE) -C $(ROOT) modules KDIR=$$($(ROOT)/tools/kdir)
	cargo build --quiet --release --locked --manifest-path $(ROOT)/tools/testing/vduse-tests/Cargo.toml
	gcc -m32 -static -O2 -Wall -Werror -I $(ROOT)/include/uapi \
		-o $(ROOT)/tools/testing/compat/vduse-compat32 $(ROOT)/tools/testing/compat/vduse-compat32.c
	$(ROOT)/tools/vm-run --module none --timeout 14400 --out $(FUZZ_OUT) -- \
		$(ROOT)/tools/testing/fuzz/run.sh --ops $(FUZZ_OPS) --seeds "$(FUZZ_SEEDS)" \
		--race-seconds $(FUZZ_RACE) --daemon-rounds $(FUZZ_DAEMON) --daemon-ops 200 --trinity $(FUZZ_TRINITY)

# modules_install (with kbuild's own depmod turned off, so that a staged install does not run it
# against a tree without the kernel's modules), then depmod for a real install.
install: modules
	@test -n "$(KREL)" || { echo "no kernel release in $(KDIR)" >&2; exit 1; }
	$(KMAKE) $(KDIR) modules_install INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) \
		INSTALL_MOD_PATH=$(INSTALL_MOD_PATH) DEPMOD=true
	$(if $(STANDIN),install -D -m 0644 $(ROOT)/tools/modprobe/vduse-rs.conf $(MODPROBE_CONF))
	@if [ -n "$(INSTALL_MOD_PATH)" ]; then \
		echo "staged $(MODDIR)/vduse_rs.ko: depmod not run (on the target: depmod -a $(KREL))"; \
	else \
		echo "depmod -a $(KREL)"; depmod -a $(KREL); \
	fi

uninstall:
	@test -n "$(KREL)" || { echo "no kernel release in $(KDIR)" >&2; exit 1; }
	rm -f $(MODDIR)/vduse_rs.ko $(MODDIR)/vduse_rs.ko.xz $(MODDIR)/vduse_rs.ko.zst $(MODDIR)/vduse_rs.ko.gz
	rm -f $(MODPROBE_CONF)
	@if [ -n "$(INSTALL_MOD_PATH)" ]; then \
		echo "unstaged from $(MODDIR): depmod not run"; \
	else \
		echo "depmod -a $(KREL)"; depmod -a $(KREL); \
	fi
