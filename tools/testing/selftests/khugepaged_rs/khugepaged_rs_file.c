// SPDX-License-Identifier: GPL-2.0
/*
 * Regular-file collapse on the test bed's XFS (/mnt/xfs) and ext4
 * (/mnt/ext4), as a user would drive it, every case done twice: once with
 * MADV_COLLAPSE (or process_madvise) on a file, once with debugfs
 * `collapse` on its twin on the same filesystem, and the two outcomes
 * compared: the same result, errno, smaps counters and data. Upstream's
 * MADV_COLLAPSE is the oracle.
 *
 * - this program copied to the filesystem and executed; its text (which
 *   holds a 2 MiB-aligned, file-offset-aligned blob: see krs_text_blob) is
 *   collapsed with pid= while it runs, and it checks a digest of its text
 *   before and after;
 * - a read-only file collapsed with fd= while two other processes map it:
 *   their page tables are retracted (a re-fault maps a PMD);
 * - dirty pages, in a file closed and in a file still open for write:
 *   MADV_COLLAPSE flushes and retries once;
 * - truncate and hole punch while the collapse is paused at an injection
 *   point, compared with the same truncate or punch done before
 *   MADV_COLLAPSE;
 * - pages never read (readahead);
 * - the refusals: a mapping unaligned in file offset, extents straddling or
 *   past EOF, an ext4 file with data journaling and a ramfs file (no large
 *   folios).
 * A filesystem that is not mounted skips.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PAGE KRS_PAGE_SIZE
#define PMD KRS_PMD_SIZE
#define LEN (2 * PMD)
#define NPAGES (LEN / PAGE)
#define LEN_KB ((long)(LEN >> 10))
#define PMD_KB ((long)(PMD >> 10))
#define WAIT_MS 20000
#define MAX_EXTENTS 8
#define MAX_PATHS 4

/*
 * 2 MiB of this program's text, 2 MiB-aligned: the static link puts the
 * text segment at a virtual address equal to its file offset plus
 * 0x400000, so the blob is aligned in the file too, and a text mapping
 * of the program holds a whole extent that can be mapped by a PMD. It
 * starts with a function returning TEXT_MAGIC (run from the extent after
 * the collapse); the rest is a pattern the digest reads.
 */
#define TEXT_MAGIC 0x4b525321U
#define TEXT_CHILD_ARG "--krs-text-child"

asm(".pushsection .text.krs_text_blob,\"ax\",@progbits\n"
	"\t.balign 0x200000\n"
	"krs_text_blob:\n"
	"\tmovl $0x4b525321, %eax\n"
	"\tret\n"
	"\t.balign 8, 0xcc\n"
	"\t.set krs_text_i, 1\n"
	"\t.rept (0x200000 - 8) / 8\n"
	"\t.quad krs_text_i * 0x9e3779b97f4a7c15\n"
	"\t.set krs_text_i, krs_text_i + 1\n"
	"\t.endr\n"
	"\t.popsection\n");

/* Where the blob is (x86-64: the only architecture the module builds for). */
static const uint64_t *text_blob(void)
{
	const uint64_t *p;

	asm("leaq krs_text_blob(%%rip), %0" : "=r" (p));
	return p;
}

/* Run the blob's function. */
static uint32_t text_magic(void)
{
	return ((uint32_t (*)(void))(uintptr_t)text_blob())();
}

