// SPDX-License-Identifier: GPL-2.0
/*
 * Stress: worker processes churn memfd-backed shared mappings while collapse
 * requests race with them and injection points fire at random; every page is
 * checked against a model of what it must hold. Not a kselftest (it runs for
 * minutes): `make stress` (tools/stress/run) builds it and runs it in the VM.
 *
 *   khugepaged_rs_stress [-d SECONDS] [-w WORKERS] [-s SEED] [-b BACKINGS] [-I] [-C]
 *
 * -I: no injection (the main process arms nothing), so that every rollback
 * counted is a race the workers or the kernel made (the busy kernel's actors).
 * -C: no collapse write at all (every source skips it; the module is loaded
 * and idle): the same workload with the kernel's own machinery alone, to
 * tell a loss the module makes from one the kernel makes.
 *
 * The run keeps a timeline in the kernel's trace buffer (when tracefs is
 * there): the module's collapse_file events, khugepaged's
 * mm_khugepaged_collapse_file and its mm_khugepaged_scan_file of a huge
 * folio mapped by PTEs, the workers' operations and collapse writes
 * (trace_marker lines "krs wW fF ...") and the actors' actions ("krs
 * actor ..."). At the first lost or corrupted page the buffer is frozen and
 * the worker prints the state of the page's extent (mincore, pagemap,
 * kpageflags), the module's stats and the timeline's lines about the file.
 *
 * BACKINGS (default shmem): a comma-separated list of shmem (memfds), tmpfs
 * (files on a tmpfs mounted at /mnt/tmpfs, e.g. huge=within_size by
 * khugepaged_rs_actors' mthp actor), xfs and ext4 (regular files on the VM's
 * /mnt/xfs and /mnt/ext4), or "all" (shmem,xfs,ext4); worker W's files are
 * on backing W modulo their number. A regular file is written back, read in
 * again and collapsed by the module's !is_shmem path; userfaultfd is not
 * used on XFS and ext4 (MISSING and MINOR are shmem's).
 *
 * Each worker owns NFILES files of FILE_PAGES pages, each mapped MAP_SHARED
 * (2 MiB-aligned, at times moved by mremap, at times to an unaligned
 * address); half of the files (worker + file odd) are mTHP files: their
 * mapping is MADV_HUGEPAGE, and the per-size shmem knobs of 16 and 64 kB are
 * "advise" for the run, so their faults allocate 64 kB folios, or 16 kB
 * ones where a 64 kB range is partly taken (the others' stay small; write()
 * allocates small pages everywhere). Each worker also keeps a model: the
 * version each page was last written with (0: it must read as zeroes), and
 * the file size. It writes pages (through the
 * mapping or pwrite, one page or a whole extent), zaps them (MADV_DONTNEED),
 * swaps them out (MADV_PAGEOUT, zram in the VM), punches holes (fallocate,
 * MADV_REMOVE), shrinks and extends the file, moves the mapping, forks
 * children that check a few pages, collapse and exit, registers the mapping
 * with userfaultfd (MISSING resolved by UFFDIO_ZEROPAGE, or MINOR by
 * UFFDIO_CONTINUE, in a handler thread) and unregisters it, and collapses an
 * extent itself then checks it. Every page written records (page -> version)
 * in the model, punches and truncations record zeroes; a page holds a header
 * (owner tag, version) and a pattern derived from both, so a mismatch tells
 * a lost write (older version), a lost page (zeroes) or a misplaced one
 * (another tag). Pages are checked at random, after collapses, and all of
 * them (pread and mapping) every ~10 s and at the end.
 *
 * Racing with the workers: a collapser thread in each worker (addr= of the
 * worker's mappings, fd= of its files, sometimes dry_run), a collapser
 * process (pid=<worker> addr=...), and the main process, which arms
 * injection points (delay=, short pause= with releases, fail=) scoped to the
 * pids of the workers and the collapser or to the files' inodes, through
 * debugfs inject. At the end it clears them and prints a summary: operations
 * by type, collapse writes by errno, extents by result, injections, pages
 * verified, the module's stats (deltas), and the per-size shmem_alloc
 * counters' rise (the mTHP files' folios; required only when no actor of
 * khugepaged_rs_actors, $KRS_ACTORS, may change them). Exit status 0 only
 * with no lost or corrupted page and no unexpected error; the VM runner
 * catches splats.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "krs_test.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGE KRS_PAGE_SIZE
#define PMD KRS_PMD_SIZE
#define NFILES 2
#define EXTENTS 4
#define FILE_PAGES (EXTENTS * KRS_PMD_PAGES)
#define FILE_LEN (FILE_PAGES * PAGE)
#define MAX_WORKERS 16
#define WORDS (PAGE / sizeof(uint64_t))
#define REPORT_SIZE 8192
#define MAX_DETAILS 8		/* mismatches described per worker */

/* ---- shared state ------------------------------------------------------- */

enum backing { BK_SHMEM, BK_TMPFS, BK_XFS, BK_EXT4, NR_BACKINGS };

static const char *const backing_names[NR_BACKINGS] = { "shmem", "tmpfs", "xfs", "ext4" };
static const char *const backing_dirs[NR_BACKINGS] = { NULL, "/mnt/tmpfs", "/mnt/xfs",
							"/mnt/ext4" };
static enum backing backing_list[NR_BACKINGS];
static int nr_backing_list;

static bool is_shmem(enum backing b)
{
	return b == BK_SHMEM || b == BK_TMPFS;
}

enum op {
	OP_WRITE_MAP, OP_WRITE_PWRITE, OP_FILL_EXTENT, OP_CHECK_PAGE, OP_DONTNEED,
	OP_PAGEOUT, OP_PUNCH, OP_MADV_REMOVE, OP_SHRINK, OP_EXTEND, OP_MREMAP,
	OP_MREMAP_UNALIGNED, OP_FORK, OP_UFFD_REGISTER, OP_UFFD_UNREGISTER, OP_COLLAPSE_CHECK,
	OP_VERIFY_ALL, NR_OPS
};

static const char *const op_names[NR_OPS] = {
	"write (mapping)", "write (pwrite)", "fill extent", "check page", "MADV_DONTNEED",
	"MADV_PAGEOUT", "fallocate punch", "MADV_REMOVE", "ftruncate shrink", "ftruncate extend",
	"mremap", "mremap unaligned", "fork+exit", "uffd register", "uffd unregister",
	"collapse+check", "verify all",
};

/* Relative frequencies. */
static const unsigned int op_weight[NR_OPS] = {
	[OP_WRITE_MAP] = 30, [OP_WRITE_PWRITE] = 20, [OP_FILL_EXTENT] = 6, [OP_CHECK_PAGE] = 25,
	[OP_DONTNEED] = 6, [OP_PAGEOUT] = 3, [OP_PUNCH] = 5, [OP_MADV_REMOVE] = 2,
	[OP_SHRINK] = 2, [OP_EXTEND] = 3, [OP_MREMAP] = 2, [OP_MREMAP_UNALIGNED] = 1,
	[OP_FORK] = 2, [OP_UFFD_REGISTER] = 2, [OP_UFFD_UNREGISTER] = 3, [OP_COLLAPSE_CHECK] = 5,
};

enum source { SRC_ADDR, SRC_FD, SRC_PID, SRC_WORKER, SRC_CHILD, NR_SOURCES };

static const char *const source_names[NR_SOURCES] = {
	"addr= (worker thread)", "fd= (worker thread)", "pid= (collapser process)",
	"addr= (worker, then checked)", "addr=/fd= (forked child)",
};

