/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Compute loop steps: the loop calls ggml_barrier after each computed node or fused group, so a
 * probe on that call marks the end of a step on one thread. Steps travel in per-thread batches
 * and feed the step aggregates (an operator timed by the barriers around it).
 */
#ifndef __PROFINFER_STEPS_BPF_H
#define __PROFINFER_STEPS_BPF_H

#include "common.bpf.h"
#include "aggregates.bpf.h"
#include "bytes.bpf.h"

#define PI_MAX_STEP_NODES 16384 /* node indices a step probe's aggregate follows */

/*
 * Step aggregates: by node index, the latest arrival at the barrier after the step that ended
 * before that node, over the graph's threads. A thread that passed that barrier saw every thread
 * arrive, so the value is then the barrier's release; older graph runs left only older times.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PI_MAX_STEP_NODES);
	__type(key, __u32);
	__type(value, __u64);
} step_release SEC(".maps");

/* Per thread: its unsent steps, and for the aggregates the graph run, where its last step ended,
 * that step's key and its barrier arrival. */
struct thread_steps {
	/* first, so that user space can read what is left at the end (native/src/tracer.cpp) */
	struct pi_steps batch;
	__u64 graph;
	__u32 prev;
	__u32 key;
	__u64 ts;
};

/* One load of a saved register at a constant offset. The verifier refuses a ctx access at a
 * variable offset, which is what clang makes of a switch of plain ctx reads; it cannot merge asm. */
#define PI_CTX_LOAD(ctx, field)                                                                    \
	({                                                                                         \
		long v_;                                                                           \
		asm volatile("%[v] = *(u64 *)(%[c] + %[o])"                                       \
			     : [v] "=r"(v_)                                                        \
			     : [c] "r"(ctx), [o] "i"(offsetof(struct pt_regs, field)));            \
		v_;                                                                                \
	})

/*
 * The value of the register a step site's cookie names (x86-64 only: sites are found there),
 * read in place from the probed thread's saved registers (the context).
 */
static __always_inline long step_register(struct pt_regs *ctx, __u64 reg)
{
#if defined(__TARGET_ARCH_x86)
	switch (reg) {
	case PI_STEP_RAX: return PI_CTX_LOAD(ctx, ax);
	case PI_STEP_RBX: return PI_CTX_LOAD(ctx, bx);
	case PI_STEP_RCX: return PI_CTX_LOAD(ctx, cx);
	case PI_STEP_RDX: return PI_CTX_LOAD(ctx, dx);
	case PI_STEP_RSI: return PI_CTX_LOAD(ctx, si);
	case PI_STEP_RDI: return PI_CTX_LOAD(ctx, di);
	case PI_STEP_RBP: return PI_CTX_LOAD(ctx, bp);
	case PI_STEP_R8: return PI_CTX_LOAD(ctx, r8);
	case PI_STEP_R9: return PI_CTX_LOAD(ctx, r9);
	case PI_STEP_R10: return PI_CTX_LOAD(ctx, r10);
	case PI_STEP_R11: return PI_CTX_LOAD(ctx, r11);
	case PI_STEP_R12: return PI_CTX_LOAD(ctx, r12);
	case PI_STEP_R13: return PI_CTX_LOAD(ctx, r13);
	case PI_STEP_R14: return PI_CTX_LOAD(ctx, r14);
	case PI_STEP_R15: return PI_CTX_LOAD(ctx, r15);
	}
#endif
	return -1;
}

/* The `next` of a step: the index of the first node after it, or -1 at the loop's final barrier. */
static __always_inline int step_next(struct pt_regs *ctx, __u64 cookie)
{
	return cookie == PI_STEP_FINAL ? -1 : (int)step_register(ctx, cookie);
}

/* Sends a thread's waiting steps (pi_steps), counting each one lost when the ring is full. */
static __always_inline void flush_steps(struct pi_steps *b)
{
	__u32 n = b->count;

	if (!n)
		return;
	fill_header(&b->h, PI_EV_STEPS);
	if (bpf_ringbuf_output(&events, b, sizeof(*b), wakeup_flag()))
		count_n(&drops, PI_DROP_RINGBUF_FULL, n);
	b->count = 0;
}

/* The step joins its thread's batch; a full batch, or the graph's end, is sent. */
static __always_inline void add_step(struct pi_steps *b, int next, __u64 now)
{
	__u32 i = b->count;

	if (i >= PI_STEPS_PER_BATCH) {
		flush_steps(b);
		i = 0;
	}
	b->steps[i].ts = now;
	b->steps[i].next = next;
	b->steps[i].cpu = bpf_get_smp_processor_id();
	b->count = i + 1;
	/* the final barrier ends the thread's part of the graph: send before it waits there */
	if (i + 1 == PI_STEPS_PER_BATCH || next < 0)
		flush_steps(b);
}

