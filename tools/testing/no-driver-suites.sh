#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# tools/testing/no-driver-suites.sh KDIR SRC: the suites that load and unload the drivers
# themselves, in one boot of the test VM (tools/vm-run --module none), in turn:
#   differential  C and Rust in the same boot, every case on both, transcripts compared
#   leak          1000 device cycles, the vdpa cases and 10 load/unload cycles per driver, then
#                 kmemleak (cleared first: what the differential left is not counted)
#   install       `make install` into the guest's module tree, modprobe, the stand-in for
#                 `vduse`, `make uninstall`
#   kselftest     tools/testing/selftests/drivers/vdpa/vduse through the kernel's kselftest
#                 Makefile in SRC (a 7.3 tree it was copied into), on each driver
#   fuzz          tools/testing/fuzz/run.sh, short: seed 1, VDUSE_FUZZ_OPS (20000) operations on
#                 each driver compared, 15 s of racing threads on each (`make fuzz` is the long run)
#   faults        tools/testing/faults/run.sh: fault injection on each driver (the debug kernel
#                 only: on the test kernel it is not run)
# Each prints its own KTAP; the exit status is non-zero if any failed.
set -u
kdir=${1:?usage: no-driver-suites.sh KDIR SRC} src=${2:?usage: no-driver-suites.sh KDIR SRC}
t=$(cd "$(dirname "$0")" && pwd)
rc=0
"$t/differential.sh" || rc=1
"$t/leak.sh" || rc=1
"$t/install/run.sh" "$kdir" || rc=1
"$t/kselftest.sh" "$src" "$kdir" || rc=1
"$t/fuzz/run.sh" --ops "${VDUSE_FUZZ_OPS:-20000}" --seeds 1 --race-seconds 15 || rc=1
# Fault injection needs the debug kernel's FAILSLAB and FAIL_PAGE_ALLOC.
if [ -e /sys/kernel/debug/failslab ]; then
	"$t/faults/run.sh" || rc=1
else
	echo "# faults: not run, this kernel has no fault injection (make check-debug has)"
fi
exit $rc
