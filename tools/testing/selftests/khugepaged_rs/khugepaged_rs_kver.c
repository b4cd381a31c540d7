// SPDX-License-Identifier: GPL-2.0
/*
 * What changed in what the module mirrors between the supported kernels
 * (Documentation/design.rst, "Kernel versions"), one test per change, each
 * run beside the running kernel's own MADV_COLLAPSE on a twin memfd where
 * there is something to compare. A test of a feature the running kernel
 * does not have skips.
 *
 *  kver.uffd_rwp_other_mapping_keeps_its_table  7.3: a VMA registered for
 *      userfaultfd read-write protection (RWP) keeps its PTE table when
 *      another mapping of the file is collapsed (file_backed_vma_is_retractable)
 *  kver.uffd_rwp_mapping_stays_pte_mapped       7.3: collapsing the RWP
 *      mapping itself maps no PMD there: SCAN_PTE_UFFD, EINVAL
 *      (try_collapse_pte_mapped_thp)
 *  kver.scan_pfn_is_the_folio_that_stopped_it   7.3 (failed_pfn), 7.2 alike:
 *      scan_file's pfn is the folio the scan stopped on, -1 when none did
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#define LEN KRS_PMD_SIZE
#define NPAGES KRS_PMD_PAGES
#define PAGE KRS_PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)
#define MAX_EXTENTS 4

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

FIXTURE(kver) {
	int cfd;
	char cmd[128];
	char report[4096];
	struct krs_extent ext[MAX_EXTENTS];
	int nr_ext;
	long status;
};

FIXTURE_SETUP(kver)
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

FIXTURE_TEARDOWN(kver)
{
	if (self->cfd >= 0)
		close(self->cfd);
}

/* Write a collapse command, read its report back; the write's result. */
static ssize_t __printf(3, 4)
do_collapse(struct __test_metadata *_metadata, struct _test_data_kver *self,
	    const char *fmt, ...)
{
	va_list ap;
	ssize_t ret, n;

	va_start(ap, fmt);
	vsnprintf(self->cmd, sizeof(self->cmd), fmt, ap);
	va_end(ap);
	ret = krs_collapse_cmd(self->cfd, self->cmd);
	n = krs_collapse_report(self->cfd, self->report, sizeof(self->report));
	EXPECT_LE(0, n) TH_LOG("reading the report: %s", strerror(-n));
	self->status = 0;
	self->nr_ext = krs_report_parse(self->report, self->ext, MAX_EXTENTS, &self->status);
	EXPECT_LE(1, self->nr_ext) TH_LOG("'%s': report:\n%s", self->cmd, self->report);
	EXPECT_EQ(ret, self->status) TH_LOG("'%s': report:\n%s", self->cmd, self->report);
	return ret;
}

static long smaps(void *p, const char *field)
{
	return krs_smaps_kb(0, (unsigned long)p, field);
}

/*
 * One twin of the RWP tests: a memfd mapped twice, every page written
 * through the first mapping (@a) and read through the second (@r, which
 * so has a full PTE table), @r registered for RWP with one page read-write
 * protected (UFFDIO_RWPROTECT: its PTE carries the uffd bit), and a
 * handler that lifts the protection of a page accessed.
 */
struct rwp_twin {
	int fd, uffd;
	char *a, *r;
	struct krs_uffd_handler h;
	const char *why;	/* why RWP cannot be set up (the test skips) */
};

#define RWP_PAGE 3

static int rwp_twin_setup(struct rwp_twin *t, const char *name, unsigned int seed)
{
	memset(t, 0, sizeof(*t));
	t->uffd = -1;
	t->fd = krs_memfd(name, LEN);
	if (t->fd < 0)
		return t->fd;
	t->a = krs_map_aligned(LEN, RW, MAP_SHARED, t->fd, 0);
	t->r = krs_map_aligned(LEN, RW, MAP_SHARED, t->fd, 0);
	if (t->a == MAP_FAILED || t->r == MAP_FAILED)
		return -ENOMEM;
	for (size_t i = 0; i < NPAGES; i++)
		krs_fill_page(t->a + i * PAGE, seed, i);
	for (size_t i = 0; i < NPAGES; i++)
		if (krs_check_page(t->r + i * PAGE, seed, i))
			return -EIO;
	t->uffd = krs_uffd_setup(KRS_UFFD_FEATURE_RWP, t->r, LEN, KRS_UFFDIO_REGISTER_MODE_RWP,
				 &t->why);
	if (t->uffd < 0)
		return t->uffd;
	t->why = NULL;
	if (krs_uffd_rwp(t->uffd, t->r + RWP_PAGE * PAGE, PAGE, true))
		return -errno;
	t->h.uffd = t->uffd;
	t->h.how = KRS_UFFD_RWP_CLEAR;
	t->h.reg_addr = t->r;
	t->h.reg_len = LEN;
	return krs_uffd_handler_start(&t->h);
}

