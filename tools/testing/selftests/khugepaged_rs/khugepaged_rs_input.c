// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input to debugfs `collapse`: every malformed or refused write fails
 * with the documented errno and changes nothing (the fixture's PTE-mapped
 * shmem extent stays PTE-mapped and intact, the stats do not move); the
 * report is per open file; stats has the documented format; no report or
 * stats line shows a kernel address.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#define LEN KRS_PMD_SIZE
#define NPAGES KRS_PMD_PAGES
#define PAGE KRS_PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)
#define STATS_SIZE 16384
#define SEED 31

static const char *const total_names[] = {
	"extents_collapsed", "pages_copied", "holes_filled", "vmas_retracted", "notifier_ranges",
	"khugepaged_pages_collapsed",
};

FIXTURE(input) {
	int cfd;
	int memfd;
	char *p;		/* 2 MiB-aligned, PTE-mapped, every page written */
	char report[8192];
	struct krs_extent ext[4];
	int nr_ext;
	long status;
	char stats0[STATS_SIZE];
	char stats1[STATS_SIZE];
};

FIXTURE_SETUP(input)
{
	int ret;

	self->cfd = -1;
	self->memfd = -1;
	self->p = MAP_FAILED;
	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	self->cfd = krs_collapse_open();
	ASSERT_LE(0, self->cfd) TH_LOG("open %s: %s", KRS_COLLAPSE, strerror(-self->cfd));
	self->memfd = krs_memfd("krs_input", LEN);
	ASSERT_LE(0, self->memfd);
	self->p = krs_map_aligned(LEN, RW, MAP_SHARED, self->memfd, 0);
	ASSERT_NE(MAP_FAILED, self->p);
	for (size_t i = 0; i < NPAGES; i++)
		krs_fill_page(self->p + i * PAGE, SEED, i);
	ASSERT_EQ(2048, krs_smaps_kb(0, (unsigned long)self->p, "Rss"));
	ASSERT_EQ(0, krs_smaps_kb(0, (unsigned long)self->p, "ShmemPmdMapped"));
	ASSERT_LT(0, krs_stats_read(self->stats0, STATS_SIZE))
		TH_LOG("reading %s", KRS_STATS);
}

FIXTURE_TEARDOWN(input)
{
	if (self->p != MAP_FAILED)
		munmap(self->p, LEN);
	if (self->memfd >= 0)
		close(self->memfd);
	if (self->cfd >= 0)
		close(self->cfd);
}

/* What a write returned, for a log. */
static const char *outcome(ssize_t ret)
{
	return ret < 0 ? strerror(-ret) : "accepted";
}

/* Read and parse the report of the last write through @fd. */
/* struct _test_data_input is FIXTURE_DATA(input). */
static void read_report(struct __test_metadata *_metadata, struct _test_data_input *self, int fd)
{
	ssize_t n = krs_collapse_report(fd, self->report, sizeof(self->report));

	ASSERT_LE(0, n) TH_LOG("reading the report: %s", strerror(-n));
	self->status = 0;
	self->nr_ext = krs_report_parse(self->report, self->ext, 4, &self->status);
	ASSERT_LE(0, self->nr_ext) TH_LOG("malformed report:\n%s", self->report);
	EXPECT_FALSE(krs_has_kernel_pointer(self->report)) TH_LOG("report:\n%s", self->report);
}

/* One raw write and its report. */
static ssize_t raw(struct __test_metadata *_metadata, struct _test_data_input *self,
		   const void *buf, size_t len)
{
	ssize_t ret = krs_collapse_write(self->cfd, buf, len);

	read_report(_metadata, self, self->cfd);
	EXPECT_EQ(ret, self->status) TH_LOG("report:\n%s", self->report);
	return ret;
}

static ssize_t cmd(struct __test_metadata *_metadata, struct _test_data_input *self,
		   const char *c)
{
	return raw(_metadata, self, c, strlen(c));
}

/*
 * The fixture's extent is as it was: PTE-mapped, intact. With @exact the
 * stats did not move at all; otherwise nothing was collapsed.
 */
