// SPDX-License-Identifier: Apache-2.0
// Node.js binding of profinfer::Tracer. Batches of events travel from the polling thread to
// JavaScript through one ThreadSafeFunction call per batch, never one call per event.
#include <napi.h>

#include <algorithm>
#include <climits>
#include <ctime>
#include <memory>
#include <stdexcept>

#include "tracer.h"

namespace {

using profinfer::Batch;

uint32_t U32(const Napi::Object& o, const char* key, uint32_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : fallback;
}

// A u64 given as a number or a bigint.
bool U64(const Napi::Env& env, const Napi::Value& v, const std::string& what, uint64_t* out) {
  if (v.IsUndefined()) {
    *out = 0;
    return true;
  }
  if (v.IsBigInt()) {
    bool lossless = true;
    *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (lossless) return true;
  } else if (v.IsNumber() && v.As<Napi::Number>().DoubleValue() >= 0) {
    *out = static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
    return true;
  }
  Napi::TypeError::New(env, what + " must be a non-negative integer (number or bigint)").ThrowAsJavaScriptException();
  return false;
}

// options.counters: [{ name, type, config, config1?, config2? }]
bool ReadCounters(const Napi::Env& env, const Napi::Value& v, std::vector<profinfer::CounterSpec>* out) {
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsArray()) {
    Napi::TypeError::New(env, "options.counters must be an array").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value item = a.Get(i);
    std::string at = "options.counters[" + std::to_string(i) + "]";
    if (!item.IsObject()) {
      Napi::TypeError::New(env, at + " must be an object").ThrowAsJavaScriptException();
      return false;
    }
    Napi::Object o = item.As<Napi::Object>();
    profinfer::CounterSpec spec;
    if (!o.Get("name").IsString() || !o.Get("type").IsNumber()) {
      Napi::TypeError::New(env, at + " needs name (string) and type (number)").ThrowAsJavaScriptException();
      return false;
    }
    spec.name = o.Get("name").As<Napi::String>();
    spec.type = o.Get("type").As<Napi::Number>().Uint32Value();
    if (!U64(env, o.Get("config"), at + ".config", &spec.config) ||
        !U64(env, o.Get("config1"), at + ".config1", &spec.config1) ||
        !U64(env, o.Get("config2"), at + ".config2", &spec.config2))
      return false;
    out->push_back(spec);
  }
  return true;
}

bool ReadLayout(const Napi::Env& env, const Napi::Object& o, pi_layout* out) {
  struct Field {
    const char* name;
    unsigned int* slot;
  } fields[] = {
      {"tensorType", &out->tensor_type},     {"tensorNe", &out->tensor_ne},
      {"tensorNb", &out->tensor_nb},         {"tensorOp", &out->tensor_op},
      {"tensorOpParams", &out->tensor_op_params}, {"tensorFlags", &out->tensor_flags},
      {"tensorSrc", &out->tensor_src},       {"tensorViewSrc", &out->tensor_view_src},
      {"tensorViewOffs", &out->tensor_view_offs}, {"tensorData", &out->tensor_data},
      {"tensorName", &out->tensor_name},     {"cgraphNNodes", &out->cgraph_n_nodes},
      {"cgraphNodes", &out->cgraph_nodes},   {"paramsIth", &out->params_ith},
      {"paramsNth", &out->params_nth},       {"cplanNThreads", &out->cplan_n_threads},
      {"emptyOps0", &out->empty_ops[0]},     {"emptyOps1", &out->empty_ops[1]},
      {"emptyOps2", &out->empty_ops[2]},     {"emptyOps3", &out->empty_ops[3]},
      {"opUnary", &out->op_unary},           {"opGlu", &out->op_glu},
      {"opGetRows", &out->op_get_rows},      {"opSetRows", &out->op_set_rows},
      {"opMulMatId", &out->op_mul_mat_id},
      {"backendDevice", &out->backend_device},
  };
  for (const Field& f : fields) {
    Napi::Value v = o.Get(f.name);
    if (!v.IsNumber()) {
      Napi::TypeError::New(env, std::string("layout.") + f.name + " must be a number").ThrowAsJavaScriptException();
      return false;
    }
    *f.slot = v.As<Napi::Number>().Uint32Value();
  }
  // type sizes by type index: at most PI_MAX_TYPES, the rest stay 0 (no bytes for those types)
  struct Table {
    const char* name;
    unsigned int* slots;
  } tables[] = {{"typeSizes", out->type_size}, {"blockSizes", out->type_blck}};
  for (const Table& t : tables) {
    Napi::Value v = o.Get(t.name);
    if (!v.IsArray()) {
      Napi::TypeError::New(env, std::string("layout.") + t.name + " must be an array of numbers").ThrowAsJavaScriptException();
      return false;
    }
    Napi::Array arr = v.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length() && i < PI_MAX_TYPES; i++) {
      Napi::Value n = arr.Get(i);
      t.slots[i] = n.IsNumber() ? n.As<Napi::Number>().Uint32Value() : 0;
    }
  }
  return true;
}

