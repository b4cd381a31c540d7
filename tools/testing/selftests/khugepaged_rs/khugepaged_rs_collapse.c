// SPDX-License-Identifier: GPL-2.0
/*
 * Collapsing shmem through debugfs `collapse`: each test builds its own
 * memfd with a per-page pattern, maps it at a 2 MiB-aligned address, asks
 * for a collapse and checks the write's result, the report, the stats, the
 * page contents and the smaps counters of every mapping involved: the
 * writer's, other VMAs and processes (retracted), MAP_PRIVATE with CoW'd
 * pages, userfaultfd MISSING/WP/MINOR registrations, mlock, the fd= and
 * pid= forms, and dry_run.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
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
#define MAX_EXTENTS 8

FIXTURE(collapse) {
	int cfd;
	char cmd[256];
	char report[8192];
	struct krs_extent ext[MAX_EXTENTS];
	int nr_ext;
	long status;
	char stats0[STATS_SIZE];
	char stats1[STATS_SIZE];
};

FIXTURE_SETUP(collapse)
{
	int ret;

	self->cfd = -1;
	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	self->cfd = krs_collapse_open();
	ASSERT_LE(0, self->cfd) TH_LOG("open %s: %s", KRS_COLLAPSE, strerror(-self->cfd));
}

FIXTURE_TEARDOWN(collapse)
{
	if (self->cfd >= 0)
		close(self->cfd);
}

/*
 * Write a command (retrying EAGAIN), read back and parse its report; the
 * report must be well formed, end with the write's result and hold no
 * kernel address. Returns the write's result (bytes or -errno).
 */
static ssize_t __printf(3, 4)
do_collapse(struct __test_metadata *_metadata, struct _test_data_collapse *self,
	    const char *fmt, ...)
{
	va_list ap;
	ssize_t ret, n;

	va_start(ap, fmt);
	vsnprintf(self->cmd, sizeof(self->cmd), fmt, ap);
	va_end(ap);
	ret = krs_collapse_cmd(self->cfd, self->cmd);
	n = krs_collapse_report(self->cfd, self->report, sizeof(self->report));
	ASSERT_LE(0, n) TH_LOG("reading the report: %s", strerror(-n));
	self->status = 0;
	self->nr_ext = krs_report_parse(self->report, self->ext, MAX_EXTENTS, &self->status);
	ASSERT_LE(0, self->nr_ext) TH_LOG("'%s': malformed report:\n%s", self->cmd, self->report);
	EXPECT_EQ(ret, self->status) TH_LOG("'%s': report:\n%s", self->cmd, self->report);
	EXPECT_FALSE(krs_has_kernel_pointer(self->report)) TH_LOG("report:\n%s", self->report);
	for (int i = 0; i < self->nr_ext && i < MAX_EXTENTS; i++) {
		unsigned int index = self->ext[i].index;

		EXPECT_EQ((unsigned int)i, index) TH_LOG("report:\n%s", self->report);
	}
	return ret;
}

/* Expect the write of self->cmd to have succeeded. */
#define EXPECT_DONE(ret) do { \
	ssize_t __done = (ret); \
	EXPECT_EQ((ssize_t)strlen(self->cmd), __done) \
		TH_LOG("'%s' -> %zd (%s); report:\n%s", self->cmd, __done, \
		       __done < 0 ? strerror(-__done) : "ok", self->report); \
} while (0)
#define ASSERT_DONE(ret) do { \
	ssize_t __done = (ret); \
	ASSERT_EQ((ssize_t)strlen(self->cmd), __done) \
		TH_LOG("'%s' -> %zd (%s); report:\n%s", self->cmd, __done, \
		       __done < 0 ? strerror(-__done) : "ok", self->report); \
} while (0)

/* Check extent @i of the last report; @copied/@holes < 0: not checked. */
static void check_extent(struct __test_metadata *_metadata, struct _test_data_collapse *self,
			 int i, unsigned long start, unsigned long pgoff, const char *result,
			 int copied, int holes)
{
	ASSERT_LT(i, self->nr_ext) TH_LOG("'%s': no extent %d in report:\n%s", self->cmd, i,
					  self->report);
	EXPECT_EQ(start, self->ext[i].start) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(pgoff, self->ext[i].pgoff) TH_LOG("report:\n%s", self->report);
	EXPECT_STREQ(result, self->ext[i].result) TH_LOG("report:\n%s", self->report);
	if (copied >= 0)
		EXPECT_EQ((unsigned int)copied, self->ext[i].copied)
			TH_LOG("report:\n%s", self->report);
	if (holes >= 0)
		EXPECT_EQ((unsigned int)holes, self->ext[i].holes)
			TH_LOG("report:\n%s", self->report);
}

static void snap_stats(struct __test_metadata *_metadata, char *buf)
{
	ssize_t n = krs_stats_read(buf, STATS_SIZE);

	ASSERT_LT(0, n) TH_LOG("reading %s: %s", KRS_STATS, n ? strerror(-n) : "empty");
	EXPECT_FALSE(krs_has_kernel_pointer(buf)) TH_LOG("stats:\n%s", buf);
}

/* stats1[name] - stats0[name]; both must exist. */
static long long stat_delta(struct __test_metadata *_metadata, struct _test_data_collapse *self,
			    const char *name)
{
	long long a = krs_stat(self->stats0, name), b = krs_stat(self->stats1, name);

	EXPECT_LE(0, a) TH_LOG("stats has no '%s':\n%s", name, self->stats0);
	EXPECT_LE(0, b) TH_LOG("stats has no '%s':\n%s", name, self->stats1);
	return b - a;
}

/* Write the pattern into pages i % step == 0 of a mapping. */
static void fill(char *p, unsigned int seed, size_t step)
{
	for (size_t i = 0; i < NPAGES; i += step)
		krs_fill_page(p + i * PAGE, seed, i);
}

/*
 * Check a mapping: page i holds the pattern if i % step == 0, else zeros.
 * Returns 0, or 1 + the index of the first wrong page.
 */
static int bad_page(const char *p, unsigned int seed, size_t step)
{
	for (size_t i = 0; i < NPAGES; i++) {
		const char *page = p + i * PAGE;

		if (i % step == 0 ? krs_check_page(page, seed, i) : !krs_page_is_zero(page))
			return (int)i + 1;
	}
	return 0;
}

/* The same check through pread() (does not allocate holes nor map anything). */
static int bad_file_page(int fd, size_t first, unsigned int seed, size_t step)
{
	for (size_t i = 0; i < NPAGES; i++) {
		if ((i % step == 0 ? krs_pread_check(fd, seed, first + i) :
				     krs_pread_zero(fd, first + i)))
			return (int)i + 1;
	}
	return 0;
}

static long smaps(void *p, const char *field)
{
	return krs_smaps_kb(0, (unsigned long)p, field);
}

static long file_blocks(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? -1 : (long)st.st_blocks;
}

#define PAGES_KB(n) ((long)(n) * (long)(PAGE / 1024))

/* 1. A fully populated extent: 512 pages copied, PMD-mapped in the writer. */
TEST_F(collapse, full_extent)
{
	int fd = krs_memfd("krs_full", LEN);
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 1, 1);
	ASSERT_EQ(0, bad_page(p, 1, 1));
	EXPECT_EQ(2048, smaps(p, "Rss"));
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));
	snap_stats(_metadata, self->stats0);

	ret = do_collapse(_metadata, self, "addr=%lx len=%lu", (unsigned long)p, LEN);
	ASSERT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext) TH_LOG("report:\n%s", self->report);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", NPAGES, 0);

	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, smaps(p, "FilePmdMapped"));
	EXPECT_EQ(0, smaps(p, "AnonHugePages"));
	EXPECT_EQ(0, bad_page(p, 1, 1));
	EXPECT_EQ(0, bad_file_page(fd, 0, 1, 1));
	EXPECT_EQ(2048, smaps(p, "Rss"));
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));

	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(1, stat_delta(_metadata, self, "SCAN_SUCCEED"));
	EXPECT_EQ(1, stat_delta(_metadata, self, "extents_collapsed"));
	EXPECT_EQ((long long)NPAGES, stat_delta(_metadata, self, "pages_copied"));
	EXPECT_EQ(0, stat_delta(_metadata, self, "holes_filled"));

	munmap(p, LEN);
	close(fd);
}