static void check_unchanged(struct __test_metadata *_metadata, struct _test_data_input *self,
			    bool exact, const char *what)
{
	ASSERT_LT(0, krs_stats_read(self->stats1, STATS_SIZE));
	EXPECT_FALSE(krs_has_kernel_pointer(self->stats1)) TH_LOG("stats:\n%s", self->stats1);
	if (exact) {
		EXPECT_STREQ(self->stats0, self->stats1) TH_LOG("%s: stats moved", what);
	} else {
		static const char *const moved[] = {
			"extents_collapsed", "pages_copied", "holes_filled", "vmas_retracted",
		};

		for (size_t i = 0; i < ARRAY_SIZE(moved); i++) {
			const char *name = moved[i];

			EXPECT_EQ(krs_stat(self->stats0, name), krs_stat(self->stats1, name))
				TH_LOG("%s: %s moved", what, name);
		}
	}
	EXPECT_EQ(0, krs_smaps_kb(0, (unsigned long)self->p, "ShmemPmdMapped")) TH_LOG("%s", what);
	EXPECT_EQ(2048, krs_smaps_kb(0, (unsigned long)self->p, "Rss")) TH_LOG("%s", what);
	for (size_t i = 0; i < NPAGES; i++) {
		if (krs_check_page(self->p + i * PAGE, SEED, i)) {
			EXPECT_EQ(0UL, krs_check_page(self->p + i * PAGE, SEED, i))
				TH_LOG("%s: page %zu changed", what, i);
			break;
		}
	}
}

/* Parse errors: the documented errno, an empty report but for status, nothing else. */
TEST_F(input, parse_errors)
{
	unsigned long a = (unsigned long)self->p;
	static const struct {
		const char *fmt;	/* %1$lx: the fixture's address */
		size_t len;		/* 0: strlen of the formatted text */
		int err;
		const char *what;
	} cases[] = {
		{ "bogus=1", 0, EINVAL, "unknown key" },
		{ "collapse", 0, EINVAL, "bare word" },
		{ "addr=%1$lx len=2M size=1", 0, EINVAL, "unknown key after good ones" },
		{ "ADDR=%1$lx len=2M", 0, EINVAL, "key in the wrong case" },
		{ "\xde\xad\xbe\xef\x01\x7f", 6, EINVAL, "garbage bytes" },
		{ "addr=%1$lx len=2M \xe9", 0, EINVAL, "non-ASCII byte" },
		{ "addr=%1$lx len=2M\n", -1, EINVAL, "embedded NUL (len+1)" },
		{ "", 0, EINVAL, "empty write" },
		{ "\x20\n\t", 0, EINVAL, "whitespace only" },
		{ "addr=%1$lx len=18446744073709551616", 0, ERANGE, "len overflows 64 bits" },
		{ "addr=%1$lx len=17179869184G", 0, ERANGE, "len overflows after its suffix" },
		{ "addr=10000000000000000 len=2M", 0, ERANGE, "addr overflows 64 bits" },
		{ "addr=%1$lx len=0", 0, EINVAL, "zero len" },
		{ "addr=%1$lx len=0M", 0, EINVAL, "zero len with suffix" },
		{ "addr=%1$lx len=2M", 1, EINVAL, "truncated (one byte)" },
		{ "addr=xyz len=2M", 0, EINVAL, "addr not hex" },
		{ "addr= len=2M", 0, EINVAL, "empty addr" },
		{ "addr=%1$lx len=-2M", 0, EINVAL, "negative len" },
		{ "addr=%1$lx len=1.5M", 0, EINVAL, "fractional len" },
		{ "addr=%1$lx len", 0, EINVAL, "key without value" },
		{ "addr=%1$lx", 0, EINVAL, "len missing" },
		{ "len=2M", 0, EINVAL, "addr missing" },
		{ "dry_run", 0, EINVAL, "dry_run alone" },
		{ "addr=%1$lx addr=%1$lx len=2M", 0, EINVAL, "duplicate addr" },
		{ "addr=%1$lx len=2M dry_run dry_run", 0, EINVAL, "duplicate dry_run" },
		{ "fd=3 addr=%1$lx len=2M", 0, EINVAL, "fd with addr" },
		{ "fd=3 pid=1 len=2M", 0, EINVAL, "fd with pid" },
		{ "addr=%1$lx offset=0 len=2M", 0, EINVAL, "offset with addr" },
		{ "addr=%1$lx len=2M pid=0", 0, EINVAL, "pid 0" },
		{ "addr=%1$lx len=2M pid=-1", 0, EINVAL, "negative pid" },
		{ "addr=%1$lx len=2M pid=4294967296", 0, EINVAL, "pid beyond pid_t" },
		{ "fd=-1 len=2M", 0, EBADF, "negative fd" },
		{ "fd=2147483648 len=2M", 0, EBADF, "fd beyond int" },
		{ "fd=abc len=2M", 0, EBADF, "fd not a number" },
	};
	char buf[256];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len;
		ssize_t ret;

		len = snprintf(buf, sizeof(buf), cases[i].fmt, a);
		if (cases[i].len == (size_t)-1)
			buf[len - 1] = '\0';	/* "...len=2M\0" */
		else if (cases[i].len)
			len = cases[i].len;
		ret = raw(_metadata, self, buf, len);
		EXPECT_EQ(-cases[i].err, ret)
			TH_LOG("%s: '%s' -> %zd (%s)", cases[i].what, cases[i].fmt, ret,
			       outcome(ret));
		EXPECT_EQ(0, self->nr_ext) TH_LOG("%s: report:\n%s", cases[i].what, self->report);
		check_unchanged(_metadata, self, true, cases[i].what);
	}
}

