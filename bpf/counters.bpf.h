/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Per-thread counter totals from per-CPU perf events: a thread's count is the sum of the pieces
 * each CPU counted while it ran there, each piece scaled when the event was multiplexed.
 */
#ifndef __PROFINFER_COUNTERS_BPF_H
#define __PROFINFER_COUNTERS_BPF_H

#include "common.bpf.h"

const volatile __u32 n_counters = 0; /* perf events in `pmc`, counter-major: index i * n_cpus + cpu */
const volatile __u32 n_cpus = 1;

/* Per-CPU perf events (user space opens them and sizes the map: n_counters * n_cpus). */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pmc SEC(".maps");

/* A thread's own totals (acc), plus what the CPU it runs on counted since `base`. */
struct thread_counters {
	__u64 acc[PI_MAX_COUNTERS];
	__u64 base_c[PI_MAX_COUNTERS];
	__u64 base_e[PI_MAX_COUNTERS];
	__u64 base_r[PI_MAX_COUNTERS];
	__u32 cpu;
	__u32 scaled;
	__u32 off_cpu; /* a switch away was seen and its switch back not yet */
};

static __always_inline int pmc_read(__u32 i, struct bpf_perf_event_value *v)
{
	__u32 index = i * n_cpus + bpf_get_smp_processor_id();
	int err = bpf_perf_event_read_value(&pmc, index, v, sizeof(*v));

	if (err)
		count(&drops, PI_DROP_COUNTER_READ);
	return err;
}

/* One piece of a count, scaled by enabled/running when the event was multiplexed. */
static __always_inline __u64 scaled_piece(__u64 c, __u64 e, __u64 r, __u32 *scaled, __u32 bit)
{
	if (r >= e)
		return c;
	*scaled |= bit;
	if (r == 0)
		return 0;
	/* fixed point (10 bits): c * e / r without a 128-bit product */
	return (c * ((e << 10) / r)) >> 10;
}

/* Restart the thread's pieces on the CPU it runs on now. */
static __always_inline void pmc_rebase(struct thread_counters *tc)
{
	struct bpf_perf_event_value v;

	tc->cpu = bpf_get_smp_processor_id();
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++) {
		if (i >= n_counters)
			break;
		if (pmc_read(i, &v))
			continue;
		tc->base_c[i] = v.counter;
		tc->base_e[i] = v.enabled;
		tc->base_r[i] = v.running;
	}
}

/* Add what the CPU counted since the base to the thread's totals; the base moves to now. */
static __always_inline void pmc_accumulate(struct thread_counters *tc)
{
	struct bpf_perf_event_value v;

	if (tc->cpu != bpf_get_smp_processor_id() || tc->off_cpu) {
		/* a switch back was missed: the piece since the base is lost, not misattributed */
		pmc_rebase(tc);
		tc->off_cpu = 1;
		return;
	}
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++) {
		if (i >= n_counters)
			break;
		if (pmc_read(i, &v))
			continue;
		tc->acc[i] += scaled_piece(v.counter - tc->base_c[i], v.enabled - tc->base_e[i],
					   v.running - tc->base_r[i], &tc->scaled, 1u << i);
		tc->base_c[i] = v.counter;
		tc->base_e[i] = v.enabled;
		tc->base_r[i] = v.running;
	}
}

/* The running thread's totals now, without changing its state. */
static __always_inline void pmc_values(struct thread_counters *tc, __u64 *out, __u32 *scaled)
{
	struct bpf_perf_event_value v;

	/*
	 * The thread runs now: when it left its CPU and the switch back was not reported (the
	 * tracepoint misses a few), count from here rather than the time it was away.
	 */
	if (tc->cpu != bpf_get_smp_processor_id() || tc->off_cpu) {
		pmc_rebase(tc);
		tc->off_cpu = 0;
	}
	*scaled = tc->scaled;
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++) {
		if (i >= n_counters)
			break;
		out[i] = tc->acc[i];
		if (pmc_read(i, &v))
			continue;
		out[i] += scaled_piece(v.counter - tc->base_c[i], v.enabled - tc->base_e[i],
				       v.running - tc->base_r[i], scaled, 1u << i);
	}
}

/* The thread leaves its CPU: close its piece there. */
static __always_inline void pmc_switch_out(struct thread_counters *tc)
{
	pmc_accumulate(tc);
	tc->off_cpu = 1;
}

/* The thread takes a CPU: open a piece there. */
static __always_inline void pmc_switch_in(struct thread_counters *tc)
{
	pmc_rebase(tc);
	tc->off_cpu = 0;
}

/* The readings appended to an event: the counters in use, the rest zero. */
static __always_inline void fill_counters(struct pi_counter_values *c, const __u64 *vals, __u32 scaled)
{
	c->n = n_counters;
	c->scaled = scaled;
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++)
		c->value[i] = i < n_counters ? vals[i] : 0;
}

#endif /* __PROFINFER_COUNTERS_BPF_H */
