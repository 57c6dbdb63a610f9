#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/faults/run.sh: fault injection inside the test VM (tools/vm-run --module none),
# vduse_rs.ko then C vduse.ko: `vduse-tests faults` (every allocation point of device creation,
# the device ioctls, vdpa dev add and UMEM registration failed in turn, see
# tools/testing/vduse-tests/src/faults.rs), then kmemleak. On a kernel without fault injection
# (the test kernel: only the debug flavour has it) every point is a SKIP.
#
# KTAP; the C driver's points are shown as comments ("# [c] ..."), its problems reported, not
# failed (its leaks are D4's, Documentation/differences.rst). Exit 1 on a failure of vduse_rs.
set -u
: "${VDUSE_RS_ROOT:?}" "${VM_OUT:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
. "$VDUSE_RS_ROOT/tools/lib/guest-tests.sh"
bin=$VDUSE_RS_ROOT/tools/testing/vduse-tests/target/release/vduse-tests
[ -x "$bin" ] || { echo "Bail out! $bin is not built"; exit 1; }
# No vDPA bus driver: a device the paths put on the bus stays unbound.
modprobe -r virtio_vdpa vhost_vdpa 2>/dev/null
leak=/sys/kernel/debug/kmemleak
rc=0
for m in rs c; do
	mod=$(vduse_modname "$m")
	[ -w "$leak" ] && echo scan >"$leak" && echo clear >"$leak"
	if ! vduse_load "$m"; then
		echo "not ok 1 faults/load-$m"
		rc=1
		continue
	fi
	if [ "$m" = rs ]; then
		"$bin" faults --module "$mod" || rc=1
	else
		"$bin" faults --module "$mod" | sed -u 's/^/# [c] /'
	fi
	vduse_unload "$m" || { echo "not ok 1 faults/unload-$m"; rc=1; }
	if [ -w "$leak" ] && [ -e /sys/kernel/debug/failslab ]; then
		if kmemleak_clean "after the $m driver's injections" >"$VM_OUT/faults-kmemleak-$m.txt"; then
			r=0
		else
			r=1
		fi
		sed 's/^/# /' "$VM_OUT/faults-kmemleak-$m.txt" | head -30
		if [ "$m" = rs ]; then
			[ "$r" = 0 ] && echo "ok 1 faults/kmemleak-rs" || { echo "not ok 1 faults/kmemleak-rs"; rc=1; }
		fi
	fi
done
modprobe virtio_vdpa
exit $rc
