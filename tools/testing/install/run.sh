#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/install/run.sh KDIR: `make install` as a user runs it, inside the test VM
# (tools/vm-run --module none), with no VDUSE driver loaded: the module goes into the running
# kernel's /lib/modules/KREL/updates/, `modprobe vduse_rs` resolves its dependencies through
# modules.dep, `modprobe -r` unloads it, `make install STANDIN=1` makes `modprobe vduse` load
# vduse_rs and not the C module, `make uninstall` takes both away. The guest's module tree and
# /etc/modprobe.d are made writable copies first (the VM's root file system is the host's).
set -u
kdir=${1:?usage: run.sh KDIR}
root=${VDUSE_RS_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
krel=$(uname -r)
mods=/lib/modules/$krel
n=0 fail=0
point() { # point NAME COMMAND...
	n=$((n + 1))
	if "${@:2}" >/tmp/install-point.out 2>&1; then
		echo "ok $n install/$1"
	else
		echo "not ok $n install/$1"
		sed 's/^/#   /' /tmp/install-point.out | tail -n 25
		fail=1
	fi
}
echo "KTAP version 1"
echo "1..7"
[ "$(id -u)" = 0 ] || { echo "Bail out! must run as root"; exit 1; }
[ "$(cat "$kdir/include/config/kernel.release")" = "$krel" ] ||
	{ echo "Bail out! $kdir is not the running kernel's build tree"; exit 1; }
! grep -q '^vduse' /proc/modules || { echo "Bail out! a VDUSE driver is loaded"; exit 1; }

# Writable copies of what `make install` writes.
for d in "$mods" /etc/modprobe.d; do
	mkdir -p "/tmp/rw$d"
	[ -d "$d" ] && cp -a "$d/." "/tmp/rw$d/"
	mkdir -p "$d" 2>/dev/null
	mount --bind "/tmp/rw$d" "$d" || { echo "Bail out! cannot make $d writable"; exit 1; }
done
# The build is up to date (the host built it): `-o modules` keeps make from rebuilding here.
mk() { make -s -C "$root" -o modules KDIR="$kdir" "$@"; }
dep_line() { grep "^updates/vduse_rs.ko:" "$mods/modules.dep"; }
loaded() { grep -q "^$1 " /proc/modules; }

point make-install sh -c "$(declare -f mk); mk install && test -f $mods/updates/vduse_rs.ko"
point modules-dep sh -c "$(declare -f dep_line); dep_line | grep 'vdpa.ko' | grep -q 'vhost_iotlb.ko'"
point modprobe sh -c "modprobe vduse_rs && grep -q '^vduse_rs ' /proc/modules && \
	grep -q '^vdpa ' /proc/modules && grep -q '^vhost_iotlb ' /proc/modules && test -c /dev/vduse/control"
point modprobe-r sh -c "modprobe -r vduse_rs && ! grep -q '^vduse_rs ' /proc/modules && \
	test ! -e /dev/vduse/control"
point standin sh -c "$(declare -f mk); mk install STANDIN=1 && test -f /etc/modprobe.d/vduse-rs.conf && \
	modprobe vduse && grep -q '^vduse_rs ' /proc/modules && ! grep -q '^vduse ' /proc/modules && \
	test -c /dev/vduse/control && modprobe -r vduse_rs"
point uninstall sh -c "$(declare -f mk dep_line); mk uninstall && test ! -e $mods/updates/vduse_rs.ko && \
	test ! -e /etc/modprobe.d/vduse-rs.conf && ! dep_line"
# With the stand-in gone, `modprobe vduse` is the C module again.
point c-module-again sh -c "modprobe vduse && grep -q '^vduse ' /proc/modules && \
	! grep -q '^vduse_rs ' /proc/modules && modprobe -r vduse"
exit $fail