/* 2. Every third page written: the others are holes, filled with zeroes. */
TEST_F(collapse, extent_with_holes)
{
	const size_t step = 3, present = (NPAGES + step - 1) / step;
	int fd = krs_memfd("krs_holes", LEN);
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 2, step);		/* never touch a hole through the mapping */
	EXPECT_EQ(PAGES_KB(present), smaps(p, "Rss"));
	EXPECT_EQ((long)(present * PAGE / 512), file_blocks(fd));
	ASSERT_EQ(0, bad_file_page(fd, 0, 2, step));
	snap_stats(_metadata, self->stats0);

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	ASSERT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", present,
		     NPAGES - present);

	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ((long)(LEN / 512), file_blocks(fd));
	EXPECT_EQ(0, bad_page(p, 2, step));
	EXPECT_EQ(0, bad_file_page(fd, 0, 2, step));

	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(1, stat_delta(_metadata, self, "SCAN_SUCCEED"));
	EXPECT_EQ(1, stat_delta(_metadata, self, "extents_collapsed"));
	EXPECT_EQ((long long)present, stat_delta(_metadata, self, "pages_copied"));
	EXPECT_EQ((long long)(NPAGES - present), stat_delta(_metadata, self, "holes_filled"));

	munmap(p, LEN);
	close(fd);
}

/* 3. Collapsing twice: the second finds the extent PMD-mapped and succeeds. */
TEST_F(collapse, already_pmd_mapped)
{
	int fd = krs_memfd("krs_twice", LEN);
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 3, 1);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", NPAGES, 0);
	ASSERT_EQ(2048, smaps(p, "ShmemPmdMapped"));

	snap_stats(_metadata, self->stats0);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_PMD_MAPPED", -1, -1);
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(1, stat_delta(_metadata, self, "SCAN_PMD_MAPPED"));
	EXPECT_EQ(0, stat_delta(_metadata, self, "extents_collapsed"));
	EXPECT_EQ(0, stat_delta(_metadata, self, "pages_copied"));

	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 3, 1));
	munmap(p, LEN);
	close(fd);
}

/* Two extents in one 4 MiB mapping; a range covers only what is fully inside. */
TEST_F(collapse, extents_fully_inside_only)
{
	int fd = krs_memfd("krs_two", 2 * LEN);
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(2 * LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 20, 1);
	fill(p + LEN, 21, 1);

	/* [p + 4K, p + 4M): only the second extent is fully inside. */
	ret = do_collapse(_metadata, self, "addr=%lx len=%lu", (unsigned long)p + PAGE,
			  2 * LEN - PAGE);
	ASSERT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext) TH_LOG("report:\n%s", self->report);
	check_extent(_metadata, self, 0, (unsigned long)p + LEN, NPAGES, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));	/* the VMA covers both extents */
	EXPECT_EQ(0, bad_page(p, 20, 1));
	EXPECT_EQ(0, bad_page(p + LEN, 21, 1));
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));	/* extent 0 stayed PTE-mapped */

	/* Both: the first collapses, the second is already PMD-mapped. */
	ret = do_collapse(_metadata, self, "addr=%lx len=4M", (unsigned long)p);
	ASSERT_DONE(ret);
	EXPECT_EQ(2, self->nr_ext) TH_LOG("report:\n%s", self->report);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", NPAGES, 0);
	check_extent(_metadata, self, 1, (unsigned long)p + LEN, NPAGES, "SCAN_PMD_MAPPED", -1, -1);
	EXPECT_EQ(4096, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 20, 1));
	EXPECT_EQ(0, bad_page(p + LEN, 21, 1));
	munmap(p, 2 * LEN);
	close(fd);
}

struct mapper_arg {
	int memfd;
	unsigned int seed;
	bool rss0_after;	/* after "go": Rss 0 (unmapped/retracted) */
	bool pmd_after;		/* after "go" and touching: ShmemPmdMapped 2048 kB */
	bool untouched;		/* after "go": still PTE-mapped, Rss 2048 kB */
};

/*
 * Child: map the memfd at an aligned address, read it all (PTE-mapped),
 * send the address, wait for "go", check what the parent did, report.
 */
static int mapper_child(int in, int out, void *varg)
{
	struct mapper_arg *arg = varg;
	unsigned long addr = 0;
	char go;
	long kb;
	int bad;
	char *p = krs_map_aligned(LEN, RW, MAP_SHARED, arg->memfd, 0);

	if (p == MAP_FAILED) {
		krs_send(out, &addr, sizeof(addr));
		krs_send_msg(out, "child: mmap: %s", strerror(errno));
		return 1;
	}
	bad = bad_page(p, arg->seed, 1);
	addr = bad ? 0 : (unsigned long)p;
	krs_send(out, &addr, sizeof(addr));
	if (bad) {
		krs_send_msg(out, "child: page %d wrong before collapse", bad - 1);
		return 1;
	}
	if (krs_recv(in, &go, 1, 20000))
		return 2;
	if (arg->rss0_after) {
		kb = smaps(p, "Rss");
		if (kb != 0) {
			krs_send_msg(out, "child: Rss %ld kB after the collapse, %s", kb,
				     "want 0 (retracted)");
			return 1;
		}
	}
	if (arg->untouched) {
		kb = smaps(p, "ShmemPmdMapped");
		if (kb != 0 || smaps(p, "Rss") != 2048) {
			krs_send_msg(out, "child: ShmemPmdMapped %ld kB, Rss %ld kB: %s",
				     kb, smaps(p, "Rss"), "want 0 and 2048");
			return 1;
		}
	}
	bad = bad_page(p, arg->seed, 1);
	if (bad) {
		krs_send_msg(out, "child: page %d wrong after the collapse", bad - 1);
		return 1;
	}
	kb = smaps(p, "ShmemPmdMapped");
	if (arg->pmd_after && kb != 2048) {
		krs_send_msg(out, "child: ShmemPmdMapped %ld kB after touching, want 2048", kb);
		return 1;
	}
	krs_send_msg(out, "ok");
	munmap(p, LEN);
	return 0;
}

/* 4. Other VMAs of the writer and of another process are retracted. */
TEST_F(collapse, other_vmas_and_processes)
{
	struct mapper_arg arg = { .seed = 4, .rss0_after = true, .pmd_after = true };
	struct krs_child child = { .to_child = -1, .from_child = -1 };
	unsigned long child_addr = 0;
	char msg[KRS_MSG_SIZE];
	char *a, *b;
	ssize_t ret;
	int fd;

	fd = krs_memfd("krs_shared", LEN);
	ASSERT_LE(0, fd);
	a = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, a);
	b = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, b);
	fill(a, 4, 1);
	ASSERT_EQ(0, bad_page(b, 4, 1));
	ASSERT_EQ(2048, smaps(b, "Rss"));

	arg.memfd = fd;
	ASSERT_EQ(0, krs_child_start(&child, mapper_child, &arg));
	ASSERT_EQ(0, krs_recv(child.from_child, &child_addr, sizeof(child_addr), 10000));
	if (!child_addr) {
		krs_recv(child.from_child, msg, sizeof(msg), 1000);
		krs_child_wait(&child);
		ASSERT_NE(0UL, child_addr) TH_LOG("%s", msg);
	}

	snap_stats(_metadata, self->stats0);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)a);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)a, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(2048, smaps(a, "ShmemPmdMapped"));
	EXPECT_EQ(0, smaps(b, "Rss")) TH_LOG("the other VMA was not unmapped/retracted");

	ASSERT_EQ(0, krs_send(child.to_child, "g", 1));
	memset(msg, 0, sizeof(msg));
	EXPECT_EQ(0, krs_recv(child.from_child, msg, sizeof(msg), 20000));
	EXPECT_STREQ("ok", msg);
	EXPECT_EQ(0, krs_child_wait(&child));

	EXPECT_EQ(0, bad_page(b, 4, 1));
	EXPECT_EQ(2048, smaps(b, "ShmemPmdMapped")) TH_LOG("the other VMA kept its PTE table");
	EXPECT_EQ(0, bad_page(a, 4, 1));
	snap_stats(_metadata, self->stats1);
	EXPECT_LE(2, stat_delta(_metadata, self, "vmas_retracted"));
	EXPECT_EQ(1, stat_delta(_metadata, self, "extents_collapsed"));

	munmap(a, LEN);
	munmap(b, LEN);
	close(fd);
}

