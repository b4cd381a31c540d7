// SPDX-License-Identifier: GPL-2.0
/*
 * The module's scanner (debugfs `scan`): a kernel thread walking the
 * targets a user names, as khugepaged walks its mm slots, collapsing each
 * extent with khugepaged's semantics. What it does beside the real
 * khugepaged on twin processes (which extents of which VMAs become huge,
 * the lazy PMD, every byte), and its life: a target process that exits is
 * dropped, rmmod while it scans, the freezer (a suspend test), two
 * writers, and the refusals (non-root, another process without
 * CAP_SYS_NICE, no such process, files that are not regular).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#define LEN KRS_PMD_SIZE
#define NPAGES KRS_PMD_PAGES
#define PAGE KRS_PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)

#define KRS_SCAN KRS_DEBUGFS "/scan"
#define THP "/sys/kernel/mm/transparent_hugepage"
#define KHD THP "/khugepaged"
#define PARKED_MS 600000

static char text[16384];

/* Write @cmd to scan (a fresh open each time); 0 or -errno. */
static int __printf(1, 2) scan_cmd(const char *fmt, ...)
{
	char cmd[256];
	va_list ap;
	ssize_t n;
	int fd;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fd = open(KRS_SCAN, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, cmd, strlen(cmd));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* A line `name value` of the scan file (reopened, so current); -1 if none. */
static long long scan_stat(const char *name)
{
	if (krs_read_file(KRS_SCAN, text, sizeof(text)) <= 0)
		return -1;
	return krs_stat(text, name);
}

/* Wait until the scanner's @name reached @want; 0 or -ETIMEDOUT (60 s). */
static int scan_wait(const char *name, long long want)
{
	for (int i = 0; i < 600; i++) {
		if (scan_stat(name) >= want)
			return 0;
		usleep(100 * 1000);
	}
	return -ETIMEDOUT;
}

static long read_long(const char *path)
{
	char buf[64];

	if (krs_read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

static int write_long(const char *path, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	return krs_write_str(path, buf);
}

/* khugepaged quiet: full_scans unchanged for a second. */
static void khugepaged_quiet(void)
{
	long last = read_long(KHD "/full_scans");
	int quiet = 0;

	for (int i = 0; i < 600 && quiet < 10; i++) {
		long now;

		usleep(100 * 1000);
		now = read_long(KHD "/full_scans");
		quiet = now == last ? quiet + 1 : 0;
		last = now;
	}
}

/* Read a word of each of the first @pages pages. */
static void touch(const char *p, size_t pages)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < pages; i++)
		sum += krs_read_u64((const uint64_t *)(p + i * PAGE));
	krs_ignore((long)sum);
}

/*
 * The layout of a twin process: three mappings of one 8 MiB memfd
 * (written with pwrite(): small folios), in address order:
 *   A: 4 MiB, MADV_HUGEPAGE, both extents full        -> huge (lazily)
 *   B: 2 MiB, MADV_HUGEPAGE, 3 pages of 512 written   -> too few (max_ptes_none 64)
 *   C: 2 MiB, no MADV_HUGEPAGE                         -> not khugepaged's
 * Each child reports ShmemPmdMapped of each before and after a touch,
 * and whether every byte is right.
 */
struct twin_obs {
	long pmd_before[3], pmd_after[3];
	long rss_before[3];
	long bad;
};

static const size_t twin_len[3] = { 2 * LEN, LEN, LEN };
static const size_t twin_present[3] = { 2 * NPAGES, 3, NPAGES };

static int twin_child(int in, int out, void *arg)
{
	const char *name = arg;
	struct twin_obs o = { 0 };
	char go[KRS_MSG_SIZE];
	size_t off = 0;
	char *p[3];
	int fd = krs_memfd(name, 4 * LEN);

	if (fd < 0)
		return 1;
	for (int m = 0; m < 3; m++) {
		for (size_t i = 0; i < twin_present[m]; i++)
			if (krs_pwrite_page(fd, 40 + m, off / PAGE + i))
				return 1;
		p[m] = krs_map_aligned(twin_len[m], RW, MAP_SHARED, fd, off);
		if (p[m] == MAP_FAILED)
			return 1;
		touch(p[m], twin_present[m]);
		if (m < 2 && madvise(p[m], twin_len[m], MADV_HUGEPAGE))
			return 1;
		off += twin_len[m];
	}
	krs_send_msg(out, "ok");
	if (krs_recv(in, go, sizeof(go), 120 * 1000))
		return 1;
	off = 0;
	for (int m = 0; m < 3; m++) {
		o.rss_before[m] = krs_smaps_kb(0, (unsigned long)p[m], "Rss");
		o.pmd_before[m] = krs_smaps_kb(0, (unsigned long)p[m], "ShmemPmdMapped");
		touch(p[m], twin_present[m]);
		o.pmd_after[m] = krs_smaps_kb(0, (unsigned long)p[m], "ShmemPmdMapped");
		for (size_t i = 0; i < twin_len[m] / PAGE && !o.bad; i++) {
			const char *page = p[m] + i * PAGE;

			if (i < twin_present[m] ? krs_check_page(page, 40 + m, off / PAGE + i)
						: !krs_page_is_zero(page))
				o.bad = 1 + off / PAGE + i;
		}
		off += twin_len[m];
	}
	if (krs_send(out, &o, sizeof(o)))
		return 1;
	krs_recv(in, go, sizeof(go), 120 * 1000);
	return 0;
}

/* Saved THP settings, restored by the fixture. */
FIXTURE(scanner) {
	char enabled[32], shmem_enabled[32], sleep_ms[32], none[32];
};

FIXTURE_SETUP(scanner)
{
	int fd, ret;
	char *p;

	self->enabled[0] = '\0';
	self->shmem_enabled[0] = '\0';
	self->sleep_ms[0] = '\0';
	self->none[0] = '\0';
	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	ASSERT_EQ(0, access(KRS_SCAN, W_OK)) TH_LOG("%s: %s", KRS_SCAN, strerror(errno));
	ASSERT_EQ(0, scan_cmd("clear"));
	ASSERT_EQ(0, scan_cmd("set %s %s %s", "pages_to_scan=default",
			      "scan_sleep_millisecs=default", "alloc_sleep_millisecs=default"));
	if (access(KHD "/full_scans", R_OK))
		return;
	ASSERT_EQ(0, krs_sysfs_choice(THP "/enabled", self->enabled, sizeof(self->enabled)));
	ASSERT_EQ(0, krs_sysfs_choice(THP "/shmem_enabled", self->shmem_enabled,
				      sizeof(self->shmem_enabled)));
	ASSERT_LT(0, krs_read_file(KHD "/scan_sleep_millisecs", self->sleep_ms,
				   sizeof(self->sleep_ms)));
	ASSERT_LT(0, krs_read_file(KHD "/max_ptes_none", self->none, sizeof(self->none)));
	ASSERT_EQ(0, krs_write_str(THP "/enabled", "madvise"));
	ASSERT_EQ(0, krs_write_str(THP "/shmem_enabled", "advise"));
	/* khugepaged parked: the scanner has its own sleep (set below). */
	ASSERT_EQ(0, write_long(KHD "/scan_sleep_millisecs", PARKED_MS));
	khugepaged_quiet();
	/*
	 * Registered with khugepaged through a mapping gone again: khugepaged
	 * always has work, and sleeps its timed sleep, which a twin's
	 * registration does not end (it would wake khugepaged waiting for work).
	 */
	fd = krs_memfd("krs_scan_anchor", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, madvise(p, LEN, MADV_HUGEPAGE));
	munmap(p, LEN);
	close(fd);
}

FIXTURE_TEARDOWN(scanner)
{
	if (krs_module_loaded())
		scan_cmd("clear");
	if (self->none[0])
		krs_write_str(KHD "/max_ptes_none", self->none);
	if (self->shmem_enabled[0])
		krs_write_str(THP "/shmem_enabled", self->shmem_enabled);
	if (self->enabled[0])
		krs_write_str(THP "/enabled", self->enabled);
	if (self->sleep_ms[0])
		krs_write_str(KHD "/scan_sleep_millisecs", self->sleep_ms);
}

/* Start a twin process; its pid. */
static pid_t twin_start(struct __test_metadata *_metadata, struct krs_child *c, char *name)
{
	char msg[KRS_MSG_SIZE];

	if (krs_child_start(c, twin_child, name))
		return -1;
	if (krs_recv(c->from_child, msg, sizeof(msg), 60 * 1000) || strcmp(msg, "ok"))
		return -1;
	return c->pid;
}

static int twin_finish(struct krs_child *c, struct twin_obs *o)
{
	int ret;

	krs_send_msg(c->to_child, "go");
	ret = krs_recv(c->from_child, o, sizeof(*o), 60 * 1000);
	krs_send_msg(c->to_child, "done");
	krs_child_wait(c);
	return ret;
}

/*
 * The scanner beside khugepaged: the same layout in two processes, the
 * same knobs (max_ptes_none=64, pages_to_scan=4096). The scanner walks
 * its target until it went round twice, with khugepaged parked; then
 * khugepaged walks its twin. The same mappings become huge in both (A),
 * none of it mapped by a PMD before a touch and all of it after; B keeps
 * its pages small (too few present), C is not khugepaged's (no
 * MADV_HUGEPAGE); every byte is right.
 */
TEST_F_TIMEOUT(scanner, like_khugepaged, 300)
{
	struct twin_obs mod, khd;
	struct krs_child cm, ck;
	long long f0, c0;
	long k0, kc0;
	pid_t pid;

	if (!self->enabled[0])
		SKIP(return, "no khugepaged");
	ASSERT_EQ(0, write_long(KHD "/max_ptes_none", 64));

	pid = twin_start(_metadata, &cm, "krs_scan_m");
	ASSERT_LT(0, pid);
	f0 = scan_stat("full_scans");
	c0 = scan_stat("extents_collapsed");
	ASSERT_EQ(0, scan_cmd("set scan_sleep_millisecs=10 pages_to_scan=4096"));
	ASSERT_EQ(0, scan_cmd("add pid=%d", pid));
	ASSERT_EQ(0, scan_wait("full_scans", f0 + 2)) TH_LOG("%s", text);
	/* A's two extents, by the scanner (khugepaged slept meanwhile). */
	EXPECT_EQ(c0 + 2, scan_stat("extents_collapsed")) TH_LOG("%s", text);
	EXPECT_LE(1, scan_stat("SCAN_EXCEED_NONE_PTE"));
	ASSERT_EQ(0, scan_cmd("remove pid=%d", pid));
	ASSERT_EQ(0, twin_finish(&cm, &mod));
	TH_LOG("scanner:\n%s", text);

	pid = twin_start(_metadata, &ck, "krs_scan_k");
	ASSERT_LT(0, pid);
	k0 = read_long(KHD "/full_scans");
	kc0 = krs_vmstat("thp_collapse_alloc");
	ASSERT_EQ(0, write_long(KHD "/scan_sleep_millisecs", 10));
	for (int i = 0; i < 600 && read_long(KHD "/full_scans") < k0 + 2; i++)
		usleep(100 * 1000);
	ASSERT_EQ(0, write_long(KHD "/scan_sleep_millisecs", PARKED_MS));
	khugepaged_quiet();
	/* A's two extents, by khugepaged. */
	EXPECT_EQ(kc0 + 2, krs_vmstat("thp_collapse_alloc"));
	ASSERT_EQ(0, twin_finish(&ck, &khd));

	for (int m = 0; m < 3; m++) {
		EXPECT_EQ(khd.pmd_before[m], mod.pmd_before[m]) TH_LOG("mapping %d", m);
		EXPECT_EQ(khd.pmd_after[m], mod.pmd_after[m]) TH_LOG("mapping %d", m);
		EXPECT_EQ(khd.rss_before[m], mod.rss_before[m]) TH_LOG("mapping %d", m);
	}
	EXPECT_EQ(0, mod.pmd_before[0]);
	EXPECT_EQ(0, mod.rss_before[0]);
	EXPECT_EQ(4096, mod.pmd_after[0]);
	EXPECT_EQ(0, mod.pmd_after[1]);
	EXPECT_EQ(0, mod.pmd_after[2]);
	EXPECT_EQ(0, mod.bad);
	EXPECT_EQ(0, khd.bad);
}

static int exit_now(int in, int out, void *arg)
{
	char go[KRS_MSG_SIZE];
	int fd = krs_memfd("krs_scan_exit", LEN);
	char *p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED || madvise(p, LEN, MADV_HUGEPAGE))
		return 1;
	krs_send_msg(out, "ok");
	krs_recv(in, go, sizeof(go), 60 * 1000);
	return 0;
}

