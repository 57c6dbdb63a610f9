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
 *
 * "vduse-compat32 fuzz SEED OPS" is the compat part of the fuzzer (tools/testing/fuzz/run.sh,
 * which runs it on both drivers and compares the outputs): OPS seeded operations through the
 * compat ioctl path on a device of its own, each argument a valid one mutated, or a bad
 * pointer, or a buffer cut short by an inaccessible page; one line per operation,
 * "N<TAB>OPERATION<TAB>RESULT", where RESULT depends only on what the driver answered. Inputs
 * under a documented difference (D1: a kick fd below -1; D2: IOTLB_GET_INFO with a non-zero
 * asid or reserved word; D4: a second vdpa dev add of one device) are not made.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

/*
 * A virtio-blk device NAME with 2 queues, NGROUPS groups and address spaces, and CONFIG_SIZE
 * bytes of zeroed configuration space: `dev` is a `struct vduse_dev_config` followed by them,
 * `size` bytes in all.
 */
static void blk_config(void *dev, size_t size, const char *name, __u32 ngroups,
		       __u32 config_size)
{
	struct vduse_dev_config *c = dev;

	memset(dev, 0, size);
	strcpy(c->name, name);
	c->device_id = 2;
	c->features = (1ULL << 32) | (1ULL << 33);
	c->vq_num = 2;
	c->vq_align = 4096;
	c->ngroups = ngroups;
	c->nas = ngroups;
	c->config_size = config_size;
}

/* The fuzzer's generator: splitmix64, seeded. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int below(unsigned int n)
{
	return (unsigned int)(rnd() % n);
}

/* A value near v: v itself most often, else a boundary or a random one. */
static uint64_t mutate(uint64_t v)
{
	switch (below(8)) {
	case 0: return v + 1;
	case 1: return v - 1;
	case 2: return ~0ULL;
	case 3: return rnd();
	case 4: return v ^ (1ULL << below(64));
	default: return v;
	}
}

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case E2BIG: return "E2BIG";
	case ENOTTY: return "ENOTTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return NULL;
	}
}

static unsigned long fuzz_n;

/* Prints operation N: its result (and, if it succeeded, what it returned: `more`). */
static void record(const char *op, long ret, int err, const char *more)
{
	const char *name = errname(err);

	printf("%lu\t%s\t", ++fuzz_n, op);
	if (ret < 0 && name)
		printf("-%s\n", name);
	else if (ret < 0)
		printf("-%d\n", err);
	else
		printf("%ld%s%s\n", ret, more && *more ? " " : "", more ? more : "");
}

/*
 * Where an argument goes: its own buffer, NULL, an address nothing is mapped at, or the end of
 * an accessible page so that only `short_by` bytes less than the argument can be read.
 */
static void *fuzz_ptr(void *valid, size_t len, char *page_end, const char **how)
{
	size_t cut;

	switch (below(12)) {
	case 0:
		*how = " ptr=NULL";
		return NULL;
	case 1:
		*how = " ptr=unmapped";
		return (void *)(uintptr_t)0xbff00000u;
	case 2:
		cut = len > 1 ? 1 + below((unsigned int)len - 1) : 1;
		*how = " ptr=short";
		memcpy(page_end - (len - cut), valid, len - cut);
		return page_end - (len - cut);
	default:
		*how = "";
		return valid;
	}
}

