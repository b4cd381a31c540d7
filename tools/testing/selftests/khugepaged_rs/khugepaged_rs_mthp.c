// SPDX-License-Identifier: GPL-2.0
/*
 * Extents whose page cache holds large folios below PMD order (mTHP): the
 * multi-index entries an order 1..8 folio leaves in the xarray (sibling
 * entries beside its first slot for orders 1..5, and in the node above for
 * orders 7 and 8), next to holes and small pages. Every case builds three
 * twin files the same way and checks, from /proc/self/pagemap and
 * /proc/kpageflags (compound head and tail bits), that their folios are the
 * large ones the case means (for shmem, also that the per-size shmem_alloc
 * counters rose by as many). Then one twin is collapsed by MADV_COLLAPSE,
 * one by the module's addr= and one by fd= (each after a dry_run), and the
 * outcomes compared: the result (0 or the errno), the PMD mapping (smaps),
 * the folio left in the page cache (one of 512 pages), every byte of the
 * extents, and the report's copied and holes (pages, not folios) against
 * what the case built.
 *
 * - shmem.<plan>.twins: a memfd whose folios are allocated at fault time
 *   by the per-size knobs (hugepages-<size>kB/shmem_enabled "always", one
 *   size at a time): 16 KiB folios with holes, 64 KiB folios with holes,
 *   every order from 0 to 8 over two extents;
 * - tmpfs.within_size: a tmpfs mounted huge=within_size, the file grown by
 *   writes, each of which gets the largest folio within the size then;
 * - tmpfs.pte_dirty_bits_kept: not a twin case but the loss the stress
 *   found: on a tmpfs mounted huge=always, a PMD folio allocated by a read
 *   fault (clean), mapped by PTEs (after an mremap to an unaligned address
 *   and back) and written through them (only the PTEs are dirty); the
 *   addr= collapse, which clears those PTEs to map the folio by a PMD,
 *   must leave the folio dirty, or the page cache drops it (drop_caches,
 *   reclaim) and the file reads as zeroes. MADV_COLLAPSE does the same on
 *   a twin file and its outcome is printed (upstream clears the PTEs the
 *   same way).
 * - file.<fs>.*: XFS and ext4 files whose large folios come from large
 *   buffered writes, or from readahead after the page cache was dropped,
 *   all of the file cached, or with two ranges dropped again (the collapse
 *   reads them back in).
 *
 * The fixtures' teardown restores every sysfs knob a test changed; a knob
 * or a filesystem that does not exist skips the case.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define KPF_HEAD_BIT 15
#define KPF_TAIL_BIT 16
#define KPF_THP_BIT 22

#define PAGE KRS_PAGE_SIZE
#define PMD KRS_PMD_SIZE
#define PMD_PAGES KRS_PMD_PAGES
#define PMD_ORDER 9
#define PMD_KB ((long)(PMD >> 10))
#define MAX_EXT 2
#define MAX_PAGES (MAX_EXT * PMD_PAGES)
#define MAX_KNOBS 24
#define MAX_PATHS 4
#define THP_DIR "/sys/kernel/mm/transparent_hugepage"
#define RW (PROT_READ | PROT_WRITE)

/* ---- state every fixture keeps: knobs to restore, files, a mount -------- */

struct knob {
	char path[128];
	char prev[32];
};

struct ctx {
	int cfd;
	char thp_prev[32];
	int nr_knobs;
	struct knob knobs[MAX_KNOBS];
	int nr_paths;
	char paths[MAX_PATHS][128];
	char mnt[64];		/* a tmpfs this test mounted, or "" */
};

static int ctx_init(struct ctx *c)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->cfd = -1;
	ret = krs_ensure_loaded();
	if (ret)
		return ret;
	c->cfd = krs_collapse_open();
	return c->cfd < 0 ? c->cfd : 0;
}

/*
 * Write @val to the sysfs file @path, remembering its value the first time
 * (ctx_fini() writes it back); 0, -ENOENT when there is no such file, or
 * -errno.
 */