/* Alignment and range: EINVAL before anything is looked at. */
TEST_F(input, alignment_and_range)
{
	unsigned long a = (unsigned long)self->p;
	unsigned long top = krs_user_limit() + PAGE;	/* 1 << 47, or 1 << 56 with LA57 */
	char buf[256];
	const struct {
		unsigned long addr;
		unsigned long len;
		const char *what;
	} cases[] = {
		{ a + 1, LEN, "addr off by one" },
		{ a + 2048, LEN, "addr half a page in" },
		{ a, 4097, "len not a page multiple" },
		{ a, 0x1ff001, "len unaligned, over an extent" },
		{ a, 0xfffffffffffff000UL, "addr + len wraps" },
		{ 0xfffffffffffff000UL, 0x2000, "top of the address space" },
		{ 0xffff888000000000UL, LEN, "kernel address (direct map)" },
		{ 0xffffffff81000000UL, LEN, "kernel address (text)" },
		{ top - LEN, LEN, "ends a page past TASK_SIZE" },
		{ top, LEN, "starts at TASK_SIZE + 4K" },
		{ a, top, "len beyond user space" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		ssize_t ret;

		snprintf(buf, sizeof(buf), "addr=%lx len=0x%lx", cases[i].addr, cases[i].len);
		ret = cmd(_metadata, self, buf);
		EXPECT_EQ(-EINVAL, ret) TH_LOG("%s: '%s' -> %zd (%s)", cases[i].what, buf, ret,
					       outcome(ret));
		EXPECT_EQ(0, self->nr_ext) TH_LOG("%s: report:\n%s", cases[i].what, self->report);
		check_unchanged(_metadata, self, true, cases[i].what);
	}
	/* fd= offsets too. */
	snprintf(buf, sizeof(buf), "fd=%d offset=100 len=2M", self->memfd);
	EXPECT_EQ(-EINVAL, cmd(_metadata, self, buf)) TH_LOG("%s", buf);
	snprintf(buf, sizeof(buf), "fd=%d offset=0x7ffffffffffff000 len=8K", self->memfd);
	EXPECT_EQ(-EINVAL, cmd(_metadata, self, buf)) TH_LOG("%s", buf);
	snprintf(buf, sizeof(buf), "fd=%d offset=0xfffffffffffff000 len=8K", self->memfd);
	EXPECT_EQ(-EINVAL, cmd(_metadata, self, buf)) TH_LOG("%s", buf);
	snprintf(buf, sizeof(buf), "fd=%d len=0", self->memfd);
	EXPECT_EQ(-EINVAL, cmd(_metadata, self, buf)) TH_LOG("%s", buf);
	check_unchanged(_metadata, self, true, "fd= ranges");
}

/* A range holding no full 2 MiB extent succeeds and does nothing. */
TEST_F(input, no_full_extent_is_noop)
{
	char buf[128];
	ssize_t ret;

	snprintf(buf, sizeof(buf), "addr=%lx len=8K", (unsigned long)self->p + PAGE);
	ret = cmd(_metadata, self, buf);
	EXPECT_EQ((ssize_t)strlen(buf), ret) TH_LOG("'%s' -> %s", buf, strerror(-ret));
	EXPECT_EQ(0, self->nr_ext) TH_LOG("report:\n%s", self->report);
	snprintf(buf, sizeof(buf), "addr=%lx len=%lu", (unsigned long)self->p, LEN - PAGE);
	ret = cmd(_metadata, self, buf);
	EXPECT_EQ((ssize_t)strlen(buf), ret) TH_LOG("'%s' -> %s", buf, strerror(-ret));
	EXPECT_EQ(0, self->nr_ext) TH_LOG("report:\n%s", self->report);
	check_unchanged(_metadata, self, true, "no full extent");
}

/* Nothing mapped in the range: ENOMEM. */
TEST_F(input, unmapped_range)
{
	char buf[128];
	char *hole = krs_map_aligned(LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ssize_t ret;

	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, LEN));
	snprintf(buf, sizeof(buf), "addr=%lx len=2M", (unsigned long)hole);
	ret = cmd(_metadata, self, buf);
	EXPECT_EQ(-ENOMEM, ret) TH_LOG("'%s' -> %zd (%s); report:\n%s", buf, ret,
				       ret < 0 ? strerror(-ret) : "accepted", self->report);
	check_unchanged(_metadata, self, false, "unmapped range");
}