/*
 * 5. A MAP_PRIVATE mapping with CoW'd pages keeps them (and its page table)
 * while a shared mapping of the same file is collapsed.
 */
TEST_F(collapse, private_cow_pages_kept)
{
	const size_t cow_step = 4, cowed = NPAGES / cow_step;
	int fd = krs_memfd("krs_private", LEN);
	char *s, *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	s = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, s);
	p = krs_map_aligned(LEN, RW, MAP_PRIVATE, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(s, 5, 1);
	ASSERT_EQ(0, bad_page(p, 5, 1));
	for (size_t i = 0; i < NPAGES; i += cow_step)
		krs_fill_page(p + i * PAGE, 55, i);
	ASSERT_EQ(PAGES_KB(cowed), smaps(p, "Anonymous"));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)s);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)s, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(2048, smaps(s, "ShmemPmdMapped"));

	/* The private VMA: same anon pages, no PMD, private data, file data elsewhere. */
	EXPECT_EQ(PAGES_KB(cowed), smaps(p, "Anonymous"));
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, smaps(p, "AnonHugePages"));
	for (size_t i = 0; i < NPAGES; i++) {
		unsigned int seed = i % cow_step ? 5 : 55;

		EXPECT_EQ(0UL, krs_check_page(p + i * PAGE, seed, i))
			TH_LOG("private page %zu: want seed %u", i, seed);
		if (krs_check_page(p + i * PAGE, seed, i))
			break;
	}
	EXPECT_EQ(PAGES_KB(cowed), smaps(p, "Anonymous"));
	EXPECT_EQ(0, bad_page(s, 5, 1));
	EXPECT_EQ(0, bad_file_page(fd, 0, 5, 1));

	/* The private VMA still sees the file where it did not CoW. */
	krs_fill_page(s + PAGE, 56, 1);
	EXPECT_EQ(0UL, krs_check_page(p + PAGE, 56, 1));
	EXPECT_EQ(0UL, krs_check_page(p, 55, 0));
	EXPECT_EQ(0, krs_pread_check(fd, 5, 0));

	munmap(s, LEN);
	munmap(p, LEN);
	close(fd);
}

/*
 * 6. A MISSING userfaultfd on a mapping of a file with holes: the collapse
 * is refused (it would fill holes behind the handler's back) and a later
 * touch of a hole still reaches the handler.
 */
TEST_F(collapse, uffd_missing_refused)
{
	const char *why;
	struct krs_uffd_handler h = { 0 };
	uint64_t src[PAGE / sizeof(uint64_t)];
	long blocks;
	char *p;
	ssize_t ret;
	int fd, uffd;

	fd = krs_memfd("krs_uffd_missing", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 6, 2);			/* odd pages are holes */
	blocks = file_blocks(fd);
	uffd = krs_uffd_setup(UFFD_FEATURE_MISSING_SHMEM, p, LEN, UFFDIO_REGISTER_MODE_MISSING,
			      &why);
	if (uffd < 0)
		SKIP(return, "%s: %s", why, strerror(-uffd));
	krs_fill_page(src, 66, 1);
	h.uffd = uffd;
	h.how = KRS_UFFD_COPY;
	h.src = src;
	h.reg_addr = p;
	h.reg_len = LEN;
	ASSERT_EQ(0, krs_uffd_handler_start(&h));

	snap_stats(_metadata, self->stats0);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_EQ(-EBUSY, ret) TH_LOG("'%s': %s; report:\n%s", self->cmd,
				      ret < 0 ? strerror(-ret) : "succeeded", self->report);
	EXPECT_EQ(1, self->nr_ext);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_EXCEED_NONE_PTE", -1, -1);
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(0, stat_delta(_metadata, self, "extents_collapsed"));

	/* Nothing changed: holes are still holes, data is still there. */
	EXPECT_EQ(blocks, file_blocks(fd));
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_file_page(fd, 0, 6, 2));
	for (size_t i = 0; i < NPAGES; i += 2) {
		size_t bad = krs_check_page(p + i * PAGE, 6, i);

		ASSERT_EQ(0UL, bad) TH_LOG("page %zu", i);
	}
	EXPECT_EQ(0U, __atomic_load_n(&h.faults, __ATOMIC_SEQ_CST));

	/* A hole: the handler gets the fault and fills it. */
	EXPECT_EQ(0UL, krs_check_page(p + PAGE, 66, 1));
	krs_uffd_handler_stop(&h);
	EXPECT_EQ(1U, h.faults);
	EXPECT_EQ(0U, h.wp_faults);
	EXPECT_EQ(0U, h.minor_faults);
	EXPECT_EQ((unsigned long)p + PAGE, h.last_addr & ~(PAGE - 1));
	EXPECT_EQ(0, h.error) TH_LOG("resolving: %s", strerror(h.error));
	EXPECT_FALSE(h.timed_out);
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));

	close(uffd);
	munmap(p, LEN);
	close(fd);
}

/*
 * 7. uffd-wp on one of two mappings: collapsing the other succeeds, the wp
 * VMA keeps its page table and its protection (a write still faults to the
 * handler); collapsing the wp mapping itself is refused.
 */