/* FNV-1a over the blob's 64-bit words, read through the text mapping. */
static uint64_t text_digest(void)
{
	const uint64_t *w = text_blob();
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < PMD / sizeof(*w); i++) {
		h ^= krs_read_u64(&w[i]);
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct text_msg {
	uint64_t blob;
	uint64_t digest;
	uint32_t magic;
	uint32_t pad;
};

/*
 * The program run from the filesystem (argv[1] == TEXT_CHILD_ARG): reports
 * where its blob is and its digest on stdout, waits for a byte on stdin,
 * then runs the blob's function and digests it again.
 */
static int text_child(void)
{
	struct text_msg m = { 0 };
	char go;

	m.blob = (uintptr_t)text_blob();
	m.digest = text_digest();
	m.magic = text_magic();
	if (krs_send(STDOUT_FILENO, &m, sizeof(m)))
		return 1;
	if (krs_recv(STDIN_FILENO, &go, 1, 120 * 1000))
		return 2;
	m.magic = text_magic();
	m.digest = text_digest();
	return krs_send(STDOUT_FILENO, &m, sizeof(m)) ? 3 : 0;
}

FIXTURE(file) {
	char dir[32];
	char thp_prev[32];
	int cfd;
	int nr_paths;
	char paths[MAX_PATHS][128];
	char report[8192];
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

	self->cfd = -1;
	self->nr_paths = 0;
	self->thp_prev[0] = '\0';
	snprintf(self->dir, sizeof(self->dir), "/mnt/%s", variant->type);
	if (!krs_mounted_type(self->dir, type, sizeof(type)))
		SKIP(return, "%s is not mounted (see the VM console for why)", self->dir);
	ASSERT_STREQ(variant->type, type);
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	/*
	 * With THP "always", khugepaged collapses these files' extents
	 * behind the tests' backs (file_thp_enabled()): "madvise" keeps it
	 * to VM_HUGEPAGE areas, and neither side of a test asks for one.
	 */
	ASSERT_EQ(0, krs_thp_madvise(self->thp_prev, sizeof(self->thp_prev)));
	self->cfd = krs_collapse_open();
	ASSERT_LE(0, self->cfd) TH_LOG("open %s: %s", KRS_COLLAPSE, strerror(-self->cfd));
}

FIXTURE_TEARDOWN(file)
{
	krs_inject("release");
	krs_inject("clear");
	krs_thp_restore(self->thp_prev);
	for (int i = 0; i < self->nr_paths; i++)
		unlink(self->paths[i]);
	if (self->cfd >= 0)
		close(self->cfd);
}

/* A new file name in the variant's filesystem, unlinked by the teardown. */
static const char *new_path(struct _test_data_file *self, const char *tag)
{
	char name[sizeof(self->paths[0])];
	char *p;

	/* At most MAX_PATHS a test: the last is reused past that. */
	if (self->nr_paths < MAX_PATHS)
		self->nr_paths++;
	p = self->paths[self->nr_paths - 1];
	snprintf(name, sizeof(name), "%s/krs-file-%s.%d", self->dir, tag, getpid());
	memcpy(p, name, sizeof(name));
	unlink(p);
	return p;
}

/* One MADV_COLLAPSE, or up to five while EAGAIN if @retry; 0 or -errno. */
static int madv_collapse(void *addr, size_t len, bool retry)
{
	for (int attempt = 0; ; attempt++) {
		if (!madvise(addr, len, MADV_COLLAPSE))
			return 0;
		if (errno != EAGAIN || !retry || attempt == 4)
			return -errno;
		usleep(50 * 1000);
	}
}

/*
 * One collapse command through the fixture's fd (retrying EAGAIN as
 * MADV_COLLAPSE's side does if @retry); 0 on success (the whole command
 * written), else -errno. The report is left in self->report.
 */
static int __printf(4, 5)
krs_collapse(struct __test_metadata *_metadata, struct _test_data_file *self, bool retry,
	     const char *fmt, ...)
{
	char cmd[256];
	va_list ap;
	ssize_t ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (retry)
		ret = krs_collapse_cmd(self->cfd, cmd);
	else
		ret = krs_collapse_write(self->cfd, cmd, strlen(cmd));
	self->report[0] = '\0';
	krs_collapse_report(self->cfd, self->report, sizeof(self->report));
	if (ret < 0)
		TH_LOG("'%s' -> %s, report:\n%s", cmd, strerror(-ret), self->report);
	EXPECT_FALSE(krs_has_kernel_pointer(self->report));
	if (ret >= 0) {
		EXPECT_EQ((ssize_t)strlen(cmd), ret);
		return 0;
	}
	return ret;
}

/* Both sides ended the same way: success, or the same errno. */
static void expect_same(struct __test_metadata *_metadata, int madv, int krs)
{
	EXPECT_EQ(madv, krs) TH_LOG("MADV_COLLAPSE: %s, khugepaged_rs: %s",
				    strerror(-madv), strerror(-krs));
}

/* Pages [from, to) of @p hold pattern @seed; the first one that does not, or @to. */
static size_t check_map(const char *p, unsigned int seed, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (krs_check_page(p + i * PAGE, seed, i))
			return i;
	return to;
}

/* File pages [from, to) of @fd read back pattern @seed (pread); first bad, or @to. */
static size_t check_file(int fd, unsigned int seed, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (krs_pread_check(fd, seed, i))
			return i;
	return to;
}

static long pmd_kb(const void *p)
{
	return krs_smaps_kb(0, (unsigned long)p, "FilePmdMapped");
}

static unsigned long file_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_ino;
}

static off_t file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? -1 : st.st_size;
}

/* ---- a running program's text ------------------------------------------ */

/* Copy this program to @path, executable; 0 or -errno. */
static int copy_self(const char *path)
{
	static char buf[1 << 16];
	int in, out, ret = 0;
	ssize_t n;

	in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
	if (out < 0) {
		ret = -errno;
		close(in);
		return ret;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, n) != n) {
			ret = -EIO;
			break;
		}
	}
	if (n < 0)
		ret = -errno;
	if (!ret && fsync(out))
		ret = -errno;
	close(in);
	if (close(out) && !ret)
		ret = -errno;
	return ret;
}

/* Drop @path's clean pages from the page cache; 0 or -errno. */
static int drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return ret;
}

static int exec_text_child(int in, int out, void *arg)
{
	const char *path = arg;

	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0)
		return 126;
	execl(path, path, TEXT_CHILD_ARG, (char *)NULL);
	return 127;
}

