// SPDX-License-Identifier: GPL-2.0
/*
 * Thin C wrappers for the kernel inline functions and macros the collapse
 * uses, whose bodies need only exported symbols. Each does one kernel
 * operation and decides nothing. Wrappers that call a function the kernel
 * does not export live in rust/helpers/symbols.c, next to the pointers.
 */
#include <linux/capability.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/folio_batch.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/huge_mm.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/pagemap.h>
#include <linux/rcupdate.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/leafops.h>
#include <linux/userfaultfd_k.h>
#include <linux/xarray.h>
#include <linux/backing-dev.h>
#include <linux/delay.h>
#include <linux/freezer.h>
#include <linux/kthread.h>
#include <linux/sched/task.h>
#include <linux/wait.h>

#include "khugepaged_rs.h"

/* Folios. */
bool krs_folio_trylock(struct folio *folio) { return folio_trylock(folio); }
void krs_folio_unlock(struct folio *folio) { folio_unlock(folio); }
void krs_folio_get(struct folio *folio) { folio_get(folio); }
void krs_folio_put(struct folio *folio) { folio_put(folio); }
int krs_folio_ref_count(struct folio *folio) { return folio_ref_count(folio); }
void krs_folio_ref_sub(struct folio *folio, int nr) { folio_ref_sub(folio, nr); }
int krs_folio_expected_ref_count(struct folio *folio) { return folio_expected_ref_count(folio); }
bool krs_folio_try_get(struct folio *folio) { return folio_try_get(folio); }
long krs_folio_nr_pages(struct folio *folio) { return folio_nr_pages(folio); }
unsigned int krs_folio_order(struct folio *folio) { return folio_order(folio); }
unsigned long krs_folio_index(struct folio *folio) { return folio->index; }
unsigned long krs_folio_pfn(struct folio *folio) { return folio_pfn(folio); }
bool krs_folio_test_uptodate(struct folio *folio) { return folio_test_uptodate(folio); }
bool krs_folio_test_lru(struct folio *folio) { return folio_test_lru(folio); }
bool krs_folio_test_dirty(struct folio *folio) { return folio_test_dirty(folio); }
bool krs_folio_test_writeback(struct folio *folio) { return folio_test_writeback(folio); }
bool krs_folio_mapped(struct folio *folio) { return folio_mapped(folio); }
struct address_space *krs_folio_mapping(struct folio *folio) { return folio_mapping(folio); }
struct page *krs_folio_page(struct folio *folio, unsigned long n) { return folio_page(folio, n); }
unsigned long krs_folio_place(struct folio *folio, struct address_space *mapping,
			      unsigned long *index)
{
	if (folio_mapping(folio) != mapping)
		return 0;
	*index = folio->index;
	return folio_nr_pages(folio);
}

bool krs_folio_release(struct folio *folio) { return filemap_release_folio(folio, GFP_KERNEL); }

int krs_folio_nid(struct folio *folio) { return folio_nid(folio); }

struct folio *krs_folio_alloc_pmd(bool light, int node, const unsigned int *node_load,
				  unsigned int max_load, bool *zeroed)
{
	/*
	 * alloc_charge_folio(): the mode's gfp on collapse_find_target_node()'s
	 * node (Rust picks it from node_load), with alloc_nmask: every online
	 * node whose load is the maximum. A node that is not online (it went
	 * away since the scan) gives way to the local one. Where init_on_alloc
	 * makes the allocator zero the folio anyway, __GFP_ZERO costs nothing
	 * more and turns that into a guarantee the copy can rely on: its holes
	 * need no clear_highpage() (collapse_file() zeroes them a second time).
	 */
	gfp_t gfp = light ? GFP_TRANSHUGE_LIGHT : GFP_TRANSHUGE;
	bool zero = want_init_on_alloc(gfp);
	nodemask_t nmask = NODE_MASK_NONE;
	struct folio *folio;
	int nid;

	for_each_online_node(nid)
		if (node_load[nid] == max_load)
			node_set(nid, nmask);
	if (node < 0 || node >= MAX_NUMNODES || !node_online(node))
		node = numa_node_id();
	folio = __folio_alloc(gfp | (zero ? __GFP_ZERO : 0), HPAGE_PMD_ORDER, node, &nmask);

	/*
	 * alloc_charge_folio() (7.3: count_collapse_event()): the vm event,
	 * then the per-size stat, before the memcg charge.
	 */
	count_vm_event(folio ? THP_COLLAPSE_ALLOC : THP_COLLAPSE_ALLOC_FAILED);
	krs_count_mthp_collapse_alloc(folio);
	*zeroed = folio && zero;
	return folio;
}

