// SPDX-License-Identifier: GPL-2.0
/*
 * Differential tester: khugepaged_rs against MADV_COLLAPSE.
 *
 * From a seed, build a page-cache state for a file and a set of mappings of
 * it: written, read-faulted, fallocated and swapped-out pages, holes, extents
 * made huge beforehand (then partly unmapped, written or punched), shared and
 * private mappings (with CoW'd pages), mlock, uffd MISSING/WP/MINOR
 * registrations, MADV_NOHUGEPAGE, a file shorter than its mappings, and
 * large folios below PMD order (mTHP: mthp_step(), from a PRNG stream of its
 * own: faults with the per-size shmem knobs on, large writes, readahead;
 * the folios of the mapped pages, from /proc/kpageflags, are compared
 * before the collapse and counted in the summary). The file
 * is a memfd (tmpfs: the "shmem" backing, the default) or a regular file on
 * the VM's XFS or ext4 (tools/vm/filesystems). On a regular file, uffd
 * registrations are WP in async mode (MISSING and MINOR are shmem, hugetlb
 * and anonymous memory only), MADV_PAGEOUT drops clean page cache instead of
 * swapping, and file operations follow the mappings: write(), fsync and
 * fdatasync, fadvise DONTNEED after fdatasync (pages never read: readahead
 * at collapse), ftruncate shrink and extend, hole punch, fallocate.
 * Two identical twins are built by the same recipe (one PRNG
 * stream replayed); one is collapsed with madvise(MADV_COLLAPSE), the other
 * with debugfs `collapse` (`addr= len=`). Then compare, twin against twin:
 * the outcome (success or errno), every file page (pread) and every mapped
 * page (read through each mapping), st_blocks, and per mapping: the smaps
 * counters of each VMA, the pagemap flags and mincore of each page, and the
 * userfaults each registration received. The pre-collapse states are
 * compared too: a seed whose twins already differ is "unstable" (skipped).
 *
 *   khugepaged_rs_diff [--seeds N] [--start S] [--seed N] [--batch N] [-v]
 *                      [--strict] [--allow-gap] [--backing shmem|xfs|ext4]
 *                      [--cpus N]
 *
 *   --backing B  the twins' files: shmem (memfds), xfs or ext4 (two files
 *                on /mnt/xfs or /mnt/ext4; skipped if it is not mounted);
 *                default $KRS_DIFF_BACKING, else shmem. A regular-file
 *                backing sets vm.dirty_writeback_centisecs to 0 for the
 *                run (restored at exit): no periodic writeback, so which
 *                pages are dirty depends on the recipe only.
 *   --seeds N    run N seeds (default $KRS_DIFF_SEEDS, else 150: about a
 *                minute under TCG)
 *   --start S    first seed (default $KRS_DIFF_START, else 1)
 *   --seed N     run seed N only (same as --start N --seeds 1)
 *   --batch N    seeds per KTAP test line (default 50)
 *   -v           print each seed's recipe, request, results and report
 *   --strict     count the documented differences as divergences too
 *   --oracle     collapse both twins with MADV_COLLAPSE: a check of the
 *                tester (a recipe that does not build the same twins
 *                twice, or a comparison that sees timing), not of the module
 *   --allow-gap  do not count the "gap" class (below) as a divergence
 *   --cpus N     run on CPUs 0..N-1 (default $KRS_DIFF_CPUS, else 1): each
 *                seed builds both twins on one CPU and sends both requests
 *                from one CPU, each picked by the seed, so a request can
 *                find its small folios in another CPU's LRU batch (the
 *                collapse must drain them, lru_add_drain_all() per VMA, as
 *                madvise_collapse() does). Within a seed both twins see
 *                the same CPUs, and MADV_PAGEOUT runs where the pages were
 *                faulted (it drains the local batch only).
 *
 * On a regular-file backing, a seed that diverged (data excepted) is run
 * again, up to five times with --oracle and then up to three times as it
 * ran; if MADV_COLLAPSE ends a twin as the module ended its own, or a
 * rerun agrees, the difference was I/O timing and the seed counts as
 * unstable, not as a divergence (see ORACLE_RECHECKS).
 *
 * In the busy kernel (run under khugepaged_rs_actors: $KRS_ACTORS names the
 * actors started; `make soak ACTORS=...`), compaction, migration, reclaim,
 * drop_caches, the mTHP knobs and khugepaged move the twins' folios at
 * times of their own choosing, one twin and not the other, so only what
 * stays deterministic is compared (busy_outcome()):
 *  - the data, always, as above;
 *  - the outcome, unless a twin's errno is one an actor can cause (EAGAIN:
 *    a folio another path holds, locked, isolated or referenced; ENOMEM:
 *    the memcg's charge; EBUSY; EINVAL when reclaim, swap or drop_caches
 *    ran since the snapshot before it, see reclaim_events()), or the
 *    twins' files held different numbers of blocks before the collapse
 *    (drop_caches and reclaim free clean pages, read-faulted holes, of one
 *    twin's file and not the other's), or khugepaged collapsed pages
 *    meanwhile (an extent it collapsed succeeds where it might have
 *    failed);
 *  - not the state (smaps, pagemap, mincore, folios, st_blocks), before or
 *    after the collapse: swap-out, migration and khugepaged change it.
 * The outcomes left uncompared are counted ("busy") and printed at the end.
 *
 * One KTAP test per batch: "ok" when no seed of the batch diverged. Each
 * divergence prints its seed, its class, what differed, the module's report
 * and the command reproducing it. Seeds/second is printed at the end.
 *
 * Classes, from the VMAs the request covers before the collapse:
 *  - data: a file page (pread) differs, or a mapped page does while no
 *    MISSING userfault could have filled a hole: always a divergence.
 *  - gap: part of the range is unmapped and the module's errno is not
 *    MADV_COLLAPSE's (the ABI: the errno is madvise(2)'s for the range,
 *    ENOMEM for an unmapped part unless a VMA before it fails).
 *  - range in one VMA: anything that differs is a divergence, except
 *    MADV_COLLAPSE's EINVAL for an ineligible VMA when the range holds no
 *    whole extent (the ABI: such a range "succeeds doing nothing").
 *  - otherwise the range spans VMAs: the module's walk crosses them where
 *    madvise(2) stops at the first VMA that fails (design.rst,
 *    "Eligibility"): counted as expected, not as a divergence.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "krs_test.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

#define PAGE KRS_PAGE_SIZE
#define PMD KRS_PMD_SIZE
#define PMD_PAGES KRS_PMD_PAGES
#define MAX_EXT 3
#define MAX_MAPS 5
#define REGION (64UL << 20)
#define SLOT (10UL << 20)	/* mapping i at region + 2M + i * SLOT */
/*
 * A seed that takes longer is reported as hung. Generous: a regular-file
 * seed on the debug kernel (KASAN, lockdep) under TCG on a loaded host took
 * over 60 s.
 */
#define SEED_TIMEOUT 300

/* ---- options, log ------------------------------------------------------ */

static bool verbose, strict;
/* --oracle: both twins by MADV_COLLAPSE (any difference is the recipe's). */
static bool oracle_twice;
/* --cpus: the CPUs the seeds run on (0..ncpus-1). */
static unsigned int ncpus = 1;

static void run_on(unsigned int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		ksft_exit_fail_msg("sched_setaffinity(CPU %u): %s\n", cpu, strerror(errno));
}

/* The CPU a seed's step runs on (@salt: which step), from the seed alone. */
static unsigned int seed_cpu(uint64_t seed, uint64_t salt)
{
	struct krs_rng r = { seed ^ salt };

	return ncpus > 1 ? (unsigned int)krs_below(&r, ncpus) : 0;
}

static uint64_t cur_seed;

/* The twins' files: memfds, or regular files in a directory of a mount. */
struct backing {
	const char *name;
	const char *dir;	/* NULL: memfd */
	const char *fstype;
};

static const struct backing backings[] = {
	{ "shmem", NULL, "tmpfs" },
	{ "xfs", "/mnt/xfs", "xfs" },
	{ "ext4", "/mnt/ext4", "ext4" },
};

static const struct backing *backing = &backings[0];

/* A regular file (not shmem): the recipe's regular-file steps apply. */
static bool regular(void)
{
	return backing->dir;
}

static int log_twin = -1;	/* recipe steps are printed for twin 0 only */