/* The VMA of @pid containing @addr: its bounds and file offset; 0 or -1. */
static int find_vma(pid_t pid, unsigned long addr, unsigned long *start, unsigned long *end,
		    unsigned long *off)
{
	char path[64], line[512];
	int ret = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %*s %lx", start, end, off) == 3 &&
		    *start <= addr && addr < *end) {
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

static int process_collapse(pid_t pid, unsigned long start, size_t len)
{
	struct iovec iov = { .iov_base = (void *)start, .iov_len = len };
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	long ret;

	if (pidfd < 0)
		return -errno;
	ret = syscall(SYS_process_madvise, pidfd, &iov, 1, MADV_COLLAPSE, 0);
	ret = ret < 0 ? -errno : 0;
	close(pidfd);
	return ret;
}

/*
 * Run a copy of this program at @path, collapse its text VMA (with
 * process_madvise(MADV_COLLAPSE) or with pid=), have it check its text;
 * returns the collapse's 0 or -errno in *@ret.
 */
static void run_text(struct __test_metadata *_metadata, struct _test_data_file *self,
		     const char *path, bool with_module, int *ret)
{
	struct krs_child c = { .to_child = -1, .from_child = -1 };
	unsigned long start, end, off;
	struct text_msg before, after;
	char go = 'g';
	long kb;

	*ret = -ENOEXEC;
	ASSERT_EQ(0, copy_self(path));
	/* Read back by the program's own faults: no PMD-sized folio yet. */
	ASSERT_EQ(0, drop_cache(path));
	ASSERT_EQ(0, krs_child_start(&c, exec_text_child, (void *)path));
	ASSERT_EQ(0, krs_recv(c.from_child, &before, sizeof(before), WAIT_MS))
		TH_LOG("%s did not start (exit %d)", path, krs_child_wait(&c));
	EXPECT_EQ((uint64_t)(uintptr_t)text_blob(), before.blob);
	EXPECT_EQ(text_digest(), before.digest);
	EXPECT_EQ(TEXT_MAGIC, before.magic);
	ASSERT_EQ(0, find_vma(c.pid, before.blob, &start, &end, &off));
	/* The layout krs_text_blob relies on: text aligned in the file too. */
	ASSERT_EQ(0UL, (start - off) % PMD)
		TH_LOG("text VMA %lx-%lx at file offset %lx: not 2 MiB-aligned in the file",
		       start, end, off);
	ASSERT_EQ(0, krs_smaps_kb(c.pid, before.blob, "FilePmdMapped"))
		TH_LOG("the text is mapped by a PMD before any collapse");

	if (with_module)
		*ret = krs_collapse(_metadata, self, true, "pid=%d addr=%lx len=%lu",
				    c.pid, start, end - start);
	else
		*ret = process_collapse(c.pid, start, end - start);
	kb = krs_smaps_kb(c.pid, before.blob, "FilePmdMapped");
	EXPECT_LE(PMD_KB, kb) TH_LOG("%s: text VMA %lx-%lx FilePmdMapped %ld kB after %s",
				     path, start, end, kb,
				     with_module ? "pid=" : "process_madvise");

	ASSERT_EQ(0, krs_send(c.to_child, &go, 1));
	ASSERT_EQ(0, krs_recv(c.from_child, &after, sizeof(after), WAIT_MS));
	EXPECT_EQ(before.digest, after.digest) TH_LOG("the text changed under the program");
	EXPECT_EQ(TEXT_MAGIC, after.magic);
	EXPECT_EQ(0, krs_child_wait(&c));
}

TEST_F(file, text_collapsed_while_running)
{
	int madv, krs;

	run_text(_metadata, self, new_path(self, "text-madv"), false, &madv);
	EXPECT_EQ(0, madv) TH_LOG("process_madvise(MADV_COLLAPSE): %s", strerror(-madv));
	run_text(_metadata, self, new_path(self, "text-krs"), true, &krs);
	expect_same(_metadata, madv, krs);
}

/* ---- fd= with two other processes mapping the file ---------------------- */

#define MAPPER_SEED 21

struct mapper_msg {
	uint64_t addr;
	long pte_kb;	/* VmPTE: before the collapse, then after it (untouched) */
	long pmd_kb;
	long bad;	/* first page read wrong, or NPAGES */
};

/* This process's page tables (VmPTE), in kB; -1 if not found. */
static long vm_pte_kb(void)
{
	char buf[4096], *s;

	if (krs_read_file("/proc/self/status", buf, sizeof(buf)) <= 0)
		return -1;
	s = strstr(buf, "\nVmPTE:");
	return s ? strtol(s + 7, NULL, 10) : -1;
}

/* Map @arg (a path) read-only, read it all, report, wait, read it again, report. */
static int mapper(int in, int out, void *arg)
{
	struct mapper_msg m = { 0 };
	char go;
	char *p;
	int fd;

	fd = open(arg, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 2;
	m.addr = (uintptr_t)p;
	m.bad = check_map(p, MAPPER_SEED, 0, NPAGES);
	m.pmd_kb = pmd_kb(p);
	m.pte_kb = vm_pte_kb();
	if (krs_send(out, &m, sizeof(m)) || krs_recv(in, &go, 1, 120 * 1000))
		return 3;
	m.pte_kb = vm_pte_kb();	/* before touching it again */
	m.bad = check_map(p, MAPPER_SEED, 0, NPAGES);
	m.pmd_kb = pmd_kb(p);
	return krs_send(out, &m, sizeof(m)) ? 4 : 0;
}

/*
 * Two processes map @path and read it; the file is collapsed (MADV_COLLAPSE
 * of a mapping of the caller's, or fd=); both read it again. Returns the
 * collapse's 0 or -errno in *@ret.
 */
static void mapped_by_two(struct __test_metadata *_metadata, struct _test_data_file *self,
			  const char *path, bool with_module, int *ret)
{
	struct krs_child c[2] = { { .to_child = -1, .from_child = -1 },
				  { .to_child = -1, .from_child = -1 } };
	struct mapper_msg m;
	long pte_kb[2];
	char go = 'g';
	int fd, i;
	char *p;

	*ret = -ENOEXEC;
	fd = krs_make_ro_file(path, MAPPER_SEED, NPAGES, KRS_FILE_SYNCED);
	ASSERT_LE(0, fd) TH_LOG("%s: %s", path, strerror(-fd));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, krs_child_start(&c[i], mapper, (void *)path));
		ASSERT_EQ(0, krs_recv(c[i].from_child, &m, sizeof(m), WAIT_MS))
			TH_LOG("mapper %d: exit %d", i, krs_child_wait(&c[i]));
		EXPECT_EQ(NPAGES, (size_t)m.bad);
		EXPECT_EQ(0, m.pmd_kb);
		pte_kb[i] = m.pte_kb;
	}
	if (with_module) {
		*ret = krs_collapse(_metadata, self, true, "fd=%d offset=0 len=%lu", fd, LEN);
	} else {
		p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		*ret = madv_collapse(p, LEN, true);
		munmap(p, LEN);
	}
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, krs_send(c[i].to_child, &go, 1));
		ASSERT_EQ(0, krs_recv(c[i].from_child, &m, sizeof(m), WAIT_MS));
		EXPECT_EQ(NPAGES, (size_t)m.bad) TH_LOG("mapper %d read page %ld wrong", i, m.bad);
		/* Retracted: its two PTE tables freed before it touched the file again, */
		EXPECT_EQ(2 * (long)(PAGE >> 10), pte_kb[i] - m.pte_kb)
			TH_LOG("mapper %d: VmPTE %ld kB before, %ld kB after %s", i, pte_kb[i],
			       m.pte_kb, with_module ? "fd=" : "MADV_COLLAPSE");
		/* and the re-fault found no PTE table: PMDs. */
		EXPECT_EQ(LEN_KB, m.pmd_kb)
			TH_LOG("mapper %d: FilePmdMapped %ld kB after %s", i, m.pmd_kb,
			       with_module ? "fd=" : "MADV_COLLAPSE");
		EXPECT_EQ(0, krs_child_wait(&c[i]));
	}
	EXPECT_EQ(NPAGES, check_file(fd, MAPPER_SEED, 0, NPAGES));
	close(fd);
}

