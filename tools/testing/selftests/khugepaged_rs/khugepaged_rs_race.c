// SPDX-License-Identifier: GPL-2.0
/*
 * Races of the shmem collapse, forced deterministically: a collapse runs
 * in a thread of its own (or a child process) and is paused at one of the
 * injection points of debugfs `inject` (scoped to the file's inode, or to
 * the writer's pid) while this program does the racing operation; then it
 * is released and the outcome checked: the result in the report and the
 * write's errno, the stats, every page's contents (per-page pattern), the
 * smaps/meminfo counters, userfaultfd delivery, and (through the recording
 * MMU notifier) the invalidation ranges. The VM runner fails the run on any
 * kernel warning, so each test also checks that the console stays clean.
 *
 *  race.fault_fills_hole                  seed 000: fault fills a hole
 *  race.uffd_copy_fills_hole              seed 000/003: UFFDIO_COPY fills one
 *  race.uffd_missing_registered_in_pause  seed 000/003: MISSING appears
 *  race.retract_vs_uffd_copy_private      seed 002: UFFDIO_COPY into a
 *                                         private VMA during retraction
 *  race.uffd_wp_registered_in_pause       seed 003/004: wp markers kept
 *  install.*                              seed 001: the VMA changes (or the
 *                                         process exits) before the PMD
 *                                         install; nothing leaks
 *  trunc.*                                truncate / hole punch mid-collapse
 *  fail.*                                 each fail-once point rolls back
 *  tlb.*                                  a failed scan still flushes the
 *                                         TLB entries it batched
 *  stale.*                                the page cache or the VMA changes
 *                                         between two steps: results and
 *                                         errno as upstream's
 *  minor.*                                seed 004: uffd-minor users keep
 *                                         getting minor faults
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#define LEN KRS_PMD_SIZE
#define NPAGES KRS_PMD_PAGES
#define PAGE KRS_PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)
#define STATS_SIZE 16384
#define MAX_EXTENTS 4
/* Every wait is bounded: pauses, collapses, threads, children. */
#define WAIT_MS 10000
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* ---- helpers ------------------------------------------------------------ */

/* The parsed outcome of a collapse run with krs_bg_collapse. */
struct outcome {
	ssize_t ret;
	long status;
	int nr_ext;
	struct krs_extent ext[MAX_EXTENTS];
	const char *result;	/* ext[0].result, or "" */
};

static void fill(char *p, unsigned int seed, size_t step)
{
	for (size_t i = 0; i < NPAGES; i += step)
		krs_fill_page(p + i * PAGE, seed, i);
}

/* 0, or 1 + the first page that is not pattern (i % step == 0) / zero. */
static int bad_page(const char *p, unsigned int seed, size_t step)
{
	for (size_t i = 0; i < NPAGES; i++) {
		if (i % step == 0 ? krs_check_page(p + i * PAGE, seed, i) :
				    !krs_page_is_zero(p + i * PAGE))
			return (int)i + 1;
	}
	return 0;
}

/* The same through pread() (allocates nothing, maps nothing). */
static int bad_file_page(int fd, unsigned int seed, size_t step)
{
	for (size_t i = 0; i < NPAGES; i++) {
		if (i % step == 0 ? krs_pread_check(fd, seed, i) : krs_pread_zero(fd, i))
			return (int)i + 1;
	}
	return 0;
}

static long smaps(const void *p, const char *field)
{
	return krs_smaps_kb(0, (unsigned long)p, field);
}

static long file_blocks(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? -1 : (long)st.st_blocks;
}

#define MTHP_STATS "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/stats/"

/* A per-size stat file's value; -1 if absent. */
static long mthp_read(const char *path)
{
	char buf[64];

	return krs_read_file(path, buf, sizeof(buf)) > 0 ? strtol(buf, NULL, 10) : -1;
}

static unsigned long file_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (unsigned long)st.st_ino;
}

static void snap_stats(struct __test_metadata *_metadata, char *buf)
{
	ssize_t n = krs_stats_read(buf, STATS_SIZE);

	ASSERT_LT(0, n) TH_LOG("reading %s: %s", KRS_STATS, n ? strerror(-n) : "empty");
}

static long long stat_delta(struct __test_metadata *_metadata, const char *s0, const char *s1,
			    const char *name)
{
	long long a = krs_stat(s0, name), b = krs_stat(s1, name);

	EXPECT_LE(0, a) TH_LOG("stats has no '%s'", name);
	EXPECT_LE(0, b) TH_LOG("stats has no '%s'", name);
	return b - a;
}

/* Parse a finished background collapse; its report must hold one extent. */
static void parse_outcome(struct __test_metadata *_metadata, struct krs_bg_collapse *c,
			  struct outcome *o)
{
	o->ret = c->ret;
	o->status = 0;
	o->result = "";
	o->nr_ext = krs_report_parse(c->report, o->ext, MAX_EXTENTS, &o->status);
	ASSERT_LE(0, o->nr_ext) TH_LOG("'%s': malformed report:\n%s", c->cmd, c->report);
	EXPECT_EQ(o->ret, o->status) TH_LOG("'%s': report:\n%s", c->cmd, c->report);
	ASSERT_EQ(1, o->nr_ext) TH_LOG("'%s': report:\n%s", c->cmd, c->report);
	o->result = o->ext[0].result;
	EXPECT_FALSE(krs_has_kernel_pointer(c->report)) TH_LOG("report:\n%s", c->report);
}

/* Wait until the collapse of @c is paused at @point for the @hits-th time. */
static void wait_paused(struct __test_metadata *_metadata, struct krs_bg_collapse *c,
			const char *point, unsigned int hits)
{
	int ret = krs_inject_wait_paused(point, hits, WAIT_MS, &c->done);

	ASSERT_EQ(0, ret) TH_LOG("no collapse paused at %s (hit %u): %s; '%s' -> %zd, report:\n%s",
				 point, hits, strerror(-ret), c->cmd, c->ret, c->report);
}

/* Release every pause, wait for the collapse of @c and parse its report. */
static void finish(struct __test_metadata *_metadata, struct krs_bg_collapse *c,
		   struct outcome *o)
{
	ASSERT_EQ(0, krs_inject("release"));
	ASSERT_EQ(0, krs_bg_collapse_join(c, WAIT_MS))
		TH_LOG("'%s' still running %d ms after the release", c->cmd, WAIT_MS);
	parse_outcome(_metadata, c, o);
}

/*
 * Release every pause, wait for the collapse of @c and parse its report,
 * which must hold @nr extents, into @ext.
 */
static void finish_extents(struct __test_metadata *_metadata, struct krs_bg_collapse *c,
			   struct krs_extent *ext, int nr)
{
	long status = 0;

	ASSERT_EQ(0, krs_inject("release"));
	ASSERT_EQ(0, krs_bg_collapse_join(c, WAIT_MS))
		TH_LOG("'%s' still running %d ms after the release", c->cmd, WAIT_MS);
	ASSERT_EQ(nr, krs_report_parse(c->report, ext, MAX_EXTENTS, &status))
		TH_LOG("report:\n%s", c->report);
}

/* @point was released by us, never by its timeout; it fired @hits times. */
static void check_point(struct __test_metadata *_metadata, const char *point, unsigned int hits)
{
	struct krs_inject_state st;

	ASSERT_EQ(0, krs_inject_state(point, &st));
	EXPECT_EQ(hits, st.hits) TH_LOG("%s fired %u times, want %u", point, st.hits, hits);
	EXPECT_EQ(0U, st.timeouts) TH_LOG("a pause at %s timed out", point);
	EXPECT_EQ(0U, st.waiting);
}

/* @result is one of the space-separated names in @allowed. */
static bool result_in(const char *result, const char *allowed)
{
	size_t len = strlen(result);
	const char *s = allowed;

	if (!len)
		return false;
	while ((s = strstr(s, result))) {
		if ((s == allowed || s[-1] == ' ') && (s[len] == ' ' || !s[len]))
			return true;
		s += len;
	}
	return false;
}

/*
 * Common set-up, the last thing each fixture's set-up does: the module
 * loaded, inject present and cleared, or the test skipped.
 */
static void race_common_setup(struct __test_metadata *_metadata)
{
	int ret;

	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	if (access(KRS_INJECT, W_OK))
		SKIP(return, "%s: %s", KRS_INJECT, strerror(errno));
	ASSERT_EQ(0, krs_inject("clear"));
}

#define RACE_TEARDOWN() do { \
	krs_inject("clear"); \
	if (!access(KRS_NOTIFIER, W_OK)) \
		krs_notifier("stop"); \
} while (0)

/* A thread reading pages of a mapping (it may block on a userfault). */
struct toucher {
	const char *base;
	const size_t *idx;
	size_t n;
	unsigned int seed;
	int bad;		/* 1 + the first wrong page, or 0 */
	int done;
	pthread_t thread;
};

