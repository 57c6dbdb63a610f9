#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/fuzz/run.sh [--ops N] [--compat-ops N] [--seeds "S..."] [--race-seconds N]
#                           [--daemon-rounds N] [--daemon-ops N] [--trinity N]:
# the VDUSE fuzzer inside the test VM (tools/vm-run --module none), each driver loaded in turn.
#
#   differential  for each seed, `vduse-tests fuzz` (single-threaded mutated ioctls, reads,
#                 writes, sysfs writes, vdpa dev add/del) on C vduse.ko, then on vduse_rs.ko;
#                 `vduse-tests fuzz-compare` matches the two transcripts (only documented
#                 differences may differ, and only as documented)
#   compat        for each seed, `vduse-compat32 fuzz` (an i386 program: the compat ioctl path,
#                 --compat-ops operations, default a tenth of --ops) on each driver; the two
#                 outputs must be the same
#   race          `vduse-tests fuzz-race` on each driver: threads racing create, destroy, open,
#                 use, sysfs writes and vdpa dev add/del (CVE-2026-74313's shape)
#   daemon        `vduse-tests fuzz-daemon` on each driver: a daemon answering a vhost-vdpa
#                 consumer's requests badly (failed, foreign ids, twice, late, cut short, never),
#                 registering UMEM, reopening its node, SIGKILLed and restarted
#   trinity       Debian's trinity, generic ioctls on /dev/vduse/* (the control node and two
#                 devices, one on the vDPA bus; --trinity N: N syscalls per driver; 0 or trinity
#                 missing: not run)
#
# KTAP on stdout; transcripts in $VM_OUT/fuzz/. Each driver's run must also leave the kernel
# log clean (tools/vm-run's dmesg check) and unload. Exit 1 on any failure.
set -u
: "${VDUSE_RS_ROOT:?}" "${VM_OUT:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
bin=$VDUSE_RS_ROOT/tools/testing/vduse-tests/target/release/vduse-tests
[ -x "$bin" ] || { echo "Bail out! $bin is not built"; exit 1; }
compat=$VDUSE_RS_ROOT/tools/testing/compat/vduse-compat32
[ -x "$compat" ] || { echo "Bail out! $compat is not built"; exit 1; }
ops=20000 seeds=1 race=20 trinity=0 daemon_rounds=3 daemon_ops=60 compat_ops=
while [ $# -gt 0 ]; do
	case $1 in
	--ops) ops=$2; shift 2 ;;
	--compat-ops) compat_ops=$2; shift 2 ;;
	--seeds) seeds=$2; shift 2 ;;
	--race-seconds) race=$2; shift 2 ;;
	--trinity) trinity=$2; shift 2 ;;
	--daemon-rounds) daemon_rounds=$2; shift 2 ;;
	--daemon-ops) daemon_ops=$2; shift 2 ;;
	*) echo "Bail out! unknown option $1"; exit 1 ;;
	esac
done
out=$VM_OUT/fuzz
mkdir -p "$out"
# The transcripts of a long run are large: written to the guest's tmpfs, kept only when they
# differ.
tmp=$(mktemp -d)
# No vDPA bus driver: a device put on the bus by the fuzzer stays unbound (no virtio driver
# talks to a daemon that is not there).
modprobe -r virtio_vdpa vhost_vdpa 2>/dev/null
[ -e /sys/module/virtio_vdpa ] && { echo "Bail out! virtio_vdpa cannot be unloaded"; exit 1; }

