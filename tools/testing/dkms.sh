#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/dkms.sh KDIR: the DKMS package of this checkout, built and installed with
# Debian's dkms against the build tree KDIR, in private trees (nothing under /usr/src,
# /var/lib/dkms or /lib/modules is touched). KTAP on stdout.
set -u
kdir=${1:?usage: dkms.sh KDIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/vduse-dkms.XXXXXX)
trap 'rm -rf "$work"' EXIT
krel=$(cat "$kdir/include/config/kernel.release")
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$root/dkms.conf")
trees=(--sourcetree "$work/src" --dkmstree "$work/dkms" --installtree "$work/lib/modules")
mkdir -p "$work/src/vduse-rs-$ver" "$work/dkms" "$work/lib/modules/$krel"
# dkms builds for a clang-built kernel (the debug flavour) with CC=clang LD=ld.lld, unversioned:
# Debian installs those names in /usr/lib/llvm-N/bin only, as a system with that LLVM as its
# default would have them on its PATH.
clang_ver=$(sed -n 's/^CONFIG_CLANG_VERSION=\([0-9]*\)$/\1/p' "$kdir/.config")
if [ "${clang_ver:-0}" -gt 0 ] && [ -x "/usr/lib/llvm-$((clang_ver / 10000))/bin/clang" ]; then
	export PATH=/usr/lib/llvm-$((clang_ver / 10000))/bin:$PATH
fi
n=0 fail=0
point() { # point NAME COMMAND...: one test point, the command's output as comments on failure
	n=$((n + 1))
	if "${@:2}" >"$work/out" 2>&1; then
		echo "ok $n dkms/$1"
	else
		echo "not ok $n dkms/$1"
		sed 's/^/#   /' "$work/out" | tail -n 30
		fail=1
	fi
}
echo "KTAP version 1"
echo "1..5"
command -v dkms >/dev/null || { echo "Bail out! dkms is not installed"; exit 1; }
# What a release tarball would hold: the files of the checkout, without build products.
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/src/vduse-rs-$ver")
point add dkms add -m vduse-rs -v "$ver" "${trees[@]}"
point build dkms build -m vduse-rs -v "$ver" -k "$krel" --kernelsourcedir "$kdir" "${trees[@]}"
mod=$work/lib/modules/$krel/updates/dkms/vduse_rs.ko
# dkms would run depmod on the system's /lib/modules: --no-depmod, and depmod on the private
# tree below, with the kernel's own modules installed there too.
point install sh -c "dkms install --no-depmod -m vduse-rs -v $ver -k $krel --kernelsourcedir $kdir \
	${trees[*]} && test -f $mod && /sbin/modinfo -F vermagic $mod | grep -q '^$krel '"
point modules-dep sh -c "make -s -C $kdir modules_install INSTALL_MOD_PATH=$work DEPMOD=true && \
	/sbin/depmod -b $work $krel && grep '^updates/dkms/vduse_rs.ko:' $work/lib/modules/$krel/modules.dep |
	tee /dev/stderr | grep 'vdpa.ko' | grep -q 'vhost_iotlb.ko'"
point remove sh -c "dkms remove --no-depmod -m vduse-rs -v $ver -k $krel ${trees[*]} && test ! -e $mod"
exit $fail