static void *toucher_fn(void *arg)
{
	struct toucher *t = arg;

	for (size_t i = 0; i < t->n && !t->bad; i++) {
		if (krs_check_page(t->base + t->idx[i] * PAGE, t->seed, t->idx[i]))
			t->bad = (int)t->idx[i] + 1;
	}
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * Wait until thread @tid of this process sleeps uninterruptibly (state D);
 * true if so within @ms.
 */
static bool wait_blocked(const pid_t *tid, int ms)
{
	for (int waited = 0; waited < ms; waited += 2) {
		pid_t t = __atomic_load_n(tid, __ATOMIC_SEQ_CST);

		if (t && krs_task_state(t) == 'D')
			return true;
		usleep(2000);
	}
	return false;
}

/* Wait for a flag set by another thread; true if set within @ms. */
static bool wait_flag(const int *flag, int ms)
{
	for (int waited = 0; !__atomic_load_n(flag, __ATOMIC_SEQ_CST); waited += 2) {
		if (waited >= ms)
			return false;
		usleep(2000);
	}
	return true;
}

/* ---- race: holes, userfaultfd, retraction ------------------------------- */

FIXTURE(race) {
	char stats0[STATS_SIZE];
	char stats1[STATS_SIZE];
	char log[1 << 18];
};

FIXTURE_SETUP(race)
{
	race_common_setup(_metadata);
}

FIXTURE_TEARDOWN(race)
{
	RACE_TEARDOWN();
}

/*
 * 1. Seed 000: a fault fills a hole while the collapse is paused before
 * the hole re-check (old folios isolated and copied, holes still empty).
 * The re-check counts one hole less: SCAN_PAGE_FILLED, EAGAIN, rollback;
 * the faulted data survives, so does everything else.
 */
TEST_F(race, fault_fills_hole)
{
	const size_t step = 2, present = NPAGES / step, hole = 7;
	struct krs_bg_collapse c = { 0 };
	struct outcome o;
	long blocks;
	char *p;
	int fd;

	fd = krs_memfd("krs_race_fill", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 31, step);		/* odd pages are holes */
	blocks = file_blocks(fd);
	ASSERT_EQ((long)(present * PAGE / 512), blocks);
	snap_stats(_metadata, self->stats0);

	ASSERT_EQ(0, krs_inject("pause=before_recheck ino=%lu", file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)p));
	wait_paused(_metadata, &c, "before_recheck", 1);

	/* The collapse holds the present folios' locks, not the holes'. */
	krs_fill_page(p + hole * PAGE, 32, hole);

	finish(_metadata, &c, &o);
	check_point(_metadata, "before_recheck", 1);
	EXPECT_EQ(-EAGAIN, o.ret) TH_LOG("'%s': report:\n%s", c.cmd, c.report);
	EXPECT_STREQ("SCAN_PAGE_FILLED", o.result);
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1,
				"rollback_SCAN_PAGE_FILLED"));
	EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1, "SCAN_PAGE_FILLED"));
	EXPECT_EQ(0, stat_delta(_metadata, self->stats0, self->stats1, "extents_collapsed"));
	EXPECT_EQ(0, stat_delta(_metadata, self->stats0, self->stats1, "holes_filled"));

	/* Rolled back: nothing huge, the faulted page and all the rest intact. */
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(blocks + (long)(PAGE / 512), file_blocks(fd)) TH_LOG("holes were filled");
	for (size_t i = 0; i < NPAGES; i++) {
		int r = i == hole ? krs_pread_check(fd, 32, i) :
			i % step ? krs_pread_zero(fd, i) : krs_pread_check(fd, 31, i);

		ASSERT_EQ(0, r) TH_LOG("file page %zu wrong after the rollback", i);
	}
	EXPECT_EQ(0UL, krs_check_page(p + hole * PAGE, 32, hole));
	for (size_t i = 0; i < NPAGES; i += step) {
		size_t bad = krs_check_page(p + i * PAGE, 31, i);

		ASSERT_EQ(0UL, bad) TH_LOG("page %zu", i);
	}
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));

	/* The page cache is consistent: collapsing it now just works. */
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)p));
	ASSERT_EQ(0, krs_bg_collapse_join(&c, WAIT_MS));
	parse_outcome(_metadata, &c, &o);
	EXPECT_STREQ("SCAN_SUCCEED", o.result) TH_LOG("report:\n%s", c.report);
	EXPECT_EQ(present + 1, o.ext[0].copied);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0UL, krs_check_page(p + hole * PAGE, 32, hole));
	for (size_t i = 0; i < NPAGES; i++) {
		int r = i == hole ? krs_pread_check(fd, 32, i) :
			i % step ? krs_pread_zero(fd, i) : krs_pread_check(fd, 31, i);

		ASSERT_EQ(0, r) TH_LOG("file page %zu wrong after the collapse", i);
	}
	munmap(p, LEN);
	close(fd);
}

/*
 * 1b. The same race through userfaultfd: a MISSING registration appears on
 * another mapping while the collapse is paused (before_copy), and a fault
 * there is resolved by UFFDIO_COPY, which fills the hole. Either refusal is
 * right: SCAN_PAGE_FILLED (the hole count) or SCAN_EXCEED_NONE_PTE (the
 * MISSING registration). Rollback either way, the copied page kept.
 */
TEST_F(race, uffd_copy_fills_hole)
{
	const size_t step = 2, hole = 9, hole2 = 11;
	uint64_t src[PAGE / sizeof(uint64_t)];
	struct krs_uffd_handler h = { 0 };
	struct krs_bg_collapse c = { 0 };
	char name[64];
	struct outcome o;
	long blocks;
	char *a, *b;
	int fd, uffd, ret;

	uffd = krs_uffd_open(UFFD_FEATURE_MISSING_SHMEM);
	if (uffd < 0)
		SKIP(return, "userfaultfd with UFFD_FEATURE_MISSING_SHMEM: %s", strerror(-uffd));
	fd = krs_memfd("krs_race_ufill", LEN);
	ASSERT_LE(0, fd);
	a = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, a);
	b = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, b);
	fill(a, 33, step);
	blocks = file_blocks(fd);
	krs_fill_page(src, 34, hole);
	snap_stats(_metadata, self->stats0);

	ASSERT_EQ(0, krs_inject("pause=before_copy ino=%lu", file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)a));
	wait_paused(_metadata, &c, "before_copy", 1);

	ret = krs_uffd_register(uffd, b, LEN, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret) {
		finish(_metadata, &c, &o);
		SKIP(return, "UFFDIO_REGISTER_MODE_MISSING on shmem: %s", strerror(-ret));
	}
	h.uffd = uffd;
	h.how = KRS_UFFD_COPY;
	h.src = src;
	h.reg_addr = b;
	h.reg_len = LEN;
	ASSERT_EQ(0, krs_uffd_handler_start(&h));
	/* Reading the hole: the handler's UFFDIO_COPY puts a page there. */
	EXPECT_EQ(0UL, krs_check_page(b + hole * PAGE, 34, hole));
	EXPECT_EQ(1U, __atomic_load_n(&h.faults, __ATOMIC_SEQ_CST));

	finish(_metadata, &c, &o);
	check_point(_metadata, "before_copy", 1);
	EXPECT_TRUE(result_in(o.result, "SCAN_PAGE_FILLED SCAN_EXCEED_NONE_PTE"))
		TH_LOG("result %s, want SCAN_PAGE_FILLED or SCAN_EXCEED_NONE_PTE", o.result);
	EXPECT_EQ(!strcmp(o.result, "SCAN_PAGE_FILLED") ? -EAGAIN : -EBUSY, o.ret);
	snap_stats(_metadata, self->stats1);
	snprintf(name, sizeof(name), "rollback_%s", o.result);
	EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1, name));
	EXPECT_EQ(0, stat_delta(_metadata, self->stats0, self->stats1, "extents_collapsed"));

	EXPECT_EQ(0, smaps(a, "ShmemPmdMapped"));
	EXPECT_EQ(blocks + (long)(PAGE / 512), file_blocks(fd)) TH_LOG("holes were filled");
	for (size_t i = 0; i < NPAGES; i++) {
		int r = i == hole ? krs_pread_check(fd, 34, i) :
			i % step ? krs_pread_zero(fd, i) : krs_pread_check(fd, 33, i);

		ASSERT_EQ(0, r) TH_LOG("file page %zu wrong after the rollback", i);
	}
	EXPECT_EQ(0UL, krs_check_page(a + hole * PAGE, 34, hole));

	/* Another hole still reaches the handler. */
	EXPECT_EQ(0UL, krs_check_page(b + hole2 * PAGE, 34, hole));
	krs_uffd_handler_stop(&h);
	EXPECT_EQ(2U, h.faults);
	EXPECT_EQ((unsigned long)b + hole2 * PAGE, h.last_addr & ~(PAGE - 1));
	EXPECT_EQ(0, h.error) TH_LOG("resolving: %s", strerror(h.error));
	EXPECT_FALSE(h.timed_out);
	for (size_t i = 0; i < NPAGES; i += step) {
		size_t bad = krs_check_page(a + i * PAGE, 33, i);

		ASSERT_EQ(0UL, bad) TH_LOG("page %zu", i);
	}
	close(uffd);
	munmap(a, LEN);
	munmap(b, LEN);
	close(fd);
}

/*
 * 2. A MISSING registration appears on another mapping of the file while
 * the collapse is paused before copying: filling the holes with zeroes
 * would lose that user's faults, so the re-check refuses
 * (SCAN_EXCEED_NONE_PTE, EBUSY) and rolls back; a hole touched through
 * that mapping afterwards is still delivered to the handler.
 */
TEST_F(race, uffd_missing_registered_in_pause)
{
	const size_t step = 2, hole = 5;
	uint64_t src[PAGE / sizeof(uint64_t)];
	struct krs_uffd_handler h = { 0 };
	struct krs_bg_collapse c = { 0 };
	struct outcome o;
	long blocks;
	char *a, *b;
	int fd, uffd, ret;

	uffd = krs_uffd_open(UFFD_FEATURE_MISSING_SHMEM);
	if (uffd < 0)
		SKIP(return, "userfaultfd with UFFD_FEATURE_MISSING_SHMEM: %s", strerror(-uffd));
	fd = krs_memfd("krs_race_umiss", LEN);
	ASSERT_LE(0, fd);
	a = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, a);
	b = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, b);
	fill(a, 35, step);
	blocks = file_blocks(fd);
	krs_fill_page(src, 36, hole);
	snap_stats(_metadata, self->stats0);

	ASSERT_EQ(0, krs_inject("pause=before_copy ino=%lu", file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)a));
	wait_paused(_metadata, &c, "before_copy", 1);
	ret = krs_uffd_register(uffd, b, LEN, UFFDIO_REGISTER_MODE_MISSING, NULL);
	finish(_metadata, &c, &o);
	if (ret)
		SKIP(return, "UFFDIO_REGISTER_MODE_MISSING on shmem: %s", strerror(-ret));

	check_point(_metadata, "before_copy", 1);
	EXPECT_EQ(-EBUSY, o.ret) TH_LOG("'%s': report:\n%s", c.cmd, c.report);
	EXPECT_STREQ("SCAN_EXCEED_NONE_PTE", o.result);
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1,
				"rollback_SCAN_EXCEED_NONE_PTE"));
	EXPECT_EQ(0, stat_delta(_metadata, self->stats0, self->stats1, "extents_collapsed"));
	EXPECT_EQ(0, smaps(a, "ShmemPmdMapped"));
	EXPECT_EQ(blocks, file_blocks(fd)) TH_LOG("holes were filled behind the handler's back");
	EXPECT_EQ(0, bad_file_page(fd, 35, step));

	h.uffd = uffd;
	h.how = KRS_UFFD_COPY;
	h.src = src;
	h.reg_addr = b;
	h.reg_len = LEN;
	ASSERT_EQ(0, krs_uffd_handler_start(&h));
	EXPECT_EQ(0UL, krs_check_page(b + hole * PAGE, 36, hole))
		TH_LOG("the hole did not come from the handler");
	krs_uffd_handler_stop(&h);
	EXPECT_EQ(1U, h.faults) TH_LOG("the missing fault was not delivered");
	EXPECT_EQ((unsigned long)b + hole * PAGE, h.last_addr & ~(PAGE - 1));
	EXPECT_EQ(0, h.error) TH_LOG("resolving: %s", strerror(h.error));
	EXPECT_FALSE(h.timed_out);
	EXPECT_EQ(0, krs_pread_check(fd, 36, hole));
	for (size_t i = 0; i < NPAGES; i += step) {
		size_t bad = krs_check_page(a + i * PAGE, 35, i);

		ASSERT_EQ(0UL, bad) TH_LOG("page %zu", i);
	}
	close(uffd);
	munmap(a, LEN);
	munmap(b, LEN);
	close(fd);
}

struct nrec {
	bool end;
	char event[32];
	unsigned long start, stop;
	bool paired;
};

/* Parse the notifier log into @r (up to @max); returns the count or -1. */
static int parse_notifier(const char *log, struct nrec *r, int max, long *dropped)
{
	const char *line = log;
	long pid, events;
	int n = 0;

	if (sscanf(line, "pid=%ld events=%ld dropped=%ld", &pid, &events, dropped) != 3)
		return -1;
	while ((line = strchr(line, '\n')) && *++line) {
		char kind[8];

		if (n == max)
			return -1;
		if (sscanf(line, "%7s event=%31s start=0x%lx end=0x%lx", kind, r[n].event,
			   &r[n].start, &r[n].stop) != 4)
			return -1;
		r[n].end = !strcmp(kind, "end");
		r[n].paired = false;
		n++;
	}
	return n;
}