/*
 * Stream a report too big for a buffer: every line well formed, at most
 * @max_extents extent lines, the last line "status=<n>" copied to @last.
 * Returns the number of extent lines, or -1 (after logging) if malformed.
 */
static long scan_big_report(struct __test_metadata *_metadata, int fd, long max_extents,
			    char *last, size_t last_size)
{
	static char chunk[1 << 16];
	char line[256];
	size_t len = 0, total = 0;
	long extents = 0;
	ssize_t n;

	last[0] = '\0';
	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		total += n;
		if (total > (512UL << 20)) {
			TH_LOG("report longer than 512 MiB");
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			struct krs_extent e;
			long status;

			if (chunk[i] != '\n') {
				if (len + 1 >= sizeof(line)) {
					TH_LOG("report line too long");
					return -1;
				}
				line[len++] = chunk[i];
				continue;
			}
			line[len] = '\0';
			len = 0;
			if (last[0]) {
				TH_LOG("report goes on after '%s'", last);
				return -1;
			}
			if (!strncmp(line, "status=", 7)) {
				snprintf(last, last_size, "%s", line);
				continue;
			}
			strcat(line, "\nstatus=0");
			if (krs_report_parse(line, &e, 1, &status) != 1 || e.index != extents) {
				TH_LOG("bad report line %ld: '%s'", extents, line);
				return -1;
			}
			if (++extents > max_extents) {
				TH_LOG("more extent lines than extents in the range");
				return -1;
			}
		}
	}
	if (n < 0 || len) {
		TH_LOG("reading the report: %s", n < 0 ? strerror(errno) : "no final newline");
		return -1;
	}
	return extents;
}

/*
 * The longest range a request may cover (1 GiB, 512 extents) mapping
 * nothing: ENOMEM like madvise(2), a well-formed report, nothing changes.
 * Anything longer (here 1 TiB) is refused up front with EINVAL, without a
 * kernel warning (the VM runner fails on any).
 */
