/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The bytes an operator moves, for the metrics (profinfer_op_bytes_total): its sources read and
 * its destination written, as ggml_nbytes gives them from shapes, strides and the build's type
 * sizes, by the rules exporter/src/trace/work.ts follows for recorded runs (docs/findings.md
 * "Bytes and operations"): get_rows reads its rows, set_rows reads and writes its rows (not the
 * cache it stores into, its third source), mul_mat_id reads as
 * many experts as the batch can choose, and a step of fused nodes neither writes nor reads back
 * what one node hands the next. Counted once per operator run, by the first thread to end it; a
 * node's bytes are kept until the scheduler allocates again (shapes only change then).
 */
#ifndef __PROFINFER_BYTES_BPF_H
#define __PROFINFER_BYTES_BPF_H

#include "common.bpf.h"

/* A node's bytes as the step it ends (or not) counts them, by process and node. */
struct node_bytes_key {
	__u64 node;
	__u32 tgid;
	__u32 last;
};

struct node_bytes_value {
	__u64 bytes;
	__u32 allocs; /* the process's scheduler allocations when they were read */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct node_bytes_key);
	__type(value, struct node_bytes_value);
} node_bytes SEC(".maps");

/* By process and step (its first node's index): the graph run it was last counted in. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} step_counted SEC(".maps");

struct tensor_shape {
	__s64 ne[4];
	__u64 nb[4];
	__s32 type;
	__s32 op;
};

static __always_inline int read_shape(const struct pi_layout *L, __u64 t, struct tensor_shape *s)
{
	/* ne[4] then nb[4] in ggml's struct: one read where the layout agrees */
	if (L->tensor_nb == L->tensor_ne + sizeof(s->ne)) {
		if (bpf_probe_read_user(s, sizeof(s->ne) + sizeof(s->nb), (void *)(t + L->tensor_ne)))
			return -1;
	} else if (bpf_probe_read_user(s->ne, sizeof(s->ne), (void *)(t + L->tensor_ne)) ||
		   bpf_probe_read_user(s->nb, sizeof(s->nb), (void *)(t + L->tensor_nb))) {
		return -1;
	}
	return bpf_probe_read_user(&s->type, sizeof(s->type), (void *)(t + L->tensor_type)) ? -1 : 0;
}

/* ggml_nbytes: a block-size type's rows in blocks, then each further dimension's stride. */
static __always_inline __u64 shape_bytes(const struct pi_layout *L, const struct tensor_shape *s)
{
	__u32 type = (__u32)s->type;
	__u64 size, blck, bytes;

	if (type >= PI_MAX_TYPES)
		return 0;
	size = L->type_size[type & (PI_MAX_TYPES - 1)];
	blck = L->type_blck[type & (PI_MAX_TYPES - 1)];
	if (!size || !blck)
		return 0;
	for (int i = 0; i < 4; i++)
		if (s->ne[i] <= 0)
			return 0;
	bytes = blck == 1 ? size : (__u64)s->ne[0] * s->nb[0] / blck;
	for (int i = 0; i < 4; i++) {
		if (i == 0 && blck != 1)
			continue;
		bytes += (__u64)(s->ne[i] - 1) * s->nb[i];
	}
	return bytes;
}

/* Rows of a tensor: every dimension but the first. */
static __always_inline __u64 shape_rows(const struct tensor_shape *s)
{
	return (__u64)s->ne[1] * (__u64)s->ne[2] * (__u64)s->ne[3];
}

/*
 * One node's bytes in its step: its sources but `prev` (the node before it in a fused step), and
 * its destination when it ends the step (`last`). A global function: verified once.
 */
__noinline __u64 node_step_bytes(__u64 node, __u64 prev, __u32 last)
{
	const struct pi_layout *L = layout();
	struct tensor_shape dst = {}, src = {};
	__u64 srcs[PI_MAX_SRC] = {};
	__u64 bytes = 0;

	if (!L || read_shape(L, node, &dst) ||
	    bpf_probe_read_user(&dst.op, sizeof(dst.op), (void *)(node + L->tensor_op)) ||
	    bpf_probe_read_user(srcs, sizeof(srcs), (void *)(node + L->tensor_src)))
		return 0;
	for (int i = 0; i < PI_MAX_SRC; i++) {
		/* set_rows' third source is the tensor it stores into: written, not read */
		if (i >= 2 && (__u32)dst.op == L->op_set_rows)
			break;
		if (!srcs[i] || srcs[i] == prev || read_shape(L, srcs[i], &src))
			continue;
		if (i == 0 && (__u32)dst.op == L->op_get_rows) {
			/* one row of the table per index: the destination's rows */
			bytes += shape_rows(&dst) * src.nb[1];
		} else if (i == 0 && (__u32)dst.op == L->op_mul_mat_id) {
			/* the experts' matrices [K, M, n_expert]: as many as the batch can choose */
			__u64 routed = (__u64)dst.ne[1] * (__u64)dst.ne[2];
			__u64 experts = src.ne[2] > 0 ? (__u64)src.ne[2] : 1;

			bytes += (routed < experts ? routed : experts) * src.nb[2];
		} else {
			bytes += shape_bytes(L, &src);
		}
		if (i == 0 && last && (__u32)dst.op == L->op_set_rows) {
			/* the rows it stores, not the cache it stores into */
			bytes += shape_rows(&src) * dst.nb[1];
			last = 0;
		}
	}
	if (last)
		bytes += shape_bytes(L, &dst);
	return bytes;
}

/* A node's bytes in its step, read once per scheduler allocation of the process. */
static __always_inline __u64 cached_node_bytes(const struct run_state *s, __u64 node, __u64 prev, __u32 last)
{
	struct node_bytes_key key = { .node = node, .tgid = bpf_get_current_pid_tgid() >> 32, .last = last };
	struct node_bytes_value *seen = bpf_map_lookup_elem(&node_bytes, &key);
	struct node_bytes_value value = {};

	if (seen && s->allocs_seen && seen->allocs == s->sched_allocs)
		return seen->bytes;
	value.bytes = node_step_bytes(node, prev, last);
	value.allocs = s->sched_allocs;
	bpf_map_update_elem(&node_bytes, &key, &value, BPF_ANY);
	return value.bytes;
}

/* Whether this thread is the first to end the step starting at node `first` of graph run `graph`. */
static __always_inline bool first_to_end(__u32 first, __u64 graph)
{
	__u64 key = ((bpf_get_current_pid_tgid() >> 32) << 32) | first;
	__u64 *slot = bpf_map_lookup_elem(&step_counted, &key);
	__u64 old;

	if (!slot) {
		/* BPF_NOEXIST: of threads that end it at once, one creates the entry */
		return bpf_map_update_elem(&step_counted, &key, &graph, BPF_NOEXIST) == 0;
	}
	old = *slot;
	if (old == graph)
		return false;
	return __sync_val_compare_and_swap(slot, old, graph) == old;
}

#endif /* __PROFINFER_BYTES_BPF_H */