static void __printf(1, 2) vlog(const char *fmt, ...)
{
	va_list ap;

	if (!verbose || log_twin != 0)
		return;
	va_start(ap, fmt);
	printf("#   ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

/* ---- userfaultfd: one handler thread for every registration ----------- */

enum { UF_MISSING = 1, UF_WP = 2, UF_MINOR = 4 };

struct uslot {
	int fd;			/* -1: free */
	unsigned long base;	/* the mapping, for page indexes and release */
	size_t len;
	unsigned int missing, wp, minor, errors;
};

#define MAX_USLOTS (2 * MAX_MAPS)
static struct uslot uslots[MAX_USLOTS];
static pthread_mutex_t ulock = PTHREAD_MUTEX_INITIALIZER;
static int uwake[2] = { -1, -1 };
static pthread_t uthread;

static int uresolve(struct uslot *s, unsigned long page, uint64_t flags)
{
	uint64_t src[PAGE / sizeof(uint64_t)];
	struct uffdio_range range = { .start = page, .len = PAGE };
	int ret = -1;

	for (int i = 0; i < 1000; i++) {
		if (flags & UFFD_PAGEFAULT_FLAG_WP) {
			struct uffdio_writeprotect wp = { .range = range, .mode = 0 };

			ret = ioctl(s->fd, UFFDIO_WRITEPROTECT, &wp);
		} else if (flags & UFFD_PAGEFAULT_FLAG_MINOR) {
			struct uffdio_continue c = { .range = range };

			ret = ioctl(s->fd, UFFDIO_CONTINUE, &c);
		} else {
			/* Same content in both twins: keyed by the page in the mapping. */
			struct uffdio_copy c = {
				.dst = page, .src = (uintptr_t)src, .len = PAGE,
			};

			krs_fill_page(src, 0xc0ffee, (page - s->base) / PAGE);
			ret = ioctl(s->fd, UFFDIO_COPY, &c);
		}
		if (!ret || errno != EAGAIN)
			break;
		usleep(1000);
	}
	if (ret && errno == EEXIST)
		ret = ioctl(s->fd, UFFDIO_WAKE, &range);
	return ret;
}

static void *uthread_fn(void *arg)
{
	for (;;) {
		struct pollfd pfd[MAX_USLOTS + 1];
		int idx[MAX_USLOTS + 1], n = 1, r;
		char c;

		pfd[0] = (struct pollfd){ .fd = uwake[0], .events = POLLIN };
		pthread_mutex_lock(&ulock);
		for (int i = 0; i < MAX_USLOTS; i++) {
			if (uslots[i].fd < 0)
				continue;
			pfd[n] = (struct pollfd){ .fd = uslots[i].fd, .events = POLLIN };
			idx[n++] = i;
		}
		pthread_mutex_unlock(&ulock);
		r = poll(pfd, n, 1000);
		if (r <= 0)
			continue;
		if (pfd[0].revents) {
			if (read(uwake[0], &c, 1) == 1 && c == 'q')
				return NULL;
			continue;
		}
		for (int k = 1; k < n; k++) {
			struct uslot *s = &uslots[idx[k]];
			struct uffd_msg msg;
			unsigned long page;
			uint64_t flags;

			if (!(pfd[k].revents & POLLIN))
				continue;
			pthread_mutex_lock(&ulock);
			if (s->fd != pfd[k].fd || read(s->fd, &msg, sizeof(msg)) != sizeof(msg) ||
			    msg.event != UFFD_EVENT_PAGEFAULT) {
				pthread_mutex_unlock(&ulock);
				continue;
			}
			page = msg.arg.pagefault.address & ~(PAGE - 1);
			flags = msg.arg.pagefault.flags;
			if (flags & UFFD_PAGEFAULT_FLAG_WP)
				s->wp++;
			else if (flags & UFFD_PAGEFAULT_FLAG_MINOR)
				s->minor++;
			else
				s->missing++;
			if (uresolve(s, page, flags)) {
				struct uffdio_range all = { .start = s->base, .len = s->len };

				/* Never leave a fault blocked: give the range up. */
				s->errors++;
				ioctl(s->fd, UFFDIO_UNREGISTER, &all);
				ioctl(s->fd, UFFDIO_WAKE, &all);
			}
			pthread_mutex_unlock(&ulock);
		}
	}
}

static int uslot_add(int fd, unsigned long base, size_t len)
{
	int ret = -1;

	pthread_mutex_lock(&ulock);
	for (int i = 0; i < MAX_USLOTS; i++) {
		if (uslots[i].fd >= 0)
			continue;
		uslots[i] = (struct uslot){ .fd = fd, .base = base, .len = len };
		ret = i;
		break;
	}
	pthread_mutex_unlock(&ulock);
	if (write(uwake[1], "w", 1) != 1)
		return -1;
	return ret;
}

static void uslot_del(int i)
{
	int fd;

	pthread_mutex_lock(&ulock);
	fd = uslots[i].fd;
	uslots[i].fd = -1;
	pthread_mutex_unlock(&ulock);
	/* If the byte is lost, the thread polls with a timeout anyway. */
	krs_ignore(write(uwake[1], "w", 1));
	if (fd >= 0)
		close(fd);
}

/* ---- mTHP: the per-size shmem knobs and counters ----------------------- */

#define THP_DIR "/sys/kernel/mm/transparent_hugepage"

/*
 * The sizes below PMD order the shmem mTHP step turns on
 * (hugepages-<kB>kB/shmem_enabled), and their shmem_alloc counters.
 */
static const unsigned int mthp_kb[] = { 16, 64 };
#define NR_MTHP ARRAY_SIZE(mthp_kb)

static struct mthp_knob {
	char path[96];
	char stat[96];
	char saved[32];		/* "" if the knob is not there */
} mthp_knobs[NR_MTHP];

static bool mthp_usable;	/* every knob and counter is there */

/* Save the knobs' values (main(), shmem backing); false if one is missing. */
static bool mthp_knobs_init(void)
{
	char buf[32];

	for (size_t k = 0; k < NR_MTHP; k++) {
		struct mthp_knob *kn = &mthp_knobs[k];

		snprintf(kn->path, sizeof(kn->path), THP_DIR "/hugepages-%ukB/shmem_enabled",
			 mthp_kb[k]);
		snprintf(kn->stat, sizeof(kn->stat), THP_DIR "/hugepages-%ukB/stats/shmem_alloc",
			 mthp_kb[k]);
		if (krs_sysfs_choice(kn->path, kn->saved, sizeof(kn->saved)) ||
		    krs_read_file(kn->stat, buf, sizeof(buf)) <= 0) {
			kn->saved[0] = '\0';
			return false;
		}
	}
	return true;
}

/*
 * Put the knobs back (a no-op write when a step did not change them).
 * Async-signal-safe (krs_write_str() is): on_alarm() calls it.
 */
static void mthp_knobs_restore(void)
{
	for (size_t k = 0; k < NR_MTHP; k++)
		if (mthp_knobs[k].saved[0])
			krs_ignore(krs_write_str(mthp_knobs[k].path, mthp_knobs[k].saved));
}

static long mthp_alloc_stat(size_t k)
{
	char buf[32];

	return krs_read_file(mthp_knobs[k].stat, buf, sizeof(buf)) > 0 ? atol(buf) : 0;
}

/* ---- a twin ------------------------------------------------------------ */

struct map {
	char *addr;
	size_t npages;		/* mapping length in pages */
	size_t off;		/* file page of its first page */
	bool shared, writable;
	int uslot;		/* -1 if no uffd */
	unsigned int umode;
};

struct twin {
	int id;
	int fd;
	char path[64];		/* a regular file's name, "" for a memfd */
	char *region;
	size_t fpages;		/* file size in pages */
	size_t nr_ext;
	struct map maps[MAX_MAPS];
	int nmaps;
	int pre_madv[MAX_EXT];	/* result of the set-up MADV_COLLAPSE per extent */
	bool mthp;		/* the recipe had an mTHP step (mthp_step()) */
	long mthp_alloc[NR_MTHP];	/* shmem_alloc per size during that step */
};

static unsigned int pat_seed(uint64_t seed, unsigned int version)
{
	return (unsigned int)(seed * 2654435761u) ^ (version << 24);
}

static bool in_file(struct twin *t, struct map *m, size_t i)
{
	return m->off + i < t->fpages;
}

/*
 * The twin's file, @size bytes: a memfd, or a new regular file in the
 * backing's directory (named by pid and twin, removed by destroy()).
 */
static int open_file(struct twin *t, size_t size)
{
	int fd, err;

	if (!regular())
		return krs_memfd("krs_diff", size);
	snprintf(t->path, sizeof(t->path), "%s/krs_diff.%d.%d", backing->dir, (int)getpid(),
		 t->id);
	/* A file left by a run that was killed: not ours any more. */
	unlink(t->path);
	fd = open(t->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		t->path[0] = '\0';
		return err;
	}
	if (ftruncate(fd, size)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Map @npages of the file from page @off at region slot @slot. */
static int add_map(struct twin *t, int slot, size_t off, size_t npages, bool shared, bool writable)
{
	struct map *m = &t->maps[t->nmaps];
	char *want = t->region + PMD + slot * SLOT;
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *p = mmap(want, npages * PAGE, prot,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE, t->fd,
		       off * PAGE);

	if (p != want) {
		ksft_print_msg("seed %lu: mmap slot %d: %s\n", cur_seed, slot,
			       p == MAP_FAILED ? strerror(errno) : "wrong address");
		if (p != MAP_FAILED)
			munmap(p, npages * PAGE);
		return -1;
	}
	*m = (struct map){ .addr = p, .npages = npages, .off = off, .shared = shared,
			   .writable = writable, .uslot = -1 };
	vlog("map %d: file pages [%zu, +%zu) %s %s", t->nmaps, off, npages,
	     shared ? "shared" : "private", writable ? "rw" : "ro");
	t->nmaps++;
	return 0;
}

static void touch_read(const char *p)
{
	(void)__atomic_load_n(p, __ATOMIC_RELAXED);
}

static void punch(int fd, size_t idx, size_t n)
{
	/* A failure is the same in both twins: nothing to do. */
	krs_ignore(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, idx * PAGE,
			     n * PAGE));
}

static int uffd_features(void)
{
	/*
	 * A regular file takes only WP, and only in async mode (the kernel
	 * resolves the faults; vma_can_userfault()).
	 */
	if (regular())
		return UFFD_FEATURE_WP_ASYNC;
	return UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
	       UFFD_FEATURE_MINOR_SHMEM;
}

/* Register map @m (pages [first, +n)) with mode @mode. */
static void uffd_register_map(struct twin *t, struct map *m, size_t first, size_t n,
			      unsigned int mode, struct krs_rng *r)
{
	uint64_t regmode = 0;
	int fd = krs_uffd_open(uffd_features()), slot, ret;

	if (regular())
		mode = UF_WP;
	if (mode & UF_MISSING)
		regmode |= UFFDIO_REGISTER_MODE_MISSING;
	if (mode & UF_WP)
		regmode |= UFFDIO_REGISTER_MODE_WP;
	if (mode & UF_MINOR)
		regmode |= UFFDIO_REGISTER_MODE_MINOR;
	if (fd < 0) {
		vlog("uffd open: %s", strerror(-fd));
		return;
	}
	ret = krs_uffd_register(fd, m->addr + first * PAGE, n * PAGE, regmode, NULL);
	vlog("uffd register map %ld pages [%zu, +%zu) mode%s%s%s: %s", (long)(m - t->maps),
	     first, n, mode & UF_MISSING ? " missing" : "", mode & UF_WP ? " wp" : "",
	     mode & UF_MINOR ? " minor" : "", ret ? strerror(-ret) : "ok");
	if (ret) {
		close(fd);
		return;
	}
	slot = uslot_add(fd, (unsigned long)m->addr, m->npages * PAGE);
	if (slot < 0) {
		close(fd);
		return;
	}
	m->uslot = slot;
	m->umode = mode;
	if ((mode & UF_WP) && krs_chance(r, 70)) {
		size_t a = first + krs_below(r, n), b = a + 1 + krs_below(r, first + n - a);

		ret = krs_uffd_wp(fd, m->addr + a * PAGE, (b - a) * PAGE, true);
		vlog("uffd wp-protect pages [%zu, %zu): %s", a, b, ret ? strerror(-ret) : "ok");
	}
}

/* A page range [*a, *b) of @n pages: all, a 2 MiB-aligned part, or any. */
static void pick_range(struct krs_rng *r, size_t n, size_t *a, size_t *b)
{
	switch (krs_below(r, 3)) {
	case 0:
		*a = 0;
		*b = n;
		break;
	case 1: {
		size_t ext = n / PMD_PAGES;

		if (ext) {
			size_t e0 = krs_below(r, ext), e1 = e0 + 1 + krs_below(r, ext - e0);

			*a = e0 * PMD_PAGES;
			*b = e1 * PMD_PAGES;
			break;
		}
	}
	fallthrough;
	default:
		*a = krs_below(r, n);
		*b = *a + 1 + krs_below(r, n - *a);
		break;
	}
}

/*
 * Regular files only: file operations once the mappings are made, the same
 * in both twins. Their outcome depends on the recipe only: periodic
 * writeback is off for the run (main()), the flushes used here wait for the
 * writeback they start (fsync, fdatasync, and fdatasync before fadvise
 * DONTNEED, which would otherwise start writeback and race with it), and
 * XFS and ext4 wait for theirs in ftruncate and hole punch. The file may
 * grow up to the end of the main mapping (writes, extension).
 */
static void file_ops(struct twin *t, struct krs_rng *r, uint64_t seed, unsigned int *version)
{
	static uint64_t buf[64 * PAGE / sizeof(uint64_t)];
	struct map *m = &t->maps[0];
	size_t limit = m->off + m->npages, a, b, n;
	int nops = krs_below(r, 6), ret;

	for (int k = 0; k < nops; k++) {
		switch (krs_below(r, 8)) {
		case 0:		/* write() a run of pages, maybe past EOF */
			a = krs_below(r, t->fpages + 1);
			n = 1 + krs_below(r, 64);
			if (a + n > limit)
				n = limit - a;
			if (!n)
				break;
			(*version)++;
			for (size_t j = 0; j < n; j++)
				krs_fill_page(buf + j * (PAGE / sizeof(uint64_t)),
					      pat_seed(seed, *version), a + j);
			/* Short or failed: the same in both twins. */
			if (lseek(t->fd, a * PAGE, SEEK_SET) == (off_t)(a * PAGE))
				krs_ignore(write(t->fd, buf, n * PAGE));
			if (a + n > t->fpages)
				t->fpages = a + n;
			vlog("write() file pages [%zu, +%zu)", a, n);
			break;
		case 1:
			ret = fsync(t->fd);
			vlog("fsync: %s", ret ? strerror(errno) : "ok");
			break;
		case 2:
			ret = fdatasync(t->fd);
			vlog("fdatasync: %s", ret ? strerror(errno) : "ok");
			break;
		case 3:		/* clean, then drop: pages never read */
			pick_range(r, t->fpages, &a, &b);
			krs_ignore(fdatasync(t->fd));
			if (krs_chance(r, 50)) {
				/* Unmap them from the main mapping first, so they can go. */
				size_t ma = a > m->off ? a - m->off : 0;
				size_t mb = b > m->off ? b - m->off : 0;

				if (mb > m->npages)
					mb = m->npages;
				if (mb > ma)
					madvise(m->addr + ma * PAGE, (mb - ma) * PAGE,
						MADV_DONTNEED);
				vlog("DONTNEED main pages [%zu, %zu)", ma, mb);
			}
			ret = posix_fadvise(t->fd, a * PAGE, (b - a) * PAGE, POSIX_FADV_DONTNEED);
			vlog("fdatasync, fadvise DONTNEED file pages [%zu, %zu): %s", a, b,
			     strerror(ret));
			break;
		case 4:		/* shrink, then maybe extend */
			n = 1 + krs_below(r, t->fpages);
			if (!ftruncate(t->fd, n * PAGE))
				t->fpages = n;
			vlog("ftruncate to %zu pages", n);
			if (krs_chance(r, 50)) {
				n = t->fpages + krs_below(r, limit - t->fpages + 1);
				if (!ftruncate(t->fd, n * PAGE))
					t->fpages = n;
				vlog("ftruncate to %zu pages", n);
			}
			break;
		case 5:		/* extend */
			n = t->fpages + krs_below(r, limit - t->fpages + 1);
			if (!ftruncate(t->fd, n * PAGE))
				t->fpages = n;
			vlog("ftruncate to %zu pages", n);
			break;
		case 6:
			a = krs_below(r, t->fpages);
			n = 1 + krs_below(r, PMD_PAGES);
			punch(t->fd, a, n);
			vlog("punch file pages [%zu, +%zu)", a, n);
			break;
		default:	/* unwritten extents, inside the file */
			a = krs_below(r, t->fpages);
			n = 1 + krs_below(r, PMD_PAGES);
			if (a + n > t->fpages)
				n = t->fpages - a;
			ret = fallocate(t->fd, 0, a * PAGE, n * PAGE);
			vlog("fallocate file pages [%zu, +%zu): %s", a, n,
			     ret ? strerror(errno) : "ok");
			break;
		}
	}
}

/*
 * Drop file pages [a, b) from the page cache: unmap them from every mapping
 * (MADV_DONTNEED: a private mapping's CoW'd copies go too), write them back
 * (fdatasync waits for it), fadvise DONTNEED.
 */
static void drop_range(struct twin *t, size_t a, size_t b)
{
	for (int k = 0; k < t->nmaps; k++) {
		struct map *x = &t->maps[k];
		size_t xa = a > x->off ? a - x->off : 0;
		size_t xb = b > x->off ? b - x->off : 0;

		if (xb > x->npages)
			xb = x->npages;
		if (xb > xa)
			madvise(x->addr + xa * PAGE, (xb - xa) * PAGE, MADV_DONTNEED);
	}
	krs_ignore(fdatasync(t->fd));
	krs_ignore(posix_fadvise(t->fd, a * PAGE, (b - a) * PAGE, POSIX_FADV_DONTNEED));
}

/* Read-fault some of file pages [a, b) through the main mapping. */
static void map_some(struct twin *t, struct krs_rng *r, size_t a, size_t b)
{
	struct map *m = &t->maps[0];

	for (size_t f = a; f < b; f++)
		if (f >= m->off && f - m->off < m->npages && in_file(t, m, f - m->off) &&
		    krs_chance(r, 60))
			touch_read(m->addr + (f - m->off) * PAGE);
}

/* The shmem half of mthp_step(): windows of the main mapping. */
static void mthp_shmem(struct twin *t, struct krs_rng *r, uint64_t seed, unsigned int version)
{
	struct map *m = &t->maps[0];
	unsigned int sizes = 1 + krs_below(r, (1 << NR_MTHP) - 1), dens = 30 + krs_below(r, 71);
	const char *mode = krs_chance(r, 25) ? "within_size" : "always";
	size_t win[2][2], nwin = 1 + krs_below(r, 2);
	long before[NR_MTHP];

	if (!mthp_usable)
		return;
	for (size_t w = 0; w < nwin; w++) {
		size_t e = krs_below(r, t->nr_ext), blk = krs_below(r, PMD_PAGES / 16);
		size_t a = e * PMD_PAGES + 16 * blk;

		win[w][0] = a;
		win[w][1] = a + 16 * (1 + krs_below(r, PMD_PAGES / 16 - blk));
		punch(t->fd, m->off + a, win[w][1] - a);
	}
	for (size_t k = 0; k < NR_MTHP; k++)
		before[k] = mthp_alloc_stat(k);
	for (size_t k = 0; k < NR_MTHP; k++)
		if (sizes & (1 << k))
			krs_ignore(krs_write_str(mthp_knobs[k].path, mode));
	for (size_t w = 0; w < nwin; w++) {
		for (size_t i = win[w][0]; i < win[w][1] && in_file(t, m, i); i++) {
			char *p = m->addr + i * PAGE;

			if (!krs_chance(r, dens))
				continue;
			if (krs_chance(r, 70))
				krs_fill_page(p, pat_seed(seed, version), m->off + i);
			else
				touch_read(p);
		}
	}
	mthp_knobs_restore();
	for (size_t k = 0; k < NR_MTHP; k++)
		t->mthp_alloc[k] = mthp_alloc_stat(k) - before[k];
	t->mthp = true;
	vlog("mTHP: punched, faulted main pages [%zu, %zu)%s, %u%%, %s%s%s %s: %s +%ld, %ld",
	     win[0][0], win[0][1], nwin > 1 ? " and another window" : "", dens,
	     sizes & 1 ? "16kB" : "", sizes == 3 ? "+" : "", sizes & 2 ? "64kB" : "", mode,
	     "shmem_alloc 16kB, 64kB", t->mthp_alloc[0], t->mthp_alloc[1]);
}

/* The regular-file half of mthp_step(): a large write(), or readahead. */
static void mthp_file(struct twin *t, struct krs_rng *r, uint64_t seed, unsigned int *version)
{
	static uint64_t buf[PMD / sizeof(uint64_t)];
	size_t e = krs_below(r, t->nr_ext), a, b, order;

	if (krs_chance(r, 40)) {
		/*
		 * Readahead: drop the extent and the rest of the file, read it
		 * all. Its first read must look sequential (a read ending
		 * where it starts, or the start of the file) for the window to
		 * start small and ramp up its folios; else one read-around
		 * window of order 0 may cover it all. The page before it is
		 * read before the drop (cached; a marker it held has fired)
		 * and after it (no I/O: it only sets where the last read
		 * ended).
		 */
		char c;

		a = e * PMD_PAGES;
		b = t->fpages;
		if (a >= b)
			return;
		if (a)
			krs_ignore(pread(t->fd, &c, 1, a * PAGE - 1));
		drop_range(t, a, b);
		if (a)
			krs_ignore(pread(t->fd, &c, 1, a * PAGE - 1));
		for (size_t p = a; p < b; p += 16)
			krs_ignore(pread(t->fd, buf, (b - p < 16 ? b - p : 16) * PAGE, p * PAGE));
		vlog("mTHP: dropped file pages [%zu, %zu), read them back 64 KiB at a time", a, b);
	} else {
		/* One write() of whole aligned chunks of 2^order pages, below 2 MiB. */
		order = 2 + krs_below(r, 7);
		a = e * PMD_PAGES + (krs_below(r, PMD_PAGES >> order) << order);
		b = a + ((1 + krs_below(r, 3)) << order);
		if (krs_chance(r, 25))
			a += 1 + krs_below(r, 3);
		if (b > (e + 1) * PMD_PAGES)
			b = (e + 1) * PMD_PAGES;
		if (b - a >= PMD_PAGES)
			b -= 1UL << order;
		if (a >= b)
			return;
		drop_range(t, a, b);
		(*version)++;
		for (size_t p = a; p < b; p++)
			krs_fill_page(buf + (p - a) * (PAGE / sizeof(uint64_t)),
				      pat_seed(seed, *version), p);
		/* Short or failed: the same in both twins. */
		krs_ignore(pwrite(t->fd, buf, (b - a) * PAGE, a * PAGE));
		if (b > t->fpages)
			t->fpages = b;
		vlog("mTHP: dropped file pages [%zu, %zu), one write() of them (%s of %u pages)",
		     a, b, "chunks", 1U << order);
	}
	map_some(t, r, a, b);
	t->mthp = true;
}

/*
 * The mTHP step: large folios below PMD order in part of the file. Its
 * choices come from a PRNG stream of its own, so the rest of every seed's
 * recipe is as it was before the step existed (a seed with the step holds
 * other folios from then on).
 * - shmem: punch a window (16-page aligned) of an extent or two, turn the
 *   per-size knobs on (hugepages-16kB and/or -64kB, shmem_enabled "always"
 *   or "within_size"), fault pages of the window in through the main
 *   mapping (written or read), put the knobs back. A memfd's mapping is
 *   anonymous shmem (it is unlinked when mapped), so its faults allocate by
 *   the per-size knobs (write() does not): each fault takes the largest size
 *   turned on whose aligned range is empty and fits the VMA and its
 *   alignment to the file, and is mapped whole. The shmem_alloc counters'
 *   change is kept per twin and compared before the collapse.
 * - regular file: drop a range from the page cache, then either write() it
 *   in one call (folios as large as alignment and length allow: 4 to 256
 *   pages, sometimes misaligned by a few) or, for the rest of the file from
 *   an extent on, read it sequentially to EOF (readahead ramps its folios
 *   up: order 0, 2, 4, 6; to EOF, so no readahead is left in flight); then
 *   map some of its pages by reading through the main mapping.
 * It runs before the swap-out step (MADV_PAGEOUT: the folios may be swapped
 * out, or dropped when clean) or, seven times in ten, after it. The folios
 * of the mapped pages are compared before the collapse (snapshot()): twins
 * whose folios differ are unstable.
 */
static void mthp_step(struct twin *t, uint64_t seed, unsigned int *version, bool late)
{
	struct krs_rng r = { seed ^ 0x6d7468702d737465ULL };

	if (!krs_chance(&r, regular() ? 50 : 40) || krs_chance(&r, 70) != late)
		return;
	if (regular())
		mthp_file(t, &r, seed, version);
	else
		mthp_shmem(t, &r, seed, *version + 1);
}

/*
 * Build twin @t from seed @seed: every random choice comes from one PRNG
 * stream seeded with @seed and depends on nothing observed, so both twins
 * get the same recipe.
 */
static int build(struct twin *t, uint64_t seed)
{
	struct krs_rng r = { seed };
	size_t nr_ext = 1 + krs_below(&r, MAX_EXT), npages = nr_ext * PMD_PAGES;
	unsigned int version = 1;
	struct map *m;
	int nextra;

	t->nr_ext = nr_ext;
	t->fpages = npages;
	if (krs_chance(&r, 10))
		t->fpages -= 1 + krs_below(&r, PMD_PAGES - 1);
	vlog("file: %zu pages, %zu extents", t->fpages, nr_ext);
	t->fd = open_file(t, t->fpages * PAGE);
	if (t->fd < 0) {
		ksft_print_msg("%s file: %s\n", backing->name, strerror(-t->fd));
		return -1;
	}
	t->region = mmap(NULL, REGION + PMD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);
	if (t->region == MAP_FAILED)
		return -1;
	/* Keep the address, give the space back: mappings go at fixed slots. */
	munmap(t->region, REGION + PMD);
	t->region = (char *)(((uintptr_t)t->region + PMD - 1) & ~(PMD - 1));

	/* The main mapping: shared, rw, the whole file (sometimes misaligned). */
	if (add_map(t, 0, krs_chance(&r, 4) ? 1 + krs_below(&r, 8) : 0, npages, true, true))
		return -1;
	m = &t->maps[0];

	/* Page states, extent by extent. */
	for (size_t e = 0; e < nr_ext; e++) {
		unsigned int profile = krs_below(&r, 7), dens = krs_below(&r, 101);

		vlog("extent %zu: profile %u density %u", e, profile, dens);
		for (size_t i = e * PMD_PAGES; i < (e + 1) * PMD_PAGES; i++) {
			size_t fi = m->off + i;
			unsigned int act;

			if (!in_file(t, m, i))
				break;
			switch (profile) {
			case 0:		/* full, written through the mapping */
				act = 0;
				break;
			case 1:		/* sparse */
				act = krs_chance(&r, dens) ? 0 : 4;
				break;
			case 2:		/* empty */
				act = 4;
				break;
			case 3:		/* fallocate mix */
				act = krs_chance(&r, dens) ? 2 : (krs_chance(&r, 50) ? 0 : 4);
				break;
			case 4:		/* read-faulted holes mix */
				act = krs_chance(&r, dens) ? 3 : (krs_chance(&r, 50) ? 1 : 4);
				break;
			case 5:		/* everything */
				act = krs_below(&r, 5);
				break;
			default:	/* all but a few */
				act = krs_chance(&r, 3) ? 4 : 1;
				break;
			}
			switch (act) {
			case 0:
				krs_fill_page(m->addr + i * PAGE, pat_seed(seed, version), fi);
				break;
			case 1:
				krs_pwrite_page(t->fd, pat_seed(seed, version), fi);
				break;
			case 2:
				/* A failure is the same in both twins. */
				krs_ignore(fallocate(t->fd, 0, fi * PAGE, PAGE));
				break;
			case 3:
				touch_read(m->addr + i * PAGE);
				break;
			}
		}
	}

	/* Extents made huge beforehand, then perturbed. */
	for (size_t e = 0; e < nr_ext; e++) {
		char *ea = m->addr + e * PMD;

		t->pre_madv[e] = 0;
		if (!krs_chance(&r, 25))
			continue;
		t->pre_madv[e] = madvise(ea, PMD, MADV_COLLAPSE) ? errno : 0;
		vlog("extent %zu: MADV_COLLAPSE first: %s", e, strerror(t->pre_madv[e]));
		version++;
		switch (krs_below(&r, 6)) {
		case 0: {	/* unmap part of the PMD: PTE-mapped huge page */
			size_t a = krs_below(&r, PMD_PAGES), n = 1 + krs_below(&r, PMD_PAGES - a);

			madvise(ea + a * PAGE, n * PAGE, MADV_DONTNEED);
			vlog("  DONTNEED pages [%zu, +%zu)", a, n);
			break;
		}
		case 1:		/* unmap all of it: huge page not mapped here */
			madvise(ea, PMD, MADV_DONTNEED);
			vlog("  DONTNEED all");
			break;
		case 2: {	/* write a few pages */
			for (int k = 0, n = 1 + krs_below(&r, 8); k < n; k++) {
				size_t i = e * PMD_PAGES + krs_below(&r, PMD_PAGES);

				if (in_file(t, m, i))
					krs_fill_page(m->addr + i * PAGE, pat_seed(seed, version),
						      m->off + i);
			}
			vlog("  wrote a few pages");
			break;
		}
		case 3: {	/* punch a hole: split the huge page */
			size_t i = m->off + e * PMD_PAGES + krs_below(&r, PMD_PAGES);
			size_t n = 1 + krs_below(&r, 4);

			punch(t->fd, i, n);
			vlog("  punch file pages [%zu, +%zu)", i, n);
			break;
		}
		default:
			break;
		}
	}

	/* Extra mappings. */
	nextra = krs_below(&r, MAX_MAPS);
	for (int k = 0; k < nextra; k++) {
		bool shared = krs_chance(&r, 55), writable = !shared || krs_chance(&r, 60);
		size_t off = 0, n = npages;
		struct map *x;

		if (krs_chance(&r, 40)) {
			size_t e0 = krs_below(&r, nr_ext);

			off = e0 * PMD_PAGES;
			n = (1 + krs_below(&r, nr_ext - e0)) * PMD_PAGES;
		}
		if (krs_chance(&r, 8))
			off += 1 + krs_below(&r, 16);
		if (add_map(t, 1 + k, off, n, shared, writable))
			return -1;
		x = &t->maps[t->nmaps - 1];
		/* Populate some PTEs by reading; CoW some pages of a private one. */
		if (krs_chance(&r, 70)) {
			size_t a, b;

			pick_range(&r, n, &a, &b);
			for (size_t i = a; i < b; i++)
				if (in_file(t, x, i) && krs_chance(&r, 80))
					touch_read(x->addr + i * PAGE);
			vlog("  map %d: read pages in [%zu, %zu)", t->nmaps - 1, a, b);
		}
		if (!shared && krs_chance(&r, 60)) {
			for (int c = 0, nc = 1 + krs_below(&r, 64); c < nc; c++) {
				size_t i = krs_below(&r, n);

				if (in_file(t, x, i))
					krs_fill_page(x->addr + i * PAGE, pat_seed(seed, 100 + k),
						      x->off + i);
			}
			vlog("  map %d: CoW'd some pages", t->nmaps - 1);
		}
	}

	/* Regular files: write(), fsync, drop, truncate, punch, fallocate. */
	if (regular())
		file_ops(t, &r, seed, &version);

	/* Large folios below PMD order, from a PRNG stream of their own. */
	mthp_step(t, seed, &version, false);

	/* Swap out pages mapped by the main mapping only. */
	if (krs_chance(&r, 35)) {
		size_t a, b;

		pick_range(&r, npages, &a, &b);
		for (size_t i = a; i < b && !in_file(t, m, i); i++)
			a = i + 1;
		while (b > a && !in_file(t, m, b - 1))
			b--;
		if (b > a) {
			int ret = madvise(m->addr + a * PAGE, (b - a) * PAGE, MADV_PAGEOUT);

			vlog("PAGEOUT main pages [%zu, %zu): %s", a, b,
			     ret ? strerror(errno) : "ok");
		}
	}

	/* Or here, after the swap-out, so that its folios stay in memory. */
	mthp_step(t, seed, &version, true);

	/* mlock, NOHUGEPAGE, uffd: per mapping. */
	for (int k = 0; k < t->nmaps; k++) {
		struct map *x = &t->maps[k];
		size_t lim = x->npages, a, b;

		while (lim && !in_file(t, x, lim - 1))
			lim--;
		if (lim && krs_chance(&r, k ? 10 : 15)) {
			bool onfault = krs_chance(&r, 50);
			int ret;

			pick_range(&r, lim, &a, &b);
			ret = syscall(SYS_mlock2, x->addr + a * PAGE, (b - a) * PAGE,
				      onfault ? MLOCK_ONFAULT : 0);
			vlog("mlock%s map %d pages [%zu, %zu): %s", onfault ? "(onfault)" : "", k,
			     a, b, ret ? strerror(errno) : "ok");
		}
		if (krs_chance(&r, 5)) {
			pick_range(&r, x->npages, &a, &b);
			madvise(x->addr + a * PAGE, (b - a) * PAGE, MADV_NOHUGEPAGE);
			vlog("NOHUGEPAGE map %d pages [%zu, %zu)", k, a, b);
		}
		if (krs_chance(&r, k ? 20 : 30)) {
			unsigned int mode = 1 + krs_below(&r, 7);

			if (!x->shared && (mode & UF_MINOR) && krs_chance(&r, 50))
				mode &= ~UF_MINOR;
			if (!mode)
				mode = UF_MISSING;
			pick_range(&r, x->npages, &a, &b);
			if (krs_chance(&r, 60)) {
				a = 0;
				b = x->npages;
			}
			uffd_register_map(t, x, a, b - a, mode, &r);
		}
	}
	return 0;
}

static void destroy(struct twin *t)
{
	for (int k = 0; k < t->nmaps; k++) {
		if (t->maps[k].uslot >= 0)
			uslot_del(t->maps[k].uslot);
		munmap(t->maps[k].addr, t->maps[k].npages * PAGE);
	}
	t->nmaps = 0;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->path[0])
		unlink(t->path);
	t->path[0] = '\0';
}

/* ---- snapshots --------------------------------------------------------- */

/* Growing text buffer. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static void __printf(2, 3) sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->s && b->len + n < b->cap) {
			b->len += n;
			return;
		}
		b->cap = (b->cap + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			abort();
	}
}

static char *smaps_buf;
#define SMAPS_SIZE (4 << 20)

static const char *const smaps_skip[] = {
	"Referenced", "KSM", "KernelPageSize", "MMUPageSize", NULL
};

/* Append the smaps of the VMAs inside map @m, addresses relative to it. */
static void snap_smaps(struct sbuf *b, const struct map *m)
{
	unsigned long base = (unsigned long)m->addr, end = base + m->npages * PAGE;
	char *line, *save, *copy;
	bool in = false;

	copy = strdup(smaps_buf);
	if (!copy)
		abort();
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long s, e;
		char name[64];
		bool skip = false;
		int n = 0;

		if (sscanf(line, "%lx-%lx %n", &s, &e, &n) == 2 && n > 0) {
			in = s >= base && e <= end;
			if (in)
				sb_add(b, " vma[%lx-%lx]", s - base, e - base);
			continue;
		}
		if (!in || sscanf(line, "%63[^:]:", name) != 1)
			continue;
		for (int i = 0; smaps_skip[i]; i++)
			skip |= !strcmp(name, smaps_skip[i]);
		if (skip)
			continue;
		if (!strcmp(name, "VmFlags")) {
			sb_add(b, " %s", line);
		} else {
			long v = strtol(strchr(line, ':') + 1, NULL, 10);

			if (v)
				sb_add(b, " %s=%ld", name, v);
		}
	}
	free(copy);
}

/* Pagemap flags (bits 55-63; PFN/swap entry masked) and mincore of each page of @m. */
static void snap_pages(struct sbuf *b, int pagemap, const struct map *m)
{
	size_t n = m->npages;
	uint64_t *pm = calloc(n, sizeof(*pm));
	unsigned char *mc = calloc(n, 1);
	size_t i = 0;

	if (!pm || !mc)
		abort();
	if (pread(pagemap, pm, n * sizeof(*pm), (off_t)((unsigned long)m->addr / PAGE * 8)) !=
	    (ssize_t)(n * sizeof(*pm)))
		sb_add(b, " pagemap-error");
	if (mincore(m->addr, n * PAGE, mc))
		sb_add(b, " mincore-error=%d", errno);
	/* Run-length: "i+len:flags/mincore". */
	while (i < n) {
		uint64_t f = pm[i] >> 55;
		unsigned int c = mc[i] & 1;
		size_t j = i + 1;

		while (j < n && pm[j] >> 55 == f && (mc[j] & 1) == c)
			j++;
		sb_add(b, " %zu+%zu:%lx/%u", i, j - i, f, c);
		i = j;
	}
	free(pm);
	free(mc);
}

static void snap_uffd(struct sbuf *b, const struct map *m)
{
	if (m->uslot < 0)
		return;
	pthread_mutex_lock(&ulock);
	sb_add(b, " uffd(missing=%u wp=%u minor=%u errors=%u)", uslots[m->uslot].missing,
	       uslots[m->uslot].wp, uslots[m->uslot].minor, uslots[m->uslot].errors);
	pthread_mutex_unlock(&ulock);
}

/*
 * A regular file's size and data ranges (SEEK_DATA, SEEK_HOLE), in pages.
 * Not st_blocks: it counts the extent tree's blocks too (ext4's index
 * blocks, XFS's bmbt), which depend on how fragmented the free space was
 * where each twin's blocks went.
 */
static void snap_data(struct sbuf *b, int fd, off_t size)
{
	off_t pos = 0, end;

	sb_add(b, "file: size=%lld data:", (long long)size);
	while (pos < size) {
		pos = lseek(fd, pos, SEEK_DATA);
		if (pos < 0)
			break;
		end = lseek(fd, pos, SEEK_HOLE);
		if (end < 0) {
			sb_add(b, " seek-error=%d", errno);
			break;
		}
		sb_add(b, " %lld-%lld", (long long)(pos / PAGE), (long long)(end / PAGE));
		pos = end;
	}
	sb_add(b, "\n");
}

/* /proc/kpageflags (include/uapi/linux/kernel-page-flags.h): compound pages. */
#define KPF_COMPOUND_HEAD 0x8000ULL	/* bit 15 */
#define KPF_COMPOUND_TAIL 0x10000ULL	/* bit 16 */
#define PMD_ORDER 9

static int kpageflags = -1;	/* opened in main(); -1: no folio lines */

/* The last large folio found: its PFNs and order. */
struct pfn_cache {
	uint64_t head, end;
	int order;
};

/*
 * The order of the folio holding @pfn, from the compound head and tail bits
 * of /proc/kpageflags: a small page's own flags tell, a large folio's are
 * read in its naturally aligned PMD-sized block of PFNs (a folio of order
 * 9 or less lies in one); -1 if it cannot be told.
 */
static int folio_order(struct pfn_cache *c, uint64_t pfn)
{
	static uint64_t flags[PMD_PAGES];
	uint64_t base = pfn & ~(uint64_t)(PMD_PAGES - 1), f;
	size_t i = pfn - base, j;
	ssize_t n;
	int order = 0;

	if (pfn >= c->head && pfn < c->end)
		return c->order;
	if (pread(kpageflags, &f, sizeof(f), pfn * 8) != sizeof(f))
		return -1;
	if (!(f & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL)))
		return 0;
	n = pread(kpageflags, flags, sizeof(flags), base * 8);
	if (n < (ssize_t)((i + 1) * 8))
		return -1;
	memset((char *)flags + n, 0, sizeof(flags) - n);
	while (i && !(flags[i] & KPF_COMPOUND_HEAD))
		i--;
	if (!(flags[i] & KPF_COMPOUND_HEAD))
		return -1;
	for (j = i + 1; j < PMD_PAGES && (flags[j] & KPF_COMPOUND_TAIL); j++)
		;
	while ((1UL << order) < j - i)
		order++;
	*c = (struct pfn_cache){ .head = base + i, .end = base + j, .order = order };
	return order;
}

