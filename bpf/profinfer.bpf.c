// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libbpf 1.1 (Debian 12) has no BPF_UPROBE: BPF_KPROBE reads the same pt_regs for uprobes. */
/*
 * profinfer: token, graph and operator tracing of an unmodified llama.cpp process.
 * Uprobes on llama_decode, the graph compute functions, every per-operator compute function and
 * ggml_barrier; sched_switch/sched_wakeup for the target's threads. Everything the program reads
 * in the target is located through `layout`, resolved for the binary in hand by user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "profinfer.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Configuration, set by user space between open and load. */
const volatile __u32 target_tgid = 0;
const volatile __u32 level = PI_LEVEL_OP;
const volatile __u32 sample_every = 1;	/* operator events for 1 in N llama_decode calls */
const volatile __u32 window_first = 0;	/* ...and only for calls first..last (0: no window) */
const volatile __u32 window_last = 0;
const volatile __u32 ops_without_tokens = 1; /* record operators when llama_decode is not probed */
const volatile __u32 moe_enabled = 1;
const volatile __u32 n_counters = 0; /* perf events in `pmc`, counter-major: index i * n_cpus + cpu */
const volatile __u32 n_cpus = 1;
const volatile __u32 stream = 1;     /* 0 (--level metrics): no event leaves the kernel, only aggregates */
const volatile __u32 aggregate = 0;  /* keep the metrics aggregates (token_agg, op_agg) */
const volatile __u32 aggregate_layers = 0; /* ...and layer_agg (reads each operator's tensor name) */
const volatile __u32 aggregate_moe = 0;	   /* ...and moe_agg (expert selections, from MOE_IDS reads) */

/* Upper bounds of the aggregate histograms' buckets (then +Inf); set by user space. */
const volatile __u64 agg_bounds_ns[PI_AGG_BUCKETS - 1] = {};

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

/* Per-CPU perf events (user space opens them and sizes the map: n_counters * n_cpus). */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pmc SEC(".maps");

/*
 * Per target thread: its own counter totals (acc, plus what the CPU it runs on counted since
 * `base`), and where its current operator, segment and barrier began for the aggregates.
 */
struct thread_state {
	/* first, so that user space can read what is left at the end (native/src/tracer.cpp) */
	struct pi_steps steps;
	__u64 acc[PI_MAX_COUNTERS];
	__u64 base_c[PI_MAX_COUNTERS];
	__u64 base_e[PI_MAX_COUNTERS];
	__u64 base_r[PI_MAX_COUNTERS];
	__u32 cpu;
	__u32 scaled;
	__u64 op_start;
	__u64 op_vals[PI_MAX_COUNTERS];
	__u32 op_func;
	__u32 depth;
	__u64 seg_start;
	__u64 seg_vals[PI_MAX_COUNTERS];
	__u32 seg_has_op;
	__u32 last_func;
	__u64 barrier_start;
	__u32 op_layer;
	__u32 off_cpu; /* a switch away was seen and its switch back not yet */
	/* step aggregates: the graph run, where its last step ended, its key and its barrier arrival */
	__u64 step_graph;
	__u32 step_prev;
	__u32 step_key;
	__u64 step_ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct thread_state);
} threads SEC(".maps");

/* Zeroed values to create map entries from (too large for the BPF stack). */
struct zeros {
	struct thread_state thread;
	struct pi_op_agg op;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zeros);
} zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PI_PHASES);
	__type(key, __u32);
	__type(value, struct pi_token_agg);
} token_agg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PI_MAX_OP_FUNCS * 4 + 1);
	__type(key, __u32);
	__type(value, struct pi_op_agg);
} op_agg SEC(".maps");

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

struct decode_start {
	__u64 ts;
	__s32 n_tokens;
	__u32 _pad;
};

