#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/datapath/run.sh --module c|rs: lifetime tests of the IOVA domains, inside the
# test VM as root (tools/vm-run --module c|rs), vdpa and virtio_vdpa loaded:
#
#  - domain_lifetime: the [vduse-domain] file of a virtio-net device stays valid (open and
#    mapped) across `vdpa dev del` and VDUSE_DESTROY_DEV (domain_lifetime.py);
#  - readd_cycles: 100 `vdpa dev add`/`del` cycles of a virtio-blk device served by the sample
#    daemon, each probed by virtio_blk through the bounce buffer; then kmemleak. On the C
#    driver every cycle leaks its domains (Documentation/differences.rst, D4): there the leak
#    report is shown as the oracle's known bug, not asserted;
#  - irq_affinity: reads with irq_cb_affinity on each CPU; on Rust, the callbacks counted per CPU
#    and a mask whose only CPU went offline.
#
# KTAP on stdout; exit status 1 if a test failed.
set -u -o pipefail
MODULE=${2:-rs}
[ "${1:-}" = --module ] || { echo "usage: $0 --module c|rs" >&2; exit 2; }
ROOT=${VDUSE_RS_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
BIN=$ROOT/samples/target/release/vduse-blk
CYCLES=${READD_CYCLES:-100}
kmemleak=/sys/kernel/debug/kmemleak
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
. "$ROOT/tools/lib/guest-tests.sh"
CASES=(domain_lifetime readd_cycles irq_affinity)
# kmemleak is asserted on Rust only (on C it is shown: the oracle, D4).
[ "$MODULE" = rs ] && CASES+=(kmemleak)
ktap_plan ${#CASES[@]}

mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
# Cleared first: what ran before this script is not counted. A kernel without kmemleak fails
# the kmemleak case (on Rust), it does not pass it.
KMEMLEAK=0
if [ -w "$kmemleak" ] && echo scan >"$kmemleak" 2>/dev/null; then
	echo clear >"$kmemleak"
	KMEMLEAK=1
fi

case_domain_lifetime() {
	modprobe virtio_net || { note "modprobe virtio_net failed"; return 1; }
	python3 "$ROOT/tools/testing/datapath/domain_lifetime.py"
}

# readd_cycles: the sample daemon serves one device; it is added and deleted CYCLES times.
vmalloc_kb() { awk '/^VmallocUsed:/ { print $2 }' /proc/meminfo; }
case_readd_cycles() {
	local name=dp-readd log daemon cycles_ok i vmalloc_before vmalloc_growth
	log=${VM_OUT:-/tmp}/datapath-readd.log
	"$BIN" --name $name --size 16M --queues 1 >"$log" 2>&1 &
	daemon=$!
	cycles_ok=1
	wait_until 5 test -e /dev/vduse/$name
	vmalloc_before=
	for i in $(seq 1 "$CYCLES"); do
		wait_until 5 vdpa dev add name $name mgmtdev vduse 2>/dev/null ||
			{ echo "# cycle $i: vdpa dev add failed"; cycles_ok=0; break; }
		wait_until 30 blkdev_of $name || { echo "# cycle $i: no block device"; cycles_ok=0; }
		vdpa dev del $name || { echo "# cycle $i: vdpa dev del failed"; cycles_ok=0; break; }
		[ $cycles_ok = 1 ] || break
		# Measured from the end of the first cycle: the domains exist from then on.
		[ -n "$vmalloc_before" ] || vmalloc_before=$(vmalloc_kb)
	done
	vmalloc_growth=$(($(vmalloc_kb) - ${vmalloc_before:-0}))
	echo "# $MODULE: VmallocUsed grew by $vmalloc_growth kB over cycles 2..$CYCLES (a 64 MiB bounce buffer's page table is 384 kB per domain in C)"
	if [ "$MODULE" = rs ] && [ "$vmalloc_growth" -gt 4096 ]; then
		echo "# the domains are not reused: vmalloc grew by $vmalloc_growth kB"
		cycles_ok=0
	fi
	# The oracle must show D4 (it leaks each cycle's domains), or this comparison measures nothing.
	if [ "$MODULE" = c ] && [ "$vmalloc_growth" -le 0 ]; then
		echo "# C's D4 did not reproduce: VmallocUsed did not grow over $CYCLES cycles"
		cycles_ok=0
	fi
	kill -TERM $daemon 2>/dev/null
	wait $daemon 2>/dev/null
	note "$CYCLES vdpa dev add/del cycles with virtio_vdpa bound: $([ $cycles_ok = 1 ] && echo done || echo failed)"
	[ $cycles_ok = 1 ] || tail -n 20 "$log" | sed 's/^/#   /'
	[ $cycles_ok = 1 ]
}

# irq_affinity: with vq0/irq_cb_affinity set to each CPU in turn, 256 direct reads complete on
# both drivers. On vduse_rs the queue's callbacks are also counted per CPU (debugfs
# vduse_rs/NAME/vq0_irq_cpus, which C does not have): they must all run on the mask's CPU; and
# with the mask's only CPU taken offline the reads must still complete (D6: C spins forever in
# VDUSE_VQ_INJECT_IRQ there, so that part runs on Rust only).
irq_counts() { cat "/sys/kernel/debug/vduse_rs/$1/vq0_irq_cpus"; }
case_irq_affinity() {
	local name=dp-aff daemon aff_ok cpu before after delta seen d c v cpu1 inline
	"$BIN" --name $name --size 16M --queues 1 >"${VM_OUT:-/tmp}/datapath-aff.log" 2>&1 &
	daemon=$!
	aff_ok=1
	wait_until 5 vdpa dev add name $name mgmtdev vduse 2>/dev/null
	BLKDEV=
	wait_until 30 blkdev_of $name || { echo "# no block device for $name"; aff_ok=0; }
	for cpu in $(seq 0 $(($(nproc) - 1))); do
		[ $aff_ok = 1 ] || break
		printf '%x\n' $((1 << cpu)) >"/sys/class/vduse/$name/vq0/irq_cb_affinity" || { aff_ok=0; break; }
		[ "$MODULE" = rs ] && before=$(irq_counts $name)
		dd if="$BLKDEV" of=/dev/null bs=4k count=256 iflag=direct status=none || aff_ok=0
		[ "$MODULE" = rs ] || { echo "# irq_cb_affinity cpu$cpu: 256 reads completed"; continue; }
		after=$(irq_counts $name)
		# Per CPU: how many callbacks ran during the reads.
		delta=$(paste <(echo "$before") <(echo "$after") | awk '{ printf "%s=%d ", $1, $4 - $2 }')
		echo "# irq_cb_affinity cpu$cpu: callbacks per CPU during 256 reads: $delta"
		seen=0
		for d in $delta; do
			c=${d%%=*} v=${d#*=}
			if [ "$c" = "cpu$cpu" ]; then
				seen=1
				[ "$v" -ge 1 ] || { echo "# no callback on cpu$cpu"; aff_ok=0; }
			elif [ "$v" != 0 ]; then
				echo "# $v callbacks on $c, outside the mask"
				aff_ok=0
			fi
		done
		# A missing or empty debugfs file gives no entry at all: that is a failure, not a pass.
		[ $seen = 1 ] || { echo "# no per-CPU count for cpu$cpu in vq0_irq_cpus"; aff_ok=0; }
	done
	cpu1=/sys/devices/system/cpu/cpu1/online
	if [ "$MODULE" = rs ] && [ $aff_ok = 1 ]; then
		# The mask's only CPU offline: interrupts are delivered inline (D6), counted on cpu0.
		if ! echo 2 >"/sys/class/vduse/$name/vq0/irq_cb_affinity"; then
			echo "# cannot set irq_cb_affinity to cpu1"
			aff_ok=0
		elif ! echo 0 >"$cpu1" || [ "$(cat "$cpu1")" != 0 ]; then
			echo "# cannot take cpu1 offline ($cpu1)"
			aff_ok=0
		else
			before=$(irq_counts $name)
			if timeout 60 taskset -c 0 dd if="$BLKDEV" of=/dev/null bs=4k count=64 iflag=direct status=none; then
				echo "# irq_cb_affinity cpu1 with cpu1 offline: 64 reads completed"
			else
				echo "# irq_cb_affinity cpu1 with cpu1 offline: reads did not complete"
				aff_ok=0
			fi
			after=$(irq_counts $name)
			inline=$(paste <(echo "$before") <(echo "$after") | awk '$1 == "cpu0" { print $4 - $2 }')
			echo "# callbacks on cpu0 (inline) with cpu1 offline: ${inline:-none}"
			[ "${inline:-0}" -ge 1 ] || { echo "# no inline callback on cpu0"; aff_ok=0; }
			echo 1 >"$cpu1" || { echo "# cannot bring cpu1 back online"; aff_ok=0; }
		fi
	fi
	vdpa dev del $name
	kill -TERM $daemon 2>/dev/null
	wait $daemon 2>/dev/null
	if [ "$MODULE" = rs ]; then
		note "callbacks run only on the CPU of irq_cb_affinity; none online: inline"
	else
		note "reads complete with irq_cb_affinity on each CPU in turn"
	fi
	[ $aff_ok = 1 ]
}

# kmemleak: the unreferenced objects after the domain tests (two scans: an object is reported
# only after it stayed unreferenced for a while). Asserted on Rust; on C shown (not D4:
# kmemleak does not see C's leaked domains, Documentation/differences.rst).
kmemleak_scan() {
	[ $KMEMLEAK = 1 ] || { note "kmemleak: not available (scan write failed)"; return 1; }
	sleep 6
	echo scan >"$kmemleak" || { note "kmemleak: the scans did not run"; return 1; }
	sleep 6
	echo scan >"$kmemleak" || { note "kmemleak: the scans did not run"; return 1; }
	LEAK_REPORT=$(cat "$kmemleak")
	# (grep -c exits 1 when it counts none: the count is what matters here.)
	LEAKS=$(grep -c unreferenced <<<"$LEAK_REPORT") || true
	return 0
}
case_kmemleak() {
	kmemleak_scan || return 1
	note "kmemleak: $LEAKS unreferenced object(s) after the domain tests"
	[ "$LEAKS" = 0 ] || { echo "$LEAK_REPORT" | sed 's/^/# /' | head -n 60; return 1; }
}

after_case() { :; }
run_cases "datapath/$MODULE" after_case "${CASES[@]}"
rc=$?
if [ "$MODULE" = c ] && kmemleak_scan; then
	note "kmemleak on the C driver: $LEAKS unreferenced object(s) (not asserted: the oracle)"
fi
exit $rc