TEST_F(file, fd_retracts_two_mappers)
{
	int madv, krs;

	mapped_by_two(_metadata, self, new_path(self, "map2-madv"), false, &madv);
	EXPECT_EQ(0, madv) TH_LOG("MADV_COLLAPSE: %s", strerror(-madv));
	mapped_by_two(_metadata, self, new_path(self, "map2-krs"), true, &krs);
	expect_same(_metadata, madv, krs);
}

/* ---- collapse of one mapping, both sides -------------------------------- */

/*
 * How a case prepares its file and what it maps: @pages pattern pages in
 * @state, kept open for write during the collapse if @writer, mapped
 * read-only and shared for @map_len at file offset @map_off, never touched
 * before the collapse.
 */
struct map_case {
	const char *tag;
	unsigned int seed;
	size_t pages;
	enum krs_file_state state;
	bool writer;
	off_t map_off;
	size_t map_len;
	bool retry;	/* retry EAGAIN (not where one attempt must do) */
	int want_ret;	/* what MADV_COLLAPSE gives (checked: the oracle is right) */
	long want_kb;	/* and FilePmdMapped after it */
};

struct map_outcome {
	int ret;
	long pmd_kb;
};

/* Prepare @path as @mc says, collapse its mapping, check the data. */
static void map_and_collapse(struct __test_metadata *_metadata, struct _test_data_file *self,
			     const char *path, const struct map_case *mc, bool with_module,
			     struct map_outcome *o)
{
	size_t map_pages = mc->map_len / PAGE, first = mc->map_off / PAGE, valid, i;
	int wfd, fd;
	char *p;