/* The alloc fail point fails as __folio_alloc() would: counted the same. */
void krs_count_collapse_alloc_failed(void)
{
	count_vm_event(THP_COLLAPSE_ALLOC_FAILED);
	krs_count_mthp_collapse_alloc(false);
}

void krs_count_scan_exceed_none(void) { count_vm_event(THP_SCAN_EXCEED_NONE_PTE); }
void krs_count_scan_exceed_swap(void) { count_vm_event(THP_SCAN_EXCEED_SWAP_PTE); }

void krs_new_folio_init(struct folio *folio, struct address_space *mapping,
			unsigned long index, bool shmem)
{
	__folio_set_locked(folio);
	if (shmem)
		__folio_set_swapbacked(folio);
	folio->index = index;
	folio->mapping = mapping;
}

void krs_new_folio_clear_mapping(struct folio *folio) { folio->mapping = NULL; }

void krs_new_folio_publish(struct folio *folio, bool shmem)
{
	if (shmem) {
		lruvec_stat_mod_folio(folio, NR_SHMEM, HPAGE_PMD_NR);
		lruvec_stat_mod_folio(folio, NR_SHMEM_THPS, HPAGE_PMD_NR);
	} else {
		lruvec_stat_mod_folio(folio, NR_FILE_THPS, HPAGE_PMD_NR);
	}
	lruvec_stat_mod_folio(folio, NR_FILE_PAGES, HPAGE_PMD_NR);
	/* Uptodate before it is visible, or it looks fallocated-unwritten. */
	folio_mark_uptodate(folio);
	folio_ref_add(folio, HPAGE_PMD_NR - 1);
	if (shmem)
		folio_mark_dirty(folio);
	folio_add_lru(folio);
}

/* The vmstat half of collapse_file()'s retirement of @pages old pages. */
static void krs_old_folios_stat(struct folio *folio, long pages, bool shmem)
{
	lruvec_stat_mod_folio(folio, NR_FILE_PAGES, -pages);
	if (shmem)
		lruvec_stat_mod_folio(folio, NR_SHMEM, -pages);
}

void krs_old_folios_retire(struct folio **folios, unsigned int nr, bool shmem)
{
	unsigned int refs[FOLIO_BATCH_SIZE];
	struct folio_batch fbatch;
	struct folio *first = NULL;
	long pages = 0;
	unsigned int i;

	/*
	 * The stats, summed over each run of folios of one memcg and node:
	 * one update per run and counter gives the totals of one per folio
	 * (the folios are locked and isolated: their memcg cannot change).
	 * folio_memcg() wants the RCU read lock (lockdep asserts it: the
	 * memcg behind an objcg can be reparented and freed); the stats
	 * updates take it themselves and nest.
	 */
	rcu_read_lock();
	for (i = 0; i < nr; i++) {
		if (first && (folio_memcg(folios[i]) != folio_memcg(first) ||
			      folio_pgdat(folios[i]) != folio_pgdat(first))) {
			krs_old_folios_stat(first, pages, shmem);
			first = NULL;
			pages = 0;
		}
		if (!first)
			first = folios[i];
		pages += folio_nr_pages(folios[i]);
	}
	if (first)
		krs_old_folios_stat(first, pages, shmem);
	rcu_read_unlock();

	/* Then each folio as collapse_file() does, the puts batched. */
	folio_batch_init(&fbatch);
	for (i = 0; i < nr; i++) {
		struct folio *folio = folios[i];

		refs[folio_batch_count(&fbatch)] = 2 + folio_nr_pages(folio);
		folio->mapping = NULL;
		folio_clear_active(folio);
		folio_clear_unevictable(folio);
		folio_unlock(folio);
		if (!folio_batch_add(&fbatch, folio))
			folios_put_refs(&fbatch, refs);
	}
	if (folio_batch_count(&fbatch))
		folios_put_refs(&fbatch, refs);
}

unsigned long krs_copy_mc_folio(struct folio *dst, unsigned long n, struct folio *src)
{
	unsigned long i, nr = folio_nr_pages(src);

	if (n + nr > folio_nr_pages(dst))
		return 0;
	for (i = 0; i < nr; i++)
		if (copy_mc_highpage(folio_page(dst, n + i), folio_page(src, i)))
			break;
	return i;
}

