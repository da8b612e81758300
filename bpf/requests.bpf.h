/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Requests in the kernel, for the per-request metrics (--level metrics and every level that
 * keeps aggregates): at the end of each llama_decode call, each sequence of its batch takes a
 * step of its current request, or starts a new one. The rules are docs/trace-model.md
 * "Requests", the ones exporter/src/trace/requests.ts applies to recorded batches: the two must
 * stay in step.
 */
#ifndef __PROFINFER_REQUESTS_BPF_H
#define __PROFINFER_REQUESTS_BPF_H

#include "common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PI_MAX_REQUEST_SEQS);
	__type(key, struct pi_request_key);
	__type(value, struct pi_request);
} requests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, PI_MAX_FINISHED_REQUESTS);
	__type(value, struct pi_request);
} finished_requests SEC(".maps");

/* Requests started while tracing: the next one's id. */
__u64 requests_started = 0;

/* What a call's steps add up to (the context of the bpf_loop over its sequences). */
struct call_steps {
	struct pi_call_start *call;
	__u64 end_ns;
	__u32 kinds;	 /* bit per enum pi_step_kind met */
	__u32 prompt;	 /* prompt tokens of the requests that produced their first output */
	__u32 generated; /* outputs sampled */
	__u32 truncated; /* the call's batch was beyond the per-call bound */
};

/* Whether sequence `s` of a call starts a new request after `r`, its current one. */
static __always_inline int starts_request(const struct pi_request *r, const struct pi_batch_seq *s,
					  __u32 known)
{
	/* the caller changed how it fills batches (llama-server's warm-up call, then requests) */
	if (r->outputs_known != known)
		return 1;
	/* positions went back: the cache was trimmed to a reused prefix (not a rejected draft) */
	if (s->pos_min >= 0 && r->pos_max >= 0 && s->pos_min <= r->pos_max)
		return r->last_kind != PI_STEP_SPECULATIVE;
	/* positions jumped ahead: the server loaded a cached prompt into the slot and evaluates what
	 * follows it (a request's calls move on by one position, or less after a verification); not
	 * after a call beyond the bound, whose unread tokens took the positions in between */
	if (s->pos_min >= 0 && r->pos_max >= 0 && s->pos_min > r->pos_max + 1 &&
	    !(known && r->pending_output_ns))
		return 1;
	if (!known)
		return s->n_tokens > 1 && r->last_kind == PI_STEP_DECODE;
	/* a prompt after a generation: a chat's next turn, continuing the positions */
	return r->first_output_ns && s->n_tokens > 1 && s->n_outputs < s->n_tokens;
}

