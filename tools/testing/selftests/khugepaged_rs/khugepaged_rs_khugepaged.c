// SPDX-License-Identifier: GPL-2.0
/*
 * mode=khugepaged beside the real khugepaged. Each test builds twin shmem
 * files with the same content (pages written, holes, pages swapped out):
 * the module collapses one with "mode=khugepaged", and khugepaged collapses
 * the other, mapped by a child process registered with MADV_HUGEPAGE.
 * khugepaged is parked (scan_sleep_millisecs of ten minutes) except while
 * the test lets it scan its twin (scan_sleep_millisecs=0 until full_scans
 * advanced twice). Then, for both, the test compares:
 *
 *  - the scan's verdict: the module's khugepaged_rs:scan_file event and
 *    khugepaged's huge_memory:mm_khugepaged_scan_file events of its twin
 *    (present, swap, result), both recorded in a tracefs instance;
 *  - the vm events: THP_SCAN_EXCEED_NONE_PTE / _SWAP_PTE and
 *    THP_COLLAPSE_ALLOC, once per scan that counts them (khugepaged scans
 *    its twin at every pass);
 *  - the end state: the PMD not mapped after the collapse (the tables
 *    retracted, the PMD left to the next fault), mapped after a touch,
 *    ShmemPmdMapped of each twin, and every byte.
 *
 * Thresholds at their edges: max_ptes_none 0, 511 and in between (exactly
 * at the limit and one page past it), max_ptes_swap (pages swapped out to
 * the VM's zram); eligibility (no MADV_HUGEPAGE under shmem_enabled=advise);
 * no write-back retry (a dirty regular file on the VM's XFS); a huge folio
 * mapped by PTEs (retracted, PMD at the next fault); the pages_collapsed
 * count of an extent already collapsed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#define LEN KRS_PMD_SIZE
#define NPAGES KRS_PMD_PAGES
#define PAGE KRS_PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)

#define THP "/sys/kernel/mm/transparent_hugepage"
#define KHD THP "/khugepaged"
#define TRACING "/sys/kernel/tracing"
/* Ten minutes: khugepaged sleeps through a test. */
#define PARKED_MS 600000

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* The knobs a test changes, restored after it. */
static const char *const knobs[] = {
	KHD "/max_ptes_none", KHD "/max_ptes_swap", KHD "/pages_to_scan",
	KHD "/alloc_sleep_millisecs", KHD "/defrag", KHD "/scan_sleep_millisecs",
};

#define NR_KNOBS ARRAY_SIZE(knobs)

/*
 * huge_memory's names of enum scan_result (its tracepoints print them),
 * in enum order, as krs_scan_names has 7.2's SCAN_* names.
 */
static const char *const upstream_names[KRS_NR_SCAN_RESULTS] = {
	"failed", "succeeded", "no_pte_table", "page_pmd_mapped", "exceed_none_pte",
	"exceed_swap_pte", "exceed_shared_pte", "pte_non_present", "pte_uffd_wp",
	"pte_mapped_hugepage", "lack_referenced_page", "page_null", "scan_aborted",
	"not_suitable_page_count", "page_not_in_lru", "page_locked", "page_not_anon",
	"page_lazyfree", "page_compound", "no_process_for_page", "vma_null",
	"vma_check_failed", "not_suitable_address_range", "could_not_delete_page_from_lru",
	"alloc_huge_page_failed", "ccgroup_charge_failed", "truncated", "page_has_private",
	"store_failed", "copy_poisoned_page", "page_filled", "page_dirty_or_writeback",
};

/* The SCAN_* name of an upstream result string; NULL if unknown. */
static const char *scan_name(const char *upstream)
{
	for (int i = 0; i < KRS_NR_SCAN_RESULTS; i++)
		if (!strcmp(upstream, upstream_names[i]))
			return krs_scan_names[i];
	return NULL;
}

/* A result that depends on timing (a folio in an LRU batch, a lock). */
static bool transient(const char *result)
{
	return !strcmp(result, "SCAN_PAGE_LRU") || !strcmp(result, "SCAN_PAGE_COUNT") ||
	       !strcmp(result, "SCAN_PAGE_LOCK") || !strcmp(result, "SCAN_DEL_PAGE_LRU");
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

/* The vm events a collapse counts. */
struct events {
	long none, swap, alloc;
};

static void events_read(struct events *e)
{
	e->none = krs_vmstat("thp_scan_exceed_none_pte");
	e->swap = krs_vmstat("thp_scan_exceed_swap_pte");
	e->alloc = krs_vmstat("thp_collapse_alloc");
}

static void events_delta(struct events *d, const struct events *a, const struct events *b)
{
	d->none = b->none - a->none;
	d->swap = b->swap - a->swap;
	d->alloc = b->alloc - a->alloc;
}

/* khugepaged sleeping (state S), not running nor waiting on I/O. */
static bool khugepaged_asleep(pid_t pid)
{
	return krs_task_state(pid) == 'S';
}

/*
 * Wait until khugepaged is done scanning: full_scans the same and the
 * thread asleep for a second (while it scans, full passes over a handful
 * of mms bump full_scans back to back). 0, or -ETIMEDOUT after 60 s.
 */
static int wait_quiet(void)
{
	pid_t pid = krs_khugepaged_pid();
	long last = read_long(KHD "/full_scans");
	int quiet = 0;

	for (int i = 0; i < 600; i++) {
		long now;

		usleep(100 * 1000);
		now = read_long(KHD "/full_scans");
		if (now == last && (!pid || khugepaged_asleep(pid)))
			quiet++;
		else
			quiet = 0;
		last = now;
		if (quiet >= 10)
			return 0;
	}
	return -ETIMEDOUT;
}

/*
 * Park khugepaged: a scan_sleep_millisecs it sleeps through. Writing it
 * wakes khugepaged for one more pass (__sleep_millisecs_store()); wait
 * until that is over.
 */
static int park(void)
{
	int ret = write_long(KHD "/scan_sleep_millisecs", PARKED_MS);

	return ret ? ret : wait_quiet();
}

/*
 * Let khugepaged scan (scan_sleep_millisecs=10) until full_scans advanced
 * by @n and @min_ms passed, then park it again. 0 or -errno.
 */
static int pulse(int n, int min_ms)
{
	long f0 = read_long(KHD "/full_scans");
	int ret = write_long(KHD "/scan_sleep_millisecs", 10);

	for (int i = 0; !ret && (i * 100 < min_ms || read_long(KHD "/full_scans") < f0 + n);
	     i++) {
		if (i == 600)
			ret = -ETIMEDOUT;
		usleep(100 * 1000);
	}
	return park() ?: ret;
}

/* A tracefs instance recording the scan and collapse events of both. */
struct trace {
	char dir[96];
	bool on;
};

static const char *const trace_events[] = {
	"huge_memory/mm_khugepaged_scan_file", "huge_memory/mm_khugepaged_collapse_file",
	"khugepaged_rs/scan_file", "khugepaged_rs/collapse_file",
};

static int trace_start(struct trace *t, const char *name)
{
	char path[192];

	if (access(TRACING "/instances", F_OK))
		mount("nodev", TRACING, "tracefs", 0, NULL);
	snprintf(t->dir, sizeof(t->dir), TRACING "/instances/krs_khd_%s_%d", name, getpid());
	if (mkdir(t->dir, 0755))
		return -errno;
	t->on = true;
	/* Big enough for every event of a test; the first ones are kept. */
	snprintf(path, sizeof(path), "%s/buffer_size_kb", t->dir);
	krs_write_str(path, "4096");
	snprintf(path, sizeof(path), "%s/options/overwrite", t->dir);
	krs_write_str(path, "0");
	for (size_t i = 0; i < ARRAY_SIZE(trace_events); i++) {
		int ret;

		snprintf(path, sizeof(path), "%s/events/%s/enable", t->dir, trace_events[i]);
		ret = krs_write_str(path, "1");
		if (ret)
			return ret;
	}
	return 0;
}

static void trace_stop(struct trace *t)
{
	char path[192];

	if (!t->on)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(trace_events); i++) {
		snprintf(path, sizeof(path), "%s/events/%s/enable", t->dir, trace_events[i]);
		krs_write_str(path, "0");
	}
	rmdir(t->dir);
	t->on = false;
}