void krs_zero_pages(struct folio *dst, unsigned long n, unsigned long nr)
{
	for (; nr; n++, nr--) {
		void *kaddr = kmap_local_page(folio_page(dst, n));

		memset(kaddr, 0, PAGE_SIZE);
		kunmap_local(kaddr);
	}
}

/* The xarray. */
void krs_xas_init(struct xa_state *xas, struct address_space *mapping,
		  unsigned long index, unsigned int order)
{
	XA_STATE_ORDER(tmp, &mapping->i_pages, index, order);

	*xas = tmp;
}

void krs_xas_set(struct xa_state *xas, unsigned long index) { xas_set(xas, index); }
void krs_xas_set_order(struct xa_state *xas, unsigned long index, unsigned int order)
{
	xas_set_order(xas, index, order);
}

void *krs_xas_load(struct xa_state *xas) { return xas_load(xas); }
void *krs_xas_next(struct xa_state *xas) { return xas_next(xas); }
void *krs_xas_next_entry(struct xa_state *xas, unsigned long max)
{
	return xas_next_entry(xas, max);
}

void *krs_xas_find(struct xa_state *xas, unsigned long max) { return xas_find(xas, max); }
void *krs_xas_reload(struct xa_state *xas) { return xas_reload(xas); }
void krs_xas_reset(struct xa_state *xas) { xas_reset(xas); }
unsigned int krs_xas_get_order(struct xa_state *xas) { return xas_get_order(xas); }
void krs_xas_store(struct xa_state *xas, void *entry) { xas_store(xas, entry); }
bool krs_xas_error(struct xa_state *xas) { return xas_error(xas) != 0; }
void krs_xas_create_range(struct xa_state *xas) { xas_create_range(xas); }
bool krs_xas_nomem(struct xa_state *xas) { return xas_nomem(xas, GFP_KERNEL); }
void krs_xas_lock_irq(struct xa_state *xas) { xas_lock_irq(xas); }
void krs_xas_unlock_irq(struct xa_state *xas) { xas_unlock_irq(xas); }
bool krs_xa_is_value(void *entry) { return xa_is_value(entry); }
enum krs_xa_kind krs_xa_kind(void *entry)
{
	if (!entry)
		return KRS_XA_NULL;
	if (xa_is_value(entry))
		return KRS_XA_VALUE;
	if (!xa_is_internal(entry))
		return KRS_XA_POINTER;
	if (entry == XA_RETRY_ENTRY)
		return KRS_XA_RETRY;
	return xa_is_sibling(entry) ? KRS_XA_SIBLING : KRS_XA_INTERNAL;
}

bool krs_xas_retry(struct xa_state *xas, void *entry) { return xas_retry(xas, entry); }
void *krs_xa_retry_entry(void) { return XA_RETRY_ENTRY; }
void krs_mapping_sub_nrpages(struct address_space *mapping, unsigned long nr)
{
	mapping->nrpages -= nr;
}

void krs_rcu_read_lock(void) { rcu_read_lock(); }
void krs_rcu_read_unlock(void) { rcu_read_unlock(); }

/* Files and mappings. */
bool krs_file_is_shmem(struct file *file) { return shmem_file(file); }
struct address_space *krs_file_mapping(struct file *file) { return file->f_mapping; }
bool krs_file_is_regular(struct file *file) { return S_ISREG(file_inode(file)->i_mode); }
long long krs_file_size(struct file *file) { return i_size_read(file_inode(file)); }
bool krs_shmem_mapping(struct address_space *mapping) { return shmem_mapping(mapping); }
void krs_fput(struct file *file) { fput(file); }
struct file *krs_get_file(struct file *file) { return get_file(file); }

int krs_shmem_get_folio(struct address_space *mapping, unsigned long index, struct folio **foliop)
{
	return shmem_get_folio(mapping->host, index, 0, foliop, SGP_NOALLOC);
}

struct folio *krs_filemap_lock_folio(struct address_space *mapping, unsigned long index)
{
	struct folio *folio = filemap_lock_folio(mapping, index);

	return IS_ERR(folio) ? NULL : folio;
}

