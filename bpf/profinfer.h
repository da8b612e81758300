/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Event structs shared by the BPF programs (profinfer.bpf.c), the native addon and, through
 * docs/raw-events.md, the TypeScript decoder. Plain C, fixed-width little-endian fields, no
 * pointers: addresses in the target process are u64. Every event starts with pi_header.
 * Bump PI_EVENT_ABI whenever a layout here changes.
 */
#ifndef __PROFINFER_H
#define __PROFINFER_H

#define PI_EVENT_ABI 5

#define PI_MAX_SRC 10	     /* GGML_MAX_SRC */
#define PI_MAX_TYPES 64	     /* ggml types whose sizes the bytes of an operator need */
#define PI_MAX_NAME 64	     /* GGML_MAX_NAME */
#define PI_NODES_PER_CHUNK 256 /* node pointers per PI_EV_GRAPH_NODES event */
#define PI_MAX_GRAPH_NODES 16384
#define PI_MAX_MOE_IDS 2048 /* expert ids per PI_EV_MOE_IDS event (k x tokens) */
#define PI_MAX_COUNTERS 8   /* perf events read at operator and barrier boundaries */
#define PI_AGG_BUCKETS 23   /* duration histogram buckets of the aggregates (agg_bounds_ns + Inf) */
#define PI_AGG_UNPROBED 0xffffffffu /* aggregate key of barrier-timed operators (no probe of their own) */
/*
 * Aggregate keys of operators timed by step probes: PI_AGG_STEP | op | (second op + 1) << 8 (a fused
 * step, else 0) | (unary or glu kind + 1) << 16 (else 0); ops and kinds are this build's enums.
 */
#define PI_AGG_STEP 0x80000000u
/* Attach cookie bit of an operator function probe that must not feed the aggregates (step probes
 * time that operator; the function probe only reads MoE ids). */
#define PI_OP_NO_AGGREGATE 0x40000000u
/* Attach cookie bit of a function that computes several ops (an extra buffer type's
 * compute_forward: repacked or AMX matmuls): its aggregates are keyed by the tensor's op
 * (PI_AGG_STEP | op | (kind + 1) << 16), not by the function. */
#define PI_OP_BY_TENSOR 0x20000000u

enum pi_event_type {
	PI_EV_TOKEN_BEGIN = 1,	/* llama_decode entry */
	PI_EV_TOKEN_END = 2,	/* llama_decode return */
	PI_EV_GRAPH_BEGIN = 3,	/* graph compute entry (which function: pi_graph_fn) */
	PI_EV_GRAPH_END = 4,	/* graph compute return */
	PI_EV_GRAPH_NODES = 5,	/* a chunk of a graph's node pointer list, when the graph changed */
	PI_EV_TENSOR = 6,	/* one tensor's description (nodes, their sources, views' targets) */
	PI_EV_OP_BEGIN = 7,	/* per-operator compute function entry, on one worker thread */
	PI_EV_OP_END = 8,	/* per-operator compute function return */
	PI_EV_BARRIER_BEGIN = 9, /* ggml_barrier entry on one worker thread */
	PI_EV_BARRIER_END = 10,	/* ggml_barrier return */
	PI_EV_SCHED_SWITCH = 11, /* a target thread left or took a CPU */
	PI_EV_SCHED_WAKEUP = 12, /* a target thread was woken */
	PI_EV_MOE_IDS = 13,	/* expert ids read from an ffn_moe_topk tensor */
	PI_EV_LIBRARY = 14,	/* the dynamic linker's object list changed; the process is stopped */
	PI_EV_STEP = 15,	/* the compute loop's barrier call on one worker thread (a step ended) */
	PI_EV_STEPS = 16,	/* a batch of one thread's steps (see pi_steps) */
	PI_EV_BATCH = 17,	/* what a llama_decode call's batch holds, per sequence (ABI 4) */
	/* the host agent's control events (a pi_header each, never recorded): a process called exec,
	 * or the last thread of a followed process exited */
	PI_EV_PROCESS_EXEC = 18,
	PI_EV_PROCESS_EXIT = 19,
	PI_EV_SPLIT = 20,	/* the backend of a split, right after its GRAPH_BEGIN (ABI 5) */
	PI_EV_COPY_BEGIN = 21,	/* a tensor copied to another backend's buffer (ABI 5) */
	PI_EV_COPY_END = 22,
	PI_EV_SYNC_BEGIN = 23,	/* the host waits for a backend (ggml_backend_synchronize, ABI 5) */
	PI_EV_SYNC_END = 24,
	PI_EV_BACKEND_CALL_BEGIN = 25, /* one of a backend's own functions (ABI 5): see pi_backend_call */
	PI_EV_BACKEND_CALL_END = 26,
};