	o->ret = -ENOEXEC;
	o->pmd_kb = -1;
	wfd = krs_make_file(path, mc->seed, mc->pages, mc->state);
	ASSERT_LE(0, wfd) TH_LOG("%s: %s", path, strerror(-wfd));
	if (!mc->writer) {
		close(wfd);
		wfd = -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(mc->map_len, PROT_READ, MAP_SHARED, fd, mc->map_off);
	ASSERT_NE(MAP_FAILED, p);
	if (with_module) {
		o->ret = krs_collapse(_metadata, self, mc->retry, "addr=%lx len=%zu",
				      (unsigned long)p, mc->map_len);
		/*
		 * Where one attempt must do, it must get past the dirty pages
		 * (no extent left SCAN_PAGE_DIRTY_OR_WRITEBACK); the transient
		 * EAGAIN any collapse can meet (a folio the write-back left in
		 * an LRU batch, more often on a slow kernel) is tried again.
		 */
		if (!mc->retry && o->ret == -EAGAIN) {
			EXPECT_EQ(NULL, strstr(self->report, "SCAN_PAGE_DIRTY_OR_WRITEBACK"));
			o->ret = krs_collapse(_metadata, self, true, "addr=%lx len=%zu",
					      (unsigned long)p, mc->map_len);
		}
	} else {
		/*
		 * MADV_COLLAPSE's single attempt after a dirty extent depends
		 * on I/O timing upstream (its write-and-wait drains the LRU
		 * batch only when it waited: design.rst): the oracle side may
		 * try again.
		 */
		o->ret = madv_collapse(p, mc->map_len, true);
	}
	o->pmd_kb = pmd_kb(p);
	/* Pages past EOF are not touched (SIGBUS). */
	valid = mc->pages > first ? mc->pages - first : 0;
	valid = valid < map_pages ? valid : map_pages;
	for (i = 0; i < valid; i++)
		if (krs_check_page(p + i * PAGE, mc->seed, first + i))
			break;
	EXPECT_EQ(valid, i) TH_LOG("%s: mapped page %zu wrong after %s", path, i,
				   with_module ? "addr=" : "MADV_COLLAPSE");
	EXPECT_EQ(mc->pages, check_file(fd, mc->seed, 0, mc->pages));
	munmap(p, mc->map_len);
	if (wfd >= 0)
		close(wfd);
	close(fd);
}

/*
 * Run @mc on two twin files, MADV_COLLAPSE then addr=, check MADV_COLLAPSE
 * did what @mc says, and compare.
 */
static void compare_case(struct __test_metadata *_metadata, struct _test_data_file *self,
			 const struct map_case *mc)
{
	struct map_outcome madv, krs;
	char name[64];

	snprintf(name, sizeof(name), "%s-madv", mc->tag);
	map_and_collapse(_metadata, self, new_path(self, name), mc, false, &madv);
	EXPECT_EQ(mc->want_ret, madv.ret) TH_LOG("MADV_COLLAPSE: %s", strerror(-madv.ret));
	EXPECT_EQ(mc->want_kb, madv.pmd_kb);
	snprintf(name, sizeof(name), "%s-krs", mc->tag);
	map_and_collapse(_metadata, self, new_path(self, name), mc, true, &krs);
	expect_same(_metadata, madv.ret, krs.ret);
	EXPECT_EQ(madv.pmd_kb, krs.pmd_kb)
		TH_LOG("FilePmdMapped: MADV_COLLAPSE %ld kB, khugepaged_rs %ld kB",
		       madv.pmd_kb, krs.pmd_kb);
}

/*
 * Dirty pages, the file closed: the scan finds them dirty
 * (SCAN_PAGE_DIRTY_OR_WRITEBACK), MADV_COLLAPSE writes them back and
 * retries once: one attempt succeeds.
 */
TEST_F(file, dirty_file_closed)
{
	static const struct map_case mc = {
		.tag = "dirty", .seed = 31, .pages = NPAGES, .state = KRS_FILE_DIRTY,
		.map_len = LEN, .want_ret = 0, .want_kb = LEN_KB,
	};

	compare_case(_metadata, self, &mc);
}

/* The same with the file still open for write (collapse_file does not flush). */
TEST_F(file, dirty_file_open_for_write)
{
	static const struct map_case mc = {
		.tag = "dirtyw", .seed = 32, .pages = NPAGES, .state = KRS_FILE_DIRTY,
		.writer = true, .map_len = LEN, .want_ret = 0, .want_kb = LEN_KB,
	};

	compare_case(_metadata, self, &mc);
}

/* Clean, in the page cache, the file open for write by someone. */
TEST_F(file, clean_file_open_for_write)
{
	static const struct map_case mc = {
		.tag = "cleanw", .seed = 33, .pages = NPAGES, .state = KRS_FILE_SYNCED,
		.writer = true, .map_len = LEN, .retry = true, .want_ret = 0,
		.want_kb = LEN_KB,
	};

	compare_case(_metadata, self, &mc);
}

/* Never read: dropped from the page cache, mapped, not touched: readahead. */
TEST_F(file, readahead_never_read)
{
	static const struct map_case mc = {
		.tag = "ra", .seed = 34, .pages = NPAGES, .state = KRS_FILE_DROPPED,
		.map_len = LEN, .retry = true, .want_ret = 0, .want_kb = LEN_KB,
	};

	compare_case(_metadata, self, &mc);
}

/*
 * fd= of a file never read, with no mapping at all; then mapped and read:
 * PMDs, as after MADV_COLLAPSE of a twin.
 */
TEST_F(file, readahead_fd_never_read)
{
	const char *madv_path = new_path(self, "rafd-madv");
	const char *krs_path = new_path(self, "rafd-krs");
	int madv, krs, fd;
	char *p;

	fd = krs_make_ro_file(madv_path, 35, NPAGES, KRS_FILE_DROPPED);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	madv = madv_collapse(p, LEN, true);
	EXPECT_EQ(0, madv) TH_LOG("MADV_COLLAPSE: %s", strerror(-madv));
	munmap(p, LEN);
	close(fd);

	fd = krs_make_ro_file(krs_path, 35, NPAGES, KRS_FILE_DROPPED);
	ASSERT_LE(0, fd);
	krs = krs_collapse(_metadata, self, true, "fd=%d offset=0 len=%lu", fd, LEN);
	expect_same(_metadata, madv, krs);
	p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(NPAGES, check_map(p, 35, 0, NPAGES));
	EXPECT_EQ(LEN_KB, pmd_kb(p)) TH_LOG("the page cache holds no PMD-sized folio");
	munmap(p, LEN);
	close(fd);
}

/* ---- refusals ---------------------------------------------------------- */

/* Mapped at a file offset one page off the address's 2 MiB alignment. */
TEST_F(file, unaligned_file_offset)
{
	static const struct map_case mc = {
		.tag = "unal", .seed = 36, .pages = NPAGES + KRS_PMD_PAGES,
		.state = KRS_FILE_SYNCED, .map_off = PAGE, .map_len = LEN, .retry = true,
		.want_ret = -EINVAL, .want_kb = 0,
	};

	compare_case(_metadata, self, &mc);
}

/*
 * A file of 3 MiB mapped for 4 MiB: the second extent straddles EOF (its
 * folios past EOF are not found: SCAN_FAIL, EINVAL); the first collapses.
 */
TEST_F(file, extent_straddles_eof)
{
	static const struct map_case mc = {
		.tag = "eof", .seed = 37, .pages = NPAGES - KRS_PMD_PAGES / 2,
		.state = KRS_FILE_SYNCED, .map_len = LEN, .retry = true, .want_ret = -EINVAL,
		.want_kb = PMD_KB,
	};

	compare_case(_metadata, self, &mc);
}

/* A file of 2 MiB mapped for 4 MiB: the second extent lies wholly past EOF. */
TEST_F(file, extent_past_eof)
{
	static const struct map_case mc = {
		.tag = "pasteof", .seed = 38, .pages = KRS_PMD_PAGES, .state = KRS_FILE_SYNCED,
		.map_len = LEN, .retry = true, .want_ret = -EINVAL, .want_kb = PMD_KB,
	};

	compare_case(_metadata, self, &mc);
}

/*
 * An ext4 file with data journaling (chattr +j): ext4 gives it no large
 * folios, so both refuse the VMA (EINVAL), and fd= refuses the file.
 */
TEST_F(file, ext4_journal_data_file)
{
	const char *madv_path, *krs_path;
	int madv, krs, fd, flags;
	char *p;

	if (strcmp(variant->type, "ext4"))
		SKIP(return, "data journaling is ext4's");
	madv_path = new_path(self, "jdata-madv");
	krs_path = new_path(self, "jdata-krs");
	for (int twin = 0; twin < 2; twin++) {
		const char *path = twin ? krs_path : madv_path;

		fd = krs_make_file(path, 39, NPAGES, KRS_FILE_SYNCED);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, ioctl(fd, FS_IOC_GETFLAGS, &flags));
		flags |= FS_JOURNAL_DATA_FL;
		ASSERT_EQ(0, ioctl(fd, FS_IOC_SETFLAGS, &flags))
			TH_LOG("chattr +j %s: %s", path, strerror(errno));
		close(fd);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		ASSERT_LE(0, fd);
		p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		if (twin) {
			krs = krs_collapse(_metadata, self, true, "addr=%lx len=%lu",
					   (unsigned long)p, LEN);
			expect_same(_metadata, madv, krs);
			krs = krs_collapse(_metadata, self, true, "fd=%d offset=0 len=%lu",
					   fd, LEN);
			expect_same(_metadata, madv, krs);
		} else {
			madv = madv_collapse(p, LEN, true);
			EXPECT_EQ(-EINVAL, madv) TH_LOG("MADV_COLLAPSE: %s", strerror(-madv));
		}
		EXPECT_EQ(NPAGES, check_map(p, 39, 0, NPAGES));
		EXPECT_EQ(0, pmd_kb(p));
		munmap(p, LEN);
		close(fd);
	}
}

