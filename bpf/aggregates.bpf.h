/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * In-kernel aggregates for the metrics exporter (token, operator, layer and MoE expert maps):
 * nothing per event has to leave the kernel for them.
 */
#ifndef __PROFINFER_AGGREGATES_BPF_H
#define __PROFINFER_AGGREGATES_BPF_H

#include "common.bpf.h"
#include "counters.bpf.h"
#include "requests.bpf.h"

#define PI_MAX_OP_FUNCS 256 /* probed per-operator functions */

const volatile __u32 aggregate = 0;  /* keep the metrics aggregates (token_agg, op_agg) */
const volatile __u32 aggregate_layers = 0; /* ...and layer_agg (reads each operator's tensor name) */
const volatile __u32 aggregate_moe = 0;	   /* ...and moe_agg (expert selections, from MOE_IDS reads) */

/* Upper bounds of the aggregate histograms' buckets (then +Inf); set by user space. */
const volatile __u64 agg_bounds_ns[PI_AGG_BUCKETS - 1] = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PI_MAX_TARGETS * PI_PHASES);
	__type(key, struct pi_token_agg_key);
	__type(value, struct pi_token_agg);
} token_agg SEC(".maps");

/* A zeroed pi_token_agg to create token_agg entries from (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pi_token_agg);
} token_agg_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PI_MAX_OP_FUNCS * 4 + 1);
	__type(key, __u32);
	__type(value, struct pi_op_agg);
} op_agg SEC(".maps");

/* A zeroed pi_op_agg to create op_agg entries from (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pi_op_agg);
} op_agg_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PI_MAX_LAYER_KEYS);
	__type(key, struct pi_layer_key);
	__type(value, struct pi_layer_agg);
} layer_agg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PI_MAX_MOE_KEYS);
	__type(key, struct pi_moe_key);
	__type(value, __u64);
} moe_agg SEC(".maps");

/* llama_decode calls in flight, by thread (for the token aggregates and the requests). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct pi_call_start);
} decode_starts SEC(".maps");

static __always_inline __u32 bucket_of(__u64 ns)
{
	__u32 b = 0;

	for (__u32 i = 0; i < PI_AGG_BUCKETS - 1; i++)
		if (ns > agg_bounds_ns[i])
			b = i + 1;
	return b;
}

/* The bucket of `n` among upper bounds 2^0 .. 2^(buckets - 2), then +Inf. */
static __always_inline __u32 pow2_bucket(__u64 n, __u32 buckets)
{
	__u32 b = 0;

	for (__u32 i = 0; i < PI_BATCH_TOKEN_BUCKETS - 1; i++)
		if (i < buckets - 1 && n > (1ull << i))
			b = i + 1;
	return b < buckets ? b : buckets - 1;
}

/* A llama_decode call begins on this thread (`call`: its start and batch, read_batch's). */
static __always_inline void agg_decode_begin(struct pi_call_start *call)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (bpf_map_update_elem(&decode_starts, &tid, call, BPF_ANY))
		count(&drops, PI_DROP_MAP_FULL);
}

/* The thread's llama_decode call returns: a step of each request in it, one call of its phase. */
static __always_inline void agg_decode_end(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pi_call_start *d = bpf_map_lookup_elem(&decode_starts, &tid);
	__u32 prompt = 0, generated = 0, phase;
	__u64 now = bpf_ktime_get_ns();

	if (!d)
		return;
	phase = requests_call_end(d, now, &prompt, &generated);
	if (phase >= PI_PHASES)
		phase = PI_PHASE_DECODE;
	struct pi_token_agg_key key = { .tgid = d->tgid, .phase = phase };
	struct pi_token_agg *a = bpf_map_lookup_elem(&token_agg, &key);
	__u64 ns = now - d->ts;

	if (!a) {
		__u32 zero = 0;
		struct pi_token_agg *z = bpf_map_lookup_elem(&token_agg_zero, &zero);

		/* bounded: a full map (more processes than PI_MAX_TARGETS) counts a drop */
		if (z && bpf_map_update_elem(&token_agg, &key, z, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&token_agg, &key))
			count(&drops, PI_DROP_MAP_FULL);
		a = bpf_map_lookup_elem(&token_agg, &key);
	}

	if (a) {
		__u32 n_tokens = d->n_tokens > 0 ? d->n_tokens : 0;
		__u32 b = bucket_of(ns);

		a->calls += 1;
		a->tokens += n_tokens;
		a->ns += ns;
		if (b < PI_AGG_BUCKETS)
			a->buckets[b] += 1;
		a->prompt_tokens += prompt;
		a->generated_tokens += generated;
		a->sequences += d->batch.n_seqs;
		b = pow2_bucket(n_tokens, PI_BATCH_TOKEN_BUCKETS);
		if (b < PI_BATCH_TOKEN_BUCKETS)
			a->token_buckets[b] += 1;
		b = pow2_bucket(d->batch.n_seqs, PI_BATCH_SEQ_BUCKETS);
		if (b < PI_BATCH_SEQ_BUCKETS)
			a->seq_buckets[b] += 1;
	}
	bpf_map_delete_elem(&decode_starts, &tid);
}