void krs_i_mmap_lock_read(struct address_space *mapping) { i_mmap_lock_read(mapping); }
void krs_i_mmap_unlock_read(struct address_space *mapping) { i_mmap_unlock_read(mapping); }

/* VMAs and mms. */
unsigned long krs_vma_start(struct vm_area_struct *vma) { return vma->vm_start; }
unsigned long krs_vma_end(struct vm_area_struct *vma) { return vma->vm_end; }
unsigned long krs_vma_pgoff(struct vm_area_struct *vma) { return vma->vm_pgoff; }
struct file *krs_vma_file(struct vm_area_struct *vma) { return vma->vm_file; }
struct mm_struct *krs_vma_mm(struct vm_area_struct *vma) { return vma->vm_mm; }
bool krs_vma_is_anonymous(struct vm_area_struct *vma) { return vma_is_anonymous(vma); }
bool krs_vma_is_shared(struct vm_area_struct *vma) { return vma->vm_flags & VM_SHARED; }
bool krs_vma_has_anon_vma(struct vm_area_struct *vma) { return READ_ONCE(vma->anon_vma); }
bool krs_vma_maybe_guard(struct vm_area_struct *vma)
{
	return vma_test_atomic_flag(vma, VMA_MAYBE_GUARD_BIT);
}

/*
 * What khugepaged refuses to retract or map by a PMD: uffd-wp VMAs (the PTE
 * table holds the markers), and since 7.3 uffd read-write-protected ones
 * too (the uffd PTE bit tracks access per PTE): userfaultfd_protected().
 */
bool krs_userfaultfd_protected(struct vm_area_struct *vma)
{
#if KRS_KERNEL_7_3
	return userfaultfd_protected(vma);
#else
	return userfaultfd_wp(vma);
#endif
}

bool krs_userfaultfd_missing(struct vm_area_struct *vma) { return userfaultfd_missing(vma); }
bool krs_userfaultfd_armed(struct vm_area_struct *vma) { return userfaultfd_armed(vma); }
bool krs_thp_vma_suitable_pmd(struct vm_area_struct *vma, unsigned long addr)
{
	return thp_vma_suitable_order(vma, addr, PMD_ORDER);
}

struct vm_area_struct *krs_find_vma(struct mm_struct *mm, unsigned long addr)
{
	return find_vma(mm, addr);
}

struct vm_area_struct *krs_vma_lookup(struct mm_struct *mm, unsigned long addr)
{
	return vma_lookup(mm, addr);
}

bool krs_mm_exiting(struct mm_struct *mm) { return atomic_read(&mm->mm_users) == 0; }
bool krs_mm_thp_disabled(struct mm_struct *mm)
{
	return mm_flags_test(MMF_DISABLE_THP_COMPLETELY, mm);
}

void krs_mmap_read_lock(struct mm_struct *mm) { mmap_read_lock(mm); }
void krs_mmap_read_unlock(struct mm_struct *mm) { mmap_read_unlock(mm); }
struct mm_struct *krs_current_mm_get(void) { return get_task_mm(current); }
bool krs_remote_mm_needs_nice(struct mm_struct *mm)
{
	/* process_madvise(): a remote mm also needs CAP_SYS_NICE. */
	return mm != current->mm && !capable(CAP_SYS_NICE);
}

void krs_mmput(struct mm_struct *mm) { mmput(mm); }
unsigned long krs_task_size(void) { return TASK_SIZE; }
void krs_cond_resched(void) { cond_resched(); }

/* Page tables. */
enum krs_pmd_state krs_pmd_state(pmd_t *pmd)
{
	/* check_pmd_state() of mm/khugepaged.c, as a classification. */
	pmd_t pmde = pmdp_get_lockless(pmd);

	if (pmd_none(pmde))
		return KRS_PMD_NONE;
	if (pmd_is_migration_entry(pmde))
		return KRS_PMD_MIGRATION;
	if (!pmd_present(pmde))
		return KRS_PMD_NOT_PRESENT;
	if (pmd_trans_huge(pmde))
		return KRS_PMD_HUGE;
	if (pmd_bad(pmde))
		return KRS_PMD_BAD;
	return KRS_PMD_TABLE;
}

