#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/bench/qd1-guest.sh: inside the test VM (tools/vm-run --module none), in one boot: for
# the C vduse.ko and vduse_rs.ko in turn, the Rust sample daemon serves a RAM disk through
# virtio_vdpa and fio measures 4 KiB random reads at queue depth 1 (completion latency) and at
# queue depth 16 (IOPS). Writes $VM_OUT/bench.json; progress as comments on stdout.
set -euo pipefail
: "${VDUSE_RS_ROOT:?}" "${VM_OUT:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
BIN=$VDUSE_RS_ROOT/samples/target/release/vduse-blk
RUNTIME=${BENCH_RUNTIME:-20}
out=$VM_OUT/bench.json
rm -f "$VM_OUT/bench.lines"
for m in c rs; do
	echo "# bench: loading the $m driver"
	vduse_load "$m"
	name=bench-$m
	"$BIN" --name $name --size 256M --queues 1 >"$VM_OUT/bench-daemon-$m.log" 2>&1 &
	daemon=$!
	for _ in $(seq 1 50); do vdpa dev add name $name mgmtdev vduse 2>/dev/null && break; sleep 0.1; done
	dev=
	for _ in $(seq 1 300); do
		b=$(compgen -G "/sys/bus/vdpa/devices/$name/virtio*/block/*" | head -n1) && dev=/dev/${b##*/} && break
		sleep 0.1
	done
	[ -b "$dev" ] || { echo "# bench: no block device for $m"; exit 1; }
	for qd in 1 16; do
		echo "# bench: $m, 4 KiB random reads, queue depth $qd, ${RUNTIME}s"
		fio --name=b --filename="$dev" --rw=randread --bs=4k --direct=1 --ioengine=libaio \
			--iodepth=$qd --runtime="$RUNTIME" --time_based --size=200M \
			--output-format=json >"$VM_OUT/fio-$m-qd$qd.json"
		# One line per run: driver, depth, IOPS, mean and p99 completion latency (ns).
		python3 - "$VM_OUT/fio-$m-qd$qd.json" "$m" "$qd" <<'PY' >>"$VM_OUT/bench.lines"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]["read"]
print(json.dumps({"driver": sys.argv[2], "qd": int(sys.argv[3]), "iops": j["iops"],
                  "clat_mean_ns": j["clat_ns"]["mean"],
                  "clat_p99_ns": j["clat_ns"]["percentile"]["99.000000"]}))
PY
		tail -n1 "$VM_OUT/bench.lines" | sed 's/^/# bench: /'
	done
	vdpa dev del $name
	kill -TERM $daemon
	wait $daemon || true
	vduse_unload "$m"
done
python3 - "$VM_OUT/bench.lines" >"$out" <<'PY'
import json, sys
print(json.dumps([json.loads(l) for l in open(sys.argv[1])], indent=1))
PY