static const char *const pause_points[] = {
	"scan_index", "before_copy", "before_recheck", "before_store", "retract_vma",
	"before_install", "after_scan",
};

static const char *const fail_points[] = {
	"alloc", "charge", "copy_mc", "xas_nomem", "shmem_charge",
};

enum inj { INJ_DELAY, INJ_PAUSE, INJ_FAIL, INJ_RELEASE, INJ_CLEAR, INJ_REFUSED, NR_INJ };

static const char *const inj_names[NR_INJ] = {
	"delay= armed", "pause= armed (timeout 5-60 ms)", "fail= armed", "release", "clear",
	"refused (unexpected)",
};

struct worker_pub {
	pid_t pid;
	unsigned long addr[NFILES];	/* current mapping, 0 while moved */
	unsigned long ino[NFILES];
};

struct shared {
	int stop;
	int failed;
	int error_reported;
	uint64_t ops[NR_OPS];
	uint64_t writes_by_source[NR_SOURCES];
	uint64_t write_errno[NR_SOURCES][134];	/* [0]: write succeeded */
	uint64_t results[KRS_NR_SCAN_RESULTS];
	uint64_t inj[NR_INJ];
	uint64_t pages_checked_map, pages_checked_pread, full_passes, bad_pages;
	uint64_t uffd_faults, collapse_checked_pmd, pmd_gone, collapse_skipped;
	int dumped;		/* the first mismatch's state was printed */
	uint64_t by_backing_checked[NR_BACKINGS], by_backing_pmd[NR_BACKINGS];
	uint64_t by_backing_workers[NR_BACKINGS];
	pid_t collapser;
	int nworkers;
	struct worker_pub w[MAX_WORKERS];
	char first_error[1024];
};

static struct shared *sh;

/* What grows while any worker works: pages checked and operations done. */
static uint64_t progress(void)
{
	uint64_t n = __atomic_load_n(&sh->pages_checked_map, __ATOMIC_RELAXED) +
		     __atomic_load_n(&sh->pages_checked_pread, __ATOMIC_RELAXED);

	for (int i = 0; i < NR_OPS; i++)
		n += __atomic_load_n(&sh->ops[i], __ATOMIC_RELAXED);
	return n;
}

/* -C: no collapse writes. */
static bool no_collapse;

/* The events of the timeline (krs_trace_setup()). */
static const char *const trace_events[] = {
	"khugepaged_rs/collapse_file", "huge_memory/mm_khugepaged_collapse_file",
	/*
	 * khugepaged (and MADV_COLLAPSE) finding a huge folio mapped by PTEs
	 * (SCAN_PTE_MAPPED_HUGEPAGE, 9 in 7.2 and 7.3), then clearing them.
	 */
	"huge_memory/mm_khugepaged_scan_file if result == 9",
};

/*
 * An actor that migrates or reclaims the workers' pages (migrate, compact,
 * memcg) may unmap the PMD a worker's own collapse just installed before
 * smaps is read: counted, not a failure.
 */
static bool pmd_may_vanish;

/*
 * mTHP: the per-size shmem knobs the run sets to "advise" (put back at
 * exit), so that faults in a MADV_HUGEPAGE mapping of a memfd (anonymous
 * shmem: a memfd is unlinked when mapped) allocate folios of these sizes;
 * their shmem_alloc counters show that they did.
 */
#define THP_DIR "/sys/kernel/mm/transparent_hugepage"
static const unsigned int mthp_kb[] = { 16, 64 };
#define NR_MTHP ARRAY_SIZE(mthp_kb)
static char mthp_saved[NR_MTHP][32];	/* "" while not changed */
static long mthp_alloc0[NR_MTHP], mthp_fallback0[NR_MTHP];	/* at the start */

/* Half of the files: worker + file odd. */
static bool mthp_file(int worker, int file)
{
	return (worker + file) % 2;
}

static void mthp_path(char *buf, size_t size, size_t k, const char *name)
{
	snprintf(buf, size, THP_DIR "/hugepages-%ukB/%s", mthp_kb[k], name);
}

/* A per-size counter (stats/@name), -1 if absent. */
static long mthp_stat(size_t k, const char *name)
{
	char path[128], stat[64], buf[32];

	snprintf(stat, sizeof(stat), "stats/%s", name);
	mthp_path(path, sizeof(path), k, stat);
	return krs_read_file(path, buf, sizeof(buf)) > 0 ? atol(buf) : -1;
}

static void mthp_restore(void)
{
	char path[128];

	for (size_t k = 0; k < NR_MTHP; k++) {
		mthp_path(path, sizeof(path), k, "shmem_enabled");
		if (mthp_saved[k][0] && !krs_write_str(path, mthp_saved[k]))
			mthp_saved[k][0] = '\0';
	}
}

/* Set the knobs to "advise" for the run; false if one is missing. */
static bool mthp_setup(void)
{
	char path[128], prev[32];

	atexit(mthp_restore);
	for (size_t k = 0; k < NR_MTHP; k++) {
		mthp_path(path, sizeof(path), k, "shmem_enabled");
		mthp_alloc0[k] = mthp_stat(k, "shmem_alloc");
		mthp_fallback0[k] = mthp_stat(k, "shmem_fallback");
		if (mthp_alloc0[k] < 0 || krs_sysfs_choice(path, prev, sizeof(prev)) ||
		    krs_write_str(path, "advise"))
			return false;
		memcpy(mthp_saved[k], prev, sizeof(prev));
	}
	return true;
}

#define ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)
#define STOPPING() __atomic_load_n(&sh->stop, __ATOMIC_RELAXED)

static void fail(const char *fmt, ...) __printf(1, 2);

/* Record a failure: always printed, the first one kept for the summary. */
static void fail(const char *fmt, ...)
{
	char msg[sizeof(sh->first_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	__atomic_store_n(&sh->failed, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_exchange_n(&sh->error_reported, 1, __ATOMIC_SEQ_CST))
		memcpy(sh->first_error, msg, sizeof(msg));
	dprintf(2, "# FAIL [pid %d] %s\n", getpid(), msg);
}

/* ---- randomness --------------------------------------------------------- */

static __thread struct krs_rng rng;

static size_t below(size_t n)
{
	return krs_below(&rng, n);
}

static void seed_rng(uint64_t seed, uint64_t salt)
{
	rng.s = (seed + 1) * 0x9e3779b97f4a7c15ULL ^ (salt * 0xbf58476d1ce4e5b9ULL);
}

/* ---- page contents ------------------------------------------------------ */

/* Word 0: the owner tag, word 1: the version, then a pattern of both. */
static void fill_page(uint64_t *w, uint64_t tag, uint32_t ver)
{
	uint64_t k = (tag * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)ver * 0xc2b2ae3d27d4eb4fULL);

	w[0] = tag;
	w[1] = ver;
	for (size_t i = 2; i < WORDS; i++)
		w[i] = k + i * 0xff51afd7ed558ccdULL;
}

/*
 * 0 if @w is page (@tag, @ver), zeroes for version 0; else 1 + first bad
 * word. Every word is read from memory (krs_read_u64()).
 */
static size_t check_words(const uint64_t *w, uint64_t tag, uint32_t ver)
{
	uint64_t k = (tag * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)ver * 0xc2b2ae3d27d4eb4fULL);

	if (!ver) {
		for (size_t i = 0; i < WORDS; i++)
			if (krs_read_u64(&w[i]))
				return i + 1;
		return 0;
	}
	if (krs_read_u64(&w[0]) != tag)
		return 1;
	if (krs_read_u64(&w[1]) != ver)
		return 2;
	for (size_t i = 2; i < WORDS; i++)
		if (krs_read_u64(&w[i]) != k + i * 0xff51afd7ed558ccdULL)
			return i + 1;
	return 0;
}

