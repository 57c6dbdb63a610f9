#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/bench/guest.sh: the block benchmark, inside one boot of the bench kernel
# (tools/bench/run starts it: tools/vm-run --module none). Every device has the same kind of
# backend, a null one (no data moved), 1 GiB and 2 queues:
#
#   c-qsd     qemu-storage-daemon --export type=vduse-blk (null-co) on C vduse.ko
#   rs-qsd    the same on vduse_rs.ko
#   c-blk     samples/vduse-blk --null on C vduse.ko
#   rs-blk    the same on vduse_rs.ko
#   rsni-blk  the same on vduse_rs.ko irq_inline=0 (every interrupt through a work item, as C)
#   rsnt-blk  the same on vduse_rs.ko orphan_drain=0 (no ring tracking at kicks and interrupts)
#   rsb-blk   the same on the vduse_rs.ko of another revision (BENCH_BASE; VDUSE_RS_KO_BASE):
#             an A/B of a change, both modules in the same boot
#   ublk      rublk's null target (ublk_drv)
#   nbd       qemu-storage-daemon --export type=nbd (null-co) + nbd-client, one connection
#
# and the network: c-net, rs-net, rsni-net are samples/vduse-net linked to a TAP in another
# network namespace (MTU 1500), virtio_net in the root one; tools/bench/net.py measures a TCP
# stream (tcp-stream) and 64-byte TCP request/response, one in flight (tcp-rr64).
#
# Round 0 is a warm-up (1 s per run, no ramp; kept in the samples, marked, left out of the
# results); rounds 1..N
# follow, the order of the drivers reversed every other round (c, rs, rsni, rsnt, ublk, nbd;
# then nbd, ublk, rsnt, rsni, rs, c; ...). Each run is fio with --ramp_time; $VM_OUT/samples.jsonl has a
# line per run (its fio JSON under $VM_OUT/runs/, the CPU window; net.py's result), which
# tools/bench/report.py reads on the host.
#
# Environment: BENCH_ROUNDS (5), BENCH_RUNTIME (seconds measured per run, 2), BENCH_RAMP (1),
# BENCH_GROUPS (the driver groups, "c rs rsni rsnt ublk nbd"), BENCH_PROFILES (the block profiles,
# all), BENCH_NET (1: the net devices too), VDUSE_RS_KO (the vduse_rs.ko built for this kernel),
# VDUSE_RS_KO_BASE (the base revision's, for the rsb group), RUBLK (rublk's path).
set -uo pipefail
: "${VDUSE_RS_ROOT:?}" "${VM_OUT:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
. "$VDUSE_RS_ROOT/tools/lib/guest-tests.sh"
BLK=$VDUSE_RS_ROOT/samples/target/release/vduse-blk
NET=$VDUSE_RS_ROOT/samples/target/release/vduse-net
NETPY=$VDUSE_RS_ROOT/tools/bench/net.py
NS=bench-peer
TAP=bvtap0
HOST_IP=10.78.0.1
PEER_IP=10.78.0.2
NET_PROFILES=(tcp-stream tcp-rr64)
QSD=qemu-storage-daemon
RUBLK=${RUBLK:-rublk}
ROUNDS=${BENCH_ROUNDS:-5}
RUNTIME=${BENCH_RUNTIME:-2}
RAMP=${BENCH_RAMP:-1}
read -r -a GROUPS_FWD <<<"${BENCH_GROUPS:-c rs rsni rsnt ublk nbd}"
read -r -a PROFILES <<<"${BENCH_PROFILES:-rr4k-qd1 rr4k-qd32 rw4k-qd32-2j sr128k-qd8 sw128k-qd8}"
WORK=/dev/shm/vduse-bench
SAMPLES=$VM_OUT/samples.jsonl
RUNS=$VM_OUT/runs
HZ=$(getconf CLK_TCK)
rm -rf "$WORK" "$RUNS" && mkdir -p "$WORK" "$RUNS" || exit 1
: >"$SAMPLES"
export TMPDIR=$WORK
modprobe virtio_net

bail() { echo "Bail out! $*"; exit 1; }

