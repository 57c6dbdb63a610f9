#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/qsd/run.sh: the unmodified Debian qemu-storage-daemon (its vduse-blk export,
# libvduse, API 0) against the VDUSE driver of the running kernel, through virtio_vdpa: the
# disk a real daemon serves. Runs INSIDE the test VM as root, with vdpa, virtio_vdpa and a VDUSE
# module loaded:
#
#   tools/vm-run --module rs -- tools/testing/qsd/run.sh
#
# Cases: ext4 round trip and fio --verify on 1 and 4 queues; resize through QMP block_resize
# (DEV_SET_CONFIG + config interrupt: the guest sees the new size and writes past the old end);
# SIGKILL of the daemon in the middle of a fio --verify run and a restart (reconnect). KTAP on
# stdout; exit status 1 if a case failed.
set -u

QSD=${QSD:-qemu-storage-daemon}
WORK=/dev/shm/vduse-qsd.$$
LOGDIR=${VM_OUT:-/tmp}/qsd
CASES=(fs_fio_1q fs_fio_4q resize reconnect_under_io)

note() { echo "# $*"; }
bail() {
	echo "Bail out! $*"
	exit 1
}

[ "$(id -u)" = 0 ] || bail "must run as root (inside the test VM)"
command -v "$QSD" >/dev/null || bail "$QSD not found"
[ -e /dev/vduse/control ] || bail "/dev/vduse/control is missing: no VDUSE module loaded"
for t in vdpa mkfs.ext4 fsck.ext4 fio cmp python3 timeout; do
	command -v "$t" >/dev/null || bail "$t not found"
done
mkdir -p "$WORK" "$LOGDIR" || bail "cannot create $WORK or $LOGDIR"
. "${VDUSE_RS_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}/tools/lib/guest-tests.sh"

QSD_PID=
QSD_ARGS=()
VDPA_DEV=
# start_qsd NAME QUEUES SIZE: a daemon exporting a new raw image of SIZE as vduse-blk NAME.
start_qsd() {
	local name=$1 nq=$2 size=$3
	truncate -s "$size" "$WORK/$name.img" || return 1
	QSD_ARGS=(
		--blockdev "driver=file,node-name=file0,filename=$WORK/$name.img"
		--blockdev driver=raw,node-name=disk0,file=file0
		--export "type=vduse-blk,id=exp0,node-name=disk0,name=$name,num-queues=$nq,queue-size=256,writable=on"
		--chardev "socket,id=qmp0,path=$WORK/$name.qmp,server=on,wait=off"
		--monitor chardev=qmp0,mode=control
	)
	restart_qsd "$name"
}

# restart_qsd NAME: (re)starts the daemon with the same arguments; it re-opens an existing
# device and replays its in-flight log (kept in $TMPDIR).
restart_qsd() {
	local name=$1
	TMPDIR=$WORK "$QSD" "${QSD_ARGS[@]}" >>"$LOGDIR/$name.log" 2>&1 &
	QSD_PID=$!
	wait_until 30 test -e "/dev/vduse/$name" || {
		note "qemu-storage-daemon did not create /dev/vduse/$name"
		tail -n 20 "$LOGDIR/$name.log" | sed 's/^/#   /'
		return 1
	}
}

# add_vdpa NAME: puts the device on the vDPA bus (once the daemon set up its queues); sets
# BLKDEV to its /dev/vdX.
BLKDEV=
add_vdpa() {
	local name=$1
	BLKDEV=
	add_vdpa_dev "$name" 30 || return 1
	VDPA_DEV=$name
	wait_blkdev "$name"
}

# teardown NAME: off the bus, daemon stopped (it destroys the device), device gone.
teardown() {
	local name=$1 rc=0
	if [ -n "$VDPA_DEV" ]; then
		vdpa dev del "$VDPA_DEV" || { note "vdpa dev del failed"; rc=1; }
		VDPA_DEV=
	fi
	if [ -n "$QSD_PID" ]; then
		kill -TERM "$QSD_PID" 2>/dev/null
		wait "$QSD_PID" 2>/dev/null
		QSD_PID=
	fi
	wait_until 20 test ! -e "/dev/vduse/$name" || { note "/dev/vduse/$name still exists"; rc=1; }
	rm -f "$WORK/$name".*
	return $rc
}

