#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/bench/ksoftirqd-guest.sh [MODULE]: inside the test VM (tools/vm-run --module c|rs), how
# often the ksoftirqd threads run while 10000 direct 4 KiB reads go through a one-queue
# virtio-blk device served by the sample daemon. With one hardware queue, blk-mq completes
# each request in BLOCK_SOFTIRQ, raised from the interrupt callback: run where the callback
# ran with bottom halves disabled, it runs at their re-enabling in the same thread; raised
# with interrupts disabled in process context, it is handed to ksoftirqd (a context switch).
# Prints the context switches of all ksoftirqd threads during the reads.
set -euo pipefail
: "${VDUSE_RS_ROOT:?}" "${VM_OUT:?}"
BIN=$VDUSE_RS_ROOT/samples/target/release/vduse-blk
READS=${READS:-10000}
name=ksirq
"$BIN" --name $name --size 64M --queues 1 >"$VM_OUT/ksoftirqd-daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 50); do vdpa dev add name $name mgmtdev vduse 2>/dev/null && break; sleep 0.1; done
dev=
for _ in $(seq 1 300); do
	b=$(compgen -G "/sys/bus/vdpa/devices/$name/virtio*/block/*" | head -n1) && [ -n "$b" ] &&
		dev=/dev/${b##*/} && break
	sleep 0.1
done
[ -b "$dev" ] || { echo "# no block device"; exit 1; }
# Context switches (voluntary + involuntary) of every ksoftirqd thread.
switches() {
	local p s=0
	for p in $(pgrep '^ksoftirqd/'); do
		s=$((s + $(awk '/ctxt_switches/ { n += $2 } END { print n }' "/proc/$p/status")))
	done
	echo $s
}
dd if="$dev" of=/dev/null bs=4k count=100 iflag=direct status=none
before=$(switches)
dd if="$dev" of=/dev/null bs=4k count="$READS" iflag=direct status=none
after=$(switches)
echo "# ${VDUSE_MODULE:-?}: ksoftirqd context switches during $READS reads: $((after - before))"
vdpa dev del $name
kill -TERM $daemon
wait $daemon || true
