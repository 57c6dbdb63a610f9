#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/sample/run.sh: end-to-end tests of the Rust VDUSE sample daemon
# (samples/vduse-blk) against the VDUSE driver of the running kernel. Meant to run INSIDE the
# test VM as root, with the vdpa, virtio_vdpa and VDUSE modules already loaded:
#
#   tools/vm-run --module c -- tools/testing/sample/run.sh --module c
#
# Build the daemon on the host first: (cd samples && cargo build --release).
# Prints KTAP; exits non-zero if a case failed. Daemon logs go to $VM_OUT/sample/.
# SAMPLE_CASES="case ..." runs only those cases.
set -u

MODULE=c
usage() {
	sed -n '3,11p' "$0" | sed 's/^# \{0,1\}//'
	echo "Options: --module c|rs"
}
while [ $# -gt 0 ]; do
	case $1 in
	--module) MODULE=${2:-}; shift 2 || true ;;
	--module=*) MODULE=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
case $MODULE in c | rs) ;; *) echo "run.sh: --module must be c or rs" >&2; exit 2 ;; esac

ROOT=${VDUSE_RS_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
BIN=$ROOT/samples/target/release/vduse-blk
POKE=$ROOT/samples/target/release/vdpa-poke
LOGDIR=${VM_OUT:-/tmp}/sample
WORK=/tmp/vduse-sample.$$

CASES=(
	"ram_fs_1q"
	"fio_verify_1q"
	"fio_verify_4q"
	"umem_fio_verify"
	"umem_switch_under_io"
	"reconnect_after_sigkill"
	"reconnect_inflight_windows"
	"api_v0_fallback"
	"queue_ready_message"
	"read_only_and_sigterm_while_attached"
	"sysfs_writes_under_io"
	"del_under_io"
	# last: it leaves vhost_vdpa loaded, and a device added then may bind to it
	"vhost_vdpa_asid_suspend"
)
# SAMPLE_CASES="a b": run only those cases (while working on one).
[ -z "${SAMPLE_CASES:-}" ] || read -r -a CASES <<<"$SAMPLE_CASES"

. "$ROOT/tools/lib/guest-tests.sh"
ktap_plan "${#CASES[@]}"

bail() {
	echo "Bail out! $*"
	exit 1
}
[ "$(id -u)" = 0 ] || bail "must run as root (inside the test VM)"
[ -x "$BIN" ] || bail "$BIN is missing: build it on the host first: (cd samples && cargo build --release)"
[ -x "$POKE" ] || bail "$POKE is missing: build it on the host first: (cd samples && cargo build --release)"
[ -e /dev/vduse/control ] || bail "/dev/vduse/control is missing: no VDUSE module loaded"
for t in vdpa mkfs.ext4 fsck.ext4 fio cmp timeout; do
	command -v "$t" >/dev/null || bail "$t not found"
done
mkdir -p "$LOGDIR" "$WORK" || bail "cannot create $LOGDIR or $WORK"
rm -f "$LOGDIR"/*.log

DAEMON_PID=
DAEMON_LOG=
DAEMON_LOG_START=0
DAEMON_ENV=()
VDPA_DEVS=()

cleanup() {
	local d
	mountpoint -q "$WORK/mnt" 2>/dev/null && umount "$WORK/mnt"
	for d in "${VDPA_DEVS[@]}"; do
		[ -e "/sys/bus/vdpa/devices/$d" ] && vdpa dev del "$d" 2>/dev/null
	done
	VDPA_DEVS=()
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		timeout 20 tail --pid="$DAEMON_PID" -f /dev/null 2>/dev/null || kill -KILL "$DAEMON_PID" 2>/dev/null
	fi
	DAEMON_PID=
}
trap 'cleanup; rm -rf "$WORK"' EXIT

# The log of the current daemon instance only (a restarted daemon appends to the same file).
cur_log() {
	tail -n +$((DAEMON_LOG_START + 1)) "$DAEMON_LOG" 2>/dev/null
}

# start_daemon NAME LOGTAG ARGS...: start vduse-blk (with DAEMON_ENV in its environment) and
# wait until it serves /dev/vduse/NAME.
start_daemon() {
	local name=$1 tag=$2
	shift 2
	DAEMON_LOG=$LOGDIR/$tag.log
	touch "$DAEMON_LOG"
	DAEMON_LOG_START=$(wc -l <"$DAEMON_LOG")
	note "${DAEMON_ENV[*]} vduse-blk --name $name $*"
	env "${DAEMON_ENV[@]}" "$BIN" --name "$name" "$@" >>"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	wait_serving "$DAEMON_PID" "$DAEMON_LOG" "$DAEMON_LOG_START" "$name"
}

# stop_daemon NAME: SIGTERM, wait for a clean exit, check the device is gone.
stop_daemon() {
	local name=$1 rc
	kill -TERM "$DAEMON_PID" 2>/dev/null
	if ! timeout 30 tail --pid="$DAEMON_PID" -f /dev/null; then
		note "daemon did not exit after SIGTERM"
		show_log
		return 1
	fi
	wait "$DAEMON_PID"
	rc=$?
	DAEMON_PID=
	if [ "$rc" != 0 ]; then
		note "daemon exited with status $rc"
		show_log
		return 1
	fi
	if [ -e "/dev/vduse/$name" ]; then
		note "/dev/vduse/$name still exists after the daemon exited"
		return 1
	fi
	return 0
}

# add_vdpa NAME: add the vDPA device; sets BLKDEV to its /dev/vdX once virtio-blk probed it.
BLKDEV=
add_vdpa() { add_blk "$1" || { show_log; return 1; }; }

del_vdpa() {
	local name=$1 d keep=()
	vdpa dev del "$name" || { note "vdpa dev del $name failed"; return 1; }
	for d in "${VDPA_DEVS[@]}"; do [ "$d" = "$name" ] || keep+=("$d"); done
	VDPA_DEVS=("${keep[@]}")
}

teardown() {
	local name=$1
	del_vdpa "$name" || return 1
	stop_daemon "$name"
}

# ---- cases -------------------------------------------------------------------------------

case_ram_fs_1q() {
	local name=sample-ram dev
	start_daemon $name ram_fs_1q --size 64M --queues 1 || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	fs_roundtrip "$dev" || { show_log; return 1; }
	teardown $name
}

case_fio_verify_1q() {
	local name=sample-fio1 dev
	start_daemon $name fio_verify_1q --size 64M --queues 1 || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	fio_verify "$dev" || { show_log; return 1; }
	teardown $name
}

case_fio_verify_4q() {
	local name=sample-fio4 dev nq served
	start_daemon $name fio_verify_4q --size 80M --queues 4 || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	nq=$(ls -d /sys/block/"${dev#/dev/}"/mq/* 2>/dev/null | wc -l)
	note "$dev has $nq hardware queue(s) (virtio-blk uses at most one per CPU; $(nproc) CPU(s))"
	# Two jobs on disjoint ranges, so that both CPUs (and their queues) submit I/O.
	fio_verify "$dev" --numjobs=2 --offset_increment=40M || { show_log; return 1; }
	teardown $name || return 1
	served=$(grep -cE "vq [0-9]+: stopped after [1-9][0-9]* requests" "$DAEMON_LOG")
	note "$served queue(s) served requests"
	if [ "$nq" -ge 2 ] && [ "$served" -lt 2 ]; then
		note "only $served queue served requests with $nq hardware queues"
		return 1
	fi
	# The daemon enumerated the IOTLB at DRIVER_OK (GET_INFO from 0, then from last + 1): every
	# ring of every ready queue must lie in an entry it found (a lookup returns the lowest
	# overlapping entry, as 7.3's vhost_iotlb_itree_first).
	local entries rings
	entries=$(sed -n 's/.*IOTLB of asid 0: \([0-9]*\) entries.*/\1/p' "$DAEMON_LOG" | tail -n1)
	rings=$(sed -n 's/.*against the rings of \([0-9]*\) ready queue.*/\1/p' "$DAEMON_LOG" | tail -n1)
	note "IOTLB enumeration: ${entries:-no} entries, ${rings:-no} ready queues checked"
	if grep "is in no IOTLB entry found by enumeration" "$DAEMON_LOG" | sed 's/^/#   /' | grep -q .; then
		note "a ring is missing from the enumerated IOTLB"
		return 1
	fi
	# (The bounce entry appears with the first streaming mapping, maybe after DRIVER_OK.)
	[ "${rings:-0}" -ge 2 ] && [ "${entries:-0}" -ge "$rings" ] ||
		{ note "expected at least one ring entry per ready queue"; return 1; }
	return 0
}

