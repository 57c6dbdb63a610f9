#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# VDUSE selftest: a virtio_vdpa block device served by qemu-storage-daemon's vduse-blk export
# (a file-backed disk): a pattern written to /dev/vdX with O_DIRECT is read back from the
# device and found in the backing file. Runs against whichever VDUSE driver is loaded.
ksft_skip=4
name=ksft-vduse-blk0
echo "TAP version 13"
echo "1..1"
skip() { echo "ok 1 blk_io_virtio_vdpa # SKIP $*"; exit $ksft_skip; }
fail() { echo "# $*"; echo "not ok 1 blk_io_virtio_vdpa"; cleanup; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -e /dev/vduse/control ] || skip "no VDUSE driver is loaded"
command -v qemu-storage-daemon >/dev/null || skip "qemu-storage-daemon is missing"
command -v vdpa >/dev/null || skip "the vdpa tool (iproute2) is missing"
modprobe virtio_vdpa 2>/dev/null
modprobe virtio_blk 2>/dev/null
[ -e /sys/module/virtio_vdpa ] || skip "no virtio_vdpa module"

work=$(mktemp -d)
qsd=
cleanup() {
	[ -e "/sys/bus/vdpa/devices/$name" ] && vdpa dev del "$name"
	[ -n "$qsd" ] && kill "$qsd" 2>/dev/null && wait "$qsd" 2>/dev/null
	rm -rf "$work"
}
truncate -s 64M "$work/disk.img"
qemu-storage-daemon --blockdev "driver=file,node-name=disk,filename=$work/disk.img" \
	--export "type=vduse-blk,id=e0,node-name=disk,name=$name,writable=on" \
	>"$work/qsd.log" 2>&1 &
qsd=$!
for _ in $(seq 100); do [ -c "/dev/vduse/$name" ] && break; sleep 0.1; done
[ -c "/dev/vduse/$name" ] || fail "qemu-storage-daemon did not create /dev/vduse/$name: $(tail -n 3 "$work/qsd.log")"
vdpa dev add name "$name" mgmtdev vduse || fail "vdpa dev add failed"
# With vhost_vdpa loaded too, the device may have gone there: move it to virtio_vdpa.
drv=$(basename "$(readlink "/sys/bus/vdpa/devices/$name/driver" 2>/dev/null)")
if [ "$drv" != virtio_vdpa ]; then
	echo "# bound to ${drv:-no driver}: rebinding to virtio_vdpa"
	[ -n "$drv" ] && echo "$name" >"/sys/bus/vdpa/drivers/$drv/unbind"
	echo virtio_vdpa >"/sys/bus/vdpa/devices/$name/driver_override"
	echo "$name" >/sys/bus/vdpa/drivers_probe
fi
dev=
for _ in $(seq 300); do
	for b in /sys/bus/vdpa/devices/"$name"/virtio*/block/*; do [ -e "$b" ] && dev=/dev/${b##*/}; done
	[ -n "$dev" ] && [ -b "$dev" ] && break
	sleep 0.1
done
[ -b "$dev" ] || fail "no block device appeared"
echo "# $name is $dev ($(cat "/sys/block/${dev#/dev/}/size") sectors)"
head -c 4M /dev/urandom >"$work/ref"
dd if="$work/ref" of="$dev" bs=1M oflag=direct status=none || fail "write to $dev failed"
dd if="$dev" of="$work/back" bs=1M count=4 iflag=direct status=none || fail "read from $dev failed"
cmp -s "$work/ref" "$work/back" || fail "data read back differs"
vdpa dev del "$name" || fail "vdpa dev del failed"
kill "$qsd"; wait "$qsd"; qsd=
cmp -s -n $((4 << 20)) "$work/ref" "$work/disk.img" || fail "the backing file does not hold the data"
echo "ok 1 blk_io_virtio_vdpa"
cleanup
exit 0
