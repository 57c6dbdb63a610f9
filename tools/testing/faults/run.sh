#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/faults/run.sh: fault injection inside the test VM (tools/vm-run --module none),
# vduse_rs.ko then C vduse.ko: `vduse-tests faults` (every allocation point of device creation,
# the device ioctls and vdpa dev add failed in turn; not UMEM registration, see
# tools/testing/vduse-tests/src/faults.rs), the map path under I/O (probabilistic injection into
# the non-sleeping allocations while fio runs on a samples/vduse-blk disk), then kmemleak. Needs
# the debug kernel (no-driver-suites.sh runs it only where failslab exists).
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
WORK=$(mktemp -d)

# fi_set VALUE ATTR...: writes VALUE to ATTR of both failslab and fail_page_alloc.
fi_set() {
	local v=$1 a c
	shift
	for a in "$@"; do
		for c in failslab fail_page_alloc; do echo "$v" >"/sys/kernel/debug/$c/$a" || return 1; done
	done
}

# map_under_io MODNAME: the map path under I/O, where fail-nth cannot reach (map_page runs
# with GFP_ATOMIC, in the submitter's context or a softirq): 20% of the non-sleeping
# allocations with MODNAME's code on the stack fail while fio runs on a vduse-blk disk (1 MiB of
# bounce space, so its pages are made and freed again all along); the block layer must see
# I/O errors, never the kernel an oops or a hang; then injection stops and fio verify must pass
# on the same disk, and the device must come down. Prints how many failures were injected.
map_under_io() {
	local mod=$1 name=fi-io pid dev lo hi injected rc=0
	lo=$(awk -v t="[$mod]" '$NF == t && ($2 == "t" || $2 == "T") { print $1 }' /proc/kallsyms | sort | head -n1)
	hi=$(awk -v t="[$mod]" '$NF == t && ($2 == "t" || $2 == "T") { print $1 }' /proc/kallsyms | sort | tail -n1)
	[ -n "$lo" ] || { note "no text symbols of $mod"; return 1; }
	modprobe virtio_vdpa
	"$BIN" --name "$name" --size 32M --queues 1 >"$VM_OUT/faults-daemon-$mod.log" 2>&1 &
	pid=$!
	wait_serving "$pid" "$VM_OUT/faults-daemon-$mod.log" 0 "$name" ||
		{ kill "$pid"; modprobe -r virtio_vdpa; return 1; }
	echo 1048576 >"/sys/class/vduse/$name/bounce_size"
	add_blk "$name" || rc=1
	dev=$BLKDEV
	if [ "$rc" = 0 ]; then
		# The text range in hex: kernel addresses are negative in bash's signed arithmetic, and
		# debugfs refuses a negative number for an unsigned attribute (EINVAL).
		fi_set 0 probability && fi_set Y ignore-gfp-wait && fi_set 0 verbose &&
			fi_set 1 interval && fi_set 1000000 times && fi_set 32 stacktrace-depth &&
			fi_set "0x$lo" require-start && fi_set "$(printf '0x%x' $((16#$hi + 4096)))" require-end &&
			fi_set 20 probability || { note "cannot set up failslab/fail_page_alloc"; rc=1; }
		timeout 120 fio --name=fi --filename="$dev" --rw=randrw --bs=4k --size=16M --direct=1 \
			--ioengine=libaio --iodepth=16 --time_based --runtime=15 --continue_on_error=all \
			>"$WORK/fio-fi.out" 2>&1
		local frc=$?
		fi_set 0 probability
		injected=$((2000000 - $(cat /sys/kernel/debug/failslab/times) - $(cat /sys/kernel/debug/fail_page_alloc/times)))
		note "$mod: $injected allocations failed under 15 s of fio (fio exit $frc; $(grep -o 'err=[ 0-9]*' "$WORK/fio-fi.out" | sort | uniq -c | tr -s ' ' | tr '\n' ' '))"
		[ "$frc" != 124 ] || { note "fio hung under injection"; rc=1; }
		[ "$injected" -gt 0 ] || { note "no allocation was failed: the injection tested nothing"; rc=1; }
		fio_verify "$dev" --size=8M || rc=1
	fi
	timeout 120 vdpa dev del "$name" || { note "vdpa dev del failed or hung"; rc=1; }
	kill -TERM "$pid"
	timeout 30 tail --pid="$pid" -f /dev/null || { note "the daemon did not exit"; kill -KILL "$pid"; rc=1; }
	modprobe -r virtio_vdpa
	return $rc
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
	if [ "$m" = rs ]; then
		# Its points are numbered on from this script's.
		"$bin" faults --module "$mod" >"$WORK/faults.out" 2>&1 || rc=1
		while IFS= read -r line; do
			if [[ $line =~ ^(KTAP\ version|1\.\.) ]]; then
				continue
			elif [[ $line =~ ^(not\ )?ok\ [0-9]+\ (.*)$ ]]; then
				npoint=$((npoint + 1))
				echo "${BASH_REMATCH[1]}ok $npoint ${BASH_REMATCH[2]}"
			else
				echo "$line"
			fi
		done <"$WORK/faults.out"
	else
		# On C, a failed allocation in vdpa dev add's domain creation frees the domain under
		# its still open file, whose release then uses and frees it again (KASAN
		# use-after-free, an oops in the adding task: differences.rst, D11).
		# FAULTS_VDPA_ADD_ON_C=1 runs that path there anyway, to see that.
		skip=(--skip vdpa_dev_add)
		[ "${FAULTS_VDPA_ADD_ON_C:-0}" = 1 ] && skip=()
		"$bin" faults --module "$mod" "${skip[@]}" | sed -u 's/^/# [c] /'
	fi
	# On C, I/O with map failures injected hard-locks the guest (security.rst, Findings: a
	# lockdep cycle kick_lock -> ready_lock -> the virtio-blk queue lock, closed by virtio-blk
	# kicking under its queue lock after a failed add; then both vCPUs spin). FAULTS_MAP_ON_C=1
	# runs it there anyway, to see that.
	if [ "$m" = rs ]; then
		if map_under_io "$mod" >"$WORK/map.out" 2>&1; then r=0; else r=1; fi
		cat "$WORK/map.out"
		point "$r" map_under_io-rs
	elif [ "${FAULTS_MAP_ON_C:-0}" = 1 ]; then
		if map_under_io "$mod" >"$WORK/map.out" 2>&1; then r=0; else r=1; fi
		sed 's/^/# [c] /' "$WORK/map.out"
		echo "# [c] map_under_io: $([ "$r" = 0 ] && echo passed || echo FAILED)"
	else
		echo "# [c] map_under_io: not run on C (it hard-locks the guest; FAULTS_MAP_ON_C=1 runs it)"
	fi
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