/*
 * A target process that exits is dropped at the next visit (its mm has
 * no users left), and counted; the scanner holds nothing that keeps the
 * exited process's memory.
 */
TEST_F(scanner, target_exit_is_dropped)
{
	char msg[KRS_MSG_SIZE];
	struct krs_child c;
	long long exited, passes;
	pid_t pid;

	ASSERT_EQ(0, krs_child_start(&c, exit_now, NULL));
	ASSERT_EQ(0, krs_recv(c.from_child, msg, sizeof(msg), 60 * 1000));
	ASSERT_EQ(0, scan_cmd("set scan_sleep_millisecs=20"));
	ASSERT_EQ(0, scan_cmd("add pid=%d", c.pid));
	ASSERT_EQ(1, scan_stat("targets"));
	exited = scan_stat("exited");
	pid = c.pid;
	krs_send_msg(c.to_child, "exit");
	EXPECT_EQ(0, krs_child_wait(&c));
	passes = scan_stat("passes");
	EXPECT_EQ(0, scan_wait("exited", exited + 1)) TH_LOG("%s", text);
	EXPECT_EQ(0, scan_stat("targets")) TH_LOG("%s", text);
	EXPECT_LE(passes, scan_stat("passes"));
	/* Removing it again: it is gone. */
	EXPECT_EQ(-ENOENT, scan_cmd("remove pid=%d", pid));
}