# The bounce buffer in the daemon's own memory (VDUSE_IOTLB_REG_UMEM): fio verify through it,
# with the pinned pages charged to the daemon (VmPin).
case_umem_fio_verify() {
	local name=sample-umem dev
	# The 64 MiB bounce buffer is pinned and charged to RLIMIT_MEMLOCK (8 MiB by default).
	ulimit -l unlimited
	start_daemon $name umem_fio_verify --size 64M --queues 1 --umem || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	fio_verify "$dev" --size=16M || { show_log; return 1; }
	cur_log | grep -q "bounce buffer in our own memory (VDUSE_IOTLB_REG_UMEM" ||
		{ note "the daemon did not register its bounce buffer"; show_log; return 1; }
	grep -q "^VmPin:[[:space:]]*65536 kB" "/proc/$DAEMON_PID/status" ||
		{ note "the daemon's VmPin is not the 64 MiB bounce buffer: $(grep VmPin "/proc/$DAEMON_PID/status")"; return 1; }
	teardown $name
}

# The bounce buffer switched to the kernel's pages and back (DEREG_UMEM + REG_UMEM) hundreds of
# times while fio verify runs on two queues. The daemon (all its threads) is pinned to CPU 0, so
# its queue threads, which deliver completions inline (D6) and unmap in the callback, preempt
# the switching thread on the same CPU: with a switch that can be interrupted or preempted,
# that CPU locks up (the hard-lockup detector, an RCU stall or the VM timeout tells).
case_umem_switch_under_io() {
	local name=sample-umemsw dev n
	ulimit -l unlimited
	start_daemon $name umem_switch --size 64M --queues 2 --umem --umem-cycle 0 || return 1
	taskset -a -p -c 0 "$DAEMON_PID" >/dev/null || { note "cannot pin the daemon to CPU 0"; return 1; }
	# A 16 MiB bounce buffer: each switch pins and unpins 4096 pages, not 16384.
	echo $((16 << 20)) >"/sys/class/vduse/$name/bounce_size" || { note "cannot set bounce_size"; return 1; }
	add_vdpa $name || return 1
	dev=$BLKDEV
	fio_verify "$dev" --size=8M --numjobs=2 --offset_increment=24M --ioengine=libaio \
		--iodepth=16 || { show_log; return 1; }
	teardown $name || return 1
	n=$(sed -n 's/.*bounce buffer re-registered \([0-9]*\) times in all.*/\1/p' "$DAEMON_LOG" | tail -n1)
	note "the bounce buffer was switched ${n:-no} times under I/O"
	[ "${n:-0}" -ge 200 ] || { note "fewer than 200 switches"; show_log; return 1; }
	return 0
}