/*
 * The order of the folio of each page of @m mapped there ("-": not mapped),
 * run-length; @pages[order] counts the pages.
 */
static void snap_folios(struct sbuf *b, int pagemap, const struct map *m, long *pages)
{
	struct pfn_cache c = { 0 };
	size_t n = m->npages, i = 0;
	uint64_t *pm = calloc(n, sizeof(*pm));
	int *ord = calloc(n, sizeof(*ord));

	if (!pm || !ord)
		abort();
	if (pread(pagemap, pm, n * sizeof(*pm), (off_t)((unsigned long)m->addr / PAGE * 8)) !=
	    (ssize_t)(n * sizeof(*pm)))
		sb_add(b, " pagemap-error");
	for (i = 0; i < n; i++) {
		uint64_t pfn = pm[i] & ((1ULL << 55) - 1);

		/* Present, not swapped, with its PFN (root only). */
		ord[i] = (pm[i] >> 63) && !((pm[i] >> 62) & 1) && pfn ? folio_order(&c, pfn) : -2;
		if (ord[i] >= 0)
			pages[ord[i]]++;
	}
	for (i = 0; i < n; ) {
		size_t j = i + 1;

		while (j < n && ord[j] == ord[i])
			j++;
		if (ord[i] == -2)
			sb_add(b, " %zu+%zu:-", i, j - i);
		else
			sb_add(b, " %zu+%zu:o%d", i, j - i, ord[i]);
		i = j;
	}
	free(pm);
	free(ord);
}