/* A process with @n extents of a memfd, all huge and PMD-mapped: cheap scans. */
static int busy_target(int in, int out, void *arg)
{
	size_t len = (size_t)(uintptr_t)arg * LEN;
	char go[KRS_MSG_SIZE];
	int fd = krs_memfd("krs_scan_busy", len);
	char *p = krs_map_aligned(len, RW, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < len / PAGE; i++)
		p[i * PAGE] = 1;
	if (madvise(p, len, MADV_COLLAPSE) || madvise(p, len, MADV_HUGEPAGE))
		return 1;
	krs_send_msg(out, "ok");
	krs_recv(in, go, sizeof(go), 120 * 1000);
	return 0;
}

/*
 * rmmod while the scanner scans without sleeping (scan_sleep_millisecs=0,
 * a target of 16 extents): the module goes within seconds (the thread
 * stopped and waited for), the target process lives on, and a new load
 * starts a scanner again.
 */
TEST_F_TIMEOUT(scanner, rmmod_while_scanning, 120)
{
	char msg[KRS_MSG_SIZE];
	struct krs_child c;
	struct timespec t0, t1;
	long long passes;
	int ret;

	ASSERT_EQ(0, krs_child_start(&c, busy_target, (void *)16));
	ASSERT_EQ(0, krs_recv(c.from_child, msg, sizeof(msg), 60 * 1000));
	ASSERT_STREQ("ok", msg);
	ASSERT_EQ(0, scan_cmd("set scan_sleep_millisecs=0"));
	ASSERT_EQ(0, scan_cmd("add pid=%d", c.pid));
	passes = scan_stat("passes");
	ASSERT_EQ(0, scan_wait("passes", passes + 20)) TH_LOG("%s", text);
	ASSERT_LT(0, scan_stat("extents"));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = krs_unload();
	for (int i = 0; ret == -EAGAIN && i < 100; i++) {
		usleep(100 * 1000);
		ret = krs_unload();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_EQ(0, ret) TH_LOG("rmmod: %s", strerror(-ret));
	EXPECT_FALSE(krs_module_loaded());
	EXPECT_GT(30, t1.tv_sec - t0.tv_sec);
	EXPECT_EQ(0, kill(c.pid, 0)) TH_LOG("the target process died");
	krs_send_msg(c.to_child, "done");
	EXPECT_EQ(0, krs_child_wait(&c));
	ASSERT_EQ(0, krs_ensure_loaded());
	EXPECT_EQ(0, scan_stat("targets"));
	EXPECT_EQ(0, scan_wait("passes", 1));
}

/*
 * The freezer: a suspend test (pm_test=freezer: tasks and freezable
 * kernel threads frozen, five seconds, thawed) while the scanner scans
 * without sleeping. It must freeze (or the suspend fails: a freezable
 * thread that never freezes makes freeze_kernel_threads() give up), and
 * counts it.
 */
TEST_F_TIMEOUT(scanner, freezer, 120)
{
	char msg[KRS_MSG_SIZE], pm_test[64];
	struct krs_child c;
	long long frozen, passes;
	int ret;

	if (krs_sysfs_choice("/sys/power/pm_test", pm_test, sizeof(pm_test)))
		SKIP(return, "no /sys/power/pm_test (CONFIG_PM_DEBUG)");
	ASSERT_EQ(0, krs_child_start(&c, busy_target, (void *)4));
	ASSERT_EQ(0, krs_recv(c.from_child, msg, sizeof(msg), 60 * 1000));
	ASSERT_EQ(0, scan_cmd("set scan_sleep_millisecs=0"));
	ASSERT_EQ(0, scan_cmd("add pid=%d", c.pid));
	passes = scan_stat("passes");
	ASSERT_EQ(0, scan_wait("passes", passes + 5));
	frozen = scan_stat("frozen");

	ASSERT_EQ(0, krs_write_str("/sys/power/pm_test", "freezer"));
	ret = krs_write_str("/sys/power/state", "freeze");
	krs_write_str("/sys/power/pm_test", pm_test);
	EXPECT_EQ(0, ret) TH_LOG("suspend test: %s", strerror(-ret));
	EXPECT_EQ(0, scan_wait("frozen", frozen + 1)) TH_LOG("%s", text);
	passes = scan_stat("passes");
	EXPECT_EQ(0, scan_wait("passes", passes + 2)) TH_LOG("not scanning after the thaw");
	krs_send_msg(c.to_child, "done");
	krs_child_wait(&c);
}

static int add_remove_loop(void *arg)
{
	int rounds = (int)(uintptr_t)arg;

	for (int i = 0; i < rounds; i++) {
		int ret = scan_cmd("add pid=%d", getpid());

		if (ret)
			return 10;
		ret = scan_cmd("remove pid=%d", getpid());
		if (ret && ret != -ENOENT)
			return 11;
		if (i % 16 == 0 && scan_cmd("clear"))
			return 12;
	}
	return 0;
}

/*
 * Two writers (and the thread) at once: two processes add and remove
 * themselves 300 times, clearing now and then; every write succeeds (or
 * finds its target cleared: ENOENT) and nothing is left.
 */
TEST_F_TIMEOUT(scanner, two_writers, 120)
{
	pid_t pids[2];
	int status;

	ASSERT_EQ(0, scan_cmd("set scan_sleep_millisecs=0"));
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0)
			_exit(add_remove_loop((void *)300));
	}
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status));
		EXPECT_EQ(0, WEXITSTATUS(status));
	}
	EXPECT_EQ(0, scan_stat("targets")) TH_LOG("%s", text);
}

