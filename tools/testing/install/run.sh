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

t_make_install() { mk install && test -f "$mods/updates/vduse_rs.ko"; }
t_modules_dep() { dep_line | grep 'vdpa.ko' | grep -q 'vhost_iotlb.ko'; }
t_modprobe() {
	modprobe vduse_rs && loaded vduse_rs && loaded vdpa && loaded vhost_iotlb &&
		test -c /dev/vduse/control
}
t_modprobe_r() { modprobe -r vduse_rs && ! loaded vduse_rs && test ! -e /dev/vduse/control; }
t_standin() {
	mk install STANDIN=1 && test -f /etc/modprobe.d/vduse-rs.conf && modprobe vduse &&
		loaded vduse_rs && ! loaded vduse && test -c /dev/vduse/control && modprobe -r vduse_rs
}
t_uninstall() {
	mk uninstall && test ! -e "$mods/updates/vduse_rs.ko" &&
		test ! -e /etc/modprobe.d/vduse-rs.conf && ! dep_line
}
# With the stand-in gone, `modprobe vduse` is the C module again.
t_c_module_again() { modprobe vduse && loaded vduse && ! loaded vduse_rs && modprobe -r vduse; }

point make-install t_make_install
point modules-dep t_modules_dep
point modprobe t_modprobe
point modprobe-r t_modprobe_r
point standin t_standin
point uninstall t_uninstall
point c-module-again t_c_module_again
exit $fail