TEST_F(input, huge_unmapped_range)
{
	char buf[128], last[64];
	unsigned long start;
	size_t len;
	long lines;
	ssize_t ret;

	ASSERT_EQ(0, krs_unmapped_range(1UL << 40, &start, &len));
	snprintf(buf, sizeof(buf), "addr=%lx len=0x%zx", start, len);
	ret = krs_collapse_write(self->cfd, buf, strlen(buf));
	EXPECT_EQ(-EINVAL, ret) TH_LOG("'%s' -> %zd", buf, ret);
	ASSERT_EQ(0, krs_unmapped_range(1UL << 30, &start, &len));
	snprintf(buf, sizeof(buf), "addr=%lx len=0x%zx", start, len);
	ret = krs_collapse_write(self->cfd, buf, strlen(buf));
	EXPECT_EQ(-ENOMEM, ret) TH_LOG("'%s' (%zu extents) -> %zd (%s)", buf, len / LEN, ret,
				       ret < 0 ? strerror(-ret) : "accepted");
	lines = scan_big_report(_metadata, self->cfd, len / LEN, last, sizeof(last));
	EXPECT_LE(0, lines);
	snprintf(buf, sizeof(buf), "status=%zd", ret);
	EXPECT_STREQ(buf, last);
	check_unchanged(_metadata, self, false, "huge unmapped range");
}

/*
 * A range over a shmem extent then an anonymous one: the shmem extent
 * collapses, the anonymous one is ineligible (SCAN_VMA_CHECK), EINVAL.
 */