/* The start of the last `start` record spanning one PMD, or 0. */
static unsigned long last_pmd_start(const char *log)
{
	static struct nrec r[4096];
	long dropped;
	int n = parse_notifier(log, r, 4096, &dropped);

	while (n-- > 0) {
		if (!r[n].end)
			return r[n].stop - r[n].start == LEN ? r[n].start : 0;
	}
	return 0;
}

/*
 * 3. Seed 002: retraction takes no mmap lock, so UFFDIO_COPY can put an
 * anonymous page into a MAP_PRIVATE mapping's PTE table while the collapse
 * is between its first retractable check and the PMD lock (paused at
 * retract_vma on that VMA). The re-check under the PTE lock must keep that
 * table: the copied page stays mapped, with its data. Another shared VMA is
 * retracted; the writer's (untouched) mapping gets the PMD. The recording
 * MMU notifier shows one MMU_NOTIFY_CLEAR range of exactly 2 MiB for each
 * VMA the retraction went for, and every start has its end.
 */
TEST_F_TIMEOUT(race, retract_vs_uffd_copy_private, 60)
{
	static struct nrec rec[4096];
	const size_t k = 7;
	uint64_t src[PAGE / sizeof(uint64_t)];
	struct krs_bg_collapse c = { 0 };
	bool have_notifier, copied = false;
	int fd, uffd, ret, n;
	struct outcome o;
	char *r, *pv, *s;
	long dropped;

	uffd = krs_uffd_open(UFFD_FEATURE_MISSING_SHMEM);
	if (uffd < 0)
		SKIP(return, "userfaultfd with UFFD_FEATURE_MISSING_SHMEM: %s", strerror(-uffd));
	fd = krs_memfd("krs_race_priv", LEN);
	ASSERT_LE(0, fd);
	for (size_t i = 0; i < NPAGES; i++) {
		int r = krs_pwrite_page(fd, 41, i);

		ASSERT_EQ(0, r);
	}
	/* Mapped in this order: the retraction walks them in this order. */
	r = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, r);
	pv = krs_map_aligned(LEN, RW, MAP_PRIVATE, fd, 0);
	ASSERT_NE(MAP_FAILED, pv);
	s = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);	/* never touched: no table */
	ASSERT_NE(MAP_FAILED, s);
	ASSERT_EQ(0, bad_page(r, 41, 1));
	ASSERT_EQ(0, bad_page(pv, 41, 1));
	ASSERT_EQ(2048, smaps(r, "Rss"));
	ASSERT_EQ(2048, smaps(pv, "Rss"));
	ASSERT_EQ(0, smaps(pv, "Anonymous"));
	ret = krs_uffd_register(uffd, pv, LEN, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret)
		SKIP(return, "UFFDIO_REGISTER_MODE_MISSING on shmem: %s", strerror(-ret));
	krs_fill_page(src, 42, k);

	have_notifier = !access(KRS_NOTIFIER, W_OK);
	if (have_notifier)
		ASSERT_EQ(0, krs_notifier("pid=%d", getpid()));
	if (!have_notifier)
		TH_LOG("no %s: the pause on the private VMA is found by tree order", KRS_NOTIFIER);
	snap_stats(_metadata, self->stats0);
	ASSERT_EQ(0, krs_inject("pause=retract_vma ino=%lu count=2", file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)s));

	for (unsigned int hit = 1; hit <= 2; hit++) {
		bool at_private;

		wait_paused(_metadata, &c, "retract_vma", hit);
		if (have_notifier) {
			ASSERT_LT(0, krs_notifier_read(self->log, sizeof(self->log)));
			at_private = last_pmd_start(self->log) == (unsigned long)pv;
		} else {
			at_private = hit == 2;
		}
		if (at_private) {
			struct uffdio_copy cp = {
				.dst = (uintptr_t)pv + k * PAGE,
				.src = (uintptr_t)src,
				.len = PAGE,
			};

			ret = ioctl(uffd, UFFDIO_COPY, &cp);
			EXPECT_EQ(0, ret)
				TH_LOG("UFFDIO_COPY during the pause: %s", strerror(errno));
			copied = !ret;
			/* It is mapped in the table the retraction is about to remove. */
			EXPECT_EQ(4, smaps(pv, "Anonymous"));
		}
		ASSERT_EQ(0, krs_inject("release"));
	}
	ASSERT_TRUE(copied) TH_LOG("never paused on the private VMA");
	ASSERT_EQ(0, krs_bg_collapse_join(&c, WAIT_MS));
	parse_outcome(_metadata, &c, &o);
	check_point(_metadata, "retract_vma", 2);
	EXPECT_EQ((ssize_t)strlen(c.cmd), o.ret) TH_LOG("report:\n%s", c.report);
	EXPECT_STREQ("SCAN_SUCCEED", o.result);
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1, "extents_collapsed"));
	EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1, "vmas_retracted"))
		TH_LOG("only the shared read-only VMA may lose its table");

	/* The private VMA kept its table and the copied page. */
	EXPECT_EQ(4, smaps(pv, "Anonymous")) TH_LOG("the UFFDIO_COPY page was lost");
	EXPECT_LE(4, smaps(pv, "Rss"));
	EXPECT_EQ(0UL, krs_check_page(pv + k * PAGE, 42, k)) TH_LOG("copied data lost");
	for (size_t i = 0; i < NPAGES; i++) {
		size_t bad;

		if (i == k)
			continue;
		bad = krs_check_page(pv + i * PAGE, 41, i);
		ASSERT_EQ(0UL, bad) TH_LOG("private page %zu", i);
	}
	EXPECT_EQ(0, smaps(pv, "ShmemPmdMapped"));
	EXPECT_EQ(4, smaps(pv, "Anonymous"));
	EXPECT_EQ(0, krs_pread_check(fd, 41, k)) TH_LOG("the private copy reached the file");

	/* The shared read-only VMA was retracted, the writer's got the PMD. */
	EXPECT_EQ(0, smaps(r, "Rss"));
	EXPECT_EQ(0, bad_page(r, 41, 1));
	EXPECT_EQ(2048, smaps(r, "ShmemPmdMapped"));
	EXPECT_EQ(2048, smaps(s, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(s, 41, 1));

	if (have_notifier) {
		int r_starts = 0, pv_starts = 0, unpaired = 0;

		ASSERT_LT(0, krs_notifier_read(self->log, sizeof(self->log)));
		ASSERT_EQ(0, krs_notifier("stop"));
		n = parse_notifier(self->log, rec, 4096, &dropped);
		ASSERT_LE(0, n) TH_LOG("malformed notifier log");
		EXPECT_EQ(0, dropped);
		for (int i = 0; i < n; i++) {
			if (rec[i].end)
				continue;
			if (!strcmp(rec[i].event, "MMU_NOTIFY_CLEAR") &&
			    rec[i].stop - rec[i].start == LEN) {
				r_starts += rec[i].start == (unsigned long)r;
				pv_starts += rec[i].start == (unsigned long)pv;
			}
			for (int j = i + 1; j < n; j++) {
				if (rec[j].end && !rec[j].paired && rec[j].start == rec[i].start &&
				    rec[j].stop == rec[i].stop &&
				    !strcmp(rec[j].event, rec[i].event)) {
					rec[j].paired = true;
					rec[i].paired = true;
					break;
				}
			}
			if (!rec[i].paired) {
				unpaired++;
				TH_LOG("unpaired start event=%s start=%#lx end=%#lx", rec[i].event,
				       rec[i].start, rec[i].stop);
			}
		}
		for (int i = 0; i < n; i++) {
			if (rec[i].end && !rec[i].paired) {
				unpaired++;
				TH_LOG("unpaired end event=%s start=%#lx end=%#lx", rec[i].event,
				       rec[i].start, rec[i].stop);
			}
		}
		EXPECT_EQ(0, unpaired);
		EXPECT_EQ(1, r_starts) TH_LOG("MMU_NOTIFY_CLEAR of the retracted VMA's 2 MiB");
		EXPECT_EQ(1, pv_starts) TH_LOG("MMU_NOTIFY_CLEAR of the private VMA's 2 MiB");
	}
	close(uffd);
	munmap(r, LEN);
	munmap(pv, LEN);
	munmap(s, LEN);
	close(fd);
}

/*
 * 4. uffd-wp registered on one of two mappings while the collapse is
 * paused before copying (after the scan unmapped every PTE): the wp
 * markers go into that VMA's table, which retraction must keep. The other
 * mapping gets the PMD; a write through the wp one still faults to the
 * handler.
 */
TEST_F(race, uffd_wp_registered_in_pause)
{
	struct krs_uffd_handler h = { 0 };
	struct krs_bg_collapse c = { 0 };
	struct outcome o;
	char *a, *w;
	int fd, uffd, ret;

	uffd = krs_uffd_open(UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	if (uffd < 0)
		SKIP(return, "userfaultfd with WP_HUGETLBFS_SHMEM: %s", strerror(-uffd));
	fd = krs_memfd("krs_race_wp", LEN);
	ASSERT_LE(0, fd);
	a = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, a);
	w = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, w);
	fill(a, 61, 1);
	ASSERT_EQ(0, bad_page(w, 61, 1));
	ASSERT_EQ(2048, smaps(w, "Rss"));

	ASSERT_EQ(0, krs_inject("pause=before_copy ino=%lu", file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)a));
	wait_paused(_metadata, &c, "before_copy", 1);
	EXPECT_EQ(0, smaps(w, "Rss")) TH_LOG("the scan left PTEs in the other mapping");
	ret = krs_uffd_register(uffd, w, LEN, UFFDIO_REGISTER_MODE_WP, NULL);
	if (!ret)
		ret = krs_uffd_wp(uffd, w, LEN, true);
	if (ret) {
		finish(_metadata, &c, &o);
		SKIP(return, "uffd-wp on shmem: %s", strerror(-ret));
	}
	finish(_metadata, &c, &o);
	check_point(_metadata, "before_copy", 1);
	EXPECT_EQ((ssize_t)strlen(c.cmd), o.ret) TH_LOG("report:\n%s", c.report);
	EXPECT_STREQ("SCAN_SUCCEED", o.result);
	EXPECT_EQ(2048, smaps(a, "ShmemPmdMapped"));

	h.uffd = uffd;
	h.how = KRS_UFFD_WP_CLEAR;
	h.reg_addr = w;
	h.reg_len = LEN;
	ASSERT_EQ(0, krs_uffd_handler_start(&h));
	/* Reads: right data, PTE-mapped (the table with the markers stayed). */
	EXPECT_EQ(0, bad_page(w, 61, 1));
	EXPECT_EQ(0, smaps(w, "ShmemPmdMapped")) TH_LOG("the uffd-wp VMA lost its page table");
	EXPECT_EQ(2048, smaps(w, "Rss"));
	EXPECT_EQ(0U, __atomic_load_n(&h.faults, __ATOMIC_SEQ_CST));
	/* A write still raises a WP fault. */
	krs_fill_page(w + 3 * PAGE, 62, 3);
	EXPECT_EQ(1U, __atomic_load_n(&h.wp_faults, __ATOMIC_SEQ_CST))
		TH_LOG("a write to the uffd-wp VMA was not delivered as a WP fault");
	krs_fill_page(w + 500 * PAGE, 62, 500);
	krs_uffd_handler_stop(&h);
	EXPECT_EQ(2U, h.wp_faults);
	EXPECT_EQ(2U, h.faults);
	EXPECT_EQ(0, h.error) TH_LOG("resolving: %s", strerror(h.error));
	EXPECT_FALSE(h.timed_out);
	EXPECT_EQ(0UL, krs_check_page(a + 3 * PAGE, 62, 3));
	EXPECT_EQ(0, krs_pread_check(fd, 62, 500));
	EXPECT_EQ(0, krs_pread_check(fd, 61, 4));
	EXPECT_EQ(2048, smaps(a, "ShmemPmdMapped"));
	close(uffd);
	munmap(a, LEN);
	munmap(w, LEN);
	close(fd);
}