case_reconnect_after_sigkill() {
	local name=sample-rec dev fio_pid rc img=$WORK/rec.img log=$WORK/rec.reconnect
	local args=(--file "$img" --size 64M --queues 1 --reconnect-log "$log")
	start_daemon $name reconnect "${args[@]}" || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	timeout 900 fio --name=r --filename="$dev" --rw=randwrite --bs=4k --size=16M \
		--verify=crc32c --direct=1 --ioengine=psync >"$WORK/fio.out" 2>&1 &
	fio_pid=$!
	# Kill the daemon once fio is well into its writes (not before it started, not after).
	wait_until 60 writes_done "$dev" 300 || { note "fio did not get 300 writes done"; return 1; }
	if ! kill -0 $fio_pid 2>/dev/null; then
		note "fio finished before the daemon was killed: the case proves nothing"
		return 1
	fi
	note "kill -9 $DAEMON_PID while fio runs"
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	[ -e "/dev/vduse/$name" ] || { note "/dev/vduse/$name vanished with the daemon"; return 1; }
	start_daemon $name reconnect "${args[@]}" || return 1
	cur_log | grep -q "re-attaching" || { note "the new daemon did not re-attach"; show_log; return 1; }
	cur_log | grep "vq 0: started" | sed 's/^/#   /'
	wait $fio_pid
	rc=$?
	grep -E "err=|verify" "$WORK/fio.out" | sed 's/^/#   /'
	if [ $rc != 0 ]; then
		note "fio failed with $rc after the reconnect"
		tail -n 20 "$WORK/fio.out" | sed 's/^/#   /'
		show_log
		return 1
	fi
	teardown $name
}