static int fuzz(uint64_t seed, unsigned long ops)
{
	static const char name[VDUSE_NAME_MAX] = "t-cfz";
	struct { struct vduse_dev_config c; __u8 config[16]; } dev;
	union {
		struct vduse_vq_info info;
		struct vduse_iotlb_entry entry;
		struct vduse_iotlb_entry_v2 entry2;
		struct vduse_vq_config vq;
		struct vduse_vq_eventfd efd;
		struct vduse_iova_umem umem;
		struct vduse_iova_info iova;
		struct { struct vduse_config_data d; __u8 b[32]; } cfg;
		__u64 u64;
		__u32 u32;
		__u8 raw[512];
	} a;
	char op[160], more[200];
	char *guard, *page_end, *umem;
	long ret;
	int ctl, fd, efd, err, on_bus = 0, added = 0;
	unsigned long i;

	rng_state = seed;
	guard = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	umem = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard == MAP_FAILED || umem == MAP_FAILED || mprotect(guard + 4096, 4096, PROT_NONE))
		return 2;
	page_end = guard + 4096;
	efd = eventfd(0, 0);
	ctl = open("/dev/vduse/control", O_RDWR);
	if (ctl < 0 || efd < 0)
		return 2;
	ioctl(ctl, VDUSE_DESTROY_DEV, name);
	a.u64 = 1;
	record("SET_API_VERSION(1)", ioctl(ctl, VDUSE_SET_API_VERSION, &a.u64), errno, NULL);
	blk_config(&dev, sizeof(dev), name, 2, 16);
	record("CREATE_DEV", ioctl(ctl, VDUSE_CREATE_DEV, &dev), errno, NULL);
	fd = open("/dev/vduse/t-cfz", O_RDWR | O_NONBLOCK);
	record("open(device)", fd < 0 ? -1 : 0, errno, NULL);
	if (fd < 0)
		return 1;
	for (i = 0; i < ops; i++) {
		unsigned long cmd;
		const char *how = "";
		size_t len;
		void *p;

		unsigned int kind = below(16);

		/*
		 * A vdpa command is a process: rarer than the rest. One add per device: a second
		 * leaks C's IOVA domains, whose files then keep vduse.ko from unloading (D4).
		 */
		if (kind == 13 && (below(10) || (added && !on_bus)))
			kind = 10;
		memset(&a, 0, sizeof(a));
		more[0] = 0;
		switch (kind) {
		case 0: case 1: case 2:
			a.info.index = (__u32)(below(3) ? below(3) : mutate(0));
			cmd = VDUSE_VQ_GET_INFO, len = sizeof(a.info);
			snprintf(op, sizeof(op), "VQ_GET_INFO[compat] index=%u", a.info.index);
			break;
		case 3: case 4:
			a.entry.start = below(2) ? below(3) * 0x1000ULL : mutate(0);
			a.entry.last = below(2) ? a.entry.start + 0xfff : mutate(~0ULL);
			cmd = VDUSE_IOTLB_GET_FD, len = sizeof(a.entry);
			snprintf(op, sizeof(op), "IOTLB_GET_FD[compat] start=%#llx last=%#llx",
				 (unsigned long long)a.entry.start, (unsigned long long)a.entry.last);
			break;
		case 5:
			a.entry2.start = below(2) ? 0 : mutate(0);
			a.entry2.last = mutate(0xfff);
			a.entry2.asid = below(4) ? 0 : (__u32)below(3);
			cmd = VDUSE_IOTLB_GET_FD2, len = sizeof(a.entry2);
			snprintf(op, sizeof(op), "IOTLB_GET_FD2 start=%#llx last=%#llx asid=%u",
				 (unsigned long long)a.entry2.start,
				 (unsigned long long)a.entry2.last, a.entry2.asid);
			break;
		case 6:
			a.vq.index = (__u32)(below(3) ? below(2) : mutate(1));
			a.vq.max_size = (__u16)(below(3) ? 256 : mutate(256));
			a.vq.group = (__u32)(below(3) ? below(2) : mutate(1));
			a.vq.reserved1 = (__u16)(below(10) ? 0 : rnd());
			cmd = VDUSE_VQ_SETUP, len = sizeof(a.vq);
			snprintf(op, sizeof(op), "VQ_SETUP index=%u max=%u group=%u r=%u", a.vq.index,
				 a.vq.max_size, a.vq.group, a.vq.reserved1);
			break;
		case 7:
			a.efd.index = (__u32)(below(3) ? below(2) : mutate(1));
			a.efd.fd = below(3) ? efd : (below(2) ? -1 : 999);
			cmd = VDUSE_VQ_SETUP_KICKFD, len = sizeof(a.efd);
			snprintf(op, sizeof(op), "VQ_SETUP_KICKFD index=%u fd=%s", a.efd.index,
				 a.efd.fd == efd ? "eventfd" : a.efd.fd < 0 ? "-1" : "closed");
			break;
		case 8:
			a.cfg.d.offset = (__u32)(below(2) ? below(17) : mutate(0));
			a.cfg.d.length = (__u32)(below(2) ? below(17) : mutate(8));
			memset(a.cfg.b, 0x5a, sizeof(a.cfg.b));
			cmd = VDUSE_DEV_SET_CONFIG, len = sizeof(a.cfg);
			snprintf(op, sizeof(op), "DEV_SET_CONFIG offset=%u length=%u", a.cfg.d.offset,
				 a.cfg.d.length);
			break;
		case 9:
			a.u32 = (__u32)(below(2) ? below(3) : mutate(0));
			cmd = VDUSE_VQ_INJECT_IRQ, len = 4;
			snprintf(op, sizeof(op), "VQ_INJECT_IRQ index=%u", a.u32);
			break;
		case 10:
			cmd = VDUSE_DEV_GET_FEATURES, len = 8;
			snprintf(op, sizeof(op), "DEV_GET_FEATURES");
			break;
		case 11:
			a.umem.uaddr = below(2) ? (__u64)(uintptr_t)umem : mutate((uintptr_t)umem);
			a.umem.iova = mutate(0);
			a.umem.size = below(2) ? 1 << 16 : mutate(1 << 16);
			cmd = below(2) ? VDUSE_IOTLB_REG_UMEM : VDUSE_IOTLB_DEREG_UMEM;
			len = sizeof(a.umem);
			snprintf(op, sizeof(op), "%s uaddr=%s iova=%#llx size=%#llx",
				 cmd == VDUSE_IOTLB_REG_UMEM ? "IOTLB_REG_UMEM" : "IOTLB_DEREG_UMEM",
				 a.umem.uaddr == (uintptr_t)umem ? "buffer" : "other",
				 (unsigned long long)a.umem.iova, (unsigned long long)a.umem.size);
			break;
		case 12:
			/* asid and reserved words stay zero: D2. */
			a.iova.start = below(2) ? 0 : mutate(0);
			a.iova.last = mutate(~0ULL);
			cmd = VDUSE_IOTLB_GET_INFO, len = sizeof(a.iova);
			snprintf(op, sizeof(op), "IOTLB_GET_INFO start=%#llx last=%#llx",
				 (unsigned long long)a.iova.start, (unsigned long long)a.iova.last);
			break;
		case 13:
			/* The vDPA bus: add (the queues may be set up by now) or del, node held. */
			ret = system(on_bus ? "vdpa dev del t-cfz >/dev/null 2>&1" :
				     "vdpa dev add name t-cfz mgmtdev vduse >/dev/null 2>&1");
			ret = WIFEXITED(ret) ? WEXITSTATUS(ret) : -1;
			if (ret == 0) {
				on_bus = !on_bus;
				added = 1;
			}
			snprintf(more, sizeof(more), "exit %ld", ret);
			record(on_bus ? "vdpa dev add" : "vdpa dev del", 0, 0, more);
			continue;
		case 14: {
			/* Any command number of VDUSE's type, with any size and direction. */
			static const unsigned int dirs[] = { _IOC_NONE, _IOC_READ, _IOC_WRITE,
							     _IOC_READ | _IOC_WRITE };
			static const unsigned int sizes[] = { 0, 4, 8, 28, 32, 44, 48, 64, 256 };

			cmd = _IOC(dirs[below(4)], VDUSE_BASE, below(0x20), sizes[below(9)]);
			if (cmd == VDUSE_IOTLB_GET_INFO)
				cmd = VDUSE_DEV_GET_FEATURES; /* its reserved words: D2 */
			len = _IOC_SIZE(cmd) ? _IOC_SIZE(cmd) : 8;
			for (size_t k = 0; k < len; k++)
				a.raw[k] = (__u8)(below(4) ? 0 : rnd());
			snprintf(op, sizeof(op), "ioctl %#lx", cmd);
			break;
		}
		default: {
			/* A read or write of the message channel (no request is pending). */
			static const size_t sizes[] = { 0, 1, 151, 152, 153, 4096 };
			int wr = below(2);

			len = sizes[below(6)];
			ret = wr ? write(fd, a.raw, len) : read(fd, a.raw, len);
			err = errno;
			snprintf(op, sizeof(op), "%s %zu", wr ? "write" : "read", len);
			record(op, ret, err, NULL);
			continue;
		}
		}
		p = fuzz_ptr(&a, len, page_end, &how);
		strncat(op, how, sizeof(op) - strlen(op) - 1);
		ret = ioctl(fd, cmd, p);
		err = errno;
		if (ret >= 0 && p == (void *)&a) {
			if (cmd == VDUSE_VQ_GET_INFO)
				snprintf(more, sizeof(more), "num=%u desc=%#llx ready=%u avail=%u",
					 a.info.num, (unsigned long long)a.info.desc_addr, a.info.ready,
					 a.info.split.avail_index);
			else if (cmd == VDUSE_IOTLB_GET_FD || cmd == VDUSE_IOTLB_GET_FD2)
				snprintf(more, sizeof(more), "start=%#llx last=%#llx perm=%u",
					 (unsigned long long)a.entry.start,
					 (unsigned long long)a.entry.last, a.entry.perm);
			else if (cmd == VDUSE_IOTLB_GET_INFO)
				snprintf(more, sizeof(more), "start=%#llx last=%#llx cap=%llu",
					 (unsigned long long)a.iova.start,
					 (unsigned long long)a.iova.last,
					 (unsigned long long)a.iova.capability);
			else if (cmd == VDUSE_DEV_GET_FEATURES)
				snprintf(more, sizeof(more), "%#llx", (unsigned long long)a.u64);
		}
		/* A new fd's number is not the driver's answer. */
		if (ret > 2 && (cmd == VDUSE_IOTLB_GET_FD || cmd == VDUSE_IOTLB_GET_FD2)) {
			close((int)ret);
			ret = 0;
			strncat(more, " (fd)", sizeof(more) - strlen(more) - 1);
		}
		record(op, ret, err, more);
	}
	if (on_bus && system("vdpa dev del t-cfz >/dev/null 2>&1") != 0)
		fprintf(stderr, "vdpa dev del t-cfz failed\n");
	close(fd);
	record("DESTROY_DEV", ioctl(ctl, VDUSE_DESTROY_DEV, name), errno, NULL);
	close(ctl);
	return 0;
}

int main(int argc, char **argv)
{
	struct { struct vduse_dev_config c; __u8 config[8]; } dev;
	struct vduse_vq_config vq = { .index = 0, .max_size = 256 };
	struct vduse_vq_info info;
	struct vduse_iotlb_entry entry = { .start = 0, .last = 0xfff };
	char name[VDUSE_NAME_MAX] = "t-compat";
	__u64 v = 0, features = 0;
	int ctl, fd;

	if (argc == 4 && !strcmp(argv[1], "fuzz"))
		return fuzz(strtoull(argv[2], NULL, 0), strtoul(argv[3], NULL, 0));
	if (argc != 1) {
		fprintf(stderr, "usage: %s [fuzz SEED OPS]\n", argv[0]);
		return 2;
	}

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

	blk_config(&dev, sizeof(dev), name, 1, 8);
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
