// SPDX-License-Identifier: GPL-2.0
/*
 * Random writes to every debugfs file of the module: random bytes, soups of
 * the grammar's tokens, and valid commands mutated (bit flips, spliced
 * tokens, deleted or duplicated spans, changed digits), plus writes from bad
 * user pointers and longer than a command may be. Every write must fail
 * with a clean errno or succeed with its full length, and garbage must
 * change nothing:
 *
 * - collapse: the test's own memfd mapping (two PTE-mapped 2 MiB extents)
 *   keeps its contents always, and its smaps (Rss, ShmemPmdMapped) and the
 *   stats' collapse counters unless the write succeeded or its report shows
 *   an extent collapsed (and never with dry_run); the report is well formed,
 *   its status is what write() returned, it shows no kernel address;
 * - inject: a failed write leaves the file as it was; `clear` disarms all
 *   (and is written at the end whatever happened);
 * - notifier: a refused command (EINVAL) keeps the registration; `stop` at
 *   the end;
 * - scan: a refused command changes no target; `clear` at the end;
 * - status, stats: not writable, unchanged.
 *
 * The runner catches kernel splats. KRS_FUZZ_SEED=<n> replays a run (the seed
 * is printed), KRS_FUZZ_ITERS=<n> sets the number of writes per file (default
 * 1000 for collapse and inject, a third of it for notifier, a tenth for the
 * read-only files: well under a minute in the TCG VM).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#define PAGE KRS_PAGE_SIZE
#define LEN (2 * KRS_PMD_SIZE)
#define NPAGES (LEN / PAGE)
#define RW (PROT_READ | PROT_WRITE)
#define MAX_WRITE 320		/* the module refuses more than 256 bytes */
#define STATS_SIZE 16384
#define TEXT_SIZE 8192
#define REPORT_SIZE 65536	/* 512 extent lines */

/* ---- random inputs ------------------------------------------------------ */

static struct krs_rng rng;

static uint64_t rnd(void)
{
	return krs_rand(&rng);
}

static size_t below(size_t n)
{
	return krs_below(&rng, n);
}

static bool chance(unsigned int percent)
{
	return krs_chance(&rng, percent);
}

/* The run's seed (KRS_FUZZ_SEED or the clock), mixed with @salt per test. */
static uint64_t seed_for(const char *what, unsigned int salt)
{
	static uint64_t base;
	const char *env = getenv("KRS_FUZZ_SEED");

	if (!base) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		base = env ? strtoull(env, NULL, 0) : (uint64_t)t.tv_sec * 1000003 ^ t.tv_nsec;
		if (!base)
			base = 1;
	}
	ksft_print_msg("%s: KRS_FUZZ_SEED=%#llx\n", what, (unsigned long long)base);
	rng.s = base * 0x9e3779b97f4a7c15ULL + salt;
	return base;
}

static unsigned int iterations(unsigned int divisor)
{
	const char *env = getenv("KRS_FUZZ_ITERS");
	unsigned long n = env ? strtoul(env, NULL, 0) : 1000;

	n /= divisor;
	return n ? n : 1;
}

static const char *const collapse_words[] = {
	"addr=", "len=", "pid=", "fd=", "offset=", "dry_run", "0x", "0X", "K", "M", "G", "k",
	"m", "g", " ", "\t", "\n", "=", "-", "+", "200000", "7fffffe00000", "ffffffffffffffff",
	"18446744073709551616", "2147483647", "2147483648", "1G", "2M", "4096", "0", "1",
};

static const char *const inject_words[] = {
	"pause=", "delay=", "fail=", "release", "clear", "pid=", "ino=", "count=", "ms=",
	"timeout_ms=", "scan_index", "before_copy", "before_recheck", "before_store",
	"retract_vma", "before_install", "after_scan", "alloc", "charge", "copy_mc", "xas_nomem",
	"shmem_charge", " ", "\t", "\n", "=", "+", "-", "0", "1", "10000", "60001", "1000000",
	"2147483648", "18446744073709551616",
};

static const char *const notifier_words[] = {
	"pid=", "stop", "clear", "start", " ", "\n", "\t", "=", "-", "+", "0", "1",
	"2147483647", "2147483648", "4294967297",
};

