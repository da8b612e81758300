/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Graph computes and their snapshots: a graph's signature (its nodes and their shapes), and when
 * it changed, its node list in chunks and one description of each tensor it touches.
 */
#ifndef __PROFINFER_GRAPH_BPF_H
#define __PROFINFER_GRAPH_BPF_H

#include "common.bpf.h"
#include "aggregates.bpf.h"
#include "moe.bpf.h"

/* The graph pointer of an in-flight graph compute, keyed by thread and function. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} graph_entry SEC(".maps");

/* Signature of the last snapshot of each graph, and the scheduler's allocation count then. */
struct graph_sig_value {
	__u64 sig;
	__u64 nodes; /* cgraph->nodes and n_nodes then (a graph view moves or shortens them) */
	__u32 n;
	__u32 allocs;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct graph_sig_value);
} graph_sig SEC(".maps");

/* Tensors already described in the current snapshot (pointer -> signature). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} described SEC(".maps");

struct node_scratch {
	__u64 nodes[PI_MAX_GRAPH_NODES];
};

/* A graph's node pointer list, copied once per graph compute; one slot per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* user space sets it to the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct node_scratch);
} scratch SEC(".maps");

/* The graph_entry key of this thread's compute in function `fn` (enum pi_graph_fn). */
static __always_inline __u64 graph_entry_key(__u32 fn)
{
	return (bpf_get_current_pid_tgid() << 8) | fn;
}

/* A CPU graph compute begins: the step and barrier aggregates time from here and read its nodes. */
static __always_inline void note_cpu_graph(const struct pi_layout *L, __u64 cgraph)
{
	struct run_state *s = run_state();

	if (s) {
		s->cpu_graph_start = bpf_ktime_get_ns();
		s->cpu_nodes = 0;
		s->cpu_n_nodes = 0;
		if (L && aggregate) {
			read_user(&s->cpu_nodes, sizeof(s->cpu_nodes), (void *)(cgraph + L->cgraph_nodes));
			read_user(&s->cpu_n_nodes, sizeof(s->cpu_n_nodes), (void *)(cgraph + L->cgraph_n_nodes));
		}
	}
}

/* Context of the bpf_loop passes over a graph's nodes (signature, then descriptions). */
struct nodes_ctx {
	struct node_scratch *scratch;
	__u32 n;
	__u64 sig;
};

static long signature_step(__u64 i, struct nodes_ctx *c)
{
	const struct pi_layout *L = layout();
	struct {
		__s64 ne[4];
		__u64 nb[4];
		__s32 op;
	} shape = {};
	__u64 node;
	long err;

	if (!L || i >= PI_MAX_GRAPH_NODES || i >= c->n)
		return 1;
	node = c->scratch->nodes[i];
	/* op and shape decide the graph's structure; the pointer decides its identity. Where op
	 * follows ne[4] and nb[4], as in ggml's struct, one read instead of two (this runs for every
	 * node of every graph computed, ahead of the workers) */
	if (L->tensor_op == L->tensor_ne + sizeof(shape.ne) + sizeof(shape.nb))
		err = bpf_probe_read_user(&shape, offsetof(typeof(shape), op) + sizeof(shape.op),
					  (void *)(node + L->tensor_ne));
	else
		err = bpf_probe_read_user(&shape.ne, sizeof(shape.ne), (void *)(node + L->tensor_ne)) ||
		      bpf_probe_read_user(&shape.op, sizeof(shape.op), (void *)(node + L->tensor_op));
	if (err)
		count(&drops, PI_DROP_READ_FAILED);
	/* FNV-1a over pointer, op and shape */
	c->sig = (c->sig ^ node) * 0x100000001b3ULL;
	c->sig = (c->sig ^ (__u64)shape.op) * 0x100000001b3ULL;
	c->sig = (c->sig ^ (__u64)shape.ne[0] ^ ((__u64)shape.ne[1] << 20) ^ ((__u64)shape.ne[2] << 40) ^
		  ((__u64)shape.ne[3] << 52)) *
		 0x100000001b3ULL;
	return 0;
}

/*
 * Describe one tensor once per snapshot; returns 1 when it is a routing (ffn_moe_topk) tensor.
 * A global function, so that the verifier checks it once rather than at each of its call sites.
 */
