#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/faults/run.sh: fault injection inside the test VM (tools/vm-run --module none),
# vduse_rs.ko then C vduse.ko: `vduse-tests faults` (every allocation point of device creation,
# the device ioctls and vdpa dev add failed in turn), then on a samples/vduse-blk disk UMEM
# registration and the domain file (`vduse-tests faults --served`, the same way), the map path
# under I/O (probabilistic injection into the non-sleeping allocations while fio runs), then
# kmemleak. Needs the debug kernel (no-driver-suites.sh runs it only where failslab exists).
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
BIN=$VDUSE_RS_ROOT/samples/target/release/vduse-blk
SERVED=fi-io
WORK=$(mktemp -d)

# fi_set VALUE ATTR...: writes VALUE to ATTR of both failslab and fail_page_alloc.
fi_set() {
	local v=$1 a c
	shift
	for a in "$@"; do
		for c in failslab fail_page_alloc; do echo "$v" >"/sys/kernel/debug/$c/$a" || return 1; done
	done
}

# serve MODNAME: a samples/vduse-blk disk on the driver loaded now, bound to virtio_blk, with
# 1 MiB of bounce space (so that its pages are made and freed again all along), read once so
# that the bounce map exists (UMEM registration needs it): DAEMON, DISK. Fails if it cannot.
serve() {
	local mod=$1
	DAEMON= DISK=
	modprobe virtio_vdpa
	"$BIN" --name "$SERVED" --size 32M --queues 1 >"$VM_OUT/faults-daemon-$mod.log" 2>&1 &
	DAEMON=$!
	wait_serving "$DAEMON" "$VM_OUT/faults-daemon-$mod.log" 0 "$SERVED" || return 1
	echo 1048576 >"/sys/class/vduse/$SERVED/bounce_size" || return 1
	add_blk "$SERVED" || return 1
	DISK=$BLKDEV
	udevadm settle 2>/dev/null
	dd if="$DISK" of=/dev/null bs=64k count=16 iflag=direct status=none ||
		{ note "the first read of $DISK failed"; return 1; }
}

# unserve: takes serve's disk off the bus and stops its daemon; fails if either hangs.
unserve() {
	local rc=0
	if [ -e "/sys/bus/vdpa/devices/$SERVED" ]; then
		timeout 120 vdpa dev del "$SERVED" || { note "vdpa dev del failed or hung"; rc=1; }
	fi
	if [ -n "$DAEMON" ]; then
		kill -TERM "$DAEMON"
		timeout 30 tail --pid="$DAEMON" -f /dev/null ||
			{ note "the daemon did not exit"; kill -KILL "$DAEMON"; rc=1; }
	fi
	modprobe -r virtio_vdpa
	return $rc
}

# map_under_io MODNAME: the map path under I/O on serve's disk, where fail-nth cannot reach
# (map_page runs with GFP_ATOMIC, in the submitter's context or a softirq): 20% of the
# non-sleeping allocations with MODNAME's code on the stack fail while fio runs; the block
# layer must see I/O errors, never the kernel an oops or a hang; then injection stops and fio
# verify must pass on the same disk. Prints how many failures were injected.
map_under_io() {
	local mod=$1 lo hi injected rc=0
	lo=$(awk -v t="[$mod]" '$NF == t && ($2 == "t" || $2 == "T") { print $1 }' /proc/kallsyms | sort | head -n1)
	hi=$(awk -v t="[$mod]" '$NF == t && ($2 == "t" || $2 == "T") { print $1 }' /proc/kallsyms | sort | tail -n1)
	[ -n "$lo" ] || { note "no text symbols of $mod"; return 1; }
	# The text range in hex: kernel addresses are negative in bash's signed arithmetic, and
	# debugfs refuses a negative number for an unsigned attribute (EINVAL).
	fi_set 0 probability && fi_set Y ignore-gfp-wait && fi_set 0 verbose &&
		fi_set 1 interval && fi_set 1000000 times && fi_set 32 stacktrace-depth &&
		fi_set "0x$lo" require-start && fi_set "$(printf '0x%x' $((16#$hi + 4096)))" require-end &&
		fi_set 20 probability || { note "cannot set up failslab/fail_page_alloc"; fi_set 0 probability; return 1; }
	timeout 120 fio --name=fi --filename="$DISK" --rw=randrw --bs=4k --size=16M --direct=1 \
		--ioengine=libaio --iodepth=16 --time_based --runtime=15 --continue_on_error=all \
		>"$WORK/fio-fi.out" 2>&1
	local frc=$?
	fi_set 0 probability
	injected=$((2000000 - $(cat /sys/kernel/debug/failslab/times) - $(cat /sys/kernel/debug/fail_page_alloc/times)))
	note "$mod: $injected allocations failed under 15 s of fio (fio exit $frc; $(grep -o 'err=[ 0-9]*' "$WORK/fio-fi.out" | sort | uniq -c | tr -s ' ' | tr '\n' ' '))"
	[ "$frc" != 124 ] || { note "fio hung under injection"; rc=1; }
	[ "$injected" -gt 0 ] || { note "no allocation was failed: the injection tested nothing"; rc=1; }
	fio_verify "$DISK" --size=8M || rc=1
	return $rc
}

