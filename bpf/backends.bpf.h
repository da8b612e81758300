/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Backends beyond the CPU: the scheduler's splits (each handed to one backend through
 * ggml_backend_graph_compute_async), the tensor copies between backends' buffers, the host's
 * waits for a backend (ggml_backend_synchronize), and a known backend's own host-side functions
 * (pi_backend_call). Every backend goes through the first three, so any backend is traced at
 * graph level; the backend calls are the part that needs to know one. Included at the end of
 * profinfer.bpf.c: the programs here use its graph_enter and graph_exit.
 */
#ifndef __PROFINFER_BACKENDS_BPF_H
#define __PROFINFER_BACKENDS_BPF_H

#include "common.bpf.h"
#include "aggregates.bpf.h"
#include "graph.bpf.h"

/* Per backend: the host's side of its work, for the metrics (struct pi_backend_agg). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PI_MAX_BACKEND_KEYS);
	__type(key, struct pi_backend_key);
	__type(value, struct pi_backend_agg);
} backend_agg SEC(".maps");

/* Per thread: the split or wait in progress, and the copies waiting for their split. */
struct backend_thread {
	struct pi_backend_key split;
	__u64 split_start;
	struct pi_backend_key sync;
	__u64 sync_start;
	__u64 copy_start;
	__u64 copy_bytes;     /* of the copy in progress */
	__u64 pending_copies; /* done, not yet given to a split */
	__u64 pending_bytes;
	__u64 pending_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct backend_thread);
} backend_threads SEC(".maps");

static __always_inline struct backend_thread *backend_thread(bool create)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct backend_thread *t = bpf_map_lookup_elem(&backend_threads, &tid);

	if (!t && create) {
		struct backend_thread zero = {};

		bpf_map_update_elem(&backend_threads, &tid, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&backend_threads, &tid);
		if (!t)
			count(&drops, PI_DROP_MAP_FULL);
	}
	return t;
}

static __always_inline struct pi_backend_agg *backend_agg_of(const struct pi_backend_key *key)
{
	struct pi_backend_agg *a = bpf_map_lookup_elem(&backend_agg, key);

	if (!a) {
		struct pi_backend_agg zero = {};

		bpf_map_update_elem(&backend_agg, key, &zero, BPF_NOEXIST);
		a = bpf_map_lookup_elem(&backend_agg, key);
		if (!a)
			count(&drops, PI_DROP_MAP_FULL);
	}
	return a;
}

/* A backend's device and the get_name function of its implementation, through the layout. */
static __always_inline void backend_identity(__u64 backend, struct pi_backend_key *key)
{
	const struct pi_layout *L = layout();

	key->device = 0;
	key->device_get_name = 0;
	if (!L || !L->backend_device || !backend)
		return;
	if (read_user(&key->device, sizeof(key->device), (void *)(backend + L->backend_device)) || !key->device)
		return;
	/* struct ggml_backend_device starts with its iface, whose first member is get_name */
	read_user(&key->device_get_name, sizeof(key->device_get_name), (void *)key->device);
}

/* The index of a split's first node in the scheduler graph this thread is computing, or -1. */
static __always_inline int split_first_node(const struct pi_layout *L, __u64 cgraph, __u64 *sched_graph)
{
	__u64 sched_key = graph_entry_key(PI_GRAPH_SCHED);
	__u64 *sched = bpf_map_lookup_elem(&graph_entry, &sched_key);
	__u64 split_nodes = 0, sched_nodes = 0;
	int sched_n = 0;
	__u64 first;

	*sched_graph = sched ? *sched : 0;
	if (!sched || !L)
		return -1;
	/* a split is a view of the scheduler's graph: its node list points into that graph's */
	if (read_user(&split_nodes, sizeof(split_nodes), (void *)(cgraph + L->cgraph_nodes)) ||
	    read_user(&sched_nodes, sizeof(sched_nodes), (void *)(*sched + L->cgraph_nodes)) ||
	    read_user(&sched_n, sizeof(sched_n), (void *)(*sched + L->cgraph_n_nodes)))
		return -1;
	if (split_nodes < sched_nodes || sched_n < 0)
		return -1;
	first = (split_nodes - sched_nodes) >> 3;
	if (first > (__u64)sched_n)
		return -1;
	return (int)first;
}