/*
 * Processes one tracer follows at once when its probes serve every process that maps a library
 * (the host agent, rodata `multi`): each has its state in the map "targets", keyed by tgid.
 */
#define PI_MAX_TARGETS 1024

enum pi_level {
	PI_LEVEL_TOKEN = 1,
	PI_LEVEL_GRAPH = 2,
	PI_LEVEL_OP = 3,
};

enum pi_graph_fn {
	PI_GRAPH_SCHED = 1, /* ggml_backend_sched_graph_compute_async: all backends, all splits */
	PI_GRAPH_CPU = 2,   /* ggml_graph_compute: one CPU split */
	PI_GRAPH_SPLIT = 3, /* ggml_backend_graph_compute_async: one split handed to its backend (ABI 5) */
};

/* Offsets of the fields the program reads, resolved for the binary in hand (never hard-coded). */
struct pi_layout {
	unsigned int tensor_type;
	unsigned int tensor_ne;
	unsigned int tensor_nb;
	unsigned int tensor_op;
	unsigned int tensor_op_params;
	unsigned int tensor_flags;
	unsigned int tensor_src;
	unsigned int tensor_view_src;
	unsigned int tensor_view_offs;
	unsigned int tensor_data;
	unsigned int tensor_name;
	unsigned int cgraph_n_nodes;
	unsigned int cgraph_nodes;
	unsigned int params_ith;
	unsigned int params_nth;
	unsigned int cplan_n_threads;
	/* bit i set: ggml op i is empty (NONE, RESHAPE, VIEW, PERMUTE, TRANSPOSE), skipped by the loop */
	unsigned int empty_ops[4];
	/* the enum values of GGML_OP_UNARY and GGML_OP_GLU (their kind is op_params[0]); 255: none */
	unsigned int op_unary;
	unsigned int op_glu;
	/* the enum values of the ops whose bytes are not their tensors' whole sizes (255: none) */
	unsigned int op_get_rows;
	unsigned int op_set_rows;
	unsigned int op_mul_mat_id;
	/* ggml_type_size and ggml_blck_size by type (0: unknown, no bytes counted) */
	unsigned int type_size[PI_MAX_TYPES];
	unsigned int type_blck[PI_MAX_TYPES];
	/* offset of `device` in struct ggml_backend; 0: unknown (the device is not read) */
	unsigned int backend_device;
	unsigned int _pad;
};

struct pi_header {
	unsigned int type;
	unsigned int cpu;
	unsigned int tgid;
	unsigned int tid;
	unsigned long long ts; /* CLOCK_MONOTONIC ns (bpf_ktime_get_ns) */
};

struct pi_token_begin {
	struct pi_header h;
	unsigned long long ctx;
	int n_tokens;
	unsigned int seq; /* llama_decode calls seen in this process, from 1 */
	unsigned int ops_sampled; /* operator events are recorded for this call */
	unsigned int _pad;
};

/*
 * The batch of a llama_decode call, summed per sequence (ABI 4), sent right after its
 * pi_token_begin: what a request model needs (tokens, first and last position, outputs wanted)
 * without a record per token. A token of several sequences (a prompt shared by parallel
 * sequences) counts in each of its first PI_MAX_TOKEN_SEQS.
 */
#define PI_MAX_BATCH_SEQS 32	  /* sequences summed per call; the tokens of others are counted */
#define PI_MAX_BATCH_TOKENS 16384 /* tokens read per call at most (--batch-tokens); the rest are counted */
#define PI_MAX_TOKEN_SEQS 8	  /* sequence ids read per token; the others are counted */