/* ---- the worker --------------------------------------------------------- */

struct file {
	int fd;
	char *map;		/* FILE_LEN bytes mapping the whole file */
	bool aligned;		/* map is 2 MiB-aligned */
	size_t size;		/* in pages */
	uint32_t ver[FILE_PAGES];
	uint32_t next_ver;
};

struct worker {
	int id;
	enum backing backing;
	char *buf;		/* PMD bytes: a run of pages for one pwrite */
	struct file f[NFILES];
	unsigned int details;	/* mismatches described so far */
	/* userfaultfd */
	int uffd;
	int uffd_file;
	bool minor;
	bool minor_ok;
	struct krs_uffd_handler h;
	/* collapser thread */
	pthread_t thread;
	int thread_stop;
};

static struct worker *me;
static __thread const char *current_op = "start";

static uint64_t tag_of(int file, size_t page)
{
	return ((uint64_t)(me->id + 1) << 40) | ((uint64_t)file << 32) | page;
}

static void publish(int i)
{
	__atomic_store_n(&sh->w[me->id].addr[i], (unsigned long)me->f[i].map, __ATOMIC_SEQ_CST);
}

/* /proc/kpageflags bits printed by dump_extent(). */
static const char *const kpf_names[] = {
	[0] = "locked", [2] = "referenced", [3] = "uptodate", [4] = "dirty", [5] = "lru",
	[6] = "active", [8] = "writeback", [9] = "reclaim", [11] = "mmap", [12] = "anon",
	[13] = "swapcache", [14] = "swapbacked", [15] = "head", [16] = "tail", [17] = "huge",
	[18] = "unevictable", [20] = "nopage", [22] = "thp", [24] = "zero_page",
};

/*
 * The state of file @i's extent holding @page, before anything touches it
 * again: which pages are in the page cache (mincore), and for those the
 * mapping maps, the pfn and its kpageflags; consecutive pages alike are
 * one line.
 */
static void dump_extent(int i, size_t page)
{
	struct file *f = &me->f[i];
	size_t first = page / KRS_PMD_PAGES * KRS_PMD_PAGES, run = first;
	unsigned char vec[KRS_PMD_PAGES];
	uint64_t pm[KRS_PMD_PAGES], fl[KRS_PMD_PAGES] = { 0 };
	int pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kfd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	bool inc = !mincore(f->map + first * PAGE, PMD, vec);
	off_t pmoff = (uintptr_t)(f->map + first * PAGE) / PAGE * 8;

	if (pmfd < 0 || pread(pmfd, pm, sizeof(pm), pmoff) != (ssize_t)sizeof(pm))
		memset(pm, 0, sizeof(pm));
	for (size_t k = 0; k < KRS_PMD_PAGES; k++) {
		uint64_t pfn = pm[k] & ((1ULL << 55) - 1);

		if (kfd >= 0 && (pm[k] >> 63) && pfn &&
		    pread(kfd, &fl[k], 8, pfn * 8) != 8)
			fl[k] = 0;
	}
	dprintf(2, "# extent %zu of worker %d file %d (size %zu pages, map %p%s): %s\n",
		first / KRS_PMD_PAGES, me->id, i, f->size, f->map, f->aligned ? "" : " unaligned",
		"pages in the page cache (mincore), mapped pfn, kpageflags");
	for (size_t k = first; k <= first + KRS_PMD_PAGES; k++) {
		size_t a = run - first, b = k - first;
		char flags[256] = "";
		size_t len = 0;

		if (k < first + KRS_PMD_PAGES && (inc ? vec[b] & 1 : 0) == (inc ? vec[a] & 1 : 0) &&
		    (pm[b] >> 63) == (pm[a] >> 63) && fl[b] == fl[a] &&
		    !!f->ver[k] == !!f->ver[run])
			continue;
		for (size_t bit = 0; bit < ARRAY_SIZE(kpf_names); bit++)
			if (kpf_names[bit] && (fl[a] >> bit & 1))
				len += snprintf(flags + len, sizeof(flags) - len, " %s",
						kpf_names[bit]);
		dprintf(2, "#   pages %zu-%zu: model %s, %s, %s pfn %#llx%s\n", run, k - 1,
			f->ver[run] ? "data" : "zeroes",
			!inc ? "mincore failed" : vec[a] & 1 ? "in cache" : "not in cache",
			pm[a] >> 63 ? "mapped" : (pm[a] >> 62 & 1) ? "swap" : "not mapped",
			(unsigned long long)(pm[a] & ((1ULL << 55) - 1)), flags);
		run = k;
	}
	if (pmfd >= 0)
		close(pmfd);
	if (kfd >= 0)
		close(kfd);
}

/* The first mismatch of the run: freeze the timeline, print what is known. */
static void dump_first(int i, size_t page)
{
	static char stats[16384];
	static char name[64], mark[32];
	static const char *const needles[] = { name, mark, "krs actor", "memfd:krs_stress" };

	if (__atomic_exchange_n(&sh->dumped, 1, __ATOMIC_SEQ_CST))
		return;
	krs_trace_freeze();
	dump_extent(i, page);
	if (krs_stats_read(stats, sizeof(stats)) > 0)
		dprintf(2, "# module stats now:\n%s", stats);
	snprintf(name, sizeof(name), "krs_stress.%d.%d", me->id, i);
	snprintf(mark, sizeof(mark), "krs w%d f%d ", me->id, i);
	/* A tmpfs file has a name of its own; memfds share one. */
	krs_trace_dump(needles, me->backing == BK_SHMEM ? 4 : 3, 300);
}

static void mismatch(int i, size_t page, const char *how, const uint64_t *w, size_t bad)
{
	char found[192];

	ADD(sh->bad_pages, 1);
	if (!me->details)
		dump_first(i, page);
	if (me->details++ >= MAX_DETAILS)
		return;
	snprintf(found, sizeof(found),
		 "expected version %u (size %zu pages), found tag %#llx version %llu, first bad word %zu (%#llx)",
		 me->f[i].ver[page], me->f[i].size, (unsigned long long)krs_read_u64(&w[0]),
		 (unsigned long long)krs_read_u64(&w[1]), bad - 1,
		 (unsigned long long)krs_read_u64(&w[bad - 1]));
	fail("worker %d (%s) file %d page %zu (extent %zu) via %s after %s: %s",
	     me->id, backing_names[me->backing], i, page, page / KRS_PMD_PAGES, how, current_op,
	     found);
}

static void check_page_map(int i, size_t page)
{
	struct file *f = &me->f[i];
	const uint64_t *w = (const uint64_t *)(f->map + page * PAGE);
	size_t bad;

	if (page >= f->size)
		return;
	bad = check_words(w, tag_of(i, page), f->ver[page]);
	ADD(sh->pages_checked_map, 1);
	ADD(sh->by_backing_checked[me->backing], 1);
	if (bad)
		mismatch(i, page, "mapping", w, bad);
}