# fio arguments of a profile.
profile_args() {
	case $1 in
	rr4k-qd1) echo --rw=randread --bs=4k --iodepth=1 --numjobs=1 ;;
	rr4k-qd32) echo --rw=randread --bs=4k --iodepth=32 --numjobs=1 ;;
	rw4k-qd32-2j) echo --rw=randwrite --bs=4k --iodepth=32 --numjobs=2 ;;
	sr128k-qd8) echo --rw=read --bs=128k --iodepth=8 --numjobs=1 ;;
	sw128k-qd8) echo --rw=write --bs=128k --iodepth=8 --numjobs=1 ;;
	*) return 1 ;;
	esac
}

# The devices of a driver group.
group_devices() {
	case $1 in
	c | rs) echo "$1-qsd $1-blk$([ "${BENCH_NET:-1}" = 1 ] && echo " $1-net")" ;;
	# Without inline interrupts: our daemons only (the time limit of `make bench`).
	rsni) echo "rsni-blk$([ "${BENCH_NET:-1}" = 1 ] && echo " rsni-net")" ;;
	rsnt | rsb) echo "$1-blk" ;;
	ublk | nbd) echo "$1" ;;
	*) return 1 ;;
	esac
}

group_load() {
	case $1 in
	c) vduse_load c ;;
	rs) vduse_load rs ;;
	rsni) vduse_load rs irq_inline=0 ;;
	rsnt) vduse_load rs orphan_drain=0 ;;
	rsb) VDUSE_RS_KO=${VDUSE_RS_KO_BASE:?the rsb group needs VDUSE_RS_KO_BASE} vduse_load rs ;;
	ublk) modprobe ublk_drv ;;
	nbd) modprobe nbd nbds_max=1 ;;
	esac
}

group_unload() {
	case $1 in
	c) vduse_unload c ;;
	rs | rsni | rsnt | rsb) vduse_unload rs ;;
	ublk) modprobe -r ublk_drv ;;
	nbd) modprobe -r nbd ;;
	esac
}

# Busy time of all CPUs so far, in USER_HZ ticks (user, nice, system, irq, softirq, steal).
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# Requests the block device DEV completed so far (reads + writes).
disk_ios() { awk '{ print $1 + $5 }' "/sys/block/${1##*/}/stat"; }

# cpu_sampler DEV SECONDS OUT: once DEV's I/O has started and the ramp is over, the guest's CPU
# busy ticks and DEV's completed requests over SECONDS, as "ticks ios" in OUT: CPU per I/O in
# the steady state, without fio's start-up and exit.
cpu_sampler() {
	local dev=$1 secs=$2 out=$3 i0 c1 i1 c2 i2
	i0=$(disk_ios "$dev")
	for _ in $(seq 1 300); do
		[ "$(disk_ios "$dev")" -gt "$i0" ] && break
		sleep 0.1
	done
	sleep "$RAMP"
	c1=$(cpu_busy) i1=$(disk_ios "$dev")
	sleep "$secs"
	c2=$(cpu_busy) i2=$(disk_ios "$dev")
	echo "$((c2 - c1)) $((i2 - i1))" >"$out"
}

# The profiles of a device.
device_profiles() {
	case $1 in
	*-net) echo "${NET_PROFILES[*]}" ;;
	*) echo "${PROFILES[*]}" ;;
	esac
}

peer() { ip netns exec "$NS" "$@"; }

netdev_of() {
	local n
	for n in /sys/bus/vdpa/devices/"$1"/virtio*/net/*; do
		[ -e "$n" ] && { NETDEV=${n##*/}; return 0; }
	done
	return 1
}

nbd_sized() { [ "$(cat /sys/block/nbd0/size 2>/dev/null || echo 0)" -gt 0 ]; }