static ssize_t trace_read(struct trace *t, char *buf, size_t size)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/trace", t->dir);
	return krs_read_file(path, buf, size);
}

/* Empty the instance's buffer (open "trace" with O_TRUNC). */
static int trace_clear(struct trace *t)
{
	char path[192];
	int fd;

	snprintf(path, sizeof(path), "%s/trace", t->dir);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* One scan of a twin, as its event says. */
struct scan {
	int present, swap;
	char result[48];	/* SCAN_* */
};

/*
 * The scan events of @file (memfd:NAME or a file name) in @trace: @event
 * is "mm_khugepaged_scan_file:" (upstream's result names) or " scan_file:"
 * (khugepaged_rs's, SCAN_* names). Up to @max in @out, and all of them
 * counted per result in @by_result (if not NULL); returns how many there
 * are, -1 on a line it cannot read.
 */
static int scans_of(const char *trace, const char *event, const char *file,
		    struct scan *out, int max, int *by_result)
{
	char want[128];
	int n = 0;

	snprintf(want, sizeof(want), "filename=%s,", file);
	for (const char *line = trace; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char one[1024], res[48];
		const char *p;
		struct scan s;

		snprintf(one, sizeof(one), "%.*s", (int)len, line);
		line = end ? end + 1 : NULL;
		if (*one == '#' || !strstr(one, event) || !strstr(one, want))
			continue;
		p = strstr(one, "present=");
		if (!p || sscanf(p, "present=%d, swap=%d, result=%47s", &s.present, &s.swap,
				 res) != 3)
			return -1;
		if (!strncmp(res, "SCAN_", 5)) {
			snprintf(s.result, sizeof(s.result), "%s", res);
		} else {
			const char *name = scan_name(res);

			if (!name)
				return -1;
			snprintf(s.result, sizeof(s.result), "%s", name);
		}
		if (n < max)
			out[n] = s;
		n++;
		for (int i = 0; by_result && i < KRS_NR_SCAN_RESULTS; i++)
			by_result[i] += !strcmp(s.result, krs_scan_names[i]);
	}
	return n;
}

/*
 * How many collapse_file events of @file: @event "mm_khugepaged_collapse_file:"
 * (khugepaged's) or " collapse_file:" (the module's).
 */
static int collapses_of(const char *trace, const char *event, const char *file)
{
	char want[128];
	int n = 0;

	snprintf(want, sizeof(want), "filename=%s,", file);
	for (const char *line = trace; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char one[1024];

		snprintf(one, sizeof(one), "%.*s", (int)len, line);
		line = end ? end + 1 : NULL;
		if (*one != '#' && strstr(one, event) && strstr(one, want))
			n++;
	}
	return n;
}

enum twin_kind {
	TWIN_MEMFD,	/* a memfd, its pages written with pwrite() */
	TWIN_DIRTY_FILE,	/* a file on XFS: written, not synced, reopened read-only */
	TWIN_CLEAN_FILE,	/* a file: written, synced, dropped, @mask's pages read back */
	TWIN_PTE_MAPPED_THP,	/* a memfd made huge by MADV_COLLAPSE, then mapped by PTEs */
};

/*
 * The content of a twin: pages [0, present) written, the rest holes (or,
 * with @mask, the pages whose byte is set: @present of them).
 */
struct spec {
	enum twin_kind kind;
	unsigned int present;
	const unsigned char *mask;
	/* Of those, the last @swapped are swapped out (MADV_PAGEOUT). */
	unsigned int swapped;
	/* MADV_HUGEPAGE on the mapping (khugepaged's eligibility). */
	bool hugepage;
	/* The module's twin is collapsed twice, untouched in between. */
	bool twice;
	/*
	 * The module's twin is asked again while a result depends on timing
	 * (a folio locked for I/O: khugepaged comes back at its next visit).
	 */
	bool revisit;
	unsigned int seed;
};

/* What happened to one twin. */
struct obs {
	long swapped;		/* pages swapped out before the collapse */
	long cached;		/* pages in the page cache then (mincore) */
	long node_before;	/* node of page 0 before the collapse */
	long rss_before;	/* kB mapped after the collapse, before a touch */
	long pmd_before;	/* Shmem/FilePmdMapped then */
	long pmd_after;		/* the same after touching the pages written */
	long node_after;	/* node of page 0 then */
	long bad;		/* 1 + index of the first wrong page, or 0 */
};

/* Pages of the twin at @p in the page cache (mincore(2)); -errno. */
static long cached_pages(void *p)
{
	unsigned char vec[NPAGES];
	long n = 0;

	if (mincore(p, LEN, vec))
		return -errno;
	for (size_t i = 0; i < NPAGES; i++)
		n += vec[i] & 1;
	return n;
}

/* The node of the page mapped at @addr (move_pages(2) asked, no move). */
static long page_node(void *addr)
{
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, &addr, NULL, &status, 0))
		return -errno;
	return status;
}

/* Page @i of a twin is written (else a hole). */
static bool has_page(const struct spec *s, size_t i)
{
	return s->mask ? s->mask[i] : i < s->present;
}

/* The first page written, or 0 (then a hole). */
static size_t first_page(const struct spec *s)
{
	for (size_t i = 0; i < NPAGES; i++)
		if (has_page(s, i))
			return i;
	return 0;
}

/* A regular file's twin (else a memfd). */
static bool is_file(const struct spec *s)
{
	return s->kind == TWIN_DIRTY_FILE || s->kind == TWIN_CLEAN_FILE;
}

/* Every page of a twin: its pattern, or zeroes in a hole (a file has none). */
static long check_twin(const char *p, const struct spec *s)
{
	for (size_t i = 0; i < NPAGES; i++) {
		const char *page = p + i * PAGE;
		bool data = s->kind == TWIN_CLEAN_FILE || has_page(s, i);

		if (data ? krs_check_page(page, s->seed, i) : !krs_page_is_zero(page))
			return 1 + i;
	}
	return 0;
}

/* Read a word of each of the first @pages pages (a fault each, if unmapped). */
static void touch(const char *p, size_t pages)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < pages; i++)
		sum += krs_read_u64((const uint64_t *)(p + i * PAGE));
	krs_ignore((long)sum);
}

/* Read a word of each page written (never a hole). */
static void touch_written(const char *p, const struct spec *s)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < NPAGES; i++)
		if (has_page(s, i))
			sum += krs_read_u64((const uint64_t *)(p + i * PAGE));
	krs_ignore((long)sum);
}

/* Page out the last @n pages written, one by one. */
static void page_out(char *p, const struct spec *s, unsigned int n)
{
	for (size_t i = NPAGES; i-- > 0 && n;)
		if (has_page(s, i)) {
			madvise(p + i * PAGE, PAGE, MADV_PAGEOUT);
			n--;
		}
}