TEST_F(collapse, uffd_wp_other_mapping)
{
	const char *why;
	struct krs_uffd_handler h = { 0 };
	char *a, *w;
	ssize_t ret;
	int fd, uffd;

	fd = krs_memfd("krs_uffd_wp", LEN);
	ASSERT_LE(0, fd);
	a = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, a);
	w = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, w);
	fill(a, 7, 1);
	ASSERT_EQ(0, bad_page(w, 7, 1));
	uffd = krs_uffd_setup(UFFD_FEATURE_WP_HUGETLBFS_SHMEM, w, LEN, UFFDIO_REGISTER_MODE_WP,
			      &why);
	if (uffd < 0)
		SKIP(return, "%s: %s", why, strerror(-uffd));
	ASSERT_EQ(0, krs_uffd_wp(uffd, w, LEN, true));
	h.uffd = uffd;
	h.how = KRS_UFFD_WP_CLEAR;
	h.reg_addr = w;
	h.reg_len = LEN;
	ASSERT_EQ(0, krs_uffd_handler_start(&h));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)a);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)a, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(2048, smaps(a, "ShmemPmdMapped"));

	/* Reading through the wp VMA: right data, PTE-mapped, no userfault. */
	EXPECT_EQ(0, bad_page(w, 7, 1));
	EXPECT_EQ(0, smaps(w, "ShmemPmdMapped")) TH_LOG("the uffd-wp VMA lost its page table");
	EXPECT_EQ(2048, smaps(w, "Rss"));
	EXPECT_EQ(0U, __atomic_load_n(&h.faults, __ATOMIC_SEQ_CST));

	/* Writing through it still raises a WP fault. */
	krs_fill_page(w + 3 * PAGE, 77, 3);
	EXPECT_EQ(1U, __atomic_load_n(&h.wp_faults, __ATOMIC_SEQ_CST))
		TH_LOG("a write to the uffd-wp VMA was not delivered as a WP fault");
	EXPECT_EQ(0UL, krs_check_page(a + 3 * PAGE, 77, 3));
	EXPECT_EQ(0, krs_pread_check(fd, 77, 3));

	/* Collapsing the wp mapping itself is refused. */
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)w);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("'%s': %s; report:\n%s", self->cmd,
				       ret < 0 ? strerror(-ret) : "succeeded", self->report);
	ASSERT_EQ(1, self->nr_ext) TH_LOG("report:\n%s", self->report);
	EXPECT_TRUE(!strcmp(self->ext[0].result, krs_scan_names[KRS_SCAN_PTE_UFFD]) ||
		    !strcmp(self->ext[0].result, "SCAN_VMA_CHECK"))
		TH_LOG("result %s, want %s", self->ext[0].result,
		       krs_scan_names[KRS_SCAN_PTE_UFFD]);
	EXPECT_EQ(0, smaps(w, "ShmemPmdMapped"));

	/* ... and the protection is still there. */
	krs_fill_page(w + 4 * PAGE, 78, 4);
	krs_uffd_handler_stop(&h);
	EXPECT_EQ(2U, h.wp_faults);
	EXPECT_EQ(2U, h.faults);
	EXPECT_EQ(0, h.error) TH_LOG("resolving: %s", strerror(h.error));
	EXPECT_FALSE(h.timed_out);
	EXPECT_EQ(0UL, krs_check_page(a + 4 * PAGE, 78, 4));
	EXPECT_EQ(0UL, krs_check_page(a + 5 * PAGE, 7, 5));

	close(uffd);
	munmap(a, LEN);
	munmap(w, LEN);
	close(fd);
}

/*
 * 8. uffd-minor on one of two mappings, populated through the other:
 * the collapse is allowed, and a later minor fault on the registered
 * mapping is delivered and resolved by UFFDIO_CONTINUE with the right data.
 */
TEST_F(collapse, uffd_minor_continue)
{
	const char *why;
	static const size_t touch[] = { 0, 1, 100, 511 };
	struct krs_uffd_handler h = { 0 };
	unsigned int before;
	char *pop, *reg;
	ssize_t ret;
	int fd, uffd;

	fd = krs_memfd("krs_uffd_minor", LEN);
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

	fill(pop, 8, 1);
	/* Give the registered VMA a page table: each touch is a minor fault. */
	for (size_t i = 0; i < ARRAY_SIZE(touch); i++) {
		size_t bad = krs_check_page(reg + touch[i] * PAGE, 8, touch[i]);

		ASSERT_EQ(0UL, bad);
	}
	ASSERT_EQ(4U, __atomic_load_n(&h.minor_faults, __ATOMIC_SEQ_CST));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)pop);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)pop, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(2048, smaps(pop, "ShmemPmdMapped"));
	EXPECT_EQ(0, smaps(reg, "Rss"));

	ASSERT_EQ(0, madvise(reg, LEN, MADV_DONTNEED));
	before = __atomic_load_n(&h.minor_faults, __ATOMIC_SEQ_CST);
	EXPECT_EQ(0UL, krs_check_page(reg + 5 * PAGE, 8, 5));
	EXPECT_EQ(before + 1, __atomic_load_n(&h.minor_faults, __ATOMIC_SEQ_CST))
		TH_LOG("no minor fault delivered after the collapse");
	EXPECT_EQ((unsigned long)reg + 5 * PAGE,
		  __atomic_load_n(&h.last_addr, __ATOMIC_SEQ_CST) & ~(PAGE - 1));
	EXPECT_EQ(0UL, krs_check_page(reg + 300 * PAGE, 8, 300));
	krs_uffd_handler_stop(&h);
	EXPECT_EQ(before + 2, h.minor_faults);
	EXPECT_EQ(h.faults, h.minor_faults);
	EXPECT_EQ(0, h.error) TH_LOG("resolving: %s", strerror(h.error));
	EXPECT_FALSE(h.timed_out);
	EXPECT_EQ(0, bad_page(pop, 8, 1));
	EXPECT_EQ(2048, smaps(pop, "ShmemPmdMapped"));

	close(uffd);
	munmap(pop, LEN);
	munmap(reg, LEN);
	close(fd);
}

/* 9. An mlocked mapping collapses; it stays locked and intact. */
TEST_F(collapse, mlocked)
{
	int fd = krs_memfd("krs_mlock", LEN);
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 9, 1);
	ASSERT_EQ(0, mlock(p, LEN)) TH_LOG("mlock: %s", strerror(errno));
	EXPECT_EQ(2048, smaps(p, "Locked"));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(2048, smaps(p, "Locked"));
	EXPECT_EQ(0, bad_page(p, 9, 1));
	EXPECT_EQ(0, bad_file_page(fd, 0, 9, 1));
	EXPECT_EQ(0, munlock(p, LEN));
	munmap(p, LEN);
	close(fd);
}

/*
 * 9b. Swapped-out shmem pages (the VM swaps on zram) are swapped back in
 * by the collapse (shmem_get_folio) and end up in the huge page intact.
 */
TEST_F(collapse, swapped_out_pages)
{
	char swaps[4096];
	int fd;
	char *p;
	ssize_t ret;
	long swapped;

	ASSERT_LT(0, krs_read_file("/proc/swaps", swaps, sizeof(swaps)));
	if (!strchr(swaps, '\n') || !strchr(strchr(swaps, '\n') + 1, '/'))
		SKIP(return, "no swap device");
	fd = krs_memfd("krs_swap", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 13, 1);
	ASSERT_EQ(0, madvise(p, LEN, MADV_PAGEOUT)) TH_LOG("MADV_PAGEOUT: %s", strerror(errno));
	swapped = smaps(p, "Swap");
	if (swapped <= 0)
		SKIP(goto out, "MADV_PAGEOUT swapped nothing out");
	TH_LOG("%ld kB of the extent swapped out", swapped);

	/*
	 * Pages just swapped in may be busy a while longer (an LRU batch,
	 * reclaim of the zram device): SCAN_DEL_PAGE_LRU, EAGAIN, which a
	 * MADV_COLLAPSE caller retries too. Retry for up to about 10 s.
	 */
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	for (int i = 0; i < 30 && ret == -EAGAIN; i++) {
		usleep(100 * 1000);
		ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	}
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, smaps(p, "Swap"));
	EXPECT_EQ(0, bad_page(p, 13, 1));
	EXPECT_EQ(0, bad_file_page(fd, 0, 13, 1));
out:
	munmap(p, LEN);
	close(fd);
}

/* 10. fd= on a memfd mapped nowhere; a later mapping sees a huge page. */
TEST_F(collapse, fd_mode_unmapped)
{
	int fd = krs_memfd("krs_fd", LEN);
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	for (size_t i = 0; i < NPAGES; i++) {
		int r = krs_pwrite_page(fd, 10, i);

		ASSERT_EQ(0, r);
	}
	snap_stats(_metadata, self->stats0);

	ret = do_collapse(_metadata, self, "fd=%d len=2M", fd);
	ASSERT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_SUCCEED", NPAGES, 0);
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(1, stat_delta(_metadata, self, "extents_collapsed"));
	EXPECT_EQ((long long)NPAGES, stat_delta(_metadata, self, "pages_copied"));
	EXPECT_EQ(0, bad_file_page(fd, 0, 10, 1));

	/* Collapsing it again: already huge in the page cache. */
	ret = do_collapse(_metadata, self, "fd=%d len=2M", fd);
	EXPECT_DONE(ret);

	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, smaps(p, "Rss"));
	EXPECT_EQ(0, bad_page(p, 10, 1));
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped")) TH_LOG("the page cache holds no huge page");

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_DONE(ret);
	ASSERT_EQ(1, self->nr_ext);
	EXPECT_TRUE(!strcmp(self->ext[0].result, "SCAN_PMD_MAPPED") ||
		    !strcmp(self->ext[0].result, "SCAN_SUCCEED"))
		TH_LOG("result %s", self->ext[0].result);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 10, 1));
	munmap(p, LEN);
	close(fd);
}

