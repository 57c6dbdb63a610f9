#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/kselftest.sh SRC KDIR: the VDUSE kselftest run the way a user runs it, through
# the kernel's kselftest Makefile, inside the test VM (no VDUSE driver loaded at the start),
# once per driver:
#   make -C SRC/tools/testing/selftests TARGETS=drivers/vdpa/vduse run_tests
# SRC is a 7.3 source tree into which tools/testing/selftests/drivers/vdpa/vduse/ was copied
# (tools/testing/run-all does that), KDIR the build tree whose `make headers` output is the
# uAPI the test is compiled against. The build goes to a scratch directory (O=), as the VM sees
# the host's files read-only. Each case of each driver becomes a point kselftest/DRIVER/CASE.
set -u
src=${1:?usage: kselftest.sh SRC KDIR} kdir=${2:?usage: kselftest.sh SRC KDIR}
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
# The kselftest runner writes each program's output to "/dev/stdout" by name; the VM's
# /dev/stdout is its console, not this script's output: point it at the caller's fd 1.
echo "# /dev/stdout was $(readlink /dev/stdout || echo 'not a link')"
ln -sfn /proc/self/fd/1 /dev/stdout
n=0 rc=0
planned=0
out=$(mktemp)
for m in c rs; do
	if ! vduse_load "$m"; then
		echo "not ok $((n += 1)) kselftest/$m/load"
		rc=1
		continue
	fi
	# The message-channel case drives the device through vhost_vdpa; with virtio_vdpa loaded
	# it would skip (a block device bound there starts I/O the test's daemon does not serve).
	modprobe -r virtio_vdpa 2>/dev/null
	make -s -C "$src/tools/testing/selftests" TARGETS=drivers/vdpa/vduse O="/tmp/ksft-$m" \
		KHDR_INCLUDES="-isystem $kdir/usr/include" run_tests >"$out" 2>&1
	sed 's/^/#   /' "$out"
	# The runner prefixes each program's own KTAP with "# ": those lines are the cases.
	while IFS= read -r line; do
		[[ $line =~ ^#\ (not\ )?ok\ [0-9]+\ ([A-Za-z0-9_]+)(.*)$ ]] || continue
		n=$((n + 1))
		echo "${BASH_REMATCH[1]}ok $n kselftest/$m/${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
		[ -z "${BASH_REMATCH[1]}" ] || rc=1
	done <"$out"
	planned=$((planned + 7))
	vduse_unload "$m" || { echo "not ok $((n += 1)) kselftest/$m/unload"; rc=1; }
	modprobe virtio_vdpa 2>/dev/null
done
rm -f "$out"
# 6 cases of vduse_test and 1 of vduse_blk.sh per driver.
echo "1..$planned"
exit $rc