/* Where a twin of a regular file lives: the VM's XFS, or as asked. */
#define XFS "/mnt/xfs"
static const char *file_dir = XFS;

static const char *pmd_field(const struct spec *s)
{
	return is_file(s) ? "FilePmdMapped" : "ShmemPmdMapped";
}

/*
 * A huge folio mapped by PTEs: split the PMD mapping by an mprotect() of
 * one page (the VMA splits, the PMD is zapped), fault every page in by
 * PTEs, then mprotect() it back (the VMAs merge again, the PTEs stay).
 */
static int remap_by_ptes(char *p)
{
	if (madvise(p, LEN, MADV_COLLAPSE))
		return -errno;
	if (mprotect(p + PAGE, PAGE, PROT_READ))
		return -errno;
	touch(p, NPAGES);
	if (mprotect(p + PAGE, PAGE, RW))
		return -errno;
	return krs_smaps_kb(0, (unsigned long)p, "Rss") == 2048 &&
	       krs_smaps_kb(0, (unsigned long)p, "ShmemPmdMapped") == 0 ? 0 : -EAGAIN;
}

/*
 * A twin named @name with the content of @s: a memfd of 2 MiB (its pages
 * written with pwrite(), so small folios) or a file on the VM's XFS,
 * mapped shared at an aligned address, its present pages faulted in
 * (PTEs), the swapped ones paged out, then MADV_HUGEPAGE if @s says so
 * (which registers the mm with khugepaged). Returns the mapping, *@fd and
 * the pages swapped out in *@swapped.
 */
static char *twin_make(const char *name, const struct spec *s, int *fd, long *swapped)
{
	char path[128];
	char *p;

	*swapped = 0;
	if (s->kind == TWIN_CLEAN_FILE) {
		/*
		 * All 512 pages on disk, none in the page cache, then those of
		 * @mask read back one by one (MADV_RANDOM: no readahead).
		 */
		snprintf(path, sizeof(path), "%s/%s", file_dir, name);
		unlink(path);
		*fd = krs_make_ro_file(path, s->seed, NPAGES, KRS_FILE_DROPPED);
		if (*fd < 0)
			return MAP_FAILED;
		p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, *fd, 0);
		if (p == MAP_FAILED || madvise(p, LEN, MADV_RANDOM))
			return MAP_FAILED;
		touch_written(p, s);
		if (s->hugepage && madvise(p, LEN, MADV_HUGEPAGE))
			return MAP_FAILED;
		return p;
	}
	if (s->kind == TWIN_DIRTY_FILE) {
		snprintf(path, sizeof(path), "%s/%s", file_dir, name);
		unlink(path);
		*fd = krs_make_ro_file(path, s->seed, s->present, KRS_FILE_DIRTY);
		if (*fd < 0)
			return MAP_FAILED;
		p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, *fd, 0);
		if (p == MAP_FAILED)
			return p;
		touch(p, s->present);
		if (s->hugepage && madvise(p, LEN, MADV_HUGEPAGE))
			return MAP_FAILED;
		return p;
	}
	*fd = krs_memfd(name, LEN);
	if (*fd < 0)
		return MAP_FAILED;
	for (size_t i = 0; i < NPAGES; i++)
		if (has_page(s, i) && krs_pwrite_page(*fd, s->seed, i))
			return MAP_FAILED;
	p = krs_map_aligned(LEN, RW, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED)
		return p;
	touch_written(p, s);
	if (s->kind == TWIN_PTE_MAPPED_THP) {
		int ret = remap_by_ptes(p);

		if (ret) {
			errno = -ret;
			return MAP_FAILED;
		}
	}
	*swapped = 0;
	if (s->swapped) {
		/* Again: a pass can miss pages still in an LRU batch. */
		for (int i = 0; i < 3 && *swapped < (long)s->swapped * 4; i++) {
			page_out(p, s, s->swapped);
			*swapped = krs_smaps_kb(0, (unsigned long)p, "Swap");
		}
		*swapped /= 4;
	}
	if (s->hugepage && madvise(p, LEN, MADV_HUGEPAGE))
		return MAP_FAILED;
	return p;
}

/*
 * After the collapse: the mapping's state, then again after a touch of the
 * pages written (a hole touched under MADV_HUGEPAGE could fault in a huge
 * page of its own), then every byte.
 */
static void twin_observe(char *p, const struct spec *s, struct obs *o)
{
	o->rss_before = krs_smaps_kb(0, (unsigned long)p, "Rss");
	o->pmd_before = krs_smaps_kb(0, (unsigned long)p, pmd_field(s));
	touch_written(p, s);
	o->pmd_after = krs_smaps_kb(0, (unsigned long)p, pmd_field(s));
	o->node_after = s->present ? page_node(p + first_page(s) * PAGE) : -1;
	o->bad = check_twin(p, s);
}

/* khugepaged's twin, in a child: its own mm, registered by MADV_HUGEPAGE. */
struct child_arg {
	const struct spec *s;
	const char *name;
};

static int twin_child(int in, int out, void *arg)
{
	struct child_arg *a = arg;
	struct obs o = { 0 };
	char go[KRS_MSG_SIZE];
	long swapped;
	int fd;
	char *p = twin_make(a->name, a->s, &fd, &swapped);

	if (p == MAP_FAILED) {
		krs_send_msg(out, "making the twin: %s", strerror(errno));
		return 1;
	}
	o.node_before = a->s->present ? page_node(p + first_page(a->s) * PAGE) : -1;
	o.cached = cached_pages(p);
	krs_send_msg(out, "ok %ld", swapped);
	if (krs_recv(in, go, sizeof(go), 120 * 1000))
		return 1;
	twin_observe(p, a->s, &o);
	o.swapped = swapped;
	if (krs_send(out, &o, sizeof(o)))
		return 1;
	/* Stay until the parent has read everything. */
	krs_recv(in, go, sizeof(go), 120 * 1000);
	return 0;
}

FIXTURE(khd) {
	char saved[NR_KNOBS][32];
	char enabled[32], shmem_enabled[32];
	int cfd;
	struct trace trace;
	char report[4096];
	struct krs_extent ext[4];
	int nr_ext;
	long status;
};

FIXTURE_SETUP(khd)
{
	char *p;
	int fd, ret;

	self->cfd = -1;
	self->trace.on = false;
	self->enabled[0] = '\0';
	self->shmem_enabled[0] = '\0';
	for (size_t i = 0; i < NR_KNOBS; i++)
		self->saved[i][0] = '\0';
	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	if (access(KHD "/full_scans", R_OK))
		SKIP(return, "no khugepaged (CONFIG_TRANSPARENT_HUGEPAGE)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	for (size_t i = 0; i < NR_KNOBS; i++) {
		ret = krs_read_file(knobs[i], self->saved[i], sizeof(self->saved[i]));
		ASSERT_LT(0, ret) TH_LOG("%s", knobs[i]);
	}
	ASSERT_EQ(0, krs_sysfs_choice(THP "/enabled", self->enabled, sizeof(self->enabled)));
	ASSERT_EQ(0, krs_sysfs_choice(THP "/shmem_enabled", self->shmem_enabled,
				      sizeof(self->shmem_enabled)));
	/*
	 * THP for what asks (MADV_HUGEPAGE) only: khugepaged leaves every
	 * other mapping of the system alone, and shmem pages written without
	 * MADV_HUGEPAGE stay small.
	 */
	ASSERT_EQ(0, krs_write_str(THP "/enabled", "madvise"));
	ASSERT_EQ(0, krs_write_str(THP "/shmem_enabled", "advise"));
	ASSERT_EQ(0, write_long(KHD "/pages_to_scan", 4096));
	ASSERT_EQ(0, write_long(KHD "/alloc_sleep_millisecs", 100));
	ASSERT_EQ(0, write_long(KHD "/max_ptes_swap", 64));
	ASSERT_EQ(0, park()) TH_LOG("khugepaged does not go to sleep");
	/*
	 * Register this process with khugepaged now, through a mapping that is
	 * gone again: khugepaged then always has work, so it sleeps its timed
	 * sleep, which a later registration does not end (it would wake
	 * khugepaged waiting for work).
	 */
	fd = krs_memfd("krs_khd_anchor", LEN);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, madvise(p, LEN, MADV_HUGEPAGE));
	munmap(p, LEN);
	close(fd);
	self->cfd = krs_collapse_open();
	ASSERT_LE(0, self->cfd) TH_LOG("open %s: %s", KRS_COLLAPSE, strerror(-self->cfd));
}