# The daemon kills itself at the two points the reconnect log must cover: a request taken from
# the ring but not executed (it must be resubmitted), and a completion published to the used
# ring but not yet cleared from the log (it must not be completed twice).
case_reconnect_inflight_windows() {
	local name=sample-win dev fio_pid rc img=$WORK/win.img log=$WORK/win.reconnect
	local args=(--file "$img" --size 64M --queues 1 --reconnect-log "$log")
	local mode expect
	DAEMON_ENV=(VDUSE_CRASH_AT=taken:300)
	start_daemon $name reconnect_windows "${args[@]}" || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	timeout 900 fio --name=w --filename="$dev" --rw=randwrite --bs=4k --size=16M \
		--verify=crc32c --direct=1 --ioengine=psync >"$WORK/fio.out" 2>&1 &
	fio_pid=$!
	for mode in published:500 none; do
		if ! timeout 120 tail --pid="$DAEMON_PID" -f /dev/null; then
			note "the daemon did not crash at ${DAEMON_ENV[*]}"
			return 1
		fi
		wait "$DAEMON_PID" 2>/dev/null
		cur_log | grep "VDUSE_CRASH_AT" | sed 's/^/#   /'
		kill -0 $fio_pid 2>/dev/null || { note "fio ended before the crash"; return 1; }
		expect="resubmitting 1 in-flight"
		[ "${DAEMON_ENV[0]}" = "VDUSE_CRASH_AT=published:500" ] &&
			expect="was completed just before the crash"
		if [ "$mode" = none ]; then DAEMON_ENV=(); else DAEMON_ENV=("VDUSE_CRASH_AT=$mode"); fi
		start_daemon $name reconnect_windows "${args[@]}" || return 1
		cur_log | grep -E "vq 0: (started|request)" | sed 's/^/#   /'
		if ! cur_log | grep -q "$expect"; then
			note "the restarted daemon did not report '$expect'"
			show_log
			return 1
		fi
	done 2> >(grep -v ' Killed ' >&2) # bash's notice about the self-killed daemon
	wait $fio_pid
	rc=$?
	grep -E "err=|verify" "$WORK/fio.out" | sed 's/^/#   /'
	if [ $rc != 0 ]; then
		note "fio failed with $rc after the reconnects"
		tail -n 20 "$WORK/fio.out" | sed 's/^/#   /'
		show_log
		return 1
	fi
	teardown $name
}

case_api_v0_fallback() {
	local name=sample-v0 dev
	start_daemon $name api_v0 --size 64M --api-version 0 || return 1
	grep -q "API version 0" "$DAEMON_LOG" || { note "daemon did not use API 0"; return 1; }
	add_vdpa $name || return 1
	dev=$BLKDEV
	fs_roundtrip "$dev" || { show_log; return 1; }
	teardown $name || return 1
	if grep -qE "msg (SET_VQ_GROUP_ASID|UPDATE_IOTLB)" "$DAEMON_LOG"; then
		note "API 1 messages seen on an API 0 device"
		return 1
	fi
	return 0
}

