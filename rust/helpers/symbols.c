// SPDX-License-Identifier: GPL-2.0
/*
 * The symbol table (include/khugepaged_rs_symbols.h) and kallsyms access.
 *
 * kallsyms_lookup_name is not exported; a kprobe on it yields its address
 * without calling anything. Rust (rust/sys/symbols.rs) drives resolution:
 * it checks every address (present, ENDBR when IBT is enforced) before any
 * slot is written, so a failed load leaves nothing half-resolved.
 */
#include <linux/kprobes.h>
#include <asm/tlbflush.h>
#include <linux/mmu_notifier.h>
#include <linux/ptrace.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>

#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/huge_mm.h>
#include <linux/khugepaged.h>
#include <linux/dax.h>
#include <linux/list_lru.h>
#include <linux/pagemap.h>
#include <linux/memcontrol.h>
#include <linux/page_table_check.h>
#include <linux/pgtable.h>
#include <linux/rmap.h>
#include <linux/shmem_fs.h>
#include <linux/swap.h>
#include <asm/ibt.h>

#include "khugepaged_rs.h"
#include "khugepaged_rs_internal.h"

/* One slot per table entry, at index KRS_SYM_<name>. */
enum krs_symbol_index {
#define KRS_SYMBOL(name) KRS_SYM_##name,
#define KRS_DATA_SYMBOL(name) KRS_SYM_##name,
#include "khugepaged_rs_symbols.h"
#undef KRS_DATA_SYMBOL
#undef KRS_SYMBOL
	KRS_NR_SYMBOLS
};

static void *krs_addr[KRS_NR_SYMBOLS];

const struct krs_symbol krs_symbols[] = {
#define KRS_SYMBOL(name) { #name, &krs_addr[KRS_SYM_##name], false },
#define KRS_DATA_SYMBOL(name) { #name, &krs_addr[KRS_SYM_##name], true },
#include "khugepaged_rs_symbols.h"
#undef KRS_DATA_SYMBOL
#undef KRS_SYMBOL
};

const size_t krs_nr_symbols = ARRAY_SIZE(krs_symbols);

typedef unsigned long (*kallsyms_lookup_name_t)(const char *name);
static kallsyms_lookup_name_t krs_kallsyms_lookup_name;

int krs_kallsyms_init(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };

	unsigned long addr;
	int ret;

	ret = register_kprobe(&kp);
	if (ret)
		return ret;
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);
#ifdef CONFIG_X86_KERNEL_IBT
	/*
	 * arch_adjust_kprobe_addr() puts the probe after a function-entry
	 * ENDBR (or its sealed poison); undo that to get the symbol itself.
	 */
	if (__is_endbr(*(u32 *)(addr - 4)))
		addr -= 4;
#endif
	krs_kallsyms_lookup_name = (kallsyms_lookup_name_t)addr;
	return addr ? 0 : -ENOENT;
}

unsigned long krs_kallsyms_addr(void)
{
	return (unsigned long)krs_kallsyms_lookup_name;
}

unsigned long krs_kallsyms_lookup(const char *name)
{
	return krs_kallsyms_lookup_name ? krs_kallsyms_lookup_name(name) : 0;
}

/*
 * Wrappers that call through the resolved pointers. Where a kernel inline
 * function calls an unexported symbol, its body is mirrored here with the
 * pointer (the source it mirrors is named). KRS_CALL(name) is the resolved
 * function, typed as the declaration in scope: every call through it is
 * checked against the kernel's own prototype. KRS_DATA(name) is the
 * resolved variable, of its declared type.
 */
#define KRS_CALL(name) (*(__typeof__(name) *)krs_addr[KRS_SYM_##name])
#define KRS_DATA(name) KRS_CALL(name)

/* khugepaged_defrag(), mm/khugepaged.c */
#define krs_khugepaged_defrag() \
	(KRS_DATA(transparent_hugepage_flags) & (1 << TRANSPARENT_HUGEPAGE_DEFRAG_KHUGEPAGED_FLAG))

void krs_khugepaged_knobs(struct krs_khugepaged_knobs *knobs)
{
	knobs->max_ptes_none = READ_ONCE(KRS_DATA(khugepaged_max_ptes_none));
	knobs->max_ptes_swap = READ_ONCE(KRS_DATA(khugepaged_max_ptes_swap));
	knobs->defrag = krs_khugepaged_defrag();
	knobs->pages_to_scan = READ_ONCE(KRS_DATA(khugepaged_pages_to_scan));
	knobs->scan_sleep_millisecs = READ_ONCE(KRS_DATA(khugepaged_scan_sleep_millisecs));
	knobs->alloc_sleep_millisecs = READ_ONCE(KRS_DATA(khugepaged_alloc_sleep_millisecs));
}

