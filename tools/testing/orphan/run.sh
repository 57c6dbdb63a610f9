#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/orphan/run.sh: a daemon that dies and is not restarted never hangs the kernel
# (vduse_rs.ko's orphan drain, Documentation/orphan-drain.rst). Runs INSIDE the test VM as
# root, with vdpa, virtio_vdpa and vduse_rs loaded:
#
#   tools/vm-run --module rs -- tools/testing/orphan/run.sh
#
# Cases: the sample daemon and qemu-storage-daemon SIGKILLed while fio has requests in flight
# (checked in /sys/block/vdX/inflight), the net daemon SIGKILLed under traffic: `vdpa dev del`
# returns within DEL_LIMIT seconds, fio ends with I/O errors, another device can be added and
# deleted meanwhile, the node then refuses to open (EPERM) and VDUSE_DESTROY_DEV succeeds; a
# daemon that scribbled over a ring before dying (the drain of that queue stops, says why
# once, and the del still returns); kmemleak clean at the end. KTAP on stdout.
#
# On the C driver the same scenario hangs: tools/testing/orphan/observe-c.sh records it.
set -u

DEL_LIMIT=${DEL_LIMIT:-20}
ROOT=${VDUSE_RS_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
BLK=$ROOT/samples/target/release/vduse-blk
NET=$ROOT/samples/target/release/vduse-net
TESTS=$ROOT/tools/testing/vduse-tests/target/release/vduse-tests
QSD=${QSD:-qemu-storage-daemon}
LOGDIR=${VM_OUT:-/tmp}/orphan
WORK=/dev/shm/vduse-orphan.$$
CASES=(sample_sigkill_mid_fio qsd_sigkill_mid_fio net_sigkill_mid_traffic scribbled_ring
	orphan_timeout_without_del kmemleak_clean)
[ -z "${ORPHAN_CASES:-}" ] || read -r -a CASES <<<"$ORPHAN_CASES"

bail() {
	echo "Bail out! $*"
	exit 1
}
[ "$(id -u)" = 0 ] || bail "must run as root (inside the test VM)"
[ -e /sys/module/vduse_rs ] || bail "vduse_rs is not loaded (the orphan drain is the Rust driver's)"
for b in "$BLK" "$NET" "$TESTS"; do [ -x "$b" ] || bail "$b is missing: build it on the host first"; done
for t in vdpa fio "$QSD" timeout ping ip; do command -v "$t" >/dev/null || bail "$t not found"; done
mkdir -p "$WORK" "$LOGDIR" || bail "cannot create $WORK or $LOGDIR"
. "$ROOT/tools/lib/guest-tests.sh"

PIDS=()
DEVS=()
cleanup() {
	local d p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for d in "${DEVS[@]}"; do
		[ -e "/sys/bus/vdpa/devices/$d" ] && timeout "$DEL_LIMIT" vdpa dev del "$d" 2>/dev/null
		[ -e "/dev/vduse/$d" ] && "$TESTS" destroy "$d" >/dev/null
	done
	PIDS=() DEVS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT

# start_blk NAME KIND: a block daemon (KIND sample or qsd) for NAME, 2 queues; its pid in
# DAEMON. Waits until the node exists.
DAEMON=
start_blk() {
	local name=$1 kind=$2
	case $kind in
	sample) "$BLK" --name "$name" --size 64M --queues 2 >>"$LOGDIR/$name.log" 2>&1 & ;;
	qsd)
		truncate -s 64M "$WORK/$name.img"
		TMPDIR=$WORK "$QSD" --blockdev "driver=file,node-name=f0,filename=$WORK/$name.img" \
			--export "type=vduse-blk,id=e0,node-name=f0,name=$name,num-queues=2,queue-size=256,writable=on" \
			>>"$LOGDIR/$name.log" 2>&1 &
		;;
	esac
	DAEMON=$!
	PIDS+=("$DAEMON")
	DEVS+=("$name")
	wait_until 30 test -e "/dev/vduse/$name" || { note "$kind did not create /dev/vduse/$name"; return 1; }
}

# add_on_bus NAME: on the vDPA bus once its daemon set up the queues; BLKDEV is its /dev/vdX.
BLKDEV=
add_on_bus() { add_blk "$1" 30; }

# timed_del NAME: `vdpa dev del NAME` in the background with its own deadline (a del that
# blocks cannot be killed); fails if it did not return, or failed, within DEL_LIMIT s.
timed_del() {
	local name=$1 t0=$SECONDS
	rm -f "$WORK/del.$name"
	(vdpa dev del "$name"; echo $? >"$WORK/del.$name") &
	if ! wait_until "$DEL_LIMIT" test -s "$WORK/del.$name"; then
		note "vdpa dev del $name still blocked after ${DEL_LIMIT}s"
		return 1
	fi
	note "vdpa dev del $name returned $(cat "$WORK/del.$name") after $((SECONDS - t0))s"
	[ "$(cat "$WORK/del.$name")" = 0 ]
}