/* ---- install: the VMA changes (or its process exits) before the PMD ---- */

enum install_op { OP_MUNMAP, OP_SHRINK, OP_MREMAP, OP_MPROTECT, OP_REPLACE, OP_EXIT };

FIXTURE(install) {
	int unused;
};

FIXTURE_VARIANT(install) {
	enum install_op op;
	/* Results that are right for the new state (space-separated). */
	const char *results;
};

/* Gone: vma_lookup() finds nothing at the address (SCAN_VMA_CHECK upstream). */
FIXTURE_VARIANT_ADD(install, munmap) {
	.op = OP_MUNMAP, .results = "SCAN_VMA_CHECK SCAN_VMA_NULL",
};

/* Shrunk to 1 MiB (seed 001: vm_end changed): the VMA no longer covers the extent. */
FIXTURE_VARIANT_ADD(install, shrunk) {
	.op = OP_SHRINK, .results = "SCAN_VMA_CHECK SCAN_ADDRESS_RANGE",
};

/* Moved: nothing left at the old address; the new one faults the PMD in. */
FIXTURE_VARIANT_ADD(install, mremap) {
	.op = OP_MREMAP, .results = "SCAN_VMA_CHECK SCAN_VMA_NULL",
};

/* PROT_NONE: still the same file VMA; mapping it PROT_NONE or refusing are both fine. */
FIXTURE_VARIANT_ADD(install, mprotect_none) {
	.op = OP_MPROTECT, .results = "SCAN_SUCCEED SCAN_VMA_CHECK",
};

/*
 * Replaced by another memfd at the same address (seed 001's "freed and
 * reallocated at the same address"): its page cache is small pages, so
 * the install must refuse; above all it must not map our huge page there.
 */
FIXTURE_VARIANT_ADD(install, replaced_by_other_file) {
	.op = OP_REPLACE,
	.results = "SCAN_PAGE_COMPOUND SCAN_VMA_CHECK SCAN_PAGE_NULL SCAN_FAIL",
};

/*
 * pid= of a child that exits during the pause: the request holds mm_users
 * (as process_madvise does), so the mm outlives the exit and the install
 * may succeed, torn down with the mm; or refused as an exiting mm.
 */
FIXTURE_VARIANT_ADD(install, target_process_exits) {
	.op = OP_EXIT, .results = "SCAN_SUCCEED SCAN_ANY_PROCESS",
};

FIXTURE_SETUP(install)
{
	race_common_setup(_metadata);
}

FIXTURE_TEARDOWN(install)
{
	RACE_TEARDOWN();
}

/* Grandchild for OP_EXIT: map and fill the memfd, send the address, exit on request. */
static int exit_child(int in, int out, void *arg)
{
	int fd = *(int *)arg;
	char *p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	unsigned long addr = p == MAP_FAILED ? 0 : (unsigned long)p;
	char x;

	if (addr)
		fill(p, 51, 1);
	krs_send(out, &addr, sizeof(addr));
	krs_recv(in, &x, 1, 30000);
	return 0;
}

/* Map @fd anywhere aligned: data must be seed 51 and PMD-mapped after touching. */
static const char *check_huge_cache(int fd)
{
	static char msg[128];
	char *q = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	long kb;
	int bad;

	if (q == MAP_FAILED)
		return "mmap failed";
	bad = bad_page(q, 51, 1);
	kb = smaps(q, "ShmemPmdMapped");
	munmap(q, LEN);
	if (bad) {
		snprintf(msg, sizeof(msg), "page %d wrong through a new mapping", bad - 1);
		return msg;
	}
	if (kb != 2048) {
		snprintf(msg, sizeof(msg), "a new mapping has ShmemPmdMapped %ld kB: %s", kb,
			 "no huge page");
		return msg;
	}
	return NULL;
}

/*
 * The scenario, in a child process of its own so that the parent can
 * compare memory counters before it and after it exited.
 */
static int install_child(int in, int out, void *varg)
{
	const struct _fixture_variant_install *v = varg;	/* FIXTURE_VARIANT(install) */
	struct krs_child g = { .pid = 0, .to_child = -1, .from_child = -1 };
	struct krs_bg_collapse c = { 0 };
	struct krs_extent ext[MAX_EXTENTS];
	struct krs_inject_state st;
	unsigned long addr = 0, start;
	int fd, fd2 = -1, nr, ret;
	pid_t gpid;
	const char *why;
	char *p = NULL, *q = NULL;
	size_t len;
	long status;

	fd = krs_memfd("krs_race_install", LEN);
	if (fd < 0) {
		krs_send_msg(out, "memfd: %s", strerror(-fd));
		goto out;
	}
	if (v->op == OP_EXIT) {
		if (krs_child_start(&g, exit_child, &fd)) {
			krs_send_msg(out, "fork");
			goto out;
		}
		if (krs_recv(g.from_child, &addr, sizeof(addr), WAIT_MS) || !addr) {
			krs_send_msg(out, "grandchild did not map the memfd");
			goto out;
		}
		if (krs_inject("pause=before_install pid=%d", getpid())) {
			krs_send_msg(out, "arming before_install");
			goto out;
		}
		if (krs_bg_collapse_start(&c, "pid=%d addr=%lx len=2M", g.pid, addr)) {
			krs_send_msg(out, "thread");
			goto out;
		}
	} else {
		p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			krs_send_msg(out, "mmap: %s", strerror(errno));
			goto out;
		}
		fill(p, 51, 1);
		if (krs_inject("pause=before_install ino=%lu", file_ino(fd))) {
			krs_send_msg(out, "arming before_install");
			goto out;
		}
		if (krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)p)) {
			krs_send_msg(out, "thread");
			goto out;
		}
	}
	ret = krs_inject_wait_paused("before_install", 1, WAIT_MS, &c.done);
	if (ret) {
		krs_send_msg(out, "no pause at before_install: %s; report: %s", strerror(-ret),
			     c.report);
		goto out;
	}

	switch (v->op) {
	case OP_MUNMAP:
		if (munmap(p, LEN)) {
			krs_send_msg(out, "munmap: %s", strerror(errno));
			goto out;
		}
		p = NULL;
		break;
	case OP_SHRINK:
		if (munmap(p + LEN / 2, LEN / 2)) {
			krs_send_msg(out, "munmap: %s", strerror(errno));
			goto out;
		}
		break;
	case OP_MREMAP:
		if (krs_unmapped_range(LEN, &start, &len)) {
			krs_send_msg(out, "no free 2 MiB range");
			goto out;
		}
		q = mremap(p, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)start);
		if (q == MAP_FAILED) {
			krs_send_msg(out, "mremap: %s", strerror(errno));
			goto out;
		}
		p = NULL;
		break;
	case OP_MPROTECT:
		if (mprotect(p, LEN, PROT_NONE)) {
			krs_send_msg(out, "mprotect: %s", strerror(errno));
			goto out;
		}
		break;
	case OP_REPLACE:
		fd2 = krs_memfd("krs_race_other", LEN);
		if (fd2 < 0) {
			krs_send_msg(out, "memfd: %s", strerror(-fd2));
			goto out;
		}
		for (size_t i = 0; i < NPAGES; i++) {
			if (krs_pwrite_page(fd2, 52, i)) {
				krs_send_msg(out, "pwrite");
				goto out;
			}
		}
		if (mmap(p, LEN, RW, MAP_SHARED | MAP_FIXED, fd2, 0) != p) {
			krs_send_msg(out, "mmap over: %s", strerror(errno));
			goto out;
		}
		break;
	case OP_EXIT:
		if (krs_send(g.to_child, "x", 1)) {
			krs_send_msg(out, "telling the grandchild to exit");
			goto out;
		}
		gpid = g.pid;
		ret = krs_child_wait(&g);
		if (ret) {
			krs_send_msg(out, "grandchild exited with %d", ret);
			goto out;
		}
		if (!kill(gpid, 0) || errno != ESRCH) {
			krs_send_msg(out, "the grandchild still exists");
			goto out;
		}
		break;
	}

	if (krs_inject("release")) {
		krs_send_msg(out, "release");
		goto out;
	}
	if (krs_bg_collapse_join(&c, WAIT_MS)) {
		krs_send_msg(out, "collapse still running after the release");
		goto out;
	}
	if (krs_inject_state("before_install", &st) || st.hits != 1 || st.timeouts) {
		krs_send_msg(out, "before_install: hits %u timeouts %u", st.hits, st.timeouts);
		goto out;
	}
	nr = krs_report_parse(c.report, ext, MAX_EXTENTS, &status);
	if (nr != 1 || status != c.ret) {
		krs_send_msg(out, "'%s': bad report: %s", c.cmd, c.report);
		goto out;
	}
	if (!result_in(ext[0].result, v->results)) {
		krs_send_msg(out, "'%s': result %s, want one of: %s", c.cmd, ext[0].result,
			     v->results);
		goto out;
	}
	fprintf(stderr, "# %s\n", ext[0].result);
	if (!strcmp(ext[0].result, "SCAN_SUCCEED") ? c.ret != (ssize_t)strlen(c.cmd) :
						    c.ret >= 0) {
		krs_send_msg(out, "'%s': %s but write() returned %zd", c.cmd, ext[0].result, c.ret);
		goto out;
	}

	/* The page cache is huge and holds the data, whatever the install did. */
	ret = bad_file_page(fd, 51, 1);
	if (ret) {
		krs_send_msg(out, "file page %d wrong", ret - 1);
		goto out;
	}
	switch (v->op) {
	case OP_SHRINK:
		if (smaps(p, "ShmemPmdMapped") != 0) {
			krs_send_msg(out, "a PMD mapped over a 1 MiB VMA");
			goto out;
		}
		for (size_t i = 0; i < NPAGES / 2; i++) {
			if (krs_check_page(p + i * PAGE, 51, i)) {
				krs_send_msg(out, "shrunk mapping: page %zu wrong", i);
				goto out;
			}
		}
		if (smaps(p + LEN / 2, "Rss") != -1) {
			krs_send_msg(out, "something is mapped where the VMA was cut off");
			goto out;
		}
		munmap(p, LEN / 2);
		p = NULL;
		break;
	case OP_MREMAP:
		ret = bad_page(q, 51, 1);
		if (ret) {
			krs_send_msg(out, "moved mapping: page %d wrong", ret - 1);
			goto out;
		}
		if (smaps(q, "ShmemPmdMapped") != 2048) {
			krs_send_msg(out, "moved mapping: ShmemPmdMapped %ld kB",
				     smaps(q, "ShmemPmdMapped"));
			goto out;
		}
		break;
	case OP_MPROTECT:
		if (mprotect(p, LEN, RW)) {
			krs_send_msg(out, "mprotect back: %s", strerror(errno));
			goto out;
		}
		ret = bad_page(p, 51, 1);
		if (ret) {
			krs_send_msg(out, "page %d wrong after PROT_NONE and back", ret - 1);
			goto out;
		}
		if (smaps(p, "ShmemPmdMapped") != 2048) {
			krs_send_msg(out, "ShmemPmdMapped %ld kB", smaps(p, "ShmemPmdMapped"));
			goto out;
		}
		break;
	case OP_REPLACE:
		if (smaps(p, "ShmemPmdMapped") != 0) {
			krs_send_msg(out, "the replacing mapping got a PMD");
			goto out;
		}
		ret = bad_page(p, 52, 1);
		if (ret) {
			krs_send_msg(out, "the replacing mapping shows page %d wrong %s", ret - 1,
				     "(the collapsed file?)");
			goto out;
		}
		break;
	default:
		break;
	}
	why = check_huge_cache(fd);
	if (why) {
		krs_send_msg(out, "%s", why);
		goto out;
	}
	krs_send_msg(out, "ok");