/* fd= on a memfd that is mapped: the mapping's page table is retracted. */
TEST_F(collapse, fd_mode_retracts_mappings)
{
	int fd = krs_memfd("krs_fd_mapped", LEN);
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 16, 1);
	ASSERT_EQ(2048, smaps(p, "Rss"));
	snap_stats(_metadata, self->stats0);

	ret = do_collapse(_metadata, self, "fd=%d len=2M", fd);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(0, smaps(p, "Rss")) TH_LOG("the mapping was not unmapped/retracted");
	snap_stats(_metadata, self->stats1);
	EXPECT_LE(1, stat_delta(_metadata, self, "vmas_retracted"));
	EXPECT_EQ(0, bad_page(p, 16, 1));
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped")) TH_LOG("the mapping kept its PTE table");
	munmap(p, LEN);
	close(fd);
}

/* fd= with an offset, on the second extent of a file with holes. */
TEST_F(collapse, fd_mode_offset_holes)
{
	int fd = krs_memfd("krs_fd_off", 2 * LEN);
	ssize_t ret;

	ASSERT_LE(0, fd);
	for (size_t i = 0; i < NPAGES; i += 2) {
		int r = krs_pwrite_page(fd, 11, NPAGES + i);

		ASSERT_EQ(0, r);
	}
	ASSERT_EQ((long)(LEN / 2 / 512), file_blocks(fd));

	ret = do_collapse(_metadata, self, "fd=%d offset=0x%lx len=%lu", fd, LEN, LEN);
	ASSERT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext);
	check_extent(_metadata, self, 0, LEN, NPAGES, "SCAN_SUCCEED", NPAGES / 2, NPAGES / 2);
	EXPECT_EQ((long)(LEN / 512), file_blocks(fd)) TH_LOG("extent 0 must stay empty");
	for (size_t i = 0; i < NPAGES; i++) {
		int r = i % 2 ? krs_pread_zero(fd, NPAGES + i) :
				krs_pread_check(fd, 11, NPAGES + i);

		ASSERT_EQ(0, r) TH_LOG("file page %zu", NPAGES + i);
	}
	close(fd);
}

/* 11. pid=: collapse a child's mapping as root. */
TEST_F(collapse, pid_mode)
{
	struct mapper_arg arg = { .seed = 12, .pmd_after = true };
	struct krs_child child = { .to_child = -1, .from_child = -1 };
	unsigned long addr = 0;
	char msg[KRS_MSG_SIZE];
	ssize_t ret;
	int fd;

	fd = krs_memfd("krs_pid", LEN);
	ASSERT_LE(0, fd);
	for (size_t i = 0; i < NPAGES; i++) {
		int r = krs_pwrite_page(fd, 12, i);

		ASSERT_EQ(0, r);
	}
	arg.memfd = fd;
	ASSERT_EQ(0, krs_child_start(&child, mapper_child, &arg));
	ASSERT_EQ(0, krs_recv(child.from_child, &addr, sizeof(addr), 10000));
	if (!addr) {
		krs_recv(child.from_child, msg, sizeof(msg), 1000);
		krs_child_wait(&child);
		ASSERT_NE(0UL, addr) TH_LOG("%s", msg);
	}

	ret = do_collapse(_metadata, self, "pid=%d addr=%lx len=2M", child.pid, addr);
	EXPECT_DONE(ret);
	if (ret > 0) {
		check_extent(_metadata, self, 0, addr, 0, "SCAN_SUCCEED", NPAGES, 0);
		EXPECT_EQ(1, self->nr_ext);
	}
	ASSERT_EQ(0, krs_send(child.to_child, "g", 1));
	memset(msg, 0, sizeof(msg));
	EXPECT_EQ(0, krs_recv(child.from_child, msg, sizeof(msg), 20000));
	EXPECT_STREQ("ok", msg);
	EXPECT_EQ(0, krs_child_wait(&child));
	EXPECT_EQ(0, bad_file_page(fd, 0, 12, 1));
	close(fd);
}

struct unpriv_arg {
	int cfd;
	char cmd[128];
};

/* As nobody: write through the collapse fd opened by root; the errno (0: accepted). */
static int unpriv_write(void *varg)
{
	struct unpriv_arg *arg = varg;
	ssize_t n = krs_collapse_write(arg->cfd, arg->cmd, strlen(arg->cmd));

	return n < 0 ? (int)-n : 0;
}

/*
 * A child maps a memfd of @seed pages (PTE-mapped) and must find it
 * untouched at the end (untouched_mapper_end()): for the pid= refusals.
 * Returns the memfd; the child's address is in *@addr.
 */
static int untouched_mapper_start(struct __test_metadata *_metadata, struct krs_child *child,
				  unsigned int seed, unsigned long *addr)
{
	struct mapper_arg arg = { .seed = seed, .untouched = true };
	char msg[KRS_MSG_SIZE];
	int fd = krs_memfd("krs_pid_refused", LEN);

	*addr = 0;
	if (fd < 0)
		return fd;
	for (size_t i = 0; i < NPAGES; i++) {
		if (krs_pwrite_page(fd, seed, i))
			return -EIO;
	}
	arg.memfd = fd;
	if (krs_child_start(child, mapper_child, &arg) ||
	    krs_recv(child->from_child, addr, sizeof(*addr), 10000))
		return -ECHILD;
	if (!*addr) {
		krs_recv(child->from_child, msg, sizeof(msg), 1000);
		krs_child_wait(child);
		TH_LOG("%s", msg);
		return -ECHILD;
	}
	return fd;
}

/* The child checks its mapping is untouched; no collapse happened (stats, file). */
static void untouched_mapper_end(struct __test_metadata *_metadata,
				 struct _test_data_collapse *self,
				 struct krs_child *child, int fd, unsigned int seed)
{
	char msg[KRS_MSG_SIZE] = { 0 };

	ASSERT_EQ(0, krs_send(child->to_child, "g", 1));
	EXPECT_EQ(0, krs_recv(child->from_child, msg, sizeof(msg), 20000));
	EXPECT_STREQ("ok", msg);
	EXPECT_EQ(0, krs_child_wait(child));
	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(0, stat_delta(_metadata, self, "extents_collapsed"));
	EXPECT_EQ(0, stat_delta(_metadata, self, "pages_copied"));
	EXPECT_EQ(0, bad_file_page(fd, 0, seed, 1));
	EXPECT_EQ(0, file_blocks(fd) - (long)(LEN / 512));
	close(fd);
}

/*
 * pid= on a root process from an unprivileged writer: EACCES, mm_access()'s
 * answer to a failed PTRACE_MODE_READ check, as process_madvise(2) returns
 * it; nothing changes.
 */
TEST_F(collapse, pid_mode_unprivileged)
{
	struct krs_child child = { .to_child = -1, .from_child = -1 };
	struct unpriv_arg u = { .cfd = self->cfd };
	unsigned long addr;
	int fd, code;

	fd = untouched_mapper_start(_metadata, &child, 13, &addr);
	ASSERT_LE(0, fd) TH_LOG("mapper child: %s", strerror(-fd));
	snap_stats(_metadata, self->stats0);

	snprintf(u.cmd, sizeof(u.cmd), "pid=%d addr=%lx len=2M", child.pid, addr);
	code = krs_as_nobody(unpriv_write, &u);
	EXPECT_EQ(EACCES, code) TH_LOG("'%s' as nobody: %s", u.cmd,
				       code ? strerror(code) : "accepted");
	snprintf(u.cmd, sizeof(u.cmd), "pid=1 addr=200000 len=2M");
	code = krs_as_nobody(unpriv_write, &u);
	EXPECT_EQ(EACCES, code) TH_LOG("'%s' as nobody: %s", u.cmd,
				       code ? strerror(code) : "accepted");
	untouched_mapper_end(_metadata, self, &child, fd, 13);
}

