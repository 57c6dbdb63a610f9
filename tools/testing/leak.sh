#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM (tools/vm-run --module none): for each driver, 1000 device
# create/open/close/destroy cycles, the vdpa cases (vdpa dev add/del, every message type, IOTLB
# fds, eventfds, a device broken by a timeout), then 10 module load/unload cycles; then kmemleak
# must have scanned (the scan writes succeeded) and report no unreferenced object allocated
# during the run. KTAP on stdout: the C driver's (the oracle's) steps show up as comments unless
# they fail; the Rust driver's are test points. (Checked once with a deliberate 96-byte leak in
# vduse_rs.ko: the check failed, as it must.)
set -u -o pipefail
: "${VDUSE_RS_ROOT:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
bin=$VDUSE_RS_ROOT/tools/testing/vduse-tests/target/release/vduse-tests
cycles=${LEAK_CYCLES:-1000}
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
kmemleak=/sys/kernel/debug/kmemleak
rc=0 n=0
# point OK|FAIL DRIVER NAME: a test point for rs (and for the final checks), a comment for c
# unless it failed.
point() {
	n=$((n + 1))
	if [ "$1" = OK ] && [ "$2" = c ]; then
		n=$((n - 1))
		echo "# oracle ok: $3"
	elif [ "$1" = OK ]; then
		echo "ok $n $3"
	else
		echo "not ok $n $3"
		rc=1
	fi
}

# scan: one kmemleak scan; its write fails (EPERM) when kmemleak is off, so it must succeed.
scan() {
	if ! echo scan 2>/dev/null >"$kmemleak"; then
		echo "# kmemleak scan failed: kmemleak is disabled or missing"
		return 1
	fi
}

if [ ! -r "$kmemleak" ]; then
	point FAIL all "leak: kmemleak available (CONFIG_DEBUG_KMEMLEAK, not disabled)"
	echo "1..$n"
	exit 1
fi
# Forget what kmemleak suspects from boot, so the report below is about this run.
scan && echo clear >"$kmemleak" || point FAIL all "leak: first kmemleak scan and clear"
for m in c rs; do
	if vduse_load "$m" && "$bin" stress "$cycles" | sed 's/^/# /' && vduse_unload "$m"; then
		point OK "$m" "leak/$m: $cycles device cycles, then unload"
	else
		point FAIL "$m" "leak/$m: $cycles device cycles, then unload"
	fi
	# The vdpa cases load vhost_vdpa and unload virtio_vdpa: restore that afterwards.
	if vduse_load "$m" && "$bin" run --module "$m" --filter vdpa/ --transcript "/tmp/leak-vdpa-$m.txt" |
		sed 's/^/# /' && vduse_unload "$m"; then
		point OK "$m" "leak/$m: the vdpa cases, then unload"
	else
		point FAIL "$m" "leak/$m: the vdpa cases, then unload"
	fi
	rmmod vhost_vdpa 2>/dev/null
	modprobe virtio_vdpa
	ok=OK
	for i in $(seq 10); do
		vduse_load "$m" && [ -c /dev/vduse/control ] && vduse_unload "$m" || { ok=FAIL; break; }
	done
	point "$ok" "$m" "leak/$m: 10 load/unload cycles"
	[ -e /sys/class/vduse ] && point FAIL "$m" "leak/$m: /sys/class/vduse gone after unload" ||
		point OK "$m" "leak/$m: /sys/class/vduse gone after unload"
done
# kmemleak reports an object only after it stayed unreferenced for a while (5 s, its
# MSECS_MIN_AGE) and was seen so by two scans: age, scan, age, scan.
sleep 6
scanned=OK
scan || scanned=FAIL
sleep 6
scan || scanned=FAIL
point "$scanned" all "leak: kmemleak scanned after the run"
# Anything reported now was allocated during this run (boot-time suspects were cleared
# above). Module symbols are gone after the unloads, so a leak from VDUSE code cannot be
# recognised by name: every report fails the check.
report=$(cat "$kmemleak")
if [ "$scanned" = OK ] && ! echo "$report" | grep -q unreferenced; then
	point OK all "leak: kmemleak reports no unreferenced object"
else
	echo "$report" | sed 's/^/# /' | head -n 60
	point FAIL all "leak: kmemleak reports no unreferenced object"
fi
echo "1..$n"
exit $rc