DAEMON=
SERVER=
NETDEV=
DEV=
# start_device DEVICE: starts its daemon and sets DEV to its block device.
start_device() {
	local d=$1 name=bench-$1
	DEV=
	case $d in
	*-net)
		ip netns add "$NS" || return 1
		# Not through peer(): $! must be the daemon (ip netns exec execs it).
		ip netns exec "$NS" "$NET" --name "$name" --tap "$TAP" >"$WORK/$d.log" 2>&1 &
		DAEMON=$!
		wait_until 30 test -e "/dev/vduse/$name" || { note "$d: no /dev/vduse/$name"; return 1; }
		wait_until 30 vdpa dev add name "$name" mgmtdev vduse 2>/dev/null ||
			{ note "$d: vdpa dev add failed"; return 1; }
		wait_until 60 netdev_of "$name" || { note "$d: no netdev"; return 1; }
		ip addr add "$HOST_IP/24" dev "$NETDEV" && ip link set "$NETDEV" up || return 1
		peer ip link set lo up
		peer ip addr replace "$PEER_IP/24" dev "$TAP" && peer ip link set "$TAP" up || return 1
		wait_until 30 ping -c 1 -W 1 "$PEER_IP" >/dev/null || { note "$d: peer not reachable"; return 1; }
		ip netns exec "$NS" python3 "$NETPY" serve 5201 >"$WORK/$d-server.log" 2>&1 &
		SERVER=$!
		wait_until 30 python3 -c "import socket; socket.create_connection(('$PEER_IP', 5201), 1).close()" 2>/dev/null ||
			{ note "$d: the peer's server does not answer"; return 1; }
		return 0
		;;
	*-qsd | *-blk)
		if [[ $d == *-qsd ]]; then
			"$QSD" --blockdev driver=null-co,node-name=null0,size=1073741824,read-zeroes=off \
				--export "type=vduse-blk,id=e0,node-name=null0,name=$name,num-queues=2,queue-size=256,writable=on" \
				>"$WORK/$d.log" 2>&1 &
		else
			"$BLK" --name "$name" --null --size 1G --queues 2 >"$WORK/$d.log" 2>&1 &
		fi
		DAEMON=$!
		wait_until 30 test -e "/dev/vduse/$name" || { note "$d: no /dev/vduse/$name"; return 1; }
		wait_until 30 vdpa dev add name "$name" mgmtdev vduse 2>/dev/null ||
			{ note "$d: vdpa dev add failed"; return 1; }
		wait_blkdev "$name" >/dev/null || return 1
		DEV=$BLKDEV
		;;
	ublk)
		"$RUBLK" add null -q 2 --quiet >"$WORK/ublk.log" 2>&1 || { note "rublk add failed"; sed 's/^/#   /' "$WORK/ublk.log"; return 1; }
		wait_until 30 test -b /dev/ublkb0 || { note "no /dev/ublkb0"; return 1; }
		DEV=/dev/ublkb0
		;;
	nbd)
		rm -f "$WORK/nbd.sock"
		"$QSD" --blockdev driver=null-co,node-name=null0,size=1073741824,read-zeroes=off \
			--nbd-server "addr.type=unix,addr.path=$WORK/nbd.sock" \
			--export type=nbd,id=e0,node-name=null0,name=bench,writable=on >"$WORK/nbd.log" 2>&1 &
		DAEMON=$!
		wait_until 30 test -S "$WORK/nbd.sock" || { note "no NBD socket"; return 1; }
		nbd-client -unix "$WORK/nbd.sock" /dev/nbd0 -N bench -b 4096 >>"$WORK/nbd.log" 2>&1 ||
			{ note "nbd-client failed"; sed 's/^/#   /' "$WORK/nbd.log"; return 1; }
		wait_until 30 nbd_sized || { note "nbd0 has no size"; return 1; }
		DEV=/dev/nbd0
		;;
	esac
	udevadm settle 2>/dev/null
	[ -b "$DEV" ]
}

stop_device() {
	local d=$1 name=bench-$1
	if [ -n "$SERVER" ]; then
		kill "$SERVER" 2>/dev/null
		wait "$SERVER" 2>/dev/null
		SERVER=
	fi
	case $d in
	*-qsd | *-blk | *-net) vdpa dev del "$name" ;;
	ublk) "$RUBLK" del -a >/dev/null 2>&1 ;;
	nbd) nbd-client -d /dev/nbd0 >/dev/null 2>&1 ;;
	esac
	if [ -n "$DAEMON" ]; then
		kill -TERM "$DAEMON" 2>/dev/null
		wait "$DAEMON" 2>/dev/null
		DAEMON=
	fi
	# The VDUSE daemons destroy their device on exit; the module can go once it is gone.
	[[ $d == ublk || $d == nbd ]] || wait_until 20 test ! -e "/dev/vduse/$name"
	[[ $d != *-net ]] || ip netns del "$NS"
}