out:
	if (c.running) {
		krs_inject("clear");
		krs_bg_collapse_join(&c, WAIT_MS);
	}
	if (g.pid > 0)
		krs_child_wait(&g);
	if (p)
		munmap(p, LEN);
	if (q && q != MAP_FAILED)
		munmap(q, LEN);
	if (fd2 >= 0)
		close(fd2);
	if (fd >= 0)
		close(fd);
	return 0;
}

struct memcounters {
	long shmem, shmem_huge, page_tables;
};

static void read_counters(struct memcounters *m)
{
	krs_vm_stat_refresh();
	m->shmem = krs_meminfo_kb("Shmem");
	m->shmem_huge = krs_meminfo_kb("ShmemHugePages");
	m->page_tables = krs_meminfo_kb("PageTables");
}

static bool same_counters(const struct memcounters *a, const struct memcounters *b)
{
	return a->shmem == b->shmem && a->shmem_huge == b->shmem_huge &&
	       a->page_tables == b->page_tables;
}

/*
 * The baseline, once what earlier tests freed (page tables go after an RCU
 * grace period) has settled: the same counters 200 ms apart, within 5 s.
 */
static void settled_counters(struct memcounters *m)
{
	struct memcounters prev;

	read_counters(&prev);
	for (int i = 0; i < 25; i++) {
		usleep(200 * 1000);
		read_counters(m);
		if (same_counters(m, &prev))
			return;
		prev = *m;
	}
}

/*
 * 5. munmap / mremap / mprotect / replacement / exit of the target while
 * the collapse is paused before installing the PMD (page cache already
 * huge, no mmap lock held): no crash, a result consistent with the new
 * state, and once the scenario's process and memfd are gone, Shmem,
 * ShmemHugePages and PageTables are back where they were.
 */
TEST_F_TIMEOUT(install, before_install, 120)
{
	struct memcounters first, last, m0, m1;

	/*
	 * PageTables moves by a table now and then without any leak (it also
	 * counts kernel page tables; a freed table may be accounted late), so
	 * one run cannot tell a leaked table from noise; a leak shows in every
	 * run: three runs, and the growth over them must stay within one table.
	 */
	settled_counters(&first);
	ASSERT_LE(0, first.shmem);
	ASSERT_LE(0, first.shmem_huge);
	ASSERT_LE(0, first.page_tables);
	for (int run = 0; run < 3; run++) {
		struct krs_child child = { .to_child = -1, .from_child = -1 };
		char msg[KRS_MSG_SIZE] = { 0 };

		settled_counters(&m0);
		ASSERT_EQ(0, krs_child_start(&child, install_child, (void *)variant));
		EXPECT_EQ(0, krs_recv(child.from_child, msg, sizeof(msg), 3 * WAIT_MS));
		ASSERT_STREQ("ok", msg);
		ASSERT_EQ(0, krs_child_wait(&child));

		/* Page tables are freed after an RCU grace period: give it time. */
		for (int i = 0; i < 60; i++) {
			read_counters(&m1);
			if (same_counters(&m1, &m0))
				break;
			usleep(50 * 1000);
		}
		ASSERT_EQ(m0.shmem, m1.shmem) TH_LOG("Shmem leaked");
		ASSERT_EQ(m0.shmem_huge, m1.shmem_huge) TH_LOG("ShmemHugePages leaked");
		if (m0.page_tables != m1.page_tables)
			TH_LOG("run %d: PageTables %ld kB before, %ld kB after", run,
			       m0.page_tables, m1.page_tables);
	}
	settled_counters(&last);
	EXPECT_EQ(first.shmem, last.shmem);
	EXPECT_EQ(first.shmem_huge, last.shmem_huge);
	EXPECT_GE(4, last.page_tables - first.page_tables)
		TH_LOG("PageTables grew from %ld kB to %ld kB over 3 runs: leaked",
		       first.page_tables, last.page_tables);
}

/* ---- trunc: truncate and hole punch while the collapse is paused -------- */

enum trunc_op { OP_TRUNCATE, OP_PUNCH };

FIXTURE(trunc) {
	int fd;
	enum trunc_op op;
	off_t off, len;
	int ret;
	int done;
	pid_t tid;
};

FIXTURE_VARIANT(trunc) {
	const char *point;
	enum trunc_op op;
	off_t off;		/* new size, or start of the punched range */
	off_t len;		/* length punched */
	bool blocks;		/* waits for the collapse (a locked old folio is in range) */
	const char *results;
};

/*
 * Paused after isolating page 0: truncating to 0 removes pages 1..511
 * (unlocked) at once and sleeps on page 0's lock, holding a reference to
 * it, which the reference check after the pause sees: SCAN_PAGE_COUNT
 * (EAGAIN), rolled back; then the truncate completes.
 */
FIXTURE_VARIANT_ADD(trunc, to_zero_at_scan_index) {
	.point = "scan_index", .op = OP_TRUNCATE, .off = 0, .blocks = true,
	.results = "SCAN_PAGE_COUNT",
};

/* Every old page locked: the truncate waits for the whole collapse. */
FIXTURE_VARIANT_ADD(trunc, to_zero_before_copy) {
	.point = "before_copy", .op = OP_TRUNCATE, .off = 0, .blocks = true,
	.results = "SCAN_SUCCEED SCAN_PAGE_NULL SCAN_TRUNCATED",
};

/*
 * Truncating to 1 MiB needs no lock the collapse holds: it completes in
 * the pause; the collapse then sees 256 holes (beyond EOF, zero-filled) or
 * refuses the truncated extent.
 */
FIXTURE_VARIANT_ADD(trunc, to_half_at_scan_index) {
	.point = "scan_index", .op = OP_TRUNCATE, .off = LEN / 2, .blocks = false,
	.results = "SCAN_SUCCEED SCAN_TRUNCATED",
};

/* A hole punched in the pause (pages not yet locked) becomes 128 zeroed holes. */
FIXTURE_VARIANT_ADD(trunc, punch_at_scan_index) {
	.point = "scan_index", .op = OP_PUNCH, .off = LEN / 2, .len = LEN / 4, .blocks = false,
	.results = "SCAN_SUCCEED",
};

/* A hole punched over locked pages waits, then zeroes (or splits) the huge page. */
FIXTURE_VARIANT_ADD(trunc, punch_before_copy) {
	.point = "before_copy", .op = OP_PUNCH, .off = LEN / 2, .len = LEN / 4, .blocks = true,
	.results = "SCAN_SUCCEED SCAN_PAGE_NULL SCAN_PAGE_COMPOUND SCAN_TRUNCATED",
};

FIXTURE_SETUP(trunc)
{
	self->fd = -1;
	race_common_setup(_metadata);
}

FIXTURE_TEARDOWN(trunc)
{
	RACE_TEARDOWN();
	if (self->fd >= 0)
		close(self->fd);
}

static void *trunc_fn(void *arg)
{
	struct _test_data_trunc *t = arg;	/* FIXTURE_DATA(trunc) */
	int ret;

	__atomic_store_n(&t->tid, gettid(), __ATOMIC_SEQ_CST);
	if (t->op == OP_TRUNCATE)
		ret = ftruncate(t->fd, t->off);
	else
		ret = fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, t->off, t->len);
	t->ret = ret ? errno : 0;
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * 6. ftruncate / fallocate(PUNCH_HOLE) in a second thread while the
 * collapse is paused at scan_index or before_copy; after the release the
 * file is exactly what the truncate or punch made of it.
 */
