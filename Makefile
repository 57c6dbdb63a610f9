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
#   make bench           C vduse.ko against vduse_rs.ko in one VM boot (fio QD1/QD16, chart)
#
# This file is read by make directly; Kbuild (next to it) is what the kernel build reads.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
KDIR ?= $(shell $(ROOT)/tools/kdir)
KMAKE := $(ROOT)/tools/kmake

RUST_SOURCES := $(wildcard $(ROOT)/rust/*.rs)

.PHONY: all modules clean check-style fmt clippy bootstrap check demo kernel bench

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

bench: bootstrap
	$(MAKE) -C $(ROOT) modules KDIR=$$($(ROOT)/tools/kdir)
	$(ROOT)/tools/bench/run

check: bootstrap
	$(MAKE) -C $(ROOT) modules KDIR=$$($(ROOT)/tools/kdir)
	$(ROOT)/tools/testing/run-all