/* ramfs: no large folios at all; both refuse (EINVAL), fd= too. */
TEST(ramfs_file_refused)
{
	char dir[] = "/tmp/krs-ramfs.XXXXXX", path[64], cmd[128];
	int cfd, fd, madv, ret;
	char *p;

	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
	ASSERT_NE(NULL, mkdtemp(dir));
	if (mount("none", dir, "ramfs", 0, "mode=0700")) {
		ret = errno;
		rmdir(dir);
		SKIP(return, "mount -t ramfs: %s", strerror(ret));
	}
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = krs_make_file(path, 40, NPAGES, KRS_FILE_SYNCED);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	madv = madv_collapse(p, LEN, true);
	EXPECT_EQ(-EINVAL, madv) TH_LOG("MADV_COLLAPSE: %s", strerror(-madv));
	cfd = krs_collapse_open();
	ASSERT_LE(0, cfd);
	snprintf(cmd, sizeof(cmd), "addr=%lx len=%lu", (unsigned long)p, LEN);
	EXPECT_EQ(madv, krs_collapse_cmd(cfd, cmd)) TH_LOG("'%s'", cmd);
	snprintf(cmd, sizeof(cmd), "fd=%d offset=0 len=%lu", fd, LEN);
	EXPECT_EQ(madv, krs_collapse_cmd(cfd, cmd)) TH_LOG("'%s'", cmd);
	EXPECT_EQ(0, pmd_kb(p));
	EXPECT_EQ(NPAGES, check_map(p, 40, 0, NPAGES));
	close(cfd);
	munmap(p, LEN);
	close(fd);
	EXPECT_EQ(0, umount(dir));
	rmdir(dir);
}