/* llama_decode calls in flight, by thread (for the token aggregates). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct decode_start);
} decode_starts SEC(".maps");

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

#define SCRATCH_BYTES (PI_MAX_GRAPH_NODES * 8)
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

static __always_inline struct run_state *run_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&state, &zero);
}

static __always_inline bool is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline bool ops_on(void)
{
	struct run_state *s = run_state();

	if (!s)
		return false;
	if (s->tokens_seen)
		return s->ops_on;
	return ops_without_tokens;
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
 * core it needs (on 2 cores that halved decode speed). User space polls on a short timeout; the
 * reader is woken only once a quarter of the buffer is waiting.
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

static __always_inline int read_user(void *dst, __u32 size, const void *src)
{
	int err = bpf_probe_read_user(dst, size, src);

	if (err)
		count(&drops, PI_DROP_READ_FAILED);
	return err;
}

/* ---- counters ---- */

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
static __always_inline void pmc_rebase(struct thread_state *st)
{
	struct bpf_perf_event_value v;

	st->cpu = bpf_get_smp_processor_id();
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++) {
		if (i >= n_counters)
			break;
		if (pmc_read(i, &v))
			continue;
		st->base_c[i] = v.counter;
		st->base_e[i] = v.enabled;
		st->base_r[i] = v.running;
	}
}

/* Add what the CPU counted since the base to the thread's totals; the base moves to now. */
static __always_inline void pmc_accumulate(struct thread_state *st)
{
	struct bpf_perf_event_value v;

	if (st->cpu != bpf_get_smp_processor_id() || st->off_cpu) {
		/* a switch back was missed: the piece since the base is lost, not misattributed */
		pmc_rebase(st);
		st->off_cpu = 1;
		return;
	}
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++) {
		if (i >= n_counters)
			break;
		if (pmc_read(i, &v))
			continue;
		st->acc[i] += scaled_piece(v.counter - st->base_c[i], v.enabled - st->base_e[i],
					   v.running - st->base_r[i], &st->scaled, 1u << i);
		st->base_c[i] = v.counter;
		st->base_e[i] = v.enabled;
		st->base_r[i] = v.running;
	}
}

/* The running thread's totals now, without changing its state. */
static __always_inline void pmc_values(struct thread_state *st, __u64 *out, __u32 *scaled)
{
	struct bpf_perf_event_value v;

	/*
	 * The thread runs now: when it left its CPU and the switch back was not reported (the
	 * tracepoint misses a few), count from here rather than the time it was away.
	 */
	if (st->cpu != bpf_get_smp_processor_id() || st->off_cpu) {
		pmc_rebase(st);
		st->off_cpu = 0;
	}
	*scaled = st->scaled;
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++) {
		if (i >= n_counters)
			break;
		out[i] = st->acc[i];
		if (pmc_read(i, &v))
			continue;
		out[i] += scaled_piece(v.counter - st->base_c[i], v.enabled - st->base_e[i],
				       v.running - st->base_r[i], scaled, 1u << i);
	}
}

static __always_inline struct thread_state *thread_state(bool create)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), key = 0;
	struct thread_state *st = bpf_map_lookup_elem(&threads, &tid);
	struct zeros *z;

	if (st || !create)
		return st;
	z = bpf_map_lookup_elem(&zero, &key);
	if (!z)
		return NULL;
	if (bpf_map_update_elem(&threads, &tid, &z->thread, BPF_NOEXIST)) {
		count(&drops, PI_DROP_MAP_FULL);
		return NULL;
	}
	st = bpf_map_lookup_elem(&threads, &tid);
	if (st) {
		st->last_func = PI_AGG_UNPROBED;
		pmc_rebase(st);
	}
	return st;
}

static __always_inline void fill_counters(struct pi_counter_values *c, const __u64 *vals, __u32 scaled)
{
	c->n = n_counters;
	c->scaled = scaled;
	for (__u32 i = 0; i < PI_MAX_COUNTERS; i++)
		c->value[i] = i < n_counters ? vals[i] : 0;
}

/* ---- aggregates ---- */

static __always_inline __u32 bucket_of(__u64 ns)
{
	__u32 b = 0;

	for (__u32 i = 0; i < PI_AGG_BUCKETS - 1; i++)
		if (ns > agg_bounds_ns[i])
			b = i + 1;
	return b;
}