static __always_inline void emit_split(__u64 backend, __u64 cgraph, const struct pi_backend_key *key)
{
	const struct pi_layout *L = layout();
	struct pi_split *e = reserve(sizeof(*e));

	if (!e)
		return;
	fill_header(&e->h, PI_EV_SPLIT);
	e->cgraph = cgraph;
	e->backend = backend;
	e->device = key->device;
	e->device_get_name = key->device_get_name;
	e->first_node = split_first_node(L, cgraph, &e->sched_graph);
	e->n_nodes = 0;
	if (L)
		read_user(&e->n_nodes, sizeof(e->n_nodes), (void *)(cgraph + L->cgraph_n_nodes));
	submit(e);
}

/* ---- splits: ggml_backend_graph_compute_async(backend, cgraph) ---- */

SEC("uprobe")
int BPF_KPROBE(split_enter, void *backend, void *cgraph)
{
	struct pi_backend_key key;
	struct backend_thread *t;

	if (!is_target())
		return 0;
	backend_identity((__u64)backend, &key);
	graph_enter(PI_GRAPH_SPLIT, (__u64)cgraph, 0);
	emit_split((__u64)backend, (__u64)cgraph, &key);
	if (!aggregate)
		return 0;
	t = backend_thread(true);
	if (!t)
		return 0;
	t->split = key;
	t->split_start = bpf_ktime_get_ns();
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(split_exit, int ret)
{
	struct backend_thread *t;
	struct pi_backend_agg *a;

	if (!is_target())
		return 0;
	graph_exit(PI_GRAPH_SPLIT, ret);
	if (!aggregate)
		return 0;
	t = backend_thread(false);
	if (!t || !t->split_start)
		return 0;
	a = backend_agg_of(&t->split);
	if (a) {
		a->splits += 1;
		a->submit_ns += bpf_ktime_get_ns() - t->split_start;
		a->copies += t->pending_copies;
		a->copy_bytes += t->pending_bytes;
		a->copy_ns += t->pending_ns;
	}
	t->split_start = 0;
	t->pending_copies = 0;
	t->pending_bytes = 0;
	t->pending_ns = 0;
	return 0;
}

/* ---- copies between backends ---- */

/*
 * The bytes of a tensor whose strides are a permutation of a contiguous layout: its largest
 * ne[i] * nb[i] (user space computes ggml_nbytes exactly from the event).
 */
static __always_inline __u64 copy_bytes(const struct pi_copy *e)
{
	__u64 bytes = 0;

	for (int i = 0; i < 4; i++) {
		__u64 b = (__u64)e->ne[i] * e->nb[i];

		if (e->ne[i] > 0 && b > bytes)
			bytes = b;
	}
	return bytes;
}

static __always_inline int copy_begin(__u32 via, __u64 backend_src, __u64 backend_dst, __u64 src, __u64 dst)
{
	const struct pi_layout *L = layout();
	struct backend_thread *t;
	struct pi_copy *e;
	__u64 bytes = 0;

	if (!is_target() || !L)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		/* the metrics need the shape even when nothing streams */
		if (stream)
			count(&drops, PI_DROP_RINGBUF_FULL);
		return 0;
	}
	fill_header(&e->h, PI_EV_COPY_BEGIN);
	e->src = src;
	e->dst = dst;
	e->backend_src = backend_src;
	e->backend_dst = backend_dst;
	e->via = via;
	e->type = 0;
	read_user(&e->type, sizeof(e->type), (void *)(src + L->tensor_type));
	read_user(e->ne, sizeof(e->ne), (void *)(src + L->tensor_ne));
	read_user(e->nb, sizeof(e->nb), (void *)(src + L->tensor_nb));
	read_user(e->src_name, sizeof(e->src_name), (void *)(src + L->tensor_name));
	read_user(e->dst_name, sizeof(e->dst_name), (void *)(dst + L->tensor_name));
	bytes = copy_bytes(e);
	if (stream)
		submit(e);
	else
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
	if (!aggregate)
		return 0;
	t = backend_thread(true);
	if (t) {
		t->copy_start = bpf_ktime_get_ns();
		t->copy_bytes = bytes;
	}
	return 0;
}