static const char *const scan_words[] = {
	"add", "remove", "clear", "wake", "set", "pid=", "fd=", "pages_to_scan=",
	"scan_sleep_millisecs=", "alloc_sleep_millisecs=", "default", " ", "\n", "\t", "=",
	"-", "0", "1", "2147483648", "4294967296",
};

/* What a template's %A (hex address), %P, %Q (pids), %F (fd), %S (string), %I (inode) stand for. */
struct values {
	unsigned long addr;
	int pid, other_pid, fd;
	const char *str;
	unsigned long ino;
};

static size_t expand(char *buf, size_t size, const char *tmpl, const struct values *v)
{
	size_t len = 0;

	for (const char *t = tmpl; *t && len + 32 < size; t++) {
		if (*t != '%' || !t[1]) {
			buf[len++] = *t;
			continue;
		}
		switch (*++t) {
		case 'A':
			len += snprintf(buf + len, size - len, "%lx", v->addr);
			break;
		case 'P':
			len += snprintf(buf + len, size - len, "%d", v->pid);
			break;
		case 'Q':
			len += snprintf(buf + len, size - len, "%d", v->other_pid);
			break;
		case 'F':
			len += snprintf(buf + len, size - len, "%d", v->fd);
			break;
		case 'S':
			len += snprintf(buf + len, size - len, "%.20s", v->str);
			break;
		case 'I':
			len += snprintf(buf + len, size - len, "%lu", v->ino);
			break;
		default:
			buf[len++] = *t;
			break;
		}
	}
	buf[len] = '\0';
	return len;
}

static size_t gen_random(char *buf)
{
	size_t len = chance(10) ? 256 + below(2) : below(MAX_WRITE);
	bool text = chance(50);

	for (size_t i = 0; i < len; i++)
		buf[i] = text ? (char)(0x20 + below(0x5f)) : (char)rnd();
	return len;
}

/* Insert @word at @at of @buf holding @len bytes; the new length. */
static size_t insert(char *buf, size_t len, size_t at, const char *word)
{
	size_t wl = strlen(word);

	if (len + wl > MAX_WRITE)
		return len;
	memmove(buf + at + wl, buf + at, len - at);
	memcpy(buf + at, word, wl);
	return len + wl;
}

static size_t gen_soup(char *buf, const char *const *words, size_t nwords)
{
	size_t len = 0, n = 1 + below(8);

	for (size_t i = 0; i < n; i++) {
		len = insert(buf, len, len, words[below(nwords)]);
		if (chance(30)) {
			char num[24];

			snprintf(num, sizeof(num), "%llx",
				 (unsigned long long)(rnd() >> below(64)));
			len = insert(buf, len, len, num);
		}
	}
	return len;
}

static const char *const blanks[] = { " ", "\n", "\t", "\v", "\r" };

static size_t mutate(char *buf, size_t len, const char *const *words, size_t nwords)
{
	size_t n = 1 + below(3);

	for (size_t i = 0; i < n; i++) {
		size_t at = below(len + 1), span = 1 + below(8);

		switch (below(8)) {
		case 0:		/* flip a bit */
			if (len)
				buf[below(len)] ^= 1 << below(8);
			break;
		case 1:		/* any byte */
			if (len)
				buf[below(len)] = (char)rnd();
			break;
		case 2:		/* a token of the grammar */
			len = insert(buf, len, at, words[below(nwords)]);
			break;
		case 3:		/* delete a span */
			if (at + span > len)
				span = len - at;
			memmove(buf + at, buf + at + span, len - at - span);
			len -= span;
			break;
		case 4:		/* duplicate a span */
			if (at + span > len)
				span = len - at;
			if (span && len + span <= MAX_WRITE) {
				memmove(buf + at + span, buf + at, len - at);
				len += span;
			}
			break;
		case 5:		/* another digit */
			for (size_t j = 0; j < len; j++) {
				size_t k = (at + j) % len;

				if (buf[k] >= '0' && buf[k] <= '9') {
					buf[k] = '0' + below(10);
					break;
				}
			}
			break;
		case 6:		/* cut */
			len = at;
			break;
		default:	/* whitespace or NUL */
			len = insert(buf, len, at, blanks[below(5)]);
			if (chance(20) && len < MAX_WRITE)
				buf[len++] = '\0';
			break;
		}
	}
	return len;
}