static void rwp_twin_teardown(struct rwp_twin *t)
{
	krs_uffd_handler_stop(&t->h);
	if (t->uffd >= 0)
		close(t->uffd);
	if (t->a && t->a != MAP_FAILED)
		munmap(t->a, LEN);
	if (t->r && t->r != MAP_FAILED)
		munmap(t->r, LEN);
	if (t->fd >= 0)
		close(t->fd);
}

/*
 * What a twin shows of its RWP mapping after a collapse. The collapse
 * unmapped every old page from every mapping (try_to_unmap()), so @r is
 * read again first: a table it kept is refilled by PTEs, while a retracted
 * one leaves the PMD empty and the refault maps the huge folio by a PMD.
 */
struct rwp_seen {
	long r_rss, r_pmd, a_pmd;
	unsigned int rwp_faults;	/* while reading the protected page */
	int bad;			/* 1 + the first wrong page through @r, or 0 */
};

static void rwp_look(struct rwp_twin *t, unsigned int seed, struct rwp_seen *s)
{
	s->bad = krs_check_page(t->r + RWP_PAGE * PAGE, seed, RWP_PAGE) ? RWP_PAGE + 1 : 0;
	s->rwp_faults = __atomic_load_n(&t->h.rwp_faults, __ATOMIC_SEQ_CST);
	for (size_t i = 0; i < NPAGES && !s->bad; i++)
		if (krs_check_page(t->r + i * PAGE, seed, i))
			s->bad = (int)i + 1;
	s->r_rss = smaps(t->r, "Rss");
	s->r_pmd = smaps(t->r, "ShmemPmdMapped");
	s->a_pmd = smaps(t->a, "ShmemPmdMapped");
}

/*
 * 1. 7.3: RWP, like uffd-wp, keeps per-PTE state in the VMA's table
 * (the protected PTE carries the uffd bit), so khugepaged does not retract
 * an RWP VMA's table (file_backed_vma_is_retractable(): userfaultfd_protected()).
 * Collapsing the other mapping of the file succeeds and maps it by a PMD;
 * the RWP mapping keeps its table: read again, it is PTE-mapped, not by a
 * PMD. The kernel's MADV_COLLAPSE on a twin shows the same, and the same
 * RWP faults while the protected page is read (the collapse's unmapping
 * of the old pages decides those, not the table).
 */
TEST_F(kver, uffd_rwp_other_mapping_keeps_its_table)
{
	struct rwp_twin mod, twin;
	struct rwp_seen m, k;
	ssize_t ret;
	int err;

	err = rwp_twin_setup(&mod, "krs_rwp_other", 41);
	if (err && mod.why) {
		rwp_twin_teardown(&mod);
		SKIP(return, "no userfaultfd RWP (7.3): %s: %s", mod.why, strerror(-err));
	}
	ASSERT_EQ(0, err) TH_LOG("setting up: %s", strerror(-err));
	ASSERT_EQ(0, rwp_twin_setup(&twin, "krs_rwp_other_twin", 41));
	ASSERT_EQ(2048, smaps(mod.r, "Rss"));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)mod.a);
	EXPECT_EQ((ssize_t)strlen(self->cmd), ret) TH_LOG("report:\n%s", self->report);
	EXPECT_STREQ("SCAN_SUCCEED", self->ext[0].result);
	EXPECT_EQ(0, madvise(twin.a, LEN, MADV_COLLAPSE))
		TH_LOG("MADV_COLLAPSE: %s", strerror(errno));

	rwp_look(&mod, 41, &m);
	rwp_look(&twin, 41, &k);
	/* The kernel's own behaviour, then the module's against it. */
	EXPECT_EQ(2048, k.a_pmd);
	EXPECT_EQ(2048, k.r_rss);
	EXPECT_EQ(0, k.r_pmd) TH_LOG("MADV_COLLAPSE retracted the RWP VMA's table");
	EXPECT_EQ(k.a_pmd, m.a_pmd);
	EXPECT_EQ(k.r_rss, m.r_rss);
	EXPECT_EQ(k.r_pmd, m.r_pmd) TH_LOG("the RWP VMA lost its page table: %ld kB PMD-mapped",
					   m.r_pmd);
	EXPECT_EQ(k.rwp_faults, m.rwp_faults)
		TH_LOG("reading the protected page: %u RWP faults, MADV_COLLAPSE's twin %u",
		       m.rwp_faults, k.rwp_faults);
	EXPECT_EQ(0, m.bad) TH_LOG("page %d", m.bad - 1);
	EXPECT_EQ(0, k.bad) TH_LOG("page %d", k.bad - 1);
	rwp_twin_teardown(&mod);
	rwp_twin_teardown(&twin);
}