/* pi_batch.flags: which of the batch's arrays the caller gave (llama fills in the others) */
enum pi_batch_flags {
	PI_BATCH_POS = 1,     /* positions (else they continue each sequence's cache) */
	PI_BATCH_SEQ_ID = 2,  /* sequence ids (else every token is sequence 0) */
	PI_BATCH_OUTPUTS = 4, /* outputs wanted (else only the last token's) */
	PI_BATCH_EMBD = 8,    /* embeddings instead of token ids */
};

struct pi_batch_seq {
	int seq_id;
	unsigned int n_tokens;
	int pos_min; /* -1 when the batch gave no positions */
	int pos_max;
	unsigned int n_outputs;
	unsigned int _pad;
};

struct pi_batch {
	struct pi_header h;
	unsigned int seq;	   /* the llama_decode call (pi_token_begin.seq) */
	int n_tokens;
	unsigned int flags;	   /* enum pi_batch_flags */
	unsigned int n_seqs;	   /* entries of seqs in use */
	unsigned int tokens_read;  /* tokens summed: n_tokens, or the per-call bound */
	unsigned int tokens_lost;  /* token-sequence pairs not summed: beyond PI_MAX_BATCH_SEQS or
				      PI_MAX_TOKEN_SEQS */
	struct pi_batch_seq seqs[PI_MAX_BATCH_SEQS];
};

struct pi_token_end {
	struct pi_header h;
	int ret;
	unsigned int seq;
};

struct pi_graph_begin {
	struct pi_header h;
	unsigned long long cgraph;
	unsigned int fn; /* enum pi_graph_fn */
	int n_nodes;
	int n_threads;	      /* from the cplan (CPU graphs); 0 otherwise */
	unsigned int changed; /* node list or shapes differ from this cgraph's last snapshot */
	unsigned long long signature;
};

struct pi_graph_end {
	struct pi_header h;
	unsigned long long cgraph;
	unsigned int fn;
	int ret;
};

struct pi_graph_nodes {
	struct pi_header h;
	unsigned long long cgraph;
	unsigned long long signature;
	unsigned int first; /* index of nodes[0] in the graph */
	unsigned int count;
	unsigned long long nodes[PI_NODES_PER_CHUNK];
};

/*
 * A split: the scheduler hands a run of consecutive nodes to one backend
 * (ggml_backend_graph_compute_async), which may compute it before returning (CPU, BLAS) or only
 * queue it (a GPU). Sent right after the split's GRAPH_BEGIN (fn PI_GRAPH_SPLIT), on its thread.
 * The backend is named in user space from its device's get_name function (one per backend
 * implementation), which the layout probe resolves for the build.
 */
struct pi_split {
	struct pi_header h;
	unsigned long long cgraph;	    /* the split's graph view (its GRAPH_BEGIN's cgraph) */
	unsigned long long backend;	    /* ggml_backend_t */
	unsigned long long device;	    /* backend->device; 0: not read */
	unsigned long long device_get_name; /* device->iface.get_name; 0: not read */
	unsigned long long sched_graph;	    /* the scheduler graph computing on this thread; 0: none */
	int first_node;			    /* its first node's index in that graph; -1: unknown */
	int n_nodes;
};

/* How a tensor was copied between backends (pi_copy.via). */
enum pi_copy_via {
	PI_COPY_SYNC = 1,  /* ggml_backend_tensor_copy: done when it returns */
	PI_COPY_ASYNC = 2, /* a backend's own cpy_tensor_async: queued (false: not possible) */
};

/* COPY_BEGIN: what is copied; the scheduler names a split's input copy "<backend>#<tensor>#<n>". */
struct pi_copy {
	struct pi_header h;
	unsigned long long src;
	unsigned long long dst;
	unsigned long long backend_src; /* PI_COPY_ASYNC: the backends; 0 otherwise */
	unsigned long long backend_dst;
	long long ne[4];
	unsigned long long nb[4];
	int type;	   /* the source's ggml_type */
	unsigned int via;  /* enum pi_copy_via */
	char src_name[PI_MAX_NAME];
	char dst_name[PI_MAX_NAME];
};

/* COPY_END */
struct pi_copy_end {
	struct pi_header h;
	unsigned int via;
	int ret; /* PI_COPY_ASYNC: 1 queued, 0 not possible (another copy follows); 1 for PI_COPY_SYNC */
};

