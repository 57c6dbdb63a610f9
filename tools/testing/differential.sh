#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM (tools/vm-run --module none): the differential conformance suite.
# For each driver, C vduse.ko (the oracle) then vduse_rs.ko: load it, run every case, unload it.
# Then compare what the two were observed doing.
#
# KTAP on stdout, one test point per behaviour: a differential case is one point (`compare`:
# the case's expectations held on C and on Rust and both transcripts are the same), a KUnit
# test is one point, unloading vduse_rs.ko is one point. The per-driver runs are shown as
# comments ("# [c] ...", "# [rs] ..."); the oracle's load and unload show up only when they
# fail. Exit 1 on any failure.
set -u
: "${VDUSE_RS_ROOT:?}" "${VM_OUT:?}"
. "$VDUSE_RS_ROOT/tools/lib/vduse-module.sh"
bin=$VDUSE_RS_ROOT/tools/testing/vduse-tests/target/release/vduse-tests
[ -x "$bin" ] || { echo "Bail out! $bin is not built"; exit 1; }
case_timeout=${VDUSE_CASE_TIMEOUT:-$((60 * ${VDUSE_TIME_SCALE:-1}))}

rc=0
for m in c rs; do
	echo "# differential: loading the $m driver"
	if ! vduse_load "$m"; then
		echo "not ok 1 module/load-$m"
		rc=1
		continue
	fi
	if [ "$m" = rs ]; then
		# The module's KUnit suites ran when it loaded.
		"$VDUSE_RS_ROOT/tools/testing/kunit-results.sh" || rc=1
	fi
	"$bin" run --module "$m" --case-timeout "$case_timeout" \
		--transcript "$VM_OUT/transcript-$m.txt" | sed -u "s/^/# [$m] /"
	# (the verdicts are in the transcript; compare reports them)
	# Unloading must work: no device, file or reference may be left behind.
	if vduse_unload "$m"; then
		[ "$m" = c ] || echo "ok 1 module/unload-$m"
	else
		echo "not ok 1 module/unload-$m"
		rc=1
	fi
done
"$bin" compare "$VM_OUT/transcript-c.txt" "$VM_OUT/transcript-rs.txt" || rc=1
exit $rc