/*
 * 2. 7.3: collapsing the RWP mapping itself builds the huge folio but maps
 * no PMD there (try_collapse_pte_mapped_thp(): userfaultfd_protected() ->
 * SCAN_PTE_UFFD, which MADV_COLLAPSE returns as EINVAL): the VMA stays
 * PTE-mapped and the protected page still faults. The twin shows the same.
 */
TEST_F(kver, uffd_rwp_mapping_stays_pte_mapped)
{
	struct rwp_twin mod, twin;
	struct rwp_seen m, k;
	int err, kerr = 0;
	ssize_t ret;

	err = rwp_twin_setup(&mod, "krs_rwp_self", 42);
	if (err && mod.why) {
		rwp_twin_teardown(&mod);
		SKIP(return, "no userfaultfd RWP (7.3): %s: %s", mod.why, strerror(-err));
	}
	ASSERT_EQ(0, err) TH_LOG("setting up: %s", strerror(-err));
	ASSERT_EQ(0, rwp_twin_setup(&twin, "krs_rwp_self_twin", 42));

	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)mod.r);
	if (madvise(twin.r, LEN, MADV_COLLAPSE))
		kerr = errno;
	EXPECT_EQ(EINVAL, kerr) TH_LOG("MADV_COLLAPSE of the RWP mapping: %s", strerror(kerr));
	EXPECT_EQ(-kerr, ret) TH_LOG("'%s' -> %zd, MADV_COLLAPSE %s; report:\n%s", self->cmd, ret,
				     strerror(kerr), self->report);
	EXPECT_STREQ(krs_scan_names[KRS_SCAN_PTE_UFFD], self->ext[0].result)
		TH_LOG("report:\n%s", self->report);

	rwp_look(&mod, 42, &m);
	rwp_look(&twin, 42, &k);
	EXPECT_EQ(0, k.r_pmd);
	EXPECT_EQ(2048, k.r_rss);
	EXPECT_EQ(k.r_pmd, m.r_pmd) TH_LOG("a PMD was installed in the RWP VMA");
	EXPECT_EQ(k.r_rss, m.r_rss);
	EXPECT_EQ(k.rwp_faults, m.rwp_faults)
		TH_LOG("reading the protected page: %u RWP faults, MADV_COLLAPSE's twin %u",
		       m.rwp_faults, k.rwp_faults);
	EXPECT_EQ(0, m.bad) TH_LOG("page %d", m.bad - 1);
	/* The other mapping is collapsed the usual way afterwards. */
	ret = do_collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)mod.a);
	EXPECT_EQ((ssize_t)strlen(self->cmd), ret) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(2048, smaps(mod.a, "ShmemPmdMapped"));
	EXPECT_EQ(0, smaps(mod.r, "ShmemPmdMapped"));
	rwp_twin_teardown(&mod);
	rwp_twin_teardown(&twin);
}

#define TRACING "/sys/kernel/tracing"

/* The pfn /proc/self/pagemap gives for @addr (root), or 0. */
static unsigned long pagemap_pfn(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / PAGE * sizeof(e))) != sizeof(e))
		e = 0;
	close(fd);
	return (e >> 63) & 1 ? (unsigned long)(e & ((1ULL << 55) - 1)) : 0;
}