/* SYNC_BEGIN / SYNC_END: ggml_backend_synchronize(backend) */
struct pi_sync {
	struct pi_header h;
	unsigned long long backend;
};

/*
 * A backend's own host-side function (the run header's backendCalls table says which one and
 * what it means: a Vulkan command buffer submission, a fence wait, a node recorded, a BLAS
 * matrix product). BEGIN: the first three integer arguments as the registers held them; END:
 * args[0] is the return value.
 */
struct pi_backend_call {
	struct pi_header h;
	unsigned int call; /* the attach cookie: index into the run header's backendCalls */
	unsigned int _pad;
	unsigned long long args[3];
};

struct pi_tensor {
	struct pi_header h;
	unsigned long long addr;
	unsigned long long signature; /* of the snapshot this description belongs to */
	long long ne[4];
	unsigned long long nb[4];
	unsigned long long src[PI_MAX_SRC];
	unsigned long long view_src;
	unsigned long long view_offs;
	unsigned long long data;
	int type;
	int op;
	int op_params[2];
	int flags;
	unsigned int _pad;
	char name[PI_MAX_NAME];
};

struct pi_op {
	struct pi_header h;
	unsigned long long dst;
	unsigned int func; /* index into the table of probed per-operator functions */
	int ith;
	int nth;
	unsigned int _pad;
};

struct pi_barrier {
	struct pi_header h;
};

/*
 * The compute loop calls ggml_barrier after each computed node or fused group (a step) and once
 * more after the loop. `next` is node_n + 1 there: the index of the first node after the step,
 * read from the register the attach cookie names; -1 at the final barrier.
 */
struct pi_step {
	struct pi_header h;
	int next;
	unsigned int _pad;
};

/*
 * Steps travel in batches, one per thread (ABI 3): a thread keeps its steps in its own map entry
 * and sends them with one ring-buffer output when PI_STEPS_PER_BATCH are waiting or at the loop's
 * final barrier, instead of a reservation per step. The raw file keeps the batch as it came;
 * readers expand it into one PI_EV_STEP event per entry (cpu and ts from the entry, tgid and tid
 * from the batch's header). Half the bytes of single steps, and a 32nd of the records.
 */
#define PI_STEPS_PER_BATCH 32

struct pi_step_entry {
	unsigned long long ts;
	int next;
	unsigned int cpu;
};

struct pi_steps {
	struct pi_header h;
	unsigned int count; /* entries in use, from the first */
	unsigned int _pad;
	struct pi_step_entry steps[PI_STEPS_PER_BATCH];
};

/* Attach cookie of a step site: the register holding node_n + 1, or PI_STEP_FINAL. */
enum pi_step_reg {
	PI_STEP_RAX = 0,
	PI_STEP_RBX,
	PI_STEP_RCX,
	PI_STEP_RDX,
	PI_STEP_RSI,
	PI_STEP_RDI,
	PI_STEP_RBP,
	PI_STEP_R8,
	PI_STEP_R9,
	PI_STEP_R10,
	PI_STEP_R11,
	PI_STEP_R12,
	PI_STEP_R13,
	PI_STEP_R14,
	PI_STEP_R15,
	PI_STEP_FINAL = 255,
};

/*
 * Counter readings, appended to OP_* and BARRIER_* events when the run records counters (the run
 * header lists them, in this order). value[i] is the thread's own cumulative count of counter i:
 * per-CPU perf events read at each boundary and at each sched_switch of the thread, each piece
 * scaled by its enabled/running times, so the difference of two readings of one thread is that
 * thread's count between them, whatever CPUs it ran on.
 */
struct pi_counter_values {
	unsigned int n;	     /* counters that follow */
	unsigned int scaled; /* bit i: counter i was multiplexed on this thread (scaled estimate) */
	unsigned long long value[PI_MAX_COUNTERS];
};

struct pi_op_counted {
	struct pi_op op;
	struct pi_counter_values c;
};

struct pi_barrier_counted {
	struct pi_barrier b;
	struct pi_counter_values c;
};

/* ---- in-kernel aggregates (metrics), read by user space; nothing per event leaves the kernel ---- */

