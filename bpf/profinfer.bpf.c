// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * profinfer: token, graph and operator tracing of an unmodified llama.cpp process.
 * Uprobes on llama_decode, the graph compute functions, every per-operator compute function,
 * ggml_barrier and the compute loop's barrier calls; sched_switch/sched_wakeup for the target's
 * threads. Everything the programs read in the target is located through `layout`, resolved for
 * the binary in hand by user space. The programs filter, read and emit; the helpers of each
 * concern are in the *.bpf.h headers beside this file.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "profinfer.h"
#include "common.bpf.h"
#include "counters.bpf.h"
#include "aggregates.bpf.h"
#include "moe.bpf.h"
#include "graph.bpf.h"
#include "ops.bpf.h"
#include "steps.bpf.h"
#include "threads.bpf.h"
#include "sched.bpf.h"
#include "batch.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* libbpf 1.1 (Debian 12) has no BPF_UPROBE: BPF_KPROBE reads the same pt_regs for uprobes. */

/* ---- token level ---- */

SEC("uprobe")
int BPF_KPROBE(decode_enter, void *lctx)
{
	struct run_state *s = run_state();
	struct batch_scratch *batch = NULL;
	struct pi_token_begin *e;
	int n_tokens = 0;

	if (!is_target() || !s)
		return 0;
	count(&hits, PI_HIT_TOKEN);
	/* llama_batch (56 bytes) is passed by value in memory: it starts above the return address. */
	read_user(&n_tokens, sizeof(n_tokens), (void *)(PT_REGS_SP(ctx) + 8));
	/* this call's sequence number decides whether its operators are recorded */
	s->decode_seq += 1;
	s->tokens_seen = 1;
	s->ops_on = sampled(s->decode_seq);
	if (past_window(s))
		return 0;
	/* what the batch holds per sequence, for the requests it serves */
	if (stream || aggregate)
		batch = read_batch(PT_REGS_SP(ctx) + 8, s->decode_seq, (__u64)lctx);
	if (aggregate && batch)
		agg_decode_begin(&batch->call);
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
	if (batch)
		emit_batch(batch);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(decode_exit, int ret)
{
	struct run_state *s = run_state();
	struct pi_token_end *e;

	if (!is_target() || !s || past_window(s))
		return 0;
	if (aggregate)
		agg_decode_end();
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_header(&e->h, PI_EV_TOKEN_END);
	e->ret = ret;
	e->seq = s->decode_seq;
	submit(e);
	return 0;
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

static __always_inline int graph_enter(__u32 fn, __u64 cgraph, __u64 cplan)
{
	const struct pi_layout *L = layout();
	__u64 key = graph_entry_key(fn);
	struct pi_graph_begin *e;
	int n_nodes = 0;

	if (!is_target() || past_window(run_state()))
		return 0;
	count(&hits, PI_HIT_GRAPH);
	if (fn == PI_GRAPH_CPU)
		note_cpu_graph(L, cgraph);
	/* the return probe has no arguments: it finds the graph here */
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
	/* The node list and tensors are only needed where operators are recorded (or routing read):
	 * a split is described when it is handed to its backend, and the CPU graph computing it
	 * (the same graph view) finds it unchanged. */
	if (fn != PI_GRAPH_SCHED && (ops_on() || (moe_enabled && level >= PI_LEVEL_OP)))
		snapshot(cgraph, e);
	submit(e);
	return 0;
}

static __always_inline int graph_exit(__u32 fn, int ret)
{
	__u64 key = graph_entry_key(fn);
	struct pi_graph_end *e;
	__u64 *cgraph;

	if (!is_target() || past_window(run_state()))
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
	return graph_enter(PI_GRAPH_SCHED, (__u64)cgraph, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(sched_graph_exit, int ret)
{
	return graph_exit(PI_GRAPH_SCHED, ret);
}

SEC("uprobe")
int BPF_KPROBE(cpu_graph_enter, void *cgraph, void *cplan)
{
	return graph_enter(PI_GRAPH_CPU, (__u64)cgraph, (__u64)cplan);
}

SEC("uretprobe")
int BPF_KRETPROBE(cpu_graph_exit, int ret)
{
	return graph_exit(PI_GRAPH_CPU, ret);
}

/* ---- operator level ---- */

/* Entry of an operator's compute function on one worker thread (ggml_compute_params, dst). */
static __always_inline int op_begin(struct pt_regs *ctx, void *params, void *dst)
{
	const struct pi_layout *L = layout();
	__u64 vals[PI_MAX_COUNTERS] = {};
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 func = op_cookie_func(cookie), scaled = 0;
	bool agg = op_cookie_aggregates(cookie);
	struct thread_state *st;
	int ith = -1, nth = -1;

	if (!is_target() || !ops_on())
		return 0;
	count(&hits, PI_HIT_OP);
	if (L && (stream || agg)) {
		read_user(&ith, sizeof(ith), params + L->params_ith);
		read_user(&nth, sizeof(nth), params + L->params_nth);
	}
	st = thread_at_boundary(vals, &scaled);
	emit_op(PI_EV_OP_BEGIN, (__u64)dst, func, ith, nth, vals, scaled);
	if (agg && st) {
		__u32 key = cookie & PI_OP_BY_TENSOR ? tensor_op_key(L, (__u64)dst) : func;
		struct run_state *s = run_state();

		agg_op_begin(&st->ops, key, (__u64)dst, vals);
		/* the run and its bytes once: by the first worker, in the outermost probed function */
		if (ith == 0 && st->ops.depth == 1 && s)
			agg_run(key, cached_node_bytes(s, (__u64)dst, 0, 1));
	}
	moe_read_at_consumer((__u64)dst, ith);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(op_enter, void *params, void *dst)
{
	return op_begin(ctx, params, dst);
}

/* An extra buffer type's compute_forward(this, params, op): a C++ method, its arguments one on. */
SEC("uprobe")
int BPF_KPROBE(op_method_enter, void *self, void *params, void *dst)
{
	return op_begin(ctx, params, dst);
}

SEC("uretprobe")
int BPF_KRETPROBE(op_exit)
{
	__u64 vals[PI_MAX_COUNTERS] = {};
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 func = op_cookie_func(cookie), scaled = 0;
	bool agg = op_cookie_aggregates(cookie);
	struct thread_state *st;

	if (!is_target() || !ops_on())
		return 0;
	st = thread_at_boundary(vals, &scaled);
	emit_op(PI_EV_OP_END, 0, func, -1, -1, vals, scaled);
	if (agg && st)
		agg_op_end(&st->ops, vals);
	return 0;
}

static __always_inline int barrier_event(__u32 type)
{
	__u64 vals[PI_MAX_COUNTERS] = {};
	struct thread_state *st;
	__u32 scaled = 0;

	if (!is_target() || !ops_on())
		return 0;
	if (type == PI_EV_BARRIER_BEGIN)
		count(&hits, PI_HIT_BARRIER);
	st = thread_at_boundary(vals, &scaled);
	emit_barrier(type, vals, scaled);
	if (aggregate && st)
		agg_barrier(&st->ops, type, vals);
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

/* On the compute loop's `call ggml_barrier`: one hit per step and thread (the kernel emulates a
 * call, so no single-step). The step joins its thread's batch (pi_steps). */
SEC("uprobe")
int BPF_KPROBE(step_site)
{
	int next = step_next(ctx, bpf_get_attach_cookie(ctx));
	__u64 now;

	if (!is_target() || !ops_on())
		return 0;
	now = bpf_ktime_get_ns();
	count(&hits, PI_HIT_STEP);
	if (stream) {
		struct thread_state *st = thread_state(true);

		if (st)
			add_step(&st->steps.batch, next, now);
		else
			count(&drops, PI_DROP_MAP_FULL);
	}
	if (aggregate) {
		const struct pi_layout *L = layout();
		struct run_state *s = run_state();
		struct thread_state *st;

		if (!step_aggregates_ready(L, s))
			return 0;
		st = thread_state(true);
		if (st)
			step_aggregate(&st->steps, L, s, next, now);
	}
	return 0;
}

/* ---- libraries ---- */

/*
 * The dynamic linker calls _dl_debug_state whenever its list of loaded objects changes (the hook
 * debuggers use). Stop the process there so that user space can attach probes to a library that
 * was just loaded before any of its code runs; user space sends SIGCONT once it has.
 */
/* A control event (a bare header): it travels even at level metrics, where nothing else does. */
static __always_inline int emit_control(__u32 type, __u32 tgid)
{
	struct pi_header *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(&drops, PI_DROP_RINGBUF_FULL);
		return -1;
	}
	fill_header(e, type);
	e->tgid = tgid;
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(dl_activity)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	/* multi: any process that loads a library may be one to follow, and none is stopped */
	if (multi)
		return emit_control(PI_EV_LIBRARY, tgid);
	if (!is_target())
		return 0;
	/* the process waits, stopped, until user space has seen this */
	if (!emit_control(PI_EV_LIBRARY, tgid))
		bpf_send_signal(19 /* SIGSTOP */);
	return 0;
}

/* ---- processes (multi: the host agent finds them as they start and forgets them as they end) ---- */

/* A program image replaced the process's own: a new process to look at, or a followed one gone. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_process_exec, struct task_struct *p)
{
	if (!multi)
		return 0;
	emit_control(PI_EV_PROCESS_EXEC, BPF_CORE_READ(p, tgid));
	return 0;
}

/* The last thread of a followed process exits (its thread group's live count is down to 0). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_process_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (!multi || !bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	emit_control(PI_EV_PROCESS_EXIT, tgid);
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
	if (n_counters)
		sched_counters(prev, next, prev_tgid, next_tgid);
	if (level < PI_LEVEL_OP || !stream || past_window(run_state()))
		return 0;
	count(&hits, PI_HIT_SCHED);
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_switch(e, preempt, prev, next, prev_tgid, next_tgid);
	submit(e);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_sched_wakeup, struct task_struct *p)
{
	struct pi_sched_wakeup *e;

	if (BPF_CORE_READ(p, tgid) != target_tgid || level < PI_LEVEL_OP || !stream ||
	    past_window(run_state()))
		return 0;
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_wakeup(e, p);
	submit(e);
	return 0;
}

/* ---- backends: splits, copies, waits, a known backend's own functions ---- */

#include "backends.bpf.h"