# The compat path (i386 ioctls) gets a tenth of the operations by default: it has fewer commands.
compat_ops=${compat_ops:-$((ops / 10))}
set -- $seeds
points=$(($# * 4 + 4))
have_trinity=0
if [ "$trinity" -gt 0 ] && command -v trinity >/dev/null; then
	have_trinity=1
	points=$((points + 2))
fi
echo "1..$points"
rc=0 n=0
point() { # point OK NAME [COMMENT]
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n fuzz/$2${3:+ # $3}"; else echo "not ok $n fuzz/$2${3:+ # $3}"; rc=1; fi
}

# with_driver M COMMAND...: COMMAND with driver M loaded; fails if it does not load or unload.
with_driver() {
	local m=$1 r
	shift
	vduse_load "$m" || { echo "# could not load $m"; return 1; }
	"$@"
	r=$?
	vduse_unload "$m" || { echo "# could not unload $m"; r=1; }
	return $r
}

for seed in $seeds; do
	for m in c rs; do
		t0=$SECONDS
		with_driver "$m" "$bin" fuzz --seed "$seed" --ops "$ops" --vdpa --transcript "$tmp/$m-$seed.txt" |
			sed -u "s/^/# [$m] /"
		point "${PIPESTATUS[0]}" "$m-seed-$seed" "$ops operations in $((SECONDS - t0))s"
	done
	r=$("$bin" fuzz-compare "$tmp/c-$seed.txt" "$tmp/rs-$seed.txt")
	s=$?
	echo "$r"
	[ "$s" = 0 ] || cp "$tmp/c-$seed.txt" "$tmp/rs-$seed.txt" "$out/"
	point "$s" "differential-seed-$seed" "$(echo "$r" | tail -n1 | sed 's/^# fuzz-compare: //')"
	# The compat path: the i386 program's seeded operations, whose outputs must be the same.
	for m in c rs; do
		with_driver "$m" "$compat" fuzz "$seed" "$compat_ops" >"$tmp/compat-$m-$seed.txt" ||
			echo "# [$m] vduse-compat32 fuzz failed"
	done
	lines=$(wc -l <"$tmp/compat-rs-$seed.txt")
	if [ "$lines" -gt "$compat_ops" ] && cmp -s "$tmp/compat-c-$seed.txt" "$tmp/compat-rs-$seed.txt"; then
		point 0 "compat-differential-seed-$seed" "$lines lines agree"
	else
		diff "$tmp/compat-c-$seed.txt" "$tmp/compat-rs-$seed.txt" | head -n 20 | sed 's/^/# /'
		cp "$tmp/compat-c-$seed.txt" "$tmp/compat-rs-$seed.txt" "$out/"
		point 1 "compat-differential-seed-$seed" "$lines lines (want more than $compat_ops), or they differ"
	fi
done
rm -rf "$tmp"

for m in c rs; do
	with_driver "$m" "$bin" fuzz-race --seed "${1:-1}" --threads 4 --seconds "$race" --vdpa |
		sed -u "s/^/# [$m] /"
	point "${PIPESTATUS[0]}" "race-$m" "4 threads, ${race}s"
done

# The misbehaving daemon under vhost-vdpa (which it loads; virtio_vdpa is already gone).
for m in c rs; do
	t0=$SECONDS
	with_driver "$m" "$bin" fuzz-daemon --seed "${1:-1}" --rounds "$daemon_rounds" --ops "$daemon_ops" |
		sed -u "s/^/# [$m] /"
	point "${PIPESTATUS[0]}" "daemon-$m" "$daemon_rounds rounds of $daemon_ops operations in $((SECONDS - t0))s"
done
modprobe -r vhost_vdpa 2>/dev/null

if [ "$have_trinity" = 1 ]; then
	for m in c rs; do
		vduse_load "$m" || { point 1 "trinity-$m" "could not load"; continue; }
		# Trinity cannot create devices: two for it to find in /dev/vduse, one on the bus.
		s=0
		for d in fzt0 fzt1; do "$bin" create "$d" | sed "s/^/# [$m] $d: /"; done
		vdpa dev add name fzt1 mgmtdev vduse || s=1
		t0=$SECONDS
		# trinity refuses to run as root without --dangerous; -V: fuzz these paths' fds only.
		# About 100 syscalls/s under TCG (make fuzz, 2026-12-02): the limit grows with N.
		(cd "$tmp" 2>/dev/null || cd /tmp
		 timeout $((trinity / 40 + 300)) trinity --dangerous -q -c ioctl -V /dev/vduse --enable-fds=pseudo -N "$trinity" -s "${1:-1}" \
			>"$out/trinity-$m.log" 2>&1)
		[ $? = 0 ] || s=1
		tail -n 3 "$out/trinity-$m.log" | sed "s/^/# [$m] trinity: /"
		vdpa dev del fzt1 || s=1
		for d in fzt0 fzt1; do "$bin" destroy "$d" | sed "s/^/# [$m] $d: /"; [ "${PIPESTATUS[0]}" = 0 ] || s=1; done
		vduse_unload "$m" || s=1
		point "$s" "trinity-$m" "$trinity syscalls in $((SECONDS - t0))s"
	done
fi
modprobe virtio_vdpa
exit $rc