FIXTURE_TEARDOWN(khd)
{
	trace_stop(&self->trace);
	if (self->cfd >= 0)
		close(self->cfd);
	for (size_t i = 0; i < NR_KNOBS; i++)
		if (self->saved[i][0] && strcmp(knobs[i], KHD "/scan_sleep_millisecs"))
			krs_write_str(knobs[i], self->saved[i]);
	if (self->shmem_enabled[0])
		krs_write_str(THP "/shmem_enabled", self->shmem_enabled);
	if (self->enabled[0])
		krs_write_str(THP "/enabled", self->enabled);
	/* Last: it wakes khugepaged. */
	if (self->saved[NR_KNOBS - 1][0])
		krs_write_str(KHD "/scan_sleep_millisecs", self->saved[NR_KNOBS - 1]);
}

/* Write @cmd to collapse and parse its report; the write's result. */
static ssize_t __printf(3, 4)
collapse(struct __test_metadata *_metadata, struct _test_data_khd *self, const char *fmt, ...)
{
	char cmd[256];
	va_list ap;
	ssize_t ret, n;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ret = krs_collapse_write(self->cfd, cmd, strlen(cmd));
	n = krs_collapse_report(self->cfd, self->report, sizeof(self->report));
	EXPECT_LT(0, n);
	self->nr_ext = krs_report_parse(self->report, self->ext, 4, &self->status);
	EXPECT_LE(0, self->nr_ext) TH_LOG("'%s': malformed report:\n%s", cmd, self->report);
	EXPECT_EQ(ret, self->status) TH_LOG("'%s': report:\n%s", cmd, self->report);
	return ret;
}

/* Both twins' verdicts and what each counted. */
struct both {
	struct obs mod, khd;
	struct events mod_ev, khd_ev;
	/* The module's stats over its requests. */
	long long mod_collapsed, mod_khd_collapsed;
	/* khugepaged's pages_collapsed over its scans. */
	long khd_pages_collapsed;
	/* The node= of the module's collapse_file event (-2: none). */
	int mod_node;
	struct scan mod_scan[4], khd_scan[4];
	int mod_scans, khd_scans, mod_requests;
	int mod_by_result[KRS_NR_SCAN_RESULTS], khd_by_result[KRS_NR_SCAN_RESULTS];
	int mod_collapses, khd_collapses;
	char mod_result[48];
	ssize_t mod_ret;
};

static char trace_buf[4 << 20];
static char stats0[16384], stats1[16384];

/* The node= of the khugepaged_rs:collapse_file event of @file; -2 if none. */
static int module_node(const char *trace, const char *file)
{
	char want[128];

	snprintf(want, sizeof(want), "filename=%s,", file);
	for (const char *line = trace; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char one[1024];
		const char *node;

		snprintf(one, sizeof(one), "%.*s", (int)len, line);
		line = end ? end + 1 : NULL;
		if (*one == '#' || !strstr(one, " collapse_file:") || !strstr(one, want))
			continue;
		node = strstr(one, "node=");
		return node ? atoi(node + 5) : -2;
	}
	return -2;
}

/*
 * Run the case @s with knobs none/swap: the module's twin (collapsed by
 * "mode=khugepaged"), then khugepaged's (in a child). @name names both
 * memfds (memfd:krs_<name>_m, memfd:krs_<name>_k).
 */
static void run_twins(struct __test_metadata *_metadata, struct _test_data_khd *self,
		      const char *name, const struct spec *s, long max_none, long max_swap,
		      struct both *b)
{
	char mname[64], kname[64], mfile[80], kfile[80], msg[KRS_MSG_SIZE];
	struct child_arg arg = { .s = s, .name = kname };
	struct events e0, e1;
	struct krs_child c;
	ssize_t n;
	char *p;
	int fd, ret;

	memset(b, 0, sizeof(*b));
	snprintf(mname, sizeof(mname), "krs_%s_m", name);
	snprintf(kname, sizeof(kname), "krs_%s_k", name);
	snprintf(mfile, sizeof(mfile), "%s%s", is_file(s) ? "" : "memfd:", mname);
	snprintf(kfile, sizeof(kfile), "%s%s", is_file(s) ? "" : "memfd:", kname);
	ASSERT_EQ(0, write_long(KHD "/max_ptes_none", max_none));
	ASSERT_EQ(0, write_long(KHD "/max_ptes_swap", max_swap));
	ret = trace_start(&self->trace, name);
	if (ret)
		SKIP(return, "no tracefs instance with huge_memory events: %s", strerror(-ret));

	/* The module's twin, in this process, khugepaged asleep. */
	p = twin_make(mname, s, &fd, &b->mod.swapped);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("making %s: %s", mname, strerror(errno));
	b->mod.node_before = s->present ? page_node(p + first_page(s) * PAGE) : -1;
	b->mod.cached = cached_pages(p);
	ASSERT_LT(0, krs_stats_read(stats0, sizeof(stats0)));
	events_read(&e0);
	for (int i = 0;
	     i < (s->twice ? 2 : 1) || (s->revisit && i < 6 && transient(b->mod_result)); i++) {
		b->mod_ret = collapse(_metadata, self, "addr=%lx len=2M mode=khugepaged",
				      (unsigned long)p);
		if (self->nr_ext >= 1)
			snprintf(b->mod_result, sizeof(b->mod_result), "%s", self->ext[0].result);
		if (i == 0 && s->twice)
			EXPECT_STREQ("SCAN_SUCCEED", b->mod_result) TH_LOG("%s", self->report);
		b->mod_requests++;
	}
	events_read(&e1);
	ASSERT_LT(0, krs_stats_read(stats1, sizeof(stats1)));
	events_delta(&b->mod_ev, &e0, &e1);
	b->mod_collapsed = krs_stat(stats1, "extents_collapsed") -
			   krs_stat(stats0, "extents_collapsed");
	b->mod_khd_collapsed = krs_stat(stats1, "khugepaged_pages_collapsed") -
			       krs_stat(stats0, "khugepaged_pages_collapsed");
	twin_observe(p, s, &b->mod);
	munmap(p, LEN);
	close(fd);
	if (is_file(s)) {
		snprintf(msg, sizeof(msg), "%s/%s", file_dir, mname);
		unlink(msg);
	}
	n = trace_read(&self->trace, trace_buf, sizeof(trace_buf));
	ASSERT_LT(0, n);
	b->mod_scans = scans_of(trace_buf, " scan_file:", mfile, b->mod_scan, 4,
				b->mod_by_result);
	b->mod_collapses = collapses_of(trace_buf, " collapse_file:", mfile);
	b->mod_node = module_node(trace_buf, mfile);
	ASSERT_LE(0, b->mod_scans) TH_LOG("unreadable trace:\n%s", trace_buf);