static void check_page_pread(int i, size_t page)
{
	struct file *f = &me->f[i];
	uint64_t w[WORDS];
	ssize_t n = pread(f->fd, w, PAGE, page * PAGE);
	size_t bad;

	if (page >= f->size) {
		if (n != 0)
			fail("worker %d file %d: pread of page %zu beyond EOF (%zu pages) read %zd",
			     me->id, i, page, f->size, n);
		return;
	}
	if (n != (ssize_t)PAGE) {
		fail("worker %d file %d: pread of page %zu: %zd (%s)", me->id, i, page, n,
		     strerror(errno));
		return;
	}
	bad = check_words(w, tag_of(i, page), f->ver[page]);
	ADD(sh->pages_checked_pread, 1);
	ADD(sh->by_backing_checked[me->backing], 1);
	if (bad)
		mismatch(i, page, "pread", w, bad);
}

static void verify_all(void)
{
	for (int i = 0; i < NFILES; i++) {
		for (size_t p = 0; p < FILE_PAGES; p++) {
			check_page_pread(i, p);
			check_page_map(i, p);
		}
	}
	ADD(sh->full_passes, 1);
}

static void write_page(int i, size_t page, bool via_map)
{
	struct file *f = &me->f[i];
	uint32_t ver = ++f->next_ver ? f->next_ver : ++f->next_ver;
	uint64_t w[WORDS];

	if (page >= f->size)
		return;
	if (via_map) {
		fill_page((uint64_t *)(f->map + page * PAGE), tag_of(i, page), ver);
	} else {
		fill_page(w, tag_of(i, page), ver);
		if (pwrite(f->fd, w, PAGE, page * PAGE) != (ssize_t)PAGE) {
			fail("worker %d file %d: pwrite of page %zu: %s", me->id, i, page,
			     strerror(errno));
			return;
		}
	}
	f->ver[page] = ver;
}

/*
 * Pages [@first, +@n) written by one pwrite (on XFS and ext4 a large write
 * makes a large folio).
 */
static void write_run(int i, size_t first, size_t n)
{
	struct file *f = &me->f[i];
	uint32_t vers[KRS_PMD_PAGES];

	if (first >= f->size)
		return;
	if (first + n > f->size)
		n = f->size - first;
	for (size_t k = 0; k < n; k++) {
		vers[k] = ++f->next_ver ? f->next_ver : ++f->next_ver;
		fill_page((uint64_t *)(me->buf + k * PAGE), tag_of(i, first + k), vers[k]);
	}
	if (pwrite(f->fd, me->buf, n * PAGE, first * PAGE) != (ssize_t)(n * PAGE)) {
		fail("worker %d file %d: pwrite of pages %zu+%zu: %s", me->id, i, first, n,
		     strerror(errno));
		return;
	}
	memcpy(&f->ver[first], vers, n * sizeof(vers[0]));
}

static void zero_model(struct file *f, size_t from, size_t to)
{
	for (size_t p = from; p < to && p < FILE_PAGES; p++)
		f->ver[p] = 0;
}

/* Count the result= of each extent line of a report, by name. */
static void count_results(const char *report)
{
	for (const char *r = report; (r = strstr(r, "result=")); ) {
		r += 7;
		for (size_t k = 0; k < KRS_NR_SCAN_RESULTS; k++) {
			size_t n = strlen(krs_scan_names[k]);

			if (!strncmp(r, krs_scan_names[k], n) && (r[n] == ' ' || r[n] == '\n')) {
				ADD(sh->results[k], 1);
				break;
			}
		}
	}
}

/* The errnos a collapse write may fail with (DOCUMENTED in the ABI). */
static bool expected_errno(int err)
{
	switch (err) {
	case EINVAL: case ENOMEM: case EBUSY: case EAGAIN: case ESRCH: case EBADF:
		return true;
	default:
		return false;
	}
}

/* One collapse write through @cfd (one try); the result or -errno. */
static ssize_t collapse_write(int cfd, enum source src, int w, int i, char *report,
			      const char *fmt, ...) __printf(6, 7);

/* Worker @w's file @i is the one the command names. */
static ssize_t collapse_write(int cfd, enum source src, int w, int i, char *report,
			      const char *fmt, ...)
{
	char cmd[256];
	va_list ap;
	ssize_t ret;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (no_collapse) {
		ADD(sh->collapse_skipped, 1);
		return -EAGAIN;
	}
	ret = write(cfd, cmd, len);
	ret = ret < 0 ? -errno : ret;
	krs_trace_mark("krs w%d f%d collapse (%s) %s -> %zd\n", w, i, source_names[src], cmd,
		       ret);
	ADD(sh->writes_by_source[src], 1);
	ADD(sh->write_errno[src][ret < 0 ? (-ret < 134 ? -ret : 133) : 0], 1);
	if (ret >= 0 && ret != len)
		fail("collapse \"%s\" returned %zd of %d bytes", cmd, ret, len);
	if (ret < 0 && !expected_errno(-ret))
		fail("collapse \"%s\": unexpected %s", cmd, strerror(-ret));
	if (report) {
		ssize_t n = krs_collapse_report(cfd, report, REPORT_SIZE);

		if (n < 0) {
			fail("reading the report of \"%s\": %s", cmd, strerror(-n));
			report[0] = '\0';
		} else {
			long status = 0;
			struct krs_extent ext[1];

			if (krs_report_parse(report, ext, 1, &status) < 0 || status != ret)
				fail("report of \"%s\" (%zd) malformed or wrong:\n%s", cmd, ret,
				     report);
			count_results(report);
		}
	}
	return ret;
}

/* The worker's collapser thread: addr= of its mappings, fd= of its files. */
static void *collapser_thread(void *arg)
{
	int cfd = krs_collapse_open();
	char *report = malloc(REPORT_SIZE);

	seed_rng(me->id, 1000 + (uintptr_t)arg);
	if (cfd < 0 || !report) {
		fail("worker %d: collapser thread: %s", me->id, strerror(cfd < 0 ? -cfd : ENOMEM));
		free(report);
		return NULL;
	}
	while (!__atomic_load_n(&me->thread_stop, __ATOMIC_RELAXED)) {
		int i = below(NFILES);
		size_t first = below(EXTENTS), n = 1 + below(EXTENTS - first);
		const char *dry = below(10) ? "" : " dry_run";

		if (below(2)) {
			unsigned long a = __atomic_load_n(&sh->w[me->id].addr[i], __ATOMIC_SEQ_CST);

			if (a)
				collapse_write(cfd, SRC_ADDR, me->id, i, report,
					       "addr=%lx len=%zu%s",
					       a + first * PMD, n * PMD, dry);
		} else {
			/* Now and then an unaligned start: only whole extents inside count. */
			size_t off = first * PMD + (below(8) ? 0 : PAGE * below(KRS_PMD_PAGES));

			collapse_write(cfd, SRC_FD, me->id, i, report,
				       "fd=%d offset=%zu len=%zu%s",
				       me->f[i].fd, off, n * PMD, dry);
		}
		krs_sleep_ms(below(20));
	}
	close(cfd);
	free(report);
	return NULL;
}

/* A 2 MiB-aligned (+ @skew) free range of FILE_LEN, reserved PROT_NONE. */
static char *reserve(size_t skew)
{
	size_t span = FILE_LEN + 2 * PMD;
	char *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (res == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)res + PMD - 1) & ~(PMD - 1)) + skew;
	if (a > res)
		munmap(res, a - res);
	if (a + FILE_LEN < res + span)
		munmap(a + FILE_LEN, res + span - (a + FILE_LEN));
	return a;
}

