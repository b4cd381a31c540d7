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
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/huge_mm.h>
#include <linux/memcontrol.h>
#include <linux/page_table_check.h>
#include <linux/pgtable.h>
#include <linux/rmap.h>
#include <linux/shmem_fs.h>
#include <linux/swap.h>
#include <asm/ibt.h>

#include "khugepaged_rs.h"
#include "khugepaged_rs_internal.h"

/* One typed pointer per table entry: krs_p_<name>, of type typeof(name) *. */
#define KRS_SYMBOL(name) static typeof(name) *krs_p_##name __maybe_unused;
#include "khugepaged_rs_symbols.h"
#undef KRS_SYMBOL

const struct krs_symbol krs_symbols[] = {
#define KRS_SYMBOL(name) { #name, (void **)&krs_p_##name },
#include "khugepaged_rs_symbols.h"
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