TEST_F(input, range_into_anonymous_vma)
{
	char buf[128];
	int fd = krs_memfd("krs_input_anon", LEN);
	char *q;
	long thp;
	ssize_t ret;

	ASSERT_LE(0, fd);
	q = krs_map_aligned(2 * LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, q);
	ASSERT_EQ(q, mmap(q, LEN, RW, MAP_SHARED | MAP_FIXED, fd, 0));
	ASSERT_EQ(q + LEN, mmap(q + LEN, LEN, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	/* Whatever THP mode: the anonymous VMA may get a huge page or not. */
	for (size_t i = 0; i < 2 * NPAGES; i++)
		krs_fill_page(q + i * PAGE, 32, i);
	ASSERT_EQ(2048, krs_smaps_kb(0, (unsigned long)q + LEN, "Anonymous"));
	thp = krs_smaps_kb(0, (unsigned long)q + LEN, "AnonHugePages");

	snprintf(buf, sizeof(buf), "addr=%lx len=4M", (unsigned long)q);
	ret = cmd(_metadata, self, buf);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("'%s' -> %zd (%s); report:\n%s", buf, ret,
				       ret < 0 ? strerror(-ret) : "accepted", self->report);
	ASSERT_EQ(2, self->nr_ext) TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(0U, self->ext[0].index);
	EXPECT_EQ((unsigned long)q, self->ext[0].start);
	EXPECT_STREQ("SCAN_SUCCEED", self->ext[0].result);
	EXPECT_EQ(1U, self->ext[1].index);
	EXPECT_EQ((unsigned long)q + LEN, self->ext[1].start);
	EXPECT_STREQ("SCAN_VMA_CHECK", self->ext[1].result);

	EXPECT_EQ(2048, krs_smaps_kb(0, (unsigned long)q, "ShmemPmdMapped"));
	EXPECT_EQ(2048, krs_smaps_kb(0, (unsigned long)q + LEN, "Anonymous"));
	EXPECT_EQ(thp, krs_smaps_kb(0, (unsigned long)q + LEN, "AnonHugePages"));
	for (size_t i = 0; i < 2 * NPAGES; i++) {
		size_t bad = krs_check_page(q + i * PAGE, 32, i);

		ASSERT_EQ(0UL, bad) TH_LOG("page %zu", i);
	}
	munmap(q, 2 * LEN);
	close(fd);
}

/* A shmem VMA with MADV_NOHUGEPAGE is ineligible: EINVAL, SCAN_VMA_CHECK. */
TEST_F(input, nohugepage_vma)
{
	char buf[128];
	ssize_t ret;

	ASSERT_EQ(0, madvise(self->p, LEN, MADV_NOHUGEPAGE));
	snprintf(buf, sizeof(buf), "addr=%lx len=2M", (unsigned long)self->p);
	ret = cmd(_metadata, self, buf);
	EXPECT_EQ(-EINVAL, ret) TH_LOG("'%s' -> %zd (%s); report:\n%s", buf, ret,
				       outcome(ret), self->report);
	if (self->nr_ext > 0)
		EXPECT_STREQ("SCAN_VMA_CHECK", self->ext[0].result);
	check_unchanged(_metadata, self, false, "VM_NOHUGEPAGE");
}

/* pid= of a process that does not exist: ESRCH. */
TEST_F(input, no_such_pid)
{
	char buf[128];
	pid_t pid = fork();
	ssize_t ret;

	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(pid, waitpid(pid, NULL, 0));
	ASSERT_EQ(-1, kill(pid, 0));
	snprintf(buf, sizeof(buf), "pid=%d addr=%lx len=2M", pid, (unsigned long)self->p);
	ret = cmd(_metadata, self, buf);
	EXPECT_EQ(-ESRCH, ret) TH_LOG("'%s' -> %zd (%s)", buf, ret,
				      ret < 0 ? strerror(-ret) : "accepted");
	check_unchanged(_metadata, self, false, "no such pid");
}

/* fd= of a closed descriptor: EBADF. */
TEST_F(input, closed_fd)
{
	char buf[128];
	int fd = krs_memfd("krs_input_closed", LEN);
	ssize_t ret;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, close(fd));
	snprintf(buf, sizeof(buf), "fd=%d len=2M", fd);
	ret = cmd(_metadata, self, buf);
	EXPECT_EQ(-EBADF, ret) TH_LOG("'%s' -> %zd (%s)", buf, ret,
				      ret < 0 ? strerror(-ret) : "accepted");
	ret = cmd(_metadata, self, "fd=1000000 len=2M");
	EXPECT_EQ(-EBADF, ret) TH_LOG("fd=1000000 -> %zd (%s)", ret,
				      ret < 0 ? strerror(-ret) : "accepted");
	check_unchanged(_metadata, self, false, "closed fd");
}

/* fd= of something that is not a regular shmem file: EINVAL. */
TEST_F(input, non_shmem_fd)
{
	int pfd[2], null, dir;
	char buf[128];
	ssize_t ret;

	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, null);
	dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, dir);
	const struct { int fd; const char *what; } cases[] = {
		{ pfd[0], "pipe (read end)" }, { pfd[1], "pipe (write end)" },
		{ null, "/dev/null" }, { dir, "directory /tmp" },
		{ self->cfd, "the debugfs collapse file itself" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		snprintf(buf, sizeof(buf), "fd=%d len=2M", cases[i].fd);
		ret = cmd(_metadata, self, buf);
		EXPECT_EQ(-EINVAL, ret) TH_LOG("%s: '%s' -> %zd (%s)", cases[i].what, buf, ret,
					       outcome(ret));
	}
	check_unchanged(_metadata, self, false, "non-shmem fd");
	close(pfd[0]);
	close(pfd[1]);
	close(null);
	close(dir);
}

/* The report belongs to the open file description that wrote. */
TEST_F(input, report_per_open)
{
	char first[8192], buf[128];
	int other;
	ssize_t n;

	other = krs_collapse_open();
	ASSERT_LE(0, other) TH_LOG("second open: %s", strerror(-other));
	n = krs_collapse_report(other, self->report, sizeof(self->report));
	EXPECT_EQ(0, n) TH_LOG("a fresh open reports:\n%s", self->report);
	n = krs_collapse_report(self->cfd, self->report, sizeof(self->report));
	EXPECT_EQ(0, n) TH_LOG("before any write:\n%s", self->report);

	snprintf(buf, sizeof(buf), "addr=%lx len=2M dry_run", (unsigned long)self->p);
	n = cmd(_metadata, self, buf);
	EXPECT_EQ((ssize_t)strlen(buf), n) TH_LOG("'%s' -> %s", buf, strerror(-n));
	EXPECT_EQ(1, self->nr_ext) TH_LOG("report:\n%s", self->report);
	snprintf(first, sizeof(first), "%s", self->report);

	n = krs_collapse_report(other, self->report, sizeof(self->report));
	EXPECT_EQ(0, n) TH_LOG("the second open sees the first one's report:\n%s", self->report);

	/* A failing write on the second open does not touch the first one's report. */
	EXPECT_EQ(-EINVAL, krs_collapse_write(other, "bogus", 5));
	read_report(_metadata, self, other);
	EXPECT_EQ(0, self->nr_ext);
	EXPECT_EQ(-EINVAL, self->status);
	n = krs_collapse_report(self->cfd, self->report, sizeof(self->report));
	EXPECT_LT(0, n);
	EXPECT_STREQ(first, self->report);
	/* Reading again gives the same report. */
	n = krs_collapse_report(self->cfd, self->report, sizeof(self->report));
	EXPECT_STREQ(first, self->report);
	close(other);
	check_unchanged(_metadata, self, false, "report per open");
}