static int open_as_nobody(void *arg)
{
	int fd = open(KRS_SCAN, O_RDWR);

	return fd < 0 && (errno == EACCES || errno == EPERM) ? 0 : 1;
}

static int add_other_without_nice(void *arg)
{
	int ret = scan_cmd("add pid=1");

	if (ret != -EPERM)
		return 20;
	/* Its own process: allowed without CAP_SYS_NICE. */
	ret = scan_cmd("add pid=%d", getpid());
	if (ret)
		return 21;
	return scan_cmd("remove pid=%d", getpid()) ? 22 : 0;
}

/*
 * The refusals: debugfs is root's (a non-root open fails); another
 * process without CAP_SYS_NICE (EPERM, as process_madvise(2)); no such
 * process (ESRCH); a pipe (EINVAL); the scan file itself (EINVAL); bad
 * commands (EINVAL, ERANGE); removing what is not there (ENOENT).
 */
TEST_F(scanner, refusals)
{
	int fds[2], fd;
	char cmd[64];

	EXPECT_EQ(0, krs_as_nobody(open_as_nobody, NULL));
	EXPECT_EQ(0, krs_without_caps(1ULL << CAP_SYS_NICE, add_other_without_nice, NULL));
	EXPECT_EQ(-ESRCH, scan_cmd("add pid=%d", 0x3ffffff0));
	ASSERT_EQ(0, pipe(fds));
	EXPECT_EQ(-EINVAL, scan_cmd("add fd=%d", fds[0]));
	close(fds[0]);
	close(fds[1]);
	EXPECT_EQ(-EBADF, scan_cmd("add fd=%d", 999));
	fd = open(KRS_SCAN, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	snprintf(cmd, sizeof(cmd), "add fd=%d", fd);
	EXPECT_EQ(-1, write(fd, cmd, strlen(cmd)));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
	EXPECT_EQ(-EINVAL, scan_cmd("add"));
	EXPECT_EQ(-EINVAL, scan_cmd("scan pid=1"));
	EXPECT_EQ(-EINVAL, scan_cmd("set pages_to_scan=0"));
	EXPECT_EQ(-ERANGE, scan_cmd("set scan_sleep_millisecs=4294967296"));
	EXPECT_EQ(-ENOENT, scan_cmd("remove pid=%d", getpid()));
	EXPECT_EQ(0, scan_stat("targets"));
}

/*
 * A file target: its page cache, extent by extent, as fd= with
 * mode=khugepaged collapses it (shmem_enabled=always: a file with no
 * mapping has no MADV_HUGEPAGE). A mapping made afterwards faults the
 * huge page in by a PMD.
 */
TEST_F_TIMEOUT(scanner, file_target, 120)
{
	int fd = krs_memfd("krs_scan_file", 2 * LEN);
	long long collapsed;
	char *p;

	if (!self->shmem_enabled[0])
		SKIP(return, "no shmem_enabled");
	ASSERT_LE(0, fd);
	for (size_t i = 0; i < 2 * NPAGES; i++)
		ASSERT_EQ(0, krs_pwrite_page(fd, 50, i));
	ASSERT_EQ(0, krs_write_str(THP "/shmem_enabled", "always"));
	collapsed = scan_stat("extents_collapsed");
	ASSERT_EQ(0, scan_cmd("set scan_sleep_millisecs=10"));
	ASSERT_EQ(0, scan_cmd("add fd=%d", fd));
	EXPECT_EQ(0, scan_wait("extents_collapsed", collapsed + 2)) TH_LOG("%s", text);
	ASSERT_EQ(0, scan_cmd("remove fd=%d", fd));
	ASSERT_EQ(0, krs_write_str(THP "/shmem_enabled", "advise"));
	p = krs_map_aligned(2 * LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	touch(p, 2 * NPAGES);
	EXPECT_EQ(4096, krs_smaps_kb(0, (unsigned long)p, "ShmemPmdMapped"));
	for (size_t i = 0; i < 2 * NPAGES; i++)
		ASSERT_EQ(0U, krs_check_page(p + i * PAGE, 50, i));
	munmap(p, 2 * LEN);
	close(fd);
}

TEST_HARNESS_MAIN