# after_orphan NAME: the node refuses to open, VDUSE_DESTROY_DEV succeeds, the node goes.
after_orphan() {
	local name=$1 out
	out=$("$TESTS" open "$name")
	[ "$out" = "open: EPERM" ] || { note "open of the orphaned $name: $out (want EPERM)"; return 1; }
	out=$("$TESTS" destroy "$name") || { note "$out"; return 1; }
	wait_until 10 test ! -e "/dev/vduse/$name" || { note "/dev/vduse/$name still exists"; return 1; }
	local keep=() d
	for d in "${DEVS[@]}"; do [ "$d" = "$name" ] || keep+=("$d"); done
	DEVS=("${keep[@]}")
}

# The kernel said it drained NAME when it was orphaned, and in all (when the device left the
# bus) at least MIN requests.
drained() {
	local name=$1 min=$2 n all
	n=$(dmesg | sed -n "s/.*vduse_rs: $name: no daemon: \([0-9]*\) requests in flight failed.*/\1/p" | tail -n 1)
	all=$(dmesg | sed -n "s/.*vduse_rs: $name: orphan drain: \([0-9]*\) requests failed in all.*/\1/p" | tail -n 1)
	note "dmesg: $name: ${n:-no} requests failed by the first drain, ${all:-no} in all (want >= $min)"
	[ -n "$n" ] && [ -n "$all" ] && [ "$all" -ge "$n" ] && [ "$all" -ge "$min" ]
}

orphan_blk() {
	local kind=$1 name=orphan-$1 other=orphan-other fio_pid n rc
	start_blk "$name" "$kind" || return 1
	add_on_bus "$name" || return 1
	local dev=$BLKDEV
	timeout 600 fio --name=o --filename="$dev" --rw=randrw --bs=4k --iodepth=32 --ioengine=libaio \
		--direct=1 --time_based --runtime=400 --numjobs=2 --group_reporting >"$WORK/fio.out" 2>&1 &
	fio_pid=$!
	io_flows "$dev" || return 1
	sleep 2
	kill -0 "$fio_pid" 2>/dev/null || { note "fio ended early"; tail -n 15 "$WORK/fio.out" | sed 's/^/#   /'; return 1; }
	kill -KILL "$DAEMON"
	wait "$DAEMON" 2>/dev/null
	sleep 2
	n=$(in_flight "$dev")
	note "$kind killed; $n requests stuck in flight on $dev"
	[ "$n" -gt 0 ] || {
		note "nothing in flight after the kill: this would test nothing"
		tail -n 15 "$WORK/fio.out" | sed 's/^/#   /'
		tail -n 5 "$LOGDIR/$name.log" | sed 's/^/#   /'
		return 1
	}
	# Another device works meanwhile, and while the del runs.
	start_blk "$other" sample || return 1
	local other_pid=$DAEMON
	timed_del "$name" &
	local del_pid=$!
	add_on_bus "$other" || return 1
	timed_del "$other" || return 1
	kill -TERM "$other_pid"
	wait "$other_pid" || { note "the other daemon did not exit cleanly"; return 1; }
	wait "$del_pid" || return 1
	# fio gets its errors and ends.
	wait_until 60 eval '! kill -0 '"$fio_pid"' 2>/dev/null' || { note "fio still runs after the del"; return 1; }
	wait "$fio_pid"
	rc=$?
	grep -E "err=|error" "$WORK/fio.out" | head -n 4 | sed 's/^/#   /'
	[ "$rc" != 0 ] || { note "fio succeeded: the requests should have failed"; return 1; }
	grep -qE "Input/output error|err= *5" "$WORK/fio.out" || { note "fio saw no EIO"; return 1; }
	# Every request stuck at the kill was failed, and those fio made meanwhile.
	drained "$name" "$n" || return 1
	after_orphan "$name"
}

case_sample_sigkill_mid_fio() { orphan_blk sample; }
case_qsd_sigkill_mid_fio() { orphan_blk qsd; }

case_net_sigkill_mid_traffic() {
	local name=orphan-net netdev tx0 tx1 ping_pid
	"$NET" --name "$name" --loopback >>"$LOGDIR/$name.log" 2>&1 &
	DAEMON=$!
	PIDS+=("$DAEMON")
	DEVS+=("$name")
	wait_until 30 test -e "/dev/vduse/$name" || { note "no /dev/vduse/$name"; return 1; }
	add_net "$name" 30 || return 1
	netdev=$NETDEV
	ip addr add 10.213.0.1/24 dev "$netdev" && ip link set "$netdev" up || return 1
	ip neigh replace 10.213.0.2 lladdr 02:00:00:00:00:02 dev "$netdev" || return 1
	ping -f -s 1400 10.213.0.2 >/dev/null 2>&1 &
	ping_pid=$!
	tx0=$(cat "/sys/class/net/$netdev/statistics/tx_packets")
	sleep 3
	tx1=$(cat "/sys/class/net/$netdev/statistics/tx_packets")
	note "$netdev: $((tx1 - tx0)) frames sent in 3 s before the kill"
	[ "$tx1" -gt "$tx0" ] || { kill "$ping_pid"; note "no traffic"; return 1; }
	kill -KILL "$DAEMON"
	wait "$DAEMON" 2>/dev/null
	sleep 1
	timed_del "$name" || { kill "$ping_pid"; return 1; }
	kill "$ping_pid" 2>/dev/null
	wait "$ping_pid" 2>/dev/null
	[ ! -e "/sys/class/net/$netdev" ] || { note "$netdev still exists"; return 1; }
	drained "$name" 1 || return 1
	after_orphan "$name"
}

