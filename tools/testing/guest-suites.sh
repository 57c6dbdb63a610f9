#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/guest-suites.sh --module c|rs SUITE...: several end-to-end suites in one boot of
# the test VM (a boot is about a minute under TCG), each under its own time limit, so that a
# suite that hangs costs its own limit and the next ones still run. Meant to run INSIDE the VM:
#
#   tools/vm-run --module rs -- tools/testing/guest-suites.sh --module rs sample qsd datapath net
#
# SUITE: sample (samples/vduse-blk), qsd (qemu-storage-daemon), datapath (the IOVA domains),
# net (samples/vduse-net), orphan (the Rust driver's orphan drain; rs only). Each prints its own KTAP (points named SUITE/...); the exit status
# is non-zero if any suite failed or timed out.
set -u
module=
case ${1:-} in --module) module=${2:-}; shift 2 || true ;; esac
case $module in c | rs) ;; *) echo "guest-suites.sh: --module c|rs first" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
t=$root/tools/testing

# The VM runner loaded the driver asked for, and only that one.
case $module in
c) [ -e /sys/module/vduse/refcnt ] && ! [ -e /sys/module/vduse_rs ] ;;
rs) [ -e /sys/module/vduse_rs ] && ! [ -e /sys/module/vduse ] ;;
esac || { echo "Bail out! the runner did not load the $module driver (alone)"; exit 1; }
[ -c /dev/vduse/control ] || { echo "Bail out! no /dev/vduse/control"; exit 1; }
echo "# runner: the $module driver is loaded, /dev/vduse/control is there"

fail=0
for suite in "$@"; do
	case $suite in
	sample) limit=900 cmd=("$t/sample/run.sh" --module "$module") ;;
	qsd) limit=900 cmd=("$t/qsd/run.sh") ;;
	# On C each add leaks its IOVA domains (D4): fewer cycles there.
	datapath) limit=1200 cmd=(env READD_CYCLES="$([ "$module" = c ] && echo 20 || echo 100)"
		"$t/datapath/run.sh" --module "$module") ;;
	net) limit=900 cmd=("$t/net/run.sh" --module "$module") ;;
	# The orphan drain is vduse_rs's: on C the same scenario hangs the del for good
	# (tools/testing/orphan/observe-c.sh records it in a boot of its own).
	orphan)
		[ "$module" = rs ] || { echo "guest-suites.sh: orphan runs on rs only" >&2; exit 2; }
		limit=600 cmd=("$t/orphan/run.sh")
		;;
	*) echo "guest-suites.sh: unknown suite $suite" >&2; exit 2 ;;
	esac
	limit=$((limit * ${VDUSE_TIME_SCALE:-1}))
	echo "# ==== $suite on $module (limit ${limit}s)"
	# Every suite starts from the VM's initial vDPA drivers: virtio_vdpa, not vhost_vdpa (with
	# both loaded a new device may bind to vhost_vdpa; the sample's vhost case loads it).
	modprobe -r vhost_vdpa 2>/dev/null
	modprobe virtio_vdpa
	t0=$SECONDS
	timeout --kill-after=15 "$limit" "${cmd[@]}"
	rc=$?
	echo "# ==== $suite: exit $rc after $((SECONDS - t0))s"
	if [ "$rc" != 0 ]; then
		fail=1
		# A suite killed by its limit may leave devices behind: the next one starts clean.
		for d in /sys/bus/vdpa/devices/*; do [ -e "$d" ] && vdpa dev del "${d##*/}" 2>/dev/null; done
		pkill -KILL -x vduse-blk 2>/dev/null
		pkill -KILL -x vduse-net 2>/dev/null
		pkill -KILL -x qemu-storage-daemon 2>/dev/null
	fi
done
exit "$fail"