/* One operator interval of one thread (or a barrier wait when ns is 0 and wait is not). */
static __always_inline void agg_op(__u32 func, __u64 ns, __u64 wait, const __u64 *vals, const __u64 *from)
{
	struct pi_op_agg *a = bpf_map_lookup_elem(&op_agg, &func);
	__u32 key = 0;

	if (!a) {
		struct zeros *z = bpf_map_lookup_elem(&zero, &key);

		if (!z)
			return;
		if (bpf_map_update_elem(&op_agg, &func, &z->op, BPF_NOEXIST) && !bpf_map_lookup_elem(&op_agg, &func)) {
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

/* ---- token level ---- */

static __always_inline bool sampled(__u32 seq)
{
	if (level < PI_LEVEL_OP)
		return false;
	if (window_last && (seq < window_first || seq > window_last))
		return false;
	return sample_every <= 1 || (seq - 1) % sample_every == 0;
}

SEC("uprobe")
int BPF_KPROBE(decode_enter, void *lctx)
{
	struct run_state *s = run_state();
	struct pi_token_begin *e;
	int n_tokens = 0;

	if (!is_target() || !s)
		return 0;
	count(&hits, PI_HIT_TOKEN);
	/* llama_batch (56 bytes) is passed by value in memory: it starts above the return address. */
	read_user(&n_tokens, sizeof(n_tokens), (void *)(PT_REGS_SP(ctx) + 8));
	s->decode_seq += 1;
	s->tokens_seen = 1;
	s->ops_on = sampled(s->decode_seq);
	if (aggregate) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct decode_start d = { .ts = bpf_ktime_get_ns(), .n_tokens = n_tokens };

		bpf_map_update_elem(&decode_starts, &tid, &d, BPF_ANY);
	}
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_header(&e->h, PI_EV_TOKEN_BEGIN);
	e->ctx = (__u64)lctx;
	e->n_tokens = n_tokens;
	e->seq = s->decode_seq;
	e->ops_sampled = s->ops_on;
	e->_pad = 0;
	submit(e);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(decode_exit, int ret)
{
	struct run_state *s = run_state();
	struct pi_token_end *e;

	if (!is_target() || !s)
		return 0;
	if (aggregate) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct decode_start *d = bpf_map_lookup_elem(&decode_starts, &tid);

		if (d) {
			__u32 phase = d->n_tokens > 1 ? PI_PHASE_PREFILL : PI_PHASE_DECODE;
			struct pi_token_agg *a = bpf_map_lookup_elem(&token_agg, &phase);
			__u64 ns = bpf_ktime_get_ns() - d->ts;

			if (a) {
				a->calls += 1;
				a->tokens += d->n_tokens > 0 ? d->n_tokens : 0;
				a->ns += ns;
				__u32 b = bucket_of(ns);
				if (b < PI_AGG_BUCKETS)
					a->buckets[b] += 1;
			}
			bpf_map_delete_elem(&decode_starts, &tid);
		}
	}
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_header(&e->h, PI_EV_TOKEN_END);
	e->ret = ret;
	e->seq = s->decode_seq;
	submit(e);
	return 0;
}

/* ---- graph snapshots: the node list and tensor descriptions, when a graph changed ---- */

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
	/* op and shape decide the graph's structure; the pointer decides its identity. In every ggml
	 * so far op follows ne[4] and nb[4]: one read instead of two (this runs for every node of
	 * every graph computed, ahead of the workers) */
	if (L->tensor_op == L->tensor_ne + sizeof(shape.ne) + sizeof(shape.nb))
		err = bpf_probe_read_user(&shape, offsetof(typeof(shape), op) + sizeof(shape.op),
					  (void *)(node + L->tensor_ne));
	else
		err = bpf_probe_read_user(&shape.ne, sizeof(shape.ne), (void *)(node + L->tensor_ne)) ||
		      bpf_probe_read_user(&shape.op, sizeof(shape.op), (void *)(node + L->tensor_op));
	if (err)
		count(&drops, PI_DROP_READ_FAILED);
	c->sig = (c->sig ^ node) * 0x100000001b3ULL;
	c->sig = (c->sig ^ (__u64)shape.op) * 0x100000001b3ULL;
	c->sig = (c->sig ^ (__u64)shape.ne[0] ^ ((__u64)shape.ne[1] << 20) ^ ((__u64)shape.ne[2] << 40) ^
		  ((__u64)shape.ne[3] << 52)) *
		 0x100000001b3ULL;
	return 0;
}

static __always_inline bool name_has_prefix(const char *name, const char *prefix, int n)
{
	for (int i = 0; i < n; i++)
		if (name[i] != prefix[i])
			return false;
	return true;
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
		return bpf_map_lookup_elem(&moe_topk, &addr) != NULL;
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
	topk = name_has_prefix(e->name, "ffn_moe_topk", 12);
	submit(e);
	if (topk) {
		__u64 one = 1;

		bpf_map_update_elem(&moe_topk, &addr, &one, BPF_ANY);
	} else {
		bpf_map_delete_elem(&moe_topk, &addr);
	}
	return topk;
}

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
		if (describe(srcs[s], c->sig) && moe_enabled) {
			/* this node reads routing ids: when it starts, they are complete */
			struct run_state *st = run_state();

			bpf_map_update_elem(&moe_consumers, &node, &srcs[s], BPF_ANY);
			if (st)
				st->moe_armed = 1;
		}
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

/* Reads the graph's nodes and, when they or their shapes changed, describes the graph. */
static __always_inline void snapshot(__u64 cgraph, struct pi_graph_begin *e)
{
	const struct pi_layout *L = layout();
	struct run_state *s = run_state();
	struct node_scratch *buf;
	__u32 slot = bpf_get_smp_processor_id();
	__u64 nodes_ptr = 0;
	struct graph_sig_value *last;
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
	/*
	 * A CPU graph computed by the scheduler keeps its nodes and shapes until the scheduler
	 * allocates again (it rebuilds its splits there; llama.cpp reuses a graph only when its shapes
	 * are unchanged): the same cgraph with the same node list then has its last signature, without
	 * reading every node again. Any allocation, by any scheduler, makes every graph read afresh;
	 * a graph view (the scheduler's eval callback computes a split in slices, each a cgraph at the
	 * same address) differs in its node list.
	 */
	{
		__u64 sched_key = (bpf_get_current_pid_tgid() << 8) | PI_GRAPH_SCHED;
		struct graph_sig_value *seen = bpf_map_lookup_elem(&graph_sig, &cgraph);

		if (seen && s->allocs_seen && seen->allocs == s->sched_allocs && seen->nodes == nodes_ptr &&
		    seen->n == n && bpf_map_lookup_elem(&graph_entry, &sched_key)) {
			e->signature = seen->sig;
			return;
		}
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

/* ---- graph level ---- */

/*
 * ggml_backend_sched_alloc_graph: the scheduler splits a graph and allocates its tensors (a new or
 * rebuilt graph). Counted so that the snapshot knows when the graphs it computes may have changed.
 */
SEC("uprobe")
int BPF_KPROBE(sched_alloc)
{
	struct run_state *s;

	if (!is_target())
		return 0;
	s = run_state();
	if (s) {
		__sync_fetch_and_add(&s->sched_allocs, 1);
		s->allocs_seen = 1;
	}
	return 0;
}

static __always_inline int graph_enter(struct pt_regs *ctx, __u32 fn, __u64 cgraph, __u64 cplan)
{
	const struct pi_layout *L = layout();
	__u64 key = (bpf_get_current_pid_tgid() << 8) | fn;
	struct pi_graph_begin *e;
	int n_nodes = 0;

	if (!is_target())
		return 0;
	count(&hits, PI_HIT_GRAPH);
	if (fn == PI_GRAPH_CPU) {
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
	bpf_map_update_elem(&graph_entry, &key, &cgraph, BPF_ANY);
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	if (L)
		read_user(&n_nodes, sizeof(n_nodes), (void *)(cgraph + L->cgraph_n_nodes));
	fill_header(&e->h, PI_EV_GRAPH_BEGIN);
	e->cgraph = cgraph;
	e->fn = fn;
	e->n_nodes = n_nodes;
	e->n_threads = 0;
	e->changed = 0;
	e->signature = 0;
	if (cplan && L)
		read_user(&e->n_threads, sizeof(e->n_threads), (void *)(cplan + L->cplan_n_threads));
	/* The node list and tensors are only needed where operators are recorded (or routing read). */
	if (fn == PI_GRAPH_CPU && (ops_on() || (moe_enabled && level >= PI_LEVEL_OP)))
		snapshot(cgraph, e);
	submit(e);
	return 0;
}

static __always_inline int graph_exit(__u32 fn, int ret)
{
	__u64 key = (bpf_get_current_pid_tgid() << 8) | fn;
	struct pi_graph_end *e;
	__u64 *cgraph;

	if (!is_target())
		return 0;
	cgraph = bpf_map_lookup_elem(&graph_entry, &key);
	e = reserve(sizeof(*e));
	if (e) {
		fill_header(&e->h, PI_EV_GRAPH_END);
		e->cgraph = cgraph ? *cgraph : 0;
		e->fn = fn;
		e->ret = ret;
		submit(e);
	}
	bpf_map_delete_elem(&graph_entry, &key);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(sched_graph_enter, void *sched, void *cgraph)
{
	return graph_enter(ctx, PI_GRAPH_SCHED, (__u64)cgraph, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(sched_graph_exit, int ret)
{
	return graph_exit(PI_GRAPH_SCHED, ret);
}

SEC("uprobe")
int BPF_KPROBE(cpu_graph_enter, void *cgraph, void *cplan)
{
	return graph_enter(ctx, PI_GRAPH_CPU, (__u64)cgraph, (__u64)cplan);
}

SEC("uretprobe")
int BPF_KRETPROBE(cpu_graph_exit, int ret)
{
	return graph_exit(PI_GRAPH_CPU, ret);
}

/* ---- operator level ---- */

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

/* One expert selection into moe_agg (bounded by the map's size; a full map counts a drop). */
static long moe_count(__u64 i, struct moe_count_ctx *c)
{
	struct pi_moe_key key = { .layer = c->layer };
	__u64 one = 1, *n;

	if (i >= PI_MAX_MOE_IDS)
		return 1;
	key.expert = (__u32)c->e->ids[i];
	n = bpf_map_lookup_elem(&moe_agg, &key);
	if (n)
		*n += 1;
	else if (bpf_map_update_elem(&moe_agg, &key, &one, BPF_NOEXIST))
		count(&drops, PI_DROP_MAP_FULL);
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
	char prefix[12] = {};
	__u64 data = 0;

	if (!L)
		return 0;
	/* the consumer slot may be stale (addresses are reused): check the tensor is still routing */
	if (bpf_probe_read_user(prefix, sizeof(prefix), (void *)(topk + L->tensor_name)) ||
	    !name_has_prefix(prefix, "ffn_moe_topk", 12))
		return 0;
	if (read_user(shape.ne, sizeof(shape.ne), (void *)(topk + L->tensor_ne)) ||
	    read_user(shape.nb, sizeof(shape.nb), (void *)(topk + L->tensor_nb)) ||
	    read_user(&data, sizeof(data), (void *)(topk + L->tensor_data)))
		return 0;
	if (shape.ne[0] <= 0 || shape.ne[0] > 64 || shape.ne[1] <= 0 || !data)
		return 0;

	__u32 k = shape.ne[0], n_tokens = shape.ne[1];
	__u32 per_event = PI_MAX_MOE_IDS / k;

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

SEC("uprobe")
int BPF_KPROBE(op_enter, void *params, void *dst)
{
	const struct pi_layout *L = layout();
	__u64 vals[PI_MAX_COUNTERS] = {};
	struct thread_state *st = NULL;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 func = cookie & ~PI_OP_NO_AGGREGATE, scaled = 0;
	/* probes kept only to read MoE ids while step probes time the operators */
	bool agg = aggregate && !(cookie & PI_OP_NO_AGGREGATE);
	struct run_state *s;
	int ith = -1, nth = -1;

	if (!is_target() || !ops_on())
		return 0;
	count(&hits, PI_HIT_OP);
	if (L && stream) {
		read_user(&ith, sizeof(ith), params + L->params_ith);
		read_user(&nth, sizeof(nth), params + L->params_nth);
	}
	if (n_counters || aggregate)
		st = thread_state(true);
	if (st && n_counters)
		pmc_values(st, vals, &scaled);
	emit_op(PI_EV_OP_BEGIN, (__u64)dst, func, ith, nth, vals, scaled);
	if (agg && st) {
		/* nested functions (add calling add_non_quantized) count once, as the outer one */
		if (st->depth == 0) {
			st->op_layer = aggregate_layers ? layer_of_tensor((__u64)dst) : PI_NO_LAYER;
			st->op_start = bpf_ktime_get_ns();
			st->op_func = func;
			for (__u32 i = 0; i < PI_MAX_COUNTERS; i++)
				st->op_vals[i] = vals[i];
		}
		st->depth += 1;
	}

	s = run_state();
	if (moe_enabled && stream && s && s->moe_armed) {
		__u64 key = (__u64)dst, *topk;

		topk = bpf_map_lookup_elem(&moe_consumers, &key);
		if (topk && ith == 0)
			emit_moe_ids(key, *topk);
	}
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(op_exit)
{
	__u64 vals[PI_MAX_COUNTERS] = {};
	struct thread_state *st = NULL;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 func = cookie & ~PI_OP_NO_AGGREGATE, scaled = 0;
	/* probes kept only to read MoE ids while step probes time the operators */
	bool agg = aggregate && !(cookie & PI_OP_NO_AGGREGATE);

	if (!is_target() || !ops_on())
		return 0;
	if (n_counters || aggregate)
		st = thread_state(true);
	if (st && n_counters)
		pmc_values(st, vals, &scaled);
	emit_op(PI_EV_OP_END, 0, func, -1, -1, vals, scaled);
	if (agg && st && st->depth > 0) {
		st->depth -= 1;
		if (st->depth == 0) {
			__u64 ns = bpf_ktime_get_ns() - st->op_start;

			agg_op(st->op_func, ns, 0, vals, st->op_vals);
			if (aggregate_layers && st->op_layer != PI_NO_LAYER)
				agg_layer(st->op_layer, st->op_func, ns);
			st->seg_has_op = 1;
			st->last_func = st->op_func;
		}
	}
	return 0;
}

static __always_inline int barrier_event(__u32 type)
{
	__u64 vals[PI_MAX_COUNTERS] = {};
	struct thread_state *st = NULL;
	__u32 scaled = 0;
	__u64 now;

	if (!is_target() || !ops_on())
		return 0;
	if (type == PI_EV_BARRIER_BEGIN)
		count(&hits, PI_HIT_BARRIER);
	if (n_counters || aggregate)
		st = thread_state(true);
	if (st && n_counters)
		pmc_values(st, vals, &scaled);
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
	/* barriers inside an operator's own code are part of that operator */
	if (!aggregate || !st || st->depth > 0)
		return 0;
	now = bpf_ktime_get_ns();
	if (type == PI_EV_BARRIER_BEGIN) {
		/* a segment without a probed operator: a barrier-timed operator */
		if (!st->seg_has_op && st->seg_start) {
			struct run_state *s = run_state();
			__u64 graph_start = s ? s->cpu_graph_start : 0;

			if (st->seg_start >= graph_start)
				agg_op(PI_AGG_UNPROBED, now - st->seg_start, 0, vals, st->seg_vals);
			else if (graph_start && now > graph_start)
				/* the thread's first step of a graph: it started with the graph, its
				 * counters before that include the idle wait, so none are added */
				agg_op(PI_AGG_UNPROBED, now - graph_start, 0, NULL, NULL);
		}
		st->barrier_start = now;
	} else if (st->barrier_start) {
		agg_op(st->last_func, 0, now - st->barrier_start, NULL, NULL);
		st->barrier_start = 0;
		st->seg_start = now;
		st->seg_has_op = 0;
		st->last_func = PI_AGG_UNPROBED;
		for (__u32 i = 0; i < PI_MAX_COUNTERS; i++)
			st->seg_vals[i] = vals[i];
	}
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(barrier_enter)
{
	return barrier_event(PI_EV_BARRIER_BEGIN);
}

SEC("uretprobe")
int BPF_KRETPROBE(barrier_exit)
{
	return barrier_event(PI_EV_BARRIER_END);
}

/* ---- compute loop steps ---- */

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

/* On the compute loop's `call ggml_barrier`: one hit per step and thread (the kernel emulates a
 * call, so no single-step). */
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

/*
 * In-kernel aggregates from step probes: the step that ends here on this thread began when the
 * barrier before it released (its key's time), and the wait in that barrier goes to the step
 * before. The loop's final barrier ends the graph's last step; its own wait is not counted.
 */
static __always_inline void step_aggregate(int next, __u64 now)
{
	const struct pi_layout *L = layout();
	struct run_state *s = run_state();
	struct thread_state *st;
	__u64 start;
	__u32 to, key;

	if (!L || !s || !s->cpu_nodes)
		return;
	st = thread_state(true);
	if (!st)
		return;
	if (st->step_graph != s->cpu_graph_start) {
		st->step_graph = s->cpu_graph_start;
		st->step_prev = 0;
		st->step_ts = 0;
	}
	to = next < 0 ? s->cpu_n_nodes : (__u32)next;
	if (to <= st->step_prev || to >= PI_MAX_STEP_NODES)
		return;
	start = s->cpu_graph_start;
	if (st->step_prev) {
		__u32 k = st->step_prev;
		__u64 *released = bpf_map_lookup_elem(&step_release, &k);

		if (released && *released > start)
			start = *released;
	}
	if (st->step_ts && start > st->step_ts)
		agg_op(st->step_key, 0, start - st->step_ts, NULL, NULL);
	key = step_key(L, s->cpu_nodes, st->step_prev, to);
	if (now > start)
		agg_op(key, now - start, 0, NULL, NULL);
	if (next >= 0)
		release_max(to, now);
	st->step_prev = next < 0 ? 0 : to;
	st->step_key = key;
	st->step_ts = next < 0 ? 0 : now;
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

/* On the compute loop's `call ggml_barrier`: one hit per step and thread (the kernel emulates a
 * call, so no single-step). The step joins its thread's batch (pi_steps). */
SEC("uprobe")
int BPF_KPROBE(step_site)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	int next = cookie == PI_STEP_FINAL ? -1 : (int)step_register(ctx, cookie);
	__u64 now;

	if (!is_target() || !ops_on())
		return 0;
	now = bpf_ktime_get_ns();
	count(&hits, PI_HIT_STEP);
	if (stream) {
		struct thread_state *st = thread_state(true);

		if (st) {
			struct pi_steps *b = &st->steps;
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
		} else {
			count(&drops, PI_DROP_MAP_FULL);
		}
	}
	if (aggregate)
		step_aggregate(next, now);
	return 0;
}

/* ---- libraries ---- */

/*
 * The dynamic linker calls _dl_debug_state whenever its list of loaded objects changes (the hook
 * debuggers use). Stop the process there so that user space can attach probes to a library that
 * was just loaded before any of its code runs; user space sends SIGCONT once it has.
 */
SEC("uprobe")
int BPF_KPROBE(dl_activity)
{
	struct pi_header *e;

	if (!is_target())
		return 0;
	/* a control event: it travels even at level metrics, where nothing else does */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(&drops, PI_DROP_RINGBUF_FULL);
		return 0;
	}
	fill_header(e, PI_EV_LIBRARY);
	/* the process waits, stopped, until user space has seen this */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	bpf_send_signal(19 /* SIGSTOP */);
	return 0;
}

/* ---- scheduling ---- */

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 prev_tgid = BPF_CORE_READ(prev, tgid), next_tgid = BPF_CORE_READ(next, tgid);
	struct pi_sched_switch *e;

	if (prev_tgid != target_tgid && next_tgid != target_tgid)
		return 0;
	if (n_counters) {
		/* a thread's counts are its own: close its piece on this CPU, open one for the next */
		__u32 prev_tid = BPF_CORE_READ(prev, pid), next_tid = BPF_CORE_READ(next, pid);
		struct thread_state *st;

		if (prev_tgid == target_tgid) {
			st = bpf_map_lookup_elem(&threads, &prev_tid);
			if (st) {
				pmc_accumulate(st);
				st->off_cpu = 1;
			}
		}
		if (next_tgid == target_tgid) {
			st = bpf_map_lookup_elem(&threads, &next_tid);
			if (st) {
				pmc_rebase(st);
				st->off_cpu = 0;
			}
		}
	}
	if (level < PI_LEVEL_OP || !stream)
		return 0;
	count(&hits, PI_HIT_SCHED);
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
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
	e->prev_state = preempt ? 0 : BPF_CORE_READ(prev, __state);
	BPF_CORE_READ_STR_INTO(&e->prev_comm, prev, comm);
	BPF_CORE_READ_STR_INTO(&e->next_comm, next, comm);
	submit(e);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_sched_wakeup, struct task_struct *p)
{
	struct pi_sched_wakeup *e;

	if (BPF_CORE_READ(p, tgid) != target_tgid || level < PI_LEVEL_OP || !stream)
		return 0;
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	e->h.type = PI_EV_SCHED_WAKEUP;
	e->h.cpu = bpf_get_smp_processor_id();
	e->h.tgid = target_tgid;
	e->h.tid = BPF_CORE_READ(p, pid);
	e->h.ts = bpf_ktime_get_ns();
	e->waker_tid = (__u32)bpf_get_current_pid_tgid();
	e->target_cpu = BPF_CORE_READ(p, wake_cpu);
	submit(e);
	return 0;
}
