#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/bench/profile-guest.sh: the guest half of tools/bench/profile. For each job and each
# driver group: samples/vduse-blk --null (1 GiB, 2 queues) on the driver, fio with a fixed
# number of I/Os between two `sync` calls (each makes the tcg-profile plugin write the counts
# since the previous one), then the window's files: NAME.window (the dump number), NAME.ios
# (reads + writes completed, from the disk's stat), NAME.kallsyms, NAME.usecs (its wall time),
# NAME.irq0/1 and NAME.stat0/1 (/proc/interrupts, and /proc/stat's CPU times and context
# switches, before and after).
set -u
: "${VDUSE_RS_ROOT:?}" "${PROFILE_MARKER:?}" "${PROFILE_COUNTS:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
. "$VDUSE_RS_ROOT/tools/lib/guest-tests.sh"
BLK=$VDUSE_RS_ROOT/samples/target/release/vduse-blk
jobs=${PROFILE_JOBS:-rr4k-qd1 rr4k-qd32 rw4k-qd32x2}
groups=${PROFILE_GROUPS:-c rs}
[ -n "${VDUSE_RS_KO_BASE:-}" ] && [[ " $groups " != *" rsb "* ]] && groups="$groups rsb"
ios=${PROFILE_IOS:-20000}
k=$(awk '$3 == "ksys_sync" { print $1 }' /proc/kallsyms)
[ "$k" = "$PROFILE_MARKER" ] || { echo "Bail out! ksys_sync is at $k, the plugin watches $PROFILE_MARKER (KASLR?)"; exit 1; }
dumps=0
# mark: ends the counting window (the plugin writes dump.$dumps).
mark() { sync; dumps=$((dumps + 1)); }
mark
modprobe -r virtio_vdpa vhost_vdpa 2>/dev/null
modprobe virtio_vdpa
rc=0
for j in $jobs; do
	case $j in
	rr4k-qd1) fio_args=(--rw=randread --bs=4k --iodepth=1 --numjobs=1) ;;
	rr4k-qd32) fio_args=(--rw=randread --bs=4k --iodepth=32 --numjobs=1) ;;
	rw4k-qd32x2) fio_args=(--rw=randwrite --bs=4k --iodepth=32 --numjobs=2) ;;
	sr128k-qd8) fio_args=(--rw=read --bs=128k --iodepth=8 --numjobs=1) ;;
	*) echo "Bail out! unknown job $j"; exit 1 ;;
	esac
	for g in $groups; do
		case $g in
		c) vduse_load c ;;
		rs) vduse_load rs ;;
		rsni) vduse_load rs irq_inline=0 ;;
		rsnt) vduse_load rs orphan_drain=0 ;;
		rsb) VDUSE_RS_KO=$VDUSE_RS_KO_BASE vduse_load rs ;;
		*) echo "Bail out! unknown group $g"; exit 1 ;;
		esac || { echo "not ok $j/$g: load"; rc=1; continue; }
		name=prof0
		"$BLK" --name "$name" --null --size 1G --queues 2 >"$PROFILE_COUNTS/$j-$g.daemon.log" 2>&1 &
		pid=$!
		if wait_until 30 test -e "/dev/vduse/$name" && wait_until 30 vdpa dev add name "$name" mgmtdev vduse 2>/dev/null &&
			wait_blkdev "$name" >/dev/null; then
			dev=$BLKDEV
			udevadm settle 2>/dev/null
			# Warm: the first I/Os fault in the bounce pages and translate the code.
			fio --name=warm --filename="$dev" --direct=1 --ioengine=libaio "${fio_args[@]}" \
				--number_ios=2000 --size=1G --group_reporting >/dev/null 2>&1
			read -r r0 _ _ _ w0 _ < "/sys/block/${dev#/dev/}/stat"
			cp /proc/interrupts "$PROFILE_COUNTS/$j-$g.irq0"
			grep -E '^(ctxt|cpu) ' /proc/stat >"$PROFILE_COUNTS/$j-$g.stat0"
			t0=$(date +%s%N)
			mark
			per=$((ios / ${fio_args[-1]#--numjobs=}))
			fio --name=prof --filename="$dev" --direct=1 --ioengine=libaio "${fio_args[@]}" \
				--number_ios="$per" --size=1G --group_reporting >"$PROFILE_COUNTS/$j-$g.fio" 2>&1
			mark
			t1=$(date +%s%N)
			read -r r1 _ _ _ w1 _ < "/sys/block/${dev#/dev/}/stat"
			cp /proc/interrupts "$PROFILE_COUNTS/$j-$g.irq1"
			grep -E '^(ctxt|cpu) ' /proc/stat >"$PROFILE_COUNTS/$j-$g.stat1"
			echo $(((t1 - t0) / 1000)) >"$PROFILE_COUNTS/$j-$g.usecs"
			echo $((dumps - 1)) >"$PROFILE_COUNTS/$j-$g.window"
			echo $((r1 - r0 + w1 - w0)) >"$PROFILE_COUNTS/$j-$g.ios"
			cp /proc/kallsyms "$PROFILE_COUNTS/$j-$g.kallsyms"
			echo "ok $j/$g: $((r1 - r0 + w1 - w0)) I/Os in window $((dumps - 1))"
		else
			echo "not ok $j/$g: the disk did not come up"
			rc=1
		fi
		vdpa dev del "$name" 2>/dev/null
		kill -TERM "$pid"
		wait "$pid"
		if [ "$g" = c ]; then vduse_unload c; else vduse_unload rs; fi
	done
done
exit $rc
