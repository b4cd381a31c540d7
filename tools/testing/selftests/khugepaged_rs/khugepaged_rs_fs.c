// SPDX-License-Identifier: GPL-2.0
/*
 * The test bed's filesystems (tools/vm/filesystems): the VM mounts an XFS
 * at /mnt/xfs and an ext4 at /mnt/ext4, writable, with PMD-sized folios in
 * their page cache, so the regular-file collapse can be tested on them.
 * Checked here without the module: a file written, synced, dropped from the
 * page cache and read back, and a 4 MiB file whose mapping MADV_COLLAPSE
 * turns into two PMD mappings (FilePmdMapped 4096 kB) with its data intact.
 * Then the module's regular-file protections, each beside MADV_COLLAPSE on
 * a twin file: dirty pages are written back before they are collapsed (the
 * data survives the page cache being dropped), pages never read are read
 * in, and an extent past EOF fails as upstream's does (SCAN_FAIL, EINVAL).
 * A filesystem that is not mounted skips (the VM's init said why on the
 * console).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define FILE_SIZE (2 * KRS_PMD_SIZE)
#define FILE_PAGES (FILE_SIZE / KRS_PAGE_SIZE)

FIXTURE(fs) {
	char path[128];
	int fd;
	char thp_prev[32];
};

FIXTURE_VARIANT(fs) {
	const char *dir;
	const char *type;
};

FIXTURE_VARIANT_ADD(fs, xfs) {
	.dir = "/mnt/xfs",
	.type = "xfs",
};

FIXTURE_VARIANT_ADD(fs, ext4) {
	.dir = "/mnt/ext4",
	.type = "ext4",
};

/* Write FILE_PAGES pattern pages (@seed) through @fd and fsync; 0 or -errno. */
static int write_pattern(int fd, unsigned int seed)
{
	size_t i;
	int ret;

	for (i = 0; i < FILE_PAGES; i++) {
		ret = krs_pwrite_page(fd, seed, i);
		if (ret)
			return ret;
	}
	if (fsync(fd))
		return -errno;
	/* Clean now: drop the pages, so what follows reads them back. */
	return -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

FIXTURE_SETUP(fs)
{
	char type[64];

	self->fd = -1;
	self->thp_prev[0] = '\0';
	if (!krs_mounted_type(variant->dir, type, sizeof(type)))
		SKIP(return, "%s is not mounted (see the VM console for why)", variant->dir);
	ASSERT_STREQ(variant->type, type);
	/* khugepaged must not collapse the twins behind the tests' backs. */
	ASSERT_EQ(0, krs_thp_madvise(self->thp_prev, sizeof(self->thp_prev)));
	snprintf(self->path, sizeof(self->path), "%s/krs-fs-test.%d", variant->dir, getpid());
	self->fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, self->fd) TH_LOG("creating %s: %s", self->path, strerror(errno));
}

FIXTURE_TEARDOWN(fs)
{
	krs_thp_restore(self->thp_prev);
	if (self->fd >= 0) {
		close(self->fd);
		unlink(self->path);
	}
}

TEST_F(fs, is_mounted_and_writable)
{
	size_t i;
	int ret;

	ret = write_pattern(self->fd, 11);
	ASSERT_EQ(0, ret) TH_LOG("writing %s: %s", self->path, strerror(-ret));
	for (i = 0; i < FILE_PAGES; i++) {
		ret = krs_pread_check(self->fd, 11, i);
		ASSERT_EQ(0, ret) TH_LOG("page %zu of %s read back %s", i, self->path,
					 ret > 0 ? "wrong" : strerror(-ret));
	}
}