static void do_mremap(int i, bool aligned)
{
	struct file *f = &me->f[i];
	char *to = reserve(aligned ? 0 : PAGE * (1 + below(KRS_PMD_PAGES - 1)));
	void *p;

	if (!to) {
		fail("worker %d: reserving for mremap: %s", me->id, strerror(errno));
		return;
	}
	__atomic_store_n(&sh->w[me->id].addr[i], 0UL, __ATOMIC_SEQ_CST);
	p = mremap(f->map, FILE_LEN, FILE_LEN, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (p == MAP_FAILED) {
		fail("worker %d: mremap: %s", me->id, strerror(errno));
		munmap(to, FILE_LEN);
	} else {
		f->map = p;
		f->aligned = aligned;
	}
	publish(i);
}

static void uffd_unregister(void)
{
	struct uffdio_range range;

	if (me->uffd < 0)
		return;
	krs_uffd_handler_stop(&me->h);
	range.start = (uintptr_t)me->f[me->uffd_file].map;
	range.len = FILE_LEN;
	ioctl(me->uffd, UFFDIO_UNREGISTER, &range);
	ADD(sh->uffd_faults, me->h.faults);
	if (me->h.error)
		fail("worker %d: userfaultfd handler (%s): %s", me->id,
		     me->minor ? "MINOR, UFFDIO_CONTINUE" : "MISSING, UFFDIO_ZEROPAGE",
		     strerror(me->h.error));
	close(me->uffd);
	me->uffd = -1;
}

static void uffd_register(void)
{
	int i = below(NFILES), ret;
	bool minor = me->minor_ok && below(2);

	me->uffd = krs_uffd_open(minor ? UFFD_FEATURE_MINOR_SHMEM : 0);
	if (me->uffd < 0) {
		if (minor) {
			/* No MINOR faults on shmem here: MISSING only from now on. */
			me->minor_ok = false;
			me->uffd = -1;
			return;
		}
		fail("worker %d: userfaultfd: %s", me->id, strerror(-me->uffd));
		me->uffd = -1;
		return;
	}
	ret = krs_uffd_register(me->uffd, me->f[i].map, FILE_LEN,
				minor ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_MISSING,
				NULL);
	if (ret) {
		fail("worker %d: UFFDIO_REGISTER (%s): %s", me->id, minor ? "minor" : "missing",
		     strerror(-ret));
		close(me->uffd);
		me->uffd = -1;
		return;
	}
	memset(&me->h, 0, sizeof(me->h));
	me->h.uffd = me->uffd;
	me->h.how = minor ? KRS_UFFD_CONTINUE : KRS_UFFD_ZEROPAGE;
	me->h.reg_addr = me->f[i].map;
	me->h.reg_len = FILE_LEN;
	me->uffd_file = i;
	me->minor = minor;
	ret = krs_uffd_handler_start(&me->h);
	if (ret) {
		fail("worker %d: uffd handler thread: %s", me->id, strerror(-ret));
		close(me->uffd);
		me->uffd = -1;
	}
}

/* A child: checks a few pages (its copy of the model is current), collapses, exits. */
static int child_main(void)
{
	char report[REPORT_SIZE];
	int cfd = krs_collapse_open();

	seed_rng(getpid(), 77);
	for (int k = 0; k < 8; k++) {
		int i = below(NFILES);
		size_t p = below(FILE_PAGES);

		check_page_map(i, p);
		check_page_pread(i, p);
	}
	if (cfd >= 0 && below(2)) {
		int i = below(NFILES);

		if (below(2))
			collapse_write(cfd, SRC_CHILD, me->id, i, report, "addr=%lx len=%lu",
				       (unsigned long)me->f[i].map, (unsigned long)FILE_LEN);
		else
			collapse_write(cfd, SRC_CHILD, me->id, i, report, "fd=%d len=%lu",
				       me->f[i].fd, (unsigned long)FILE_LEN);
	}
	return 0;
}

static void do_fork(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		fail("worker %d: fork: %s", me->id, strerror(errno));
		return;
	}
	if (pid == 0)
		_exit(below(4) ? child_main() : 0);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("worker %d: child %d ended with status %#x", me->id, pid, status);
}

static void collapse_and_check(int cfd, char *report)
{
	int i = below(NFILES);
	struct file *f = &me->f[i];
	size_t e = below(EXTENTS);
	ssize_t ret = collapse_write(cfd, SRC_WORKER, me->id, i, report, "addr=%lx len=%lu",
			       (unsigned long)f->map + e * PMD, (unsigned long)PMD);

	if (ret > 0 && f->aligned && (e + 1) * KRS_PMD_PAGES <= f->size && me->uffd < 0) {
		const char *field = is_shmem(me->backing) ? "ShmemPmdMapped" : "FilePmdMapped";
		long kb = krs_smaps_kb(0, (unsigned long)f->map, field);

		if (kb < 2048 && pmd_may_vanish) {
			ADD(sh->pmd_gone, 1);
		} else if (kb < 2048) {
			fail("worker %d (%s): collapse of extent %zu succeeded but %s is %ld kB",
			     me->id, backing_names[me->backing], e, field, kb);
		} else {
			ADD(sh->collapse_checked_pmd, 1);
			ADD(sh->by_backing_pmd[me->backing], 1);
		}
	}
	for (size_t p = e * KRS_PMD_PAGES; p < (e + 1) * KRS_PMD_PAGES; p++) {
		check_page_map(i, p);
		if (!(p % 16))
			check_page_pread(i, p);
	}
}

static void worker_op(enum op op, int cfd, char *report)
{
	int i = below(NFILES);
	struct file *f = &me->f[i];
	size_t page = below(FILE_PAGES), n = 1 + below(64);
	uint32_t ver0 = f->next_ver;
	long arg = -1;		/* the op's own argument, for the timeline */

	if (page + n > FILE_PAGES)
		n = FILE_PAGES - page;
	current_op = op_names[op];
	switch (op) {
	case OP_WRITE_MAP:
	case OP_WRITE_PWRITE:
		n = 1 + below(8);
		for (size_t k = 0; k < n && page + k < FILE_PAGES; k++)
			write_page(i, page + k, op == OP_WRITE_MAP);
		break;
	case OP_FILL_EXTENT: {
		size_t e = below(EXTENTS), run = 0;
		bool via_map = below(4);

		arg = e * 2 + via_map;

		/* Leave a few holes; by pwrite, each run between them in one call. */
		for (size_t p = e * KRS_PMD_PAGES; p <= (e + 1) * KRS_PMD_PAGES; p++) {
			if (p < (e + 1) * KRS_PMD_PAGES && below(16)) {
				if (via_map)
					write_page(i, p, true);
				else
					run++;
				continue;
			}
			if (run)
				write_run(i, p - run, run);
			run = 0;
		}
		break;
	}
	case OP_CHECK_PAGE:
		for (size_t k = 0; k < 4; k++) {
			check_page_map(i, page);
			check_page_pread(i, page);
			page = below(FILE_PAGES);
		}
		break;
	case OP_DONTNEED:
		if (madvise(f->map + page * PAGE, n * PAGE, MADV_DONTNEED))
			fail("worker %d: MADV_DONTNEED: %s", me->id, strerror(errno));
		break;
	case OP_PAGEOUT:
		/* EINVAL on kernels without it; the pages stay. */
		madvise(f->map + page * PAGE, n * PAGE, MADV_PAGEOUT);
		break;
	case OP_PUNCH:
		if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, page * PAGE,
			      n * PAGE))
			fail("worker %d: fallocate punch: %s", me->id, strerror(errno));
		else
			zero_model(f, page, page + n);
		break;
	case OP_MADV_REMOVE:
		if (page >= f->size)
			break;
		if (page + n > f->size)
			n = f->size - page;
		if (madvise(f->map + page * PAGE, n * PAGE, MADV_REMOVE))
			fail("worker %d: MADV_REMOVE: %s", me->id, strerror(errno));
		else
			zero_model(f, page, page + n);
		break;
	case OP_SHRINK: {
		size_t size = FILE_PAGES / 2 + below(FILE_PAGES / 2);

		arg = size;
		if (size >= f->size)
			break;
		if (ftruncate(f->fd, size * PAGE)) {
			fail("worker %d: ftruncate: %s", me->id, strerror(errno));
			break;
		}
		zero_model(f, size, FILE_PAGES);
		f->size = size;
		break;
	}
	case OP_EXTEND:
		if (f->size == FILE_PAGES)
			break;
		if (ftruncate(f->fd, FILE_LEN))
			fail("worker %d: ftruncate: %s", me->id, strerror(errno));
		else
			f->size = FILE_PAGES;
		break;
	case OP_MREMAP:
	case OP_MREMAP_UNALIGNED:
		/* Not while registered with userfaultfd: the handler knows one range. */
		if (me->uffd < 0)
			do_mremap(i, op == OP_MREMAP || !f->aligned);
		break;
	case OP_FORK:
		do_fork();
		break;
	case OP_UFFD_REGISTER:
		if (me->uffd < 0 && is_shmem(me->backing))
			uffd_register();
		break;
	case OP_UFFD_UNREGISTER:
		uffd_unregister();
		break;
	case OP_COLLAPSE_CHECK:
		collapse_and_check(cfd, report);
		break;
	case OP_VERIFY_ALL:
		verify_all();
		break;
	case NR_OPS:
		break;
	}
	ADD(sh->ops[op], 1);
	/* Fill extent: arg = extent * 2 + through the mapping; shrink: the new size. */
	krs_trace_mark("krs w%d f%d %s page=%zu n=%zu arg=%ld size=%zu versions %u-%u\n", me->id,
		       i, op_names[op], page, n, arg, f->size, ver0 + 1, f->next_ver);
}