case_queue_ready_message() {
	local name=sample-qr dev
	start_daemon $name queue_ready --size 16M || return 1
	if ! grep -q "VDUSE features offered 0x3, enabled 0x3" "$DAEMON_LOG"; then
		note "F_QUEUE_READY|F_SUSPEND not negotiated"
		show_log
		return 1
	fi
	add_vdpa $name || return 1
	dev=$BLKDEV
	teardown $name || return 1
	grep -q "msg SET_VQ_READY vq=0 ready=1" "$DAEMON_LOG" || { note "no SET_VQ_READY ready=1"; show_log; return 1; }
	grep -q "msg SET_VQ_READY vq=0 ready=0" "$DAEMON_LOG" || { note "no SET_VQ_READY ready=0 on removal"; show_log; return 1; }
	# Without the feature the kernel must not send it.
	name=sample-qr0
	start_daemon $name queue_ready_off --size 16M --no-features || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	teardown $name || return 1
	if grep -q "msg SET_VQ_READY" "$DAEMON_LOG"; then
		note "SET_VQ_READY received although F_QUEUE_READY was not negotiated"
		return 1
	fi
	return 0
}

# A read-only disk; then SIGTERM while the device is still on the vDPA bus: the daemon must say
# so, keep serving, and finish the shutdown by itself once `vdpa dev del` ran.
case_read_only_and_sigterm_while_attached() {
	local name=sample-ro dev i
	start_daemon $name read_only --size 16M --read-only || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	[ "$(cat /sys/block/"${dev#/dev/}"/ro)" = 1 ] || { note "$dev is not read-only"; return 1; }
	dd if="$dev" of=/dev/null bs=4k count=64 iflag=direct status=none || { note "read failed"; return 1; }
	if dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
		note "a write to the read-only disk succeeded"
		return 1
	fi
	kill -TERM "$DAEMON_PID"
	wait_until 20 eval 'cur_log | grep -q "device $name is still attached to the vDPA bus: run \`vdpa dev del $name\` first"' ||
		{ note "no 'still attached' message"; show_log; return 1; }
	kill -0 "$DAEMON_PID" 2>/dev/null || { note "the daemon exited while attached"; show_log; return 1; }
	dd if="$dev" of=/dev/null bs=4k count=64 skip=64 iflag=direct status=none ||
		{ note "the device stopped serving after SIGTERM"; return 1; }
	del_vdpa $name || return 1
	for i in $(seq 1 100); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		note "the daemon did not finish its shutdown after vdpa dev del"
		show_log
		return 1
	fi
	wait "$DAEMON_PID" || { note "daemon exit status $?"; show_log; return 1; }
	DAEMON_PID=
	[ ! -e "/dev/vduse/$name" ] || { note "/dev/vduse/$name still exists"; return 1; }
	return 0
}

case_vhost_vdpa_asid_suspend() {
	local name=sample-vh dev vh i m rc
	modprobe vhost_vdpa 2>/dev/null
	[ -d /sys/bus/vdpa/drivers/vhost_vdpa ] || { note "vhost_vdpa driver not available"; return 1; }
	start_daemon $name vhost_vdpa --size 16M || return 1
	# Add the device straight onto vhost_vdpa: with virtio_vdpa unloaded no other driver can
	# take it (and this case needs no virtio_vdpa data path). virtio_vdpa comes back at the end.
	rmmod virtio_vdpa 2>/dev/null
	add_vdpa_dev "$name" || { modprobe virtio_vdpa; show_log; return 1; }
	vh=
	for i in $(seq 1 100); do
		for m in /sys/bus/vdpa/devices/"$name"/vhost-vdpa-*; do
			[ -e "$m" ] && [ -c "/dev/${m##*/}" ] && vh=/dev/${m##*/}
		done
		[ -n "$vh" ] && break
		sleep 0.1
	done
	[ -n "$vh" ] || { note "no /dev/vhost-vdpa-N for $name"; return 1; }
	note "$name is $vh"
	timeout 120 "$POKE" --dev "$vh" --asid --suspend --expect-id "vduse-$name" >"$WORK/poke.out" 2>&1
	rc=$?
	sed 's/^/#   /' "$WORK/poke.out"
	teardown $name || { modprobe virtio_vdpa; return 1; }
	modprobe virtio_vdpa
	[ $rc = 0 ] || { show_log; return 1; }
	for m in "msg UPDATE_IOTLB asid=0" "msg SET_VQ_GROUP_ASID group=0 asid=0" \
		"msg SET_VQ_READY vq=0 ready=1" "msg SUSPEND" "suspended: all queues quiesced" \
		"msg GET_VQ_STATE vq=0 avail_index=2"; do
		grep -q "$m" "$DAEMON_LOG" || { note "daemon log lacks '$m'"; show_log; return 1; }
	done
	return 0
}

# The device's sysfs attributes written while fio verify runs on two queues (issue 16's
# concurrency): each queue's irq_cb_affinity and msg_timeout rewritten hundreds of times,
# bounce_size refused (EPERM: on the bus), every attribute read; the data must verify and the
# device come down cleanly.
case_sysfs_writes_under_io() {
	local name=sample-sysfs dev fio_pid rc writes=0 eperm=0 i
	start_daemon $name sysfs_writes --size 64M --queues 2 || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	local d=/sys/class/vduse/$name
	fio_verify "$dev" --size=16M --numjobs=2 --offset_increment=24M --ioengine=libaio \
		--iodepth=16 &
	fio_pid=$!
	for ((i = 0; i < 300; i++)); do
		kill -0 "$fio_pid" 2>/dev/null || break
		echo $((i % 3 + 1)) >"$d/vq$((i % 2))/irq_cb_affinity" && writes=$((writes + 1))
		echo $((i % 30 + 1)) >"$d/msg_timeout" && writes=$((writes + 1))
		echo 1048576 2>/dev/null >"$d/bounce_size" || eperm=$((eperm + 1))
		cat "$d/msg_timeout" "$d/bounce_size" "$d/vq0/irq_cb_affinity" "$d/vq1/irq_cb_affinity" >/dev/null ||
			{ note "reading the attributes failed"; kill "$fio_pid"; return 1; }
	done
	wait "$fio_pid"
	rc=$?
	note "$writes attribute writes and $eperm refused bounce_size writes during fio ($i rounds)"
	[ "$rc" = 0 ] || { show_log; return 1; }
	[ "$i" -ge 20 ] || { note "fio ended before 20 rounds of writes: nothing was tested"; return 1; }
	[ "$eperm" = "$i" ] || { note "a bounce_size write was accepted on the bus"; return 1; }
	[ "$writes" = $((2 * i)) ] || { note "an affinity or msg_timeout write failed"; return 1; }
	teardown $name
}

# vdpa dev del while fio runs (the daemon still serving): the del returns, fio stops with an
# error instead of hanging, the daemon exits cleanly on SIGTERM.
case_del_under_io() {
	local name=sample-delio dev fio_pid rc t0
	start_daemon $name del_under_io --size 64M --queues 2 || return 1
	add_vdpa $name || return 1
	dev=$BLKDEV
	timeout 300 fio --name=d --filename="$dev" --rw=randrw --bs=4k --direct=1 --ioengine=libaio \
		--iodepth=16 --numjobs=2 --time_based --runtime=120 >"$WORK/fio-del.out" 2>&1 &
	fio_pid=$!
	io_flows "$dev" || { kill "$fio_pid"; return 1; }
	t0=$SECONDS
	timeout 120 vdpa dev del "$name" || { note "vdpa dev del failed or hung under I/O"; return 1; }
	VDPA_DEVS=()
	note "vdpa dev del under I/O returned after $((SECONDS - t0))s"
	if ! timeout 60 tail --pid="$fio_pid" -f /dev/null; then
		note "fio did not stop within 60 s of the del"
		kill -KILL "$fio_pid"
		return 1
	fi
	wait "$fio_pid"
	rc=$?
	grep -E "err=|error" "$WORK/fio-del.out" | head -n 3 | sed 's/^/#   /'
	[ "$rc" != 0 ] || { note "fio ran to its end although the disk went away"; return 1; }
	[ ! -e "$dev" ] || { note "$dev still exists after the del"; return 1; }
	stop_daemon "$name"
}

# ---- main ----------------------------------------------------------------------------------

after_case() {
	cleanup
	DAEMON_LOG=
	DAEMON_ENV=()
}
run_cases sample after_case "${CASES[@]}"
rc=$?
note "daemon logs in $LOGDIR"
exit $rc