/* In a child without CAP_SYS_NICE: map a memfd and collapse it with pid=<self>. */
static int capless_self_collapse(void *varg)
{
	struct unpriv_arg *arg = varg;
	int fd = krs_memfd("krs_pid_self", LEN);
	char *p = fd < 0 ? MAP_FAILED : krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ssize_t n;

	if (p == MAP_FAILED)
		return 100;
	fill(p, 16, 1);
	snprintf(arg->cmd, sizeof(arg->cmd), "pid=%d addr=%lx len=2M", getpid(), (unsigned long)p);
	n = krs_collapse_write(arg->cfd, arg->cmd, strlen(arg->cmd));
	if (n < 0)
		return (int)-n;
	return smaps(p, "ShmemPmdMapped") == 2048 && !bad_page(p, 16, 1) ? 0 : 101;
}

/*
 * pid= on another process needs CAP_SYS_NICE after the ptrace check, as
 * process_madvise(2): EPERM without it, nothing changes; on the writer's
 * own mm it is not needed.
 */
TEST_F(collapse, pid_mode_needs_cap_sys_nice)
{
	struct krs_child child = { .to_child = -1, .from_child = -1 };
	struct unpriv_arg u = { .cfd = self->cfd };
	unsigned long addr;
	int fd, code;

	fd = untouched_mapper_start(_metadata, &child, 17, &addr);
	ASSERT_LE(0, fd) TH_LOG("mapper child: %s", strerror(-fd));
	snap_stats(_metadata, self->stats0);

	snprintf(u.cmd, sizeof(u.cmd), "pid=%d addr=%lx len=2M", child.pid, addr);
	code = krs_without_caps(1ULL << CAP_SYS_NICE, unpriv_write, &u);
	EXPECT_EQ(EPERM, code) TH_LOG("'%s' without CAP_SYS_NICE: %s", u.cmd,
				      code ? strerror(code) : "accepted");
	code = krs_without_caps(1ULL << CAP_SYS_NICE, capless_self_collapse, &u);
	EXPECT_EQ(0, code) TH_LOG("'%s' (own mm) without CAP_SYS_NICE: %s", u.cmd,
				  code >= 100 ? "not collapsed" : code ? strerror(code) : "ok");
	/* The second collapse was of another memfd: the child's is untouched. */
	snap_stats(_metadata, self->stats0);
	untouched_mapper_end(_metadata, self, &child, fd, 17);
}

/* pid= of a process that does not exist: ESRCH. */
TEST_F(collapse, pid_mode_no_such_process)
{
	int fd = krs_memfd("krs_pid_esrch", LEN);
	pid_t pid = fork();
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(pid, waitpid(pid, NULL, 0));
	ASSERT_EQ(-1, kill(pid, 0));
	ASSERT_EQ(ESRCH, errno);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 14, 1);

	ret = do_collapse(_metadata, self, "pid=%d addr=%lx len=2M", pid, (unsigned long)p);
	EXPECT_EQ(-ESRCH, ret) TH_LOG("'%s': %s", self->cmd, ret < 0 ? strerror(-ret) : "accepted");
	EXPECT_EQ(0, self->nr_ext);
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 14, 1));
	munmap(p, LEN);
	close(fd);
}

/* 12. dry_run reports what would happen and changes nothing. */
TEST_F(collapse, dry_run_changes_nothing)
{
	const size_t step = 3, present = (NPAGES + step - 1) / step;
	int fd = krs_memfd("krs_dry", LEN);
	long rss, pmd, blocks;
	char *p;
	ssize_t ret;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 15, step);
	rss = smaps(p, "Rss");
	pmd = smaps(p, "ShmemPmdMapped");
	blocks = file_blocks(fd);
	ASSERT_EQ(PAGES_KB(present), rss);
	ASSERT_EQ(0, pmd);
	snap_stats(_metadata, self->stats0);

	ret = do_collapse(_metadata, self, "addr=%lx len=2M dry_run", (unsigned long)p);
	ASSERT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", present,
		     NPAGES - present);
	EXPECT_EQ(rss, smaps(p, "Rss"));
	EXPECT_EQ(pmd, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(blocks, file_blocks(fd));
	EXPECT_EQ(0, bad_file_page(fd, 0, 15, step));

	ret = do_collapse(_metadata, self, "fd=%d len=2M dry_run", fd);
	ASSERT_DONE(ret);
	EXPECT_EQ(1, self->nr_ext);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_SUCCEED", present, NPAGES - present);
	EXPECT_EQ(rss, smaps(p, "Rss"));
	EXPECT_EQ(pmd, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(blocks, file_blocks(fd));
	EXPECT_EQ(0, bad_file_page(fd, 0, 15, step));

	snap_stats(_metadata, self->stats1);
	EXPECT_EQ(0, stat_delta(_metadata, self, "extents_collapsed"));
	EXPECT_EQ(0, stat_delta(_metadata, self, "pages_copied"));
	EXPECT_EQ(0, stat_delta(_metadata, self, "holes_filled"));
	EXPECT_EQ(0, stat_delta(_metadata, self, "vmas_retracted"));

	/* Only data pages are read through the mapping (a hole would be allocated). */
	for (size_t i = 0; i < NPAGES; i += step) {
		size_t bad = krs_check_page(p + i * PAGE, 15, i);

		ASSERT_EQ(0UL, bad);
	}
	EXPECT_EQ(rss, smaps(p, "Rss"));

	/* The real run does what the dry run said. */
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	ASSERT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", present,
		     NPAGES - present);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 15, step));
	munmap(p, LEN);
	close(fd);
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

/*
 * 13. The THP kill switch: with shmem_enabled=deny, MADV_COLLAPSE of a
 * shmem mapping is EINVAL (shmem_allowable_huge_orders() refuses even a
 * forced collapse), and so are addr= and fd= (SCAN_VMA_CHECK): no huge
 * folio is built. Back to the previous setting, fd= collapses.
 */
TEST_F(collapse, thp_policy_deny)
{
	int fd = krs_memfd("krs_deny", LEN);
	char prev[32];
	ssize_t ret;
	char *p;

	ASSERT_LE(0, fd);
	if (krs_sysfs_choice(SHMEM_ENABLED, prev, sizeof(prev)))
		SKIP(return, "no %s", SHMEM_ENABLED);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 18, 1);
	ASSERT_EQ(0, krs_write_str(SHMEM_ENABLED, "deny"));

	ret = do_collapse(_metadata, self, "fd=%d len=2M", fd);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("'%s' under deny: report:\n%s", self->cmd, self->report);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_VMA_CHECK", 0, 0);
	ret = do_collapse(_metadata, self, "fd=%d len=2M dry_run", fd);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("'%s' under deny: report:\n%s", self->cmd, self->report);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("'%s' under deny: report:\n%s", self->cmd, self->report);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_VMA_CHECK", 0, 0);
	EXPECT_EQ(-1, madvise(p, LEN, MADV_COLLAPSE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));

	ASSERT_EQ(0, krs_write_str(SHMEM_ENABLED, prev));
	/* The page cache is still small: the scan says it would collapse. */
	ret = do_collapse(_metadata, self, "fd=%d len=2M dry_run", fd);
	EXPECT_DONE(ret);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_SUCCEED", NPAGES, 0);
	ret = do_collapse(_metadata, self, "fd=%d len=2M", fd);
	EXPECT_DONE(ret);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(0, bad_page(p, 18, 1));
	munmap(p, LEN);
	close(fd);
}

