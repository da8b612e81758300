/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Per target thread state: one map entry holds what every concern keeps per thread, so that a
 * probe hit looks its thread up once.
 */
#ifndef __PROFINFER_THREADS_BPF_H
#define __PROFINFER_THREADS_BPF_H

#include "common.bpf.h"
#include "counters.bpf.h"
#include "aggregates.bpf.h"
#include "ops.bpf.h"
#include "steps.bpf.h"

struct thread_state {
	/* first, so that user space can read the unsent steps at the end (native/src/tracer.cpp) */
	struct thread_steps steps;
	struct thread_counters counters;
	struct thread_ops ops;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct thread_state);
} threads SEC(".maps");

/* A zeroed thread_state to create entries from (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct thread_state);
} thread_zero SEC(".maps");

static __always_inline struct thread_state *thread_state(bool create)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), key = 0;
	struct thread_state *st = bpf_map_lookup_elem(&threads, &tid);
	struct thread_state *z;

	if (st || !create)
		return st;
	z = bpf_map_lookup_elem(&thread_zero, &key);
	if (!z)
		return NULL;
	if (bpf_map_update_elem(&threads, &tid, z, BPF_NOEXIST)) {
		count(&drops, PI_DROP_MAP_FULL);
		return NULL;
	}
	st = bpf_map_lookup_elem(&threads, &tid);
	if (st) {
		/* no operator yet: a wait before the first one belongs to the barrier-timed ones */
		st->ops.last_func = PI_AGG_UNPROBED;
		pmc_rebase(&st->counters);
	}
	return st;
}

/*
 * At an operator or barrier boundary: the thread's state where the run needs it (counters or
 * aggregates), and its counter values now in `vals` (left as they are without counters).
 */
static __always_inline struct thread_state *thread_at_boundary(__u64 *vals, __u32 *scaled)
{
	struct thread_state *st = NULL;

	if (n_counters || aggregate)
		st = thread_state(true);
	if (st && n_counters)
		pmc_values(&st->counters, vals, scaled);
	return st;
}

#endif /* __PROFINFER_THREADS_BPF_H */