	/* khugepaged's twin, in a child; khugepaged runs for two full scans. */
	ASSERT_EQ(0, krs_child_start(&c, twin_child, &arg));
	ASSERT_EQ(0, krs_recv(c.from_child, msg, sizeof(msg), 60 * 1000));
	ASSERT_EQ(0, strncmp(msg, "ok ", 3)) TH_LOG("child: %s", msg);
	/* Only khugepaged's scans from here (not the twin's own MADV_COLLAPSE). */
	ASSERT_EQ(0, trace_clear(&self->trace));
	events_read(&e0);
	b->khd_pages_collapsed = read_long(KHD "/pages_collapsed");
	ASSERT_EQ(0, pulse(2, s->kind == TWIN_DIRTY_FILE ? 3000 : 0))
		TH_LOG("khugepaged did not scan (full_scans)");
	b->khd_pages_collapsed = read_long(KHD "/pages_collapsed") - b->khd_pages_collapsed;
	events_read(&e1);
	events_delta(&b->khd_ev, &e0, &e1);
	krs_send_msg(c.to_child, "go");
	ASSERT_EQ(0, krs_recv(c.from_child, &b->khd, sizeof(b->khd), 60 * 1000));
	krs_send_msg(c.to_child, "done");
	krs_child_wait(&c);
	if (is_file(s)) {
		snprintf(msg, sizeof(msg), "%s/%s", file_dir, kname);
		unlink(msg);
	}

	n = trace_read(&self->trace, trace_buf, sizeof(trace_buf));
	ASSERT_LT(0, n);
	b->khd_scans = scans_of(trace_buf, "mm_khugepaged_scan_file:", kfile, b->khd_scan, 4,
				b->khd_by_result);
	b->khd_collapses = collapses_of(trace_buf, "mm_khugepaged_collapse_file:", kfile);
	ASSERT_LE(0, b->khd_scans) TH_LOG("unreadable trace:\n%s", trace_buf);
	TH_LOG("%s: module %s (%d scan event(s)), khugepaged %d scan(s) first %s; swapped %ld/%ld",
	       name, b->mod_result, b->mod_scans, b->khd_scans,
	       b->khd_scans > 0 ? b->khd_scan[0].result : "none", b->mod.swapped, b->khd.swapped);
	trace_stop(&self->trace);
}

/* How many of khugepaged's scans of its twin ended with @result. */
static int khd_count(const struct both *b, const char *result)
{
	for (int i = 0; i < KRS_NR_SCAN_RESULTS; i++)
		if (!strcmp(krs_scan_names[i], result))
			return b->khd_by_result[i];
	return -1;
}

/* How many of the module's scans of its twin ended with @result. */
static int mod_count(const struct both *b, const char *result)
{
	for (int i = 0; i < KRS_NR_SCAN_RESULTS; i++)
		if (!strcmp(krs_scan_names[i], result))
			return b->mod_by_result[i];
	return -1;
}

/*
 * A side's verdict: its first scan whose result is not transient. A folio
 * the collapse has just swapped in may not be on the LRU yet when it is
 * isolated (SCAN_DEL_PAGE_LRU, seen on the debug kernel under load: in some
 * CPU's LRU batch, past collapse_file()'s local lru_add_drain(); upstream
 * has the same order). khugepaged comes back at its next visit, and so
 * does the module's twin of a spec with revisit; *@at is the verdict's
 * index, -1 if none is recorded.
 */
static const char *verdict(const struct scan *sc, int n, int *at)
{
	int rec = n < 4 ? n : 4;

	for (int i = 0; i < rec; i++) {
		if (!transient(sc[i].result)) {
			*at = i;
			return sc[i].result;
		}
	}
	*at = -1;
	return rec ? sc[rec - 1].result : "(no scan)";
}

/*
 * The twins' scans agree: the module's verdict says what khugepaged's says
 * (the result; present and swap from each first scan, made before either
 * swapped anything in); only transient scans came before the module's
 * verdict, and none after it; the vm events each counted match their scans.
 */
static void expect_same_scan(struct __test_metadata *_metadata, const struct both *b,
			     const char *result)
{
	int mat, kat;
	const char *mod = verdict(b->mod_scan, b->mod_scans, &mat);
	const char *khd = verdict(b->khd_scan, b->khd_scans, &kat);

	ASSERT_LE(1, b->mod_scans) TH_LOG("the module's scan_file event");
	ASSERT_LE(1, b->khd_scans) TH_LOG("khugepaged never scanned its twin");
	EXPECT_EQ(b->mod_scans - 1, mat)
		TH_LOG("the module's scans: %d, its verdict the %dth", b->mod_scans, mat + 1);
	EXPECT_STREQ(result, khd) TH_LOG("khugepaged's verdict (its scan %d)", kat + 1);
	EXPECT_STREQ(result, mod) TH_LOG("the module's verdict");
	EXPECT_EQ(b->khd_scan[0].present, b->mod_scan[0].present);
	EXPECT_EQ(b->khd_scan[0].swap, b->mod_scan[0].swap);

	/* Each scan that counts an event counts one. */
	EXPECT_EQ(khd_count(b, "SCAN_EXCEED_NONE_PTE"), b->khd_ev.none);
	EXPECT_EQ(khd_count(b, "SCAN_EXCEED_SWAP_PTE"), b->khd_ev.swap);
	EXPECT_EQ(!strcmp(result, "SCAN_EXCEED_NONE_PTE"), b->mod_ev.none);
	EXPECT_EQ(!strcmp(result, "SCAN_EXCEED_SWAP_PTE"), b->mod_ev.swap);
	/* One allocation per collapse_file(). */
	EXPECT_EQ(b->khd_collapses, b->khd_ev.alloc);
	EXPECT_EQ(b->mod_collapses, b->mod_ev.alloc);
	/* One collapse that succeeded, after as many as failed transiently. */
	if (!strcmp(result, "SCAN_SUCCEED")) {
		EXPECT_LE(1, b->mod_collapses);
		EXPECT_GE(b->mod_scans, b->mod_collapses);
	}
}

/* ... and so do the end states. */
static void expect_same(struct __test_metadata *_metadata, const struct both *b,
			const char *result)
{
	expect_same_scan(_metadata, b, result);
	EXPECT_EQ(b->khd.pmd_before, b->mod.pmd_before);
	EXPECT_EQ(b->khd.pmd_after, b->mod.pmd_after);
	EXPECT_EQ(0, b->mod.bad);
	EXPECT_EQ(0, b->khd.bad);
}

/* A collapse: no PMD until the next fault (tables retracted), then one. */
static void expect_lazy_pmd(struct __test_metadata *_metadata, const struct both *b)
{
	EXPECT_EQ(0, b->mod.pmd_before);
	EXPECT_EQ(0, b->mod.rss_before) TH_LOG("the module's twin kept PTEs");
	EXPECT_EQ(0, b->khd.rss_before) TH_LOG("khugepaged's twin kept PTEs");
	EXPECT_EQ(2048, b->mod.pmd_after);
	EXPECT_EQ(2048, b->khd.pmd_after);
}