/* stats: `<name> <value>` lines, every documented name present. */
TEST_F(input, stats_format)
{
	char *line, *save;
	char name[64];
	unsigned long long v;
	int n;

	for (size_t i = 0; i < KRS_NR_SCAN_RESULTS; i++) {
		long long got = krs_stat(self->stats0, krs_scan_names[i]);

		EXPECT_LE(0, got) TH_LOG("no %s", krs_scan_names[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(total_names); i++) {
		long long got = krs_stat(self->stats0, total_names[i]);

		EXPECT_LE(0, got) TH_LOG("no %s", total_names[i]);
	}
	for (line = strtok_r(self->stats0, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		bool known = false;
		int fields;

		n = 0;
		fields = sscanf(line, "%63s %llu%n", name, &v, &n);
		ASSERT_EQ(2, fields) TH_LOG("line '%s'", line);
		EXPECT_EQ(strlen(line), (size_t)n) TH_LOG("line '%s'", line);
		for (size_t i = 0; i < KRS_NR_SCAN_RESULTS; i++) {
			if (!strcmp(name, krs_scan_names[i]) ||
			    (!strncmp(name, "rollback_", 9) &&
			     !strcmp(name + 9, krs_scan_names[i])))
				known = true;
		}
		for (size_t i = 0; i < ARRAY_SIZE(total_names); i++)
			known |= !strcmp(name, total_names[i]);
		EXPECT_TRUE(known) TH_LOG("unknown stats line '%s'", line);
	}
}

/* No report or stats line holds a kernel address, whatever was written. */
TEST_F(input, no_kernel_pointers)
{
	char buf[128];
	int fd = krs_memfd("krs_input_ptr", LEN);
	char *q;

	ASSERT_LE(0, fd);
	q = krs_map_aligned(LEN, RW, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, q);
	for (size_t i = 0; i < NPAGES; i += 2)
		krs_fill_page(q + i * PAGE, 33, i);

	static const char * const cmds[] = {
		"addr=ffff888000000000 len=2M", "addr=ffffffff81000000 len=2M",
		"addr=7fffffe00000 len=2M", "bogus", "fd=1000000 len=2M",
	};
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		cmd(_metadata, self, cmds[i]);	/* read_report checks for pointers */
	snprintf(buf, sizeof(buf), "addr=%lx len=2M dry_run", (unsigned long)q);
	cmd(_metadata, self, buf);
	snprintf(buf, sizeof(buf), "addr=%lx len=2M", (unsigned long)q);
	EXPECT_EQ((ssize_t)strlen(buf), cmd(_metadata, self, buf))
		TH_LOG("report:\n%s", self->report);
	EXPECT_EQ(1, self->nr_ext);
	snprintf(buf, sizeof(buf), "fd=%d len=2M", fd);
	cmd(_metadata, self, buf);
	ASSERT_LT(0, krs_stats_read(self->stats1, STATS_SIZE));
	EXPECT_FALSE(krs_has_kernel_pointer(self->stats1)) TH_LOG("stats:\n%s", self->stats1);
	munmap(q, LEN);
	close(fd);
}

TEST_HARNESS_MAIN