/* Raise a barrier's release time to `ts` (threads arrive concurrently: compare and swap). */
static __always_inline void release_max(__u32 index, __u64 ts)
{
	__u64 *slot = bpf_map_lookup_elem(&step_release, &index);
	__u64 old;

	if (!slot)
		return;
	old = *slot;
	for (int i = 0; i < 8 && old < ts; i++) {
		__u64 seen = __sync_val_compare_and_swap(slot, old, ts);

		if (seen == old)
			break;
		old = seen;
	}
}

static __always_inline bool op_is_empty(const struct pi_layout *L, __u32 op)
{
	return op < 128 && ((L->empty_ops[(op >> 5) & 3] >> (op & 31)) & 1);
}

/* The aggregate key of the nodes [from, to) of a step: its first two computed ops, and the kind
 * of a unary or glu first op (PI_AGG_STEP). */
static __always_inline __u32 step_key(const struct pi_layout *L, __u64 nodes, __u32 from, __u32 to)
{
	__u32 first = 0xff, second = 0xff, kind = 0xff;

	for (__u32 i = 0; i < 8; i++) {
		__u64 node = 0;
		__s32 op = -1;

		if (from + i >= to)
			break;
		if (read_user(&node, sizeof(node), (void *)(nodes + 8 * (__u64)(from + i))) || !node)
			break;
		if (read_user(&op, sizeof(op), (void *)(node + L->tensor_op)) || op < 0 || op > 254)
			break;
		if (op_is_empty(L, op))
			continue;
		if (first == 0xff) {
			first = op;
			if (op == L->op_unary || op == L->op_glu) {
				__s32 sub = -1;

				if (!read_user(&sub, sizeof(sub), (void *)(node + L->tensor_op_params)) && sub >= 0 &&
				    sub < 254)
					kind = sub;
			}
			continue;
		}
		second = op;
		break;
	}
	if (first == 0xff)
		return PI_AGG_UNPROBED;
	return PI_AGG_STEP | first | ((second == 0xff ? 0 : second + 1) << 8) |
	       ((kind == 0xff ? 0 : kind + 1) << 16);
}

/* The bytes of the step [from, to): its computed nodes, a fused one without what it hands on. */
static __always_inline __u64 step_bytes(const struct pi_layout *L, const struct run_state *s, __u32 from, __u32 to)
{
	__u64 computed[8] = {};
	__u64 bytes = 0;
	__u32 n = 0;

	for (__u32 i = 0; i < 8; i++) {
		__u64 node = 0;
		__s32 op = -1;

		if (from + i >= to)
			break;
		if (read_user(&node, sizeof(node), (void *)(s->cpu_nodes + 8 * (__u64)(from + i))) || !node)
			break;
		if (read_user(&op, sizeof(op), (void *)(node + L->tensor_op)) || op < 0 || op > 254)
			break;
		if (op_is_empty(L, op))
			continue;
		computed[n & 7] = node;
		n++;
	}
	for (__u32 i = 0; i < 8; i++) {
		if (i >= n)
			break;
		bytes += cached_node_bytes(s, computed[i], i > 0 ? computed[(i - 1) & 7] : 0, i + 1 == n);
	}
	return bytes;
}

/* Whether step aggregates can be kept for the run's CPU graph: its node list was read. */
static __always_inline bool step_aggregates_ready(const struct pi_layout *L, const struct run_state *s)
{
	return L && s && s->cpu_nodes;
}

/*
 * In-kernel aggregates from step probes: the step that ends here on this thread began when the
 * barrier before it released (its key's time), and the wait in that barrier goes to the step
 * before. The loop's final barrier ends the graph's last step; its own wait is not counted.
 */
static __always_inline void step_aggregate(struct thread_steps *t, const struct pi_layout *L,
					   const struct run_state *s, int next, __u64 now)
{
	__u64 start;
	__u32 to, key;

	/* a new graph run: its steps start from its first node */
	if (t->graph != s->cpu_graph_start) {
		t->graph = s->cpu_graph_start;
		t->prev = 0;
		t->ts = 0;
	}
	to = next < 0 ? s->cpu_n_nodes : (__u32)next;
	if (to <= t->prev || to >= PI_MAX_STEP_NODES)
		return;
	start = s->cpu_graph_start;
	if (t->prev) {
		__u32 k = t->prev;
		__u64 *released = bpf_map_lookup_elem(&step_release, &k);

		if (released && *released > start)
			start = *released;
	}
	if (t->ts && start > t->ts)
		agg_op(t->key, 0, start - t->ts, NULL, NULL);
	key = step_key(L, s->cpu_nodes, t->prev, to);
	if (now > start)
		agg_op(key, now - start, 0, NULL, NULL);
	/* the run and its bytes once, by the first thread to end it */
	if (first_to_end(t->prev, s->cpu_graph_start))
		agg_run(key, step_bytes(L, s, t->prev, to));
	if (next >= 0)
		release_max(to, now);
	t->prev = next < 0 ? 0 : to;
	t->key = key;
	t->ts = next < 0 ? 0 : now;
}

#endif /* __PROFINFER_STEPS_BPF_H */
