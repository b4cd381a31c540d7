// SPDX-License-Identifier: GPL-2.0
/*
 * The module's tracepoints (include/khugepaged_rs_trace.h): their
 * definitions, and rust_do_trace_<event>() for each, which Rust calls once
 * it found the event's static key enabled (rust/ffi/trace.rs).
 */
#include "khugepaged_rs.h"

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include "khugepaged_rs_trace.h"
