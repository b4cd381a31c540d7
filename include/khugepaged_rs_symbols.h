/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The symbol table: every kernel function khugepaged_rs calls that 7.2 does
 * not export, and the few variables: each line expands through
 * KRS_SYMBOL(name) (a function) or KRS_DATA_SYMBOL(name) (a variable),
 * defined by the includer (rust/helpers/symbols.c). A name needs a
 * declaration in scope there: public headers, or
 * include/khugepaged_rs_internal.h for the few that only mm/internal.h
 * declares. Adding a line is all it takes to resolve one more function at
 * load; its C wrapper goes in rust/helpers/symbols.c.
 * Entries that exist only under some config are wrapped in its #ifdef, and
 * those of some kernel versions in a LINUX_VERSION_CODE test.
 */
KRS_SYMBOL(pmdp_collapse_flush)
KRS_SYMBOL(pte_free_defer)
KRS_SYMBOL(pte_offset_map_rw_nolock)
#ifdef CONFIG_PAGE_TABLE_CHECK
KRS_SYMBOL(__page_table_check_pte_clear_range)
#endif
KRS_SYMBOL(mm_find_pmd)
KRS_SYMBOL(folio_isolate_lru)
KRS_SYMBOL(folio_putback_lru)
KRS_SYMBOL(lru_add_drain)
KRS_SYMBOL(try_to_unmap)
KRS_SYMBOL(folio_remove_rmap_ptes)
KRS_SYMBOL(shmem_charge)
KRS_SYMBOL(shmem_uncharge)
KRS_SYMBOL(shmem_allowable_huge_orders)
KRS_SYMBOL(__mem_cgroup_charge)
KRS_SYMBOL(count_memcg_events)
KRS_SYMBOL(__mmu_notifier_invalidate_range_start)
KRS_SYMBOL(__mmu_notifier_invalidate_range_end)
KRS_SYMBOL(__thp_vma_allowable_orders)
KRS_SYMBOL(lru_add_drain_all)
KRS_SYMBOL(try_to_unmap_flush)
KRS_SYMBOL(vm_normal_page)
KRS_SYMBOL(do_set_pmd)
#if KRS_KERNEL_7_3
/* 7.3 renamed the i_mmap tree walk; the first takes the address_space. */
KRS_SYMBOL(mapping_rmap_tree_iter_first)
KRS_SYMBOL(mapping_rmap_tree_iter_next)
#else
KRS_SYMBOL(vma_interval_tree_iter_first)
KRS_SYMBOL(vma_interval_tree_iter_next)
#endif
KRS_SYMBOL(flush_tlb_mm_range)
KRS_SYMBOL(mm_trace_rss_stat)
KRS_SYMBOL(__p4d_alloc)
KRS_SYMBOL(__pud_alloc)
KRS_SYMBOL(__pmd_alloc)
KRS_SYMBOL(mm_access)
KRS_SYMBOL(find_get_task_by_vpid)
/* mapping_set_update(): the page cache's shadow-node accounting. */
KRS_SYMBOL(workingset_update_node)
KRS_DATA_SYMBOL(shadow_nodes)
#if defined(CONFIG_TRANSPARENT_HUGEPAGE) && defined(CONFIG_SYSFS)
/* count_mthp_stat(): the per-size stats of hugepages-<size>kB/stats/. */
KRS_DATA_SYMBOL(mthp_stats)
#endif
/* thp_disabled_by_hw(), khugepaged_defrag(), hugepage_global_always() read it. */
KRS_DATA_SYMBOL(transparent_hugepage_flags)
/* khugepaged's knobs, for mode=khugepaged (the last static in mm/khugepaged.c). */
KRS_DATA_SYMBOL(khugepaged_max_ptes_none)
KRS_DATA_SYMBOL(khugepaged_max_ptes_swap)
/* ... and the ones the module's scanner follows by default. */
KRS_DATA_SYMBOL(khugepaged_pages_to_scan)
KRS_DATA_SYMBOL(khugepaged_scan_sleep_millisecs)
KRS_DATA_SYMBOL(khugepaged_alloc_sleep_millisecs)