void krs_count_mthp_collapse_alloc(bool allocated)
{
	/*
	 * count_mthp_stat(), include/linux/huge_mm.h: mthp_stats is not
	 * exported. Without sysfs there are no such stats (a no-op there too).
	 */
#if defined(CONFIG_TRANSPARENT_HUGEPAGE) && defined(CONFIG_SYSFS)
	/*
	 * A per-CPU variable's address is in the per-CPU address space
	 * (__seg_gs on x86): converted through an integer, as per_cpu_ptr()
	 * converts, to the type of &mthp_stats (checked).
	 */
	struct mthp_stat __percpu *stats =
		(struct mthp_stat __percpu *)(unsigned long)krs_addr[KRS_SYM_mthp_stats];

	BUILD_BUG_ON(!__same_type(stats, &mthp_stats));

	this_cpu_inc(stats->stats[HPAGE_PMD_ORDER]
		     [allocated ? MTHP_STAT_COLLAPSE_ALLOC : MTHP_STAT_COLLAPSE_ALLOC_FAILED]);
#endif
}

int krs_folio_memcg_charge(struct folio *folio, struct mm_struct *mm, bool light)
{
	int ret;

	/* mem_cgroup_charge(), include/linux/memcontrol.h, with the allocation's gfp */
	if (mem_cgroup_disabled())
		return 0;
	ret = KRS_CALL(__mem_cgroup_charge)(folio, mm, light ? GFP_TRANSHUGE_LIGHT : GFP_TRANSHUGE);
	if (ret)
		return ret;
	/*
	 * alloc_charge_folio(): count_memcg_folio_events(folio,
	 * THP_COLLAPSE_ALLOC, 1), include/linux/memcontrol.h.
	 */
	if (folio_memcg_charged(folio)) {
		rcu_read_lock();
		KRS_CALL(count_memcg_events)(folio_memcg(folio), THP_COLLAPSE_ALLOC, 1);
		rcu_read_unlock();
	}
	return 0;
}

enum krs_isolate krs_folio_isolate_unmap(struct folio *folio)
{
	if (!KRS_CALL(folio_isolate_lru)(folio))
		return KRS_ISOLATE_NOT_LRU;
	if (!filemap_release_folio(folio, GFP_KERNEL))
		return KRS_ISOLATE_PRIVATE;
	if (folio_mapped(folio))
		KRS_CALL(try_to_unmap)(folio, TTU_IGNORE_MLOCK | TTU_BATCH_FLUSH);
	return KRS_ISOLATE_DONE;
}

bool krs_shmem_charge(struct address_space *mapping, long pages)
{
	return KRS_CALL(shmem_charge)(mapping->host, pages);
}

void krs_shmem_uncharge(struct address_space *mapping, long pages)
{
	KRS_CALL(shmem_uncharge)(mapping->host, pages);
}

static bool krs_file_shmem_pmd_allowed(struct file *file, bool khugepaged)
{
	/*
	 * What __thp_vma_allowable_orders() asks of a shmem VMA, without a
	 * VMA: shmem_allowable_huge_orders(..., shmem_huge_force). Forced
	 * (MADV_COLLAPSE), it refuses when shmem_enabled is "deny", when the
	 * hardware has THP disabled, or when PMD order exceeds
	 * MAX_PAGECACHE_ORDER; for khugepaged, the mount's huge= (for memfd:
	 * shmem_enabled) must allow it without MADV_HUGEPAGE too.
	 */
	return KRS_CALL(shmem_allowable_huge_orders)(file_inode(file), NULL, 0, 0, !khugepaged) &
	       BIT(HPAGE_PMD_ORDER);
}

/* vma_interval_tree_foreach(); mapping_rmap_tree_foreach() since 7.3. */
struct vm_area_struct *krs_vma_first(struct address_space *mapping, unsigned long first,
				     unsigned long last)
{
#if KRS_KERNEL_7_3
	return KRS_CALL(mapping_rmap_tree_iter_first)(mapping, first, last);
#else
	return KRS_CALL(vma_interval_tree_iter_first)(&mapping->i_mmap, first, last);
#endif
}

struct vm_area_struct *krs_vma_next(struct vm_area_struct *vma, unsigned long first,
				    unsigned long last)
{
#if KRS_KERNEL_7_3
	return KRS_CALL(mapping_rmap_tree_iter_next)(vma, first, last);
#else
	return KRS_CALL(vma_interval_tree_iter_next)(vma, first, last);
#endif
}