static __always_inline int copy_end(__u32 via, int ret)
{
	struct pi_copy_end *e;
	struct backend_thread *t;

	if (!is_target())
		return 0;
	e = reserve(sizeof(*e));
	if (e) {
		fill_header(&e->h, PI_EV_COPY_END);
		e->via = via;
		e->ret = ret;
		submit(e);
	}
	if (!aggregate)
		return 0;
	t = backend_thread(false);
	if (!t || !t->copy_start)
		return 0;
	/* an async copy that was not possible is followed by the copy that does it */
	if (via == PI_COPY_SYNC || ret) {
		t->pending_copies += 1;
		t->pending_bytes += t->copy_bytes;
		t->pending_ns += bpf_ktime_get_ns() - t->copy_start;
	}
	t->copy_start = 0;
	return 0;
}

/* ggml_backend_tensor_copy(src, dst) */
SEC("uprobe")
int BPF_KPROBE(copy_enter, void *src, void *dst)
{
	return copy_begin(PI_COPY_SYNC, 0, 0, (__u64)src, (__u64)dst);
}

SEC("uretprobe")
int BPF_KRETPROBE(copy_exit)
{
	return copy_end(PI_COPY_SYNC, 1);
}

/* A backend's cpy_tensor_async(backend_src, backend_dst, src, dst) -> bool */
SEC("uprobe")
int BPF_KPROBE(copy_async_enter, void *backend_src, void *backend_dst, void *src, void *dst)
{
	return copy_begin(PI_COPY_ASYNC, (__u64)backend_src, (__u64)backend_dst, (__u64)src, (__u64)dst);
}

SEC("uretprobe")
int BPF_KRETPROBE(copy_async_exit, int ret)
{
	return copy_end(PI_COPY_ASYNC, ret & 0xff);
}

/* ---- the host waiting for a backend: ggml_backend_synchronize(backend) ---- */

static __always_inline void emit_sync(__u32 type, __u64 backend)
{
	struct pi_sync *e = reserve(sizeof(*e));

	if (!e)
		return;
	fill_header(&e->h, type);
	e->backend = backend;
	submit(e);
}

SEC("uprobe")
int BPF_KPROBE(sync_enter, void *backend)
{
	struct backend_thread *t;

	if (!is_target())
		return 0;
	emit_sync(PI_EV_SYNC_BEGIN, (__u64)backend);
	if (!aggregate)
		return 0;
	t = backend_thread(true);
	if (!t)
		return 0;
	backend_identity((__u64)backend, &t->sync);
	t->sync_start = bpf_ktime_get_ns();
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(sync_exit)
{
	struct backend_thread *t;
	struct pi_backend_agg *a;

	if (!is_target())
		return 0;
	emit_sync(PI_EV_SYNC_END, 0);
	if (!aggregate)
		return 0;
	t = backend_thread(false);
	if (!t || !t->sync_start)
		return 0;
	a = backend_agg_of(&t->sync);
	if (a) {
		a->syncs += 1;
		a->sync_ns += bpf_ktime_get_ns() - t->sync_start;
	}
	t->sync_start = 0;
	return 0;
}

/* ---- a known backend's own functions (the run header's backendCalls, by attach cookie) ---- */

static __always_inline void emit_backend_call(__u32 type, __u32 call, __u64 a0, __u64 a1, __u64 a2)
{
	struct pi_backend_call *e = reserve(sizeof(*e));

	if (!e)
		return;
	fill_header(&e->h, type);
	e->call = call;
	e->_pad = 0;
	e->args[0] = a0;
	e->args[1] = a1;
	e->args[2] = a2;
	submit(e);
}

SEC("uprobe")
int BPF_KPROBE(backend_call_enter, __u64 a0, __u64 a1, __u64 a2)
{
	if (!is_target() || !ops_on())
		return 0;
	emit_backend_call(PI_EV_BACKEND_CALL_BEGIN, (__u32)bpf_get_attach_cookie(ctx), a0, a1, a2);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(backend_call_exit, __u64 ret)
{
	if (!is_target() || !ops_on())
		return 0;
	emit_backend_call(PI_EV_BACKEND_CALL_END, (__u32)bpf_get_attach_cookie(ctx), ret, 0, 0);
	return 0;
}

#endif /* __PROFINFER_BACKENDS_BPF_H */