TEST_F(fs, has_pmd_folios)
{
	long pmd_kb = -1;
	char *p;
	size_t i;
	int ret = -1, rfd, tries;

	ret = write_pattern(self->fd, 12);
	ASSERT_EQ(0, ret) TH_LOG("writing %s: %s", self->path, strerror(-ret));
	/* Read-only, and not open for write any more. */
	close(self->fd);
	self->fd = -1;
	rfd = open(self->path, O_RDONLY);
	ASSERT_LE(0, rfd);
	p = krs_map_aligned(FILE_SIZE, PROT_READ, MAP_SHARED, rfd, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (tries = 0; tries < 5; tries++) {
		ret = madvise(p, FILE_SIZE, MADV_COLLAPSE);
		if (!ret || errno != EAGAIN)
			break;
		usleep(100 * 1000);
	}
	EXPECT_EQ(0, ret) TH_LOG("MADV_COLLAPSE of a %s file: %s (no PMD-sized folios?)",
				 variant->type, strerror(errno));
	pmd_kb = krs_smaps_kb(0, (unsigned long)p, "FilePmdMapped");
	EXPECT_EQ((long)(FILE_SIZE >> 10), pmd_kb);
	for (i = 0; i < FILE_PAGES; i++)
		if (krs_check_page(p + i * KRS_PAGE_SIZE, 12, i))
			break;
	EXPECT_EQ(FILE_PAGES, i) TH_LOG("page %zu wrong after the collapse", i);
	munmap(p, FILE_SIZE);
	close(rfd);
	unlink(self->path);
	/* The teardown unlinks through self->fd only. */
}

/* How an extent is collapsed: MADV_COLLAPSE, or the module's addr= form. */
enum how { BY_MADVISE, BY_MODULE };

static const char *const how_name[] = { "MADV_COLLAPSE", "the module" };

/*
 * Collapse [p, p + len) @how; 0 or -errno. EAGAIN is tried again a few
 * times, unless @once. For the module, the report's extents go to @ext (up
 * to @max; *@n_ext of them), when @ext is set.
 */
static int collapse(enum how how, bool once, void *p, size_t len, struct krs_extent *ext,
		    int max, int *n_ext)
{
	char cmd[96], report[4096];
	long status;
	ssize_t ret;
	int fd, n;

	if (how == BY_MADVISE) {
		for (n = 0; n < (once ? 1 : 5); n++) {
			if (!madvise(p, len, MADV_COLLAPSE))
				return 0;
			if (errno != EAGAIN)
				break;
			usleep(100 * 1000);
		}
		return -errno;
	}
	fd = krs_ensure_loaded();
	if (fd)
		return fd;
	fd = krs_collapse_open();
	if (fd < 0)
		return fd;
	snprintf(cmd, sizeof(cmd), "addr=0x%lx len=0x%zx", (unsigned long)p, len);
	ret = once ? krs_collapse_write(fd, cmd, strlen(cmd)) : krs_collapse_cmd(fd, cmd);
	if (ext) {
		n = -1;
		if (krs_collapse_report(fd, report, sizeof(report)) > 0)
			n = krs_report_parse(report, ext, max, &status);
		*n_ext = n;
	}
	close(fd);
	return ret < 0 ? (int)ret : 0;
}

/*
 * Dirty pages in the extent (written with pwrite() after the file was
 * synced, the writer closed): upstream refuses to collapse a dirty folio
 * into a clean one (SCAN_PAGE_DIRTY_OR_WRITEBACK), and MADV_COLLAPSE then
 * writes the extent back and tries once more. Both must collapse in one
 * call, and the data written must survive the page cache being dropped: a
 * dirty page copied into a clean huge folio would be lost with it.
 */
TEST_F(fs, dirty_pages_written_back_before_collapse)
{
	static const size_t dirty[] = { 1, 100, 511, 600, 1023 };
	enum how how;

	for (how = BY_MADVISE; how <= BY_MODULE; how++) {
		struct krs_extent ext[4];
		char path[160];
		int fd, ret, n = 0;
		size_t i, k;
		char *p;

		snprintf(path, sizeof(path), "%s.dirty%d", self->path, how);
		fd = krs_make_file(path, 21, FILE_PAGES, KRS_FILE_SYNCED);
		ASSERT_LE(0, fd) TH_LOG("writing %s: %s", path, strerror(-fd));
		for (k = 0; k < ARRAY_SIZE(dirty); k++)
			ASSERT_EQ(0, krs_pwrite_page(fd, 22, dirty[k]));
		fd = krs_reopen_ro(fd, path);
		ASSERT_LE(0, fd);
		p = krs_map_aligned(FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		/*
		 * The first attempt must get past the dirty pages (written back
		 * and tried again within the call: no extent may be left
		 * SCAN_PAGE_DIRTY_OR_WRITEBACK). What it may still meet is the
		 * transient EAGAIN of any collapse (a folio the write-back left
		 * in an LRU batch or locked, more often on a slow kernel), so
		 * both sides may try again then (design.rst).
		 */
		ret = collapse(how, true, p, FILE_SIZE, ext, ARRAY_SIZE(ext), &n);
		for (k = 0; how == BY_MODULE && (int)k < n; k++)
			EXPECT_STRNE("SCAN_PAGE_DIRTY_OR_WRITEBACK", ext[k].result);
		if (ret == -EAGAIN)
			ret = collapse(how, false, p, FILE_SIZE, NULL, 0, NULL);
		EXPECT_EQ(0, ret) TH_LOG("%s of a file with dirty pages: %s", how_name[how],
					 strerror(-ret));
		EXPECT_EQ((long)(FILE_SIZE >> 10),
			  krs_smaps_kb(0, (unsigned long)p, "FilePmdMapped"));
		munmap(p, FILE_SIZE);
		/* Drop what is clean; a dirty page copied into a clean folio goes too. */
		ASSERT_EQ(0, posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
		for (i = 0, k = 0; i < FILE_PAGES; i++) {
			bool was_dirty = k < ARRAY_SIZE(dirty) && dirty[k] == i;

			ret = krs_pread_check(fd, was_dirty ? 22 : 21, i);
			k += was_dirty;
			if (ret)
				break;
		}
		EXPECT_EQ(FILE_PAGES, i) TH_LOG("after %s and the page cache dropped: page %zu %s",
						how_name[how], i, "lost its data");
		close(fd);
		unlink(path);
	}
}

/*
 * Pages never read (the file synced and dropped from the page cache, the
 * mapping never touched): collapse_file() reads them in
 * (page_cache_sync_readahead) rather than leaving holes, which a regular
 * file cannot have.
 */
TEST_F(fs, pages_never_read_are_read_in)
{
	enum how how;

	for (how = BY_MADVISE; how <= BY_MODULE; how++) {
		char path[160];
		size_t i;
		char *p;
		int fd, ret;

		snprintf(path, sizeof(path), "%s.cold%d", self->path, how);
		fd = krs_make_ro_file(path, 23, FILE_PAGES, KRS_FILE_SYNCED);
		ASSERT_LE(0, fd) TH_LOG("writing %s: %s", path, strerror(-fd));
		ASSERT_EQ(0, posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
		p = krs_map_aligned(FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		ret = collapse(how, false, p, FILE_SIZE, NULL, 0, NULL);
		EXPECT_EQ(0, ret) TH_LOG("%s of pages never read: %s", how_name[how],
					 strerror(-ret));
		for (i = 0; i < FILE_PAGES; i++)
			if (krs_check_page(p + i * KRS_PAGE_SIZE, 23, i))
				break;
		EXPECT_EQ(FILE_PAGES, i) TH_LOG("%s: page %zu wrong", how_name[how], i);
		EXPECT_EQ((long)(FILE_SIZE >> 10),
			  krs_smaps_kb(0, (unsigned long)p, "FilePmdMapped"));
		munmap(p, FILE_SIZE);
		close(fd);
		unlink(path);
	}
}

/*
 * A file of one extent and one page, mapped over two extents: the second
 * extent holds one page and then EOF. Upstream's collapse_file() finds
 * nothing to read past EOF (filemap_lock_folio() fails): SCAN_FAIL, and
 * MADV_COLLAPSE's EINVAL; the first extent still collapses. The module
 * reports the same result, and nothing past EOF appears in the file.
 */
TEST_F(fs, extent_past_eof_fails)
{
	struct krs_extent ext[4];
	enum how how;

	for (how = BY_MADVISE; how <= BY_MODULE; how++) {
		size_t pages = KRS_PMD_SIZE / KRS_PAGE_SIZE + 1;
		char path[160];
		struct stat st;
		int fd, ret, n = 0;
		char *p;

		snprintf(path, sizeof(path), "%s.eof%d", self->path, how);
		fd = krs_make_ro_file(path, 24, pages, KRS_FILE_SYNCED);
		ASSERT_LE(0, fd) TH_LOG("writing %s: %s", path, strerror(-fd));
		p = krs_map_aligned(FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(MAP_FAILED, p);
		ret = collapse(how, false, p, FILE_SIZE, ext, ARRAY_SIZE(ext), &n);
		EXPECT_EQ(-EINVAL, ret) TH_LOG("%s over EOF: %s", how_name[how], strerror(-ret));
		EXPECT_EQ((long)(KRS_PMD_SIZE >> 10),
			  krs_smaps_kb(0, (unsigned long)p, "FilePmdMapped"));
		if (how == BY_MODULE) {
			ASSERT_EQ(2, n);
			EXPECT_STREQ("SCAN_FAIL", ext[1].result);
		}
		ASSERT_EQ(0, fstat(fd, &st));
		EXPECT_EQ((off_t)(pages * KRS_PAGE_SIZE), st.st_size);
		EXPECT_EQ(0, krs_pread_check(fd, 24, pages - 1));
		munmap(p, FILE_SIZE);
		close(fd);
		unlink(path);
	}
}

TEST_HARNESS_MAIN
