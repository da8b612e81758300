/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Operators and barriers: their events, and their aggregates on one thread (an operator's
 * interval, the segment between two barriers when no probed operator ran in it, the barrier wait).
 */
#ifndef __PROFINFER_OPS_BPF_H
#define __PROFINFER_OPS_BPF_H

#include "common.bpf.h"
#include "counters.bpf.h"
#include "aggregates.bpf.h"

/* Per thread: where its current operator, segment and barrier began, for the aggregates. */
struct thread_ops {
	__u64 op_start;
	__u64 op_vals[PI_MAX_COUNTERS];
	__u32 op_func;
	__u32 depth; /* probed operator functions in progress (nested ones count as the outer one) */
	__u64 seg_start;
	__u64 seg_vals[PI_MAX_COUNTERS];
	__u32 seg_has_op;
	__u32 last_func;
	__u64 barrier_start;
	__u32 op_layer;
};

/* The probed function of an operator probe's cookie (an index into the table of them). */
static __always_inline __u32 op_cookie_func(__u64 cookie)
{
	return cookie & ~(PI_OP_NO_AGGREGATE | PI_OP_BY_TENSOR);
}

/*
 * The aggregate key of one tensor's op, for a function that computes several (PI_OP_BY_TENSOR):
 * the op, and the kind of a unary or glu op, as step keys have them.
 */
static __always_inline __u32 tensor_op_key(const struct pi_layout *L, __u64 tensor)
{
	__s32 op = -1, sub = -1;
	__u32 kind = 0;

	if (!L || read_user(&op, sizeof(op), (void *)(tensor + L->tensor_op)) || op < 0 || op > 254)
		return PI_AGG_UNPROBED;
	if ((op == L->op_unary || op == L->op_glu) &&
	    !read_user(&sub, sizeof(sub), (void *)(tensor + L->tensor_op_params)) && sub >= 0 && sub < 254)
		kind = sub + 1;
	return PI_AGG_STEP | op | (kind << 16);
}

/* Probes kept only to read MoE ids while step probes time the operators do not aggregate. */
static __always_inline bool op_cookie_aggregates(__u64 cookie)
{
	return aggregate && !(cookie & PI_OP_NO_AGGREGATE);
}

/* Emits an OP event, with the thread's counter readings when the run records counters. */
static __always_inline void emit_op(__u32 type, __u64 dst, __u32 func, int ith, int nth, const __u64 *vals,
				    __u32 scaled)
{
	struct pi_op *e;

	if (n_counters) {
		struct pi_op_counted *ec = reserve(sizeof(*ec));

		if (!ec)
			return;
		fill_counters(&ec->c, vals, scaled);
		e = &ec->op;
	} else {
		e = reserve(sizeof(*e));
		if (!e)
			return;
	}
	fill_header(&e->h, type);
	e->dst = dst;
	e->func = func;
	e->ith = ith;
	e->nth = nth;
	e->_pad = 0;
	submit(e);
}

/* Emits a BARRIER event, with the thread's counter readings when the run records counters. */
static __always_inline void emit_barrier(__u32 type, const __u64 *vals, __u32 scaled)
{
	if (n_counters) {
		struct pi_barrier_counted *ec = reserve(sizeof(*ec));

		if (ec) {
			fill_header(&ec->b.h, type);
			fill_counters(&ec->c, vals, scaled);
			submit(ec);
		}
	} else {
		struct pi_barrier *e = reserve(sizeof(*e));

		if (e) {
			fill_header(&e->h, type);
			submit(e);
		}
	}
}

/* An operator function starts on this thread. */
static __always_inline void agg_op_begin(struct thread_ops *t, __u32 func, __u64 dst, const __u64 *vals)
{
	/* nested functions (add calling add_non_quantized) count once, as the outer one */
	if (t->depth == 0) {
		t->op_layer = aggregate_layers ? layer_of_tensor(dst) : PI_NO_LAYER;
		t->op_start = bpf_ktime_get_ns();
		t->op_func = func;
		for (__u32 i = 0; i < PI_MAX_COUNTERS; i++)
			t->op_vals[i] = vals[i];
	}
	t->depth += 1;
}

/* An operator function returns on this thread: the outer one's interval is aggregated. */
static __always_inline void agg_op_end(struct thread_ops *t, const __u64 *vals)
{
	if (t->depth > 0) {
		t->depth -= 1;
		if (t->depth == 0) {
			__u64 ns = bpf_ktime_get_ns() - t->op_start;

			agg_op(t->op_func, ns, 0, vals, t->op_vals);
			if (aggregate_layers && t->op_layer != PI_NO_LAYER)
				agg_layer(t->op_layer, t->op_func, ns);
			t->seg_has_op = 1;
			t->last_func = t->op_func;
		}
	}
}

/*
 * A barrier begins or ends on this thread. Its wait goes to the operator before it; a segment
 * between two barriers without a probed operator is a barrier-timed operator (PI_AGG_UNPROBED).
 */
static __always_inline void agg_barrier(struct thread_ops *t, __u32 type, const __u64 *vals)
{
	__u64 now;

	/* barriers inside an operator's own code are part of that operator */
	if (t->depth > 0)
		return;
	now = bpf_ktime_get_ns();
	if (type == PI_EV_BARRIER_BEGIN) {
		/* a segment without a probed operator: a barrier-timed operator */
		if (!t->seg_has_op && t->seg_start) {
			struct run_state *s = run_state();
			__u64 graph_start = s ? s->cpu_graph_start : 0;

			if (t->seg_start >= graph_start)
				agg_op(PI_AGG_UNPROBED, now - t->seg_start, 0, vals, t->seg_vals);
			else if (graph_start && now > graph_start)
				/* the thread's first step of a graph: it started with the graph, its
				 * counters before that include the idle wait, so none are added */
				agg_op(PI_AGG_UNPROBED, now - graph_start, 0, NULL, NULL);
		}
		t->barrier_start = now;
	} else if (t->barrier_start) {
		agg_op(t->last_func, 0, now - t->barrier_start, NULL, NULL);
		t->barrier_start = 0;
		t->seg_start = now;
		t->seg_has_op = 0;
		t->last_func = PI_AGG_UNPROBED;
		for (__u32 i = 0; i < PI_MAX_COUNTERS; i++)
			t->seg_vals[i] = vals[i];
	}
}

#endif /* __PROFINFER_OPS_BPF_H */