/* No collapse: the PTEs stay, the pages stay small. */
static void expect_small(struct __test_metadata *_metadata, const struct both *b)
{
	EXPECT_EQ(0, b->mod.pmd_after);
	EXPECT_EQ(0, b->khd.pmd_after);
	EXPECT_EQ(b->khd.rss_before, b->mod.rss_before);
}

/* max_ptes_none=0: a full extent collapses. */
TEST_F_TIMEOUT(khd, none_0_full_extent, 240)
{
	struct spec s = { .present = NPAGES, .hugepage = true, .seed = 1 };
	struct both b;

	run_twins(_metadata, self, "none0full", &s, 0, 64, &b);
	EXPECT_STREQ("SCAN_SUCCEED", b.mod_result) TH_LOG("report:\n%s", self->report);
	EXPECT_LT(0, b.mod_ret);
	expect_same(_metadata, &b, "SCAN_SUCCEED");
	expect_lazy_pmd(_metadata, &b);
	/*
	 * The node: collapse_find_target_node() picks the node of the most old
	 * folios; the module logs it (collapse_file's node=) and the huge page
	 * is there, as khugepaged's is on its twin's node.
	 */
	EXPECT_LE(0, b.mod.node_before);
	EXPECT_EQ(b.mod.node_before, b.mod_node);
	EXPECT_EQ(b.mod.node_before, b.mod.node_after);
	EXPECT_EQ(b.khd.node_before, b.khd.node_after);
}

/* max_ptes_none=0: one hole is one too many. */
TEST_F_TIMEOUT(khd, none_0_one_hole, 240)
{
	struct spec s = { .present = NPAGES - 1, .hugepage = true, .seed = 2 };
	struct both b;

	run_twins(_metadata, self, "none0hole", &s, 0, 64, &b);
	EXPECT_STREQ("SCAN_EXCEED_NONE_PTE", b.mod_result) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(-EBUSY, b.mod_ret);
	expect_same(_metadata, &b, "SCAN_EXCEED_NONE_PTE");
	expect_small(_metadata, &b);
}

/* max_ptes_none=511: one page is enough. */
TEST_F_TIMEOUT(khd, none_511_one_page, 240)
{
	struct spec s = { .present = 1, .hugepage = true, .seed = 3 };
	struct both b;

	run_twins(_metadata, self, "none511one", &s, 511, 64, &b);
	EXPECT_STREQ("SCAN_SUCCEED", b.mod_result) TH_LOG("report:\n%s", self->report);
	expect_same(_metadata, &b, "SCAN_SUCCEED");
	expect_lazy_pmd(_metadata, &b);
}

/* max_ptes_none=511: no page at all is not enough. */
TEST_F_TIMEOUT(khd, none_511_empty_extent, 240)
{
	struct spec s = { .present = 0, .hugepage = true, .seed = 4 };
	struct both b;

	run_twins(_metadata, self, "none511empty", &s, 511, 64, &b);
	EXPECT_STREQ("SCAN_EXCEED_NONE_PTE", b.mod_result) TH_LOG("report:\n%s", self->report);
	expect_same(_metadata, &b, "SCAN_EXCEED_NONE_PTE");
	expect_small(_metadata, &b);
}

/* max_ptes_none=100: 412 pages present is exactly enough. */
TEST_F_TIMEOUT(khd, none_100_at_the_limit, 240)
{
	struct spec s = { .present = NPAGES - 100, .hugepage = true, .seed = 5 };
	struct both b;

	run_twins(_metadata, self, "none100at", &s, 100, 64, &b);
	EXPECT_STREQ("SCAN_SUCCEED", b.mod_result) TH_LOG("report:\n%s", self->report);
	expect_same(_metadata, &b, "SCAN_SUCCEED");
	expect_lazy_pmd(_metadata, &b);
}

/* max_ptes_none=100: 411 pages present is one too few. */
TEST_F_TIMEOUT(khd, none_100_past_the_limit, 240)
{
	struct spec s = { .present = NPAGES - 101, .hugepage = true, .seed = 6 };
	struct both b;

	run_twins(_metadata, self, "none100past", &s, 100, 64, &b);
	EXPECT_STREQ("SCAN_EXCEED_NONE_PTE", b.mod_result) TH_LOG("report:\n%s", self->report);
	expect_same(_metadata, &b, "SCAN_EXCEED_NONE_PTE");
	expect_small(_metadata, &b);
}

static bool have_swap(void)
{
	char swaps[4096];

	if (krs_read_file("/proc/swaps", swaps, sizeof(swaps)) <= 0)
		return false;
	return strchr(swaps, '\n') && strchr(strchr(swaps, '\n') + 1, '/');
}

/*
 * max_ptes_swap: the twins' pages swapped out, then the limit set to what
 * was swapped out (allowed: swap == max_ptes_swap) or one below. Swapped
 * pages are not present: max_ptes_none=511. The module's twin is asked
 * again after a transient result, as khugepaged's next visit would (a
 * swapped-in folio not on the LRU yet: verdict() above).
 */
static void swap_case(struct __test_metadata *_metadata, struct _test_data_khd *self,
		      const char *name, int below, unsigned int seed)
{
	struct spec s = { .present = NPAGES, .swapped = 16, .hugepage = true, .revisit = true,
			  .seed = seed };
	const char *want = below ? "SCAN_EXCEED_SWAP_PTE" : "SCAN_SUCCEED";
	struct both b;

	if (!have_swap())
		SKIP(return, "no swap device");
	/* The limit is set before the twins exist: 16 pages asked for. */
	run_twins(_metadata, self, name, &s, 511, 16 - below, &b);
	if (b.mod.swapped != 16 || b.khd.swapped != 16)
		SKIP(return, "MADV_PAGEOUT swapped out %ld and %ld pages, not 16",
		     b.mod.swapped, b.khd.swapped);
	EXPECT_STREQ(want, b.mod_result) TH_LOG("report:\n%s", self->report);
	expect_same(_metadata, &b, want);
	if (below) {
		EXPECT_EQ(0, b.mod.pmd_after);
		EXPECT_EQ(0, b.khd.pmd_after);
	} else {
		expect_lazy_pmd(_metadata, &b);
	}
}

TEST_F_TIMEOUT(khd, swap_at_the_limit, 240)
{
	swap_case(_metadata, self, "swapat", 0, 7);
}

TEST_F_TIMEOUT(khd, swap_past_the_limit, 240)
{
	swap_case(_metadata, self, "swappast", 1, 8);
}

/*
 * TVA_KHUGEPAGED: under shmem_enabled=advise a mapping without
 * MADV_HUGEPAGE is not khugepaged's (SCAN_VMA_CHECK, EINVAL; khugepaged
 * never scans it), while MADV_COLLAPSE (the default mode) ignores the
 * setting.
 */
TEST_F_TIMEOUT(khd, eligibility_tva_khugepaged, 240)
{
	struct spec s = { .present = NPAGES, .hugepage = false, .seed = 9 };
	struct both b;
	ssize_t ret;
	long swapped;
	char *p;
	int fd;

	run_twins(_metadata, self, "noadvise", &s, 511, 64, &b);
	EXPECT_STREQ("SCAN_VMA_CHECK", b.mod_result) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(-EINVAL, b.mod_ret);
	EXPECT_EQ(0, b.mod_scans);
	EXPECT_EQ(0, b.khd_scans) TH_LOG("khugepaged scanned a mapping without MADV_HUGEPAGE");
	expect_small(_metadata, &b);

	p = twin_make("krs_noadvise_d", &s, &fd, &swapped);
	ASSERT_NE(MAP_FAILED, p);
	ret = collapse(_metadata, self, "addr=%lx len=2M", (unsigned long)p);
	EXPECT_LT(0, ret) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(2048, krs_smaps_kb(0, (unsigned long)p, "ShmemPmdMapped"));
	munmap(p, LEN);
	close(fd);
}

