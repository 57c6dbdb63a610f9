// SPDX-License-Identifier: GPL-2.0
/*
 * vduse-compat32: exercises the 32-bit (compat) ioctl path of a VDUSE driver. Built with
 * gcc -m32; run by the differential case compat/ioctls_32bit, which compares its output between
 * the C and the Rust driver. Prints one "operation = result" line per step; exits 1 if a step
 * did not give the expected result.
 *
 * The two commands whose argument layout differs on i386 have compat numbers of their own in
 * the drivers: VDUSE_IOTLB_GET_FD (28 bytes instead of 32) and VDUSE_VQ_GET_INFO (44 instead of
 * 48). Every other command has the same number and layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vduse.h>

_Static_assert(sizeof(void *) == 4, "build with -m32");
_Static_assert(sizeof(struct vduse_vq_info) == 44, "i386 layout");
_Static_assert(sizeof(struct vduse_iotlb_entry) == 28, "i386 layout");
_Static_assert(sizeof(struct vduse_dev_config) == 336, "same layout");

static int failed;

static void step(const char *what, int ret, int want)
{
	int got = ret < 0 ? -errno : ret;

	printf("%s = %d\n", what, got);
	if (got != want) {
		printf("# %s: got %d, expected %d\n", what, got, want);
		failed = 1;
	}
}

int main(void)
{
	struct { struct vduse_dev_config c; __u8 config[8]; } dev;
	struct vduse_vq_config vq = { .index = 0, .max_size = 256 };
	struct vduse_vq_info info;
	struct vduse_iotlb_entry entry = { .start = 0, .last = 0xfff };
	char name[VDUSE_NAME_MAX] = "t-compat";
	__u64 v = 0, features = 0;
	int ctl, fd;

	ctl = open("/dev/vduse/control", O_RDWR);
	step("open(control)", ctl < 0 ? -1 : 0, 0);
	if (ctl < 0)
		return 1;
	step("GET_API_VERSION", ioctl(ctl, VDUSE_GET_API_VERSION, &v), 0);
	step("version", (int)v, 1);
	step("GET_FEATURES", ioctl(ctl, VDUSE_GET_FEATURES, &features), 0);
	step("features", (int)features, 3);
	v = 2;
	step("SET_API_VERSION(2)", ioctl(ctl, VDUSE_SET_API_VERSION, &v), -EINVAL);

	memset(&dev, 0, sizeof(dev));
	strcpy(dev.c.name, name);
	dev.c.device_id = 2;
	dev.c.features = (1ULL << 32) | (1ULL << 33);
	dev.c.vq_num = 2;
	dev.c.vq_align = 4096;
	dev.c.ngroups = 1;
	dev.c.nas = 1;
	dev.c.config_size = 8;
	step("CREATE_DEV", ioctl(ctl, VDUSE_CREATE_DEV, &dev), 0);

	fd = open("/dev/vduse/t-compat", O_RDWR | O_NONBLOCK);
	step("open(device)", fd < 0 ? -1 : 0, 0);
	if (fd >= 0) {
		step("VQ_SETUP", ioctl(fd, VDUSE_VQ_SETUP, &vq), 0);
		memset(&info, 0xee, sizeof(info));
		info.index = 0;
		step("VQ_GET_INFO(0) [compat 44 bytes]", ioctl(fd, VDUSE_VQ_GET_INFO, &info), 0);
		step("info.index", (int)info.index, 0);
		step("info.num", (int)info.num, 0);
		step("info.desc_addr == 0", info.desc_addr == 0, 1);
		step("info.ready", info.ready, 0);
		info.index = 2;
		step("VQ_GET_INFO(2) [compat]", ioctl(fd, VDUSE_VQ_GET_INFO, &info), -EINVAL);
		step("VQ_GET_INFO(NULL) [compat]", ioctl(fd, VDUSE_VQ_GET_INFO, NULL), -EFAULT);
		step("IOTLB_GET_FD [compat 28 bytes]", ioctl(fd, VDUSE_IOTLB_GET_FD, &entry), -EINVAL);
		step("IOTLB_GET_FD(NULL) [compat]", ioctl(fd, VDUSE_IOTLB_GET_FD, NULL), -EFAULT);
		step("DEV_GET_FEATURES", ioctl(fd, VDUSE_DEV_GET_FEATURES, &features), 0);
		step("driver features", (int)features, 0);
		step("unknown ioctl", ioctl(fd, _IO(VDUSE_BASE, 0x1f)), -ENOTTY);
		close(fd);
	}
	step("DESTROY_DEV", ioctl(ctl, VDUSE_DESTROY_DEV, name), 0);
	close(ctl);
	return failed;
}
