#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM (tools/vm-run --module none): the differential conformance suite.
# For each driver, C vduse.ko (the oracle) then vduse_rs.ko: load it, run every case, unload it.
# Then compare what the two were observed doing. KTAP on stdout; exit 1 on any failure.
set -u
: "${VDUSE_RS_ROOT:?}" "${VM_OUT:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
bin=$VDUSE_RS_ROOT/tools/testing/vduse-tests/target/release/vduse-tests
[ -x "$bin" ] || { echo "Bail out! $bin is not built"; exit 1; }

rc=0
for m in c rs; do
	echo "# differential: loading the $m driver"
	if ! vduse_load "$m"; then
		echo "not ok 1 load-$m"
		rc=1
		continue
	fi
	if [ "$m" = rs ]; then
		# The module's KUnit suites ran when it loaded.
		"$VDUSE_RS_ROOT/tools/testing/kunit-results.sh" || rc=1
	fi
	"$bin" run --module "$m" --transcript "$VM_OUT/transcript-$m.txt" || rc=1
	# Unloading must work: no device, file or reference may be left behind.
	if vduse_unload "$m"; then
		echo "ok 1 unload-$m"
	else
		echo "not ok 1 unload-$m"
		rc=1
	fi
done
"$bin" compare "$VM_OUT/transcript-c.txt" "$VM_OUT/transcript-rs.txt" || rc=1
exit $rc
