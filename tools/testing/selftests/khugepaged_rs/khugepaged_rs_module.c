// SPDX-License-Identifier: GPL-2.0
/*
 * The module itself: it loads into the running kernel and unloads cleanly,
 * resolves every symbol of its table (or refuses to load, naming the one
 * it could not), exposes its debugfs files with the documented modes, and
 * leaves no MMU notifier behind whatever its writers race.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "krs_test.h"

#define STATUS KRS_DEBUGFS "/status"
/* The name selftest_missing_symbol=1 adds to the table (include/khugepaged_rs.h). */
#define MISSING_SYMBOL "khugepaged_rs_selftest_no_such_symbol"

FIXTURE(loaded) {
	char buf[16384];
};

FIXTURE_SETUP(loaded)
{
	int ret;

	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ret = krs_ensure_loaded();
	ASSERT_EQ(0, ret) TH_LOG("loading khugepaged_rs: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(loaded)
{
}

/* Load and unload twice; the debugfs directory follows the module. */
TEST(load_unload_twice)
{
	struct stat st;

	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	if (krs_module_loaded())
		ASSERT_EQ(0, krs_unload());
	for (int round = 0; round < 2; round++) {
		ASSERT_EQ(0, krs_load(NULL)) TH_LOG("round %d", round);
		ASSERT_TRUE(krs_module_loaded());
		ASSERT_EQ(0, stat(KRS_DEBUGFS, &st));
		ASSERT_TRUE(S_ISDIR(st.st_mode));
		ASSERT_EQ(0, krs_unload()) TH_LOG("round %d", round);
		ASSERT_FALSE(krs_module_loaded());
		ASSERT_EQ(-1, stat(KRS_DEBUGFS, &st));
		ASSERT_EQ(ENOENT, errno);
	}
	ASSERT_EQ(0, krs_load(NULL));
}

/* Each file exists with the documented mode. */
TEST_F(loaded, debugfs_modes)
{
	static const struct { const char *name; mode_t mode; } files[] = {
		{ "status", 0400 },
		{ "collapse", 0600 },
		{ "stats", 0400 },
	};
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char path[256];

		snprintf(path, sizeof(path), KRS_DEBUGFS "/%s", files[i].name);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s", path);
		ASSERT_TRUE(S_ISREG(st.st_mode));
		EXPECT_EQ(files[i].mode, st.st_mode & 07777)
			TH_LOG("%s mode %o", path, st.st_mode & 07777);
		EXPECT_EQ(0U, st.st_uid);
	}
}

static int open_for_write(void *path)
{
	int fd = open(path, O_WRONLY);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EACCES ? 1 : 2;
}

/* A non-root process cannot open any of the module's files for writing. */
TEST_F(loaded, non_root_write_refused)
{
	EXPECT_EQ(1, krs_as_nobody(open_for_write, STATUS));
}

/* status reports the running kernel and every symbol of the table resolved. */
TEST_F(loaded, status_reports_all_symbols)
{
	unsigned int got = 0, total = 0, lines = 0;
	struct utsname u;
	int n;
	char kernel[128];
	char *line, *save;

	ASSERT_LT(0, krs_read_file(STATUS, self->buf, sizeof(self->buf)));
	ASSERT_EQ(0, uname(&u));
	ASSERT_NE(NULL, strstr(self->buf, "version: "));
	snprintf(kernel, sizeof(kernel), "kernel: %s\n", u.release);
	EXPECT_NE(NULL, strstr(self->buf, kernel)) TH_LOG("status:\n%s", self->buf);
	ASSERT_NE(NULL, strstr(self->buf, "ibt: "));
	line = strstr(self->buf, "symbols: ");
	ASSERT_NE(NULL, line);
	n = sscanf(line, "symbols: %u/%u resolved", &got, &total);
	ASSERT_EQ(2, n);
	EXPECT_LT(0U, total);
	EXPECT_EQ(total, got);
	for (line = strtok_r(self->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "symbol ", 7)) {
			lines++;
			EXPECT_NE(NULL, strstr(line, " resolved")) TH_LOG("%s", line);
		}
	}
	EXPECT_EQ(total, lines);
}