/*
 * No write-back retry: a dirty regular file stops the collapse
 * (SCAN_PAGE_DIRTY_OR_WRITEBACK, EAGAIN) after one scan, as khugepaged's
 * first visit stops; MADV_COLLAPSE would write it back and scan again.
 * Nobody has the file open for write, so both started an async flush:
 * khugepaged collapses it at a later visit, the module at a later request.
 */
TEST_F_TIMEOUT(khd, no_writeback_retry, 240)
{
	struct spec s = { .kind = TWIN_DIRTY_FILE, .present = NPAGES, .hugepage = true,
			  .seed = 11 };
	char type[32];
	struct both b;

	if (!krs_mounted_type(XFS, type, sizeof(type)) || strcmp(type, "xfs"))
		SKIP(return, "no XFS at " XFS);
	run_twins(_metadata, self, "wb", &s, 511, 64, &b);
	EXPECT_STREQ("SCAN_PAGE_DIRTY_OR_WRITEBACK", b.mod_result)
		TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(-EAGAIN, b.mod_ret);
	/* One scan, no retry (MADV_COLLAPSE's would be a second one). */
	expect_same_scan(_metadata, &b, "SCAN_PAGE_DIRTY_OR_WRITEBACK");
	EXPECT_EQ(0, b.mod.pmd_after);
	EXPECT_EQ(0, b.mod.bad);
	EXPECT_EQ(0, b.khd.bad);
	/* khugepaged's later visits, after the flush it started. */
	EXPECT_LE(1, khd_count(&b, "SCAN_SUCCEED"));
	EXPECT_EQ(2048, b.khd.pmd_after);
}

/*
 * A huge folio mapped by PTEs (MADV_COLLAPSE, then the PMD split by an
 * mprotect() and the pages faulted in again): the scan finds it huge
 * (SCAN_PTE_MAPPED_HUGEPAGE), try_collapse_pte_mapped_thp() retracts the
 * table without installing the PMD (install_pmd == false); the next fault
 * maps it. The module reports SCAN_SUCCEED for that retraction.
 */
TEST_F_TIMEOUT(khd, pte_mapped_thp_retracted, 240)
{
	struct spec s = { .kind = TWIN_PTE_MAPPED_THP, .present = NPAGES, .hugepage = true,
			  .seed = 12 };
	struct both b;

	run_twins(_metadata, self, "ptethp", &s, 511, 64, &b);
	EXPECT_STREQ("SCAN_SUCCEED", b.mod_result) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(0U, self->ext[0].copied);
	expect_same(_metadata, &b, "SCAN_PTE_MAPPED_HUGEPAGE");
	expect_lazy_pmd(_metadata, &b);
	/* Nothing was collapsed: no allocation, not counted as a collapse. */
	EXPECT_EQ(0, b.mod_collapses);
	EXPECT_EQ(0, b.khd_collapses);
	EXPECT_EQ(0, b.mod_collapsed);
	/* Upstream counts it in pages_collapsed all the same. */
	EXPECT_EQ(1, b.mod_khd_collapsed);
}

/*
 * khugepaged's pages_collapsed counts every visit of an extent already
 * huge whose table is gone (try_collapse_pte_mapped_thp() returns
 * SCAN_SUCCEED on a pmd_none entry): one collapse, and a count per full
 * scan until the next fault. The module counts the collapse once
 * (extents_collapsed), reports the later request as
 * SCAN_PTE_MAPPED_HUGEPAGE (nothing done), and shows upstream's count
 * apart (khugepaged_pages_collapsed).
 */
TEST_F_TIMEOUT(khd, pages_collapsed_counts_visits, 240)
{
	struct spec s = { .present = NPAGES, .hugepage = true, .twice = true, .seed = 13 };
	struct both b;

	run_twins(_metadata, self, "visits", &s, 511, 64, &b);
	EXPECT_STREQ("SCAN_PTE_MAPPED_HUGEPAGE", b.mod_result) TH_LOG("report:\n%s", self->report);
	EXPECT_LT(0, b.mod_ret) TH_LOG("a lazy PMD is done in khugepaged mode");
	EXPECT_EQ(1, b.mod_collapsed);
	EXPECT_EQ(2, b.mod_khd_collapsed);
	expect_lazy_pmd(_metadata, &b);

	EXPECT_EQ(1, b.khd_collapses);
	EXPECT_EQ(1, khd_count(&b, "SCAN_SUCCEED"));
	EXPECT_LE(1, khd_count(&b, "SCAN_PTE_MAPPED_HUGEPAGE"));
	EXPECT_EQ(khd_count(&b, "SCAN_SUCCEED") + khd_count(&b, "SCAN_PTE_MAPPED_HUGEPAGE"),
		  b.khd_pages_collapsed);
	TH_LOG("khugepaged: 1 collapse, pages_collapsed +%ld", b.khd_pages_collapsed);
}

/*
 * Whether the twins of a seed agree (as expect_same_scan() and
 * expect_same() check), and if not, where, in @why.
 */
static bool twins_agree(const struct both *b, char *why, size_t n)
{
	const struct scan *m = &b->mod_scan[0], *k = &b->khd_scan[0];

	if (b->mod_scans < 1 || b->mod_scans != b->mod_requests || b->khd_scans < 1)
		snprintf(why, n, "scans: module %d (%d requests), khugepaged %d", b->mod_scans,
			 b->mod_requests, b->khd_scans);
	else if (strcmp(m->result, k->result))
		snprintf(why, n, "module %s, khugepaged %s", m->result, k->result);
	else if (m->present != k->present || m->swap != k->swap)
		snprintf(why, n, "present/swap: module %d/%d, khugepaged %d/%d", m->present,
			 m->swap, k->present, k->swap);
	else if (b->mod_ev.none != mod_count(b, "SCAN_EXCEED_NONE_PTE") ||
		 b->mod_ev.swap != mod_count(b, "SCAN_EXCEED_SWAP_PTE") ||
		 b->khd_ev.none != khd_count(b, "SCAN_EXCEED_NONE_PTE") ||
		 b->khd_ev.swap != khd_count(b, "SCAN_EXCEED_SWAP_PTE"))
		snprintf(why, n, "vm events: module none %ld swap %ld, %s none %ld swap %ld",
			 b->mod_ev.none, b->mod_ev.swap, "khugepaged", b->khd_ev.none,
			 b->khd_ev.swap);
	else if (b->mod.pmd_before != b->khd.pmd_before || b->mod.pmd_after != b->khd.pmd_after ||
		 b->mod.rss_before != b->khd.rss_before)
		snprintf(why, n, "end state: PMD %ld/%ld kB, Rss %ld kB (module); %ld/%ld, %ld",
			 b->mod.pmd_before, b->mod.pmd_after, b->mod.rss_before, b->khd.pmd_before,
			 b->khd.pmd_after, b->khd.rss_before);
	else if (b->mod.bad || b->khd.bad)
		snprintf(why, n, "data: page %ld (module), %ld (khugepaged)", b->mod.bad - 1,
			 b->khd.bad - 1);
	else
		return true;
	return false;
}

