#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM (started by tools/vm-run): vm-guest.sh MODULE OUT COMMAND...
# Loads the vDPA stack and the chosen VDUSE module, runs COMMAND, saves its status and dmesg in
# OUT. Always exits 0 itself when it could save a status: the host decides from OUT.
set -u
module=$1 out=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
export VDUSE_RS_ROOT=$root VM_OUT=$out VDUSE_MODULE=$module

fail() { echo "vm-guest: $*" >&2; echo 125 >"$out/status"; dmesg >"$out/dmesg.txt"; exit 0; }

# The kernel log as it happens, record by record, straight into OUT: if the run hangs and the
# host kills the VM, what the kernel said until then (a hung-task report, a stall) is kept.
cat /dev/kmsg >"$out/kmsg.txt" 2>/dev/null &

# Make warnings visible to the check even when printk ratelimits them.
echo 0 >/proc/sys/kernel/printk_ratelimit 2>/dev/null || true
# Lockdep learns only the lock orders that happen: make one that happens by chance (a page
# fault in a sysfs readdir while the mmap_lock is contended: kernfs_rwsem -> mmap_lock) happen
# in every boot, so that a driver closing a cycle through it fails every run, not some
# (vduse-tests lockdep-prime; it waits until /proc/lockdep shows the order).
prime=$root/tools/testing/vduse-tests/target/release/vduse-tests
if [ -x "$prime" ]; then
	"$prime" lockdep-prime >"$out/lockdep-prime.txt" 2>&1 || fail "$(cat "$out/lockdep-prime.txt")"
fi
modprobe vdpa || fail "modprobe vdpa"
modprobe virtio_vdpa || fail "modprobe virtio_vdpa"
. "$root/tools/lib/vduse-module.sh"
if [ "$module" != none ]; then
	vduse_load "$module" || fail "loading the $module VDUSE module"
fi

"$@"
status=$?
echo "$status" >"$out/status"
dmesg >"$out/dmesg.txt"
exit 0