TEST_F_TIMEOUT(trunc, while_paused, 60)
{
	const size_t first = variant->off / PAGE, last = (variant->off + variant->len) / PAGE;
	struct krs_bg_collapse c = { 0 };
	struct krs_inject_state st;
	struct outcome o;
	pthread_t thread;
	struct stat sb;
	char *p;

	self->fd = krs_memfd("krs_race_trunc", LEN);
	ASSERT_LE(0, self->fd);
	self->op = variant->op;
	self->off = variant->off;
	self->len = variant->len;
	p = krs_map_aligned(LEN, RW, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 81, 1);

	ASSERT_EQ(0, krs_inject("pause=%s ino=%lu", variant->point, file_ino(self->fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)p));
	wait_paused(_metadata, &c, variant->point, 1);
	ASSERT_EQ(0, pthread_create(&thread, NULL, trunc_fn, self));
	if (variant->blocks) {
		/* The old folios' locks hold it until the collapse is done. */
		EXPECT_TRUE(wait_blocked(&self->tid, WAIT_MS))
			TH_LOG("%s did not block on the collapse's folio locks",
			       variant->op == OP_TRUNCATE ? "ftruncate" : "hole punch");
		EXPECT_FALSE(__atomic_load_n(&self->done, __ATOMIC_SEQ_CST));
	} else {
		EXPECT_TRUE(wait_flag(&self->done, WAIT_MS))
			TH_LOG("blocked on a lock the paused collapse should not hold");
		ASSERT_EQ(0, krs_inject_state(variant->point, &st));
		EXPECT_EQ(1U, st.waiting) TH_LOG("the collapse was not paused all along");
	}
	finish(_metadata, &c, &o);
	ASSERT_TRUE(wait_flag(&self->done, WAIT_MS)) TH_LOG("still blocked after the collapse");
	pthread_join(thread, NULL);
	EXPECT_EQ(0, self->ret) TH_LOG("%s", strerror(self->ret));
	check_point(_metadata, variant->point, 1);
	EXPECT_TRUE(result_in(o.result, variant->results))
		TH_LOG("result %s, want one of: %s", o.result, variant->results);
	EXPECT_EQ(!strcmp(o.result, "SCAN_SUCCEED"), o.ret == (ssize_t)strlen(c.cmd))
		TH_LOG("%s but write() returned %zd", o.result, o.ret);
	if (!strcmp(o.result, "SCAN_PAGE_COUNT"))
		EXPECT_EQ(-EAGAIN, o.ret);
	TH_LOG("%s", o.result);

	ASSERT_EQ(0, fstat(self->fd, &sb));
	if (variant->op == OP_TRUNCATE) {
		char byte;

		EXPECT_EQ(variant->off, sb.st_size);
		if (!variant->off)
			EXPECT_EQ(0, sb.st_blocks) TH_LOG("blocks left after truncating to 0");
		for (size_t i = 0; i < first; i++) {
			int r = krs_pread_check(self->fd, 81, i);

			ASSERT_EQ(0, r) TH_LOG("page %zu", i);
		}
		EXPECT_EQ(0, pread(self->fd, &byte, 1, variant->off)) TH_LOG("data beyond EOF");
		/* Extended again: what was truncated reads as zeroes. */
		ASSERT_EQ(0, ftruncate(self->fd, LEN));
		for (size_t i = first; i < NPAGES; i++) {
			int r = krs_pread_zero(self->fd, i);

			ASSERT_EQ(0, r) TH_LOG("page %zu came back", i);
		}
		for (size_t i = 0; i < NPAGES; i++) {
			size_t bad = i < first ? krs_check_page(p + i * PAGE, 81, i) :
						 !krs_page_is_zero(p + i * PAGE);

			ASSERT_EQ(0UL, bad) TH_LOG("mapped page %zu", i);
		}
	} else {
		EXPECT_EQ(LEN, (size_t)sb.st_size);
		EXPECT_TRUE(sb.st_blocks == (long)(LEN / 512) ||
			    sb.st_blocks == (long)((LEN - variant->len) / 512))
			TH_LOG("st_blocks %ld", (long)sb.st_blocks);
		if (!variant->blocks && !strcmp(o.result, "SCAN_SUCCEED")) {
			EXPECT_EQ(NPAGES - (last - first), o.ext[0].copied);
			EXPECT_EQ(last - first, o.ext[0].holes);
		}
		for (size_t i = 0; i < NPAGES; i++) {
			int r = i >= first && i < last ? krs_pread_zero(self->fd, i) :
				krs_pread_check(self->fd, 81, i);

			ASSERT_EQ(0, r) TH_LOG("file page %zu", i);
		}
		for (size_t i = 0; i < NPAGES; i++) {
			size_t bad = i >= first && i < last ? !krs_page_is_zero(p + i * PAGE) :
							      krs_check_page(p + i * PAGE, 81, i);

			ASSERT_EQ(0UL, bad) TH_LOG("mapped page %zu", i);
		}
	}
	munmap(p, LEN);
}

/* ---- fail: each fail-once point rolls back to exactly the old state ---- */

FIXTURE(fail) {
	char stats0[STATS_SIZE];
	char stats1[STATS_SIZE];
};

FIXTURE_VARIANT(fail) {
	const char *point;
	const char *result;
	int err;
	const char *vmstat;	/* a /proc/vmstat event counted once, as upstream */
	const char *mthp;	/* and the per-size stat of hugepages-2048kB */
	bool counted;		/* a collapse under way: rollback_<result> + 1 */
	bool unmapped;		/* reached after the scan unmapped the old pages */
};

FIXTURE_VARIANT_ADD(fail, alloc) {
	.point = "alloc", .result = "SCAN_ALLOC_HUGE_PAGE_FAIL", .err = ENOMEM,
	.vmstat = "thp_collapse_alloc_failed", .mthp = "collapse_alloc_failed",
};

/* alloc_charge_folio() counts the allocation before the charge fails. */
FIXTURE_VARIANT_ADD(fail, charge) {
	.point = "charge", .result = "SCAN_CGROUP_CHARGE_FAIL", .err = EBUSY,
	.vmstat = "thp_collapse_alloc", .mthp = "collapse_alloc",
};

FIXTURE_VARIANT_ADD(fail, xas_nomem) {
	.point = "xas_nomem", .result = "SCAN_FAIL", .err = EINVAL, .counted = true,
};

FIXTURE_VARIANT_ADD(fail, shmem_charge) {
	.point = "shmem_charge", .result = "SCAN_FAIL", .err = EINVAL, .counted = true,
	.unmapped = true,
};

FIXTURE_VARIANT_ADD(fail, copy_mc) {
	.point = "copy_mc", .result = "SCAN_COPY_MC", .err = EINVAL, .counted = true,
	.unmapped = true,
};

FIXTURE_SETUP(fail)
{
	race_common_setup(_metadata);
}

FIXTURE_TEARDOWN(fail)
{
	RACE_TEARDOWN();
}

/*
 * 7. A fail-once point (on a file with holes, so that every point is
 * reached): the matching result and errno, and the page cache as before:
 * contents, st_blocks, Shmem, no PMD; the same Rss once the pages the scan
 * unmapped are touched again. Then the collapse succeeds.
 */
TEST_F(fail, once)
{
	const size_t step = 2, present = NPAGES / step;
	struct krs_bg_collapse c = { 0 };
	struct krs_inject_state st;
	long blocks, rss, shmem, events, mthp = 0;
	char name[128];
	struct outcome o;
	char *p;
	int fd;

	fd = krs_memfd("krs_race_fail", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 91, step);
	blocks = file_blocks(fd);
	rss = smaps(p, "Rss");
	ASSERT_EQ((long)(present * PAGE / 1024), rss);
	krs_vm_stat_refresh();
	shmem = krs_meminfo_kb("Shmem");
	snap_stats(_metadata, self->stats0);
	events = variant->vmstat ? krs_vmstat(variant->vmstat) : 0;
	snprintf(name, sizeof(name), MTHP_STATS "%s", variant->mthp ? variant->mthp : "");
	if (variant->mthp)
		mthp = mthp_read(name);

	ASSERT_EQ(0, krs_inject("fail=%s ino=%lu", variant->point, file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)p));
	ASSERT_EQ(0, krs_bg_collapse_join(&c, WAIT_MS));
	parse_outcome(_metadata, &c, &o);
	ASSERT_EQ(0, krs_inject_state(variant->point, &st));
	EXPECT_EQ(1U, st.hits) TH_LOG("%s not reached", variant->point);
	EXPECT_EQ(0, st.armed);
	EXPECT_EQ(-variant->err, o.ret) TH_LOG("'%s': report:\n%s", c.cmd, c.report);
	EXPECT_STREQ(variant->result, o.result);
	if (variant->vmstat)
		EXPECT_EQ(events + 1, krs_vmstat(variant->vmstat)) TH_LOG("%s", variant->vmstat);
	if (variant->mthp && mthp >= 0)
		EXPECT_EQ(mthp + 1, mthp_read(name)) TH_LOG("%s", name);

	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(0, stat_delta(_metadata, self->stats0, self->stats1, "extents_collapsed"));
	EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1, variant->result));
	if (variant->counted) {
		snprintf(name, sizeof(name), "rollback_%s", variant->result);
		EXPECT_EQ(1, stat_delta(_metadata, self->stats0, self->stats1, name));
	}

	EXPECT_EQ(blocks, file_blocks(fd)) TH_LOG("st_blocks changed");
	EXPECT_EQ(0, bad_file_page(fd, 91, step));
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));
	if (!variant->unmapped)
		EXPECT_EQ(rss, smaps(p, "Rss"))
			TH_LOG("pages were unmapped before %s", variant->point);
	krs_vm_stat_refresh();
	EXPECT_EQ(shmem, krs_meminfo_kb("Shmem")) TH_LOG("Shmem changed");
	for (size_t i = 0; i < NPAGES; i += step) {
		size_t bad = krs_check_page(p + i * PAGE, 91, i);

		ASSERT_EQ(0UL, bad) TH_LOG("page %zu", i);
	}
	EXPECT_EQ(rss, smaps(p, "Rss"));
	EXPECT_EQ(blocks, file_blocks(fd));

	/* Nothing left behind: the same collapse now succeeds. */
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)p));
	ASSERT_EQ(0, krs_bg_collapse_join(&c, WAIT_MS));
	parse_outcome(_metadata, &c, &o);
	EXPECT_STREQ("SCAN_SUCCEED", o.result) TH_LOG("report:\n%s", c.report);
	EXPECT_EQ(present, o.ext[0].copied);
	EXPECT_EQ(NPAGES - present, o.ext[0].holes);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 91, step));
	munmap(p, LEN);
	close(fd);
}

/* ---- minor: uffd-minor users and a collapse paused at each point -------- */

FIXTURE(minor) {
	int unused;
};

FIXTURE_VARIANT(minor) {
	const char *point;
	const char *results;
};

/*
 * Paused with page 0 isolated: UFFDIO_CONTINUE of page 0 holds a reference
 * to it while it waits for the lock, which the reference check after the
 * pause sees (SCAN_PAGE_COUNT, EAGAIN, rolled back), unless it came late.
 */
FIXTURE_VARIANT_ADD(minor, scan_index) {
	.point = "scan_index", .results = "SCAN_SUCCEED SCAN_PAGE_COUNT",
};

FIXTURE_VARIANT_ADD(minor, before_copy) { .point = "before_copy", .results = "SCAN_SUCCEED" };

FIXTURE_VARIANT_ADD(minor, before_store) { .point = "before_store", .results = "SCAN_SUCCEED" };

FIXTURE_VARIANT_ADD(minor, retract_vma) { .point = "retract_vma", .results = "SCAN_SUCCEED" };

FIXTURE_VARIANT_ADD(minor, before_install) {
	.point = "before_install", .results = "SCAN_SUCCEED",
};

FIXTURE_SETUP(minor)
{
	race_common_setup(_metadata);
}

FIXTURE_TEARDOWN(minor)
{
	RACE_TEARDOWN();
}

/*
 * 8. Seed 004: two mappings of one memfd, MINOR registered on one,
 * populated through the other, MADV_DONTNEED on the registered one. While
 * a collapse of the populated mapping is paused, the registered mapping is
 * read (minor faults; UFFDIO_CONTINUE may have to wait for the collapse);
 * afterwards every minor fault is still delivered and resolved with the
 * right data.
 */