class TracerBinding : public Napi::ObjectWrap<TracerBinding> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Tracer",
                       {
                           InstanceMethod<&TracerBinding::AttachUprobe>("attachUprobe"),
                           InstanceMethod<&TracerBinding::AttachSched>("attachSchedTracepoints"),
                           InstanceMethod<&TracerBinding::AttachUprobeMulti>("attachUprobeMulti"),
                           InstanceMethod<&TracerBinding::DropLastMultiLink>("dropLastMultiLink"),
                           InstanceMethod<&TracerBinding::DetachProgram>("detachProgram"),
                           InstanceMethod<&TracerBinding::SetLayout>("setLayout"),
                           InstanceMethod<&TracerBinding::Start>("start"),
                           InstanceMethod<&TracerBinding::Stop>("stop"),
                           InstanceMethod<&TracerBinding::Detach>("detach"),
                           InstanceMethod<&TracerBinding::Close>("close"),
                           InstanceMethod<&TracerBinding::Counters>("counters"),
                           InstanceMethod<&TracerBinding::CounterStatus>("counterStatus"),
                           InstanceMethod<&TracerBinding::Aggregates>("aggregates"),
                           InstanceMethod<&TracerBinding::Requests>("requests"),
                           InstanceMethod<&TracerBinding::AttachProcess>("attachProcessTracepoints"),
                           InstanceMethod<&TracerBinding::AddTarget>("addTarget"),
                           InstanceMethod<&TracerBinding::RemoveTarget>("removeTarget"),
                           InstanceMethod<&TracerBinding::DetachBinary>("detachBinary"),
                       });
  }

  explicit TracerBinding(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TracerBinding>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "options must be an object").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    profinfer::TracerOptions options;
    options.tgid = U32(o, "tgid", 0);
    options.multi = o.Get("multi").ToBoolean();
    if (options.tgid == 0 && !options.multi) {
      Napi::TypeError::New(env, "options.tgid must be the target's process id").ThrowAsJavaScriptException();
      return;
    }
    options.level = U32(o, "level", PI_LEVEL_OP);
    options.sample_every = U32(o, "sampleEvery", 1);
    options.window_first = U32(o, "windowFirst", 0);
    options.window_last = U32(o, "windowLast", 0);
    options.window_only = o.Get("windowOnly").ToBoolean();
    options.ops_without_tokens = o.Get("opsWithoutTokens").ToBoolean();
    options.moe = o.Get("moe").ToBoolean();
    options.uprobe_multi = o.Get("uprobeMulti").ToBoolean();
    options.stream = o.Get("stream").IsUndefined() ? true : o.Get("stream").ToBoolean().Value();
    options.aggregate = o.Get("aggregate").ToBoolean();
    options.aggregate_layers = o.Get("aggregateLayers").ToBoolean();
    options.aggregate_moe = o.Get("aggregateMoe").ToBoolean();
    options.batch_tokens = U32(o, "batchTokens", PI_MAX_BATCH_TOKENS);
    if (!ReadCounters(env, o.Get("counters"), &options.counters)) return;
    Napi::Value ring = o.Get("ringBufferBytes");
    if (ring.IsNumber()) options.ring_buffer_bytes = static_cast<uint64_t>(ring.As<Napi::Number>().Int64Value());
    try {
      tracer_ = std::make_unique<profinfer::Tracer>(options);
    } catch (const std::exception& e) {
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    }
  }

  ~TracerBinding() override { Shutdown(); }

 private:
  // attachUprobe(handler, binary, symbol, cookie, fileOffset?) -> "" or an error message
  Napi::Value AttachUprobe(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!tracer_) return Napi::String::New(env, "the tracer is closed");
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString() ||
        !info[3].IsNumber()) {
      Napi::TypeError::New(env, "attachUprobe(handler: string, binary: string, symbol: string, cookie: number)")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t offset = info.Length() > 4 && info[4].IsNumber()
                          ? static_cast<uint64_t>(info[4].As<Napi::Number>().Int64Value())
                          : 0;
    std::string error = tracer_->AttachUprobe(info[0].As<Napi::String>(), info[1].As<Napi::String>(),
                                              info[2].As<Napi::String>(),
                                              static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value()), offset);
    return Napi::String::New(env, error);
  }

  // setLayout(layout) -> "" or an error message
  Napi::Value SetLayout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!tracer_) return Napi::String::New(env, "the tracer is closed");
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "setLayout(layout: object)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    pi_layout layout{};
    if (!ReadLayout(env, info[0].As<Napi::Object>(), &layout)) return env.Undefined();
    return Napi::String::New(env, tracer_->SetLayout(layout));
  }

  // attachUprobeMulti(handler, binary, fileOffsets: number[], cookies: number[]) -> "" or an error
  Napi::Value AttachUprobeMulti(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!tracer_) return Napi::String::New(env, "the tracer is closed");
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsArray() || !info[3].IsArray()) {
      Napi::TypeError::New(env, "attachUprobeMulti(handler: string, binary: string, fileOffsets: number[], cookies: number[])")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto numbers = [](Napi::Array a) {
      std::vector<uint64_t> out(a.Length());
      for (uint32_t i = 0; i < a.Length(); i++) out[i] = static_cast<uint64_t>(a.Get(i).As<Napi::Number>().Int64Value());
      return out;
    };
    return Napi::String::New(env, tracer_->AttachUprobeMulti(info[0].As<Napi::String>(), info[1].As<Napi::String>(),
                                                             numbers(info[2].As<Napi::Array>()),
                                                             numbers(info[3].As<Napi::Array>())));
  }

  Napi::Value DropLastMultiLink(const Napi::CallbackInfo& info) {
    if (tracer_) tracer_->DropLastMultiLink();
    return info.Env().Undefined();
  }

  // detachProgram(program): closes that handler's links; returns how many
  Napi::Value DetachProgram(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      Napi::TypeError::New(env, "detachProgram(program: string)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t closed = tracer_ ? tracer_->DetachProgram(info[0].As<Napi::String>().Utf8Value()) : 0;
    return Napi::Number::New(env, static_cast<double>(closed));
  }

  // detachBinary(binary): closes the single uprobes attached to that file; returns how many
  Napi::Value DetachBinary(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      Napi::TypeError::New(env, "detachBinary(binary: string)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t closed = tracer_ ? tracer_->DetachBinary(info[0].As<Napi::String>().Utf8Value()) : 0;
    return Napi::Number::New(env, static_cast<double>(closed));
  }

  Napi::Value AttachSched(const Napi::CallbackInfo& info) {
    if (!tracer_) return Napi::String::New(info.Env(), "the tracer is closed");
    return Napi::String::New(info.Env(), tracer_->AttachSchedTracepoints());
  }

  Napi::Value AttachProcess(const Napi::CallbackInfo& info) {
    if (!tracer_) return Napi::String::New(info.Env(), "the tracer is closed");
    return Napi::String::New(info.Env(), tracer_->AttachProcessTracepoints());
  }

  // addTarget(tgid) -> "" or an error message; removeTarget(tgid)
  Napi::Value AddTarget(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int64Value() <= 0) {
      Napi::TypeError::New(env, "addTarget(tgid: number), a process id").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!tracer_) return Napi::String::New(env, "the tracer is closed");
    return Napi::String::New(env, tracer_->AddTarget(info[0].As<Napi::Number>().Uint32Value()));
  }

  Napi::Value RemoveTarget(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(env, "removeTarget(tgid: number)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (tracer_) tracer_->RemoveTarget(info[0].As<Napi::Number>().Uint32Value());
    return env.Undefined();
  }

  // start(onBatch: (batch: Buffer | null, counts: Uint32Array | null) => void): nulls once, after
  // the last batch; counts[type] is how many records of each event type the batch holds
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!tracer_ || started_) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "start(onBatch: function)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "profinfer-events", 0, 1);
    started_ = true;
    try {
      tracer_->Start([this](std::unique_ptr<Batch> batch) {
        Batch* raw = batch.release();
        napi_status status = tsfn_.BlockingCall(raw, [](Napi::Env env, Napi::Function fn, Batch* b) {
          // null after the last batch: the stream has ended
          if (!b) {
            fn.Call({env.Null(), env.Null()});
            return;
          }
          // copied (1 MiB at most, usually a few hundred KiB): freed now, not whenever V8 gets
          // round to collecting an external buffer
          std::unique_ptr<Batch> owned(b);
          Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::Copy(env, b->bytes.data(), b->bytes.size());
          Napi::Uint32Array counts = Napi::Uint32Array::New(env, profinfer::kEventTypes);
          std::copy(b->counts.begin(), b->counts.end(), counts.Data());
          fn.Call({buffer, counts});
        });
        if (status != napi_ok) delete raw;
      });
    } catch (const std::exception& e) {
      started_ = false;
      tsfn_.Release();
      Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // stop(): drains the ring buffer, delivers the last batch, ends polling
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (tracer_) tracer_->Stop();
    if (started_) {
      tsfn_.Release();
      started_ = false;
    }
    return info.Env().Undefined();
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    if (tracer_) tracer_->Detach();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  // counters() -> { drops: number[], hits: number[], attached: number }
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    auto toArray = [&](const std::vector<uint64_t>& v) {
      Napi::Array a = Napi::Array::New(env, v.size());
      for (size_t i = 0; i < v.size(); i++) a.Set(i, Napi::Number::New(env, static_cast<double>(v[i])));
      return a;
    };
    out.Set("drops", toArray(tracer_ ? tracer_->Drops() : std::vector<uint64_t>{}));
    out.Set("hits", toArray(tracer_ ? tracer_->Hits() : std::vector<uint64_t>{}));
    out.Set("attached", Napi::Number::New(env, tracer_ ? static_cast<double>(tracer_->AttachedCount()) : 0));
    return out;
  }

  // counterStatus() -> [{ name, opened, error }] in the order asked; opened ones are read in order
  Napi::Value CounterStatus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!tracer_) return Napi::Array::New(env, 0);
    const auto& status = tracer_->Counters();
    Napi::Array out = Napi::Array::New(env, status.size());
    for (size_t i = 0; i < status.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", status[i].name);
      o.Set("opened", status[i].opened);
      o.Set("error", status[i].error);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  // aggregates(tgid?) -> { tokens: [{calls, tokens, ns, buckets}] by phase (process tgid's; the
  // target's without it), ops: [{func, count, ns, barrierNs, counters, buckets}] }: cumulative,
  // summed over CPUs
  Napi::Value Aggregates(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    uint32_t tgid = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    profinfer::Aggregates a = tracer_ ? tracer_->ReadAggregates(tgid) : profinfer::Aggregates{};
    auto numbers = [&](const unsigned long long* v, size_t n) {
      Napi::Array arr = Napi::Array::New(env, n);
      for (size_t i = 0; i < n; i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(v[i])));
      return arr;
    };
    Napi::Array tokens = Napi::Array::New(env, a.tokens.size());
    for (size_t p = 0; p < a.tokens.size(); p++) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("calls", static_cast<double>(a.tokens[p].calls));
      t.Set("tokens", static_cast<double>(a.tokens[p].tokens));
      t.Set("ns", static_cast<double>(a.tokens[p].ns));
      t.Set("buckets", numbers(a.tokens[p].buckets, PI_AGG_BUCKETS));
      t.Set("promptTokens", static_cast<double>(a.tokens[p].prompt_tokens));
      t.Set("generatedTokens", static_cast<double>(a.tokens[p].generated_tokens));
      t.Set("sequences", static_cast<double>(a.tokens[p].sequences));
      t.Set("tokenBuckets", numbers(a.tokens[p].token_buckets, PI_BATCH_TOKEN_BUCKETS));
      t.Set("seqBuckets", numbers(a.tokens[p].seq_buckets, PI_BATCH_SEQ_BUCKETS));
      tokens.Set(static_cast<uint32_t>(p), t);
    }
    Napi::Array ops = Napi::Array::New(env, a.ops.size());
    uint32_t n_counters = 0;
    if (tracer_)
      for (const auto& c : tracer_->Counters()) n_counters += c.opened ? 1 : 0;
    for (size_t i = 0; i < a.ops.size(); i++) {
      const pi_op_agg& v = a.ops[i].second;
      Napi::Object o = Napi::Object::New(env);
      o.Set("func", static_cast<double>(a.ops[i].first));
      o.Set("count", static_cast<double>(v.count));
      o.Set("ns", static_cast<double>(v.ns));
      o.Set("barrierNs", static_cast<double>(v.barrier_ns));
      o.Set("runs", static_cast<double>(v.runs));
      o.Set("bytes", static_cast<double>(v.bytes));
      o.Set("counters", numbers(v.counters, n_counters));
      o.Set("buckets", numbers(v.buckets, PI_AGG_BUCKETS));
      ops.Set(static_cast<uint32_t>(i), o);
    }
    Napi::Array layers = Napi::Array::New(env, a.layers.size());
    for (size_t i = 0; i < a.layers.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("layer", static_cast<double>(a.layers[i].first.layer));
      o.Set("func", static_cast<double>(a.layers[i].first.func));
      o.Set("count", static_cast<double>(a.layers[i].second.count));
      o.Set("ns", static_cast<double>(a.layers[i].second.ns));
      layers.Set(static_cast<uint32_t>(i), o);
    }
    Napi::Array moe = Napi::Array::New(env, a.moe.size());
    for (size_t i = 0; i < a.moe.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("layer", static_cast<double>(a.moe[i].first.layer));
      o.Set("expert", static_cast<double>(a.moe[i].first.expert));
      o.Set("count", static_cast<double>(a.moe[i].second));
      moe.Set(static_cast<uint32_t>(i), o);
    }
    Napi::Array backends = Napi::Array::New(env, a.backends.size());
    for (size_t i = 0; i < a.backends.size(); i++) {
      const pi_backend_agg& v = a.backends[i].second;
      Napi::Object o = Napi::Object::New(env);
      o.Set("deviceGetName", Napi::BigInt::New(env, static_cast<uint64_t>(a.backends[i].first.device_get_name)));
      o.Set("device", Napi::BigInt::New(env, static_cast<uint64_t>(a.backends[i].first.device)));
      o.Set("splits", static_cast<double>(v.splits));
      o.Set("submitNs", static_cast<double>(v.submit_ns));
      o.Set("syncs", static_cast<double>(v.syncs));
      o.Set("syncNs", static_cast<double>(v.sync_ns));
      o.Set("copies", static_cast<double>(v.copies));
      o.Set("copyBytes", static_cast<double>(v.copy_bytes));
      o.Set("copyNs", static_cast<double>(v.copy_ns));
      backends.Set(static_cast<uint32_t>(i), o);
    }
    out.Set("tokens", tokens);
    out.Set("ops", ops);
    out.Set("layers", layers);
    out.Set("moe", moe);
    out.Set("backends", backends);
    return out;
  }

  // requests() -> { active: [request], finished: [request] (each handed out once), inFlight:
  // [{tgid, ctx, startNs}] }; a request: {id, pid, ctx, seqId, startNs, firstOutputNs (null:
  // none), endNs, promptTokens, generatedTokens, cachedTokens (null: not known), steps,
  // longestGapNs, lastCallNs, flags}; ns as BigInt (CLOCK_MONOTONIC), ctx as BigInt
  Napi::Value Requests(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    profinfer::Requests r = tracer_ ? tracer_->ReadRequests() : profinfer::Requests{};
    auto big = [&](unsigned long long v) { return Napi::BigInt::New(env, static_cast<uint64_t>(v)); };
    auto list = [&](const std::vector<pi_request>& v) {
      Napi::Array arr = Napi::Array::New(env, v.size());
      for (size_t i = 0; i < v.size(); i++) {
        const pi_request& q = v[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("id", static_cast<double>(q.id));
        o.Set("pid", static_cast<double>(q.key.tgid));
        o.Set("ctx", big(q.key.ctx));
        o.Set("seqId", static_cast<double>(q.key.seq_id));
        o.Set("startNs", big(q.start_ns));
        o.Set("firstOutputNs", q.first_output_ns ? Napi::Value(big(q.first_output_ns)) : env.Null());
        o.Set("endNs", big(q.end_ns));
        o.Set("promptTokens", static_cast<double>(q.prompt_tokens));
        o.Set("generatedTokens", static_cast<double>(q.generated_tokens));
        o.Set("cachedTokens", q.cached_tokens < 0 ? env.Null() : Napi::Number::New(env, q.cached_tokens));
        o.Set("steps", static_cast<double>(q.steps));
        o.Set("longestGapNs", big(q.longest_gap_ns));
        o.Set("lastCallNs", big(q.last_call_ns));
        o.Set("flags", static_cast<double>(q.flags));
        arr.Set(static_cast<uint32_t>(i), o);
      }
      return arr;
    };
    Napi::Array in_flight = Napi::Array::New(env, r.in_flight.size());
    for (size_t i = 0; i < r.in_flight.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("tgid", static_cast<double>(r.in_flight[i].tgid));
      o.Set("ctx", big(r.in_flight[i].ctx));
      o.Set("startNs", big(r.in_flight[i].ts));
      in_flight.Set(static_cast<uint32_t>(i), o);
    }
    out.Set("active", list(r.active));
    out.Set("finished", list(r.finished));
    out.Set("inFlight", in_flight);
    return out;
  }

  void Shutdown() {
    if (tracer_) {
      tracer_->Stop();
      tracer_->Detach();
    }
    if (started_) {
      tsfn_.Release();
      started_ = false;
    }
    tracer_.reset();
  }

  std::unique_ptr<profinfer::Tracer> tracer_;
  Napi::ThreadSafeFunction tsfn_;
  bool started_ = false;
};