/* One sequence of the call: a step of its request (a bpf_loop step over the call's sequences). */
static long request_step(__u64 i, struct call_steps *c)
{
	struct pi_call_start *call = c->call;
	struct pi_batch_seq *s;
	struct pi_request *r;
	__u32 known, kind, joined = 0, generated = 0, had_output;

	if (i >= PI_MAX_BATCH_SEQS || i >= call->batch.n_seqs)
		return 1;
	s = &call->batch.seqs[i];
	known = (call->batch.flags & PI_BATCH_OUTPUTS) != 0;
	struct pi_request_key key = { .ctx = call->ctx, .tgid = call->tgid, .seq_id = s->seq_id };

	r = bpf_map_lookup_elem(&requests, &key);
	if (!r || starts_request(r, s, known)) {
		struct pi_request fresh = {};

		/* a sequence first met generating (one token, further on): tracing began during it */
		if (!r)
			joined = known && s->n_tokens == 1 && s->pos_min > 0;
		else if (bpf_map_push_elem(&finished_requests, r, 0))
			count(&drops, PI_DROP_MAP_FULL);
		fresh.key = key;
		fresh.id = __sync_fetch_and_add(&requests_started, 1);
		fresh.start_ns = call->ts;
		fresh.cached_tokens = joined ? -1 : s->pos_min;
		fresh.pos_max = -1;
		fresh.spec_pos_min = -1;
		fresh.outputs_known = known;
		fresh.flags = joined ? PI_REQUEST_JOINED : 0;
		if (bpf_map_update_elem(&requests, &key, &fresh, BPF_ANY)) {
			count(&drops, PI_DROP_MAP_FULL);
			return 0;
		}
		r = bpf_map_lookup_elem(&requests, &key);
		if (!r)
			return 0;
	}
	/* after a call beyond the bound whose unread tokens held the prompt's end: one token is the
	 * first generated one's decode step */
	if (joined || (!known && s->n_tokens == 1) || (known && r->pending_output_ns && s->n_tokens == 1))
		kind = PI_STEP_DECODE;
	else if (!known || !r->first_output_ns)
		kind = PI_STEP_PROMPT;
	else
		kind = s->n_tokens == 1 ? PI_STEP_DECODE : PI_STEP_SPECULATIVE;

	/* a verification's accepted drafts show in how far this call's positions moved on */
	if (r->last_kind == PI_STEP_SPECULATIVE && r->spec_pos_min >= 0 && s->pos_min > r->spec_pos_min)
		generated += s->pos_min - r->spec_pos_min - 1;
	if (r->steps && c->end_ns - r->end_ns > r->longest_gap_ns)
		r->longest_gap_ns = c->end_ns - r->end_ns;
	r->steps += 1;
	r->end_ns = c->end_ns;
	r->last_call_ns = c->end_ns - call->ts;
	if (kind == PI_STEP_PROMPT)
		r->prompt_tokens += s->n_tokens;
	had_output = r->first_output_ns != 0;
	if (s->pos_max > r->pos_max)
		r->pos_max = s->pos_max;
	if (!known) {
		/* llama outputs each call's last token: a prompt chunk's is the first token only when a
		 * decode step follows it */
		if (kind == PI_STEP_PROMPT) {
			r->pending_output_ns = c->end_ns;
		} else {
			if (r->pending_output_ns) {
				generated += 1;
				if (!r->first_output_ns)
					r->first_output_ns = r->pending_output_ns;
				r->pending_output_ns = 0;
			}
			generated += 1;
			if (!r->first_output_ns)
				r->first_output_ns = c->end_ns;
		}
	} else {
		__u64 pending = r->pending_output_ns;

		/* a prompt chunk beyond the bound without an output read: its unread tokens may hold it */
		r->pending_output_ns =
			c->truncated && kind == PI_STEP_PROMPT && !s->n_outputs ? c->end_ns : 0;
		if (pending && kind == PI_STEP_DECODE) {
			generated += 1;
			if (!r->first_output_ns)
				r->first_output_ns = pending;
		}
		/* each output wanted is a token sampled; a verification samples at least its first */
		generated += kind == PI_STEP_SPECULATIVE ? 1 : s->n_outputs;
		if (s->n_outputs && !r->first_output_ns)
			r->first_output_ns = c->end_ns;
	}
	r->generated_tokens += generated;
	c->generated += generated;
	/* a prompt counts once evaluated whole, at its first output (as llama-server counts it) */
	if (!had_output && r->first_output_ns)
		c->prompt += r->prompt_tokens;
	r->last_kind = kind;
	r->spec_pos_min = kind == PI_STEP_SPECULATIVE ? s->pos_min : -1;
	if (c->truncated)
		r->flags |= PI_REQUEST_TRUNCATED;
	c->kinds |= 1u << kind;
	return 0;
}

/*
 * The call `call` ended at `end_ns`: a step of each of its sequences' requests. Returns its
 * phase; adds its prompt tokens and outputs to `*prompt` and `*generated`.
 */
static __always_inline __u32 requests_call_end(struct pi_call_start *call, __u64 end_ns,
					       __u32 *prompt, __u32 *generated)
{
	struct call_steps c = {
		.call = call,
		.end_ns = end_ns,
		.truncated = call->batch.tokens_lost || call->batch.tokens_read < (__u32)call->batch.n_tokens,
	};
	__u32 gen_kinds = (1u << PI_STEP_DECODE) | (1u << PI_STEP_SPECULATIVE);

	bpf_loop(PI_MAX_BATCH_SEQS, request_step, &c, 0);
	*prompt = c.prompt;
	*generated = c.generated;
	if ((c.kinds & (1u << PI_STEP_PROMPT)) && (c.kinds & gen_kinds))
		return PI_PHASE_MIXED;
	if (c.kinds & (1u << PI_STEP_PROMPT))
		return PI_PHASE_PREFILL;
	if (c.kinds & gen_kinds)
		return PI_PHASE_DECODE;
	return call->n_tokens > 1 ? PI_PHASE_PREFILL : PI_PHASE_DECODE;
}

#endif /* __PROFINFER_REQUESTS_BPF_H */