/* ASCII whitespace as the module's parsers see it (not \v). */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* The whitespace-separated token @tok is in @buf. */
static bool has_token(const char *buf, size_t len, const char *tok)
{
	size_t tl = strlen(tok);

	for (size_t i = 0; i + tl <= len; i++) {
		if ((i == 0 || is_space(buf[i - 1])) && !memcmp(buf + i, tok, tl) &&
		    (i + tl == len || is_space(buf[i + tl])))
			return true;
	}
	return false;
}

static bool errno_in(int err, const int *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (err == set[i])
			return true;
	return false;
}

/*
 * One write of @len bytes of @buf through @fd: from a bad pointer or a
 * buffer running into an inaccessible page now and then. Returns the
 * result or -errno; *@bad says the user buffer was bad (-EFAULT expected).
 */
static ssize_t fuzz_write(int fd, const char *buf, size_t len, char *guard, bool *bad)
{
	ssize_t n;

	*bad = false;
	if (len && chance(2)) {
		*bad = true;
		n = write(fd, chance(50) ? (const void *)16 : (const void *)(guard + PAGE), len);
	} else if (len > 1 && len <= PAGE && chance(2)) {
		/* The tail of the command in the PROT_NONE page after @guard. */
		size_t head = below(len - 1) + 1;

		*bad = true;
		memcpy(guard + PAGE - head, buf, head);
		n = write(fd, guard + PAGE - head, len);
	} else {
		n = write(fd, buf, len);
	}
	return n < 0 ? -errno : n;
}

/* A page followed by a PROT_NONE page. */
static char *guard_page(void)
{
	char *p = mmap(NULL, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p + PAGE, PAGE, PROT_NONE)) {
		munmap(p, 2 * PAGE);
		return NULL;
	}
	return p;
}

/* ---- collapse ----------------------------------------------------------- */

FIXTURE(collapse) {
	int cfd;
	int memfd;
	char *p;
	unsigned int seed;	/* pattern of the current memfd */
	char *guard;
	char report[REPORT_SIZE];
	char stats[2][STATS_SIZE];
	struct krs_extent ext[8];
};

/* A fresh memfd, both extents PTE-mapped and written with pattern @seed. */
static int make_target(struct _test_data_collapse *self)
{
	if (self->p != MAP_FAILED)
		munmap(self->p, LEN);
	if (self->memfd >= 0)
		close(self->memfd);
	self->seed++;
	self->memfd = krs_memfd("krs_fuzz", LEN);
	if (self->memfd < 0)
		return self->memfd;
	self->p = krs_map_aligned(LEN, RW, MAP_SHARED, self->memfd, 0);
	if (self->p == MAP_FAILED)
		return -errno;
	for (size_t i = 0; i < NPAGES; i++)
		krs_fill_page(self->p + i * PAGE, self->seed, i);
	return 0;
}