/*
 * The state of a twin, as text: one line per item compared. Before the
 * collapse (@folio_pages set: pages mapped per folio order, counted) it
 * also holds the folios of the mapped pages and what the mTHP step
 * allocated: twins whose folios differ are not the same twins.
 */
static void snapshot(struct twin *t, struct sbuf *b, long *folio_pages)
{
	struct stat st;
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (krs_read_file("/proc/self/smaps", smaps_buf, SMAPS_SIZE) < 0)
		smaps_buf[0] = '\0';
	if (fstat(t->fd, &st))
		memset(&st, 0, sizeof(st));
	if (regular())
		snap_data(b, t->fd, st.st_size);
	else
		sb_add(b, "file: size=%lld blocks=%lld\n", (long long)st.st_size,
		       (long long)st.st_blocks);
	for (int k = 0; k < t->nmaps; k++) {
		sb_add(b, "map %d smaps:", k);
		snap_smaps(b, &t->maps[k]);
		sb_add(b, "\nmap %d pages:", k);
		snap_pages(b, pagemap, &t->maps[k]);
		snap_uffd(b, &t->maps[k]);
		sb_add(b, "\n");
		if (folio_pages && kpageflags >= 0) {
			sb_add(b, "map %d folios:", k);
			snap_folios(b, pagemap, &t->maps[k], folio_pages);
			sb_add(b, "\n");
		}
	}
	if (folio_pages && t->mthp && !regular()) {
		sb_add(b, "mTHP step: shmem_alloc");
		for (size_t k = 0; k < NR_MTHP; k++)
			sb_add(b, " %ukB+%ld", mthp_kb[k], t->mthp_alloc[k]);
		sb_add(b, "\n");
	}
	if (pagemap >= 0)
		close(pagemap);
}