__noinline int describe(__u64 addr, __u64 sig)
{
	const struct pi_layout *L = layout();
	struct pi_tensor *e;
	__u64 *seen;
	bool topk;

	if (!addr || !L)
		return 0;
	seen = bpf_map_lookup_elem(&described, &addr);
	if (seen && *seen == sig)
		return moe_topk_known(&addr);
	if (bpf_map_update_elem(&described, &addr, &sig, BPF_ANY))
		count(&drops, PI_DROP_MAP_FULL);
	count(&hits, PI_HIT_SNAPSHOT_NODE);
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_header(&e->h, PI_EV_TENSOR);
	e->addr = addr;
	e->signature = sig;
	/* one read per field: offsets come from the layout, so no block copy can be assumed */
	read_user(&e->type, sizeof(e->type), (void *)(addr + L->tensor_type));
	read_user(e->ne, sizeof(e->ne), (void *)(addr + L->tensor_ne));
	read_user(e->nb, sizeof(e->nb), (void *)(addr + L->tensor_nb));
	read_user(&e->op, sizeof(e->op), (void *)(addr + L->tensor_op));
	read_user(e->op_params, sizeof(e->op_params), (void *)(addr + L->tensor_op_params));
	read_user(&e->flags, sizeof(e->flags), (void *)(addr + L->tensor_flags));
	read_user(e->src, sizeof(e->src), (void *)(addr + L->tensor_src));
	read_user(&e->view_src, sizeof(e->view_src), (void *)(addr + L->tensor_view_src));
	read_user(&e->view_offs, sizeof(e->view_offs), (void *)(addr + L->tensor_view_offs));
	read_user(&e->data, sizeof(e->data), (void *)(addr + L->tensor_data));
	read_user(e->name, sizeof(e->name), (void *)(addr + L->tensor_name));
	e->_pad = 0;
	topk = is_moe_topk(e->name);
	submit(e);
	moe_topk_remember(&addr, topk);
	return topk;
}

/* One node, its view target and its sources, each described once per snapshot. */
static long describe_step(__u64 i, struct nodes_ctx *c)
{
	const struct pi_layout *L = layout();
	__u64 srcs[PI_MAX_SRC] = {};
	__u64 node, view_src = 0;

	if (!L || i >= PI_MAX_GRAPH_NODES || i >= c->n)
		return 1;
	node = c->scratch->nodes[i];
	describe(node, c->sig);
	if (bpf_probe_read_user(srcs, sizeof(srcs), (void *)(node + L->tensor_src)))
		return 0;
	bpf_probe_read_user(&view_src, sizeof(view_src), (void *)(node + L->tensor_view_src));
	describe(view_src, c->sig);
	for (int s = 0; s < PI_MAX_SRC; s++) {
		if (!srcs[s])
			continue;
		if (describe(srcs[s], c->sig) && moe_enabled)
			moe_arm_consumer(&node, &srcs[s]);
	}
	return 0;
}

/* One chunk of a graph's node pointer list (global: verified once). */
__noinline int emit_node_chunk(__u64 cgraph, __u64 nodes_ptr, __u32 first, __u32 n, __u64 sig)
{
	struct pi_graph_nodes *e;
	__u32 cnt;

	if (first >= n)
		return 1;
	cnt = n - first;
	if (cnt > PI_NODES_PER_CHUNK)
		cnt = PI_NODES_PER_CHUNK;
	e = reserve(sizeof(*e));
	if (!e)
		return 1;
	fill_header(&e->h, PI_EV_GRAPH_NODES);
	e->cgraph = cgraph;
	e->signature = sig;
	e->first = first;
	e->count = cnt;
	/* a size the verifier can bound: 1..PI_NODES_PER_CHUNK pointers */
	__u32 bytes = (((cnt - 1) & (PI_NODES_PER_CHUNK - 1)) + 1) * 8;

	if (bpf_probe_read_user(e->nodes, bytes, (void *)(nodes_ptr + first * 8)))
		count(&drops, PI_DROP_READ_FAILED);
	submit(e);
	return 0;
}

struct chunk_ctx {
	__u64 cgraph;
	__u64 nodes_ptr;
	__u32 n;
	__u64 sig;
};