bool krs_thp_vma_allowable_pmd(struct vm_area_struct *vma, bool khugepaged)
{
	/*
	 * thp_vma_allowable_order(vma, vm_flags, type, PMD_ORDER): for a file
	 * VMA the inline part only forwards (its anon shortcut does not apply).
	 */
	return KRS_CALL(__thp_vma_allowable_orders)(vma, vma->vm_flags,
						    khugepaged ? TVA_KHUGEPAGED :
								 TVA_FORCED_COLLAPSE,
						    BIT(PMD_ORDER)) != 0;
}

struct mm_struct *krs_pid_mm_get(int pid, int *err)
{
	/*
	 * process_madvise(): the target mm only with PTRACE_MODE_READ, and
	 * mm_access()'s error as it is (EACCES for a failed ptrace check,
	 * ESRCH for a task without an mm, EINTR when killed while waiting).
	 */
	struct task_struct *task = KRS_CALL(find_get_task_by_vpid)(pid);
	struct mm_struct *mm;

	if (!task) {
		*err = -ESRCH;
		return NULL;
	}
	mm = KRS_CALL(mm_access)(task, PTRACE_MODE_READ_FSCREDS);
	put_task_struct(task);
	if (IS_ERR_OR_NULL(mm)) {
		*err = mm ? PTR_ERR(mm) : -ESRCH;
		return NULL;
	}
	return mm;
}

pmd_t *krs_mm_find_pmd(struct mm_struct *mm, unsigned long addr)
{
	return KRS_CALL(mm_find_pmd)(mm, addr);
}

pmd_t krs_pmdp_collapse_flush(struct vm_area_struct *vma, unsigned long addr, pmd_t *pmd)
{
	return KRS_CALL(pmdp_collapse_flush)(vma, addr, pmd);
}

void krs_free_retracted_table(struct mm_struct *mm, unsigned long addr, pmd_t pgt_pmd)
{
	mm_dec_nr_ptes(mm);
#ifdef CONFIG_PAGE_TABLE_CHECK
	/* page_table_check_pte_clear_range(), include/linux/page_table_check.h */
	if (!static_branch_likely(&page_table_check_disabled))
		KRS_CALL(__page_table_check_pte_clear_range)(mm, addr, pgt_pmd);
#endif
	KRS_CALL(pte_free_defer)(mm, pmd_pgtable(pgt_pmd));
}

pte_t *krs_pte_offset_map_rw_nolock(struct mm_struct *mm, pmd_t *pmd, unsigned long addr,
				    pmd_t *pmdvalp, spinlock_t **ptlp)
{
	return KRS_CALL(pte_offset_map_rw_nolock)(mm, pmd, addr, pmdvalp, ptlp);
}

struct page *krs_pte_page(struct vm_area_struct *vma, unsigned long addr, pte_t *pte)
{
	struct page *page = KRS_CALL(vm_normal_page)(vma, addr, ptep_get(pte));

	return page && is_zone_device_page(page) ? NULL : page;
}

void krs_pte_clear_rmap(struct vm_area_struct *vma, unsigned long addr, pte_t *pte,
			struct folio *folio, struct page *page)
{
	/*
	 * Not clear_ptes(), which drops the old entry, as
	 * collapse_pte_mapped_thp() does ("Shmem page is already dirty"): a
	 * shmem folio allocated by a read fault is clean, its PTEs writable
	 * (no write-notify on shmem), so data written through them is dirty
	 * in the PTEs only. Clearing them loses that, and the page cache then
	 * drops the clean folio with the data (drop_caches, reclaim). Move
	 * the dirty bit to the folio, as zap_present_pte() does.
	 */
	pte_t old = get_and_clear_ptes(vma->vm_mm, addr, pte, 1);

	if (pte_dirty(old))
		folio_mark_dirty(folio);
	KRS_CALL(folio_remove_rmap_ptes)(folio, page, 1, vma);
}

void krs_add_mm_counter_file(struct mm_struct *mm, struct folio *folio, long value)
{
	/* add_mm_counter(), include/linux/mm.h */
	int member = mm_counter_file(folio);

	percpu_counter_add(&mm->rss_stat[member], value);
	KRS_CALL(mm_trace_rss_stat)(mm, member);
}

