# SPDX-License-Identifier: GPL-2.0
# Shared settings for the vduse-rs tools. Source it; it defines variables and functions only.

VDUSE_RS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Everything downloaded or built lives outside the checkout, keyed by its inputs.
VDUSE_RS_CACHE=${VDUSE_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vduse-rs}

KERNEL_SERIES=7.3
BINDGEN_VERSION=0.72.1
VNG_VERSION=1.42
KERNEL_FRAGMENT=$VDUSE_RS_ROOT/tools/configs/vduse-test.config
# KERNEL_FLAVOUR: test (default; what `make check` runs), bench (the same kernel without the
# debugging options: tools/configs/vduse-bench.config merged on top; `make bench`) or debug (the
# sanitizer kernel, built with clang: tools/configs/vduse-debug.config on top; `make check-debug`).
KERNEL_FLAVOUR=${KERNEL_FLAVOUR:-test}

# The rustup rustc first on PATH has no rust-src: kernel Rust must use Debian's rustc-web.
KERNEL_RUSTC=/usr/bin/rustc
BINDGEN=$VDUSE_RS_CACHE/bindgen-$BINDGEN_VERSION/bin/bindgen
VNG_VENV=$VDUSE_RS_CACHE/virtme-ng-$VNG_VERSION
# The ublk daemon the benchmark compares against (tools/bootstrap --bench).
RUBLK_VERSION=0.2.15
RUBLK=$VDUSE_RS_CACHE/rublk-$RUBLK_VERSION/bin/rublk
VNG=$VNG_VENV/bin/vng
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
# The LLVM suffix the debug flavour is built with (LLVM=-19: clang-19, ld.lld-19, llvm-ar-19).
KERNEL_LLVM=-19

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# The extracted kernel source tree (set by tools/bootstrap), or empty.
kernel_src() {
	local link=$VDUSE_RS_CACHE/src/current
	[ -f "$link/Makefile" ] && readlink -f "$link"
}

# The cache key of the test kernel: kernel version, config fragment, toolchain versions.
kernel_key() {
	local src
	src=$(kernel_src) || return 1
	{
		make -s -C "$src" kernelversion
		cat $(kernel_fragments)
		"$KERNEL_RUSTC" --version
		"$BINDGEN" --version
		gcc --version | head -n1
		[ "$KERNEL_FLAVOUR" != debug ] || "clang$KERNEL_LLVM" --version | head -n1
		echo "format 1"
	} | sha256sum | cut -c1-16
}

# The config fragments of KERNEL_FLAVOUR, in merge order.
kernel_fragments() {
	echo "$KERNEL_FRAGMENT"
	case $KERNEL_FLAVOUR in
	test) ;;
	bench) echo "$VDUSE_RS_ROOT/tools/configs/vduse-bench.config" ;;
	debug) echo "$VDUSE_RS_ROOT/tools/configs/vduse-debug.config" ;;
	*) die "KERNEL_FLAVOUR must be test, bench or debug" ;;
	esac
}

# Directory of the test kernel build (of KERNEL_FLAVOUR) for the current inputs (may not exist
# yet).
kernel_build_dir() {
	local key flavour=
	key=$(kernel_key) || return 1
	[ "$KERNEL_FLAVOUR" = test ] || flavour=$KERNEL_FLAVOUR-
	echo "$VDUSE_RS_CACHE/kernel/$(basename "$(kernel_src)")-$flavour$key"
}

# How much longer the tests' time limits are on KERNEL_FLAVOUR's kernel: 3 on the debug
# flavour (KASAN's inline checks and KMEMLEAK's tracking slow a TCG guest down about that much),
# else 1. tools/vm-run scales its --timeout and passes it into the guest as VDUSE_TIME_SCALE.
kernel_time_scale() {
	if [ "$KERNEL_FLAVOUR" = debug ]; then echo 3; else echo 1; fi
}

# The kernel make variables every build needs.
kernel_make_vars() {
	echo "RUSTC=$KERNEL_RUSTC BINDGEN=$BINDGEN HOSTRUSTC=$KERNEL_RUSTC"
	[ "$KERNEL_FLAVOUR" != debug ] || echo "LLVM=$KERNEL_LLVM"
}