/* ---- truncate and hole punch during the collapse ------------------------ */

#define RACE_SEED 41
#define RACE_PAGES KRS_PMD_PAGES
#define TRUNC_PAGES (RACE_PAGES / 2)
#define PUNCH_FIRST (RACE_PAGES / 4)
#define PUNCH_PAGES 64

enum race_op { OP_TRUNCATE, OP_PUNCH };

struct race_thread {
	int fd;
	enum race_op op;
	int ret;
	pid_t tid;
	int done;
	pthread_t thread;
};

static int do_op(int fd, enum race_op op)
{
	if (op == OP_TRUNCATE)
		return ftruncate(fd, TRUNC_PAGES * PAGE) ? -errno : 0;
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PUNCH_FIRST * PAGE,
			 PUNCH_PAGES * PAGE) ? -errno : 0;
}

static void *race_fn(void *arg)
{
	struct race_thread *t = arg;

	__atomic_store_n(&t->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	t->ret = do_op(t->fd, t->op);
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Thread @tid of this process is asleep uninterruptibly (blocked in the kernel). */
static bool thread_blocked(pid_t tid)
{
	return krs_task_state(tid) == 'D';
}

/* What the file must read after @op: the size, pattern pages, zeroes. */
static void check_after_op(struct __test_metadata *_metadata, int fd, enum race_op op)
{
	size_t pages = op == OP_TRUNCATE ? TRUNC_PAGES : RACE_PAGES;

	EXPECT_EQ((off_t)(pages * PAGE), file_size(fd));
	for (size_t i = 0; i < pages; i++) {
		bool hole = op == OP_PUNCH && i >= PUNCH_FIRST && i < PUNCH_FIRST + PUNCH_PAGES;
		int r = hole ? krs_pread_zero(fd, i) : krs_pread_check(fd, RACE_SEED, i);

		ASSERT_EQ(0, r) TH_LOG("file page %zu wrong after the %s", i,
				       op == OP_TRUNCATE ? "truncate" : "hole punch");
	}
}

/* The same through the mapping (up to EOF). */
static void check_map_after_op(struct __test_metadata *_metadata, const char *p,
			       enum race_op op)
{
	size_t pages = op == OP_TRUNCATE ? TRUNC_PAGES : RACE_PAGES;

	for (size_t i = 0; i < pages; i++) {
		bool hole = op == OP_PUNCH && i >= PUNCH_FIRST && i < PUNCH_FIRST + PUNCH_PAGES;
		const char *page = p + i * PAGE;

		ASSERT_TRUE(hole ? krs_page_is_zero(page) : !krs_check_page(page, RACE_SEED, i))
			TH_LOG("mapped page %zu wrong after the %s", i,
			       op == OP_TRUNCATE ? "truncate" : "hole punch");
	}
}

/*
 * A 2 MiB file, mapped, collapsed with addr= paused at @point (first
 * hit); @op done meanwhile (from a thread; if @blocks, the op is expected
 * to wait for the collapse's folio locks, and is given time to get there).
 * *@ret gets the collapse's 0 or -errno, *@kb FilePmdMapped after reading
 * what is left of the mapping.
 */
static void race_op(struct __test_metadata *_metadata, struct _test_data_file *self,
		    const char *path, enum race_op op, const char *point, bool blocks, int *ret,
		    long *kb)
{
	struct race_thread t = { .op = op };
	struct krs_bg_collapse c = { 0 };
	char *p;
	int fd, r;

	*ret = -ENOEXEC;
	*kb = -1;
	fd = krs_make_file(path, RACE_SEED, RACE_PAGES, KRS_FILE_SYNCED);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(PMD, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	t.fd = fd;
	ASSERT_EQ(0, krs_inject("pause=%s ino=%lu", point, file_ino(fd)));
	ASSERT_EQ(0, krs_bg_collapse_start(&c, "addr=%lx len=2M", (unsigned long)p));
	r = krs_inject_wait_paused(point, 1, WAIT_MS, &c.done);
	if (r) {
		krs_inject("release");
		krs_bg_collapse_join(&c, WAIT_MS);
		ASSERT_EQ(0, r) TH_LOG("no collapse paused at %s: %s; '%s' -> %zd, report:\n%s",
				       point, strerror(-r), c.cmd, c.ret, c.report);
	}
	ASSERT_EQ(0, pthread_create(&t.thread, NULL, race_fn, &t));
	for (int i = 0; i < 200 && !__atomic_load_n(&t.done, __ATOMIC_SEQ_CST); i++) {
		pid_t tid = __atomic_load_n(&t.tid, __ATOMIC_SEQ_CST);

		if (blocks && tid && i >= 10 && thread_blocked(tid))
			break;
		usleep(10 * 1000);
	}
	if (!blocks)
		EXPECT_EQ(1, __atomic_load_n(&t.done, __ATOMIC_SEQ_CST))
			TH_LOG("the %s waited for a collapse paused at %s",
			       op == OP_TRUNCATE ? "truncate" : "hole punch", point);
	ASSERT_EQ(0, krs_inject("release"));
	ASSERT_EQ(0, krs_bg_collapse_join(&c, WAIT_MS))
		TH_LOG("'%s' still running after the release", c.cmd);
	pthread_join(t.thread, NULL);
	EXPECT_EQ(0, t.ret) TH_LOG("the operation: %s", strerror(-t.ret));
	TH_LOG("'%s' -> %zd, report:\n%s", c.cmd, c.ret, c.report);
	EXPECT_FALSE(krs_has_kernel_pointer(c.report));
	*ret = c.ret < 0 ? (int)c.ret : 0;
	/*
	 * Where the operation did not wait for the collapse, an EAGAIN is
	 * tried again, as op_then_madv() does on MADV_COLLAPSE's side: the
	 * paused collapse's one attempt can meet a folio just read back in
	 * for the punched range and not yet on the LRU (SCAN_DEL_PAGE_LRU,
	 * met on the debug kernel).
	 */
	if (!blocks && *ret == -EAGAIN)
		*ret = krs_collapse(_metadata, self, true, "addr=%lx len=2M", (unsigned long)p);
	check_after_op(_metadata, fd, op);
	check_map_after_op(_metadata, p, op);
	*kb = pmd_kb(p);
	munmap(p, PMD);
	close(fd);
}

/* The same operation done before MADV_COLLAPSE, on a twin. */
static void op_then_madv(struct __test_metadata *_metadata, const char *path, enum race_op op,
			 int *ret, long *kb)
{
	char *p;
	int fd;

	fd = krs_make_file(path, RACE_SEED, RACE_PAGES, KRS_FILE_SYNCED);
	ASSERT_LE(0, fd);
	p = krs_map_aligned(PMD, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, do_op(fd, op));
	*ret = madv_collapse(p, PMD, true);
	check_after_op(_metadata, fd, op);
	check_map_after_op(_metadata, p, op);
	*kb = pmd_kb(p);
	munmap(p, PMD);
	close(fd);
}

/*
 * At after_scan and at the first scan_index nothing is locked yet: the
 * operation completes at once, and the collapse must end as MADV_COLLAPSE
 * does after the same operation (truncated into the extent: its pages
 * past EOF are not found, EINVAL; a hole punched: read back as zeroes,
 * collapsed). At before_copy the old folios are locked: the operation
 * waits for the collapse, which may succeed or fail; the file must read
 * as the operation left it and no PMD maps past EOF.
 */
static void race_case(struct __test_metadata *_metadata, struct _test_data_file *self,
		      enum race_op op, const char *point)
{
	bool blocks = !strcmp(point, "before_copy");
	long madv_kb, krs_kb;
	int madv, krs;

	op_then_madv(_metadata, new_path(self, "race-madv"), op, &madv, &madv_kb);
	EXPECT_EQ(op == OP_TRUNCATE ? -EINVAL : 0, madv)
		TH_LOG("MADV_COLLAPSE: %s", strerror(-madv));
	race_op(_metadata, self, new_path(self, "race-krs"), op, point, blocks, &krs,
		&krs_kb);
	if (!blocks) {
		expect_same(_metadata, madv, krs);
		EXPECT_EQ(madv_kb, krs_kb);
	} else {
		EXPECT_TRUE(krs == 0 || krs == -EINVAL || krs == -EAGAIN)
			TH_LOG("collapse: %s", strerror(-krs));
		if (op == OP_TRUNCATE)
			EXPECT_EQ(0, krs_kb) TH_LOG("a PMD maps past EOF");
	}
}

TEST_F(file, truncate_at_after_scan)
{
	race_case(_metadata, self, OP_TRUNCATE, "after_scan");
}

TEST_F(file, truncate_at_scan_index)
{
	race_case(_metadata, self, OP_TRUNCATE, "scan_index");
}

TEST_F(file, truncate_at_before_copy)
{
	race_case(_metadata, self, OP_TRUNCATE, "before_copy");
}

TEST_F(file, punch_at_after_scan)
{
	race_case(_metadata, self, OP_PUNCH, "after_scan");
}

TEST_F(file, punch_at_scan_index)
{
	race_case(_metadata, self, OP_PUNCH, "scan_index");
}

TEST_F(file, punch_at_before_copy)
{
	race_case(_metadata, self, OP_PUNCH, "before_copy");
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], TEXT_CHILD_ARG))
		return text_child();
	return test_harness_run(argc, argv);
}