static uint64_t hash_page(const void *p)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < PAGE / 8; i++)
		h = (h ^ krs_read_u64(&w[i])) * 0x100000001b3ULL;
	return h;
}

/* Contents: every file page (pread), then every page of every mapping (in the file). */
static void contents(struct twin *t, struct sbuf *b)
{
	static uint64_t buf[PAGE / 8];

	sb_add(b, "file pages:");
	for (size_t i = 0; i < t->fpages; i++) {
		ssize_t n = pread(t->fd, buf, PAGE, i * PAGE);

		if (n != (ssize_t)PAGE)
			sb_add(b, " %zu:pread=%zd", i, n);
		else
			sb_add(b, " %lx", hash_page(buf) >> 32);
	}
	sb_add(b, "\n");
	for (int k = 0; k < t->nmaps; k++) {
		struct map *m = &t->maps[k];

		sb_add(b, "map %d pages:", k);
		for (size_t i = 0; i < m->npages && in_file(t, m, i); i++)
			sb_add(b, " %lx", hash_page(m->addr + i * PAGE) >> 32);
		sb_add(b, "\n");
	}
}

/* ---- the request ------------------------------------------------------- */

struct request {
	int map;		/* which mapping the range is in */
	size_t first, npages;	/* page range relative to it (may run past its end) */
	bool twice;		/* collapse the same range again afterwards */
};

static void pick_request(uint64_t seed, const struct twin *t, struct request *q)
{
	struct krs_rng r = { seed ^ 0x5eed5eed5eedULL };
	const struct map *m;
	size_t n;

	q->map = krs_chance(&r, 80) || t->nmaps == 1 ? 0 : 1 + krs_below(&r, t->nmaps - 1);
	m = &t->maps[q->map];
	n = m->npages;
	switch (krs_below(&r, 5)) {
	case 0:
	case 1:
		q->first = 0;
		q->npages = n;
		break;
	case 2:		/* one extent */
		q->first = krs_below(&r, n / PMD_PAGES) * PMD_PAGES;
		q->npages = PMD_PAGES;
		break;
	case 3:		/* unaligned start and length */
		q->first = krs_below(&r, PMD_PAGES);
		q->npages = 1 + krs_below(&r, n + PMD_PAGES - q->first);
		break;
	default:	/* past the end of the mapping (a gap follows it) */
		q->first = krs_below(&r, n / PMD_PAGES) * PMD_PAGES;
		q->npages = n - q->first + (1 + krs_below(&r, 2)) * PMD_PAGES;
		break;
	}
	q->twice = krs_chance(&r, 10);
}

