// SPDX-License-Identifier: GPL-2.0
/*
 * The test bed's filesystems (tools/vm/filesystems): the VM mounts an XFS
 * at /mnt/xfs and an ext4 at /mnt/ext4, writable, with PMD-sized folios in
 * their page cache, so the regular-file collapse can be tested on them.
 * Checked here without the module: a file written, synced, dropped from the
 * page cache and read back, and a 4 MiB file whose mapping MADV_COLLAPSE
 * turns into two PMD mappings (FilePmdMapped 4096 kB) with its data intact.
 * A filesystem that is not mounted skips (the VM's init said why on the
 * console).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
	if (!krs_mounted_type(variant->dir, type, sizeof(type)))
		SKIP(return, "%s is not mounted (see the VM console for why)", variant->dir);
	ASSERT_STREQ(variant->type, type);
	snprintf(self->path, sizeof(self->path), "%s/krs-fs-test.%d", variant->dir, getpid());
	self->fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, self->fd) TH_LOG("creating %s: %s", self->path, strerror(errno));
}

FIXTURE_TEARDOWN(fs)
{
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

TEST_HARNESS_MAIN