TEST_F_TIMEOUT(minor, paused, 60)
{
	const char *why;
	static const size_t during[] = { 0, 1, 100, 511 }, after[] = { 5, 300, 0 };
	struct toucher t = { 0 };
	struct krs_uffd_handler h = { 0 };
	struct krs_bg_collapse c = { 0 };
	struct outcome o;
	unsigned int before;
	char *pop, *reg;
	int fd, uffd;

	fd = krs_memfd("krs_race_minor", LEN);
	ASSERT_LE(0, fd);
	pop = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, pop);
	reg = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, reg);
	uffd = krs_uffd_setup(UFFD_FEATURE_MINOR_SHMEM, reg, LEN, UFFDIO_REGISTER_MODE_MINOR, &why);
	if (uffd < 0)
		SKIP(return, "%s: %s", why, strerror(-uffd));
	h.uffd = uffd;
	h.how = KRS_UFFD_CONTINUE;
	h.reg_addr = reg;
	h.reg_len = LEN;
	ASSERT_EQ(0, krs_uffd_handler_start(&h));

	fill(pop, 71, 1);
	/* Give the registered VMA a page table, then empty it. */
	for (size_t i = 0; i < ARRAY_SIZE(after); i++) {
		size_t bad = krs_check_page(reg + after[i] * PAGE, 71, after[i]);

		ASSERT_EQ(0UL, bad);
	}
	ASSERT_EQ(0, madvise(reg, LEN, MADV_DONTNEED));
	before = __atomic_load_n(&h.minor_faults, __ATOMIC_SEQ_CST);

	ASSERT_EQ(0, krs_inject("pause=%s ino=%lu", variant->point, file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)pop));
	wait_paused(_metadata, &c, variant->point, 1);
	t.base = reg;
	t.idx = during;
	t.n = ARRAY_SIZE(during);
	t.seed = 71;
	ASSERT_EQ(0, pthread_create(&t.thread, NULL, toucher_fn, &t));
	usleep(100 * 1000);
	finish(_metadata, &c, &o);
	ASSERT_TRUE(wait_flag(&t.done, WAIT_MS)) TH_LOG("reads through the minor VMA hang");
	pthread_join(t.thread, NULL);
	check_point(_metadata, variant->point, 1);
	EXPECT_TRUE(result_in(o.result, variant->results))
		TH_LOG("result %s, want one of: %s", o.result, variant->results);
	EXPECT_EQ(!strcmp(o.result, "SCAN_SUCCEED"), o.ret == (ssize_t)strlen(c.cmd))
		TH_LOG("report:\n%s", c.report);
	TH_LOG("%s", o.result);
	if (strcmp(o.result, "SCAN_SUCCEED")) {
		/* Rolled back: the collapse succeeds now. */
		EXPECT_EQ(0, smaps(pop, "ShmemPmdMapped"));
		ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)pop));
		ASSERT_EQ(0, krs_bg_collapse_join(&c, WAIT_MS));
		parse_outcome(_metadata, &c, &o);
		EXPECT_STREQ("SCAN_SUCCEED", o.result) TH_LOG("report:\n%s", c.report);
	}
	EXPECT_EQ(2048, smaps(pop, "ShmemPmdMapped"));
	EXPECT_EQ(0, t.bad) TH_LOG("page %d read wrong through the minor VMA", t.bad - 1);
	EXPECT_EQ(before + 4, __atomic_load_n(&h.minor_faults, __ATOMIC_SEQ_CST))
		TH_LOG("a read during the collapse was not a minor fault");
	EXPECT_EQ(0, smaps(reg, "ShmemPmdMapped")) TH_LOG("the minor VMA got a PMD");

	/* After the collapse: zap, then every access is a minor fault again. */
	ASSERT_EQ(0, madvise(reg, LEN, MADV_DONTNEED));
	for (size_t i = 0; i < ARRAY_SIZE(after); i++) {
		unsigned int n = __atomic_load_n(&h.minor_faults, __ATOMIC_SEQ_CST);

		EXPECT_EQ(0UL, krs_check_page(reg + after[i] * PAGE, 71, after[i]));
		EXPECT_EQ(n + 1, __atomic_load_n(&h.minor_faults, __ATOMIC_SEQ_CST))
			TH_LOG("no minor fault for page %zu after the collapse", after[i]);
		EXPECT_EQ((unsigned long)reg + after[i] * PAGE,
			  __atomic_load_n(&h.last_addr, __ATOMIC_SEQ_CST) & ~(PAGE - 1));
	}
	krs_uffd_handler_stop(&h);
	EXPECT_EQ(h.faults, h.minor_faults);
	EXPECT_EQ(0, h.error) TH_LOG("resolving: %s", strerror(h.error));
	EXPECT_FALSE(h.timed_out);
	EXPECT_EQ(0, bad_page(pop, 71, 1));
	EXPECT_EQ(0, bad_file_page(fd, 71, 1));
	close(uffd);
	munmap(pop, LEN);
	munmap(reg, LEN);
	close(fd);
}

/* ---- tlb: a failed scan flushes the TLB entries it batched -------------- */

#define TRACING "/sys/kernel/tracing"
#define TLB_EVENT "/events/tlb/tlb_flush"
/* enum tlb_flush_reason, include/linux/mm_types.h */
#define TLB_REMOTE_SEND_IPI 4

FIXTURE(tlb) {
	char instance[64];
};

FIXTURE_SETUP(tlb)
{
	self->instance[0] = '\0';
	race_common_setup(_metadata);
}

FIXTURE_TEARDOWN(tlb)
{
	RACE_TEARDOWN();
	if (self->instance[0])
		rmdir(self->instance);
}

static int write_file(const char *dir, const char *file, const char *s)
{
	char path[160];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s%s", dir, file);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -errno;
}

/* Run the calling thread on @cpu only; 0 or errno. */
static int pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? errno : 0;
}

/* A thread on CPU 1 reading one page of the mapping until told to stop. */
struct spinner {
	const char *p;		/* read with relaxed atomic loads: from memory every time */
	int stop;
	int on_cpu;
	pthread_t thread;
};

static void *spin_fn(void *arg)
{
	struct spinner *s = arg;

	__atomic_store_n(&s->on_cpu, !pin_to_cpu(1) ? 1 : -1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		(void)__atomic_load_n(s->p, __ATOMIC_RELAXED);
	return NULL;
}

/*
 * The other side of the tlb test: once the collapse is paused after page
 * 0, trace the writer's remote TLB flushes, take a reference on page 1
 * (so that the scan fails there) and release the collapse.
 */
struct tlb_releaser {
	const char *instance;
	char *page1;
	pid_t writer;
	int pfd[2];
	int err;		/* 0, or -errno of the step that failed */
	pthread_t thread;
};

static void *tlb_release_fn(void *arg)
{
	struct tlb_releaser *r = arg;
	char filter[96];

	r->err = krs_inject_wait_paused("scan_index", 1, WAIT_MS, NULL);
	if (!r->err) {
		snprintf(filter, sizeof(filter), "reason == %d && common_pid == %d",
			 TLB_REMOTE_SEND_IPI, r->writer);
		r->err = write_file(r->instance, TLB_EVENT "/filter", filter);
	}
	if (!r->err)
		r->err = write_file(r->instance, "/trace", "");
	if (!r->err)
		r->err = write_file(r->instance, TLB_EVENT "/enable", "1");
	if (!r->err)
		r->err = krs_pin_page(r->page1, r->pfd);
	krs_inject("release");
	return NULL;
}

/*
 * 8. try_to_unmap(TTU_BATCH_FLUSH) defers the TLB flush of the pages it
 * unmaps while another CPU runs the mm; collapse_file() flushes on every
 * exit of its scan loop ("Do it anyway, to clear the state"), so that no
 * CPU keeps writing an old page through a stale TLB entry once the folio
 * is back on the LRU. Here the scan fails at page 1 (an extra reference:
 * SCAN_PAGE_COUNT) after page 0 was unmapped, with a thread of this
 * process running on the other CPU: the writer must have sent the remote
 * flush (tlb:tlb_flush, "remote IPI send") when its write() returns. (The
 * write is made from this thread, which stays: a thread that exits has
 * glibc madvise() its stack, which flushes the mm's pending batches.)
 * 120 s: the spinner holds one of the two vCPUs, and on the debug kernel
 * under TCG on a loaded host the rest took over the default 30 s.
 */
TEST_F_TIMEOUT(tlb, flushed_when_the_scan_fails, 120)
{
	struct tlb_releaser rel = { .writer = gettid(), .pfd = { -1, -1 } };
	struct spinner sp = { 0 };
	char path[128], buf[65536], report[4096], *line;
	int fd, cfd, flushes = 0;
	cpu_set_t set;
	ssize_t ret, n;
	char *p;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP(return, "needs two CPUs");
	if (access(TRACING "/instances", F_OK))
		mount("nodev", TRACING, "tracefs", 0, NULL);
	if (access(TRACING "/instances", F_OK))
		SKIP(return, "no tracefs");
	snprintf(self->instance, sizeof(self->instance), TRACING "/instances/krs_tlb_%d",
		 getpid());
	ASSERT_EQ(0, mkdir(self->instance, 0755)) TH_LOG("%s: %s", self->instance,
							 strerror(errno));
	snprintf(path, sizeof(path), "%s" TLB_EVENT "/enable", self->instance);
	if (access(path, W_OK))
		SKIP(return, "no tlb:tlb_flush event");

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(set), &set));
	fd = krs_memfd("krs_race_tlb", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 92, 1);
	sp.p = p + (NPAGES - 1) * PAGE;
	ASSERT_EQ(0, pthread_create(&sp.thread, NULL, spin_fn, &sp));
	while (!__atomic_load_n(&sp.on_cpu, __ATOMIC_SEQ_CST))
		usleep(1000);
	ASSERT_EQ(1, sp.on_cpu);
	cfd = krs_collapse_open();
	ASSERT_LE(0, cfd);

	ASSERT_EQ(0, krs_inject("pause=scan_index pid=%d", getpid()));
	rel.instance = self->instance;
	rel.page1 = p + PAGE;
	ASSERT_EQ(0, pthread_create(&rel.thread, NULL, tlb_release_fn, &rel));
	snprintf(path, sizeof(path), "addr=%lx len=2M", (unsigned long)p);
	ret = krs_collapse_write(cfd, path, strlen(path));
	/* Before this thread does anything else that could flush. */
	write_file(self->instance, TLB_EVENT "/enable", "0");
	pthread_join(rel.thread, NULL);
	__atomic_store_n(&sp.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(sp.thread, NULL);
	ASSERT_EQ(0, rel.err) TH_LOG("tracing or pinning page 1: %s", strerror(-rel.err));
	n = krs_collapse_report(cfd, report, sizeof(report));
	close(cfd);
	check_point(_metadata, "scan_index", 1);
	EXPECT_EQ(-EAGAIN, ret) TH_LOG("report:\n%s", n > 0 ? report : "");
	EXPECT_NE(NULL, strstr(report, "result=SCAN_PAGE_COUNT")) TH_LOG("report:\n%s", report);

	snprintf(path, sizeof(path), "%s/trace", self->instance);
	n = krs_read_file(path, buf, sizeof(buf));
	ASSERT_LT(0, n);
	for (line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (*line != '#' && *line != '\n')
			flushes++;
	}
	EXPECT_LE(1, flushes)
		TH_LOG("no remote TLB flush by the collapse (tid %d) after its scan failed:\n%s",
		       rel.writer, buf);
	close(rel.pfd[0]);
	close(rel.pfd[1]);
	EXPECT_EQ(0, bad_page(p, 92, 1));
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));
	munmap(p, LEN);
	close(fd);
}

/* ---- stale: what a step saw changed before the next one ----------------- */

FIXTURE(stale) {
	char stats0[STATS_SIZE];
	char stats1[STATS_SIZE];
};

FIXTURE_SETUP(stale)
{
	race_common_setup(_metadata);
}

FIXTURE_TEARDOWN(stale)
{
	RACE_TEARDOWN();
}

/*
 * 9. fd=: between the lockless scan and collapse_file(), the extent became
 * huge (MADV_COLLAPSE through a mapping). collapse_file() finds the huge
 * folio (SCAN_PTE_MAPPED_HUGEPAGE): the extent is done, but not by this
 * write, so the report says SCAN_PTE_MAPPED_HUGEPAGE, not SCAN_SUCCEED.
 */