/*
 * How the request lies in the VMAs of @t (before the collapse):
 * KIND_ONE: the whole range inside one VMA; KIND_EDGE: its whole extents
 * inside one VMA, but the range also covers another VMA or a gap outside
 * them; KIND_CROSS: its whole extents span VMAs or gaps. *@gap: part of the
 * range is not mapped; *@whole: the range holds at least one whole extent.
 */
enum kind { KIND_ONE, KIND_EDGE, KIND_CROSS };

static enum kind request_kind(struct twin *t, const struct request *q, bool *gap, bool *whole)
{
	unsigned long s = (unsigned long)t->maps[q->map].addr + q->first * PAGE;
	unsigned long e = s + q->npages * PAGE, covered = s;
	unsigned long hs = (s + PMD - 1) & ~(PMD - 1), he = e & ~(PMD - 1);
	char *buf = malloc(1 << 20), *line, *save;
	bool range = false, ext = hs >= he;

	*whole = hs < he;
	*gap = true;
	if (!buf || krs_read_file("/proc/self/maps", buf, 1 << 20) < 0) {
		free(buf);
		return KIND_CROSS;
	}
	/* /proc/self/maps is sorted: the range is covered if no VMA leaves a hole. */
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long vs, ve;

		if (sscanf(line, "%lx-%lx", &vs, &ve) != 2)
			continue;
		range |= vs <= s && e <= ve;
		ext |= vs <= hs && he <= ve;
		if (vs <= covered && ve > covered)
			covered = ve;
	}
	*gap = covered < e;
	free(buf);
	return range ? KIND_ONE : ext ? KIND_EDGE : KIND_CROSS;
}

static int do_madvise(unsigned long addr, size_t len)
{
	for (int attempt = 0; ; attempt++) {
		if (!madvise((void *)addr, len, MADV_COLLAPSE))
			return 0;
		if (errno != EAGAIN || attempt == 4)
			return -errno;
		usleep(50 * 1000);
	}
}

static int do_module(int cfd, unsigned long addr, size_t len, char *report, size_t size)
{
	char cmd[128];
	ssize_t n;

	snprintf(cmd, sizeof(cmd), "addr=%lx len=%zu", addr, len);
	n = krs_collapse_cmd(cfd, cmd);
	if (krs_collapse_report(cfd, report, size) < 0)
		report[0] = '\0';
	return n == (ssize_t)strlen(cmd) ? 0 : n < 0 ? (int)n : -EIO;
}

static const char *errname(int r)
{
	const char *name = r ? strerrorname_np(-r) : "success";

	return name ? name : "unknown errno";
}

/* Print the lines that differ between two snapshots. */
static void print_diff(const char *what, const char *a, const char *b)
{
	const char *pa = a, *pb = b;
	int shown = 0;

	while (*pa || *pb) {
		const char *ea = strchrnul(pa, '\n'), *eb = strchrnul(pb, '\n');

		if (ea - pa != eb - pb || memcmp(pa, pb, ea - pa)) {
			if (shown++ < 6) {
				int la = ea - pa > 900 ? 900 : (int)(ea - pa);
				int lb = eb - pb > 900 ? 900 : (int)(eb - pb);

				printf("#   %s MADV_COLLAPSE: %.*s\n", what, la, pa);
				printf("#   %s khugepaged_rs: %.*s\n", what, lb, pb);
			}
		}
		pa = *ea ? ea + 1 : ea;
		pb = *eb ? eb + 1 : eb;
	}
}

static const char *const kind_name[] = {
	[KIND_ONE] = "range in one VMA",
	[KIND_EDGE] = "extents in one VMA, range not",
	[KIND_CROSS] = "extents not in one VMA",
};

static uint64_t nkind[3];	/* seeds whose twins differed, by kind */
static bool allow_gap;

enum seed_result { SEED_SAME, SEED_DIVERGED, SEED_EXPECTED, SEED_UNSTABLE, SEED_ERROR };

static const char *prog = "khugepaged_rs_diff";

/*
 * Kernel settings a regular-file backing changes for the run, put back at
 * exit (also after a timeout):
 * - vm.dirty_writeback_centisecs 0: no periodic writeback, so a page stays
 *   dirty until the recipe or a collapse writes it back;
 * - THP "enabled" madvise (the VM boots with always): else the kernel's own
 *   khugepaged collapses the twins' regular-file mappings at times of its
 *   choosing, one twin and not the other. No VMA of the recipe is
 *   VM_HUGEPAGE; MADV_COLLAPSE and the module ignore the setting.
 */
#define KHUGEPAGED_COLLAPSED "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed"

static struct setting {
	const char *path, *value;
	char saved[128];	/* "" until changed */
} settings[] = {
	{ .path = "/proc/sys/vm/dirty_writeback_centisecs", .value = "0" },
	{ .path = "/sys/kernel/mm/transparent_hugepage/enabled", .value = "madvise" },
};

#define NR_SETTINGS ARRAY_SIZE(settings)

/* Async-signal-safe (krs_write_str() is): on_alarm() calls it. */
static void settings_restore(void)
{
	for (size_t i = 0; i < NR_SETTINGS; i++)
		if (settings[i].saved[0])
			krs_ignore(krs_write_str(settings[i].path, settings[i].saved));
}

/* 0, or -1 with the setting that could not be changed in *@what. */
static int settings_apply(const char **what)
{
	atexit(settings_restore);
	for (size_t i = 0; i < NR_SETTINGS; i++) {
		struct setting *st = &settings[i];
		char buf[sizeof(st->saved)], *v = buf, *e;

		*what = st->path;
		if (krs_read_file(st->path, buf, sizeof(buf)) <= 0)
			return -1;
		/* "always [madvise] never": the bracketed word. */
		if (strchr(buf, '['))
			v = strchr(buf, '[') + 1;
		e = v + strcspn(v, "]\n");
		*e = '\0';
		memcpy(st->saved, v, e - v + 1);
		if (krs_write_str(st->path, st->value))
			return -1;
	}
	return 0;
}

static long khugepaged_collapsed(void)
{
	char buf[32];

	return krs_read_file(KHUGEPAGED_COLLAPSED, buf, sizeof(buf)) > 0 ? atol(buf) : -1;
}

/*
 * The oracle's own repeatability, on a regular file: MADV_COLLAPSE's one
 * attempt at an extent can meet a folio still locked by its read
 * (readahead completing in the block layer: SCAN_PAGE_LOCK), or one the
 * write-back left off the LRU, and whether it does depends on I/O timing,
 * not on the recipe; so does the module's. A seed that diverged (data
 * excepted) is run again:
 *  - up to ORACLE_RECHECKS times with both twins collapsed by
 *    MADV_COLLAPSE: if either twin of a rerun ends exactly as the module's
 *    twin did (outcome and every state compared), the module did what
 *    MADV_COLLAPSE does at another moment;
 *  - else up to MODULE_RECHECKS times as it ran (MADV_COLLAPSE against the
 *    module): if a rerun finds no difference, the module does what
 *    MADV_COLLAPSE did when the timing is the same (XFS seed 660: extent 0
 *    SCAN_PAGE_LOCK on a folio still being read, in the module's run or
 *    not).
 * Either way the seed counts as unstable, printed after the difference it
 * showed first. If neither happens it stays a divergence. Data divergences
 * always count.
 */
#define ORACLE_RECHECKS 5
#define MODULE_RECHECKS 3

/* Set while a seed is run again by MADV_COLLAPSE on both twins: silent. */
static bool rechecking;

/* Seeds classed unstable by the rerun. */
static uint64_t oracle_unstable;

/* The last run_seed_once() found a data divergence. */
static bool data_diverged;

/*
 * The module's twin as the diverging run left it; a rerun sets
 * module_matched when a twin of it ends the same.
 */
static struct twin_end {
	int ret, ret2;
	char *post, *cont, *after;
} module_end;
static bool module_matched;

static void twin_end_set(struct twin_end *e, int ret, int ret2, const struct sbuf *post,
			 const struct sbuf *cont, const struct sbuf *after)
{
	free(e->post);
	free(e->cont);
	free(e->after);
	e->ret = ret;
	e->ret2 = ret2;
	e->post = strdup(post->s);
	e->cont = strdup(cont->s);
	e->after = strdup(after->s);
	if (!e->post || !e->cont || !e->after)
		abort();
}

static bool twin_end_is(const struct twin_end *e, int ret, int ret2, const struct sbuf *post,
			const struct sbuf *cont, const struct sbuf *after)
{
	return e->post && ret == e->ret && ret2 == e->ret2 && !strcmp(post->s, e->post) &&
	       !strcmp(cont->s, e->cont) && !strcmp(after->s, e->after);
}

/*
 * Evidence that the twins held large folios below PMD order, over the
 * seeds run (twin 0, before the collapse): printed at the end.
 */
static uint64_t mthp_seeds;		/* seeds whose recipe had an mTHP step */
static uint64_t mthp_folio_seeds;	/* seeds with a page mapped in such a folio */
static uint64_t mthp_pages[PMD_ORDER];	/* those pages, by folio order */
static long mthp_alloc_total[NR_MTHP];	/* shmem_alloc during the steps */

static void mthp_count(const struct twin *t, const long *folio_pages)
{
	bool any = false;

	mthp_seeds += t->mthp;
	for (size_t k = 0; k < NR_MTHP; k++)
		mthp_alloc_total[k] += t->mthp_alloc[k];
	for (int o = 1; o < PMD_ORDER; o++) {
		mthp_pages[o] += folio_pages[o];
		any |= folio_pages[o] > 0;
	}
	mthp_folio_seeds += any;
}

static void mthp_print(void)
{
	ksft_print_msg("mTHP: %lu seeds with the mTHP step; ", mthp_seeds);
	printf("%lu seeds with pages mapped in folios below PMD order before the collapse; ",
	       mthp_folio_seeds);
	printf("pages by order:");
	for (int o = 1; o < PMD_ORDER; o++)
		printf(" %d:%lu", o, mthp_pages[o]);
	if (kpageflags < 0)
		printf(" (no /proc/kpageflags: not counted)");
	if (!regular()) {
		printf("; shmem_alloc during the steps (twin 0):");
		for (size_t k = 0; k < NR_MTHP; k++)
			printf(" %ukB +%ld", mthp_kb[k], mthp_alloc_total[k]);
		if (!mthp_usable)
			printf(" (no per-size shmem knobs: no step)");
	}
	printf("\n");
}

/* Under khugepaged_rs_actors ($KRS_ACTORS): the busy kernel, above. */
static bool busy;
static uint64_t busy_uncompared;	/* seeds whose outcome an actor could change */
static uint64_t busy_differed;		/* of them: the twins' outcomes differed */