/*
 * The pfn and result of the @nth (from 0) scan_file event of file @name in
 * @trace: 1, or 0 if there is none.
 */
static int scan_event(const char *trace, const char *name, int nth, unsigned long *pfn,
		      char *result, size_t size)
{
	for (const char *line = trace; line && *line;) {
		const char *end = strchr(line, '\n');
		char one[1024], *p, *r;

		snprintf(one, sizeof(one), "%.*s", end ? (int)(end - line) : (int)strlen(line),
			 line);
		line = end ? end + 1 : NULL;
		p = strstr(one, "scan_pfn=");
		r = strstr(one, "result=");
		if (*one == '#' || !strstr(one, "scan_file:") || !strstr(one, name) || !p || !r)
			continue;
		if (nth-- == 0) {
			*pfn = strtoul(p + strlen("scan_pfn="), NULL, 16);
			snprintf(result, size, "%s", r + strlen("result="));
			return 1;
		}
	}
	return 0;
}

/*
 * 3. scan_file's pfn: upstream 7.3 records the pfn of the folio that
 * stopped the scan (failed_pfn), -1 otherwise; 7.2 passed the folio its
 * loop stopped on, NULL when the loop went through: the same values. A
 * scan that goes through (then collapses) reports -1; a scan that stops
 * on the huge folio it finds (the second fd= collapse) reports that
 * folio's pfn, as /proc/self/pagemap shows it mapped.
 */
TEST_F_TIMEOUT(kver, scan_pfn_is_the_folio_that_stopped_it, 120)
{
	char inst[96], path[192], result[64];
	static char trace[1 << 16];
	unsigned long pfn = 0, huge;
	int fd = krs_memfd("krs_scan_pfn", LEN);
	ssize_t ret;
	char *p;

	ASSERT_LE(0, fd);
	if (access(TRACING "/instances", F_OK))
		mount("nodev", TRACING, "tracefs", 0, NULL);
	if (access(TRACING "/instances", F_OK))
		SKIP(return, "no tracefs");
	snprintf(inst, sizeof(inst), TRACING "/instances/krs_kver_%d", getpid());
	ASSERT_EQ(0, mkdir(inst, 0755));
	snprintf(path, sizeof(path), "%s/events/khugepaged_rs/scan_file/enable", inst);
	ASSERT_EQ(0, krs_write_str(path, "1"));
	for (size_t i = 0; i < NPAGES; i++)
		ASSERT_EQ(0, krs_pwrite_page(fd, 43, i));

	ret = do_collapse(_metadata, self, "fd=%d len=2M", fd);
	EXPECT_EQ((ssize_t)strlen(self->cmd), ret) TH_LOG("report:\n%s", self->report);
	EXPECT_STREQ("SCAN_SUCCEED", self->ext[0].result);
	ret = do_collapse(_metadata, self, "fd=%d len=2M", fd);
	EXPECT_EQ(0, krs_write_str(path, "0"));
	EXPECT_STREQ("SCAN_PTE_MAPPED_HUGEPAGE", self->ext[0].result)
		TH_LOG("report:\n%s", self->report);

	snprintf(path, sizeof(path), "%s/trace", inst);
	ASSERT_LT(0, krs_read_file(path, trace, sizeof(trace)));
	p = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0UL, krs_check_page(p, 43, 0));
	huge = pagemap_pfn(p);
	ASSERT_NE(0UL, huge) TH_LOG("no pfn in /proc/self/pagemap");

	ASSERT_EQ(1, scan_event(trace, "memfd:krs_scan_pfn", 0, &pfn, result, sizeof(result)))
		TH_LOG("no scan_file event:\n%s", trace);
	EXPECT_EQ(-1UL, pfn) TH_LOG("the scan that went through (%s) reported pfn 0x%lx", result,
				    pfn);
	ASSERT_EQ(1, scan_event(trace, "memfd:krs_scan_pfn", 1, &pfn, result, sizeof(result)))
		TH_LOG("no second scan_file event:\n%s", trace);
	EXPECT_STREQ("SCAN_PTE_MAPPED_HUGEPAGE", result);
	EXPECT_EQ(huge, pfn) TH_LOG("the scan stopped on the huge folio 0x%lx, reported 0x%lx",
				    huge, pfn);
	munmap(p, LEN);
	close(fd);
	rmdir(inst);
}

TEST_HARNESS_MAIN
