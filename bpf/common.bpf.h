/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every program shares: the run's configuration and state, the target filter, the ggml
 * layout, and the event plumbing (reserve and submit, drop and hit counters, user memory reads).
 */
#ifndef __PROFINFER_COMMON_BPF_H
#define __PROFINFER_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "profinfer.h"

/* Configuration, set by user space between open and load. */
const volatile __u32 target_tgid = 0;
const volatile __u32 level = PI_LEVEL_OP;
const volatile __u32 sample_every = 1;	/* operator events for 1 in N llama_decode calls */
const volatile __u32 window_first = 0;	/* ...and only for calls first..last (0: no window) */
const volatile __u32 window_last = 0;
const volatile __u32 window_only = 0;	/* ...and nothing of the calls after it streams (agent windows) */
const volatile __u32 ops_without_tokens = 1; /* record operators when llama_decode is not probed */
const volatile __u32 stream = 1;     /* 0 (--level metrics): no event leaves the kernel, only aggregates */
/* 1 (the host agent): probes serve every process mapping their file; the processes followed are
 * those user space put in `targets`, each with its own state there (target_tgid is unused) */
const volatile __u32 multi = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20); /* resized by user space */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PI_DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PI_HIT_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

struct run_state {
	__u32 decode_seq;   /* llama_decode calls so far */
	__u32 ops_on;	    /* operator events are being recorded */
	__u32 tokens_seen;  /* llama_decode is probed and has fired */
	__u32 moe_armed;    /* consumers of routing tensors are known */
	__u64 cpu_graph_start; /* the latest ggml_graph_compute entry */
	__u64 cpu_nodes;       /* its cgraph->nodes and n_nodes (step aggregates) */
	__u32 cpu_n_nodes;
	__u32 sched_allocs; /* ggml_backend_sched_alloc_graph calls so far (sched_alloc) */
	__u32 allocs_seen;  /* sched_alloc is attached and has fired */
	__u32 _pad3;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct run_state);
} state SEC(".maps");

/* multi: the processes followed, by tgid, with their state (user space adds and removes them) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PI_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct run_state);
} targets SEC(".maps");

/*
 * Field offsets of the target's ggml structs. A map rather than rodata: the library that defines
 * them may be loaded (dlopen) after the program is, and is resolved then; `valid` is 0 until.
 */
struct layout_slot {
	struct pi_layout l;
	__u32 valid;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct layout_slot);
} layout_map SEC(".maps");

static __always_inline const struct pi_layout *layout(void)
{
	__u32 zero = 0;
	struct layout_slot *slot = bpf_map_lookup_elem(&layout_map, &zero);

	return slot && slot->valid ? &slot->l : NULL;
}

static __always_inline void count_n(void *map, __u32 index, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(map, &index);

	if (v)
		*v += n;
}

static __always_inline void count(void *map, __u32 index)
{
	count_n(map, index, 1);
}

/* The state of the current process: the one target's, or (multi) its entry in `targets`. */
static __always_inline struct run_state *run_state(void)
{
	__u32 zero = 0;

	if (multi) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;

		return bpf_map_lookup_elem(&targets, &tgid);
	}
	return bpf_map_lookup_elem(&state, &zero);
}

static __always_inline bool is_target(void)
{
	if (multi)
		return run_state() != NULL;
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline bool ops_on(void)
{
	struct run_state *s = run_state();

	if (!s)
		return false;
	/* without a llama_decode probe there is no sampling: the configuration decides */
	if (s->tokens_seen)
		return s->ops_on;
	return ops_without_tokens;
}

/* Whether the process is past its window and nothing more of it streams (window_only). */
static __always_inline bool past_window(const struct run_state *s)
{
	return window_only && window_last && s && s->decode_seq > window_last;
}

/* Whether llama_decode call `seq` (from 1) records operator events: level, window, 1 in N. */
static __always_inline bool sampled(__u32 seq)
{
	if (level < PI_LEVEL_OP)
		return false;
	if (window_last && (seq < window_first || seq > window_last))
		return false;
	return sample_every <= 1 || (seq - 1) % sample_every == 0;
}

static __always_inline void fill_header(struct pi_header *h, __u32 type)
{
	__u64 id = bpf_get_current_pid_tgid();

	h->type = type;
	h->cpu = bpf_get_smp_processor_id();
	h->tgid = id >> 32;
	h->tid = (__u32)id;
	h->ts = bpf_ktime_get_ns();
}

/* Reserve an event or count the drop. */
static __always_inline void *reserve(__u64 size)
{
	void *e;

	/* --level metrics: nothing per event leaves the kernel */
	if (!stream)
		return NULL;
	e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		count(&drops, PI_DROP_RINGBUF_FULL);
	return e;
}

/*
 * Submit without waking the reader: a wakeup per event costs the target a context switch on a
 * core it needs. User space polls on a timeout instead; the reader is woken only once a quarter
 * of the buffer is waiting.
 */
static __always_inline __u64 wakeup_flag(void)
{
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

	return waiting > size / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void submit(void *e)
{
	bpf_ringbuf_submit(e, wakeup_flag());
}

/* A read of the target's memory; a failure is counted (the event goes out incomplete). */
static __always_inline int read_user(void *dst, __u32 size, const void *src)
{
	int err = bpf_probe_read_user(dst, size, src);

	if (err)
		count(&drops, PI_DROP_READ_FAILED);
	return err;
}

#endif /* __PROFINFER_COMMON_BPF_H */
