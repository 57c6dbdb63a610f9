#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Inside the demo VM (tools/demo), with a VDUSE driver loaded (vduse_rs.ko): the Rust sample
# daemon serves a RAM-backed virtio-blk disk; format it, write and read a file, tear
# everything down.
set -eu
bin=$VDUSE_RS_ROOT/samples/vduse-blk/target/release/vduse-blk
name=demo0
mnt=$(mktemp -d)
echo "== starting: vduse-blk --name $name --size 64M (RAM)"
"$bin" --name "$name" --size 64M 2>"$VM_OUT/demo-vduse-blk.log" &
daemon=$!
for _ in $(seq 100); do [ -c "/dev/vduse/$name" ] && break; sleep 0.1; done
echo "== vdpa dev add name $name mgmtdev vduse"
vdpa dev add name "$name" mgmtdev vduse
dev=
for _ in $(seq 300); do
	for b in /sys/bus/vdpa/devices/"$name"/virtio*/block/*; do
		[ -e "$b" ] && dev=/dev/${b##*/}
	done
	[ -n "$dev" ] && [ -b "$dev" ] && break
	sleep 0.1
done
[ -b "$dev" ] || { echo "no block device appeared"; exit 1; }
echo "== $dev: $(cat /sys/block/${dev#/dev/}/size) sectors"
mkfs.ext4 -q -F "$dev"
mount "$dev" "$mnt"
echo "hello from a Rust VDUSE daemon" >"$mnt/hello.txt"
umount "$mnt"
mount "$dev" "$mnt"
echo "== read back after remount: $(cat "$mnt/hello.txt")"
umount "$mnt"
echo "== teardown: vdpa dev del, SIGTERM the daemon (it destroys the device)"
vdpa dev del "$name"
kill -TERM "$daemon"
wait "$daemon"
[ ! -e "/dev/vduse/$name" ] && echo "== /dev/vduse/$name is gone: clean"