static unsigned int env_num(const char *name, unsigned int dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned int)strtoul(v, NULL, 0) : dflt;
}

/*
 * The differential khugepaged mode: seeds of random twins (a random share
 * of the 512 pages written, at random places; up to 32 of them swapped
 * out; max_ptes_none 0, 511, random, or at the edge of what the twin has;
 * max_ptes_swap random or at the edge), each run as the tests above run
 * theirs and compared (verdict, present, swap, vm events, end state,
 * data). A seed whose twins did not get the same number of pages swapped
 * out or in the page cache (mincore) before the collapse, or where one
 * side met a result that depends on timing (a folio in an LRU batch), is
 * "unstable", not a divergence. KRS_KHD_SEEDS (default
 * 20) seeds from KRS_KHD_START (default 1); KRS_KHD_BACKING=xfs or ext4
 * makes the twins regular files on /mnt/<fs>: all pages written and
 * synced, the random share in the page cache (the rest read in by the
 * collapse), no swap.
 */
TEST_F_TIMEOUT(khd, random_seeds, 1800)
{
	unsigned int seeds = env_num("KRS_KHD_SEEDS", 20), start = env_num("KRS_KHD_START", 1);
	unsigned int same = 0, diverged = 0, unstable = 0, collapsed = 0;
	const char *backing = getenv("KRS_KHD_BACKING");
	enum twin_kind kind = TWIN_MEMFD;
	bool swap = have_swap();
	unsigned char mask[NPAGES];
	static char dir[64];
	char type[32];

	if (backing && *backing && strcmp(backing, "shmem")) {
		snprintf(dir, sizeof(dir), "/mnt/%s", backing);
		if (!krs_mounted_type(dir, type, sizeof(type)))
			SKIP(return, "%s is not mounted", dir);
		file_dir = dir;
		kind = TWIN_CLEAN_FILE;
		swap = false;
	}

	for (unsigned int seed = start; seed < start + seeds; seed++) {
		struct krs_rng r = { .s = 0x6b6864ULL * seed + 0x9e3779b97f4a7c15ULL };
		unsigned int pct = krs_below(&r, 101), present = 0;
		struct spec s = { .kind = kind, .mask = mask, .hugepage = true, .revisit = true,
				  .seed = 200 + seed };
		long none, maxswap;
		char name[32], why[256];
		struct both b;

		for (size_t i = 0; i < NPAGES; i++) {
			mask[i] = krs_below(&r, 100) < pct;
			present += mask[i];
		}
		s.present = present;
		if (swap && present && krs_chance(&r, 30))
			s.swapped = krs_below(&r, present < 32 ? present + 1 : 33);
		switch (krs_below(&r, 5)) {
		case 0:
			none = 0;
			break;
		case 1:
			none = 511;
			break;
		case 2:
			none = krs_below(&r, 512);
			break;
		default:
			/* At the edge: exactly enough, or one page short. */
			none = (long)(NPAGES - (present - s.swapped)) - (long)krs_below(&r, 2);
			none = none < 0 ? 0 : none > 511 ? 511 : none;
			break;
		}
		maxswap = krs_chance(&r, 50) ? (long)s.swapped - (long)krs_below(&r, 2) :
					       (long)krs_below(&r, 65);
		maxswap = maxswap < 0 ? 0 : maxswap;
		snprintf(name, sizeof(name), "rnd%u", seed);
		run_twins(_metadata, self, name, &s, none, maxswap, &b);
		/* Twins that differ before the collapse say nothing of it. */
		if (b.mod.swapped != b.khd.swapped || b.mod.cached != b.khd.cached) {
			ksft_print_msg("seed %u: unstable: swapped %ld/%ld, cached %ld/%ld\n", seed,
				       b.mod.swapped, b.khd.swapped, b.mod.cached, b.khd.cached);
			unstable++;
			continue;
		}
		if (twins_agree(&b, why, sizeof(why))) {
			same++;
			collapsed += b.mod.pmd_after > 0;
			continue;
		}
		/*
		 * A first scan that met a folio locked for I/O (or in an LRU
		 * batch) on one side only: timing, if the end states agree.
		 */
		if (b.mod_scans >= 1 && b.khd_scans >= 1 &&
		    (transient(b.mod_scan[0].result) || transient(b.khd_scan[0].result)) &&
		    strcmp(b.mod_scan[0].result, b.khd_scan[0].result)) {
			if (b.mod.pmd_after == b.khd.pmd_after && !b.mod.bad && !b.khd.bad)
				same++;
			else
				unstable++;
			continue;
		}
		diverged++;
		ksft_print_msg("seed %u: %s (%u pages, %u swapped; max_ptes_none %ld, %s %ld)\n",
			       seed, why, present, s.swapped, none, "max_ptes_swap", maxswap);
		ksft_print_msg("  reproduce: KRS_KHD_START=%u KRS_KHD_SEEDS=1\n", seed);
	}
	ksft_print_msg("%s: %u seeds from %u: %u the same (%u collapsed), %u divergences, %s\n",
		       kind == TWIN_MEMFD ? "shmem" : file_dir, seeds, start, same, collapsed,
		       diverged, unstable ? "some unstable" : "0 unstable");
	if (unstable)
		ksft_print_msg("%u unstable (twins that differed before, or timing)\n", unstable);
	EXPECT_EQ(0U, diverged);
}

/*
 * dry_run in khugepaged mode: the verdict khugepaged's scan gives, and
 * nothing changes (no vm event, no allocation, the PTEs stay).
 */
TEST_F(khd, dry_run_reports_the_threshold)
{
	struct spec s = { .present = NPAGES - 3, .hugepage = true, .seed = 10 };
	struct events e0, e1, d;
	long swapped;
	ssize_t ret;
	char *p;
	int fd;

	ASSERT_EQ(0, write_long(KHD "/max_ptes_none", 2));
	p = twin_make("krs_dryrun", &s, &fd, &swapped);
	ASSERT_NE(MAP_FAILED, p);
	events_read(&e0);
	ret = collapse(_metadata, self, "addr=%lx len=2M mode=khugepaged dry_run",
		       (unsigned long)p);
	events_read(&e1);
	events_delta(&d, &e0, &e1);
	EXPECT_EQ(-EBUSY, ret) TH_LOG("report:\n%s", self->report);
	ASSERT_EQ(1, self->nr_ext);
	EXPECT_STREQ("SCAN_EXCEED_NONE_PTE", self->ext[0].result);
	EXPECT_EQ((unsigned int)(NPAGES - 3), self->ext[0].copied);
	EXPECT_EQ(3U, self->ext[0].holes);
	EXPECT_EQ(0, d.none);
	EXPECT_EQ(0, d.alloc);
	EXPECT_EQ((long)(NPAGES - 3) * 4, krs_smaps_kb(0, (unsigned long)p, "Rss"));

	ASSERT_EQ(0, write_long(KHD "/max_ptes_none", 3));
	ret = collapse(_metadata, self, "addr=%lx len=2M mode=khugepaged dry_run",
		       (unsigned long)p);
	EXPECT_LT(0, ret);
	ASSERT_EQ(1, self->nr_ext);
	EXPECT_STREQ("SCAN_SUCCEED", self->ext[0].result);
	EXPECT_EQ(0, krs_smaps_kb(0, (unsigned long)p, "ShmemPmdMapped"));
	EXPECT_EQ(0, check_twin(p, &s));
	munmap(p, LEN);
	close(fd);
}

TEST_HARNESS_MAIN