/* One operator interval of one thread (or a barrier wait when ns is 0 and wait is not). */
static __always_inline void agg_op(__u32 func, __u64 ns, __u64 wait, const __u64 *vals, const __u64 *from)
{
	struct pi_op_agg *a = bpf_map_lookup_elem(&op_agg, &func);
	__u32 key = 0;

	if (!a) {
		struct pi_op_agg *z = bpf_map_lookup_elem(&op_agg_zero, &key);

		if (!z)
			return;
		/* bounded: a full map drops new keys, counted */
		if (bpf_map_update_elem(&op_agg, &func, z, BPF_NOEXIST) && !bpf_map_lookup_elem(&op_agg, &func)) {
			count(&drops, PI_DROP_MAP_FULL);
			return;
		}
		a = bpf_map_lookup_elem(&op_agg, &func);
		if (!a)
			return;
	}
	a->barrier_ns += wait;
	if (!ns)
		return;
	a->count += 1;
	a->ns += ns;
	__u32 b = bucket_of(ns);
	if (b < PI_AGG_BUCKETS)
		a->buckets[b] += 1;
	if (!vals || !from)
		return;
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++) {
		if (i >= n_counters)
			break;
		a->counters[i] += vals[i] - from[i];
	}
}

/* One operator run, counted once (not per thread), and the bytes it moved. */
static __always_inline void agg_run(__u32 func, __u64 bytes)
{
	struct pi_op_agg *a;

	/* creates the entry when this run is its first */
	agg_op(func, 0, 0, NULL, NULL);
	a = bpf_map_lookup_elem(&op_agg, &func);
	if (!a)
		return;
	a->runs += 1;
	a->bytes += bytes;
}

/* The layer of a tensor name: the number after its last '-' ("ffn_up-3", "attn_norm-0 (view)"). */
struct layer_parse {
	char name[PI_MAX_NAME];
	__u32 layer;
	__u32 in_num;
	__u32 digits;
};

static long layer_parse_step(__u64 i, struct layer_parse *p)
{
	char c;

	if (i >= PI_MAX_NAME)
		return 1;
	c = p->name[i];
	if (c == 0 || c == ' ')
		return 1;
	if (c == '-') {
		p->in_num = 1;
		p->digits = 0;
		p->layer = 0;
	} else if (p->in_num && c >= '0' && c <= '9' && p->digits < 6) {
		p->layer = p->layer * 10 + (c - '0');
		p->digits++;
	} else {
		p->in_num = 0;
	}
	return 0;
}

/* A global function: verified once, not inside each caller's paths. */
__noinline __u32 layer_of_tensor(__u64 tensor)
{
	const struct pi_layout *L = layout();
	struct layer_parse p = {};

	if (!L || bpf_probe_read_user(p.name, sizeof(p.name) - 1, (void *)(tensor + L->tensor_name)))
		return PI_NO_LAYER;
	/* a callback is verified once; an unrolled loop over unknown characters is not */
	bpf_loop(PI_MAX_NAME, layer_parse_step, &p, 0);
	return p.in_num && p.digits ? p.layer : PI_NO_LAYER;
}

static __always_inline void agg_layer(__u32 layer, __u32 func, __u64 ns)
{
	struct pi_layer_key key = { .layer = layer, .func = func };
	struct pi_layer_agg *a = bpf_map_lookup_elem(&layer_agg, &key);

	if (!a) {
		struct pi_layer_agg zero = {};

		/* bounded: a full map drops new keys, counted */
		if (bpf_map_update_elem(&layer_agg, &key, &zero, BPF_NOEXIST) && !bpf_map_lookup_elem(&layer_agg, &key)) {
			count(&drops, PI_DROP_MAP_FULL);
			return;
		}
		a = bpf_map_lookup_elem(&layer_agg, &key);
		if (!a)
			return;
	}
	a->count += 1;
	a->ns += ns;
}

/* One expert selection of one layer (bounded by the map's size; a full map counts a drop). */
static __always_inline void agg_moe(const struct pi_moe_key *key)
{
	__u64 one = 1, *n;

	n = bpf_map_lookup_elem(&moe_agg, key);
	if (n)
		*n += 1;
	else if (bpf_map_update_elem(&moe_agg, key, &one, BPF_NOEXIST))
		count(&drops, PI_DROP_MAP_FULL);
}

#endif /* __PROFINFER_AGGREGATES_BPF_H */
