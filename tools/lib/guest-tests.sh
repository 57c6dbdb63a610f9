# SPDX-License-Identifier: GPL-2.0
# Helpers of the end-to-end test scripts that run inside the test VM (tools/testing/sample,
# qsd, net, orphan, faults). Source it; the caller sets WORK (a scratch directory) and, for
# show_log, DAEMON_LOG (the current daemon's log).

note() { echo "# $*"; }

# ktap_plan N: the KTAP header of a script that reports N test points (printed before anything
# can bail out).
ktap_plan() {
	echo "KTAP version 1"
	echo "1..$1"
}

# show_log [LOG]: the last lines of LOG (default: the current daemon's, $DAEMON_LOG), as
# comments.
show_log() {
	local log=${1:-${DAEMON_LOG:-}}
	[ -n "$log" ] && [ -f "$log" ] && tail -n 25 "$log" | sed 's/^/#   /'
}

# wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds; fail after SECONDS.
wait_until() {
	local limit=$(($1 * 10)) i
	shift
	for ((i = 0; i < limit; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# writes_done DEV N: DEV completed at least N writes (/sys/block/DEV/stat, field 5).
writes_done() {
	local w
	w=$(awk '{ print $5 }' "/sys/block/${1#/dev/}/stat" 2>/dev/null)
	[ "${w:-0}" -ge "$2" ]
}

# ios_count DEV: the reads and writes DEV completed (/sys/block/DEV/stat, fields 1 and 5).
ios_count() {
	local r w
	read -r r _ _ _ w _ <"/sys/block/${1#/dev/}/stat"
	echo $((r + w))
}

# ios_done DEV N: DEV completed at least N reads and writes.
ios_done() { [ "$(ios_count "$1")" -ge "$2" ]; }

# in_flight DEV: the requests the block layer has in flight on DEV (reads + writes).
in_flight() {
	local r w
	read -r r w <"/sys/block/${1#/dev/}/inflight"
	echo $((r + w))
}
some_in_flight() { [ "$(in_flight "$1")" -gt 0 ]; }

# io_flows DEV: waits until I/O really flows on DEV: 2000 more requests completed (fio takes
# seconds to start under TCG, and udev's probe of a new disk is in flight briefly before),
# then some in flight.
io_flows() {
	wait_until 180 ios_done "$1" $(($(ios_count "$1") + 2000)) ||
		{ note "fio did not get 2000 requests done on $1"; return 1; }
	wait_until 30 some_in_flight "$1" || { note "no request in flight on $1"; return 1; }
}

# fs_roundtrip DEV: mkfs, write a file, remount, compare, fsck.
fs_roundtrip() {
	local dev=$1
	mkdir -p "$WORK/mnt"
	head -c 3M /dev/urandom >"$WORK/ref" || return 1
	timeout 120 mkfs.ext4 -q -F "$dev" || { note "mkfs.ext4 failed"; return 1; }
	mount "$dev" "$WORK/mnt" || { note "mount failed"; return 1; }
	cp "$WORK/ref" "$WORK/mnt/file" && sync || { note "write failed"; umount "$WORK/mnt"; return 1; }
	umount "$WORK/mnt" || { note "umount failed"; return 1; }
	mount "$dev" "$WORK/mnt" || { note "remount failed"; return 1; }
	if ! cmp "$WORK/ref" "$WORK/mnt/file"; then
		note "data differs after remount"
		umount "$WORK/mnt"
		return 1
	fi
	umount "$WORK/mnt" || return 1
	timeout 120 fsck.ext4 -n -f "$dev" >"$WORK/fsck.out" 2>&1 || {
		note "fsck.ext4 -n -f reported problems"
		sed 's/^/#   /' "$WORK/fsck.out"
		return 1
	}
	return 0
}

# fio_verify DEV [fio options]: random 4 KiB writes (32 MiB unless the options say otherwise),
# each verified by crc32c; the summary lines as comments.
fio_verify() {
	local dev=$1
	shift
	timeout 600 fio --name=v --filename="$dev" --rw=randwrite --bs=4k --size=32M \
		--verify=crc32c --direct=1 --ioengine=psync "$@" >"$WORK/fio.out" 2>&1
	local rc=$?
	grep -E "err=|verify|WRITE:|READ:" "$WORK/fio.out" | sed 's/^/#   /'
	[ $rc = 0 ] || { note "fio exited with $rc"; tail -n 20 "$WORK/fio.out" | sed 's/^/#   /'; }
	return $rc
}

# kmemleak_clean: no unreferenced object after two scans (the second reports what the first
# found too young), else the first ones are shown. Fails on a kernel without kmemleak.
kmemleak_clean() {
	local leaks
	[ -e /sys/kernel/debug/kmemleak ] || { note "no kmemleak in this kernel"; return 1; }
	echo scan >/sys/kernel/debug/kmemleak
	sleep 5
	echo scan >/sys/kernel/debug/kmemleak
	leaks=$(grep -c "^unreferenced object" /sys/kernel/debug/kmemleak)
	note "kmemleak: $leaks unreferenced object(s)${1:+ $1}"
	[ "$leaks" = 0 ] || { grep -A12 "^unreferenced object" /sys/kernel/debug/kmemleak | head -40 | sed 's/^/#   /'; return 1; }
}

# run_cases SUITE AFTER CASE...: runs the functions case_CASE in turn and prints their KTAP
# points (SUITE/CASE, with the seconds each took; the plan is the caller's, ktap_plan), with
# CASE set to the running case's name; after each, AFTER is called with 0 (passed) or 1
# (failed), to clean up. Returns non-zero if a case failed.
run_cases() {
	local suite=$1 after=$2 c n=0 failed=0 rc t0
	shift 2
	for c in "$@"; do
		n=$((n + 1))
		t0=$SECONDS
		CASE=$c
		if "case_$c"; then
			echo "ok $n $suite/$c # $((SECONDS - t0))s"
			rc=0
		else
			echo "not ok $n $suite/$c # $((SECONDS - t0))s"
			failed=$((failed + 1))
			rc=1
		fi
		"$after" "$rc"
	done
	note "$failed of $# failed"
	[ $failed = 0 ]
}

# wait_serving PID LOG FROM NAME: waits (20 s) until daemon PID says in LOG, after its line
# FROM, that it serves /dev/vduse/NAME (the line the sample daemons print once the device is
# set up); fails, with the log's tail, if the daemon exits first or takes longer.
wait_serving() {
	local pid=$1 log=$2 from=$3 name=$4 i
	for ((i = 0; i < 200; i++)); do
		tail -n +$((from + 1)) "$log" 2>/dev/null | grep -q "serving /dev/vduse/$name" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	note "the daemon did not come up (no \"serving /dev/vduse/$name\" in $log)"
	show_log "$log"
	return 1
}

# add_vdpa_dev NAME [SECONDS]: puts NAME on the vDPA bus (`vdpa dev add`, mgmtdev vduse), once,
# or retried for SECONDS while its daemon may still be setting up the queues; NAME is added to
# VDPA_DEVS (for the caller's cleanup).
add_vdpa_dev() {
	local name=$1 secs=${2:-0}
	if [ "$secs" -gt 0 ]; then
		wait_until "$secs" vdpa dev add name "$name" mgmtdev vduse 2>/dev/null
	else
		vdpa dev add name "$name" mgmtdev vduse
	fi || { note "vdpa dev add $name failed"; return 1; }
	VDPA_DEVS+=("$name")
}

# add_blk NAME [SECONDS]: add_vdpa_dev, then waits for its /dev/vdX (BLKDEV).
add_blk() {
	BLKDEV=
	add_vdpa_dev "$@" && wait_blkdev "$1"
}

# netdev_of NAME: prints the virtio_net interface of vDPA device NAME; fails while there is none.
netdev_of() {
	local n
	for n in /sys/bus/vdpa/devices/"$1"/virtio*/net/*; do
		[ -e "$n" ] && { echo "${n##*/}"; return 0; }
	done
	return 1
}

# add_net NAME [SECONDS]: add_vdpa_dev, then waits (60 s) for its interface (NETDEV).
add_net() {
	NETDEV=
	add_vdpa_dev "$@" || return 1
	wait_until 60 netdev_of "$1" >/dev/null || { note "no netdev appeared for $1"; return 1; }
	NETDEV=$(netdev_of "$1")
	note "$1 is $NETDEV"
}

# blkdev_of NAME: sets BLKDEV to the /dev/vdX of vDPA device NAME once virtio_blk probed it;
# fails while there is none.
blkdev_of() {
	local b
	for b in /sys/bus/vdpa/devices/"$1"/virtio*/block/*; do
		[ -e "$b" ] && [ -b "/dev/${b##*/}" ] && BLKDEV=/dev/${b##*/} && return 0
	done
	return 1
}

# wait_blkdev NAME [SECONDS]: waits (60 s by default) for NAME's block device (BLKDEV).
wait_blkdev() {
	BLKDEV=
	wait_until "${2:-60}" blkdev_of "$1" || { note "no block device appeared for $1"; return 1; }
	note "$1 is $BLKDEV"
}