static uint64_t busy_reclaim_einval;	/* of them: an EINVAL with reclaim meanwhile */
static uint64_t busy_blocks_differ;	/* of them: the files' blocks differed before */

/*
 * The reclaim, swap and drop events so far (the sum of a few /proc/vmstat
 * counters, those the kernel has). The memcg actor's reclaim and
 * swap can end a collapse in EINVAL, madvise_collapse_errno()'s default:
 * the new huge folio swapped out between the commit and the PMD's
 * installation (SCAN_PAGE_NULL, as the module's report shows), or a
 * swapped-out page whose swap-in fails its charge (SCAN_FAIL). The drop
 * actor's drop_caches, and reclaim, free clean unmapped folios, shmem's
 * too: an extent whose pages were read-faulted holes (never written) and
 * no longer mapped can be left empty (SCAN_TRUNCATED). Whether it happens
 * depends on when the actor ran, not on the recipe, so a twin's EINVAL is
 * not compared when any of these moved between the snapshots before the
 * collapse and the end of that twin's.
 */
static long reclaim_events(void)
{
	static const char *const names[] = {
		"pswpin", "pswpout", "pgscan_kswapd", "pgscan_direct",
		"pgscan_khugepaged", "pgscan_proactive", "drop_pagecache",
	};
	return krs_vmstat_sum(names, ARRAY_SIZE(names));
}

/*
 * The module's own word for it: an extent of @report ended SCAN_PAGE_NULL,
 * SCAN_FAIL or SCAN_TRUNCATED, the results reclaim and drops give (above).
 */
static bool reclaim_result(const char *report)
{
	return strstr(report, " result=SCAN_PAGE_NULL ") || strstr(report, " result=SCAN_FAIL ") ||
	       strstr(report, " result=SCAN_TRUNCATED ");
}

/* @excused: the twin's EINVAL may be reclaim's (reclaim_events() moved, above). */
static bool actor_errno(int r, bool excused)
{
	return r == -EAGAIN || r == -ENOMEM || r == -EBUSY || (r == -EINVAL && excused);
}

/*
 * Busy kernel: may the twins' outcomes be compared? Not when a twin failed
 * with an errno an actor can cause, nor when the files held different
 * numbers of blocks before the collapse (@blocks_differ), nor when
 * khugepaged collapsed pages while the seed ran (@khd_moved).
 */
static bool busy_outcome(const int *ret, const int *ret2, const bool *excused,
			 bool blocks_differ, bool khd_moved)
{
	for (int i = 0; i < 2; i++)
		if (actor_errno(ret[i], excused[i]) || actor_errno(ret2[i], excused[i]))
			return false;
	return !blocks_differ && !khd_moved;
}

static enum seed_result run_seed_once(uint64_t seed, int cfd);

static enum seed_result run_seed(uint64_t seed, int cfd)
{
	enum seed_result res = run_seed_once(seed, cfd), again = SEED_SAME;
	int i, j = 0;

	if (res != SEED_DIVERGED || !regular() || oracle_twice || data_diverged)
		return res;
	rechecking = true;
	oracle_twice = true;
	module_matched = false;
	for (i = 0; i < ORACLE_RECHECKS && !module_matched && again != SEED_ERROR; i++)
		again = run_seed_once(seed, cfd);
	oracle_twice = false;
	if (!module_matched && again != SEED_ERROR) {
		again = SEED_DIVERGED;
		for (j = 0; j < MODULE_RECHECKS && again != SEED_SAME && again != SEED_ERROR; j++)
			again = run_seed_once(seed, cfd);
	}
	rechecking = false;
	if (again == SEED_ERROR)
		return again;
	if (!module_matched && again != SEED_SAME) {
		printf("#   MADV_COLLAPSE never ended as the module did (%d reruns), ", i);
		printf("nor did a rerun agree (%d): a divergence\n", j);
		return res;
	}
	if (module_matched)
		printf("# seed %lu: MADV_COLLAPSE ended as the module did in rerun %d", seed, i);
	else
		printf("# seed %lu: the module and MADV_COLLAPSE agreed in rerun %d", seed, j);
	printf(" (timing-dependent: unstable, not counted)\n");
	oracle_unstable++;
	return SEED_UNSTABLE;
}

static enum seed_result run_seed_once(uint64_t seed, int cfd)
{
	static char report[8192], report2[8192];
	struct twin tw[2];
	struct sbuf pre[2] = { 0 }, post[2] = { 0 }, cont[2] = { 0 }, after[2] = { 0 };
	long folio_pages[2][PMD_ORDER + 1] = { 0 };
	struct request q;
	int ret[2] = { 0 }, ret2[2] = { 0 };
	enum seed_result res = SEED_SAME;
	bool same_out, same_file, same_state;
	enum kind kind;
	bool uffd_missing = false, gap, whole, khd_moved = false;
	bool reclaimed[2] = { false }, excused[2] = { false };
	static const bool no_excuse[2];
	long reclaim0;
	long kcollapsed = regular() || busy ? khugepaged_collapsed() : -1;

	cur_seed = seed;
	data_diverged = false;
	alarm(SEED_TIMEOUT);
	memset(tw, 0, sizeof(tw));
	/* --cpus: where the twins are built (below: where the requests run). */
	run_on(seed_cpu(seed, 0xc905));
	for (int i = 0; i < 2; i++) {
		tw[i].id = i;
		tw[i].fd = -1;
		log_twin = i;
		if (build(&tw[i], seed)) {
			res = SEED_ERROR;
			goto out;
		}
	}
	log_twin = -1;
	reclaim0 = busy ? reclaim_events() : 0;
	for (int i = 0; i < 2; i++)
		snapshot(&tw[i], &pre[i], folio_pages[i]);
	if (!rechecking)
		mthp_count(&tw[0], folio_pages[0]);
	if (verbose && !rechecking) {
		/* The folios of the mapped pages, by mapping, and the mTHP step's counters. */
		for (const char *l = pre[0].s; *l; ) {
			const char *nl = strchrnul(l, '\n'), *f = strstr(l, " folios:");

			if ((f && f < nl) || !strncmp(l, "mTHP", 4))
				printf("#   before: %.*s\n", (int)(nl - l), l);
			l = *nl ? nl + 1 : nl;
		}
	}
	if (!busy && strcmp(pre[0].s, pre[1].s)) {
		if (!rechecking)
			printf("# seed %lu: twins differ before the collapse (unstable)\n", seed);
		if (verbose)
			print_diff("before", pre[0].s, pre[1].s);
		res = SEED_UNSTABLE;
		goto out;
	}
	pick_request(seed, &tw[0], &q);
	kind = request_kind(&tw[0], &q, &gap, &whole);
	for (int k = 0; k < tw[0].nmaps; k++)
		uffd_missing |= tw[0].maps[k].uslot >= 0 && (tw[0].maps[k].umode & UF_MISSING);
	run_on(seed_cpu(seed, 0x4e57));
	if (verbose && !rechecking && ncpus > 1)
		printf("#   CPUs: built on %u, requests from %u\n", seed_cpu(seed, 0xc905),
		       seed_cpu(seed, 0x4e57));
	for (int i = 0; i < 2; i++) {
		unsigned long addr = (unsigned long)tw[i].maps[q.map].addr + q.first * PAGE;
		size_t len = q.npages * PAGE;

		if (i == 0 || oracle_twice) {
			ret[i] = do_madvise(addr, len);
			if (q.twice)
				ret2[i] = do_madvise(addr, len);
		} else {
			ret[1] = do_module(cfd, addr, len, report, sizeof(report));
			if (q.twice)
				ret2[1] = do_module(cfd, addr, len, report2, sizeof(report2));
		}
		reclaimed[i] = busy && reclaim_events() != reclaim0;
	}
	/* An EINVAL reclaim may have caused; MADV_COLLAPSE does not say why, the module does. */
	excused[0] = reclaimed[0];
	excused[1] = reclaimed[1] &&
		     (oracle_twice || reclaim_result(report) ||
		      (q.twice && reclaim_result(report2)));
	if (verbose && !rechecking) {
		printf("# seed %lu: map %d pages [%zu, +%zu)%s, %s: MADV_COLLAPSE %s",
		       seed, q.map, q.first, q.npages, q.twice ? " twice" : "",
		       kind_name[kind], errname(ret[0]));
		printf(", khugepaged_rs %s\n", errname(ret[1]));
		if (q.twice)
			printf("#   again: MADV_COLLAPSE %s, khugepaged_rs %s\n", errname(ret2[0]),
			       errname(ret2[1]));
		printf("#   report:\n%s", report);
		if (q.twice)
			printf("#   report of the second:\n%s", report2);
	}
	for (int i = 0; i < 2; i++) {
		snapshot(&tw[i], &post[i], NULL);
		contents(&tw[i], &cont[i]);
		snapshot(&tw[i], &after[i], NULL);
	}
	khd_moved = kcollapsed >= 0 && khugepaged_collapsed() != kcollapsed;
	if (khd_moved && !busy) {
		/* A third collapser, in one twin or both: not comparable. */
		if (!rechecking)
			printf("# seed %lu: khugepaged collapsed pages meanwhile (unstable)\n",
			       seed);
		res = SEED_UNSTABLE;
		goto out;
	}
	if (rechecking && oracle_twice) {
		/* Both twins by MADV_COLLAPSE: does either end as the module's did? */
		for (int i = 0; i < 2; i++)
			module_matched |= twin_end_is(&module_end, ret[i], ret2[i], &post[i],
						      &cont[i], &after[i]);
		goto out;
	}
	same_out = ret[0] == ret[1] && ret2[0] == ret2[1];
	/* The first line of contents: the file through pread. */
	same_file = !strncmp(cont[0].s, cont[1].s, strchrnul(cont[0].s, '\n') - cont[0].s + 1);
	same_state = !strcmp(post[0].s, post[1].s) && !strcmp(cont[0].s, cont[1].s) &&
		     !strcmp(after[0].s, after[1].s);
	if (busy) {
		/* The data (the state is not compared), then the outcome if it can be. */
		bool compared, blocks_differ;

		/* The first line of a snapshot: the file's size and blocks. */
		size_t line = strchrnul(pre[0].s, '\n') - pre[0].s + 1;

		blocks_differ = strncmp(pre[0].s, pre[1].s, line);
		compared = busy_outcome(ret, ret2, excused, blocks_differ, khd_moved);

		same_state = same_file && (uffd_missing || !strcmp(cont[0].s, cont[1].s));
		if (!compared && !rechecking) {
			busy_uncompared++;
			busy_differed += !same_out;
			busy_blocks_differ += blocks_differ;
			/* Compared but for an EINVAL excused: that alone stopped it. */
			busy_reclaim_einval += busy_outcome(ret, ret2, no_excuse, blocks_differ,
							    khd_moved);
		}
		if (!compared)
			same_out = true;
	}
	if (!same_out || !same_state) {
		const char *why;

		/*
		 * Whatever the walk did, data never changes: a file page that
		 * reads differently is always a divergence, and so is a mapped
		 * page unless a MISSING userfault filled a hole.
		 */
		if (!same_file || (!uffd_missing && strcmp(cont[0].s, cont[1].s))) {
			res = SEED_DIVERGED;
			data_diverged = true;
			why = "DIVERGENCE (data)";
		} else if (gap && !same_out && !allow_gap) {
			/*
			 * The ABI: the errno is madvise(2)'s for the range (ENOMEM
			 * for an unmapped part, unless a VMA before it fails).
			 */
			res = SEED_DIVERGED;
			why = "DIVERGENCE (gap: part of the range unmapped, errno differs)";
		} else if (!whole && same_state && ret[0] == -EINVAL && !ret[1] &&
			   (!q.twice || (ret2[0] == -EINVAL && !ret2[1])) && !gap && !strict) {
			/*
			 * The ABI: "a range holding no whole 2 MiB extent
			 * succeeds doing nothing".
			 */
			res = SEED_EXPECTED;
			why = "expected (no whole extent: nothing to do)";
		} else if (kind == KIND_ONE || strict) {
			res = SEED_DIVERGED;
			why = "DIVERGENCE";
		} else {
			res = SEED_EXPECTED;
			why = "expected (walk crosses VMAs)";
		}
		if (rechecking)
			goto out;
		if (res == SEED_DIVERGED && !data_diverged)
			twin_end_set(&module_end, ret[1], ret2[1], &post[1], &cont[1], &after[1]);
		nkind[kind]++;
		if (res == SEED_DIVERGED || verbose) {
			printf("# %s seed %lu: map %d pages [%zu, +%zu)%s, %s\n", why, seed,
			       q.map, q.first, q.npages, q.twice ? " twice" : "", kind_name[kind]);
			if (ret[0] != ret[1] || ret2[0] != ret2[1])
				printf("#   outcome: MADV_COLLAPSE %s%s%s, khugepaged_rs %s%s%s\n",
				       errname(ret[0]), q.twice ? " then " : "",
				       q.twice ? errname(ret2[0]) : "", errname(ret[1]),
				       q.twice ? " then " : "", q.twice ? errname(ret2[1]) : "");
			else
				printf("#   outcome: both %s\n", errname(ret[0]));
			if (busy) {
				/* Uncompared, but what an actor changed shows here. */
				printf("#   %s: MADV_COLLAPSE %s, khugepaged_rs %s\n",
				       "reclaim, swap or drops by the end of the collapse",
				       reclaimed[0] ? "yes" : "no",
				       reclaimed[1] ? "yes" : "no");
				print_diff("before", pre[0].s, pre[1].s);
			}
			print_diff("after collapse", post[0].s, post[1].s);
			print_diff("contents", cont[0].s, cont[1].s);
			print_diff("after reading", after[0].s, after[1].s);
			if (!verbose) {
				for (char *l = report; *l; ) {
					char *nl = strchrnul(l, '\n');

					printf("#   report: %.*s\n", (int)(nl - l), l);
					l = *nl ? nl + 1 : nl;
				}
			}
			printf("#   reproduce: %s --backing %s --seed %lu -v\n", prog,
			       backing->name, seed);
		}
	}
out:
	log_twin = -1;
	for (int i = 0; i < 2; i++) {
		destroy(&tw[i]);
		free(pre[i].s);
		free(post[i].s);
		free(cont[i].s);
		free(after[i].s);
	}
	alarm(0);
	return res;
}