spinlock_t *krs_pmd_lockptr(struct mm_struct *mm, pmd_t *pmd) { return pmd_lockptr(mm, pmd); }
spinlock_t *krs_pte_lockptr(struct mm_struct *mm, pmd_t *pmd) { return pte_lockptr(mm, pmd); }
void krs_spin_lock(spinlock_t *lock) { spin_lock(lock); }
void krs_spin_lock_nested(spinlock_t *lock) { spin_lock_nested(lock, SINGLE_DEPTH_NESTING); }
void krs_spin_unlock(spinlock_t *lock) { spin_unlock(lock); }
pmd_t krs_pmdp_get_lockless(pmd_t *pmd) { return pmdp_get_lockless(pmd); }
bool krs_pmd_same(pmd_t a, pmd_t b) { return pmd_same(a, b); }
void krs_pte_unmap(pte_t *pte) { pte_unmap(pte); }
int krs_pte_kind(pte_t *pte)
{
	pte_t ptent = ptep_get(pte);

	if (pte_none(ptent))
		return 0;
	return pte_present(ptent) ? 1 : -1;
}

bool krs_pte_table_empty(pte_t *pte)
{
	unsigned int i;

	for (i = 0; i < PTRS_PER_PTE; i++) {
		pte_t ptent = ptep_get(pte + i);

		if (!pte_none(ptent) && !pte_is_marker(ptent))
			return false;
	}
	return true;
}

void krs_pmdp_get_lockless_sync(void) { pmdp_get_lockless_sync(); }

/* The scanner's kernel thread (rust/mm/kthread.rs), as khugepaged() runs. */
struct task_struct *krs_kthread_run(int (*fn)(void *data), void *data, const char *name)
{
	struct task_struct *task = kthread_create(fn, data, "%s", name);

	if (IS_ERR(task))
		return NULL;
	get_task_struct(task);
	wake_up_process(task);
	return task;
}

void krs_kthread_stop_put(struct task_struct *task) { kthread_stop_put(task); }
bool krs_kthread_should_stop(void) { return kthread_should_stop(); }
bool krs_try_to_freeze(void) { return try_to_freeze(); }

void krs_kthread_freezable_nice(void)
{
	set_freezable();
	set_user_nice(current, MAX_NICE);
}

static DECLARE_WAIT_QUEUE_HEAD(krs_kthread_wq);

static bool krs_kthread_woken(const unsigned int *gen, unsigned int seen)
{
	return kthread_should_stop() || (gen && READ_ONCE(*gen) != seen);
}

unsigned int krs_kthread_sleep(const unsigned int *gen, unsigned int seen, unsigned int ms)
{
	unsigned long start = jiffies;

	if (ms == UINT_MAX)
		wait_event_freezable(krs_kthread_wq, krs_kthread_woken(gen, seen));
	else
		wait_event_freezable_timeout(krs_kthread_wq, krs_kthread_woken(gen, seen),
					     msecs_to_jiffies(ms));
	return jiffies_to_msecs(jiffies - start);
}

void krs_kthread_wake(void) { wake_up_all(&krs_kthread_wq); }

/* Injection points (rust/inject.rs): a wait queue for paused collapses. */
static DECLARE_WAIT_QUEUE_HEAD(krs_inject_wq);

bool krs_inject_wait(unsigned int *gen, unsigned int seen, unsigned int timeout_ms)
{
	return wait_event_interruptible_timeout(krs_inject_wq, READ_ONCE(*gen) != seen,
						msecs_to_jiffies(timeout_ms)) > 0;
}

void krs_inject_wake(void) { wake_up_all(&krs_inject_wq); }
void krs_msleep(unsigned int ms) { msleep(ms); }
int krs_current_tgid(void) { return task_tgid_vnr(current); }
unsigned long krs_mapping_ino(struct address_space *mapping) { return mapping->host->i_ino; }

/* Regular files (the !is_shmem branch of collapse_file()). */
bool krs_mapping_can_writeback(struct address_space *mapping)
{
	return mapping_can_writeback(mapping);
}

bool krs_mapping_open_for_write(struct address_space *mapping)
{
	return inode_is_open_for_write(mapping->host);
}

int krs_filemap_flush(struct address_space *mapping) { return filemap_flush(mapping); }

int krs_filemap_write_and_wait_range(struct address_space *mapping, long long lstart,
				     long long lend)
{
	return filemap_write_and_wait_range(mapping, lstart, lend);
}

void krs_file_sync_readahead(struct file *file, unsigned long index, unsigned long nr)
{
	page_cache_sync_readahead(file->f_mapping, &file->f_ra, file, index, nr);
}