TEST_F(stale, fd_reports_only_its_own_collapse)
{
	struct krs_bg_collapse c = { 0 };
	struct outcome o;
	char *p;
	int fd;

	fd = krs_memfd("krs_race_stale_fd", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 93, 1);
	snap_stats(_metadata, self->stats0);

	ASSERT_EQ(0, krs_inject("pause=after_scan pid=%d", getpid()));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "fd=%d len=2M", fd));
	wait_paused(_metadata, &c, "after_scan", 1);
	ASSERT_EQ(0, madvise(p, LEN, MADV_COLLAPSE)) TH_LOG("MADV_COLLAPSE: %s", strerror(errno));
	finish(_metadata, &c, &o);
	check_point(_metadata, "after_scan", 1);
	EXPECT_EQ((ssize_t)strlen(c.cmd), o.ret) TH_LOG("report:\n%s", c.report);
	EXPECT_STREQ("SCAN_PTE_MAPPED_HUGEPAGE", o.result);
	EXPECT_EQ(0U, o.ext[0].copied);
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(0, stat_delta(_metadata, self->stats0, self->stats1, "extents_collapsed"));
	EXPECT_EQ(0, bad_page(p, 93, 1));
	munmap(p, LEN);
	close(fd);
}

/*
 * 10. The VMA shrinks while the mmap lock is dropped after the first
 * extent: madvise_collapse() clips its range to the VMA it revalidated
 * (hend = min(hend, vm_end)), so the extents it no longer covers are not
 * asked for: the request succeeds, as MADV_COLLAPSE would.
 */
TEST_F(stale, vma_shrinks_during_the_walk)
{
	struct krs_bg_collapse c = { 0 };
	struct krs_extent ext[MAX_EXTENTS];
	int fd;
	char *p;

	fd = krs_memfd("krs_race_stale_vma", 4 * LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(4 * LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (int i = 0; i < 4; i++)
		fill(p + i * LEN, 94 + i, 1);

	ASSERT_EQ(0, krs_inject("pause=before_install pid=%d", getpid()));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=8M", (unsigned long)p));
	wait_paused(_metadata, &c, "before_install", 1);
	ASSERT_EQ(0, munmap(p + 2 * LEN, 2 * LEN));
	finish_extents(_metadata, &c, ext, 4);
	EXPECT_EQ((ssize_t)strlen(c.cmd), c.ret) TH_LOG("report:\n%s", c.report);
	EXPECT_STREQ("SCAN_SUCCEED", ext[0].result);
	EXPECT_STREQ("SCAN_SUCCEED", ext[1].result);
	EXPECT_EQ(4096, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 94, 1));
	EXPECT_EQ(0, bad_page(p + LEN, 95, 1));
	munmap(p, 2 * LEN);
	close(fd);
}

/*
 * 11-13. madvise_walk_vmas() looks the next VMA up each time one is done,
 * with the mmap lock taken again: the layout it sees is the one of that
 * moment. Three files mapped side by side over [0, 6M) of the request (file
 * 0 at [0, 2M), file 1 at [2M, 6M) or [2M, 4M), file 2 at [4M, 6M)), the
 * collapse paused before the first PMD installation, and the layout changed
 * in the pause:
 * - the next VMA unmapped: find_vma() finds nothing in the range: ENOMEM;
 * - the next VMA shrunk from its front by 1 MiB: a gap, then a VMA whose
 *   one whole extent collapses: ENOMEM (the gap);
 * - the gap at [2M, 4M) filled by a mapping: no gap any more, every
 *   extent collapses: 0.
 */
enum walk_change { UNMAP_NEXT, SHRINK_NEXT, FILL_GAP };

static void walk_change(struct __test_metadata *_metadata, enum walk_change change, int want)
{
	struct krs_bg_collapse c = { 0 };
	struct krs_extent ext[MAX_EXTENTS];
	int fd[3];
	char *p, *q;

	for (int i = 0; i < 3; i++) {
		fd[i] = krs_memfd("krs_race_walk", 2 * LEN);
		ASSERT_LE(0, fd[i]);
		q = mmap(NULL, 2 * LEN, RW, MAP_SHARED, fd[i], 0);
		ASSERT_NE(MAP_FAILED, q);
		fill(q, 100 + i, 1);
		fill(q + LEN, 103 + i, 1);
		munmap(q, 2 * LEN);
	}
	p = krs_map_aligned(3 * LEN, RW, MAP_SHARED, fd[0], 0);
	ASSERT_NE(MAP_FAILED, p);
	if (change == FILL_GAP) {
		ASSERT_EQ(0, munmap(p + LEN, LEN));
		ASSERT_NE(MAP_FAILED, mmap(p + 2 * LEN, LEN, RW, MAP_SHARED | MAP_FIXED, fd[2], 0));
	} else {
		ASSERT_NE(MAP_FAILED, mmap(p + LEN, 2 * LEN, RW, MAP_SHARED | MAP_FIXED, fd[1], 0));
	}

	ASSERT_EQ(0, krs_inject("pause=before_install pid=%d", getpid()));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=6M", (unsigned long)p));
	wait_paused(_metadata, &c, "before_install", 1);
	switch (change) {
	case UNMAP_NEXT:
		ASSERT_EQ(0, munmap(p + LEN, 2 * LEN));
		break;
	case SHRINK_NEXT:
		ASSERT_EQ(0, munmap(p + LEN, LEN / 2));
		break;
	case FILL_GAP:
		ASSERT_EQ(p + LEN, mmap(p + LEN, LEN, RW, MAP_SHARED | MAP_FIXED_NOREPLACE,
					fd[1], 0));
		break;
	}
	finish_extents(_metadata, &c, ext, 3);
	EXPECT_STREQ("SCAN_SUCCEED", ext[0].result);
	EXPECT_EQ(want ? -want : (ssize_t)strlen(c.cmd), c.ret)
		TH_LOG("want %s; report:\n%s", want ? strerror(want) : "success", c.report);
	if (change != UNMAP_NEXT)
		EXPECT_STREQ("SCAN_SUCCEED", ext[2].result) TH_LOG("report:\n%s", c.report);
	EXPECT_EQ(0, bad_page(p, 100, 1));
	munmap(p, 3 * LEN);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
}

TEST_F(stale, next_vma_unmapped_during_the_walk)
{
	walk_change(_metadata, UNMAP_NEXT, ENOMEM);
}

TEST_F(stale, next_vma_shrunk_from_its_front_during_the_walk)
{
	walk_change(_metadata, SHRINK_NEXT, ENOMEM);
}

TEST_F(stale, gap_filled_during_the_walk)
{
	walk_change(_metadata, FILL_GAP, 0);
}

/*
 * 14. A failure of the PMD installation that madvise_collapse() does not
 * whitelist stops its walk, SCAN_VMA_CHECK too: MADV_NOHUGEPAGE on the
 * first extent during the pause splits the VMA, the installation refuses
 * the extent, and the second extent (a VMA of its own now, eligible) is
 * not tried: EINVAL, one extent reported, the second left as it was.
 */
TEST_F(stale, install_vma_check_stops_the_walk)
{
	struct krs_bg_collapse c = { 0 };
	struct krs_extent ext[MAX_EXTENTS];
	int fd;
	char *p;

	fd = krs_memfd("krs_race_stale_nohuge", 2 * LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(2 * LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 111, 1);
	fill(p + LEN, 112, 1);

	ASSERT_EQ(0, krs_inject("pause=before_install pid=%d", getpid()));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=4M", (unsigned long)p));
	wait_paused(_metadata, &c, "before_install", 1);
	ASSERT_EQ(0, madvise(p, LEN, MADV_NOHUGEPAGE));
	finish_extents(_metadata, &c, ext, 1);
	EXPECT_EQ(-EINVAL, c.ret) TH_LOG("report:\n%s", c.report);
	EXPECT_STREQ("SCAN_VMA_CHECK", ext[0].result);
	EXPECT_EQ(0, smaps(p + LEN, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 111, 1));
	EXPECT_EQ(0, bad_page(p + LEN, 112, 1));
	munmap(p, 2 * LEN);
	close(fd);
}

/* A thread pinned to @cpu writing every page of the 2 MiB at @p. */
struct cpu_writer {
	char *p;
	int cpu;
	int err;
};

static void *cpu_writer_fn(void *arg)
{
	struct cpu_writer *w = arg;

	w->err = pin_to_cpu(w->cpu);
	if (!w->err)
		fill(w->p, 110, 1);
	return NULL;
}

/*
 * 15. madvise_collapse() drains every CPU's LRU batches (lru_add_drain_all())
 * once per VMA, before its first extent. Two files side by side; the
 * collapse (on CPU 0) is paused at the first VMA's PMD installation while
 * a thread on CPU 1 faults in the second VMA's pages: the last of them sit
 * in CPU 1's LRU batch, off the LRU, with a reference each. Drained at the
 * second VMA, as upstream drains, they collapse; drained once per request
 * (before the pause), the scan finds them off the LRU (SCAN_PAGE_LRU or
 * SCAN_PAGE_COUNT: EAGAIN). Needs two CPUs.
 */
TEST_F(stale, lru_drained_per_vma)
{
	struct krs_bg_collapse c = { 0 };
	struct krs_extent ext[MAX_EXTENTS];
	struct cpu_writer w = { 0 };
	pthread_t thread;
	cpu_set_t set;
	int fd[2];
	char *p;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) || !CPU_ISSET(0, &set) ||
	    !CPU_ISSET(1, &set))
		SKIP(return, "needs CPUs 0 and 1");
	/* The harness runs each test in a child of its own: no need to undo. */
	for (int i = 0; i < 2; i++) {
		fd[i] = krs_memfd("krs_race_drain", LEN);
		ASSERT_LE(0, fd[i]);
	}
	p = krs_map_aligned(2 * LEN, RW, MAP_SHARED, fd[0], 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_NE(MAP_FAILED, mmap(p + LEN, LEN, RW, MAP_SHARED | MAP_FIXED, fd[1], 0));
	ASSERT_EQ(0, pin_to_cpu(0));
	fill(p, 109, 1);

	ASSERT_EQ(0, krs_inject("pause=before_install pid=%d", getpid()));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=4M", (unsigned long)p));
	wait_paused(_metadata, &c, "before_install", 1);
	w.p = p + LEN;
	w.cpu = 1;
	ASSERT_EQ(0, pthread_create(&thread, NULL, cpu_writer_fn, &w));
	pthread_join(thread, NULL);
	ASSERT_EQ(0, w.err) TH_LOG("pinning to CPU 1: %s", strerror(w.err));
	finish_extents(_metadata, &c, ext, 2);
	EXPECT_EQ((ssize_t)strlen(c.cmd), c.ret) TH_LOG("report:\n%s", c.report);
	EXPECT_STREQ("SCAN_SUCCEED", ext[0].result);
	EXPECT_STREQ("SCAN_SUCCEED", ext[1].result);
	EXPECT_EQ(4096, smaps(p, "ShmemPmdMapped") + smaps(p + LEN, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 109, 1));
	EXPECT_EQ(0, bad_page(p + LEN, 110, 1));
	munmap(p, 2 * LEN);
	close(fd[0]);
	close(fd[1]);
}

TEST_HARNESS_MAIN