void krs_flush_tlb_mm(struct mm_struct *mm)
{
	/* flush_tlb_mm(), arch/x86/include/asm/tlbflush.h */
	KRS_CALL(flush_tlb_mm_range)(mm, 0UL, TLB_FLUSH_ALL, 0UL, true);
}

int krs_set_huge_pmd(struct vm_area_struct *vma, unsigned long addr, pmd_t *pmdp,
		     struct folio *folio)
{
	/* set_huge_pmd(), mm/khugepaged.c, with p4d/pud/pmd_alloc() mirrored */
	struct mm_struct *mm = vma->vm_mm;
	struct vm_fault vmf = { .vma = vma, .address = addr, .flags = 0 };

	if (!pmdp) {
		pgd_t *pgdp = pgd_offset(mm, addr);
		p4d_t *p4dp;
		pud_t *pudp;

		if (pgd_none(*pgdp) && KRS_CALL(__p4d_alloc)(mm, pgdp, addr))
			return -ENOMEM;
		p4dp = p4d_offset(pgdp, addr);
		if (p4d_none(*p4dp) && KRS_CALL(__pud_alloc)(mm, p4dp, addr))
			return -ENOMEM;
		pudp = pud_offset(p4dp, addr);
		if (pud_none(*pudp) && KRS_CALL(__pmd_alloc)(mm, pudp, addr))
			return -ENOMEM;
		pmdp = pmd_offset(pudp, addr);
	}
	vmf.pmd = pmdp;
	if (KRS_CALL(do_set_pmd)(&vmf, folio, &folio->page))
		return -EAGAIN;
	folio_get(folio);
	return 0;
}

void krs_mmu_notifier_start(struct mmu_notifier_range *range, struct mm_struct *mm,
			    unsigned long start, unsigned long end)
{
	/*
	 * mmu_notifier_range_init(MMU_NOTIFY_CLEAR) and
	 * mmu_notifier_invalidate_range_start(), include/linux/mmu_notifier.h
	 * (without the lockdep map, which is not exported).
	 */
	mmu_notifier_range_init(range, MMU_NOTIFY_CLEAR, 0, mm, start, end);
	might_sleep();
	if (mm_has_notifiers(range->mm)) {
		range->flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
		KRS_CALL(__mmu_notifier_invalidate_range_start)(range);
	}
}

void krs_mmu_notifier_end(struct mmu_notifier_range *range)
{
	/* mmu_notifier_invalidate_range_end(), include/linux/mmu_notifier.h */
	if (mmu_notifier_range_blockable(range))
		might_sleep();
	if (mm_has_notifiers(range->mm))
		KRS_CALL(__mmu_notifier_invalidate_range_end)(range);
}

void krs_folio_putback_lru(struct folio *folio) { KRS_CALL(folio_putback_lru)(folio); }
void krs_lru_add_drain(void) { KRS_CALL(lru_add_drain)(); }
void krs_lru_add_drain_all(void) { KRS_CALL(lru_add_drain_all)(); }
void krs_try_to_unmap_flush(void) { KRS_CALL(try_to_unmap_flush)(); }

/* Regular files (the !is_shmem branch of collapse_file()). */

/* mapping_set_update(), mm/internal.h: shadow nodes stay accounted. */
void krs_mapping_set_update(struct xa_state *xas, struct address_space *mapping)
{
	if (!dax_mapping(mapping) && !shmem_mapping(mapping)) {
		xas_set_update(xas, KRS_CALL(workingset_update_node));
		xas_set_lru(xas, &KRS_DATA(shadow_nodes));
	}
}

bool krs_file_pmd_collapse_allowed(struct file *file, bool khugepaged)
{
	struct inode *inode = file_inode(file);

	if (shmem_file(file))
		return krs_file_shmem_pmd_allowed(file, khugepaged);
	/*
	 * What __thp_vma_allowable_orders() asks of a regular file's VMA,
	 * without a VMA: thp_disabled_by_hw(); for khugepaged the tunables
	 * (vma_file_allow_thp_tuneables() without VM_HUGEPAGE:
	 * hugepage_global_always(); MADV_COLLAPSE ignores them); then
	 * file_thp_enabled().
	 */
	if (KRS_DATA(transparent_hugepage_flags) & (1 << TRANSPARENT_HUGEPAGE_UNSUPPORTED))
		return false;
	if (khugepaged &&
	    !(KRS_DATA(transparent_hugepage_flags) & (1 << TRANSPARENT_HUGEPAGE_FLAG)))
		return false;
	return !IS_ANON_FILE(inode) && mapping_pmd_folio_support(file->f_mapping) &&
	       S_ISREG(inode->i_mode);
}
