#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/orphan/observe-c.sh: what users of the C vduse.ko get when the daemon dies and
# nobody restarts it: qemu-storage-daemon SIGKILLed while fio has requests in flight, then
# `vdpa dev del` (in the background: a del that blocks cannot be killed). Recorded, not
# asserted; the VM is left with the del in D state, so run it in a boot of its own with a hard
# time limit:
#
#   make observe-orphan-c        (tools/vm-run --module c --timeout 300 -- this script)
#
# Prints a line every 10 s for WAIT seconds (default 150): whether the del returned, the
# requests still in flight, the del's state; then the hung-task reports in dmesg.
set -u
WAIT=${WAIT:-150}
QSD=${QSD:-qemu-storage-daemon}
WORK=/dev/shm/vduse-observe.$$
name=observe-c
mkdir -p "$WORK"
. "${VDUSE_RS_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}/tools/lib/guest-tests.sh"
module=$( [ -e /sys/module/vduse_rs ] && echo vduse_rs || echo vduse)
note "driver: $module; kernel $(uname -r)"
truncate -s 64M "$WORK/$name.img"
TMPDIR=$WORK "$QSD" --blockdev "driver=file,node-name=f0,filename=$WORK/$name.img" \
	--export "type=vduse-blk,id=e0,node-name=f0,name=$name,num-queues=2,queue-size=256,writable=on" \
	>"$WORK/qsd.log" 2>&1 &
qsd=$!
wait_until 30 test -e "/dev/vduse/$name"
vdpa dev add name "$name" mgmtdev vduse || { note "vdpa dev add failed"; exit 1; }
dev=
for _ in $(seq 600); do
	for b in /sys/bus/vdpa/devices/"$name"/virtio*/block/*; do [ -e "$b" ] && dev=${b##*/}; done
	[ -n "$dev" ] && [ -b "/dev/$dev" ] && break
	sleep 0.1
done
note "$name is /dev/$dev"
fio --name=o --filename="/dev/$dev" --rw=randrw --bs=4k --iodepth=32 --ioengine=libaio --direct=1 \
	--time_based --runtime=600 --numjobs=2 >"$WORK/fio.out" 2>&1 &
io_flows "/dev/$dev"
sleep 2
kill -KILL "$qsd"
sleep 2
note "qemu-storage-daemon killed: $(in_flight "$dev") requests in flight on /dev/$dev"
t0=$SECONDS
(vdpa dev del "$name"; echo "rc $?" >"$WORK/del") &
del=$!
last=0
while [ $((SECONDS - t0)) -lt "$WAIT" ]; do
	sleep 1
	s=$((SECONDS - t0))
	if [ -s "$WORK/del" ]; then
		note "after ${s}s: vdpa dev del returned ($(cat "$WORK/del"))"
		break
	fi
	[ $((s - last)) -ge 10 ] || continue
	last=$s
	n=$(in_flight "$dev" 2>/dev/null) || n=0
	st=$(awk '/^State/ { print $2 }' /proc/"$(pgrep -n -x vdpa || echo "$del")"/status 2>/dev/null)
	note "after ${s}s: vdpa dev del still blocked (state ${st:-?}), $n requests in flight"
done
[ -s "$WORK/del" ] || note "vdpa dev del did not return within ${WAIT}s ($((SECONDS - t0))s)"
dmesg | grep -E "blocked for more than|hung_task|no daemon" | sed 's/^/#   /'
echo "observe-c: del $( [ -s "$WORK/del" ] && echo returned || echo blocked) after $((SECONDS - t0))s on $module"
