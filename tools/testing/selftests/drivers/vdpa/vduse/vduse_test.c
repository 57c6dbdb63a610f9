// SPDX-License-Identifier: GPL-2.0
/*
 * VDUSE selftest: the single-driver behaviour of Linux 7.3's VDUSE uAPI, asserted against
 * whichever VDUSE driver is loaded (the C vduse.ko or vduse_rs.ko): the control device, the
 * creation rules, the device node and its ioctls, and the message channel with a daemon
 * thread while vhost_vdpa drives the device. KTAP output; a case whose module or tool is
 * missing is skipped with the reason.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/vduse.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#define CONTROL "/dev/vduse/control"

static int failed, passed, skipped, number;

/* The first failed expectation of the running case, or "" if none. */
static char why[512];

static void fail(const char *fmt, ...)
{
	va_list ap;

	if (why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
}

/* An ioctl's outcome: 0 or the errno. */
static int ioc(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? errno : 0;
}

#define EXPECT_ERR(what, got, want)                                                   \
	do {                                                                          \
		int g_ = (got), w_ = (want);                                          \
		if (g_ != w_)                                                         \
			fail("%s: got %s, want %s", what, g_ ? strerror(g_) : "success", \
			     w_ ? strerror(w_) : "success");                          \
	} while (0)

#define EXPECT(what, cond)                        \
	do {                                      \
		if (!(cond))                      \
			fail("%s", what);         \
	} while (0)

static int control(__u64 api)
{
	int fd = open(CONTROL, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fail("open %s: %s", CONTROL, strerror(errno));
		return -1;
	}
	EXPECT_ERR("VDUSE_SET_API_VERSION", ioc(fd, VDUSE_SET_API_VERSION, &api), 0);
	return fd;
}

/* A virtio-blk (or other) device config for an API-1 control fd: 2 queues, 8 config bytes. */
static struct vduse_dev_config *dev_config(const char *name, __u32 id, __u64 features)
{
	struct vduse_dev_config *c = calloc(1, sizeof(*c) + 8);

	snprintf(c->name, sizeof(c->name), "%s", name);
	c->device_id = id;
	c->features = features;
	c->vq_num = 2;
	c->vq_align = 4096;
	c->ngroups = 1;
	c->nas = 1;
	c->config_size = 8;
	return c;
}

#define BLK_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_ACCESS_PLATFORM))

static int create(int ctl, const char *name, __u32 id, __u64 features)
{
	struct vduse_dev_config *c = dev_config(name, id, features);
	int r = ioc(ctl, VDUSE_CREATE_DEV, c);

	free(c);
	return r;
}

static int destroy(int ctl, const char *name)
{
	char n[VDUSE_NAME_MAX] = { 0 };

	snprintf(n, sizeof(n), "%s", name);
	return ioc(ctl, VDUSE_DESTROY_DEV, n);
}

static int open_dev(const char *name)
{
	char path[300];

	snprintf(path, sizeof(path), "/dev/vduse/%s", name);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* ---- cases ------------------------------------------------------------------------------ */

static void control_api_version(void)
{
	int fd = open(CONTROL, O_RDWR | O_CLOEXEC);
	__u64 v = 99, bad = 2, zero = 0;

	if (fd < 0) {
		fail("open %s: %s", CONTROL, strerror(errno));
		return;
	}
	EXPECT_ERR("VDUSE_GET_API_VERSION", ioc(fd, VDUSE_GET_API_VERSION, &v), 0);
	if (v != VDUSE_API_VERSION_1)
		fail("VDUSE_GET_API_VERSION: %llu, want %d", (unsigned long long)v,
		     VDUSE_API_VERSION_1);
	EXPECT_ERR("VDUSE_SET_API_VERSION(2)", ioc(fd, VDUSE_SET_API_VERSION, &bad), EINVAL);
	EXPECT_ERR("VDUSE_SET_API_VERSION(0)", ioc(fd, VDUSE_SET_API_VERSION, &zero), 0);
	close(fd);
}

static void control_features(void)
{
	int fd = control(VDUSE_API_VERSION_1);
	__u64 f = 0, want = (1 << VDUSE_F_QUEUE_READY) | (1 << VDUSE_F_SUSPEND), bad = 1 << 2;

	if (fd < 0)
		return;
	EXPECT_ERR("VDUSE_GET_FEATURES", ioc(fd, VDUSE_GET_FEATURES, &f), 0);
	if (f != want)
		fail("VDUSE_GET_FEATURES: %#llx, want %#llx", (unsigned long long)f,
		     (unsigned long long)want);
	EXPECT_ERR("VDUSE_SET_FEATURES(1 << 2)", ioc(fd, VDUSE_SET_FEATURES, &bad), EINVAL);
	EXPECT_ERR("VDUSE_SET_FEATURES(offered)", ioc(fd, VDUSE_SET_FEATURES, &want), 0);
	close(fd);
}

static void create_and_destroy(void)
{
	int ctl = control(VDUSE_API_VERSION_1);
	struct stat st;

	if (ctl < 0)
		return;
	EXPECT_ERR("CREATE_DEV(ksft-vduse0)", create(ctl, "ksft-vduse0", VIRTIO_ID_BLOCK,
						      BLK_FEATURES), 0);
	EXPECT("/dev/vduse/ksft-vduse0 is a character device",
	       stat("/dev/vduse/ksft-vduse0", &st) == 0 && S_ISCHR(st.st_mode));
	EXPECT_ERR("CREATE_DEV(same name)", create(ctl, "ksft-vduse0", VIRTIO_ID_BLOCK,
						    BLK_FEATURES), EEXIST);
	EXPECT_ERR("DESTROY_DEV(ksft-vduse0)", destroy(ctl, "ksft-vduse0"), 0);
	EXPECT("the node is gone", stat("/dev/vduse/ksft-vduse0", &st) < 0 && errno == ENOENT);
	EXPECT_ERR("DESTROY_DEV(unknown)", destroy(ctl, "ksft-vduse-none"), EINVAL);
	close(ctl);
}

static void create_rules(void)
{
	int ctl = control(VDUSE_API_VERSION_1);
	struct vduse_dev_config *c;

	if (ctl < 0)
		return;
	/* 7.3 takes a name with '/' (the node's name has it as '!'). */
	EXPECT_ERR("CREATE_DEV(name with '/')",
		   create(ctl, "ksft/slash", VIRTIO_ID_BLOCK, BLK_FEATURES), 0);
	EXPECT_ERR("DESTROY_DEV(name with '/')", destroy(ctl, "ksft/slash"), 0);
	EXPECT_ERR("CREATE_DEV(net with CTRL_VQ)",
		   create(ctl, "ksft-net", VIRTIO_ID_NET,
			  BLK_FEATURES | (1ULL << VIRTIO_NET_F_CTRL_VQ)), EINVAL);
	EXPECT_ERR("CREATE_DEV(net without VERSION_1)",
		   create(ctl, "ksft-net", VIRTIO_ID_NET, 1ULL << VIRTIO_F_ACCESS_PLATFORM),
		   EINVAL);
	EXPECT_ERR("CREATE_DEV(device id 42)", create(ctl, "ksft-42", 42, BLK_FEATURES), EINVAL);
	c = dev_config("ksft-noq", VIRTIO_ID_BLOCK, BLK_FEATURES);
	c->vq_num = 0x10000;
	EXPECT_ERR("CREATE_DEV(0x10000 queues)", ioc(ctl, VDUSE_CREATE_DEV, c), EINVAL);
	c->vq_num = 2;
	c->name[0] = 0;
	EXPECT_ERR("CREATE_DEV(empty name)", ioc(ctl, VDUSE_CREATE_DEV, c), EINVAL);
	snprintf(c->name, sizeof(c->name), "ksft-noq");
	c->ngroups = 0;
	EXPECT_ERR("CREATE_DEV(API 1, ngroups 0)", ioc(ctl, VDUSE_CREATE_DEV, c), EINVAL);
	free(c);
	close(ctl);
}

static void device_node(void)
{
	int ctl = control(VDUSE_API_VERSION_1), fd, fd2;
	struct vduse_vq_config vq = { .index = 0, .max_size = 256 };
	struct vduse_vq_info info = { .index = 0 };
	__u64 f = 1;
	__u32 q = 0;

	if (ctl < 0)
		return;
	if (create(ctl, "ksft-vduse1", VIRTIO_ID_BLOCK, BLK_FEATURES)) {
		fail("CREATE_DEV(ksft-vduse1) failed");
		close(ctl);
		return;
	}
	fd = open_dev("ksft-vduse1");
	EXPECT("open /dev/vduse/ksft-vduse1", fd >= 0);
	fd2 = open_dev("ksft-vduse1");
	EXPECT_ERR("second open", fd2 < 0 ? errno : 0, EBUSY);
	if (fd2 >= 0)
		close(fd2);
	EXPECT_ERR("DESTROY_DEV while open", destroy(ctl, "ksft-vduse1"), EBUSY);
	EXPECT_ERR("VQ_SETUP(0, 256)", ioc(fd, VDUSE_VQ_SETUP, &vq), 0);
	vq.index = 2;
	EXPECT_ERR("VQ_SETUP(2 of 2)", ioc(fd, VDUSE_VQ_SETUP, &vq), EINVAL);
	EXPECT_ERR("VQ_GET_INFO(0)", ioc(fd, VDUSE_VQ_GET_INFO, &info), 0);
	EXPECT("VQ_GET_INFO(0): not ready, no ring yet", info.ready == 0 && info.num == 0);
	info.index = 2;
	EXPECT_ERR("VQ_GET_INFO(2 of 2)", ioc(fd, VDUSE_VQ_GET_INFO, &info), EINVAL);
	EXPECT_ERR("DEV_GET_FEATURES", ioc(fd, VDUSE_DEV_GET_FEATURES, &f), 0);
	EXPECT("DEV_GET_FEATURES before a driver: 0", f == 0);
	EXPECT_ERR("DEV_INJECT_CONFIG_IRQ without a driver",
		   ioc(fd, VDUSE_DEV_INJECT_CONFIG_IRQ, NULL), EINVAL);
	EXPECT_ERR("VQ_INJECT_IRQ(0) without a driver", ioc(fd, VDUSE_VQ_INJECT_IRQ, &q),
		   EINVAL);
	EXPECT_ERR("unknown ioctl", ioc(fd, _IO(VDUSE_BASE, 0x7f), NULL), ENOTTY);
	close(fd);
	EXPECT_ERR("DESTROY_DEV after close", destroy(ctl, "ksft-vduse1"), 0);
	close(ctl);
}

/* A daemon thread: answers every message of `fd` with OK and records the types it saw. */
struct daemon {
	int fd;
	volatile int stop;
	unsigned int seen; /* bit per message type */
	pthread_t thread;
};

static void *daemon_main(void *arg)
{
	struct daemon *d = arg;
	struct vduse_dev_request req;
	struct vduse_dev_response resp;

	while (!d->stop) {
		struct pollfd p = { .fd = d->fd, .events = POLLIN };

		if (poll(&p, 1, 50) <= 0)
			continue;
		if (read(d->fd, &req, sizeof(req)) != sizeof(req))
			continue;
		if (req.type < 32)
			d->seen |= 1u << req.type;
		memset(&resp, 0, sizeof(resp));
		resp.request_id = req.request_id;
		resp.result = VDUSE_REQ_RESULT_OK;
		if (req.type == VDUSE_GET_VQ_STATE)
			resp.vq_state.index = req.vq_state.index;
		if (write(d->fd, &resp, sizeof(resp)) != sizeof(resp))
			fail("writing a response: %s", strerror(errno));
	}
	return NULL;
}

static int have_module(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

static int run(const char *cmd)
{
	int r = system(cmd);

	return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

/* The vhost-vdpa node of vDPA device `name`, or "". */
static void vhost_node(const char *name, char *out, size_t len)
{
	char cmd[256];
	FILE *f;

	out[0] = 0;
	snprintf(cmd, sizeof(cmd), "ls /sys/bus/vdpa/devices/%s 2>/dev/null | grep vhost-vdpa-", name);
	f = popen(cmd, "r");
	if (f && fgets(out, len, f))
		out[strcspn(out, "\n")] = 0;
	if (f)
		pclose(f);
}

static const char *message_channel_skip(void)
{
	if (run("command -v vdpa >/dev/null") != 0)
		return "the vdpa tool (iproute2) is missing";
	if (run("modprobe vhost_vdpa 2>/dev/null") != 0 && !have_module("vhost_vdpa"))
		return "no vhost_vdpa module";
	if (have_module("virtio_vdpa"))
		return "virtio_vdpa is loaded: it would bind the device and start I/O this case does not serve (rmmod virtio_vdpa to run it)";
	return NULL;
}

static void message_channel(void)
{
	int ctl = control(VDUSE_API_VERSION_1), fd, v;
	struct vduse_vq_config vq = { .max_size = 256 };
	struct daemon d = { 0 };
	char node[64], path[80];
	__u8 status = VIRTIO_CONFIG_S_ACKNOWLEDGE;

	if (ctl < 0)
		return;
	if (create(ctl, "ksft-vduse2", VIRTIO_ID_BLOCK, BLK_FEATURES)) {
		fail("CREATE_DEV(ksft-vduse2) failed");
		close(ctl);
		return;
	}
	fd = open_dev("ksft-vduse2");
	for (vq.index = 0; vq.index < 2; vq.index++)
		EXPECT_ERR("VQ_SETUP", ioc(fd, VDUSE_VQ_SETUP, &vq), 0);
	d.fd = fd;
	pthread_create(&d.thread, NULL, daemon_main, &d);
	EXPECT("vdpa dev add", run("vdpa dev add name ksft-vduse2 mgmtdev vduse") == 0);
	vhost_node("ksft-vduse2", node, sizeof(node));
	EXPECT("a vhost-vdpa node for the device", node[0]);
	if (node[0]) {
		snprintf(path, sizeof(path), "/dev/%s", node);
		v = open(path, O_RDWR | O_CLOEXEC);
		EXPECT("open the vhost-vdpa node", v >= 0);
		if (v >= 0) {
			EXPECT_ERR("VHOST_SET_OWNER", ioc(v, VHOST_SET_OWNER, NULL), 0);
			EXPECT_ERR("VHOST_VDPA_SET_STATUS(ACKNOWLEDGE)",
				   ioc(v, VHOST_VDPA_SET_STATUS, &status), 0);
			close(v); /* resets the device: SET_STATUS 0 */
		}
	}
	EXPECT("vdpa dev del", run("vdpa dev del ksft-vduse2") == 0);
	d.stop = 1;
	pthread_join(d.thread, NULL);
	EXPECT("the daemon answered SET_STATUS", d.seen & (1u << VDUSE_SET_STATUS));
	close(fd);
	EXPECT_ERR("DESTROY_DEV(ksft-vduse2)", destroy(ctl, "ksft-vduse2"), 0);
	close(ctl);
}

/* ---- runner ------------------------------------------------------------------------------ */

struct test {
	const char *name;
	void (*fn)(void);
	const char *(*skip)(void);
};

static const struct test tests[] = {
	{ "control_api_version", control_api_version, NULL },
	{ "control_features", control_features, NULL },
	{ "create_and_destroy", create_and_destroy, NULL },
	{ "create_rules", create_rules, NULL },
	{ "device_node", device_node, NULL },
	{ "message_channel_vhost_vdpa", message_channel, message_channel_skip },
};

int main(void)
{
	const size_t n = sizeof(tests) / sizeof(tests[0]);
	const char *driver = have_module("vduse_rs") ? "vduse_rs" :
			     have_module("vduse") ? "vduse" : NULL;

	printf("TAP version 13\n1..%zu\n", n);
	if (!driver || access(CONTROL, F_OK)) {
		printf("# no VDUSE driver is loaded (modprobe vduse, or vduse_rs)\n");
		for (size_t i = 0; i < n; i++)
			printf("ok %zu %s # SKIP no VDUSE driver\n", i + 1, tests[i].name);
		return 4; /* KSFT_SKIP */
	}
	if (geteuid() != 0) {
		for (size_t i = 0; i < n; i++)
			printf("ok %zu %s # SKIP needs root\n", i + 1, tests[i].name);
		return 4;
	}
	printf("# driver: %s\n", driver);
	for (size_t i = 0; i < n; i++) {
		const char *skip = tests[i].skip ? tests[i].skip() : NULL;

		number = i + 1;
		why[0] = 0;
		if (skip) {
			printf("ok %d %s # SKIP %s\n", number, tests[i].name, skip);
			skipped++;
			continue;
		}
		tests[i].fn();
		if (why[0]) {
			printf("# %s: %s\nnot ok %d %s\n", tests[i].name, why, number, tests[i].name);
			failed++;
		} else {
			printf("ok %d %s\n", number, tests[i].name);
			passed++;
		}
		fflush(stdout);
	}
	printf("# Totals: pass:%d fail:%d skip:%d\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