FIXTURE_SETUP(collapse)
{
	int ret;

	self->cfd = -1;
	self->memfd = -1;
	self->p = MAP_FAILED;
	self->guard = NULL;
	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	/* Nothing armed by an earlier test may pause or fail our writes. */
	ASSERT_EQ(0, krs_inject("clear"));
	self->cfd = krs_collapse_open();
	ASSERT_LE(0, self->cfd) TH_LOG("open %s: %s", KRS_COLLAPSE, strerror(-self->cfd));
	self->guard = guard_page();
	ASSERT_NE(NULL, self->guard);
	self->seed = 1000;
	ret = make_target(self);
	ASSERT_EQ(0, ret) TH_LOG("memfd mapping: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(collapse)
{
	if (self->p != MAP_FAILED)
		munmap(self->p, LEN);
	if (self->memfd >= 0)
		close(self->memfd);
	if (self->cfd >= 0)
		close(self->cfd);
	if (self->guard)
		munmap(self->guard, 2 * PAGE);
}

/* Rss and ShmemPmdMapped (kB) of the VMA at @addr, from one read of smaps. */
static void smaps_pair(unsigned long addr, long *rss, long *pmd)
{
	*rss = krs_smaps_kb(0, addr, "Rss");
	*pmd = krs_smaps_kb(0, addr, "ShmemPmdMapped");
}

/* Page @i through the mapping and through pread(): 0 if both hold the pattern. */
static int check_page(struct _test_data_collapse *self, size_t i)
{
	if (krs_check_page(self->p + i * PAGE, self->seed, i))
		return 1;
	return krs_pread_check(self->memfd, self->seed, i) ? 2 : 0;
}

TEST_F_TIMEOUT(collapse, random_writes, 600)
{
	static const int clean[] = { EINVAL, ERANGE, EBADF, ESRCH, EACCES, EPERM, ENOMEM, EBUSY,
				     EAGAIN };
	static const char *const templates[] = {
		"addr=%A len=2M", "addr=0x%A len=4M", "addr=%A len=4M dry_run",
		"pid=%P addr=%A len=2M", "fd=%F len=4M", "fd=%F offset=2M len=2M",
		"fd=%F len=2M dry_run", "len=0x400000 addr=0X%A pid=%P", "addr=%A len=1G",
		"addr=%A len=4096", "fd=%F offset=0x200000 len=4M dry_run", "pid=%Q addr=%A len=2M",
	};
	unsigned int n = iterations(1), ok = 0, refused = 0, faults = 0, collapsed = 0;
	unsigned int by_errno[256] = { 0 };
	char buf[MAX_WRITE + 64];
	static char prev_report[REPORT_SIZE];
	uint64_t seed = seed_for("collapse", 1);

	prev_report[0] = '\0';
	for (unsigned int it = 0; it < n; it++) {
		unsigned long a = (unsigned long)self->p;
		long rss0, pmd0, rss1, pmd1, status = 0;
		size_t len;
		ssize_t ret;
		bool bad, dry, changed_ok;
		int nr, kind = below(10);

		if (kind < 3) {
			len = gen_random(buf);
		} else if (kind < 5) {
			len = gen_soup(buf, collapse_words, ARRAY_SIZE(collapse_words));
		} else {
			struct values v = {
				.addr = a, .pid = getpid(), .other_pid = 0x7ffffff0,
				.fd = self->memfd,
			};

			len = expand(buf, sizeof(buf), templates[below(ARRAY_SIZE(templates))],
				     &v);
			if (kind < 9)
				len = mutate(buf, len, collapse_words, ARRAY_SIZE(collapse_words));
		}
		dry = has_token(buf, len, "dry_run");
		smaps_pair(a, &rss0, &pmd0);
		ASSERT_LT(0, krs_stats_read(self->stats[0], STATS_SIZE));

		ret = fuzz_write(self->cfd, buf, len, self->guard, &bad);
		if (ret < 0) {
			refused++;
			by_errno[-ret & 255]++;
			/* One of the three, each with its errno. */
			if (bad && len <= 256)
				ASSERT_EQ(-EFAULT, ret)
					TH_LOG("seed %#llx iteration %u: bad buffer",
					       (unsigned long long)seed, it);
			if (len > 256)
				ASSERT_EQ(-EINVAL, ret) TH_LOG("%zu bytes", len);
			ASSERT_TRUE(bad || len > 256 || errno_in(-ret, clean, ARRAY_SIZE(clean)))
				TH_LOG("seed %#llx iteration %u: %s for \"%.*s\"",
				       (unsigned long long)seed, it, strerror(-ret), (int)len, buf);
		} else {
			ok++;
			ASSERT_EQ((ssize_t)len, ret)
				TH_LOG("a write that succeeds takes all its bytes");
			ASSERT_FALSE(bad);
		}

		/* The report: well formed, its status what write() returned. */
		ASSERT_LE(0, krs_collapse_report(self->cfd, self->report, sizeof(self->report)));
		ASSERT_FALSE(krs_has_kernel_pointer(self->report)) TH_LOG("%s", self->report);
		if (ret == -EFAULT || len > 256) {
			/* Refused before the request ran: the last report stays. */
			faults++;
			ASSERT_STREQ(prev_report, self->report);
		} else {
			nr = krs_report_parse(self->report, self->ext, 8, &status);
			ASSERT_LE(0, nr) TH_LOG("malformed report for \"%.*s\":\n%s",
						(int)len, buf, self->report);
			ASSERT_EQ(ret, status) TH_LOG("report:\n%s", self->report);
		}
		snprintf(prev_report, sizeof(prev_report), "%s", self->report);

		changed_ok = !dry && (ret >= 0 || strstr(self->report, "result=SCAN_SUCCEED"));
		smaps_pair(a, &rss1, &pmd1);
		ASSERT_LT(0, krs_stats_read(self->stats[1], STATS_SIZE));
		if (!changed_ok) {
			ASSERT_EQ(rss0, rss1)
				TH_LOG("seed %#llx iteration %u: %s moved on \"%.*s\" (%zd)",
				       (unsigned long long)seed, it, "Rss", (int)len, buf, ret);
			ASSERT_EQ(pmd0, pmd1)
				TH_LOG("seed %#llx iteration %u: %s moved on \"%.*s\" (%zd)",
				       (unsigned long long)seed, it, "ShmemPmdMapped", (int)len,
				       buf, ret);
			ASSERT_EQ(krs_stat(self->stats[0], "extents_collapsed"),
				  krs_stat(self->stats[1], "extents_collapsed"))
				TH_LOG("seed %#llx iteration %u: collapsed on \"%.*s\" (%zd)",
				       (unsigned long long)seed, it, (int)len, buf, ret);
			ASSERT_EQ(krs_stat(self->stats[0], "vmas_retracted"),
				  krs_stat(self->stats[1], "vmas_retracted"));
		}

		/* Contents never change: a few pages now, all of them now and then. */
		for (int k = 0; k < 4; k++) {
			size_t i = k == 0 ? 0 : k == 1 ? NPAGES - 1 : below(NPAGES);

			int bad_page = check_page(self, i);

			ASSERT_EQ(0, bad_page) TH_LOG("seed %#llx iteration %u: page %zu",
						      (unsigned long long)seed, it, i);
		}
		if (it % 128 == 127 || it == n - 1) {
			for (size_t i = 0; i < NPAGES; i++) {
				int bad_page = check_page(self, i);

				ASSERT_EQ(0, bad_page) TH_LOG("page %zu", i);
			}
		}
		if (krs_stat(self->stats[0], "extents_collapsed") !=
		    krs_stat(self->stats[1], "extents_collapsed")) {
			/* Back to small pages so that later commands have work to do. */
			collapsed++;
			for (size_t i = 0; i < NPAGES; i++) {
				int bad_page = check_page(self, i);

				ASSERT_EQ(0, bad_page) TH_LOG("after a collapse: page %zu", i);
			}
			ASSERT_EQ(0, make_target(self));
		}
	}
	ksft_print_msg("collapse: %u writes: %u succeeded (%u collapsed), %u refused ",
		       n, ok, collapsed, refused);
	printf("(%u before parsing; EINVAL %u, ERANGE %u, EBADF %u, ENOMEM %u, EFAULT %u)\n",
	       faults, by_errno[EINVAL], by_errno[ERANGE], by_errno[EBADF], by_errno[ENOMEM],
	       by_errno[EFAULT]);
}

/* ---- inject, notifier, status, stats ------------------------------------ */

FIXTURE(files) {
	char *guard;
	char before[TEXT_SIZE];
	char after[TEXT_SIZE];
};

FIXTURE_SETUP(files)
{
	int ret;

	self->guard = NULL;
	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	self->guard = guard_page();
	ASSERT_NE(NULL, self->guard);
}

FIXTURE_TEARDOWN(files)
{
	/*
	 * Whatever happened, leave nothing armed, no notifier registered, no
	 * scanner target, and the scanner on khugepaged's knobs.
	 */
	krs_inject("clear");
	krs_notifier("stop");
	krs_write_str(KRS_DEBUGFS "/scan", "clear");
	krs_write_str(KRS_DEBUGFS "/scan", "set pages_to_scan=default");
	krs_write_str(KRS_DEBUGFS "/scan", "set scan_sleep_millisecs=default");
	krs_write_str(KRS_DEBUGFS "/scan", "set alloc_sleep_millisecs=default");
	if (self->guard)
		munmap(self->guard, 2 * PAGE);
}

/* Lines of inject with armed=1 (or a waiter), -1 if unreadable. */
static int inject_armed(char *buf, size_t size)
{
	int n = 0;

	if (krs_read_file(KRS_INJECT, buf, size) < 0)
		return -1;
	for (char *l = buf; (l = strstr(l, " armed=")); l++)
		n += l[7] != '0';
	for (char *l = buf; (l = strstr(l, " waiting=")); l++)
		n += l[9] != '0';
	return n;
}

TEST_F_TIMEOUT(files, inject, 600)
{
	static const int clean[] = { EINVAL, ERANGE };
	static const char *const points[] = {
		"scan_index", "before_copy", "before_recheck", "before_store", "retract_vma",
		"before_install", "after_scan", "alloc", "charge", "copy_mc", "xas_nomem",
		"shmem_charge",
	};
	/*
	 * Scoped to pid 1 (the VM's init, which never collapses), a pid no
	 * process has, or an inode no file is likely to have, and cleared at
	 * the end: a pause can hold up nobody.
	 */
	static const char *const templates[] = {
		"pause=%S pid=1", "pause=%S pid=%Q timeout_ms=100 count=3",
		"delay=%S ms=1 pid=1", "delay=%S ms=5 ino=%I count=7", "fail=%S pid=%Q",
		"fail=%S ino=%I count=1000000", "release", "release %S", "clear",
	};
	unsigned int n = iterations(1), ok = 0, refused = 0, clears = 0;
	char buf[MAX_WRITE + 64];
	uint64_t seed = seed_for("inject", 2);
	int fd, armed;

	ASSERT_EQ(0, krs_inject("clear"));
	ASSERT_EQ(0, inject_armed(self->before, TEXT_SIZE)) TH_LOG("%s", self->before);
	fd = open(KRS_INJECT, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	for (unsigned int it = 0; it < n; it++) {
		size_t len;
		ssize_t ret;
		bool bad;
		int kind = below(10);

		if (kind < 3) {
			len = gen_random(buf);
		} else if (kind < 5) {
			len = gen_soup(buf, inject_words, ARRAY_SIZE(inject_words));
		} else {
			struct values v = {
				.other_pid = 0x7ffffff0, .str = points[below(ARRAY_SIZE(points))],
				.ino = 0xfffffffffff0UL + below(8),
			};

			len = expand(buf, sizeof(buf), templates[below(ARRAY_SIZE(templates))],
				     &v);
			if (kind < 9)
				len = mutate(buf, len, inject_words, ARRAY_SIZE(inject_words));
		}
		ASSERT_LE(0, krs_read_file(KRS_INJECT, self->before, TEXT_SIZE));
		ret = fuzz_write(fd, buf, len, self->guard, &bad);
		ASSERT_LE(0, krs_read_file(KRS_INJECT, self->after, TEXT_SIZE));
		if (ret < 0) {
			refused++;
			/* A bad buffer faults; anything else gets a clean errno. */
			if (bad && len <= 256)
				ASSERT_EQ(-EFAULT, ret);
			ASSERT_TRUE((bad && len <= 256) || errno_in(-ret, clean, 2))
				TH_LOG("seed %#llx iteration %u: %s for \"%.*s\"",
				       (unsigned long long)seed, it, strerror(-ret), (int)len, buf);
			ASSERT_STREQ(self->before, self->after)
				TH_LOG("seed %#llx iteration %u: refused \"%.*s\" changed inject",
				       (unsigned long long)seed, it, (int)len, buf);
			continue;
		}
		ok++;
		ASSERT_EQ((ssize_t)len, ret);
		ASSERT_FALSE(bad);
		if (has_token(buf, len, "clear") || chance(30)) {
			if (!has_token(buf, len, "clear"))
				ASSERT_EQ(0, krs_inject("clear"));
			clears++;
			armed = inject_armed(self->after, TEXT_SIZE);
			ASSERT_EQ(0, armed)
				TH_LOG("seed %#llx iteration %u: armed after clear (\"%.*s\"):\n%s",
				       (unsigned long long)seed, it, (int)len, buf, self->after);
		}
	}
	close(fd);
	ASSERT_EQ(0, krs_inject("clear"));
	ASSERT_EQ(0, inject_armed(self->after, TEXT_SIZE)) TH_LOG("%s", self->after);
	ksft_print_msg("inject: %u writes: %u succeeded, %u refused, %u clears checked\n",
		       n, ok, refused, clears);
}

/* The pid= of the notifier's first line; -1 if unreadable. */
static long notifier_pid(char *buf, size_t size)
{
	long pid;

	if (krs_notifier_read(buf, size) < 0 || sscanf(buf, "pid=%ld ", &pid) != 1)
		return -1;
	return pid;
}

TEST_F_TIMEOUT(files, notifier, 600)
{
	static const int clean[] = { EINVAL, ESRCH, EACCES, EPERM, ENOMEM, EINTR };
	static const char *const templates[] = {
		"pid=%P", "pid=%P\n", " stop ", "clear", "stop", "pid=1", "pid=%Q",
	};
	unsigned int n = iterations(3), ok = 0, refused = 0;
	char buf[MAX_WRITE + 64];
	uint64_t seed = seed_for("notifier", 3);
	int fd;

	fd = open(KRS_NOTIFIER, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	for (unsigned int it = 0; it < n; it++) {
		long pid0, pid1;
		size_t len;
		ssize_t ret;
		bool bad;
		int kind = below(10);

		if (kind < 3) {
			len = gen_random(buf);
		} else if (kind < 5) {
			len = gen_soup(buf, notifier_words, ARRAY_SIZE(notifier_words));
		} else {
			struct values v = { .pid = getpid(), .other_pid = 0x7ffffff0 };

			len = expand(buf, sizeof(buf), templates[below(ARRAY_SIZE(templates))], &v);
			if (kind < 9)
				len = mutate(buf, len, notifier_words, ARRAY_SIZE(notifier_words));
		}
		pid0 = notifier_pid(self->before, TEXT_SIZE);
		ASSERT_LE(0, pid0);
		ret = fuzz_write(fd, buf, len, self->guard, &bad);
		pid1 = notifier_pid(self->after, TEXT_SIZE);
		ASSERT_LE(0, pid1);
		if (ret >= 0) {
			ok++;
			ASSERT_EQ((ssize_t)len, ret);
			ASSERT_FALSE(bad);
			continue;
		}
		refused++;
		if (bad && len <= 256) {
			ASSERT_EQ(-EFAULT, ret);
		} else {
			ASSERT_TRUE(errno_in(-ret, clean, ARRAY_SIZE(clean)))
				TH_LOG("seed %#llx iteration %u: %s for \"%.*s\"",
				       (unsigned long long)seed, it, strerror(-ret), (int)len, buf);
		}
		/*
		 * Refused before anything was done: a well-formed pid= of a
		 * process that cannot be had (ESRCH, EACCES, EPERM) is checked
		 * before the previous registration is replaced.
		 */
		if (ret < 0) {
			ASSERT_EQ(pid0, pid1) TH_LOG("seed %#llx iteration %u: \"%.*s\" (%s)",
						     (unsigned long long)seed, it, (int)len, buf,
						     strerror(-ret));
		}
	}
	close(fd);
	ASSERT_EQ(0, krs_notifier("stop"));
	ASSERT_EQ(0, notifier_pid(self->after, TEXT_SIZE));
	ksft_print_msg("notifier: %u writes: %u succeeded, %u refused\n", n, ok, refused);
}

#define KRS_SCAN KRS_DEBUGFS "/scan"

/*
 * The scanner's targets in @buf (scan, reopened): the "targets" line and
 * every "target id=... pid=|ino=..." up to the counters, which move.
 */
static int scan_targets(char *buf, size_t size)
{
	char *end;

	if (krs_read_file(KRS_SCAN, buf, size) < 0)
		return -1;
	end = strstr(buf, "passes ");
	if (end)
		*end = '\0';
	for (char *l = buf; (l = strstr(l, " extents=")); ) {
		char *nl = strchr(l, '\n');

		if (!nl)
			break;
		memmove(l, nl, strlen(nl) + 1);
		l++;
	}
	return 0;
}

/*
 * scan: a refused write (EINVAL, ERANGE, or add pid='s and add fd='s
 * errnos, ENOENT for a remove) changes no target. The targets are this
 * process and its memfd, which the scanner leaves alone (no MADV_HUGEPAGE
 * and shmem_enabled as the VM boots: not khugepaged's), a pid no process
 * has, and pid 1; everything is cleared, and the knobs are khugepaged's
 * again, at the end.
 */
TEST_F_TIMEOUT(files, scan, 600)
{
	static const int clean[] = { EINVAL, ERANGE, ESRCH, EACCES, EPERM, EBADF, ENOENT };
	static const char *const templates[] = {
		"add pid=%P", "add pid=%Q", "remove pid=%P", "add fd=%F", "remove fd=%F",
		"clear", "wake", "set scan_sleep_millisecs=50 pages_to_scan=512",
		"set pages_to_scan=default alloc_sleep_millisecs=10", "add pid=1",
	};
	unsigned int n = iterations(3), ok = 0, refused = 0;
	char buf[MAX_WRITE + 64];
	uint64_t seed = seed_for("scan", 5);
	int fd, mfd;

	if (access(KRS_SCAN, W_OK))
		SKIP(return, "no %s", KRS_SCAN);
	mfd = krs_memfd("krs_fuzz_scan", KRS_PMD_SIZE);
	ASSERT_LE(0, mfd);
	fd = open(KRS_SCAN, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	for (unsigned int it = 0; it < n; it++) {
		size_t len;
		ssize_t ret;
		bool bad;
		int kind = below(10);

		if (kind < 3) {
			len = gen_random(buf);
		} else if (kind < 5) {
			len = gen_soup(buf, scan_words, ARRAY_SIZE(scan_words));
		} else {
			struct values v = { .pid = getpid(), .other_pid = 0x7ffffff0, .fd = mfd };

			len = expand(buf, sizeof(buf), templates[below(ARRAY_SIZE(templates))], &v);
			if (kind < 9)
				len = mutate(buf, len, scan_words, ARRAY_SIZE(scan_words));
		}
		ASSERT_EQ(0, scan_targets(self->before, TEXT_SIZE));
		ret = fuzz_write(fd, buf, len, self->guard, &bad);
		ASSERT_EQ(0, scan_targets(self->after, TEXT_SIZE));
		if (ret >= 0) {
			ok++;
			ASSERT_EQ((ssize_t)len, ret);
			ASSERT_FALSE(bad);
			continue;
		}
		refused++;
		if (bad && len <= 256) {
			ASSERT_EQ(-EFAULT, ret);
		} else {
			ASSERT_TRUE(errno_in(-ret, clean, ARRAY_SIZE(clean)))
				TH_LOG("seed %#llx iteration %u: %s for \"%.*s\"",
				       (unsigned long long)seed, it, strerror(-ret), (int)len, buf);
		}
		ASSERT_STREQ(self->before, self->after)
			TH_LOG("seed %#llx iteration %u: refused \"%.*s\" changed the targets",
			       (unsigned long long)seed, it, (int)len, buf);
	}
	ASSERT_EQ((ssize_t)strlen("clear"), write(fd, "clear", strlen("clear")));
	ASSERT_EQ(0, scan_targets(self->after, TEXT_SIZE));
	EXPECT_STREQ("targets 0\n", self->after);
	close(fd);
	close(mfd);
	ksft_print_msg("scan: %u writes: %u succeeded, %u refused\n", n, ok, refused);
}

TEST_F_TIMEOUT(files, read_only, 600)
{
	static const char *const paths[] = { KRS_DEBUGFS "/status", KRS_STATS };
	static const int clean[] = { EINVAL, EACCES, EPERM, EBADF };
	unsigned int n = iterations(10), refused = 0;
	char buf[MAX_WRITE + 64];

	seed_for("status, stats", 4);
	for (size_t f = 0; f < ARRAY_SIZE(paths); f++) {
		int fd, open_errno;

		ASSERT_LT(0, krs_read_file(paths[f], self->before, TEXT_SIZE));
		fd = open(paths[f], O_WRONLY | O_CLOEXEC);
		open_errno = errno;
		for (unsigned int it = 0; it < n; it++) {
			size_t len = below(3) ? gen_random(buf) :
				     gen_soup(buf, collapse_words, ARRAY_SIZE(collapse_words));
			ssize_t ret;
			bool bad;

			if (fd < 0) {
				/* Root may be refused at open: as good. */
				ASSERT_TRUE(errno_in(open_errno, clean, ARRAY_SIZE(clean)));
				break;
			}
			ret = fuzz_write(fd, buf, len, self->guard, &bad);
			ASSERT_GT(0, ret) TH_LOG("%s took a write", paths[f]);
			ASSERT_TRUE(errno_in(-ret, clean, ARRAY_SIZE(clean)) ||
				    (bad && ret == -EFAULT))
				TH_LOG("%s: %s", paths[f], strerror(-ret));
			refused++;
		}
		if (fd >= 0)
			close(fd);
		ASSERT_LT(0, krs_read_file(paths[f], self->after, TEXT_SIZE));
		ASSERT_STREQ(self->before, self->after) TH_LOG("%s changed", paths[f]);
	}
	ksft_print_msg("status, stats: %u writes refused\n", refused);
}

TEST_HARNESS_MAIN