// clockPair() -> [monotonicNs, realtimeNs] as decimal strings: the closest pair of several tries,
// so that BPF timestamps (CLOCK_MONOTONIC) convert to wall-clock time with one exact offset.
Napi::Value ClockPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t best_gap = INT64_MAX, mono = 0, real = 0;
  for (int i = 0; i < 16; i++) {
    timespec a{}, r{}, b{};
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t na = a.tv_sec * 1000000000LL + a.tv_nsec, nb = b.tv_sec * 1000000000LL + b.tv_nsec;
    if (nb - na < best_gap) {
      best_gap = nb - na;
      mono = na + (nb - na) / 2;
      real = r.tv_sec * 1000000000LL + r.tv_nsec;
    }
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::String::New(env, std::to_string(mono)));
  out.Set(1u, Napi::String::New(env, std::to_string(real)));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Tracer", TracerBinding::Define(env));
  exports.Set("clockPair", Napi::Function::New(env, ClockPair));
  exports.Set("eventAbi", Napi::Number::New(env, PI_EVENT_ABI));
  std::vector<uint64_t> bounds_ns = profinfer::AggregateBoundsNs();
  Napi::Array bounds = Napi::Array::New(env, bounds_ns.size());
  for (size_t i = 0; i < bounds_ns.size(); i++) bounds.Set(static_cast<uint32_t>(i), static_cast<double>(bounds_ns[i]));
  exports.Set("aggregateBoundsNs", bounds);
  return exports;
}

}  // namespace

NODE_API_MODULE(profinfer_native, Init)