/*
 * 14. dry_run counts what the scan saw: stopped at a page with an extra
 * reference (SCAN_PAGE_COUNT), the pages before it, no holes; an extent
 * already huge, nothing to copy and no holes.
 */
TEST_F(collapse, dry_run_counts_what_it_saw)
{
	const size_t pinned = 100;
	int fd = krs_memfd("krs_dry_seen", LEN);
	int pfd[2];
	ssize_t ret;
	char *p;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 19, 1);
	ASSERT_EQ(0, krs_pin_page(p + pinned * PAGE, pfd));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M dry_run", (unsigned long)p);
	EXPECT_EQ(-EAGAIN, ret) TH_LOG("report:\n%s", self->report);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_PAGE_COUNT", pinned, 0);
	ret = do_collapse(_metadata, self, "fd=%d len=2M dry_run", fd);
	EXPECT_EQ(-EAGAIN, ret) TH_LOG("report:\n%s", self->report);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_PAGE_COUNT", pinned, 0);
	close(pfd[0]);
	close(pfd[1]);

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	ASSERT_DONE(ret);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M dry_run", (unsigned long)p);
	EXPECT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_PMD_MAPPED", 0, 0);
	ret = do_collapse(_metadata, self, "fd=%d len=2M dry_run", fd);
	EXPECT_DONE(ret);
	check_extent(_metadata, self, 0, 0, 0, "SCAN_PTE_MAPPED_HUGEPAGE", 0, 0);
	EXPECT_EQ(0, bad_page(p, 19, 1));
	munmap(p, LEN);
	close(fd);
}

/*
 * 15. hugepage_vma_revalidate()'s order: an extent in a gap below a later
 * VMA is SCAN_ADDRESS_RANGE (find_vma() found the VMA above), and an
 * extent only partly covered by an ineligible VMA is SCAN_ADDRESS_RANGE
 * before SCAN_VMA_CHECK.
 */
TEST_F(collapse, revalidate_order)
{
	int fd = krs_memfd("krs_revalidate", 2 * LEN);
	ssize_t ret;
	char *p;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(2 * LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p + LEN, 22, 1);
	ASSERT_EQ(0, munmap(p, LEN));

	ret = do_collapse(_metadata, self, "addr=%lx len=4M", (unsigned long)p);
	EXPECT_EQ(-ENOMEM, ret) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(2, self->nr_ext);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_ADDRESS_RANGE", 0, 0);
	check_extent(_metadata, self, 1, (unsigned long)p + LEN, NPAGES, "SCAN_SUCCEED", NPAGES, 0);
	EXPECT_EQ(0, bad_page(p + LEN, 22, 1));
	munmap(p + LEN, LEN);

	/* [p, p + 1M) VM_NOHUGEPAGE, [p + 1M, p + 4M) eligible. */
	p = krs_map_aligned(2 * LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, madvise(p, LEN / 2, MADV_NOHUGEPAGE));
	ret = do_collapse(_metadata, self, "addr=%lx len=4M", (unsigned long)p);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(2, self->nr_ext);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_ADDRESS_RANGE", 0, 0);
	/* The page cache is huge already (above): only the PMD is new. */
	check_extent(_metadata, self, 1, (unsigned long)p + LEN, NPAGES, "SCAN_SUCCEED", 0, 0);
	EXPECT_EQ(-1, madvise(p, 2 * LEN, MADV_COLLAPSE));
	EXPECT_EQ(EINVAL, errno);
	munmap(p, 2 * LEN);
	close(fd);
}

/*
 * 16. prctl(PR_SET_THP_DISABLE): MADV_COLLAPSE refuses the VMA
 * (collapse_possible(), EINVAL); the module reports SCAN_VMA_CHECK, EINVAL.
 */
TEST_F(collapse, prctl_thp_disable)
{
	int fd = krs_memfd("krs_prctl", LEN);
	ssize_t ret;
	char *p;

	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 23, 1);
	ASSERT_EQ(0, prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("report:\n%s", self->report);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_VMA_CHECK", 0, 0);
	EXPECT_EQ(-1, madvise(p, LEN, MADV_COLLAPSE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, smaps(p, "ShmemPmdMapped"));

	ASSERT_EQ(0, prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0));
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_DONE(ret);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 23, 1));
	munmap(p, LEN);
	close(fd);
}

#define CGROUP "/sys/fs/cgroup"

/* thp_collapse_alloc of a cgroup's memory.stat, once it moved from @old (up to 5 s). */
static long memcg_collapse_allocs(const char *cg, long old)
{
	char path[128], buf[16384], *line;
	long v = -1;

	snprintf(path, sizeof(path), "%s/memory.stat", cg);
	for (int i = 0; i < 50; i++) {
		if (krs_read_file(path, buf, sizeof(buf)) < 0)
			return -1;
		line = strstr(buf, "\nthp_collapse_alloc ");
		if (!line)
			return -1;
		v = strtol(line + strlen("\nthp_collapse_alloc "), NULL, 10);
		if (v != old)
			break;
		usleep(100 * 1000);
	}
	return v;
}

/*
 * 17. The memcg event of alloc_charge_folio(): a collapse counts
 * thp_collapse_alloc in the memory.stat of the cgroup charged for the new
 * folio, as MADV_COLLAPSE does.
 */
TEST_F(collapse, memcg_collapse_event)
{
	char cg[64], pid[16];
	int fd = krs_memfd("krs_memcg", 2 * LEN);
	long a0, a1, a2;
	ssize_t ret;
	char *p;

	ASSERT_LE(0, fd);
	if (access(CGROUP "/cgroup.controllers", F_OK))
		mount("none", CGROUP, "cgroup2", 0, NULL);
	if (krs_write_str(CGROUP "/cgroup.subtree_control", "+memory"))
		SKIP(return, "no cgroup2 memory controller");
	snprintf(cg, sizeof(cg), CGROUP "/krs_memcg_%d", getpid());
	ASSERT_EQ(0, mkdir(cg, 0755));
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(self->cmd, sizeof(self->cmd), "%s/cgroup.procs", cg);
	ASSERT_EQ(0, krs_write_str(self->cmd, pid));

	p = krs_map_aligned(2 * LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 24, 1);
	fill(p + LEN, 25, 1);
	a0 = memcg_collapse_allocs(cg, -1);
	ASSERT_LE(0, a0);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_DONE(ret);
	a1 = memcg_collapse_allocs(cg, a0);
	EXPECT_EQ(a0 + 1, a1) TH_LOG("the module's collapse");
	EXPECT_EQ(0, madvise(p + LEN, LEN, MADV_COLLAPSE));
	a2 = memcg_collapse_allocs(cg, a1);
	EXPECT_EQ(a1 + 1, a2) TH_LOG("MADV_COLLAPSE");
	EXPECT_EQ(0, bad_page(p, 24, 1));
	EXPECT_EQ(0, bad_page(p + LEN, 25, 1));

	munmap(p, 2 * LEN);
	close(fd);
	EXPECT_EQ(0, krs_write_str(CGROUP "/cgroup.procs", pid));
	rmdir(cg);
}

#define MTHP_STATS "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/stats/"

/*
 * The counters a file collapse moves (7.2's alloc_charge_folio(),
 * collapse_file()): /proc/vmstat events and node counters, and the
 * per-size stats of hugepages-2048kB.
 */
static const char *const collapse_counters[] = {
	"thp_collapse_alloc", "thp_collapse_alloc_failed", "nr_shmem_hugepages",
	"nr_file_hugepages", "nr_shmem_pmdmapped", "thp_file_mapped",
	MTHP_STATS "collapse_alloc", MTHP_STATS "collapse_alloc_failed",
	MTHP_STATS "collapse_exceed_none_pte", MTHP_STATS "collapse_exceed_swap_pte",
};

#define NR_COUNTERS ARRAY_SIZE(collapse_counters)