static long node_chunk_step(__u64 chunk, struct chunk_ctx *c)
{
	/* a bpf_loop callback must return exactly 0 (go on) or 1 (stop) */
	return emit_node_chunk(c->cgraph, c->nodes_ptr, chunk * PI_NODES_PER_CHUNK, c->n, c->sig) ? 1 : 0;
}

/*
 * A CPU graph computed by the scheduler keeps its nodes and shapes until the scheduler
 * allocates again (it rebuilds its splits there; llama.cpp reuses a graph only when its shapes
 * are unchanged): the same cgraph with the same node list then has its last signature, without
 * reading every node again. Any allocation, by any scheduler, makes every graph read afresh;
 * a graph view (the scheduler's eval callback computes a split in slices, each a cgraph at the
 * same address) differs in its node list.
 */
static __always_inline struct graph_sig_value *unchanged_since_alloc(const __u64 *cgraph, __u64 nodes_ptr, __u32 n,
								     const struct run_state *s)
{
	__u64 sched_key = graph_entry_key(PI_GRAPH_SCHED);
	struct graph_sig_value *seen = bpf_map_lookup_elem(&graph_sig, cgraph);

	if (seen && s->allocs_seen && seen->allocs == s->sched_allocs && seen->nodes == nodes_ptr && seen->n == n &&
	    bpf_map_lookup_elem(&graph_entry, &sched_key))
		return seen;
	return NULL;
}

/* Reads the graph's nodes and, when they or their shapes changed, describes the graph. */
static __always_inline void snapshot(__u64 cgraph, struct pi_graph_begin *e)
{
	const struct pi_layout *L = layout();
	struct run_state *s = run_state();
	struct node_scratch *buf;
	__u32 slot = bpf_get_smp_processor_id();
	__u64 nodes_ptr = 0;
	struct graph_sig_value *seen, *last;
	__u32 n = e->n_nodes > 0 ? e->n_nodes : 0;

	buf = bpf_map_lookup_elem(&scratch, &slot);
	if (!buf || !s || !L)
		return;
	if (n > PI_MAX_GRAPH_NODES) {
		count(&drops, PI_DROP_NODES_TRUNCATED);
		n = PI_MAX_GRAPH_NODES;
	}
	if (read_user(&nodes_ptr, sizeof(nodes_ptr), (void *)(cgraph + L->cgraph_nodes)))
		return;
	if (n == 0)
		return;
	seen = unchanged_since_alloc(&cgraph, nodes_ptr, n, s);
	if (seen) {
		e->signature = seen->sig;
		return;
	}
	/* sizes as masks: the verifier follows an AND, while LLVM drops a clamp it finds redundant */
	__u32 bytes = (((n - 1) & (PI_MAX_GRAPH_NODES - 1)) + 1) * 8;

	if (read_user(buf->nodes, bytes, (void *)nodes_ptr))
		return;

	struct nodes_ctx sc = { .scratch = buf, .n = n, .sig = 0xcbf29ce484222325ULL };
	bpf_loop(n, signature_step, &sc, 0);
	e->signature = sc.sig;
	last = bpf_map_lookup_elem(&graph_sig, &cgraph);
	if (last && last->sig == sc.sig && last->nodes == nodes_ptr && last->n == n) {
		last->allocs = s->sched_allocs;
		return;
	}
	/* the same signature with another node list: not described again, only remembered */
	struct graph_sig_value value = { .sig = sc.sig, .nodes = nodes_ptr, .n = n, .allocs = s->sched_allocs };

	if (last && last->sig == sc.sig) {
		bpf_map_update_elem(&graph_sig, &cgraph, &value, BPF_ANY);
		return;
	}
	e->changed = 1;

	bpf_map_update_elem(&graph_sig, &cgraph, &value, BPF_ANY);
	struct chunk_ctx cc = { .cgraph = cgraph, .nodes_ptr = nodes_ptr, .n = n, .sig = sc.sig };
	bpf_loop(PI_MAX_GRAPH_NODES / PI_NODES_PER_CHUNK, node_chunk_step, &cc, 0);

	struct nodes_ctx dc = { .scratch = buf, .n = n, .sig = sc.sig };
	bpf_loop(n, describe_step, &dc, 0);
}

#endif /* __PROFINFER_GRAPH_BPF_H */