/* No kernel address appears in status. */
TEST_F(loaded, status_has_no_pointers)
{
	ASSERT_LT(0, krs_read_file(STATUS, self->buf, sizeof(self->buf)));
	EXPECT_EQ(NULL, strstr(self->buf, "0x"));
	EXPECT_EQ(NULL, strstr(self->buf, "ffff"));
}

/*
 * All or nothing: with one unresolvable name the load fails with ENOENT,
 * leaves no module and no debugfs directory, and dmesg names the symbol.
 */
TEST(missing_symbol_refuses_load)
{
	static char log[1 << 20];
	struct stat st;

	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	if (krs_module_loaded())
		ASSERT_EQ(0, krs_unload());
	ASSERT_EQ(-ENOENT, krs_load("selftest_missing_symbol=1"));
	EXPECT_FALSE(krs_module_loaded());
	EXPECT_EQ(-1, stat(KRS_DEBUGFS, &st));
	ASSERT_LT(0, krs_read_kmsg(log, sizeof(log)));
	EXPECT_NE(NULL, strstr(log, "khugepaged_rs: cannot resolve kernel symbol '"
				    MISSING_SYMBOL "'"));
	ASSERT_EQ(0, krs_load(NULL));
}

#define NOTIFIER_WRITERS 4
#define NOTIFIER_ROUNDS 150

static void *notifier_writer(void *arg)
{
	long id = (long)arg;

	for (int r = 0; r < NOTIFIER_ROUNDS; r++) {
		if ((r + id) % 5 == 4)
			krs_notifier("stop");
		else
			krs_notifier("pid=%d", getpid());
	}
	return NULL;
}

/* Invalidate one page of a private anonymous mapping: one CLEAR range. */
static void invalidate(char *page)
{
	page[0] = 1;
	madvise(page, 4096, MADV_DONTNEED);
}

/*
 * `notifier` writers racing (pid= and stop from four threads), then rmmod:
 * registrations are serialised, so after the last `stop` no notifier of
 * the module is left on the mm: nothing more is recorded, and once the
 * module is gone an invalidation in that mm does not call into its text.
 */
TEST(notifier_writers_race_then_rmmod)
{
	pthread_t threads[NOTIFIER_WRITERS];
	char log[4096], *page;
	unsigned int pid = 1, events = 1;
	int n;

	if (!krs_module_path())
		SKIP(return, "khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)");
	ASSERT_EQ(0, krs_ensure_loaded());
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, page);
	for (long i = 0; i < NOTIFIER_WRITERS; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, notifier_writer, (void *)i));
	for (int i = 0; i < NOTIFIER_WRITERS; i++)
		pthread_join(threads[i], NULL);

	ASSERT_EQ(0, krs_notifier("stop"));
	ASSERT_EQ(0, krs_notifier("clear"));
	invalidate(page);
	ASSERT_LT(0, krs_notifier_read(log, sizeof(log)));
	n = sscanf(log, "pid=%u events=%u", &pid, &events);
	ASSERT_EQ(2, n) TH_LOG("%s", log);
	EXPECT_EQ(0U, pid);
	/* A registration that outlived `stop` would still record (and outlive rmmod). */
	ASSERT_EQ(0U, events) TH_LOG("a notifier is still registered after stop:\n%s", log);

	ASSERT_EQ(0, krs_unload());
	invalidate(page);
	munmap(page, 4096);
	ASSERT_EQ(0, krs_load(NULL));
}

/*
 * TEST() takes no timeout: 120 s for this one, set before main(). Under
 * KASAN and lockdep on a loaded host it took over the default 30 s.
 */
static void __attribute__((constructor)) notifier_race_timeout(void)
{
	_notifier_writers_race_then_rmmod_object.timeout = 120;
}

TEST_HARNESS_MAIN