# A daemon scribbles over queue 1's rings (descriptors chained to themselves, two requests
# that were never made available) and dies. The drain of that queue stops with one line
# saying why; nothing was really in flight, so the del returns.
case_scribbled_ring() {
	local name=orphan-scribble out n
	start_blk "$name" sample || return 1
	add_on_bus "$name" || return 1
	dd if="$BLKDEV" of=/dev/null bs=4k count=64 iflag=direct status=none || return 1
	# Nothing may be in flight when the daemon dies (udev probes a new disk for a while): the
	# scribbled queue's real requests would stay, and the del with them.
	command -v udevadm >/dev/null && udevadm settle -t 60
	wait_until 30 eval '[ "$(in_flight "$BLKDEV")" = 0 ]' || { note "the disk is not idle"; return 1; }
	kill -KILL "$DAEMON"
	wait "$DAEMON" 2>/dev/null
	n=$(in_flight "$BLKDEV")
	[ "$n" = 0 ] || { note "$n requests in flight at the kill: not the case meant here"; return 1; }
	out=$("$TESTS" scribble "$name" 1) || { note "$out"; return 1; }
	note "$out"
	timed_del "$name" || return 1
	dmesg | grep "vduse_rs: $name: queue" | sed 's/^/#   /'
	[ "$(dmesg | grep -c "vduse_rs: $name: queue 1: requests in flight left as they are")" = 1 ] ||
		{ note "no (or more than one) line about queue 1"; return 1; }
	after_orphan "$name"
}

# reload_module [PARAM=VALUE]: vduse_rs loaded again (no device may exist), with the parameter.
reload_module() {
	rmmod vduse_rs || { note "rmmod vduse_rs failed"; return 1; }
	insmod "$ROOT/vduse_rs.ko" "$@" || { note "insmod vduse_rs.ko $* failed"; return 1; }
	wait_until 10 test -c /dev/vduse/control
}

# With orphan_timeout=8 (a module parameter), a daemon killed and restarted within the time
# re-attaches and the I/O goes on; killed and not restarted, its requests fail after the
# timeout without any vdpa dev del, and the del then returns.
case_orphan_timeout_without_del() {
	local name=orphan-timeout fio_pid rc t0
	reload_module orphan_timeout=8 || return 1
	start_blk "$name" sample || return 1
	add_on_bus "$name" || return 1
	local dev=$BLKDEV
	timeout 600 fio --name=o --filename="$dev" --rw=randread --bs=4k --iodepth=16 --ioengine=libaio \
		--direct=1 --time_based --runtime=400 >"$WORK/fio.out" 2>&1 &
	fio_pid=$!
	wait_until 180 ios_done "$dev" $(($(ios_count "$dev") + 2000)) || { note "fio did not get going"; return 1; }
	kill -KILL "$DAEMON"
	wait "$DAEMON" 2>/dev/null
	start_blk "$name" sample || return 1
	wait_until 30 ios_done "$dev" $(($(ios_count "$dev") + 500)) || { note "no I/O after the restart"; return 1; }
	! dmesg | grep -q "vduse_rs: $name: no daemon" || { note "orphaned despite the restart"; return 1; }
	note "restarted within orphan_timeout: re-attached, I/O goes on"
	kill -0 "$fio_pid" || { note "fio ended"; return 1; }
	kill -KILL "$DAEMON"
	wait "$DAEMON" 2>/dev/null
	t0=$SECONDS
	wait_until 60 eval '! kill -0 '"$fio_pid"' 2>/dev/null' || { note "fio still runs 60 s after the kill"; return 1; }
	note "fio ended $((SECONDS - t0)) s after the daemon was killed (orphan_timeout 8 s), no del"
	wait "$fio_pid"
	rc=$?
	[ "$rc" != 0 ] && grep -qE "Input/output error|err= *5" "$WORK/fio.out" || { note "fio saw no EIO ($rc)"; return 1; }
	dmesg | grep -q "vduse_rs: $name: no daemon for 8 s (orphan_timeout)" || { note "no orphan_timeout line"; return 1; }
	timed_del "$name" || return 1
	drained "$name" 1 || return 1
	after_orphan "$name" || return 1
	reload_module
}

case_kmemleak_clean() { kmemleak_clean "after the orphan cases"; }

after_case() { cleanup; }
ktap_plan ${#CASES[@]}
run_cases orphan after_case "${CASES[@]}"
rc=$?
note "daemon logs in $LOGDIR"
exit $rc