static enum op pick_op(void)
{
	static unsigned int total;
	unsigned int r;

	if (!total)
		for (int o = 0; o < NR_OPS; o++)
			total += op_weight[o];
	r = below(total);
	for (int o = 0; o < NR_OPS; o++) {
		if (r < op_weight[o])
			return o;
		r -= op_weight[o];
	}
	return OP_CHECK_PAGE;
}

static void on_fatal(int sig)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "# FAIL [pid %d] worker %d: signal %d during %s\n",
			 getpid(), me ? me->id : -1, sig, current_op);

	/* Nothing more to do if it cannot be written. */
	krs_ignore(write(2, msg, n));
	__atomic_store_n(&sh->failed, 1, __ATOMIC_SEQ_CST);
	_exit(128 + sig);
}

/* The worker's file @i, FILE_LEN bytes: a memfd or a new file in its backing's directory. */
static int open_file(int i, char *path, size_t size)
{
	const char *dir = backing_dirs[me->backing];
	int fd;

	path[0] = '\0';
	if (!dir)
		return krs_memfd("krs_stress", FILE_LEN);
	snprintf(path, size, "%s/krs_stress.%d.%d", dir, me->id, i);
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, FILE_LEN)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int worker_main(int id, uint64_t seed)
{
	char paths[NFILES][64];
	struct sigaction sa = { .sa_handler = on_fatal };
	char *report = malloc(REPORT_SIZE);
	uint64_t last_verify = krs_now_ms();
	int cfd, ret;

	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	me = calloc(1, sizeof(*me));
	if (!me || !report)
		return 1;
	me->id = id;
	me->backing = backing_list[id % nr_backing_list];
	me->buf = malloc(PMD);
	if (!me->buf)
		return 1;
	me->uffd = -1;
	me->minor_ok = true;
	seed_rng(seed, id);
	cfd = krs_collapse_open();
	if (cfd < 0) {
		fail("worker %d: open collapse: %s", id, strerror(-cfd));
		return 1;
	}
	for (int i = 0; i < NFILES; i++) {
		struct file *f = &me->f[i];
		struct stat st;

		f->fd = open_file(i, paths[i], sizeof(paths[i]));
		if (f->fd < 0 || fstat(f->fd, &st)) {
			fail("worker %d: %s file: %s", id, backing_names[me->backing],
			     strerror(f->fd < 0 ? -f->fd : errno));
			return 1;
		}
		f->map = krs_map_aligned(FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
		if (f->map == MAP_FAILED) {
			fail("worker %d: mmap: %s", id, strerror(errno));
			return 1;
		}
		f->aligned = true;
		f->size = FILE_PAGES;
		sh->w[id].ino[i] = st.st_ino;
		/* mTHP: VM_HUGEPAGE (kept by mremap and fork) before any fault. */
		if (mthp_file(id, i) && madvise(f->map, FILE_LEN, MADV_HUGEPAGE)) {
			fail("worker %d: MADV_HUGEPAGE: %s", id, strerror(errno));
			return 1;
		}
		/* Start with most of each extent written. */
		for (size_t p = 0; p < FILE_PAGES; p++)
			if (below(8))
				write_page(i, p, true);
		publish(i);
	}
	__atomic_store_n(&sh->w[id].pid, getpid(), __ATOMIC_SEQ_CST);
	ret = pthread_create(&me->thread, NULL, collapser_thread, NULL);
	if (ret) {
		fail("worker %d: pthread_create: %s", id, strerror(ret));
		return 1;
	}
	while (!STOPPING()) {
		worker_op(pick_op(), cfd, report);
		if (krs_now_ms() - last_verify > 10000) {
			current_op = "periodic verify";
			worker_op(OP_VERIFY_ALL, cfd, report);
			last_verify = krs_now_ms();
		}
	}
	__atomic_store_n(&me->thread_stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(me->thread, NULL);
	uffd_unregister();
	current_op = "final verify";
	worker_op(OP_VERIFY_ALL, cfd, report);
	close(cfd);
	for (int i = 0; i < NFILES; i++)
		if (paths[i][0])
			unlink(paths[i]);
	return __atomic_load_n(&sh->failed, __ATOMIC_SEQ_CST) ? 1 : 0;
}

/* ---- the collapser process and the injector ---------------------------- */

static int collapser_main(uint64_t seed)
{
	char *report = malloc(REPORT_SIZE);
	int cfd = krs_collapse_open();

	seed_rng(seed, 500);
	if (cfd < 0 || !report) {
		fail("collapser: %s", strerror(cfd < 0 ? -cfd : ENOMEM));
		return 1;
	}
	while (!STOPPING()) {
		int w = below(sh->nworkers), i = below(NFILES);
		pid_t pid = __atomic_load_n(&sh->w[w].pid, __ATOMIC_SEQ_CST);
		unsigned long a = __atomic_load_n(&sh->w[w].addr[i], __ATOMIC_SEQ_CST);
		size_t first = below(EXTENTS), n = 1 + below(EXTENTS - first);

		if (pid && a)
			collapse_write(cfd, SRC_PID, w, i, report, "pid=%d addr=%lx len=%zu%s", pid,
				       a + first * PMD, n * PMD, below(10) ? "" : " dry_run");
		krs_sleep_ms(below(30));
	}
	close(cfd);
	return 0;
}

/* Arm (or release, or clear) one injection, scoped to the stress processes. */
static void inject_once(void)
{
	int w = below(sh->nworkers), r, kind = below(20);
	pid_t pid = below(5) ? sh->w[w].pid : sh->collapser;
	char scope[64];

	if (below(3))
		snprintf(scope, sizeof(scope), "pid=%d", pid);
	else
		snprintf(scope, sizeof(scope), "ino=%lu", sh->w[w].ino[below(NFILES)]);
	if (kind < 8) {
		r = krs_inject("delay=%s ms=%zu %s count=%zu",
			       pause_points[below(ARRAY_SIZE(pause_points))],
			       1 + below(5), scope, 1 + below(16));
		kind = INJ_DELAY;
	} else if (kind < 14) {
		r = krs_inject("fail=%s %s count=%zu",
			       fail_points[below(ARRAY_SIZE(fail_points))],
			       scope, 1 + below(3));
		kind = INJ_FAIL;
	} else if (kind < 17) {
		r = krs_inject("pause=%s %s timeout_ms=%zu count=%zu",
			       pause_points[below(ARRAY_SIZE(pause_points))],
			       scope, 5 + below(56), 1 + below(2));
		kind = INJ_PAUSE;
	} else if (kind < 19) {
		r = krs_inject("release");
		kind = INJ_RELEASE;
	} else {
		r = krs_inject("clear");
		kind = INJ_CLEAR;
	}
	if (r) {
		ADD(sh->inj[INJ_REFUSED], 1);
		fail("inject (%s): %s", inj_names[kind], strerror(-r));
	} else {
		ADD(sh->inj[kind], 1);
	}
}

/* ---- main --------------------------------------------------------------- */

static void print_stats_delta(const char *before, const char *after)
{
	const char *line = after;

	printf("# module stats (change during the run, non-zero):\n");
	while (line && *line) {
		char name[64];
		long long v;

		if (sscanf(line, "%63s %lld", name, &v) == 2) {
			long long d = v - (krs_stat(before, name) > 0 ? krs_stat(before, name) : 0);

			if (d)
				printf("#   %-36s %lld\n", name, d);
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
}

/* -b: "all" or a list of backing names; false if one is unknown. */
static bool parse_backings(const char *arg, char *spec, size_t size)
{
	char buf[128], *tok, *save;

	snprintf(buf, sizeof(buf), "%s", strcmp(arg, "all") ? arg : "shmem,xfs,ext4");
	snprintf(spec, size, "%s", buf);
	nr_backing_list = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int b;

		for (b = 0; b < NR_BACKINGS && strcmp(tok, backing_names[b]); b++)
			;
		if (b == NR_BACKINGS || nr_backing_list == NR_BACKINGS)
			return false;
		backing_list[nr_backing_list++] = b;
	}
	return nr_backing_list > 0;
}

/* A backing's directory is a mount of its own type (tmpfs: any tmpfs). */
static bool backing_mounted(enum backing b)
{
	char type[32];

	if (!backing_dirs[b])
		return true;
	return krs_mounted_type(backing_dirs[b], type, sizeof(type)) &&
	       !strcmp(type, backing_names[b]);
}

static void print_summary(unsigned int seconds, const char *stats0, const char *stats1)
{
	uint64_t total = 0, writes = 0;

	printf("# ---- summary: %d workers, %u s ----\n", sh->nworkers, seconds);
	printf("# operations:\n");
	for (int o = 0; o < NR_OPS; o++) {
		printf("#   %-24s %llu\n", op_names[o], (unsigned long long)sh->ops[o]);
		total += sh->ops[o];
	}
	printf("#   %-24s %llu\n", "total", (unsigned long long)total);
	printf("# collapse writes:\n");
	for (int s = 0; s < NR_SOURCES; s++) {
		char errs[512] = "";
		size_t len = 0;

		for (int e = 1; e < 134; e++)
			if (sh->write_errno[s][e])
				len += snprintf(errs + len, sizeof(errs) - len, " %s %llu",
						strerrorname_np(e) ? strerrorname_np(e) : "?",
						(unsigned long long)sh->write_errno[s][e]);
		printf("#   %-30s %llu: ok %llu%s\n", source_names[s],
		       (unsigned long long)sh->writes_by_source[s],
		       (unsigned long long)sh->write_errno[s][0], errs);
		writes += sh->writes_by_source[s];
	}
	printf("#   %-30s %llu\n", "total", (unsigned long long)writes);
	if (no_collapse)
		printf("#   %-30s %llu\n", "skipped (-C)",
		       (unsigned long long)sh->collapse_skipped);
	printf("# extents by result (reports):\n");
	for (size_t k = 0; k < KRS_NR_SCAN_RESULTS; k++)
		if (sh->results[k])
			printf("#   %-30s %llu\n", krs_scan_names[k],
			       (unsigned long long)sh->results[k]);
	printf("# injections:\n");
	for (int k = 0; k < NR_INJ; k++)
		printf("#   %-30s %llu\n", inj_names[k], (unsigned long long)sh->inj[k]);
	printf("# verification:\n");
	printf("#   pages checked via mapping      %llu\n",
	       (unsigned long long)sh->pages_checked_map);
	printf("#   pages checked via pread        %llu\n",
	       (unsigned long long)sh->pages_checked_pread);
	printf("#   full passes (every page)       %llu\n", (unsigned long long)sh->full_passes);
	printf("#   collapses seen PMD-mapped      %llu\n",
	       (unsigned long long)sh->collapse_checked_pmd);
	if (pmd_may_vanish)
		printf("#   PMD gone before smaps (actors) %llu\n",
		       (unsigned long long)sh->pmd_gone);
	printf("#   userfaultfd faults resolved    %llu\n", (unsigned long long)sh->uffd_faults);
	printf("#   lost or corrupted pages        %llu\n", (unsigned long long)sh->bad_pages);
	for (int b = 0; b < NR_BACKINGS; b++)
		if (sh->by_backing_workers[b])
			printf("#   %-6s (%llu worker(s)): pages checked %llu, %s %llu\n",
			       backing_names[b], (unsigned long long)sh->by_backing_workers[b],
			       (unsigned long long)sh->by_backing_checked[b],
			       "collapses seen PMD-mapped",
			       (unsigned long long)sh->by_backing_pmd[b]);
	print_stats_delta(stats0, stats1);
}

static void print_usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-d SECONDS] [-w WORKERS] [-s SEED] %s\n", argv0,
		"[-b BACKING[,...]|all] [-I] [-C]");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned int seconds = 180, nworkers = 4;
	uint64_t seed = (uint64_t)time(NULL) ^ getpid();
	static char stats0[16384], stats1[16384];
	pid_t pids[MAX_WORKERS + 1];
	uint64_t start, last_report;
	int opt, ret, failed_children = 0;
	const char *actors = getenv("KRS_ACTORS");
	char backings[128];
	bool mthp, mthp_required, inject = true;

	parse_backings("shmem", backings, sizeof(backings));
	while ((opt = getopt(argc, argv, "d:w:s:b:IC")) != -1) {
		switch (opt) {
		case 'd':
			seconds = strtoul(optarg, NULL, 0);
			break;
		case 'w':
			nworkers = strtoul(optarg, NULL, 0);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'b':
			if (!parse_backings(optarg, backings, sizeof(backings)))
				print_usage(argv[0]);
			break;
		case 'I':
			inject = false;
			break;
		case 'C':
			no_collapse = true;
			break;
		default:
			print_usage(argv[0]);
		}
	}
	if (!seconds || !nworkers || nworkers > MAX_WORKERS)
		print_usage(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	ret = krs_ensure_loaded();
	if (ret) {
		printf("# cannot load khugepaged_rs: %s\n", strerror(-ret));
		return 1;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	sh->nworkers = nworkers;
	printf("# khugepaged_rs stress: %u workers x %d files x %lu MiB, %u s, seed %#llx\n",
	       nworkers, NFILES, (unsigned long)(FILE_LEN >> 20), seconds,
	       (unsigned long long)seed);
	for (int k = 0; k < nr_backing_list; k++) {
		if (!backing_mounted(backing_list[k])) {
			enum backing b = backing_list[k];

			printf("# backing %s: %s is not mounted as %s\n", backing_names[b],
			       backing_dirs[b], backing_names[b]);
			return 1;
		}
	}
	printf("# backings %s; workers:", backings);
	for (unsigned int w = 0; w < nworkers; w++) {
		enum backing b = backing_list[w % nr_backing_list];

		sh->by_backing_workers[b]++;
		printf(" %u %s%s", w, backing_names[b], w + 1 < nworkers ? "," : "\n");
	}
	/*
	 * The mTHP files' folios are required only when the knobs are the run's
	 * own: an actor (khugepaged_rs_actors) may set them, or allow PMD
	 * folios at fault; and only memfds have them (the knobs govern
	 * anonymous shmem; a tmpfs mount has its huge= option).
	 */
	mthp_required = sh->by_backing_workers[BK_SHMEM] &&
			(!actors || (!strstr(actors, "mthp") && !strstr(actors, "khugepaged")));
	if (actors)
		printf("# busy kernel: actors %s\n", actors);
	if (!inject)
		printf("# no injection (-I): every rollback is a race of the run's own\n");
	if (no_collapse)
		printf("# no collapse writes (-C): the module stays idle\n");
	ret = krs_trace_setup(trace_events, ARRAY_SIZE(trace_events), 8192);
	if (ret)
		printf("# no timeline in the trace buffer: %s\n", strerror(-ret));
	pmd_may_vanish = actors && (strstr(actors, "migrate") || strstr(actors, "compact") ||
				    strstr(actors, "memcg"));
	if (krs_inject("clear") || krs_stats_read(stats0, sizeof(stats0)) < 0) {
		printf("# debugfs inject/stats not usable\n");
		return 1;
	}
	mthp = mthp_setup();
	if (mthp)
		printf("# mTHP files (worker + file odd): MADV_HUGEPAGE, %s %s\n",
		       THP_DIR "/hugepages-{16,64}kB/shmem_enabled", "advise for the run");
	else
		printf("# no per-size shmem mTHP knobs here: the mTHP files hold small pages\n");
	for (unsigned int w = 0; w <= nworkers; w++) {
		pids[w] = fork();
		if (pids[w] < 0) {
			perror("fork");
			__atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
			return 1;
		}
		if (pids[w] == 0)
			_exit(w < nworkers ? worker_main(w, seed) : collapser_main(seed));
		if (w == nworkers)
			sh->collapser = pids[w];
	}
	/*
	 * Inject only once every worker published its pid and files; the
	 * run's seconds count from there. The workers that are ready already
	 * work meanwhile (their counts are in the first progress line).
	 */
	start = krs_now_ms();
	for (unsigned int w = 0; w < nworkers; w++)
		while (!__atomic_load_n(&sh->w[w].pid, __ATOMIC_SEQ_CST) && !sh->failed)
			krs_sleep_ms(10);
	printf("# every worker's files written in %llu s; the %u s start now\n",
	       (unsigned long long)(krs_now_ms() - start) / 1000, seconds);
	seed_rng(seed, 999);
	start = krs_now_ms();
	last_report = start;
	while (krs_now_ms() - start < seconds * 1000ULL &&
	       !__atomic_load_n(&sh->failed, __ATOMIC_SEQ_CST)) {
		if (inject)
			inject_once();
		krs_sleep_ms(50 + below(200));
		if (krs_now_ms() - last_report >= 30000) {
			uint64_t ops = 0, writes = 0, ok = 0;

			for (int o = 0; o < NR_OPS; o++)
				ops += sh->ops[o];
			for (int s = 0; s < NR_SOURCES; s++) {
				writes += sh->writes_by_source[s];
				ok += sh->write_errno[s][0];
			}
			printf("# %3llu s: ", (unsigned long long)(krs_now_ms() - start) / 1000);
			printf("%llu operations, %llu collapse writes ",
			       (unsigned long long)ops, (unsigned long long)writes);
			printf("(%llu ok), %llu extents collapsed",
			       (unsigned long long)ok, (unsigned long long)sh->results[1]);
			for (size_t k = 0; mthp && k < NR_MTHP; k++)
				printf(", %ukB folios +%ld", mthp_kb[k],
				       mthp_stat(k, "shmem_alloc") - mthp_alloc0[k]);
			printf("\n");
			last_report = krs_now_ms();
		}
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
	if (krs_inject("clear"))
		fail("inject clear at the end failed");
	for (unsigned int w = 0; w <= nworkers; w++) {
		uint64_t t0 = krs_now_ms(), seen = progress(), moved = t0;
		int status = 0;
		pid_t r;

		/*
		 * The final verify takes a while under TCG, and far longer on
		 * the debug kernel in the busy kernel (a worker took over 300 s
		 * there, swapping through its memcg); a hang does not: stuck
		 * when no page was checked and no operation done for 300 s.
		 */
		while ((r = waitpid(pids[w], &status, WNOHANG)) == 0 &&
		       krs_now_ms() - moved < 300000 && krs_now_ms() - t0 < 3600000) {
			krs_sleep_ms(50);
			if (progress() != seen) {
				seen = progress();
				moved = krs_now_ms();
			}
		}
		if (r == 0) {
			const char *bk = w < nworkers ?
				backing_names[backing_list[w % nr_backing_list]] : "all";

			fail("%s %d (%s) did not stop: %s", w < nworkers ? "worker" : "collapser",
			     pids[w], bk, krs_now_ms() - t0 < 3600000 ?
			     "no progress for 300 s" : "still going after an hour");
			kill(pids[w], SIGKILL);
			waitpid(pids[w], &status, 0);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			failed_children++;
			printf("# %s %d ended with status %#x\n",
			       w < nworkers ? "worker" : "collapser", pids[w], status);
		}
	}
	krs_stats_read(stats1, sizeof(stats1));
	krs_trace_teardown(trace_events, ARRAY_SIZE(trace_events));
	print_summary((krs_now_ms() - start) / 1000, stats0, stats1);
	if (mthp) {
		long total = 0;

		printf("# mTHP files' folios (per-size counters, change during the run):\n");
		for (size_t k = 0; k < NR_MTHP; k++) {
			long alloc = mthp_stat(k, "shmem_alloc") - mthp_alloc0[k];
			long fallback = mthp_stat(k, "shmem_fallback") - mthp_fallback0[k];

			printf("#   hugepages-%ukB  shmem_alloc +%ld, shmem_fallback +%ld\n",
			       mthp_kb[k], alloc, fallback);
			total += alloc;
		}
		/* Faults in the mTHP files must have made some: else they prove nothing. */
		if (!total && mthp_required)
			fail("the mTHP files got no folio of %u or %u kB", mthp_kb[0], mthp_kb[1]);
	}
	if (sh->failed || failed_children || sh->bad_pages) {
		printf("# FAILED: %s\n", sh->first_error[0] ? sh->first_error : "a process failed");
		printf("# replay: khugepaged_rs_stress -d %u -w %u -s %#llx -b %s%s%s\n", seconds,
		       nworkers, (unsigned long long)seed, backings, inject ? "" : " -I",
		       no_collapse ? " -C" : "");
		return 1;
	}
	printf("# PASSED: no lost or corrupted page, no unexpected error\n");
	return 0;
}