/* A call's phase by content: prompt tokens only, generated tokens only, or both. */
enum pi_phase {
	PI_PHASE_PREFILL = 0,
	PI_PHASE_DECODE = 1,
	PI_PHASE_MIXED = 2,
	PI_PHASES = 3,
};

/* Histogram buckets of tokens (upper bounds 2^0 .. 2^14, then +Inf) and sequences (2^0 .. 2^5,
 * +Inf) per llama_decode call. */
#define PI_BATCH_TOKEN_BUCKETS 16
#define PI_BATCH_SEQ_BUCKETS 7

/* Key of the token aggregates (map "token_agg", per-CPU hash): the process and the phase. */
struct pi_token_agg_key {
	unsigned int tgid;
	unsigned int phase; /* enum pi_phase */
};

/* Per process and llama_decode phase (map "token_agg", keyed by pi_token_agg_key). */
struct pi_token_agg {
	unsigned long long calls;
	unsigned long long tokens;
	unsigned long long ns;
	unsigned long long buckets[PI_AGG_BUCKETS];
	unsigned long long prompt_tokens;    /* prompt tokens of the requests, at their first output */
	unsigned long long generated_tokens; /* outputs sampled for the requests */
	unsigned long long sequences;	     /* sequences in the calls' batches */
	unsigned long long token_buckets[PI_BATCH_TOKEN_BUCKETS];
	unsigned long long seq_buckets[PI_BATCH_SEQ_BUCKETS];
};

/*
 * Requests (bpf/requests.bpf.h; the rules of docs/trace-model.md "Requests", as
 * exporter/src/trace/requests.ts applies them to recorded batches). Map "requests" (hash, by
 * process, context and sequence id) holds each sequence's current request; a request that a new
 * one replaces is pushed to the queue "finished_requests". User space reads both for the
 * per-request metrics and decides when an idle request has ended.
 */
#define PI_MAX_REQUEST_SEQS 4096
#define PI_MAX_FINISHED_REQUESTS 4096

enum pi_step_kind {
	PI_STEP_PROMPT = 0,
	PI_STEP_DECODE = 1,
	PI_STEP_SPECULATIVE = 2,
};

/* pi_request.flags: why its figures may fall short */
enum pi_request_flags {
	PI_REQUEST_TRUNCATED = 1, /* a call's batch was beyond the per-call bound */
	PI_REQUEST_JOINED = 2,	  /* first met generating: tracing began during it */
};

struct pi_request_key {
	unsigned long long ctx;
	unsigned int tgid;
	int seq_id;
};

struct pi_request {
	struct pi_request_key key;
	unsigned long long id;		    /* requests started before it while tracing */
	unsigned long long start_ns;	    /* start of its first call */
	unsigned long long first_output_ns; /* end of the call of its first output; 0: none yet */
	unsigned long long end_ns;	    /* end of its last call */
	unsigned long long pending_output_ns; /* outputs not known: its last prompt chunk's end */
	unsigned long long longest_gap_ns;  /* longest time between the ends of two of its calls */
	unsigned long long last_call_ns;    /* its last call's duration */
	unsigned int prompt_tokens;
	unsigned int generated_tokens;
	unsigned int steps;
	int cached_tokens; /* its first position; -1: not known */
	int pos_max;	   /* its highest position; -1: none known */
	int spec_pos_min;  /* its last step was a verification: that step's first position */
	unsigned char last_kind; /* enum pi_step_kind */
	unsigned char outputs_known;
	unsigned char flags; /* enum pi_request_flags */
	unsigned char _pad[5];
};

/* A llama_decode call in flight (map "decode_starts", by thread): what its end needs. */
struct pi_call_start {
	unsigned long long ts;
	unsigned long long ctx;
	unsigned int tgid;
	int n_tokens;
	struct pi_batch batch; /* n_seqs 0: the batch could not be read */
};

/*
 * Per probed operator function (key: its cookie, the index into opFuncs) or PI_AGG_UNPROBED
 * (map "op_agg", per-CPU hash): one interval per operator per thread.
 */