/* A /proc/vmstat line, or a per-size stat file (a path); -1 if absent. */
static long counter(const char *name)
{
	char buf[64];

	if (name[0] != '/')
		return krs_vmstat(name);
	if (krs_read_file(name, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

static void read_counters(long *v)
{
	krs_vm_stat_refresh();
	for (size_t i = 0; i < NR_COUNTERS; i++)
		v[i] = counter(collapse_counters[i]);
}

/*
 * 17b. Every counter MADV_COLLAPSE moves, the module moves by as much: one
 * twin collapsed by MADV_COLLAPSE, the other by the module. (A failed
 * allocation's counters: the module's side in fail.alloc of
 * khugepaged_rs_race; MADV_COLLAPSE's would need memory exhausted.)
 */
TEST_F(collapse, counters_match_madv_collapse)
{
	int fd[2] = { krs_memfd("krs_cnt_c", LEN), krs_memfd("krs_cnt_rust", LEN) };
	long v0[NR_COUNTERS], v1[NR_COUNTERS], v2[NR_COUNTERS];
	char *p[2];
	ssize_t ret;

	for (int i = 0; i < 2; i++) {
		ASSERT_LE(0, fd[i]);
		p[i] = krs_map_aligned(LEN, RW, MAP_SHARED, fd[i], 0);
		ASSERT_NE(MAP_FAILED, p[i]);
		fill(p[i], 26, 2);
	}
	if (access(MTHP_STATS "collapse_alloc", R_OK))
		SKIP(return, "no %scollapse_alloc", MTHP_STATS);
	read_counters(v0);
	ASSERT_EQ(0, madvise(p[0], LEN, MADV_COLLAPSE))
		TH_LOG("MADV_COLLAPSE: %s", strerror(errno));
	read_counters(v1);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p[1]);
	EXPECT_DONE(ret);
	read_counters(v2);
	for (size_t i = 0; i < NR_COUNTERS; i++) {
		if (v0[i] < 0)
			continue;
		EXPECT_EQ(v1[i] - v0[i], v2[i] - v1[i])
			TH_LOG("%s: MADV_COLLAPSE moved it by %ld, the module by %ld",
			       collapse_counters[i], v1[i] - v0[i], v2[i] - v1[i]);
	}
	EXPECT_EQ(1, v1[0] - v0[0]) TH_LOG("thp_collapse_alloc");
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(2048, smaps(p[i], "ShmemPmdMapped"));
		EXPECT_EQ(0, bad_page(p[i], 26, 2));
		munmap(p[i], LEN);
		close(fd[i]);
	}
}

#define TRACING "/sys/kernel/tracing"

/* Read an event's format file into @buf; bytes or -errno. */
static ssize_t event_format(const char *inst, const char *event, char *buf, size_t size)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/events/khugepaged_rs/%s/format", inst, event);
	return krs_read_file(path, buf, size);
}

/* The first line of @trace holding all of @a, @b and @c (NULL: any). */
static const char *trace_line(const char *trace, const char *a, const char *b, const char *c)
{
	for (const char *line = trace; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		char one[1024];

		snprintf(one, sizeof(one), "%.*s", (int)n, line);
		if (*one != '#' && strstr(one, a) && (!b || strstr(one, b)) &&
		    (!c || strstr(one, c)))
			return line;
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

/*
 * 18. The tracepoints: with khugepaged_rs:* enabled (in a tracefs instance
 * of its own), a collapse emits scan_file, collapse_file, retract and
 * install_pmd, whose fields match the report (result, pages copied,
 * holes); each event's format file describes its fields, as perf and
 * trace-cmd read them. 120 s: under KASAN and lockdep on a loaded host it
 * took over 30.
 */
TEST_F_TIMEOUT(collapse, tracepoints_match_the_report, 120)
{
	static const char *const events[] = {
		"scan_file", "collapse_file", "retract", "install_pmd",
	};
	const size_t step = 3, present = (NPAGES + step - 1) / step;
	char inst[96], path[192], want[128], addr[64];
	static char trace[1 << 16];
	int fd = krs_memfd("krs_trace", LEN);
	const char *line;
	ssize_t ret;
	char *p;

	ASSERT_LE(0, fd);
	if (access(TRACING "/instances", F_OK))
		mount("nodev", TRACING, "tracefs", 0, NULL);
	if (access(TRACING "/instances", F_OK))
		SKIP(return, "no tracefs");
	snprintf(inst, sizeof(inst), TRACING "/instances/krs_events_%d", getpid());
	ASSERT_EQ(0, mkdir(inst, 0755));
	for (size_t i = 0; i < ARRAY_SIZE(events); i++) {
		ret = event_format(inst, events[i], trace, sizeof(trace));
		EXPECT_LT(0, ret) TH_LOG("khugepaged_rs:%s has no format file", events[i]);
		if (ret > 0) {
			EXPECT_NE(NULL, strstr(trace, "field:int result;")) TH_LOG("%s", trace);
			EXPECT_NE(NULL, strstr(trace, "print fmt:")) TH_LOG("%s", trace);
		}
	}
	ASSERT_LT(0, event_format(inst, "collapse_file", trace, sizeof(trace)));
	EXPECT_NE(NULL, strstr(trace, "field:int copied;"));
	EXPECT_NE(NULL, strstr(trace, "field:int holes;"));
	EXPECT_NE(NULL, strstr(trace, "field:int node;"));
	snprintf(path, sizeof(path), "%s/events/khugepaged_rs/enable", inst);
	ASSERT_EQ(0, krs_write_str(path, "1"));

	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	fill(p, 26, step);
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_EQ(0, krs_write_str(path, "0"));
	EXPECT_DONE(ret);
	check_extent(_metadata, self, 0, (unsigned long)p, 0, "SCAN_SUCCEED", present,
		     NPAGES - present);

	snprintf(path, sizeof(path), "%s/trace", inst);
	ASSERT_LT(0, krs_read_file(path, trace, sizeof(trace)));
	snprintf(addr, sizeof(addr), "addr=%lx,", (unsigned long)p);
	/* As upstream: the scan's and the collapse's events carry MADV_COLLAPSE's result. */
	snprintf(want, sizeof(want), "present=%zu, swap=0, result=SCAN_PTE_MAPPED_HUGEPAGE",
		 present);
	EXPECT_NE(NULL, trace_line(trace, "scan_file:", want, "filename=memfd:krs_trace"))
		TH_LOG("no scan_file event with '%s':\n%s", want, trace);
	/* node: the old folios' node (collapse_find_target_node()), 0 or more. */
	snprintf(want, sizeof(want), "copied=%zu, holes=%zu, node=", present, NPAGES - present);
	line = trace_line(trace, "collapse_file:", want, addr);
	EXPECT_NE(NULL, line) TH_LOG("no collapse_file event with '%s':\n%s", want, trace);
	if (line) {
		const char *nl = strchr(line, '\n');
		const char *node = strstr(line, "node=");
		const char *res = strstr(line, ", result=SCAN_PTE_MAPPED_HUGEPAGE");
		int n = nl ? (int)(nl - line) : 200;

		EXPECT_TRUE(res && (!nl || res < nl)) TH_LOG("%.*s", n, line);
		EXPECT_TRUE(node && node[5] >= '0' && node[5] <= '9') TH_LOG("%.*s", n, line);
	}
	EXPECT_NE(NULL, trace_line(trace, "retract:", addr, "result=retracted"))
		TH_LOG("no retract event for %s:\n%s", addr, trace);
	EXPECT_NE(NULL, trace_line(trace, "install_pmd:", addr, "result=SCAN_SUCCEED"))
		TH_LOG("no install_pmd event for %s:\n%s", addr, trace);
	EXPECT_EQ(2048, smaps(p, "ShmemPmdMapped"));
	EXPECT_EQ(0, bad_page(p, 26, step));
	munmap(p, LEN);
	close(fd);
	rmdir(inst);
}

TEST_HARNESS_MAIN