static int knob_set(struct ctx *c, const char *path, const char *val)
{
	struct knob *k = NULL;
	char buf[256];
	ssize_t n;
	int i, ret;

	for (i = 0; i < c->nr_knobs; i++)
		if (!strcmp(c->knobs[i].path, path))
			k = &c->knobs[i];
	if (!k) {
		if (c->nr_knobs == MAX_KNOBS)
			return -ENOSPC;
		n = krs_read_file(path, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		k = &c->knobs[c->nr_knobs];
		if (strchr(buf, '[')) {
			ret = krs_sysfs_choice(path, k->prev, sizeof(k->prev));
			if (ret)
				return ret;
		} else {
			buf[strcspn(buf, "\n")] = '\0';
			snprintf(k->prev, sizeof(k->prev), "%.31s", buf);
		}
		snprintf(k->path, sizeof(k->path), "%s", path);
		c->nr_knobs++;
	}
	return krs_write_str(path, val);
}

/* The per-size file @name of order @order's hugepages-<size>kB directory. */
static void size_path(char *buf, size_t size, unsigned int order, const char *name)
{
	snprintf(buf, size, THP_DIR "/hugepages-%lukB/%s", (PAGE << order) >> 10, name);
}

static int size_knob_set(struct ctx *c, unsigned int order, const char *val)
{
	char path[128];

	size_path(path, sizeof(path), order, "shmem_enabled");
	return knob_set(c, path, val);
}

/* An mTHP counter (hugepages-<size>kB/stats/@name); -1 if absent. */
static long mthp_stat(unsigned int order, const char *name)
{
	char path[160], buf[64], stat[48];

	snprintf(stat, sizeof(stat), "stats/%s", name);
	size_path(path, sizeof(path), order, stat);
	if (krs_read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/*
 * The common knobs: THP "enabled" "madvise" (khugepaged leaves regular
 * files alone), and khugepaged's max_ptes_none 0, so that khugepaged does
 * not collapse an extent with holes behind the test's back (MADV_COLLAPSE
 * and the module do not look at it). 0 or -errno.
 */
static int ctx_knobs(struct ctx *c)
{
	int ret = krs_thp_madvise(c->thp_prev, sizeof(c->thp_prev));

	if (ret)
		return ret;
	ret = knob_set(c, THP_DIR "/khugepaged/max_ptes_none", "0");
	return ret == -ENOENT ? 0 : ret;
}

/* A new file name in @dir, unlinked by ctx_fini(). */
static const char *ctx_path(struct ctx *c, const char *dir, const char *tag)
{
	char *p;

	if (c->nr_paths < MAX_PATHS)
		c->nr_paths++;
	p = c->paths[c->nr_paths - 1];
	snprintf(p, sizeof(c->paths[0]), "%s/krs-mthp-%s.%d", dir, tag, getpid());
	unlink(p);
	return p;
}

static void ctx_fini(struct ctx *c)
{
	for (int i = c->nr_knobs - 1; i >= 0; i--)
		krs_write_str(c->knobs[i].path, c->knobs[i].prev);
	krs_thp_restore(c->thp_prev);
	for (int i = 0; i < c->nr_paths; i++)
		unlink(c->paths[i]);
	if (c->mnt[0]) {
		umount2(c->mnt, MNT_DETACH);
		rmdir(c->mnt);
	}
	if (c->cfd >= 0)
		close(c->cfd);
}

/* ---- what the page cache holds: pagemap and kpageflags ----------------- */

struct run {
	unsigned int index;	/* the folio's first page, from the extent's start */
	unsigned int pages;
};

struct layout {
	unsigned int nr;		/* folios */
	unsigned int present;		/* pages in them */
	unsigned int by_order[PMD_ORDER + 1];
	struct run run[PMD_PAGES];
};

/* The PFN mapped at @addr, 0 if nothing is; -EIO if pagemap cannot be read. */
static long long pfn_at(int pagemap, const void *addr)
{
	uint64_t e;

	if (pread(pagemap, &e, sizeof(e), (uintptr_t)addr / PAGE * sizeof(e)) != sizeof(e))
		return -EIO;
	return (e >> 63) ? (long long)(e & ((1ULL << 55) - 1)) : 0;
}

/*
 * The folios behind the extent mapped at @p: mincore() finds the pages in
 * the page cache (without allocating any), each is read through the
 * mapping so that pagemap has its PFN, and a folio is a compound head
 * followed, in PFN order, by its tails (a small page is neither). Every
 * page of a folio must be the file page that follows. 0, or -1 with the
 * reason in @why.
 */
static int read_layout(const char *p, struct layout *l, char *why, size_t size)
{
	static uint64_t flags[PMD_PAGES];
	unsigned char vec[PMD_PAGES];
	int pm = -1, kf = -1, ret = -1;
	unsigned int i, k, n;
	long long pfn;
	ssize_t got;

	memset(l, 0, sizeof(*l));
	if (mincore((void *)p, PMD, vec)) {
		snprintf(why, size, "mincore: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < PMD_PAGES; i++)
		if (vec[i] & 1)
			krs_ignore(__atomic_load_n(p + i * PAGE, __ATOMIC_RELAXED));
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (pm < 0 || kf < 0) {
		snprintf(why, size, "opening pagemap and kpageflags: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < PMD_PAGES; i += n) {
		n = 1;
		if (!(vec[i] & 1))
			continue;
		pfn = pfn_at(pm, p + i * PAGE);
		if (pfn <= 0) {
			snprintf(why, size, "page %u is in the page cache but not mapped", i);
			goto out;
		}
		got = pread(kf, flags, sizeof(flags), pfn * sizeof(flags[0]));
		if (got < (ssize_t)sizeof(flags[0])) {
			snprintf(why, size, "kpageflags of pfn %#llx: %s", pfn,
				 got < 0 ? strerror(errno) : "short read");
			goto out;
		}
		got /= sizeof(flags[0]);
		if (flags[0] & (1ULL << KPF_TAIL_BIT)) {
			snprintf(why, size, "page %u is a tail: its folio starts before it", i);
			goto out;
		}
		if (flags[0] & (1ULL << KPF_HEAD_BIT)) {
			while (n < got && n < PMD_PAGES && (flags[n] & (1ULL << KPF_TAIL_BIT)))
				n++;
			if (!(flags[0] & (1ULL << KPF_THP_BIT))) {
				snprintf(why, size, "page %u heads a folio that is not a THP", i);
				goto out;
			}
		}
		if (n & (n - 1) || i % n || i + n > PMD_PAGES) {
			snprintf(why, size, "page %u heads a folio of %u pages", i, n);
			goto out;
		}
		for (k = 1; k < n; k++) {
			if (!(vec[i + k] & 1) || pfn_at(pm, p + (i + k) * PAGE) != pfn + k) {
				snprintf(why, size, "page %u is not page %u of the folio at %u",
					 i + k, k, i);
				goto out;
			}
		}
		l->run[l->nr].index = i;
		l->run[l->nr].pages = n;
		l->nr++;
		l->present += n;
		l->by_order[__builtin_ctz(n)]++;
	}
	ret = 0;
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return ret;
}

/* "121 pages in 6 folios: 1x256K 1x128K 1x64K 2x16K 1x4K". */
static const char *layout_str(const struct layout *l, char *buf, size_t size)
{
	int off = snprintf(buf, size, "%u pages in %u folios:", l->present, l->nr);

	for (int o = PMD_ORDER; o >= 0 && off < (int)size; o--)
		if (l->by_order[o])
			off += snprintf(buf + off, size - off, " %ux%luK", l->by_order[o],
					(PAGE << o) >> 10);
	return buf;
}

/* "0+16 16+1 20+4 ...": each folio's first page and size, in pages (cut at @size). */
static const char *runs_str(const struct run *r, unsigned int nr, char *buf, size_t size)
{
	int off = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; i < nr && off + 16 < (int)size; i++)
		off += snprintf(buf + off, size - off, "%s%u+%u", i ? " " : "", r[i].index,
				r[i].pages);
	if (off + 16 >= (int)size)
		snprintf(buf + size - 5, 5, " ...");
	return buf;
}

/* ---- one case, three twins --------------------------------------------- */

enum side { BY_MADVISE, BY_ADDR, BY_FD, NR_SIDES };

static const char *const how_name[NR_SIDES] = { "MADV_COLLAPSE", "addr=", "fd=" };
/* In the twins' file names. */
static const char *const how_tag[NR_SIDES] = { "madv", "addr", "fd" };

/*
 * What a case builds in each twin, and so what each collapse must find:
 * extents [0, nr_ext) of 2 MiB from file offset 0; page i holds pattern
 * (seed, i) if written[i], else zeroes. Before the collapse the page cache
 * holds exactly the folios of @want (first page in the case's extents and
 * size), in each twin, if @exact; otherwise at least @min_large folios of
 * order 1..8 and no PMD-sized one in each extent, and with @want_gaps some
 * pages not in the page cache at all.
 */
struct twin_case {
	const char *tag;
	const char *pmd_field;		/* smaps: ShmemPmdMapped or FilePmdMapped */
	unsigned int nr_ext;
	unsigned int seed;
	bool written[MAX_PAGES];
	bool exact;
	unsigned int nr_want;
	struct run want[MAX_PAGES];
	unsigned int min_large;
	bool want_gaps;
	unsigned int want_copied[MAX_EXT];
	unsigned int want_holes[MAX_EXT];
};

struct outcome {
	int ret;		/* 0 or -errno */
	long pmd_now;		/* PMD-mapped kB right after the collapse */
	long pmd_after;		/* and after every page was read through the mapping */
	int nr_ext;		/* the module's report (-1: none) */
	struct krs_extent ext[MAX_EXT];
	char report[2048];
};

/* Pages [first, first + 512) of @tc's folios, relative to @first, in @r. */
static unsigned int want_runs(const struct twin_case *tc, unsigned int first, struct run *r)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < tc->nr_want; i++) {
		if (tc->want[i].index < first || tc->want[i].index >= first + PMD_PAGES)
			continue;
		r[n].index = tc->want[i].index - first;
		r[n].pages = tc->want[i].pages;
		n++;
	}
	return n;
}

/* Check extent @e's page cache before the collapse, as @tc says. */
static void check_before(struct __test_metadata *_metadata, const struct twin_case *tc,
			 enum side how, unsigned int e, const struct layout *l)
{
	static struct run want[PMD_PAGES];
	static char got_s[640], want_s[640];
	unsigned int nr, large = 0;
	char sum[160];
	bool same;

	TH_LOG("%s, %s twin, extent %u before the collapse: %s", tc->tag, how_name[how], e,
	       layout_str(l, sum, sizeof(sum)));
	if (tc->exact) {
		nr = want_runs(tc, e * PMD_PAGES, want);
		same = nr == l->nr && !memcmp(want, l->run, nr * sizeof(want[0]));
		EXPECT_TRUE(same) TH_LOG("folios (first page+pages) wanted: %s\nfound: %s",
					 runs_str(want, nr, want_s, sizeof(want_s)),
					 runs_str(l->run, l->nr, got_s, sizeof(got_s)));
		return;
	}
	for (int o = 1; o < PMD_ORDER; o++)
		large += l->by_order[o];
	EXPECT_LE(tc->min_large, large) TH_LOG("too few large folios: %s",
					       runs_str(l->run, l->nr, got_s, sizeof(got_s)));
	EXPECT_EQ(0U, l->by_order[PMD_ORDER]) TH_LOG("already a PMD-sized folio");
	if (tc->want_gaps)
		EXPECT_GT(PMD_PAGES, l->present) TH_LOG("no page is missing from the page cache");
}

/* The first page of @tc's extents that pread() gets wrong, or -1. */
static long bad_file_page(int fd, const struct twin_case *tc)
{
	for (size_t i = 0; i < tc->nr_ext * PMD_PAGES; i++)
		if (tc->written[i] ? krs_pread_check(fd, tc->seed, i) : krs_pread_zero(fd, i))
			return (long)i;
	return -1;
}

/* The same through the mapping at @p. */
static long bad_map_page(const char *p, const struct twin_case *tc)
{
	for (size_t i = 0; i < tc->nr_ext * PMD_PAGES; i++) {
		const char *page = p + i * PAGE;

		if (tc->written[i] ? krs_check_page(page, tc->seed, i) != 0 :
				     !krs_page_is_zero(page))
			return (long)i;
	}
	return -1;
}

/* One command to the module for the extents at @p (addr=) or of @fd (fd=). */
static int module_cmd(struct __test_metadata *_metadata, struct ctx *c, enum side how, int fd,
		      const char *p, size_t len, bool dry_run, struct outcome *o)
{
	char cmd[128], line[sizeof(o->report)];
	long status = 0;
	ssize_t ret;

	if (how == BY_ADDR)
		snprintf(cmd, sizeof(cmd), "addr=%lx len=%zu%s", (unsigned long)p, len,
			 dry_run ? " dry_run" : "");
	else
		snprintf(cmd, sizeof(cmd), "fd=%d offset=0 len=%zu%s", fd, len,
			 dry_run ? " dry_run" : "");
	ret = krs_collapse_cmd(c->cfd, cmd);
	o->report[0] = '\0';
	krs_collapse_report(c->cfd, o->report, sizeof(o->report));
	o->nr_ext = krs_report_parse(o->report, o->ext, MAX_EXT, &status);
	/* On one line: the KTAP stream holds no line of its own. */
	snprintf(line, sizeof(line), "%s", o->report);
	for (char *nl = strchr(line, '\n'); nl; nl = strchr(nl, '\n'))
		*nl = ';';
	TH_LOG("'%s' -> %zd, report: %s", cmd, ret, line);
	EXPECT_LE(0, o->nr_ext) TH_LOG("malformed report");
	EXPECT_EQ(ret, status);
	EXPECT_FALSE(krs_has_kernel_pointer(o->report));
	if (ret >= 0) {
		EXPECT_EQ((ssize_t)strlen(cmd), ret);
		return 0;
	}
	return (int)ret;
}

/* The report's extents: each SCAN_SUCCEED, copied and holes as wanted. */
static void check_report(struct __test_metadata *_metadata, const struct twin_case *tc,
			 enum side how, const struct outcome *o, const char *what,
			 const unsigned int *want_copied, const unsigned int *want_holes)
{
	EXPECT_EQ((int)tc->nr_ext, o->nr_ext) TH_LOG("%s %s", how_name[how], what);
	for (int e = 0; e < o->nr_ext && e < (int)tc->nr_ext; e++) {
		EXPECT_EQ((unsigned int)e, o->ext[e].index);
		EXPECT_EQ(e * PMD_PAGES, o->ext[e].pgoff);
		EXPECT_STREQ("SCAN_SUCCEED", o->ext[e].result)
			TH_LOG("%s %s, extent %d", how_name[how], what, e);
		EXPECT_EQ(want_copied[e], o->ext[e].copied)
			TH_LOG("%s %s, extent %d: copied (pages)", how_name[how], what, e);
		EXPECT_EQ(want_holes[e], o->ext[e].holes)
			TH_LOG("%s %s, extent %d: holes (pages)", how_name[how], what, e);
	}
}

/* MADV_COLLAPSE, tried again a few times on EAGAIN (as krs_collapse_cmd()). */
static int madv_collapse(void *p, size_t len)
{
	for (int attempt = 0; ; attempt++) {
		if (!madvise(p, len, MADV_COLLAPSE))
			return 0;
		if (errno != EAGAIN || attempt == 4)
			return -errno;
		usleep(50 * 1000);
	}
}

/*
 * The twin @fd, mapped at @p over the case's extents and built: check its
 * folios, collapse it @how (the module's forms after a dry run, which
 * counts the pages in the page cache as copied and the others as holes),
 * check every byte, and that each extent is one PMD-sized folio now.
 */
static void collapse_twin(struct __test_metadata *_metadata, struct ctx *c,
			  const struct twin_case *tc, enum side how, int fd, char *p,
			  struct outcome *o)
{
	unsigned int dry_copied[MAX_EXT], dry_holes[MAX_EXT];
	size_t len = tc->nr_ext * PMD;
	static struct layout l;
	char why[160];
	long bad;

	o->ret = -ENOEXEC;
	o->pmd_now = -1;
	o->pmd_after = -1;
	o->nr_ext = -1;
	for (unsigned int e = 0; e < tc->nr_ext; e++) {
		ASSERT_EQ(0, read_layout(p + e * PMD, &l, why, sizeof(why)))
			TH_LOG("%s twin, extent %u: %s", how_name[how], e, why);
		check_before(_metadata, tc, how, e, &l);
		dry_copied[e] = l.present;
		dry_holes[e] = PMD_PAGES - l.present;
	}
	EXPECT_EQ(0, krs_smaps_kb(0, (unsigned long)p, tc->pmd_field));

	if (how == BY_MADVISE) {
		o->ret = madv_collapse(p, len);
	} else {
		ASSERT_EQ(0, module_cmd(_metadata, c, how, fd, p, len, true, o));
		check_report(_metadata, tc, how, o, "dry_run", dry_copied, dry_holes);
		o->ret = module_cmd(_metadata, c, how, fd, p, len, false, o);
	}
	o->pmd_now = krs_smaps_kb(0, (unsigned long)p, tc->pmd_field);
	bad = bad_file_page(fd, tc);
	EXPECT_EQ(-1, bad) TH_LOG("%s twin: file page %ld reads wrong", how_name[how], bad);
	bad = bad_map_page(p, tc);
	EXPECT_EQ(-1, bad) TH_LOG("%s twin: mapped page %ld reads wrong", how_name[how], bad);
	o->pmd_after = krs_smaps_kb(0, (unsigned long)p, tc->pmd_field);
	for (unsigned int e = 0; e < tc->nr_ext; e++) {
		ASSERT_EQ(0, read_layout(p + e * PMD, &l, why, sizeof(why)))
			TH_LOG("%s twin, extent %u after: %s", how_name[how], e, why);
		EXPECT_TRUE(l.nr == 1 && l.run[0].pages == PMD_PAGES)
			TH_LOG("%s twin, extent %u after the collapse: %s", how_name[how], e,
			       layout_str(&l, why, sizeof(why)));
	}
}

/*
 * The module's twins ended as MADV_COLLAPSE's did, which succeeded
 * (the oracle), and reported what the case built.
 */
static void compare(struct __test_metadata *_metadata, const struct twin_case *tc,
		    const struct outcome *o)
{
	EXPECT_EQ(0, o[BY_MADVISE].ret) TH_LOG("MADV_COLLAPSE: %s", strerror(-o[BY_MADVISE].ret));
	EXPECT_EQ((long)tc->nr_ext * PMD_KB, o[BY_MADVISE].pmd_now);
	EXPECT_EQ((long)tc->nr_ext * PMD_KB, o[BY_MADVISE].pmd_after);
	/* addr= maps the extents in the writer as MADV_COLLAPSE does. */
	EXPECT_EQ(o[BY_MADVISE].pmd_now, o[BY_ADDR].pmd_now);
	for (int how = BY_ADDR; how < NR_SIDES; how++) {
		EXPECT_EQ(o[BY_MADVISE].ret, o[how].ret)
			TH_LOG("MADV_COLLAPSE: %s, %s: %s", strerror(-o[BY_MADVISE].ret),
			       how_name[how], strerror(-o[how].ret));
		EXPECT_EQ(o[BY_MADVISE].pmd_after, o[how].pmd_after)
			TH_LOG("%s after reading the extents: MADV_COLLAPSE %ld kB, %s %ld kB",
			       tc->pmd_field, o[BY_MADVISE].pmd_after, how_name[how],
			       o[how].pmd_after);
		check_report(_metadata, tc, how, &o[how], "collapse", tc->want_copied,
			     tc->want_holes);
	}
}

/* copied and holes per extent: the pages of @tc's folios, the rest. */
static void count_want(struct twin_case *tc)
{
	for (unsigned int e = 0; e < tc->nr_ext; e++) {
		tc->want_copied[e] = 0;
		for (unsigned int i = 0; i < tc->nr_want; i++)
			if (tc->want[i].index / PMD_PAGES == e)
				tc->want_copied[e] += tc->want[i].pages;
		tc->want_holes[e] = PMD_PAGES - tc->want_copied[e];
	}
}

/* ---- shmem: a memfd, folios of the per-size knobs' orders --------------- */

/* A folio of @order at page @index, allocated by a write fault there. */
struct chunk {
	unsigned int index;
	unsigned int order;
};

FIXTURE(shmem) {
	struct ctx c;
};

FIXTURE_VARIANT(shmem) {
	const struct chunk *plan;	/* in the order they are faulted in */
	unsigned int nr_chunks;
	unsigned int nr_ext;
};

/* 16 KiB every 128 KiB: 16 folios, 64 pages, 448 holes. */
static const struct chunk plan_16k[] = {
	{ 0, 2 }, { 32, 2 }, { 64, 2 }, { 96, 2 }, { 128, 2 }, { 160, 2 }, { 192, 2 },
	{ 224, 2 }, { 256, 2 }, { 288, 2 }, { 320, 2 }, { 352, 2 }, { 384, 2 }, { 416, 2 },
	{ 448, 2 }, { 480, 2 },
};

/* 64 KiB, some side by side, one at each end: 9 folios, 144 pages. */
static const struct chunk plan_64k[] = {
	{ 0, 4 }, { 16, 4 }, { 64, 4 }, { 112, 4 }, { 192, 4 }, { 208, 4 }, { 224, 4 },
	{ 400, 4 }, { 496, 4 },
};

/*
 * Every order from 0 to 8, with holes, over two extents: 149 pages in the
 * first (orders 0-6), 387 in the second (orders 0, 1, 7, 8).
 */
static const struct chunk plan_mixed[] = {
	{ 0, 4 }, { 16, 2 }, { 20, 0 }, { 21, 0 }, { 22, 1 }, { 24, 3 }, { 32, 5 },
	{ 128, 2 }, { 160, 4 }, { 256, 6 }, { 511, 0 },
	{ 513, 0 }, { 514, 1 }, { 640, 7 }, { 768, 8 },
};

FIXTURE_VARIANT_ADD(shmem, kb16) {
	.plan = plan_16k,
	.nr_chunks = ARRAY_SIZE(plan_16k),
	.nr_ext = 1,
};

FIXTURE_VARIANT_ADD(shmem, kb64) {
	.plan = plan_64k,
	.nr_chunks = ARRAY_SIZE(plan_64k),
	.nr_ext = 1,
};

FIXTURE_VARIANT_ADD(shmem, mixed) {
	.plan = plan_mixed,
	.nr_chunks = ARRAY_SIZE(plan_mixed),
	.nr_ext = 2,
};

FIXTURE_SETUP(shmem)
{
	int ret = ctx_init(&self->c);

	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(shmem)
{
	ctx_fini(&self->c);
}

/*
 * The case of a plan: page k of a chunk is written unless k % 3 == 1 (so
 * folios hold zero pages too), its folios are the chunks.
 */
static void plan_case(struct twin_case *tc, const struct _fixture_variant_shmem *v)
{
	tc->tag = "shmem";
	tc->pmd_field = "ShmemPmdMapped";
	tc->nr_ext = v->nr_ext;
	tc->seed = 51;
	tc->exact = true;
	for (unsigned int i = 0; i < v->nr_chunks; i++) {
		const struct chunk *ch = &v->plan[i];
		unsigned int n = 1U << ch->order;

		for (unsigned int k = 0; k < n; k++)
			tc->written[ch->index + k] = k % 3 != 1;
		tc->want[i].index = ch->index;
		tc->want[i].pages = n;
	}
	tc->nr_want = v->nr_chunks;
	/* In page order, as a layout lists them. */
	for (unsigned int i = 1; i < tc->nr_want; i++)
		for (unsigned int j = i; j && tc->want[j - 1].index > tc->want[j].index; j--) {
			struct run t = tc->want[j];

			tc->want[j] = tc->want[j - 1];
			tc->want[j - 1] = t;
		}
	count_want(tc);
}

/*
 * Fault the plan's chunks into the memfd mapped at @p, each with only its
 * order's shmem_enabled "always" (order 0: none); the shmem_alloc counter
 * of each order must rise by its chunks, unless the allocation fell back
 * (shmem_fallback): *@fallback then counts those.
 */
static void build_plan(struct __test_metadata *_metadata, struct ctx *c,
		       const struct _fixture_variant_shmem *v, const struct twin_case *tc, char *p,
		       long *fallback)
{
	long alloc0[PMD_ORDER], fall0[PMD_ORDER], want[PMD_ORDER] = { 0 };

	for (unsigned int o = 1; o < PMD_ORDER; o++) {
		alloc0[o] = mthp_stat(o, "shmem_alloc");
		fall0[o] = mthp_stat(o, "shmem_fallback");
	}
	for (unsigned int i = 0; i < v->nr_chunks; i++) {
		const struct chunk *ch = &v->plan[i];

		if (ch->order)
			ASSERT_EQ(0, size_knob_set(c, ch->order, "always"));
		/* The first page first: its write fault allocates the folio. */
		for (unsigned int k = 0; k < 1U << ch->order; k++)
			if (tc->written[ch->index + k])
				krs_fill_page(p + (ch->index + k) * PAGE, tc->seed, ch->index + k);
		if (ch->order)
			ASSERT_EQ(0, size_knob_set(c, ch->order, "never"));
		want[ch->order]++;
	}
	*fallback = 0;
	for (unsigned int o = 1; o < PMD_ORDER; o++) {
		long alloc = mthp_stat(o, "shmem_alloc"), fall = mthp_stat(o, "shmem_fallback");

		if (!want[o] || alloc0[o] < 0 || alloc < 0)
			continue;
		if (fall0[o] >= 0 && fall > fall0[o])
			*fallback += fall - fall0[o];
		TH_LOG("hugepages-%lukB/stats/shmem_alloc +%ld (%ld folios of that size built)",
		       (PAGE << o) >> 10, alloc - alloc0[o], want[o]);
		EXPECT_LE(want[o], alloc - alloc0[o]);
	}
}

TEST_F(shmem, twins)
{
	struct twin_case *tc = calloc(1, sizeof(*tc));
	struct outcome *o = calloc(NR_SIDES, sizeof(*o));
	size_t len = variant->nr_ext * PMD;
	long fallback;
	int ret, fd;
	char *p;

	ASSERT_NE(NULL, tc);
	ASSERT_NE(NULL, o);
	plan_case(tc, variant);
	ASSERT_EQ(0, ctx_knobs(&self->c));
	/*
	 * "never" at the top level (neither "force" nor "deny", which
	 * override the per-size knobs) and for every size: each chunk
	 * turns its own size on while it is faulted in.
	 */
	ret = knob_set(&self->c, THP_DIR "/shmem_enabled", "never");
	if (ret == -ENOENT)
		SKIP(return, "no %s: no shmem THP in this kernel", THP_DIR "/shmem_enabled");
	ASSERT_EQ(0, ret);
	for (unsigned int ord = 1; ord <= PMD_ORDER; ord++) {
		ret = size_knob_set(&self->c, ord, "never");
		ASSERT_TRUE(ret == 0 || ret == -ENOENT) TH_LOG("%s", strerror(-ret));
	}
	for (unsigned int i = 0; i < variant->nr_chunks; i++) {
		unsigned int ord = variant->plan[i].order;
		char path[128];

		size_path(path, sizeof(path), ord, "shmem_enabled");
		if (ord && access(path, W_OK))
			SKIP(return, "no %s: this kernel makes no %lu KiB shmem folios", path,
			     (PAGE << ord) >> 10);
	}

	for (int how = 0; how < NR_SIDES; how++) {
		fd = krs_memfd("krs_mthp", len);
		ASSERT_LE(0, fd);
		p = krs_map_aligned(len, RW, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		build_plan(_metadata, &self->c, variant, tc, p, &fallback);
		if (fallback)
			SKIP(return, "%ld large folio allocations fell back to smaller ones",
			     fallback);
		collapse_twin(_metadata, &self->c, tc, how, fd, p, &o[how]);
		munmap(p, len);
		close(fd);
	}
	compare(_metadata, tc, o);
	free(o);
	free(tc);
}

/* ---- tmpfs huge=within_size: the folios the size allows ----------------- */

FIXTURE(tmpfs) {
	struct ctx c;
};

FIXTURE_SETUP(tmpfs)
{
	int ret = ctx_init(&self->c);

	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(tmpfs)
{
	ctx_fini(&self->c);
}

/*
 * The common knobs, shmem_enabled "never" ("force" and "deny" would
 * override the mount option), and a tmpfs mounted at the new directory
 * @dir (a mkdtemp() template) with @huge (unmounted by ctx_fini()). 0, or
 * -errno: with *@why saying what this kernel or VM lacks (the test
 * skips), or NULL (a knob could not be set: the test fails).
 */
static int tmpfs_mount(struct ctx *c, char *dir, const char *huge, const char **why)
{
	char opts[64];
	int ret;

	*why = NULL;
	ret = ctx_knobs(c);
	if (!ret)
		ret = knob_set(c, THP_DIR "/shmem_enabled", "never");
	if (ret == -ENOENT)
		*why = "no " THP_DIR "/shmem_enabled: no shmem THP in this kernel";
	if (ret)
		return ret;
	*why = "mkdtemp";
	if (!mkdtemp(dir))
		return -errno;
	*why = "mount -t tmpfs";
	snprintf(opts, sizeof(opts), "%s,size=32M,mode=0700", huge);
	if (mount("tmpfs", dir, "tmpfs", 0, opts)) {
		ret = -errno;
		rmdir(dir);
		return ret;
	}
	snprintf(c->mnt, sizeof(c->mnt), "%s", dir);
	return 0;
}

/*
 * Writes into an empty file, in this order (first page, pages). Each gets
 * the largest folio that lies within the size the write leaves (a write's
 * end counts) and whose range is still empty:
 *   0+16  i_size 64K: order 4;
 *   16+1  ends at page 17, no large order fits: a small page;
 *   20+4  ends at 24: order 3 ([16, 24)) holds page 16, so order 2;
 *   32+32 ends at 64: order 6 ([0, 64)) is taken, so order 5;
 *   98+2  ends at 100: order 2, [96, 100): pages 96 and 97 zero;
 *   256+64 ends at 320: order 6;
 * then the file is extended to 2 MiB (no page added): 121 pages, 391 holes.
 */
static const struct run within_size_writes[] = {
	{ 0, 16 }, { 16, 1 }, { 20, 4 }, { 32, 32 }, { 98, 2 }, { 256, 64 },
};

static const struct run within_size_folios[] = {
	{ 0, 16 }, { 16, 1 }, { 20, 4 }, { 32, 32 }, { 96, 4 }, { 256, 64 },
};

/* Write pattern pages [first, first + n) of seed @seed in one pwrite(); 0 or -errno. */
static int pwrite_pages(int fd, unsigned int seed, size_t first, size_t n)
{
	size_t len = n * PAGE;
	char *buf = malloc(len);
	ssize_t ret;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		krs_fill_page(buf + i * PAGE, seed, first + i);
	ret = pwrite(fd, buf, len, first * PAGE);
	free(buf);
	if (ret < 0)
		return -errno;
	return ret == (ssize_t)len ? 0 : -EIO;
}

TEST_F(tmpfs, within_size)
{
	struct twin_case *tc = calloc(1, sizeof(*tc));
	struct outcome *o = calloc(NR_SIDES, sizeof(*o));
	char dir[] = "/tmp/krs-mthp.XXXXXX", type[32], mounts[8192];
	const char *path, *why;
	int ret, fd;
	char *p;

	ASSERT_NE(NULL, tc);
	ASSERT_NE(NULL, o);
	tc->tag = "tmpfs huge=within_size";
	tc->pmd_field = "ShmemPmdMapped";
	tc->nr_ext = 1;
	tc->seed = 61;
	tc->exact = true;
	for (size_t w = 0; w < ARRAY_SIZE(within_size_writes); w++)
		for (unsigned int k = 0; k < within_size_writes[w].pages; k++)
			tc->written[within_size_writes[w].index + k] = true;
	tc->nr_want = ARRAY_SIZE(within_size_folios);
	memcpy(tc->want, within_size_folios, sizeof(within_size_folios));
	count_want(tc);

	ret = tmpfs_mount(&self->c, dir, "huge=within_size", &why);
	ASSERT_TRUE(!ret || why) TH_LOG("the THP knobs: %s", strerror(-ret));
	if (ret)
		SKIP(return, "%s: %s", why, strerror(-ret));
	ASSERT_TRUE(krs_mounted_type(dir, type, sizeof(type)));
	ASSERT_LT(0, krs_read_file("/proc/mounts", mounts, sizeof(mounts)));
	ASSERT_NE(NULL, strstr(mounts, "huge=within_size"));

	for (int how = 0; how < NR_SIDES; how++) {
		path = ctx_path(&self->c, dir, how_tag[how]);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ASSERT_LE(0, fd) TH_LOG("%s: %s", path, strerror(errno));
		for (size_t w = 0; w < ARRAY_SIZE(within_size_writes); w++) {
			ret = pwrite_pages(fd, tc->seed, within_size_writes[w].index,
					   within_size_writes[w].pages);
			ASSERT_EQ(0, ret) TH_LOG("%s: %s", path, strerror(-ret));
		}
		ASSERT_EQ(0, ftruncate(fd, PMD));
		/* Read-only: a read of a present page allocates nothing. */
		p = krs_map_aligned(PMD, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		collapse_twin(_metadata, &self->c, tc, how, fd, p, &o[how]);
		munmap(p, PMD);
		close(fd);
	}
	compare(_metadata, tc, o);
	free(o);
	free(tc);
}

#define KPF_DIRTY_BIT 4

/* The kpageflags of the page mapped at @p; 0 (and *@ok false) if none. */
static uint64_t kpageflags_at(const void *p, bool *ok)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	long long pfn = pm >= 0 ? pfn_at(pm, p) : -EIO;
	uint64_t flags = 0;

	*ok = kf >= 0 && pfn > 0 &&
	      pread(kf, &flags, sizeof(flags), pfn * sizeof(flags)) == sizeof(flags);
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return *ok ? flags : 0;
}

/* A free range of @len, at a 2 MiB boundary plus @skew (reserved PROT_NONE). */
static char *reserve_at(size_t len, size_t skew)
{
	char *r = mmap(NULL, len + 2 * PMD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (r == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)r + PMD - 1) & ~(uintptr_t)(PMD - 1)) + skew;
	if (a > r)
		munmap(r, a - r);
	munmap(a + len, r + len + 2 * PMD - (a + len));
	return a;
}

/*
 * One file of the dirty-bit case, collapsed by @how (BY_MADVISE or
 * BY_ADDR); the pages of the extent that read back as anything but what
 * was written, after the page cache was dropped; -1 if the case could not
 * be built here (reported by SKIP in the caller), -2 on a failed step.
 */
static int dirty_case(struct __test_metadata *_metadata, struct ctx *c, const char *dir,
		      enum side how, const char **why)
{
	const char *path = ctx_path(c, dir, how_tag[how]);
	unsigned int seed = 83 + how;
	char cmd[96], *a, *u, *b, buf[PAGE];
	uint64_t flags;
	int fd, bad = 0;
	bool ok;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, PMD)) {
		TH_LOG("%s: %s", path, strerror(errno));
		return -2;
	}
	/* A read fault in an aligned mapping: one PMD folio, zeroes, clean. */
	a = krs_map_aligned(PMD, RW, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED) {
		close(fd);
		return -2;
	}
	krs_ignore(krs_read_u64((const uint64_t *)a));
	flags = kpageflags_at(a, &ok);
	if (!ok || !(flags >> KPF_THP_BIT & 1) || (flags >> KPF_DIRTY_BIT & 1)) {
		*why = "a read fault did not allocate a clean PMD folio";
		munmap(a, PMD);
		close(fd);
		return -1;
	}
	/* Unaligned: the PMD goes (clean), read faults map PTEs, writes dirty them. */
	u = reserve_at(PMD, PAGE);
	b = reserve_at(PMD, 0);
	if (!u || !b || mremap(a, PMD, PMD, MREMAP_MAYMOVE | MREMAP_FIXED, u) != u) {
		TH_LOG("mremap to an unaligned address: %s", strerror(errno));
		close(fd);
		return -2;
	}
	for (size_t i = 0; i < PMD_PAGES; i++)
		krs_ignore(krs_read_u64((const uint64_t *)(u + i * PAGE)));
	for (size_t i = 0; i < PMD_PAGES; i++)
		krs_fill_page(u + i * PAGE, seed, i);
	flags = kpageflags_at(u, &ok);
	if (!ok || !(flags >> KPF_THP_BIT & 1) || (flags >> KPF_DIRTY_BIT & 1)) {
		*why = "writes through the PTEs dirtied the folio itself (no case to test)";
		munmap(u, PMD);
		munmap(b, PMD);
		close(fd);
		return -1;
	}
	/* Back to an aligned address: the PTEs (and their dirty bits) move. */
	if (mremap(u, PMD, PMD, MREMAP_MAYMOVE | MREMAP_FIXED, b) != b) {
		TH_LOG("mremap back to an aligned address: %s", strerror(errno));
		close(fd);
		return -2;
	}
	if (how == BY_MADVISE) {
		if (madvise(b, PMD, MADV_COLLAPSE))
			TH_LOG("MADV_COLLAPSE: %s", strerror(errno));
	} else {
		snprintf(cmd, sizeof(cmd), "addr=%lx len=%lu", (unsigned long)b,
			 (unsigned long)PMD);
		if (krs_collapse_cmd(c->cfd, cmd) < 0)
			TH_LOG("%s: failed", cmd);
	}
	flags = kpageflags_at(b, &ok);
	TH_LOG("%s: ShmemPmdMapped %ld kB, folio %s", how_name[how],
	       krs_smaps_kb(0, (unsigned long)b, "ShmemPmdMapped"),
	       !ok ? "not mapped" : flags >> KPF_DIRTY_BIT & 1 ? "dirty" : "clean");
	/* Unmapped, then every clean unmapped folio leaves the page cache. */
	munmap(b, PMD);
	if (krs_write_str("/proc/sys/vm/drop_caches", "1")) {
		close(fd);
		return -2;
	}
	for (size_t i = 0; i < PMD_PAGES; i++)
		if (pread(fd, buf, PAGE, i * PAGE) != PAGE || krs_check_page(buf, seed, i))
			bad++;
	close(fd);
	return bad;
}

TEST_F(tmpfs, pte_dirty_bits_kept)
{
	char dir[] = "/tmp/krs-mthp.XXXXXX";
	const char *why = "";
	int lost[NR_SIDES], ret;

	ret = tmpfs_mount(&self->c, dir, "huge=always", &why);
	ASSERT_TRUE(!ret || why) TH_LOG("the THP knobs: %s", strerror(-ret));
	if (ret)
		SKIP(return, "%s: %s", why, strerror(-ret));
	for (int how = BY_MADVISE; how <= BY_ADDR; how++) {
		lost[how] = dirty_case(_metadata, &self->c, dir, how, &why);
		if (lost[how] == -1)
			SKIP(return, "%s", why);
		ASSERT_LE(0, lost[how]);
	}
	TH_LOG("pages lost: MADV_COLLAPSE %d, addr= %d (of %d)", lost[BY_MADVISE],
	       lost[BY_ADDR], (int)PMD_PAGES);
	EXPECT_EQ(0, lost[BY_ADDR]);
}

/* ---- XFS and ext4: large folios of writes and of readahead -------------- */

FIXTURE(file) {
	struct ctx c;
	char dir[32];
};

FIXTURE_VARIANT(file) {
	const char *type;	/* mounted at /mnt/<type> */
};

FIXTURE_VARIANT_ADD(file, xfs) {
	.type = "xfs",
};

FIXTURE_VARIANT_ADD(file, ext4) {
	.type = "ext4",
};

FIXTURE_SETUP(file)
{
	char type[64];
	int ret;

	self->c.cfd = -1;
	snprintf(self->dir, sizeof(self->dir), "/mnt/%s", variant->type);
	if (!krs_mounted_type(self->dir, type, sizeof(type)))
		SKIP(return, "%s is not mounted (see the VM console for why)", self->dir);
	ASSERT_STREQ(variant->type, type);
	ret = ctx_init(&self->c);
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(file)
{
	ctx_fini(&self->c);
}

enum file_how {
	LARGE_WRITES,		/* buffered writes of 8 KiB to 256 KiB, synced */
	READAHEAD_ALL,		/* written, synced, dropped; read() back whole */
	READAHEAD_GAPS,		/* the same, then two ranges dropped again */
};

/* Sizes of the writes, in pages, over and over until 2 MiB are written. */
static const unsigned int write_pages[] = { 16, 4, 4, 8, 2, 2, 32, 64, 16, 8, 4 };

/* read() [first, first + n) pages of @fd, 64 KiB at a time; 0 or -errno. */
static int read_pages(int fd, size_t first, size_t n)
{
	static char buf[64 << 10];
	size_t off = first * PAGE, end = (first + n) * PAGE;
	ssize_t got;

	while (off < end) {
		got = pread(fd, buf, end - off < sizeof(buf) ? end - off : sizeof(buf), off);
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		off += got;
	}
	return 0;
}

/* Build @path as @fh says, open read-only; fd or -errno. */
static int build_file(const char *path, unsigned int seed, enum file_how fh)
{
	size_t i = 0, n;
	int fd, ret = 0;

	if (fh == LARGE_WRITES) {
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		for (size_t w = 0; i < PMD_PAGES && !ret; w++) {
			n = write_pages[w % ARRAY_SIZE(write_pages)];
			n = n < PMD_PAGES - i ? n : PMD_PAGES - i;
			ret = pwrite_pages(fd, seed, i, n);
			i += n;
		}
		if (!ret && fsync(fd))
			ret = -errno;
		if (ret) {
			close(fd);
			return ret;
		}
		return krs_reopen_ro(fd, path);
	}
	/* Small folios written, all dropped: what is read back is readahead's. */
	fd = krs_make_ro_file(path, seed, PMD_PAGES, KRS_FILE_DROPPED);
	if (fd < 0)
		return fd;
	ret = read_pages(fd, 0, PMD_PAGES);
	/*
	 * Readahead reads the whole extent at the first read (its window is
	 * that large here): gaps are made by dropping two ranges again,
	 * [256K, 768K) and [1.5M, 1.75M), next to large folios; the collapse
	 * reads them back in.
	 */
	if (!ret && fh == READAHEAD_GAPS)
		ret = -posix_fadvise(fd, 256 << 10, 512 << 10, POSIX_FADV_DONTNEED);
	if (!ret && fh == READAHEAD_GAPS)
		ret = -posix_fadvise(fd, 1536 << 10, 256 << 10, POSIX_FADV_DONTNEED);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static void file_twins(struct __test_metadata *_metadata, struct _test_data_file *self,
		       enum file_how fh, const char *tag)
{
	struct twin_case *tc = calloc(1, sizeof(*tc));
	struct outcome *o = calloc(NR_SIDES, sizeof(*o));
	const char *path;
	char *p;
	int fd;

	ASSERT_NE(NULL, tc);
	ASSERT_NE(NULL, o);
	tc->tag = tag;
	tc->pmd_field = "FilePmdMapped";
	tc->nr_ext = 1;
	tc->seed = 71 + fh;
	tc->min_large = 4;
	tc->want_gaps = fh == READAHEAD_GAPS;
	for (size_t i = 0; i < PMD_PAGES; i++)
		tc->written[i] = true;
	/* A regular file has no holes: what is not cached is read in, and copied. */
	tc->want_copied[0] = PMD_PAGES;
	tc->want_holes[0] = 0;
	ASSERT_EQ(0, ctx_knobs(&self->c));

	for (int how = 0; how < NR_SIDES; how++) {
		path = ctx_path(&self->c, self->dir, how_tag[how]);
		fd = build_file(path, tc->seed, fh);
		ASSERT_LE(0, fd) TH_LOG("%s: %s", path, strerror(-fd));
		p = krs_map_aligned(PMD, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		/* Reading a page to find its PFN must not read more in. */
		ASSERT_EQ(0, madvise(p, PMD, MADV_RANDOM));
		collapse_twin(_metadata, &self->c, tc, how, fd, p, &o[how]);
		munmap(p, PMD);
		close(fd);
	}
	compare(_metadata, tc, o);
	free(o);
	free(tc);
}

TEST_F(file, large_writes)
{
	file_twins(_metadata, self, LARGE_WRITES, "large writes");
}

TEST_F(file, readahead_whole_file)
{
	file_twins(_metadata, self, READAHEAD_ALL, "readahead, whole file");
}

TEST_F(file, readahead_with_gaps)
{
	file_twins(_metadata, self, READAHEAD_GAPS, "readahead, with gaps");
}

TEST_HARNESS_MAIN