struct pi_op_agg {
	unsigned long long count;
	unsigned long long ns;
	unsigned long long barrier_ns; /* wait in the barrier that followed it */
	/* operator runs (each counted once, by the first of its threads to end it) and the bytes
	 * their tensors' shapes say they moved (bpf/bytes.bpf.h; 0 without the build's type sizes) */
	unsigned long long runs;
	unsigned long long bytes;
	unsigned long long counters[PI_MAX_COUNTERS];
	unsigned long long buckets[PI_AGG_BUCKETS];
};

/* Per layer and probed operator function (map "layer_agg", per-CPU hash), behind a flag. */
struct pi_layer_key {
	unsigned int layer;
	unsigned int func;
};

struct pi_layer_agg {
	unsigned long long count;
	unsigned long long ns;
};

#define PI_NO_LAYER 0xffffffffu
#define PI_MAX_LAYER_KEYS 16384
#define PI_MAX_MOE_KEYS 16384

/* MoE routing (map "moe_agg", per-CPU hash, value: selections), behind a flag. */
struct pi_moe_key {
	unsigned int layer;
	unsigned int expert;
};

#define PI_MAX_BACKEND_KEYS 64

/*
 * Per backend (map "backend_agg", per-CPU hash, by its device's get_name function and device):
 * the host's side of its work, for the metrics. Copies count for the split they feed (the next
 * split the thread hands to a backend).
 */
struct pi_backend_key {
	unsigned long long device_get_name;
	unsigned long long device;
};

struct pi_backend_agg {
	unsigned long long splits;
	unsigned long long submit_ns; /* in ggml_backend_graph_compute_async: all of the compute for a backend that computes before it returns */
	unsigned long long syncs;
	unsigned long long sync_ns; /* in ggml_backend_synchronize: the host waiting for the backend */
	unsigned long long copies;
	unsigned long long copy_bytes;
	unsigned long long copy_ns;
};

struct pi_sched_switch {
	struct pi_header h; /* tid/tgid: the target thread concerned */
	unsigned int prev_tid;
	unsigned int next_tid;
	long long prev_state;
	unsigned int prev_tgid;
	unsigned int next_tgid;
	char prev_comm[16];
	char next_comm[16];
};

struct pi_sched_wakeup {
	struct pi_header h; /* tid: the woken target thread; cpu: where it will run */
	unsigned int waker_tid;
	unsigned int target_cpu;
};

struct pi_moe_ids {
	struct pi_header h;
	unsigned long long tensor;
	unsigned long long consumer; /* the node whose computation showed the ids were ready */
	int k;	      /* experts per token (ne[0]) */
	int n_tokens; /* ne[1] */
	unsigned int count;	  /* ids that follow: k per token, whole tokens only */
	unsigned int first_token; /* batch index of the first token whose ids follow */
	int ids[PI_MAX_MOE_IDS];
};

/* Indices into the per-CPU drop counters (map "drops"). */
enum pi_drop_reason {
	PI_DROP_RINGBUF_FULL = 0,  /* bpf_ringbuf_reserve failed */
	PI_DROP_READ_FAILED = 1,   /* bpf_probe_read_user failed: the event was sent incomplete or not at all */
	PI_DROP_MAP_FULL = 2,	   /* a map update failed */
	PI_DROP_NODES_TRUNCATED = 3, /* a graph had more than PI_MAX_GRAPH_NODES nodes */
	PI_DROP_COUNTER_READ = 4,    /* bpf_perf_event_read_value failed: a reading kept its last value */
	PI_DROP_BATCH_TRUNCATED = 5, /* token-sequence pairs of a batch not read (beyond its bounds) */
	PI_DROP_REASONS = 6,
};

/* Indices into the per-CPU probe hit counters (map "hits"). */
enum pi_hit_kind {
	PI_HIT_TOKEN = 0,
	PI_HIT_GRAPH = 1,
	PI_HIT_OP = 2,
	PI_HIT_BARRIER = 3,
	PI_HIT_SCHED = 4,
	PI_HIT_SNAPSHOT_NODE = 5, /* tensors read while snapshotting a changed graph */
	PI_HIT_STEP = 6, /* compute loop barrier calls (one probe hit each: no return probe) */
	PI_HIT_KINDS = 7,
};

#endif /* __PROFINFER_H */
