/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * MoE routing: the expert ids in the ffn_moe_topk tensors, read when the first node that consumes
 * one starts (the ids are complete then). The graph snapshot finds the tensors and consumers.
 */
#ifndef __PROFINFER_MOE_BPF_H
#define __PROFINFER_MOE_BPF_H

#include "common.bpf.h"
#include "aggregates.bpf.h"

const volatile __u32 moe_enabled = 1;

/* ffn_moe_topk tensors of the current snapshots (pointer -> 1). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} moe_topk SEC(".maps");

/* Nodes that consume a routing tensor (consumer pointer -> routing tensor pointer). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} moe_consumers SEC(".maps");

/* llama.cpp names its routing tensors ffn_moe_topk-<layer>. */
#define MOE_TOPK_PREFIX "ffn_moe_topk"
#define MOE_TOPK_PREFIX_LEN 12

static __always_inline bool is_moe_topk(const char *name)
{
	for (int i = 0; i < MOE_TOPK_PREFIX_LEN; i++)
		if (name[i] != MOE_TOPK_PREFIX[i])
			return false;
	return true;
}

/* Whether the tensor at `addr` was found to be a routing tensor when it was described. */
static __always_inline bool moe_topk_known(const __u64 *addr)
{
	return bpf_map_lookup_elem(&moe_topk, addr) != NULL;
}

/* Remember what a description found; an address reused by another tensor is forgotten. */
static __always_inline void moe_topk_remember(const __u64 *addr, bool topk)
{
	if (topk) {
		__u64 one = 1;

		bpf_map_update_elem(&moe_topk, addr, &one, BPF_ANY);
	} else {
		bpf_map_delete_elem(&moe_topk, addr);
	}
}

/* A node that reads routing ids: when it starts, they are complete. */
static __always_inline void moe_arm_consumer(const __u64 *consumer, const __u64 *topk)
{
	struct run_state *st = run_state();

	bpf_map_update_elem(&moe_consumers, consumer, topk, BPF_ANY);
	if (st)
		st->moe_armed = 1;
}

struct moe_ctx {
	struct pi_moe_ids *e;
	__u64 data;
	__u64 row_stride;
	__u32 k;
	__u32 first;
	__u32 rows;
};

static long moe_row(__u64 r, struct moe_ctx *c)
{
	__u32 at = r * c->k, bytes = (((c->k - 1) & 63) + 1) * 4;

	if (r >= c->rows || at + c->k > PI_MAX_MOE_IDS || c->k > 64)
		return 1;
	/* bounds the verifier can follow: a row of at most 64 ids ending inside ids[] */
	if (at > PI_MAX_MOE_IDS - 64)
		return 1;
	if (bpf_probe_read_user(&c->e->ids[at], bytes, (void *)(c->data + (c->first + r) * c->row_stride)))
		count(&drops, PI_DROP_READ_FAILED);
	return 0;
}

struct moe_count_ctx {
	struct pi_moe_ids *e;
	__u32 layer;
};

/* One expert selection into moe_agg. */
static long moe_count(__u64 i, struct moe_count_ctx *c)
{
	struct pi_moe_key key = { .layer = c->layer };

	if (i >= PI_MAX_MOE_IDS)
		return 1;
	key.expert = (__u32)c->e->ids[i];
	agg_moe(&key);
	return 0;
}

/*
 * The routing ids of one MoE layer: k per token, read when their first consumer starts. A global
 * function, so that the verifier checks its loop once rather than inside op_enter's paths.
 */
__noinline int emit_moe_ids(__u64 consumer, __u64 topk)
{
	const struct pi_layout *L = layout();
	struct {
		__s64 ne[4];
		__u64 nb[4];
	} shape = {};
	char prefix[MOE_TOPK_PREFIX_LEN] = {};
	__u64 data = 0;

	if (!L)
		return 0;
	/* the consumer slot may be stale (addresses are reused): check the tensor is still routing */
	if (bpf_probe_read_user(prefix, sizeof(prefix), (void *)(topk + L->tensor_name)) || !is_moe_topk(prefix))
		return 0;
	if (read_user(shape.ne, sizeof(shape.ne), (void *)(topk + L->tensor_ne)) ||
	    read_user(shape.nb, sizeof(shape.nb), (void *)(topk + L->tensor_nb)) ||
	    read_user(&data, sizeof(data), (void *)(topk + L->tensor_data)))
		return 0;
	/* at most 64 experts per token: the bound moe_row's reads are checked against */
	if (shape.ne[0] <= 0 || shape.ne[0] > 64 || shape.ne[1] <= 0 || !data)
		return 0;

	__u32 k = shape.ne[0], n_tokens = shape.ne[1];
	__u32 per_event = PI_MAX_MOE_IDS / k;

	/* whole tokens per event, as many events as the tokens need */
	for (__u32 chunk = 0; chunk < 64; chunk++) {
		__u32 first = chunk * per_event;
		struct pi_moe_ids *e;

		if (first >= n_tokens)
			break;
		e = reserve(sizeof(*e));
		if (!e)
			return 0;
		fill_header(&e->h, PI_EV_MOE_IDS);
		e->tensor = topk;
		e->consumer = consumer;
		e->k = k;
		e->n_tokens = n_tokens;
		e->first_token = first;
		struct moe_ctx mc = {
			.e = e, .data = data, .row_stride = shape.nb[1], .k = k, .first = first,
			.rows = n_tokens - first < per_event ? n_tokens - first : per_event,
		};
		e->count = mc.rows * k;
		bpf_loop(mc.rows, moe_row, &mc, 0);
		if (aggregate_moe) {
			struct moe_count_ctx cc = { .e = e, .layer = layer_of_tensor(topk) };

			bpf_loop(e->count < PI_MAX_MOE_IDS ? e->count : PI_MAX_MOE_IDS, moe_count, &cc, 0);
		}
		submit(e);
	}
	return 0;
}

/* At an operator's start on its first thread: when the node consumes a routing tensor, its ids. */
static __always_inline void moe_read_at_consumer(__u64 dst, int ith)
{
	struct run_state *s = run_state();

	if (moe_enabled && stream && s && s->moe_armed) {
		__u64 key = dst, *topk;

		topk = bpf_map_lookup_elem(&moe_consumers, &key);
		if (topk && ith == 0)
			emit_moe_ids(key, *topk);
	}
}

#endif /* __PROFINFER_MOE_BPF_H */