# comment FILE: FILE's lines as KTAP comments ("# [c] " before each on C; on vduse_rs "# "
# before those that are not comments already).
comment() {
	if [ -n "$prefix" ]; then
		sed "s/^/$prefix/" "$1"
	else
		sed '/^#/! s/^/# /' "$1"
	fi
}

# renumber PREFIX: copies a KTAP stream from stdin, its points numbered on from this script's
# (PREFIX before each line; with a prefix, the points are comments, not counted).
renumber() {
	local line
	while IFS= read -r line; do
		if [[ $line =~ ^(KTAP\ version|1\.\.) ]]; then
			continue
		elif [ -z "$1" ] && [[ $line =~ ^(not\ )?ok\ [0-9]+\ (.*)$ ]]; then
			npoint=$((npoint + 1))
			[ -n "${BASH_REMATCH[1]}" ] && rc=1
			echo "${BASH_REMATCH[1]}ok $npoint ${BASH_REMATCH[2]}"
		else
			echo "$1$line"
		fi
	done
}

# point OK NAME: the next KTAP test point, passed if OK is 0 (a failure also sets rc).
rc=0 npoint=0
echo "KTAP version 1"
point() {
	npoint=$((npoint + 1))
	if [ "$1" = 0 ]; then
		echo "ok $npoint faults/$2"
	else
		echo "not ok $npoint faults/$2"
		rc=1
	fi
}

for m in rs c; do
	mod=$(vduse_modname "$m")
	[ -w "$leak" ] && echo scan >"$leak" && echo clear >"$leak"
	if ! vduse_load "$m"; then
		point 1 "load-$m"
		continue
	fi
	# On C, a failed allocation in vdpa dev add's domain creation frees the domain under its
	# still open file, whose release then uses and frees it again (KASAN use-after-free, an
	# oops in the adding task: differences.rst, D11). FAULTS_VDPA_ADD_ON_C=1 runs that path
	# there anyway, to see that.
	skip=()
	[ "$m" = c ] && [ "${FAULTS_VDPA_ADD_ON_C:-0}" != 1 ] && skip=(--skip vdpa_dev_add)
	prefix=
	[ "$m" = c ] && prefix="# [c] "
	"$bin" faults --module "$mod" "${skip[@]}" >"$WORK/faults.out" 2>&1 || [ "$m" = c ] || rc=1
	renumber "$prefix" <"$WORK/faults.out"
	# A served disk: UMEM registration and the domain file (their own fail-nth, from this
	# script's process, on a duplicate of the daemon's descriptor), then the map path under I/O.
	if serve "$mod" >"$WORK/serve.out" 2>&1; then r=0; else r=1; fi
	comment "$WORK/serve.out"
	if [ "$r" = 0 ]; then
		"$bin" faults --module "$mod" --served "$SERVED" >"$WORK/faults.out" 2>&1 || [ "$m" = c ] || rc=1
		renumber "$prefix" <"$WORK/faults.out"
		# The disk still works after the injections.
		if fio_verify "$DISK" --size=4M >"$WORK/verify.out" 2>&1; then r=0; else r=1; fi
		comment "$WORK/verify.out"
		[ "$m" = rs ] && point "$r" served_verify-rs
		# On C, I/O with map failures injected hard-locks the guest (security.rst, Findings:
		# a lockdep cycle kick_lock -> ready_lock -> the virtio-blk queue lock, closed by
		# virtio-blk kicking under its queue lock after a failed add; then both vCPUs spin).
		# FAULTS_MAP_ON_C=1 runs it there anyway, to see that.
		if [ "$m" = rs ] || [ "${FAULTS_MAP_ON_C:-0}" = 1 ]; then
			if map_under_io "$mod" >"$WORK/map.out" 2>&1; then r=0; else r=1; fi
			comment "$WORK/map.out"
			if [ "$m" = rs ]; then
				point "$r" map_under_io-rs
			else
				echo "# [c] map_under_io: $([ "$r" = 0 ] && echo passed || echo FAILED)"
			fi
		else
			echo "# [c] map_under_io: not run on C (it hard-locks the guest; FAULTS_MAP_ON_C=1 runs it)"
		fi
	else
		[ "$m" = rs ] && point 1 serve-rs
	fi
	if unserve >"$WORK/unserve.out" 2>&1; then r=0; else r=1; fi
	comment "$WORK/unserve.out"
	[ "$m" = rs ] && point "$r" unserve-rs
	vduse_unload "$m" || point 1 "unload-$m"
	if [ -w "$leak" ] && [ -e /sys/kernel/debug/failslab ]; then
		if kmemleak_clean "after the $m driver's injections" >"$VM_OUT/faults-kmemleak-$m.txt"; then
			r=0
		else
			r=1
		fi
		sed 's/^/# /' "$VM_OUT/faults-kmemleak-$m.txt" | head -30
		if [ "$m" = rs ]; then
			point "$r" kmemleak-rs
		fi
	fi
done
rm -rf "$WORK"
modprobe virtio_vdpa
# The plan last: how many points there are depends on what the kernel has (kmemleak).
echo "1..$npoint"
exit $rc
