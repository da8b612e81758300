/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The batch of a llama_decode call, summed per sequence (pi_batch): the token count, first and
 * last position and outputs of each sequence, read from the batch's arrays in chunks.
 */
#ifndef __PROFINFER_BATCH_BPF_H
#define __PROFINFER_BATCH_BPF_H

#include "common.bpf.h"

#define BATCH_CHUNK 64 /* array elements read at a time (a power of two) */

/* struct llama_batch, as llama_decode gets it by value (in memory, above the return address) */
struct llama_batch_view {
	__s32 n_tokens;
	__s32 _pad;
	__u64 token;
	__u64 embd;
	__u64 pos;
	__u64 n_seq_id;
	__u64 seq_id;
	__u64 logits;
};

/* Tokens read per call at most (--batch-tokens; at most PI_MAX_BATCH_TOKENS). */
const volatile __u32 batch_tokens_max = PI_MAX_BATCH_TOKENS;

/*
 * The call being summed (its batch is the event sent), and the current chunk of each array (too
 * large for the BPF stack).
 */
struct batch_scratch {
	struct pi_call_start call;
	struct llama_batch_view b;
	__s32 pos[BATCH_CHUNK];
	__s32 n_seq_id[BATCH_CHUNK];
	__u64 seq_id[BATCH_CHUNK];
	__s8 logits[BATCH_CHUNK];
	__u32 valid; /* the batch was read */
	__u32 n;    /* tokens to read */
	__u32 last; /* the entry of the last sequence matched: tokens of one sequence come together */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct batch_scratch);
} batch_scratch SEC(".maps");

/* The context of the search for a sequence's entry (a bpf_loop over the entries). */
struct seq_find {
	struct pi_batch *e;
	__s32 seq_id;
	__u32 at;
};

static long find_seq(__u64 k, struct seq_find *f)
{
	if (k >= PI_MAX_BATCH_SEQS)
		return 1;
	if (f->e->seqs[k].seq_id == f->seq_id) {
		f->at = k;
		return 1;
	}
	return 0;
}

/* Adds token `pos`/`out` to sequence `seq_id`'s entry, making one while there is room. */
static __always_inline void batch_add(struct batch_scratch *bs, __s32 seq_id, __s32 pos, __u32 out)
{
	struct pi_batch *e = &bs->call.batch;
	__u32 at = bs->last;
	struct pi_batch_seq *s;

	if (at >= PI_MAX_BATCH_SEQS || at >= e->n_seqs || e->seqs[at].seq_id != seq_id) {
		struct seq_find f = { .e = e, .seq_id = seq_id, .at = PI_MAX_BATCH_SEQS };

		bpf_loop(e->n_seqs < PI_MAX_BATCH_SEQS ? e->n_seqs : PI_MAX_BATCH_SEQS, find_seq, &f, 0);
		at = f.at;
		if (at >= PI_MAX_BATCH_SEQS) {
			if (e->n_seqs >= PI_MAX_BATCH_SEQS) {
				e->tokens_lost += 1;
				return;
			}
			at = e->n_seqs & (PI_MAX_BATCH_SEQS - 1);
			e->n_seqs += 1;
			e->seqs[at].seq_id = seq_id;
			e->seqs[at].pos_min = -1;
			e->seqs[at].pos_max = -1;
		}
		bs->last = at;
	}
	s = &e->seqs[at & (PI_MAX_BATCH_SEQS - 1)];
	s->n_tokens += 1;
	s->n_outputs += out;
	if (pos >= 0) {
		if (s->pos_min < 0 || pos < s->pos_min)
			s->pos_min = pos;
		if (pos > s->pos_max)
			s->pos_max = pos;
	}
}

/* The context of the bpf_loop over a batch's tokens (it must be on the stack). */
struct batch_loop {
	struct batch_scratch *bs;
};

