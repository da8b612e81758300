/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Scheduling of the target's threads: switches and wakeups as events, and at each switch the
 * counter pieces of the threads that leave and take the CPU.
 */
#ifndef __PROFINFER_SCHED_BPF_H
#define __PROFINFER_SCHED_BPF_H

#include "common.bpf.h"
#include "counters.bpf.h"
#include "threads.bpf.h"

/* A thread's counts are its own: close its piece on this CPU, open one for the next. */
static __always_inline void sched_counters(struct task_struct *prev, struct task_struct *next, __u32 prev_tgid,
					   __u32 next_tgid)
{
	__u32 prev_tid = BPF_CORE_READ(prev, pid), next_tid = BPF_CORE_READ(next, pid);
	struct thread_state *st;

	if (prev_tgid == target_tgid) {
		st = bpf_map_lookup_elem(&threads, &prev_tid);
		if (st)
			pmc_switch_out(&st->counters);
	}
	if (next_tgid == target_tgid) {
		st = bpf_map_lookup_elem(&threads, &next_tid);
		if (st)
			pmc_switch_in(&st->counters);
	}
}

static __always_inline void fill_switch(struct pi_sched_switch *e, bool preempt, struct task_struct *prev,
					struct task_struct *next, __u32 prev_tgid, __u32 next_tgid)
{
	e->h.type = PI_EV_SCHED_SWITCH;
	e->h.cpu = bpf_get_smp_processor_id();
	e->h.ts = bpf_ktime_get_ns();
	/* the header names the target thread concerned; a switch between two of its threads names prev */
	if (prev_tgid == target_tgid) {
		e->h.tgid = prev_tgid;
		e->h.tid = BPF_CORE_READ(prev, pid);
	} else {
		e->h.tgid = next_tgid;
		e->h.tid = BPF_CORE_READ(next, pid);
	}
	e->prev_tid = BPF_CORE_READ(prev, pid);
	e->next_tid = BPF_CORE_READ(next, pid);
	e->prev_tgid = prev_tgid;
	e->next_tgid = next_tgid;
	/* a preempted task is still runnable, whatever its state field says */
	e->prev_state = preempt ? 0 : BPF_CORE_READ(prev, __state);
	BPF_CORE_READ_STR_INTO(&e->prev_comm, prev, comm);
	BPF_CORE_READ_STR_INTO(&e->next_comm, next, comm);
}

static __always_inline void fill_wakeup(struct pi_sched_wakeup *e, struct task_struct *p)
{
	e->h.type = PI_EV_SCHED_WAKEUP;
	e->h.cpu = bpf_get_smp_processor_id();
	e->h.tgid = target_tgid;
	e->h.tid = BPF_CORE_READ(p, pid);
	e->h.ts = bpf_ktime_get_ns();
	e->waker_tid = (__u32)bpf_get_current_pid_tgid();
	e->target_cpu = BPF_CORE_READ(p, wake_cpu);
}

#endif /* __PROFINFER_SCHED_BPF_H */