fs_fio() {
	local name=$1 nq=$2
	start_qsd "$name" "$nq" 64M || return 1
	add_vdpa "$name" || return 1
	local dev=${BLKDEV#/dev/} hw busy=0 q
	hw=$(ls -d /sys/block/"$dev"/mq/* | wc -l)
	note "$BLKDEV has $hw hardware queue(s) ($nq virtqueues offered, $(nproc) CPUs)"
	fs_roundtrip "$BLKDEV" || return 1
	# Two jobs pinned to different CPUs, so that with two hardware queues both carry I/O.
	fio_verify "$BLKDEV" --size=24M --numjobs=2 --offset_increment=32M --cpus_allowed_policy=split \
		--cpus_allowed=0-$(($(nproc) - 1)) || return 1
	# blk-mq submits on the hardware queue of the submitting CPU, and fio ran one job on each
	# CPU (split policy): every hardware queue that serves a CPU carried I/O. 7.3's block
	# debugfs has no per-queue request counter, so that is what is checked.
	for q in /sys/block/"$dev"/mq/*; do
		note "hardware queue ${q##*/}: CPUs $(cat "$q/cpu_list")"
		[ -n "$(cat "$q/cpu_list")" ] && busy=$((busy + 1))
	done
	teardown "$name" || return 1
	if [ "$nq" -gt 1 ] && [ "$(nproc)" -gt 1 ]; then
		[ "$hw" -ge 2 ] || { note "only $hw hardware queue(s) with $nq virtqueues offered"; return 1; }
		[ "$busy" -ge 2 ] || { note "only $busy hardware queue(s) serve a CPU"; return 1; }
	fi
	return 0
}

case_fs_fio_1q() { fs_fio qsd-1q 1; }
case_fs_fio_4q() { fs_fio qsd-4q 4; }

# qmp NAME COMMAND ARGS_JSON: one QMP command on the daemon's monitor; fails on an error reply.
qmp() {
	python3 - "$WORK/$1.qmp" "$2" "$3" <<'PY'
import json, socket, sys
path, cmd, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = socket.socket(socket.AF_UNIX)
s.connect(path)
f = s.makefile("rw")
def reply():
    while True:
        msg = json.loads(f.readline())
        if "return" in msg or "error" in msg:
            return msg
json.loads(f.readline())  # greeting
for c, a in (("qmp_capabilities", {}), (cmd, args)):
    f.write(json.dumps({"execute": c, "arguments": a}) + "\n")
    f.flush()
    r = reply()
    if "error" in r:
        print("#   QMP %s: %s" % (c, r["error"]))
        sys.exit(1)
PY
}

sectors_are() { [ "$(cat "/sys/block/${1#/dev/}/size")" = "$2" ]; }

case_resize() {
	local name=qsd-resize old=$((64 << 20)) new=$((96 << 20))
	start_qsd "$name" 1 64M || return 1
	add_vdpa "$name" || return 1
	sectors_are "$BLKDEV" $((old / 512)) || { note "unexpected initial size"; return 1; }
	qmp "$name" block_resize "{\"node-name\": \"disk0\", \"size\": $new}" || return 1
	wait_until 20 sectors_are "$BLKDEV" $((new / 512)) || {
		note "the guest still sees $(cat "/sys/block/${BLKDEV#/dev/}/size") sectors"
		return 1
	}
	note "capacity $((old >> 20)) MiB -> $((new >> 20)) MiB seen by the guest"
	# Write past the old end and read it back.
	head -c 1M /dev/urandom >"$WORK/tail"
	dd if="$WORK/tail" of="$BLKDEV" bs=1M seek=80 oflag=direct status=none || { note "write past the old end failed"; return 1; }
	dd if="$BLKDEV" of="$WORK/tail.back" bs=1M skip=80 count=1 iflag=direct status=none || return 1
	cmp "$WORK/tail" "$WORK/tail.back" || { note "data past the old end differs"; return 1; }
	teardown "$name"
}

case_reconnect_under_io() {
	local name=qsd-rec fio_pid rc
	start_qsd "$name" 1 64M || return 1
	add_vdpa "$name" || return 1
	timeout 600 fio --name=r --filename="$BLKDEV" --rw=randwrite --bs=4k --size=16M \
		--verify=crc32c --direct=1 --ioengine=psync >"$WORK/fio.out" 2>&1 &
	fio_pid=$!
	wait_until 120 writes_done "$BLKDEV" 300 || { note "fio did not get 300 writes done"; return 1; }
	kill -0 $fio_pid 2>/dev/null || { note "fio finished before the daemon was killed"; return 1; }
	note "kill -9 qemu-storage-daemon while fio runs"
	kill -KILL "$QSD_PID"
	wait "$QSD_PID" 2>/dev/null
	[ -e "/dev/vduse/$name" ] || { note "/dev/vduse/$name vanished with the daemon"; return 1; }
	restart_qsd "$name" || return 1
	wait $fio_pid
	rc=$?
	grep -E "err=|WRITE:|verify" "$WORK/fio.out" | sed 's/^/#   /'
	[ $rc = 0 ] || { note "fio failed across the restart ($rc)"; return 1; }
	teardown "$name"
}

# after_case 0|1: a failed case may leave its device, daemon and mount behind.
after_case() {
	if [ "$1" != 0 ]; then
		[ -n "$VDPA_DEV" ] && vdpa dev del "$VDPA_DEV"
		[ -n "$QSD_PID" ] && kill -KILL "$QSD_PID" 2>/dev/null && wait "$QSD_PID" 2>/dev/null
		umount "$WORK/mnt" 2>/dev/null
	fi
	VDPA_DEV=
	QSD_PID=
}
ktap_plan ${#CASES[@]}
run_cases qsd after_case "${CASES[@]}"
rc=$?
rm -rf "$WORK"
note "daemon logs in $LOGDIR"
exit $rc