/* One token of the batch (a bpf_loop step over token indices). */
static long batch_token(__u64 i, struct batch_loop *c)
{
	struct batch_scratch *bs = c->bs;
	__u32 j = i & (BATCH_CHUNK - 1);
	__u32 count = bs->n - (__u32)i;
	__s32 ids[PI_MAX_TOKEN_SEQS] = {};
	__s32 n_ids = 1, pos = -1;
	__u32 out;

	if (i >= bs->n)
		return 1;
	if (j == 0) {
		/* the next chunk of every array the batch has */
		if (count > BATCH_CHUNK)
			count = BATCH_CHUNK;
		if (bs->b.pos)
			read_user(bs->pos, count * sizeof(__s32), (void *)(bs->b.pos + i * sizeof(__s32)));
		if (bs->b.n_seq_id)
			read_user(bs->n_seq_id, count * sizeof(__s32),
				  (void *)(bs->b.n_seq_id + i * sizeof(__s32)));
		if (bs->b.seq_id)
			read_user(bs->seq_id, count * sizeof(__u64), (void *)(bs->b.seq_id + i * sizeof(__u64)));
		if (bs->b.logits)
			read_user(bs->logits, count, (void *)(bs->b.logits + i));
	}
	if (bs->b.pos)
		pos = bs->pos[j];
	if (bs->b.logits)
		out = bs->logits[j] != 0;
	else
		out = i + 1 == bs->n; /* llama outputs the last token when the caller does not say */
	if (bs->b.seq_id) {
		n_ids = bs->b.n_seq_id ? bs->n_seq_id[j] : 1;
		if (n_ids < 1)
			n_ids = 1;
		if (n_ids > PI_MAX_TOKEN_SEQS) {
			bs->call.batch.tokens_lost += n_ids - PI_MAX_TOKEN_SEQS;
			n_ids = PI_MAX_TOKEN_SEQS;
		}
		read_user(ids, n_ids * sizeof(__s32), (void *)bs->seq_id[j]);
	}
	for (__s32 k = 0; k < PI_MAX_TOKEN_SEQS; k++) {
		if (k >= n_ids)
			break;
		batch_add(bs, ids[k], pos, out);
	}
	return 0;
}

/*
 * Sums the batch at `batch_addr` (the caller's copy) of call `seq` on context `lctx` into the
 * per-CPU scratch, and returns it (`valid` 0: the batch could not be read, no sequences).
 */
static __always_inline struct batch_scratch *read_batch(__u64 batch_addr, __u32 seq, __u64 lctx)
{
	__u32 zero = 0;
	struct batch_scratch *bs = bpf_map_lookup_elem(&batch_scratch, &zero);
	struct pi_batch *e;

	if (!bs)
		return NULL;
	e = &bs->call.batch;
	__builtin_memset(e, 0, sizeof(*e));
	bs->call.ts = bpf_ktime_get_ns();
	bs->call.ctx = lctx;
	bs->call.tgid = bpf_get_current_pid_tgid() >> 32;
	bs->call.n_tokens = 0;
	bs->valid = 0;
	if (read_user(&bs->b, sizeof(bs->b), (void *)batch_addr))
		return bs;
	bs->valid = 1;
	bs->call.n_tokens = bs->b.n_tokens;
	e->seq = seq;
	e->n_tokens = bs->b.n_tokens;
	e->flags = (bs->b.pos ? PI_BATCH_POS : 0) | (bs->b.seq_id ? PI_BATCH_SEQ_ID : 0) |
		   (bs->b.logits ? PI_BATCH_OUTPUTS : 0) | (bs->b.embd ? PI_BATCH_EMBD : 0);
	bs->n = bs->b.n_tokens < 0 ? 0 : (__u32)bs->b.n_tokens;
	if (bs->n > batch_tokens_max)
		bs->n = batch_tokens_max;
	if (bs->n > PI_MAX_BATCH_TOKENS)
		bs->n = PI_MAX_BATCH_TOKENS;
	e->tokens_read = bs->n;
	bs->last = PI_MAX_BATCH_SEQS;
	struct batch_loop c = { .bs = bs };

	bpf_loop(bs->n, batch_token, &c, 0);
	if (e->tokens_lost || e->tokens_read < (__u32)e->n_tokens)
		count_n(&drops, PI_DROP_BATCH_TRUNCATED,
			e->tokens_lost + ((__u32)e->n_tokens - e->tokens_read));
	fill_header(&e->h, PI_EV_BATCH);
	return bs;
}

/* Sends the batch summary of `bs` (read_batch's) after its call's begin. */
static __always_inline void emit_batch(struct batch_scratch *bs)
{
	if (!bs->valid)
		return;
	if (bpf_ringbuf_output(&events, &bs->call.batch, sizeof(bs->call.batch), wakeup_flag()))
		count(&drops, PI_DROP_RINGBUF_FULL);
}

#endif /* __PROFINFER_BATCH_BPF_H */
