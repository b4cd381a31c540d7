// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel fault injection into collapses. The kernel's own allocations made
 * on the module's behalf (slab: xarray nodes, the module's vectors and its
 * report; pages: the huge folio, pages swapped back in, pages of a regular
 * file read in by the collapse's readahead, with the filesystem's and the
 * block layer's allocations for that read) are failed, and every failure
 * must end in a clean rollback or a documented errno, with the data
 * intact. Not a kselftest: it needs the debug kernel's FAILSLAB,
 * FAIL_PAGE_ALLOC and FAULT_INJECTION_STACKTRACE_FILTER and takes minutes;
 * `make faults` (tools/endurance/run faults) runs it in the debug VM, with
 * the module loaded.
 *
 *   khugepaged_rs_faults [--phase nth|rates|all|clean] [--scenario NAME]
 *                        [--nth-max N] [--rounds N] [--seed S] [--anywhere]
 *                        [--no-trace] [-v]
 *
 * (--phase clean runs each scenario once with nothing failed, on any kernel:
 * a check of the program itself.)
 *
 * Failures go only to the collapsing task and only to allocations whose call
 * chain passes through the module's text: failslab and fail_page_alloc both
 * get require-start/require-end = the module's text (from /proc/kallsyms;
 * --anywhere: any allocation of the collapsing task), reject-start/reject-end
 * = kmemleak's bookkeeping, ignore-gfp-wait=N (sleeping allocations too), and
 * fail_page_alloc min-order=0 and ignore-gfp-highmem=N (user pages too);
 * verbose=0. --scenario NAME runs one scenario of the table below.
 *
 * The scenarios: shmem files (memfds: one extent full, with holes, with
 * pages swapped out to zram, fd= over two extents, two mappings through
 * pid=, four extents in one write) and regular files on the VM's XFS
 * (/mnt/xfs) and ext4 (/mnt/ext4): xfs-full and ext4-full, one extent
 * written, synced and every page PTE-mapped (retraction has work), the
 * XFS file open and mapped read-only, the ext4 one read-write (only read
 * through the mapping, so its pages stay clean); xfs-cold, one extent with
 * pages 64-127 dropped from the page cache (fdatasync, POSIX_FADV_DONTNEED)
 * and never touched, so the collapse reads them in (readahead allocates
 * under injection); ext4-fd, fd= over two extents with pages 64-127
 * dropped, no mapping. One run of 64 pages: each page read is an
 * allocation or more, and phase nth fails each in turn (with every other
 * run dropped, xfs-cold was still allocating at n = 69, 6 s an n). A scenario whose
 * filesystem is not mounted is skipped with a message; while a
 * regular-file scenario runs, THP "enabled" is "madvise" (krs_thp_madvise)
 * so that khugepaged leaves its files alone.
 *
 * Phase "nth" (systematic, one failure per collapse): for each scenario and
 * n = 1, 2, ...: build the scenario, write n to /proc/thread-self/fail-nth,
 * write the collapse and read its report. fail-nth reads 0 when the n-th
 * allocation was failed; otherwise the collapse made fewer than n, that
 * clean run must have succeeded, and the scenario is done.
 *
 * Phase "rates": task-filter=Y, /proc/thread-self/make-it-fail=1 around each
 * collapse write and report read, and a sweep of settings: probability 1, 5,
 * 20, 50 and 100 %; interval 3 and 7 (probability 100); times=1 after a
 * random space budget; --rounds collapses each, over the scenarios in turn.
 *
 * After every collapse write, whatever was failed:
 *  - write() returned the command's length or a documented errno (ENOMEM,
 *    EINVAL, EAGAIN, EBUSY: the ABI's collapse errnos for failed extents);
 *  - the report is well formed and its status is write()'s result; it may
 *    hold the status line alone (recording or rendering the extents ran out
 *    of memory);
 *  - shmem: st_blocks grew by the holes the report shows filled and by
 *    nothing else (a rollback undoes the holes' shmem charge, and its
 *    extent shows 0; a committed collapse whose PMD could not be installed
 *    shows the installation's result and its holes), when the report lists
 *    every extent. A regular file has no
 *    shmem charge and no holes to fill (what is missing from the page
 *    cache is read, not zero-filled), and is written in full before: its
 *    st_blocks and st_size must not change at all, and every extent of its
 *    report must show 0 holes;
 *  - every page reads as the model says, through pread() and through every
 *    mapping;
 *  - with injection off, the same collapse succeeds (the rollback left no
 *    folio locked, isolated or referenced: an extra reference would make it
 *    fail with EAGAIN), addr= targets are then PMD-mapped (ShmemPmdMapped,
 *    or FilePmdMapped for a regular file), and the data are checked again.
 *    On a regular file that clean collapse may meet a transient EAGAIN: a
 *    folio just read in (by the checks before it, or by the failed
 *    collapse's readahead) still locked under its read or in a per-CPU LRU
 *    batch; krs_collapse_cmd() tries 5 times, and for a regular file up to
 *    3 rounds of that are made, 200 ms apart. A failure that persists
 *    through them fails the check, as on shmem.
 *
 * In the busy kernel (under khugepaged_rs_actors, $KRS_ACTORS set: `make
 * faults ACTORS=...`), the injected collapse and its checks run among the
 * actors: compaction, migration, reclaim under the memcg's limit and
 * khugepaged move the test's folios at times of their own. The clean
 * collapse after it runs with the actors held (krs_actors_hold(): each
 * takes its pressure off and acknowledges; the memcg's limit is lifted),
 * and every check of it is the idle kernel's: it must succeed and leave the
 * range PMD-mapped, on any file after up to BUSY_CLEAN_ROUNDS rounds 200 ms
 * apart on EAGAIN (a shmem folio the memcg swapped out is read back by the
 * collapse; a folio migration just put back may sit in the other CPU's LRU
 * batch). A rollback that left a folio locked, isolated or referenced
 * fails every round. The actors come back before the data are checked.
 * The nth phase ends a scenario at the first n with nothing injected; in
 * the busy kernel a collapse that failed with nothing injected may have
 * been cut short by an actor (SCAN_PAGE_LRU, say) before its n-th
 * allocation, so that n is made again, up to BUSY_NTH_TRIES times.
 *
 * Failures per site: kretprobe events on should_failslab() and
 * should_fail_alloc_page() (kprobe_events, filter ret != 0) with a stacktrace
 * trigger record the call chain of every injected failure; a site is the
 * first callers outside the allocators and the first frames of the module
 * under them. Per attribute, the counts also come from the debugfs "times"
 * counter. The module's stats give the rollbacks by reason. Exit status 0
 * only if every check held.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "krs_test.h"

#define PAGE KRS_PAGE_SIZE
#define PMD KRS_PMD_SIZE
#define PMD_PAGES KRS_PMD_PAGES
#define MAX_EXTENTS 4
#define MAX_MAPS 2
#define REPORT_SIZE 8192
#define STATS_SIZE 16384
#define DEBUGFS "/sys/kernel/debug/"
#define TRACING "/sys/kernel/tracing"
#define EVENT_DIR TRACING "/events/krs_faults/"
#define TIMES_BUDGET 1000000000LL
#define ITER_TIMEOUT 300	/* seconds: a hang, not slowness */

/* ---- options, failures, randomness -------------------------------------- */

static bool verbose, use_trace = true, anywhere;
static const char *only;	/* --scenario */
static unsigned int nth_max = 400, rounds = 40;
static int failures;
static char first_failure[512];

static void fail(const char *fmt, ...) __printf(1, 2);

static void fail(const char *fmt, ...)
{
	char msg[sizeof(first_failure)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!failures++)
		memcpy(first_failure, msg, sizeof(msg));
	if (failures <= 40)
		printf("# FAIL %s\n", msg);
	else if (failures == 41)
		printf("# FAIL (further failures are counted, not printed)\n");
}

/* random(3), seeded from --seed: the scenarios' data and the space budgets. */
static uint64_t rnd(void)
{
	return (uint64_t)random() << 31 ^ (uint64_t)random();
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* ---- small file helpers ------------------------------------------------- */

static int put(const char *path, const char *fmt, ...) __printf(2, 3);

/* Write a formatted value to @path (one write); 0 or -errno. */
static int put(const char *path, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int fd, len, ret = 0;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

static void must_put(const char *path, const char *fmt, ...) __printf(2, 3);

static void must_put(const char *path, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ret = put(path, "%s", buf);
	if (ret) {
		printf("# cannot write \"%s\" to %s: %s\n", buf, path, strerror(-ret));
		exit(2);
	}
}

static long long get_ll(const char *path)
{
	char buf[64];

	if (krs_read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtoll(buf, NULL, 0);
}

/* ---- the fault attributes ----------------------------------------------- */

enum attr { ATTR_SLAB, ATTR_PAGE, NR_ATTRS };

static const char *const attr_dir[NR_ATTRS] = { DEBUGFS "failslab/", DEBUGFS "fail_page_alloc/" };
static const char *const attr_name[NR_ATTRS] = { "failslab", "fail_page_alloc" };
static unsigned long text_start, text_end;

static void attr_put(enum attr a, const char *knob, const char *fmt, ...)
	__printf(3, 4);

static void attr_put(enum attr a, const char *knob, const char *fmt, ...)
{
	char path[128], val[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s%s", attr_dir[a], knob);
	must_put(path, "%s", val);
}

static long long attr_times(enum attr a)
{
	char path[128];

	snprintf(path, sizeof(path), "%stimes", attr_dir[a]);
	return get_ll(path);
}

/* The module's text: [lowest, highest + 64 KiB) of its text symbols. */
static int find_module_text(void)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	char line[1024];

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long addr;
		char type;

		if (!strstr(line, "[" KRS_MODNAME "]") ||
		    sscanf(line, "%lx %c", &addr, &type) != 2 || !addr)
			continue;
		if (type != 't' && type != 'T')
			continue;
		if (!text_start || addr < text_start)
			text_start = addr;
		if (addr >= text_end)
			text_end = addr + 1;
	}
	fclose(f);
	if (!text_start)
		return -ENOENT;
	/* The last function's length is not in kallsyms; no other module is loaded. */
	text_end += 64 << 10;
	return 0;
}

/*
 * kmemleak's bookkeeping: every object it tracks gets a kmemleak_object from
 * a slab cache (falling back to a static pool when that fails), allocated
 * under the allocation it tracks, so under the module's frames too. Failing
 * those would double every count and test kmemleak, not the module: the
 * reject range covers mem_pool_alloc(), __alloc_object() and
 * __create_object() (adjacent in kmemleak.c). [0, 0) without kmemleak.
 */
static unsigned long reject_start, reject_end;

static void find_kmemleak_text(void)
{
	static const char *const names[] = {
		"mem_pool_alloc", "__alloc_object", "__create_object",
	};
	unsigned long lo = 0, hi = 0, next = 0, addr, anchor = 0;
	char line[512], sym[256], type;
	FILE *f = fopen("/proc/kallsyms", "re");

	if (!f)
		return;
	/*
	 * Pass 0: __create_object(), which every tracked allocation goes
	 * through (kmemleak_alloc() tail-calls it); 1: the other names near it
	 * (static names recur elsewhere); 2: the first symbol after them.
	 */
	for (int pass = 0; pass < 3 && (pass == 0 || anchor); pass++) {
		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			if (strchr(line, '[') ||
			    sscanf(line, "%lx %c %255s", &addr, &type, sym) != 3 ||
			    (type != 't' && type != 'T'))
				continue;
			if (pass == 0) {
				if (!strcmp(sym, "__create_object"))
					anchor = addr;
			} else if (pass == 2) {
				if (addr > hi && (!next || addr < next))
					next = addr;
			} else if (addr + 0x10000 >= anchor && addr <= anchor + 0x10000) {
				for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
					if (strcmp(sym, names[i]))
						continue;
					if (!lo || addr < lo)
						lo = addr;
					if (addr > hi)
						hi = addr;
				}
			}
		}
	}
	fclose(f);
	if (lo && next && next - lo < 0x20000) {
		reject_start = lo;
		reject_end = next;
	}
}

/* Everything off but the filters shared by both phases. */
static void attrs_base(void)
{
	for (int a = 0; a < NR_ATTRS; a++) {
		attr_put(a, "probability", "0");
		attr_put(a, "interval", "1");
		attr_put(a, "times", "%lld", TIMES_BUDGET);
		attr_put(a, "space", "0");
		attr_put(a, "verbose", "0");
		attr_put(a, "task-filter", "Y");
		attr_put(a, "ignore-gfp-wait", "N");
		attr_put(a, "stacktrace-depth", "32");
		attr_put(a, "require-start", "%#lx", anywhere ? 0UL : text_start);
		attr_put(a, "require-end", "%#lx", anywhere ? ~0UL : text_end);
		attr_put(a, "reject-start", "%#lx", reject_start);
		attr_put(a, "reject-end", "%#lx", reject_end);
	}
	attr_put(ATTR_PAGE, "min-order", "0");
	attr_put(ATTR_PAGE, "ignore-gfp-highmem", "N");
}

static void attrs_off(void)
{
	for (int a = 0; a < NR_ATTRS; a++) {
		char path[128];

		snprintf(path, sizeof(path), "%sprobability", attr_dir[a]);
		put(path, "0");
		snprintf(path, sizeof(path), "%stask-filter", attr_dir[a]);
		put(path, "N");
		snprintf(path, sizeof(path), "%stimes", attr_dir[a]);
		put(path, "1");
	}
	put("/proc/thread-self/fail-nth", "0");
	put("/proc/thread-self/make-it-fail", "0");
}

/* ---- sites: the call chain of each injected failure (tracing) ----------- */

#define MAX_SITES 96
#define MAX_OUTCOMES 10
#define SITE_LEN 320

struct site {
	char key[SITE_LEN];
	unsigned long n[NR_ATTRS];
	unsigned long total;
	char outcome[MAX_OUTCOMES][48];
	unsigned long outcome_n[MAX_OUTCOMES];
};

static struct site sites[MAX_SITES];
static unsigned int nr_sites;
static int trace_fd = -1;
static char trace_buf[1 << 16];
static size_t trace_len;

/* Sites of the failures of the current collapse (for the outcome). */
static int pending_sites[64];
static unsigned int nr_pending;

/*
 * Rust v0 symbols, shortened: the path's identifiers without the crate
 * names, the first two and the last two (e.g. "collapse::request::push",
 * "ffi::debugfs::...::CommandFile::write").
 */
static void demangle_short(const char *sym, char *out, size_t size)
{
	char ids[64][64];
	int n = 0;
	bool crate = false;

	if (strncmp(sym, "_R", 2)) {
		snprintf(out, size, "%s", sym);
		return;
	}
	for (const char *p = sym + 2; *p && n < 64; ) {
		if (p[0] == 'C' || ((p[0] == 'M' || p[0] == 'X' || p[0] == 'B') && p[1] == 's') ||
		    p[0] == 'B') {
			/* crate root, disambiguator s<base62>_, back-reference B<base62>_ */
			crate = p[0] == 'C';
			p++;
			if (*p == 's' || p[-1] == 'B') {
				while (*p && *p != '_')
					p++;
				if (*p)
					p++;
			}
			continue;
		}
		if (isdigit((unsigned char)*p) && *p != '0') {
			char *end;
			unsigned long len = strtoul(p, &end, 10);

			/* separator before an identifier starting with a digit or _ */
			if (*end == '_')
				end++;
			if (len < 64 && strlen(end) >= len &&
			    (isalpha((unsigned char)end[0]) || end[0] == '_')) {
				if (!crate) {
					memcpy(ids[n], end, len);
					ids[n++][len] = '\0';
				}
				crate = false;
				p = end + len;
				continue;
			}
		}
		p++;
	}
	if (!n) {
		snprintf(out, size, "%s", sym);
		return;
	}
	out[0] = '\0';
	for (int i = 0, len = 0; i < n && len < (int)size; i++) {
		if (n > 4 && i == 2)
			len += snprintf(out + len, size - len, "::...");
		if (n <= 4 || i < 2 || i >= n - 2)
			len += snprintf(out + len, size - len, "%s%s", i ? "::" : "", ids[i]);
	}
}

/* Frames of the allocators and of the probe itself, left out of a site. */
static bool internal_frame(const char *f)
{
	static const char *const prefixes[] = {
		"should_fail", "__should_fail", "slab_pre_alloc_hook", "slab_alloc", "__slab_alloc",
		"___slab_alloc", "kmem_cache_alloc", "__kmem_cache_alloc", "kmalloc", "__kmalloc",
		"__do_kmalloc", "krealloc", "__krealloc", "kvmalloc", "__kvmalloc", "kvrealloc",
		"__kvrealloc", "alloc_pages", "__alloc_pages", "alloc_frozen_pages",
		"__alloc_frozen_pages", "prepare_alloc_pages", "folio_alloc", "__folio_alloc",
		"alloc_pages_mpol", "folio_alloc_mpol", "vma_alloc_folio", "alloc_slab_page",
		"allocate_slab", "new_slab", "___kmalloc", "kmalloc_large", "__kmalloc_large",
		"___kmalloc_large", "kretprobe", "__kretprobe", "trampoline_handler",
		"arch_rethook", "rethook", "__rethook", "kprobe", "__kprobe", "trace_", "__trace",
		"ftrace", "stack_trace", "arch_stack_walk", "event_triggers", "stacktrace_trigger",
		"refill_objects", "__pcs_replace", "alloc_from_pcs", "__refill", "barn_",
		"<stack trace>",
	};

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (!strncmp(f, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

#define MAX_FRAMES 48

struct failure {
	bool open;
	int attr;
	unsigned int nframes;
	char frame[MAX_FRAMES][320];
	bool module[MAX_FRAMES];
};

static struct failure cur;

static int site_index(const char *key)
{
	for (unsigned int i = 0; i < nr_sites; i++)
		if (!strcmp(sites[i].key, key))
			return i;
	if (nr_sites == MAX_SITES)
		return MAX_SITES - 1;	/* the last one collects the rest */
	snprintf(sites[nr_sites].key, SITE_LEN, "%s", key);
	return nr_sites++;
}

/* One injected failure with its stack: count it at its site. */
static void failure_done(void)
{
	char key[SITE_LEN] = "", name[256];
	unsigned int kernel = 0, modframes = 0;
	size_t len = 0;
	int attr = cur.attr, s;

	if (!cur.open)
		return;
	cur.open = false;
	for (unsigned int i = 0; i < cur.nframes; i++) {
		if (attr < 0 && !strncmp(cur.frame[i], "should_failslab", 15))
			attr = ATTR_SLAB;
		if (attr < 0 && !strncmp(cur.frame[i], "should_fail_alloc_page", 22))
			attr = ATTR_PAGE;
	}
	for (unsigned int i = 0; i < cur.nframes && modframes < 2; i++) {
		if (!cur.module[i] &&
		    (internal_frame(cur.frame[i]) ||
		     (!kernel && !modframes && !strcmp(cur.frame[i], "0x0"))))
			continue;
		if (cur.module[i]) {
			demangle_short(cur.frame[i], name, sizeof(name));
			modframes++;
		} else {
			if (modframes || kernel == 3)
				continue;	/* kernel frames above the module, or too deep */
			snprintf(name, sizeof(name), "%s", cur.frame[i]);
			kernel++;
		}
		len += snprintf(key + len, sizeof(key) - len, "%s%s%s", len ? " < " : "",
				cur.module[i] ? "[krs] " : "", name);
		if (len >= sizeof(key))
			break;
	}
	if (!modframes)
		len += snprintf(key + len, sizeof(key) - len, "%s(no module frame)",
				len ? " < " : "");
	s = site_index(key);
	if (attr >= 0 && attr < NR_ATTRS)
		sites[s].n[attr]++;
	sites[s].total++;
	if (nr_pending < ARRAY_SIZE(pending_sites))
		pending_sites[nr_pending++] = s;
}

static void trace_line(char *line)
{
	char *p;

	if (strstr(line, " fail_slab: (") || strstr(line, " fail_page: (")) {
		failure_done();
		memset(&cur, 0, sizeof(cur));
		cur.open = true;
		cur.attr = strstr(line, " fail_slab: (") ? ATTR_SLAB : ATTR_PAGE;
		return;
	}
	if (strstr(line, "<stack trace>"))
		return;
	p = line;
	while (*p == ' ')
		p++;
	if (!strncmp(p, "=> ", 3) && cur.open && cur.nframes < MAX_FRAMES) {
		char *f = cur.frame[cur.nframes];
		char *mod;

		snprintf(f, sizeof(cur.frame[0]), "%s", p + 3);
		mod = strstr(f, " [" KRS_MODNAME "]");
		if (mod)
			*mod = '\0';
		/*
		 * The trace names no module: the module's frames are its C
		 * helpers (krs_*) and its Rust items, whose mangled names hold
		 * the crate's (kernel crate generics instantiated for it too).
		 */
		cur.module[cur.nframes] = mod || !strncmp(f, "krs_", 4) || strstr(f, KRS_MODNAME);
		f[strcspn(f, "+ ")] = '\0';
		cur.nframes++;
		return;
	}
	if (*p)
		failure_done();
}

/* Consume what the probe recorded since the last call. */
static void trace_collect(void)
{
	ssize_t n;

	if (trace_fd < 0)
		return;
	for (;;) {
		char *nl;

		n = read(trace_fd, trace_buf + trace_len, sizeof(trace_buf) - 1 - trace_len);
		if (n <= 0)
			break;
		trace_len += n;
		trace_buf[trace_len] = '\0';
		while ((nl = strchr(trace_buf, '\n'))) {
			*nl = '\0';
			trace_line(trace_buf);
			memmove(trace_buf, nl + 1, trace_len - (nl + 1 - trace_buf) + 1);
			trace_len -= nl + 1 - trace_buf;
		}
		if (trace_len == sizeof(trace_buf) - 1)
			trace_len = 0;	/* an absurd line: drop it */
	}
	failure_done();
}

/* The probes, one per attribute: each function's return value is its verdict. */
static const char *const probe[NR_ATTRS] = {
	"r:krs_faults/fail_slab should_failslab ret=$retval:s32\n",
	"r:krs_faults/fail_page should_fail_alloc_page ret=$retval:u8\n",
};

static const char *const probe_event[NR_ATTRS] = { "fail_slab", "fail_page" };

static int append(const char *path, const char *s);

static void trace_teardown(void)
{
	char path[128], del[64];

	if (trace_fd >= 0)
		close(trace_fd);
	trace_fd = -1;
	for (int a = 0; a < NR_ATTRS; a++) {
		snprintf(path, sizeof(path), EVENT_DIR "%s/enable", probe_event[a]);
		put(path, "0");
		snprintf(path, sizeof(path), EVENT_DIR "%s/trigger", probe_event[a]);
		put(path, "!stacktrace if ret != 0");
		snprintf(del, sizeof(del), "-:krs_faults/%s\n", probe_event[a]);
		append(TRACING "/kprobe_events", del);	/* it may not be there */
	}
}

static int append(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * kretprobes on should_failslab() and should_fail_alloc_page() (the callers
 * of should_fail_ex(), which kprobes refuse) that record the stack when
 * they fail an allocation.
 */
static int trace_setup(void)
{
	char path[128];
	int ret = 0;

	if (access(TRACING "/kprobe_events", F_OK))
		mount("nodev", TRACING, "tracefs", 0, NULL);
	trace_teardown();
	for (int a = 0; a < NR_ATTRS && !ret; a++) {
		ret = append(TRACING "/kprobe_events", probe[a]);
		snprintf(path, sizeof(path), EVENT_DIR "%s/filter", probe_event[a]);
		if (!ret)
			ret = put(path, "ret != 0");
		snprintf(path, sizeof(path), EVENT_DIR "%s/trigger", probe_event[a]);
		if (!ret)
			ret = put(path, "stacktrace if ret != 0");
		snprintf(path, sizeof(path), EVENT_DIR "%s/enable", probe_event[a]);
		if (!ret)
			ret = put(path, "1");
	}
	if (ret)
		return ret;
	put(TRACING "/tracing_on", "1");
	trace_fd = open(TRACING "/trace_pipe", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (trace_fd < 0)
		return -errno;
	trace_collect();	/* anything from before */
	memset(sites, 0, sizeof(sites));
	nr_sites = 0;
	nr_pending = 0;
	return 0;
}

static void site_outcome(int s, const char *outcome)
{
	struct site *st = &sites[s];
	int i;

	for (i = 0; i < MAX_OUTCOMES - 1 && st->outcome[i][0]; i++)
		if (!strcmp(st->outcome[i], outcome))
			break;
	if (!st->outcome[i][0])
		snprintf(st->outcome[i], sizeof(st->outcome[i]), "%s", outcome);
	st->outcome_n[i]++;
}

/* ---- scenarios ---------------------------------------------------------- */

enum target { T_ADDR, T_PID, T_FD };

struct scenario {
	const char *name;
	const char *what;
	unsigned int extents;
	unsigned int hole_every;	/* page p is a hole when p % hole_every == 1 (0: none) */
	unsigned int pageout;		/* pages of each extent swapped out through map 0 */
	unsigned int maps;		/* shared mappings of the whole file */
	enum target target;
	/* Regular files only: */
	const char *dir;		/* a regular file there (NULL: a memfd) */
	unsigned int drop_every;	/* 64-page run r dropped when r % drop_every == 1 */
	bool rw;			/* open and mapped read-write (else read-only) */
};

#define DROP_RUN 64			/* pages: a run dropped from the page cache */

static const struct scenario scenarios[] = {
	/* shmem (memfds) */
	{ "full", "one extent, every page present, addr= (retract, PMD)", 1, 0, 0, 1, T_ADDR,
	  NULL, 0, false },
	{ "holes", "one extent, every 4th page a hole, addr=", 1, 4, 0, 1, T_ADDR, NULL, 0, false },
	{ "swapped", "one extent, 16 pages swapped out (zram), addr=", 1, 0, 16, 1, T_ADDR,
	  NULL, 0, false },
	{ "fd", "two extents, every 8th page a hole, no mapping, fd=", 2, 8, 0, 0, T_FD,
	  NULL, 0, false },
	{ "pid-2vma", "one extent mapped twice, pid=<self> addr= of one", 1, 16, 0, 2, T_PID,
	  NULL, 0, false },
	{ "multi", "four extents in one write, holes, addr=", 4, 32, 0, 1, T_ADDR, NULL, 0, false },
	/* regular files on the VM's filesystems (tools/vm/filesystems) */
	{ "xfs-full", "XFS file, one extent, every page cached, read-only, addr=", 1, 0, 0, 1,
	  T_ADDR, "/mnt/xfs", 0, false },
	{ "ext4-full", "ext4 file, one extent, every page cached, read-write, addr=", 1, 0, 0, 1,
	  T_ADDR, "/mnt/ext4", 0, true },
	{ "xfs-cold", "XFS file, one extent, pages 64-127 never read, addr=", 1, 0, 0, 1,
	  T_ADDR, "/mnt/xfs", 8, false },
	{ "ext4-fd", "ext4 file, two extents, pages 64-127 never read, fd=", 2, 0, 0, 0,
	  T_FD, "/mnt/ext4", 16, false },
};

#define NR_SCENARIOS (ARRAY_SIZE(scenarios))

/* Scenarios whose filesystem is not mounted (found in main()). */
static bool unmounted[NR_SCENARIOS];

static bool selected(const struct scenario *sc)
{
	return (!only || !strcmp(only, sc->name)) && !unmounted[sc - scenarios];
}

struct inst {
	const struct scenario *sc;
	int fd;
	char *map[MAX_MAPS];
	size_t npages;
	unsigned int seed;
	char cmd[160];
	char path[96];		/* the regular file, to unlink */
	size_t len;
};

static bool swap_works = true;
static unsigned long long pages_checked, swapped_total, uncached_total;

static bool is_hole(const struct inst *in, size_t p)
{
	return in->sc->hole_every && p % in->sc->hole_every == 1;
}

static bool is_dropped(const struct inst *in, size_t p)
{
	return in->sc->drop_every && p / DROP_RUN % in->sc->drop_every == 1;
}

/* smaps' count of what a PMD maps: a memfd is shmem, a regular file is not. */
static const char *pmd_field(const struct inst *in)
{
	return in->sc->dir ? "FilePmdMapped" : "ShmemPmdMapped";
}

/* Pages of @fd's first @len bytes not in the page cache (mincore); -errno. */
static long uncached_pages(int fd, size_t len)
{
	unsigned char vec[MAX_EXTENTS * PMD_PAGES];
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	long n = 0;

	if (p == MAP_FAILED)
		return -errno;
	if (mincore(p, len, vec))
		n = -errno;
	for (size_t i = 0; n >= 0 && i < len / PAGE; i++)
		n += !(vec[i] & 1);
	munmap(p, len);
	return n;
}

/*
 * A regular file of @in's pattern in @sc->dir: written, synced
 * (krs_make_file), the runs of drop_every dropped from the page cache
 * (POSIX_FADV_DONTNEED: they are clean), and reopened read-only unless
 * @sc->rw. The fd or -errno.
 */
static int make_regular(struct inst *in, const struct scenario *sc)
{
	int fd;

	snprintf(in->path, sizeof(in->path), "%s/krs-faults.%d", sc->dir, getpid());
	fd = krs_make_file(in->path, in->seed, in->npages, KRS_FILE_SYNCED);
	if (fd < 0)
		return fd;
	for (size_t p = 0; p < in->npages; p += DROP_RUN) {
		if (!is_dropped(in, p))
			continue;
		if (fdatasync(fd) || posix_fadvise(fd, p * PAGE, DROP_RUN * PAGE,
						   POSIX_FADV_DONTNEED)) {
			close(fd);
			return -EIO;
		}
	}
	return sc->rw ? fd : krs_reopen_ro(fd, in->path);
}

static int build_inst(struct inst *in, const struct scenario *sc)
{
	memset(in, 0, sizeof(*in));
	in->sc = sc;
	in->npages = sc->extents * PMD_PAGES;
	in->seed = rnd();
	in->len = sc->extents * PMD;
	if (sc->dir) {
		in->fd = make_regular(in, sc);
		if (in->fd < 0) {
			fail("%s: writing %s: %s", sc->name, in->path, strerror(-in->fd));
			return -1;
		}
	} else {
		in->fd = krs_memfd("krs_faults", in->len);
		if (in->fd < 0) {
			fail("%s: memfd: %s", sc->name, strerror(-in->fd));
			return -1;
		}
	}
	for (size_t p = 0; !sc->dir && p < in->npages; p++) {
		if (is_hole(in, p))
			continue;
		if (krs_pwrite_page(in->fd, in->seed, p)) {
			fail("%s: pwrite of page %zu failed", sc->name, p);
			return -1;
		}
	}
	for (unsigned int m = 0; m < sc->maps; m++) {
		int prot = sc->dir && !sc->rw ? PROT_READ : PROT_READ | PROT_WRITE;

		in->map[m] = krs_map_aligned(in->len, prot, MAP_SHARED, in->fd, 0);
		if (in->map[m] == MAP_FAILED) {
			in->map[m] = NULL;
			fail("%s: mmap: %s", sc->name, strerror(errno));
			return -1;
		}
		/*
		 * Map every present page by a PTE (retraction has work to do);
		 * pages dropped from the page cache are left unread.
		 */
		for (size_t p = 0; p < in->npages; p++)
			if (!is_hole(in, p) && !is_dropped(in, p))
				(void)__atomic_load_n(in->map[m] + p * PAGE, __ATOMIC_RELAXED);
	}
	if (sc->drop_every) {
		long n = uncached_pages(in->fd, in->len);

		if (n <= 0) {
			fail("%s: no page dropped from the page cache (%s)", sc->name,
			     n < 0 ? strerror(-n) : "none missing");
			return -1;
		}
		uncached_total += n;
	}
	if (sc->pageout && swap_works) {
		for (unsigned int e = 0; e < sc->extents; e++)
			madvise(in->map[0] + e * PMD + 64 * PAGE, sc->pageout * PAGE, MADV_PAGEOUT);
		long kb = krs_smaps_kb(0, (unsigned long)in->map[0], "Swap");

		if (kb <= 0) {
			printf("# %s: MADV_PAGEOUT swapped nothing out (no swap?): ", sc->name);
			printf("the scenario runs without swapped pages\n");
			swap_works = false;
		} else {
			swapped_total += kb / 4;
		}
	}
	switch (sc->target) {
	case T_ADDR:
		snprintf(in->cmd, sizeof(in->cmd), "addr=%lx len=%zu", (unsigned long)in->map[0],
			 in->len);
		break;
	case T_PID:
		snprintf(in->cmd, sizeof(in->cmd), "pid=%d addr=%lx len=%zu", getpid(),
			 (unsigned long)in->map[0], in->len);
		break;
	case T_FD:
		snprintf(in->cmd, sizeof(in->cmd), "fd=%d len=%zu", in->fd, in->len);
		break;
	}
	return 0;
}

static void teardown(struct inst *in)
{
	for (unsigned int m = 0; m < MAX_MAPS; m++)
		if (in->map[m])
			munmap(in->map[m], in->len);
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
	if (in->path[0])
		unlink(in->path);
	in->path[0] = '\0';
}

/* Every page through pread() and every mapping; the number of bad pages. */
static unsigned int verify(struct inst *in, const char *when)
{
	unsigned int bad = 0;

	for (size_t p = 0; p < in->npages; p++) {
		bool hole = is_hole(in, p);
		int r = hole ? krs_pread_zero(in->fd, p) : krs_pread_check(in->fd, in->seed, p);

		pages_checked++;
		if (r && bad++ < 4)
			fail("%s (%s): page %zu via pread: %s", in->sc->name, when, p,
			     r < 0 ? strerror(-r) : hole ? "not zero" : "wrong contents");
		for (unsigned int m = 0; m < in->sc->maps; m++) {
			const char *pg = in->map[m] + p * PAGE;
			bool ok = hole ? krs_page_is_zero(pg) : !krs_check_page(pg, in->seed, p);

			pages_checked++;
			if (!ok && bad++ < 4)
				fail("%s (%s): page %zu via mapping %u: %s", in->sc->name, when, p,
				     m, hole ? "not zero" : "wrong contents");
		}
	}
	return bad;
}

/* ---- one collapse under injection --------------------------------------- */

static int cfd = -1;
static char report[REPORT_SIZE];

/* Outcomes: write() result by errno, extents by result. */
static unsigned long blocks_checked, collapsed_unreported;
static unsigned long by_errno[134], by_result[KRS_NR_SCAN_RESULTS], empty_reports,
	status_only_reports, recollapses, collapses, clean_retried;

/* Rounds of krs_collapse_cmd() for the clean collapse of a regular file. */
#define CLEAN_ROUNDS 3
/*
 * The same for any file in the busy kernel, under the actors' hold: a shmem
 * folio the memcg swapped out is read back by the collapse, a file folio
 * compaction or migration just put back may sit in the other CPU's LRU
 * batch.
 */
#define BUSY_CLEAN_ROUNDS 20
/* How long the actors get to stand still (khugepaged ends its scan first). */
#define HOLD_TIMEOUT_MS 120000

/* Under khugepaged_rs_actors ($KRS_ACTORS): the busy kernel. */
static bool busy;
static unsigned long busy_holds;	/* clean collapses with the actors held */
static unsigned long busy_setup_holds;	/* set-ups of cold files with them held */
static uint64_t busy_hold_wait_ms, busy_hold_max_ms;	/* until every actor stood still */
/*
 * nth: collapses that failed with nothing injected (an actor's folio ended
 * them before the n-th allocation), made again with the same n.
 */
static unsigned long busy_nth_again;
#define BUSY_NTH_TRIES 10
static ssize_t last_write;	/* run_one()'s collapse write: its result */

/*
 * In the busy kernel: the actors stand still (krs_actors_hold()) for the
 * clean collapse, which then has to do all it does in an idle kernel (or
 * for a set-up, @setup: build()). 0 when there are no actors or they stand
 * still, -1 (the failure counted) when they did not.
 */
static int hold_actors(const struct inst *in, bool setup)
{
	uint64_t t0, waited;
	int ret;

	if (!busy)
		return 0;
	t0 = krs_now_ms();
	ret = krs_actors_hold(HOLD_TIMEOUT_MS);
	waited = krs_now_ms() - t0;
	busy_hold_wait_ms += waited;
	if (waited > busy_hold_max_ms)
		busy_hold_max_ms = waited;
	if (ret < 0) {
		fail("%s: the actors did not stand still for the %s: %s", in->sc->name,
		     setup ? "set-up" : "clean collapse", strerror(-ret));
		return -1;
	}
	if (setup)
		busy_setup_holds++;
	else
		busy_holds++;
	return 0;
}

static void release_actors(const struct inst *in)
{
	int ret;

	if (!busy)
		return;
	ret = krs_actors_release(HOLD_TIMEOUT_MS);
	if (ret < 0)
		fail("%s: the actors did not come back after a hold: %s", in->sc->name,
		     strerror(-ret));
}

/*
 * Set up a scenario's instance (build_inst()). A file with runs dropped
 * from the page cache is set up with the actors held: between its writes
 * and the mapping's first reads, drop_caches (the drop actor) or reclaim
 * could evict the pages meant to stay, and each read of one would then
 * read the dropped runs back with it (readahead around the fault), so that
 * none is missing when the collapse comes. The collapse itself runs among
 * the actors, which may read or drop anything by then.
 */
static int build(struct inst *in, const struct scenario *sc)
{
	int ret;

	if (!sc->drop_every)
		return build_inst(in, sc);
	/* A hold that fails leaves @in empty, as a failed set-up: no map, no fd. */
	memset(in, 0, sizeof(*in));
	in->sc = sc;
	in->fd = -1;
	if (hold_actors(in, true))
		return -1;
	ret = build_inst(in, sc);
	release_actors(in);
	return ret;
}

static const char *errname(long ret)
{
	if (ret >= 0)
		return "ok";
	return strerrorname_np(-ret) ? strerrorname_np(-ret) : "?";
}

static bool documented_errno(long err)
{
	return err == ENOMEM || err == EINVAL || err == EAGAIN || err == EBUSY;
}

static int result_index(const char *name)
{
	for (int k = 0; k < KRS_NR_SCAN_RESULTS; k++)
		if (!strcmp(name, krs_scan_names[k]))
			return k;
	return -1;
}

/* The extent results of the clean collapses' rounds that ended EAGAIN. */
static unsigned long clean_again_by_result[KRS_NR_SCAN_RESULTS];

static void count_clean_again(void)
{
	struct krs_extent ext[MAX_EXTENTS];
	long status;
	int n;

	if (krs_collapse_report(cfd, report, sizeof(report)) <= 0)
		return;
	n = krs_report_parse(report, ext, MAX_EXTENTS, &status);
	for (int i = 0; i < n && i < MAX_EXTENTS; i++) {
		int k = result_index(ext[i].result);

		/* Not the extents done: SCAN_SUCCEED, _PMD_MAPPED, _PTE_MAPPED_HUGEPAGE. */
		if (k >= 0 && k != 1 && k != 3 && k != 9)
			clean_again_by_result[k]++;
	}
}

enum arm { ARM_NONE, ARM_NTH, ARM_TASK };

/*
 * Write @in's collapse with injection armed as @how (fail-nth = @n), check
 * everything, collapse again clean. Returns 1 if a failure was injected (for
 * ARM_NTH: fail-nth went to 0), else 0; -1 if a check failed.
 */
static int run_one(struct inst *in, enum arm how, unsigned int n)
{
	struct krs_extent ext[MAX_EXTENTS];
	unsigned int holes = 0;
	bool injected = false;
	char outcome[48];
	struct stat st0, st1;
	long status = 0;
	ssize_t ret, rn;
	int next, nth_left = 0, bad_before = failures, held;

	if (fstat(in->fd, &st0)) {
		fail("fstat: %s", strerror(errno));
		return -1;
	}
	trace_collect();
	nr_pending = 0;
	alarm(ITER_TIMEOUT);
	if (how == ARM_NTH)
		must_put("/proc/thread-self/fail-nth", "%u", n);
	else if (how == ARM_TASK)
		must_put("/proc/thread-self/make-it-fail", "1");
	ret = krs_collapse_write(cfd, in->cmd, strlen(in->cmd));
	rn = krs_collapse_report(cfd, report, sizeof(report));
	last_write = ret;
	if (how == ARM_NTH) {
		nth_left = get_ll("/proc/thread-self/fail-nth");
		must_put("/proc/thread-self/fail-nth", "0");
		injected = nth_left == 0;
	} else if (how == ARM_TASK) {
		must_put("/proc/thread-self/make-it-fail", "0");
	}
	alarm(0);
	trace_collect();
	if (how == ARM_TASK)
		injected = nr_pending > 0;	/* only known with tracing */
	collapses++;
	by_errno[ret < 0 ? (-ret < 134 ? -ret : 133) : 0]++;

	if (ret >= 0 && (size_t)ret != strlen(in->cmd))
		fail("%s: \"%s\" returned %zd, not the command's length", in->sc->name, in->cmd,
		     ret);
	else if (ret < 0 && !documented_errno(-ret))
		fail("%s: \"%s\" failed with %s, not a collapse errno of the ABI", in->sc->name,
		     in->cmd, errname(ret));
	next = -1;
	if (rn > 0)
		next = krs_report_parse(report, ext, MAX_EXTENTS, &status);
	if (rn < 0) {
		fail("%s: reading the report: %s", in->sc->name, strerror(-rn));
	} else if (!rn) {
		empty_reports++;
		fail("%s: \"%s\" (%s) left an empty report", in->sc->name, in->cmd, errname(ret));
	} else if (next < 0 || status != ret) {
		fail("%s: report of \"%s\" (%zd) malformed or wrong:\n%s", in->sc->name, in->cmd,
		     ret, report);
		next = -1;
	} else if (next == 0 && in->sc->extents) {
		status_only_reports++;
	}
	snprintf(outcome, sizeof(outcome), "%s", errname(ret));
	for (int i = 0; i < next && i < MAX_EXTENTS; i++) {
		int k = result_index(ext[i].result);

		if (k >= 0)
			by_result[k]++;
		/*
		 * The holes filled (the ABI: 0 unless the collapse was
		 * committed), whatever came after: SCAN_SUCCEED,
		 * SCAN_PTE_MAPPED_HUGEPAGE, or the PMD installation's own
		 * failure (SCAN_PAGE_NULL: in the busy kernel the memcg
		 * swapped the new huge folio out before it could be mapped).
		 */
		holes += ext[i].holes;
		/* A regular file has no holes: what is missing is read in. */
		if (in->sc->dir && ext[i].holes)
			fail("%s: \"%s\": extent %d of a regular file filled %u holes",
			     in->sc->name, in->cmd, i, ext[i].holes);
		else if (k != 3 /* SCAN_PMD_MAPPED */ && !strcmp(outcome, errname(ret)))
			snprintf(outcome, sizeof(outcome), "%s %s", errname(ret),
				 ext[i].result + 5);
	}
	/*
	 * A one-extent write that failed with no extent in its report: the
	 * allocation that failed may have been the module's record of the
	 * extent it had already collapsed (then mapped by a PMD).
	 */
	if (ret < 0 && next == 0 && in->sc->extents == 1 && in->sc->target != T_FD &&
	    krs_smaps_kb(0, (unsigned long)in->map[0], pmd_field(in)) > 0) {
		snprintf(outcome + strlen(outcome), sizeof(outcome) - strlen(outcome),
			 " (collapsed, unreported)");
		collapsed_unreported++;
	}
	for (unsigned int i = 0; i < nr_pending; i++)
		site_outcome(pending_sites[i], outcome);
	if (verbose)
		printf("#   %s n=%u: %s%s\n", in->sc->name, n, outcome,
		       injected ? "" : " (nothing injected)");

	/*
	 * st_blocks grows by the holes of the extents collapsed now (8 sectors
	 * a page) and by nothing else: a rollback undoes shmem_charge(). Only
	 * when the report lists every extent. A regular file is written in
	 * full before the collapse, which allocates no block: its st_blocks
	 * and st_size stay as they were, whatever the report says.
	 */
	if (fstat(in->fd, &st1)) {
		fail("fstat: %s", strerror(errno));
	} else if (in->sc->dir) {
		blocks_checked++;
		if (st1.st_blocks != st0.st_blocks || st1.st_size != st0.st_size)
			fail("%s: \"%s\" ended %s, but st_blocks %lld -> %lld, %s %lld -> %lld",
			     in->sc->name, in->cmd, outcome, (long long)st0.st_blocks,
			     (long long)st1.st_blocks, "st_size", (long long)st0.st_size,
			     (long long)st1.st_size);
	} else if (next == (int)in->sc->extents) {
		blocks_checked++;
		if (st1.st_blocks - st0.st_blocks != (blkcnt_t)(holes * (PAGE / 512)))
			fail("%s: \"%s\" ended %s with %u holes filled, but st_blocks %lld -> %lld",
			     in->sc->name, in->cmd, outcome, holes,
			     (long long)st0.st_blocks, (long long)st1.st_blocks);
	}
	verify(in, "after the injected collapse");

	/*
	 * Clean: the same collapse without injection must succeed. On a
	 * regular file, a folio just read in (by verify()) may still sit in a
	 * per-CPU LRU batch or under its read, a transient EAGAIN: after
	 * krs_collapse_cmd()'s own tries, up to CLEAN_ROUNDS rounds of them.
	 * In the busy kernel the actors stand still first (hold_actors()).
	 */
	held = hold_actors(in, false);
	alarm(ITER_TIMEOUT);
	for (int round = 1; held >= 0; round++) {
		ret = krs_collapse_cmd(cfd, in->cmd);
		if (ret != -EAGAIN || !(in->sc->dir || busy) ||
		    round == (busy ? BUSY_CLEAN_ROUNDS : CLEAN_ROUNDS))
			break;
		clean_retried++;
		count_clean_again();
		usleep(200 * 1000);
	}
	alarm(0);
	recollapses++;
	if (held < 0) {
		/* hold_actors() said why. */
	} else if (ret < 0 || (size_t)ret != strlen(in->cmd)) {
		krs_collapse_report(cfd, report, sizeof(report));
		fail("%s: after \"%s\" ended %s, the clean collapse failed (%s):\n%s", in->sc->name,
		     in->cmd, outcome, errname(ret), report);
	} else if (in->sc->target != T_FD) {
		long kb = krs_smaps_kb(0, (unsigned long)in->map[0], pmd_field(in));

		if (kb < (long)(in->len >> 10))
			fail("%s: clean collapse succeeded but %s is %ld kB", in->sc->name,
			     pmd_field(in), kb);
	}
	release_actors(in);
	verify(in, "after the clean collapse");
	if (failures != bad_before)
		return -1;
	return injected ? 1 : 0;
}

/* ---- summaries ---------------------------------------------------------- */

static char stats0[STATS_SIZE], stats1[STATS_SIZE];

static void print_stats_delta(const char *prefix, const char *title)
{
	const char *line = stats1;
	unsigned long long total = 0;

	printf("# %s:\n", title);
	while (line && *line) {
		char name[64];
		long long v, d;

		if (sscanf(line, "%63s %lld", name, &v) == 2 &&
		    !strncmp(name, prefix, strlen(prefix))) {
			d = v - (krs_stat(stats0, name) > 0 ? krs_stat(stats0, name) : 0);
			if (d) {
				printf("#   %-40s %lld\n", name + strlen(prefix), d);
				total += d;
			}
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	printf("#   %-40s %llu\n", "total", total);
}

static void print_outcomes(void)
{
	printf("# collapse writes under injection: %lu\n", collapses);
	for (int e = 0; e < 134; e++)
		if (by_errno[e])
			printf("#   %-40s %lu\n", e ? errname(-e) : "ok (length)", by_errno[e]);
	printf("# extents by result (reports):\n");
	for (int k = 0; k < KRS_NR_SCAN_RESULTS; k++)
		if (by_result[k])
			printf("#   %-40s %lu\n", krs_scan_names[k], by_result[k]);
	printf("# reports with no extent line (out of memory recording or rendering them): %lu\n",
	       status_only_reports);
	printf("#   of which the extent was collapsed all the same: %lu\n", collapsed_unreported);
	printf("# st_blocks checked (shmem: the holes filled, complete reports; %s): %lu\n",
	       "regular files: unchanged", blocks_checked);
}

static void print_regular(void)
{
	printf("# regular-file pages not in the page cache before collapses: %llu; ",
	       uncached_total);
	printf("clean collapse rounds tried again after EAGAIN: %lu\n", clean_retried);
	for (int k = 0; k < KRS_NR_SCAN_RESULTS; k++)
		if (clean_again_by_result[k])
			printf("#   %-40s %lu\n", krs_scan_names[k], clean_again_by_result[k]);
	if (busy) {
		printf("# busy kernel (%s): clean collapses with the actors held: %lu; ",
		       krs_busy_actors(), busy_holds);
		printf("cold files set up with them held: %lu; %s %lu\n", busy_setup_holds,
		       "nth collapses cut short with nothing injected, made again:",
		       busy_nth_again);
	}
	if (busy_holds || busy_setup_holds)
		printf("# busy kernel: %s: %.1f s in all, %.1f s at most\n",
		       "waiting for the actors to stand still", busy_hold_wait_ms / 1000.0,
		       busy_hold_max_ms / 1000.0);
}

static void print_sites(const char *title)
{
	unsigned long total = 0;

	printf("# failures injected per site (%s; \"[krs]\" frames are the module's):\n", title);
	if (trace_fd < 0) {
		printf("#   (no tracing: per-attribute counts only)\n");
		return;
	}
	for (unsigned int i = 0; i < nr_sites; i++) {
		char outs[512] = "";
		size_t len = 0;

		for (int o = 0; o < MAX_OUTCOMES && sites[i].outcome[o][0]; o++)
			len += snprintf(outs + len, sizeof(outs) - len, "%s%s x%lu", o ? ", " : "",
					sites[i].outcome[o], sites[i].outcome_n[o]);
		printf("#   %6lu  %s%s\n", sites[i].total,
		       sites[i].n[ATTR_SLAB] && !sites[i].n[ATTR_PAGE] ? "slab: " :
		       sites[i].n[ATTR_PAGE] && !sites[i].n[ATTR_SLAB] ? "page: " : "",
		       sites[i].key);
		printf("#           -> %s\n", outs);
		total += sites[i].total;
	}
	printf("#   %6lu  total\n", total);
}

static void reset_counts(void)
{
	memset(by_errno, 0, sizeof(by_errno));
	memset(by_result, 0, sizeof(by_result));
	memset(sites, 0, sizeof(sites));
	nr_sites = 0;
	collapses = 0;
	status_only_reports = 0;
	empty_reports = 0;
	blocks_checked = 0;
	collapsed_unreported = 0;
	krs_stats_read(stats0, sizeof(stats0));
}

static void phase_summary(const char *name, const long long injected[NR_ATTRS], double t0)
{
	krs_stats_read(stats1, sizeof(stats1));
	printf("# ---- phase %s: %.0f s ----\n", name, now_s() - t0);
	for (int a = 0; a < NR_ATTRS; a++)
		printf("# failures injected by %-16s %lld (its \"times\" counter)\n", attr_name[a],
		       injected[a]);
	print_sites(name);
	print_outcomes();
	print_stats_delta("rollback_", "rollbacks by reason (stats)");
	print_stats_delta("SCAN_", "extent results (stats)");
}

/* ---- the phases --------------------------------------------------------- */

static void phase_nth(void)
{
	long long injected[NR_ATTRS];
	double t0 = now_s();

	reset_counts();
	for (int a = 0; a < NR_ATTRS; a++)
		attr_put(a, "times", "%lld", TIMES_BUDGET);
	printf("# ---- phase nth: fail the n-th allocation of each collapse, n = 1, 2, ... ----\n");
	for (size_t s = 0; s < NR_SCENARIOS; s++) {
		const struct scenario *sc = &scenarios[s];
		unsigned int n, injected = 0;
		struct inst in;
		int r = 0, again = 0;

		if (!selected(sc))
			continue;

		for (n = 1; n <= nth_max; n++) {
			if (build(&in, sc)) {
				teardown(&in);
				break;
			}
			r = run_one(&in, ARM_NTH, n);
			teardown(&in);
			if (!(n % 50))
				printf("#   %s: n = %u\n", sc->name, n);
			/*
			 * In the busy kernel a collapse that failed with
			 * nothing injected may have been cut short by an
			 * actor before its n-th allocation: the same n again.
			 */
			if (r == 0 && busy && last_write < 0 && again < BUSY_NTH_TRIES) {
				again++;
				busy_nth_again++;
				n--;
				continue;
			}
			again = 0;
			if (r == 0)
				break;
			if (r > 0)
				injected++;
		}
		if (n > nth_max)
			printf("# %-9s %s: still allocating at n = %u (--nth-max): %u %s\n",
			       sc->name, sc->what, nth_max, injected, "failures injected");
		else
			printf("# %-9s %s: %u allocations through the module, each failed once%s\n",
			       sc->name, sc->what, n - 1, r < 0 ? " (a check failed)" : "");
	}
	for (int a = 0; a < NR_ATTRS; a++)
		injected[a] = TIMES_BUDGET - attr_times(a);
	phase_summary("nth", injected, t0);
}

struct rate {
	const char *name;
	unsigned int probability;
	unsigned int interval;
	long long times;	/* per collapse; 0: unlimited */
	bool space;		/* a random budget before the first failure */
};

static const struct rate rates[] = {
	{ "probability=1", 1, 1, 0, false },
	{ "probability=5", 5, 1, 0, false },
	{ "probability=20", 20, 1, 0, false },
	{ "probability=50", 50, 1, 0, false },
	{ "probability=100", 100, 1, 0, false },
	{ "interval=3", 100, 3, 0, false },
	{ "interval=7", 100, 7, 0, false },
	{ "times=1 space=random", 100, 1, 1, true },
};

static void phase_rates(void)
{
	long long injected[NR_ATTRS] = { 0 };
	double t0 = now_s();
	size_t next = 0;

	reset_counts();
	printf("# ---- phase rates: task-filter + make-it-fail, %u collapses per setting ----\n",
	       rounds);
	for (size_t r = 0; r < ARRAY_SIZE(rates); r++) {
		const struct rate *rt = &rates[r];
		unsigned long hit = 0, before_collapses = collapses;
		long long spent = 0;

		for (int a = 0; a < NR_ATTRS; a++) {
			attr_put(a, "interval", "%u", rt->interval);
			attr_put(a, "probability", "%u", rt->probability);
		}
		for (unsigned int i = 0; i < rounds; i++) {
			const struct scenario *sc = &scenarios[next++ % NR_SCENARIOS];

			while (!selected(sc))
				sc = &scenarios[next++ % NR_SCENARIOS];
			long long t[NR_ATTRS], round = 0;
			struct inst in;

			for (int a = 0; a < NR_ATTRS; a++) {
				unsigned long long space = 0;

				t[a] = rt->times ? rt->times : TIMES_BUDGET;
				attr_put(a, "times", "%lld", t[a]);
				/* space counts bytes for slab, pages for page allocations */
				if (rt->space)
					space = rnd() % (a == ATTR_SLAB ? 65536 : 1024);
				attr_put(a, "space", "%llu", space);
			}
			if (!build(&in, sc))
				run_one(&in, ARM_TASK, 0);
			teardown(&in);
			for (int a = 0; a < NR_ATTRS; a++) {
				long long n = t[a] - attr_times(a);

				round += n;
				injected[a] += n;
				attr_put(a, "space", "0");
			}
			spent += round;
			hit += round > 0;
		}
		printf("# %-22s %lu collapses, %lu with a failure injected, %lld failures\n",
		       rt->name, collapses - before_collapses, hit, spent);
	}
	for (int a = 0; a < NR_ATTRS; a++) {
		attr_put(a, "probability", "0");
		attr_put(a, "interval", "1");
		attr_put(a, "times", "%lld", TIMES_BUDGET);
	}
	phase_summary("rates", injected, t0);
}

/* THP "enabled" before krs_thp_madvise() ("": unchanged). */
static char thp_prev[32];

static void thp_restore(void)
{
	krs_thp_restore(thp_prev);
}

static void on_alarm(int sig)
{
	static const char msg[] = "# FAIL a collapse or check took over 300 s\n";

	/* Nothing more to do if it cannot be written. */
	krs_ignore(write(1, msg, sizeof(msg) - 1));
	attrs_off();
	thp_restore();
	_exit(1);
}

/*
 * Mark the scenarios whose filesystem is not mounted (each skipped with a
 * message) and, if a regular-file scenario will run, set THP "enabled" to
 * "madvise" so that khugepaged leaves its files alone. The number of
 * scenarios left to run.
 */
static size_t prepare_scenarios(void)
{
	bool regular = false;
	size_t n = 0;

	for (size_t s = 0; s < NR_SCENARIOS; s++) {
		const struct scenario *sc = &scenarios[s];
		char type[64];

		if (!selected(sc))
			continue;
		if (sc->dir && !krs_mounted_type(sc->dir, type, sizeof(type))) {
			printf("# %-9s skipped: %s is not mounted\n", sc->name, sc->dir);
			unmounted[s] = true;
			continue;
		}
		regular |= !!sc->dir;
		n++;
	}
	if (regular && krs_thp_madvise(thp_prev, sizeof(thp_prev)))
		printf("# cannot set THP enabled to madvise: khugepaged may collapse files too\n");
	atexit(thp_restore);
	return n;
}

static void print_usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--phase nth|rates|all|clean] [--scenario NAME] [--nth-max N] [--rounds N]\n"
		"          [--seed S] [--anywhere] [--no-trace] [-v]\n",
		argv0);
	exit(2);
}

/*
 * The test's own memory (its static buffers, its heap so far, 128 KiB of
 * stack) locked in before any test file is mapped. The report is read with
 * fail-nth still armed, so that its rendering is injected too: a read()
 * into a buffer page the memcg actor swapped out (or that was never
 * touched) faults it in under injection, and the fault's allocation
 * failing is an EFAULT of the test's page, not the module's.
 */
static void lock_own_memory(void)
{
	char stack[128 << 10];

	/* Written, and kept written: the stack grows down over it first. */
	memset(stack, 0, sizeof(stack));
	__asm__ __volatile__("" : : "r"(stack) : "memory");
	if (mlockall(MCL_CURRENT))
		printf("# mlockall(MCL_CURRENT): %s (the test's pages may fault under injection)\n",
		       strerror(errno));
}

int main(int argc, char **argv)
{
	const char *phase = "all";
	uint64_t seed = (uint64_t)time(NULL) ^ getpid();
	double t0 = now_s();
	size_t nr_run;
	int ret;

	static const struct option opts[] = {
		{ "phase", required_argument, NULL, 'p' },
		{ "nth-max", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "no-trace", no_argument, NULL, 't' },
		{ "anywhere", no_argument, NULL, 'a' },
		{ "scenario", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	busy = krs_busy_actors();
	while ((opt = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			phase = optarg;
			break;
		case 'n':
			nth_max = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			rounds = strtoul(optarg, NULL, 0);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 't':
			use_trace = false;
			break;
		case 'a':
			anywhere = true;
			break;
		case 'c':
			only = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			print_usage(argv[0]);
		}
	}
	if (optind != argc)
		print_usage(argv[0]);
	for (size_t s = 0; only && s < NR_SCENARIOS && strcmp(only, scenarios[s].name); s++)
		if (s == NR_SCENARIOS - 1)
			print_usage(argv[0]);
	if (strcmp(phase, "nth") && strcmp(phase, "rates") && strcmp(phase, "all") &&
	    strcmp(phase, "clean"))
		print_usage(argv[0]);
	lock_own_memory();
	setvbuf(stdout, NULL, _IOLBF, 0);
	srandom(seed ^ seed >> 32);
	signal(SIGALRM, on_alarm);
	memset(report, 1, sizeof(report));	/* no page fault inside the report read */
	if (!krs_module_loaded()) {
		printf("# khugepaged_rs is not loaded\n");
		return 2;
	}
	cfd = krs_collapse_open();
	if (cfd < 0) {
		printf("# cannot open the collapse file: %s\n", strerror(-cfd));
		return 2;
	}
	nr_run = prepare_scenarios();
	if (!nr_run) {
		printf("# no scenario to run\n");
		return KSFT_SKIP;
	}
	if (!strcmp(phase, "clean")) {
		for (size_t s = 0; s < NR_SCENARIOS; s++) {
			struct inst in;

			if (!selected(&scenarios[s]))
				continue;
			if (!build(&in, &scenarios[s]))
				run_one(&in, ARM_NONE, 0);
			teardown(&in);
			printf("# %-9s %s: %s\n", scenarios[s].name, scenarios[s].what,
			       failures ? "FAILED" : "ok");
		}
		print_outcomes();
		print_regular();
		return failures ? 1 : 0;
	}
	if (access(DEBUGFS "failslab/probability", W_OK) ||
	    access(DEBUGFS "fail_page_alloc/require-start", W_OK) ||
	    access("/proc/thread-self/fail-nth", W_OK)) {
		printf("# this kernel lacks FAILSLAB, FAIL_PAGE_ALLOC, ");
		printf("FAULT_INJECTION_DEBUG_FS or FAULT_INJECTION_STACKTRACE_FILTER ");
		printf("(use the debug kernel)\n");
		return 2;
	}
	ret = find_module_text();
	if (ret) {
		printf("# cannot find the module's text in /proc/kallsyms: %s\n", strerror(-ret));
		return 2;
	}
	find_kmemleak_text();
	printf("# khugepaged_rs faults: seed %#llx, module text [%#lx, %#lx), phase %s\n",
	       (unsigned long long)seed, text_start, text_end, phase);
	if (reject_end)
		printf("# not failed: kmemleak's bookkeeping [%#lx, %#lx)\n", reject_start,
		       reject_end);
	attrs_base();
	if (use_trace) {
		ret = trace_setup();
		if (ret) {
			printf("# tracing unavailable (%s): failures per attribute only\n",
			       strerror(-ret));
			trace_teardown();
		}
	}
	if (!strcmp(phase, "nth") || !strcmp(phase, "all"))
		phase_nth();
	if (!strcmp(phase, "rates") || !strcmp(phase, "all"))
		phase_rates();
	attrs_off();
	trace_teardown();
	printf("# ---- summary: %.0f s ----\n", now_s() - t0);
	printf("# scenarios: %zu (of %zu); collapses checked with a clean collapse after: %lu\n",
	       nr_run, NR_SCENARIOS, recollapses);
	printf("# pages checked (pread and mappings): %llu; ", pages_checked);
	printf("pages swapped out before collapses: %llu\n", swapped_total);
	print_regular();
	if (failures) {
		printf("# FAILED: %d check(s) failed; first: %s\n", failures, first_failure);
		printf("# replay: khugepaged_rs_faults --phase %s --seed %#llx\n", phase,
		       (unsigned long long)seed);
		return 1;
	}
	printf("# PASSED: %s\n",
	       "every injected failure ended in a clean rollback or a documented errno");
	return 0;
}