static void on_alarm(int sig)
{
	char msg[200];
	int n = snprintf(msg, sizeof(msg),
			 "# seed %lu timed out after %d s\n# reproduce: %s --backing %s --seed %lu -v\nBail out! timeout\n",
			 cur_seed, SEED_TIMEOUT, prog, backing->name, cur_seed);

	/* Nothing more to do if it cannot be written. */
	krs_ignore(write(1, msg, n));
	settings_restore();
	mthp_knobs_restore();
	_exit(KSFT_FAIL);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static void print_usage(void)
{
	printf("usage: %s [--seeds N] [--start S] [--seed N] [--batch N] [-v] [--strict]\n"
	       "       [--allow-gap] [--oracle] [--backing shmem|xfs|ext4] [--cpus N]\n", prog);
}

static const struct backing *find_backing(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(backings); i++)
		if (!strcmp(name, backings[i].name))
			return &backings[i];
	return NULL;
}

/* True if @dir is a mount point of type @fstype (/proc/mounts). */
static bool mounted(const char *dir, const char *fstype)
{
	char line[1024], mnt[256], type[64];
	FILE *f = fopen("/proc/mounts", "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %255s %63s", mnt, type) == 2 && !strcmp(mnt, dir) &&
			!strcmp(type, fstype);
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	uint64_t start = env_u64("KRS_DIFF_START", 1), nseeds = env_u64("KRS_DIFF_SEEDS", 150);
	uint64_t batch = 50, counts[5] = { 0 };
	const char *bname = getenv("KRS_DIFF_BACKING"), *what;
	struct timespec t0, t1;
	double secs;
	int cfd, ret;

	ncpus = env_u64("KRS_DIFF_CPUS", 1);
	busy = krs_busy_actors();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			verbose = true;
		} else if (!strcmp(a, "--allow-gap")) {
			allow_gap = true;
		} else if (!strcmp(a, "--strict")) {
			strict = true;
		} else if (!strcmp(a, "--oracle")) {
			oracle_twice = true;
		} else if (!strcmp(a, "--seeds") && v) {
			nseeds = strtoull(v, NULL, 0);
			i++;
		} else if (!strcmp(a, "--start") && v) {
			start = strtoull(v, NULL, 0);
			i++;
		} else if (!strcmp(a, "--seed") && v) {
			start = strtoull(v, NULL, 0);
			nseeds = 1;
			i++;
		} else if (!strcmp(a, "--batch") && v) {
			batch = strtoull(v, NULL, 0);
			i++;
		} else if (!strcmp(a, "--backing") && v) {
			bname = v;
			i++;
		} else if (!strcmp(a, "--cpus") && v) {
			ncpus = strtoul(v, NULL, 0);
			i++;
		} else {
			print_usage();
			return !strcmp(a, "-h") || !strcmp(a, "--help") ? 0 : KSFT_FAIL;
		}
	}
	if (!batch)
		batch = 1;
	if (bname && *bname) {
		backing = find_backing(bname);
		if (!backing) {
			print_usage();
			return KSFT_FAIL;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (regular() && !mounted(backing->dir, backing->fstype))
		ksft_exit_skip("%s is not mounted as %s\n", backing->dir, backing->fstype);
	if (!krs_module_path())
		ksft_exit_skip("khugepaged_rs.ko not found (set KHUGEPAGED_RS_KO)\n");
	ret = krs_ensure_loaded();
	if (ret)
		ksft_exit_fail_msg("loading khugepaged_rs: %s\n", strerror(-ret));
	cfd = krs_collapse_open();
	if (cfd < 0)
		ksft_exit_fail_msg("open %s: %s\n", KRS_COLLAPSE, strerror(-cfd));
	/*
	 * One CPU unless --cpus: MADV_PAGEOUT sees the pages of the local LRU
	 * batch only; run_seed_once() moves between CPUs 0..ncpus-1.
	 */
	if (!ncpus || ncpus > (unsigned int)get_nprocs())
		ksft_exit_fail_msg("--cpus %u: this machine has %d CPUs\n", ncpus, get_nprocs());
	run_on(0);
	smaps_buf = malloc(SMAPS_SIZE);
	for (int i = 0; i < MAX_USLOTS; i++)
		uslots[i].fd = -1;
	if (!smaps_buf || pipe2(uwake, O_CLOEXEC) ||
	    pthread_create(&uthread, NULL, uthread_fn, NULL))
		ksft_exit_fail_msg("set-up: %s\n", strerror(errno));
	signal(SIGALRM, on_alarm);
	if (regular() && settings_apply(&what))
		ksft_exit_fail_msg("%s: cannot set it: %s\n", what, strerror(errno));
	/* The mTHP step: per-size knobs on shmem, folios seen in kpageflags. */
	kpageflags = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (!regular()) {
		mthp_usable = mthp_knobs_init();
		atexit(mthp_knobs_restore);
		if (!mthp_usable)
			ksft_print_msg("no per-size shmem mTHP knobs (%s): no mTHP step\n",
				       THP_DIR "/hugepages-16kB/shmem_enabled");
	}

	ksft_set_plan((nseeds + batch - 1) / batch);
	ksft_print_msg("backing %s%s%s; seeds %lu..%lu; ", backing->name, regular() ? " on " : "",
		       regular() ? backing->dir : "", start, start + nseeds - 1);
	printf("reproduce one with: %s --backing %s --seed N -v\n", prog, backing->name);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t b = 0; b < nseeds; b += batch) {
		uint64_t n = nseeds - b < batch ? nseeds - b : batch;
		uint64_t first = start + b, last = first + n - 1;
		uint64_t c[5] = { 0 };

		for (uint64_t s = first; s <= last; s++)
			c[run_seed(s, cfd)]++;
		for (int i = 0; i < 5; i++)
			counts[i] += c[i];
		ksft_test_result(!c[SEED_DIVERGED] && !c[SEED_ERROR],
				 "seeds %lu..%lu: %lu divergences, %lu expected, %lu unstable, %lu errors\n",
				 first, last, c[SEED_DIVERGED], c[SEED_EXPECTED], c[SEED_UNSTABLE],
				 c[SEED_ERROR]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ksft_print_msg("%lu seeds in %.1f s (%.2f seeds/s): ", nseeds, secs,
		       secs > 0 ? nseeds / secs : 0.0);
	printf("%lu same, %lu divergences, %lu expected differences, ", counts[SEED_SAME],
	       counts[SEED_DIVERGED], counts[SEED_EXPECTED]);
	printf("%lu unstable (%lu of them: timing, found by running a divergence again), ",
	       counts[SEED_UNSTABLE], oracle_unstable);
	printf("%lu errors\n", counts[SEED_ERROR]);
	ksft_print_msg("seeds whose twins differed: %lu with the range in one VMA, ",
		       nkind[KIND_ONE]);
	printf("%lu with the extents in one VMA (edge), %lu with extents across VMAs\n",
	       nkind[KIND_EDGE], nkind[KIND_CROSS]);
	mthp_print();
	if (busy)
		ksft_print_msg("busy kernel (%s): %lu %s %s, %s %lu; %s %lu, %s %lu\n",
			       krs_busy_actors(), busy_uncompared, "seeds' outcomes not compared",
			       "(an actor's errno, the files' blocks or khugepaged's collapse)",
			       "the twins' differed in", busy_differed,
			       "the files' blocks differing before in", busy_blocks_differ,
			       "an EINVAL after reclaim or drops (only) in", busy_reclaim_einval);
	if (write(uwake[1], "q", 1) == 1)
		pthread_join(uthread, NULL);
	close(cfd);
	ksft_finished();
}