# run_net DEVICE PROFILE ROUND: one measured net run, appended to the samples.
run_net() {
	local d=$1 p=$2 r=$3 b0 b1 res rt=$RUNTIME
	[ "$r" != 0 ] || rt=1
	b0=$(cpu_busy)
	case $p in
	tcp-stream) res=$(timeout 120 python3 "$NETPY" stream "$PEER_IP" 5201 "$rt") ;;
	tcp-rr64) res=$(timeout 120 python3 "$NETPY" rr "$PEER_IP" 5201 "$rt" 64) ;;
	esac || { note "net.py $p failed on $d"; return 1; }
	b1=$(cpu_busy)
	printf '{"device": "%s", "profile": "%s", "round": %d, "warmup": %s, "net": %s, "cpu_ticks": %d, "hz": %d}\n' \
		"$d" "$p" "$r" "$([ "$r" = 0 ] && echo true || echo false)" "$res" "$((b1 - b0))" "$HZ" >>"$SAMPLES"
	echo "# bench:   $res"
}

# run_fio DEVICE PROFILE ROUND: one measured run, appended to the samples.
run_fio() {
	local d=$1 p=$2 r=$3 rt=$RUNTIME ramp=$RAMP sampler cpu
	local out=$RUNS/$d.$p.$r.json
	[ "$r" != 0 ] || rt=1 ramp=0
	# The CPU window: the measured time but its last half second (fio stops at its end).
	rm -f "$WORK/cpu"
	cpu_sampler "$DEV" "$(awk -v t="$rt" 'BEGIN { print (t > 1 ? t - 0.5 : t / 2) }')" "$WORK/cpu" &
	sampler=$!
	# shellcheck disable=SC2046
	fio --name=b --filename="$DEV" --direct=1 --ioengine=libaio --time_based \
		--runtime="$rt" --ramp_time="$ramp" --clat_percentiles=1 --lat_percentiles=1 \
		--group_reporting --output-format=json $(profile_args "$p") >"$out" 2>"$WORK/fio.err" ||
		{ note "fio failed on $d ($p)"; sed 's/^/#   /' "$WORK/fio.err"; kill "$sampler" 2>/dev/null; return 1; }
	wait "$sampler"
	read -r cpu_ticks cpu_ios <"$WORK/cpu" || { cpu_ticks=0 cpu_ios=0; }
	# The host reads fio's JSON (tools/bench/report.py): no Python per run in the guest, whose
	# start-up alone costs seconds under TCG.
	printf '{"device": "%s", "profile": "%s", "round": %d, "warmup": %s, "fio": "%s", "cpu_window_ticks": %d, "cpu_window_ios": %d, "hz": %d}\n' \
		"$d" "$p" "$r" "$([ "$r" = 0 ] && echo true || echo false)" "${out##*/}" "$cpu_ticks" "$cpu_ios" "$HZ" >>"$SAMPLES"
	echo "# bench:   $(grep -m1 -E '"iops" : [1-9]' "$out" | tr -d ' ,') (fio), $cpu_ticks CPU ticks for $cpu_ios requests"
}

# The run's length, for the progress lines.
per_round=0 ndev=0
for g in "${GROUPS_FWD[@]}"; do
	for d in $(group_devices "$g"); do
		ndev=$((ndev + 1))
		for p in $(device_profiles "$d"); do per_round=$((per_round + 1)); done
	done
done
total=$(((ROUNDS + 1) * per_round))
done_runs=0
t_start=$SECONDS

echo "# bench: $ndev devices, $per_round runs per round, 1 warm-up + $ROUNDS rounds: $total runs of about ${RAMP}+${RUNTIME} s"
for ((r = 0; r <= ROUNDS; r++)); do
	order=("${GROUPS_FWD[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#GROUPS_FWD[@]} - 1; i >= 0; i--)); do order+=("${GROUPS_FWD[i]}"); done
	fi
	for g in "${order[@]}"; do
		group_load "$g" || bail "loading $g"
		for d in $(group_devices "$g"); do
			start_device "$d" || bail "starting $d"
			for p in $(device_profiles "$d"); do
				done_runs=$((done_runs + 1))
				el=$((SECONDS - t_start))
				left=$((done_runs > 1 ? el * (total - done_runs + 1) / (done_runs - 1) : total * (RAMP + RUNTIME + 3)))
				echo "# bench: [$done_runs/$total] round $r/$ROUNDS$([ "$r" = 0 ] && echo ' (warm-up)') $d $p, about $((left / 60))m$((left % 60))s left"
				if [[ $d == *-net ]]; then
					run_net "$d" "$p" "$r" || bail "$p on $d"
				else
					run_fio "$d" "$p" "$r" || bail "fio on $d"
				fi
			done
			stop_device "$d" || bail "stopping $d"
		done
		group_unload "$g" || bail "unloading $g"
	done
done
echo "# bench: $total runs in $((SECONDS - t_start)) s"
