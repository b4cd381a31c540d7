// SPDX-License-Identifier: GPL-2.0
/*
 * Facts about the running kernel and CPU that only C macros and inline
 * functions expose: IBT enforcement, ENDBR at an address, the release.
 */
#include <linux/module.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <asm/cpufeature.h>
#include <asm/ibt.h>

#include "khugepaged_rs.h"

MODULE_VERSION(KRS_VERSION);

bool krs_ibt_enforced(void)
{
	return HAS_KERNEL_IBT && cpu_feature_enabled(X86_FEATURE_IBT);
}

bool krs_has_endbr(unsigned long addr)
{
#ifdef CONFIG_X86_KERNEL_IBT
	u32 insn;

	if (get_kernel_nofault(insn, (u32 *)addr))
		return false;
	/*
	 * Not __is_endbr(): it also accepts the poison objtool's sealing
	 * writes over an ENDBR, and an indirect call there traps.
	 */
	return (insn & ~0x01000000U) == gen_endbr();
#else
	return false;
#endif
}

const char *krs_kernel_release(void)
{
	return init_utsname()->release;
}
