// SPDX-License-Identifier: Apache-2.0
// Node.js binding of profinfer::Tracer. Batches of events travel from the polling thread to
// JavaScript through one ThreadSafeFunction call per batch, never one call per event.
#include <napi.h>

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
  };
  for (const Field& f : fields) {
    Napi::Value v = o.Get(f.name);
    if (!v.IsNumber()) {
      Napi::TypeError::New(env, std::string("layout.") + f.name + " must be a number").ThrowAsJavaScriptException();
      return false;
    }
    *f.slot = v.As<Napi::Number>().Uint32Value();
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
                           InstanceMethod<&TracerBinding::SetLayout>("setLayout"),
                           InstanceMethod<&TracerBinding::Start>("start"),
                           InstanceMethod<&TracerBinding::Stop>("stop"),
                           InstanceMethod<&TracerBinding::Detach>("detach"),
                           InstanceMethod<&TracerBinding::Close>("close"),
                           InstanceMethod<&TracerBinding::Counters>("counters"),
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
    if (options.tgid == 0) {
      Napi::TypeError::New(env, "options.tgid must be the target's process id").ThrowAsJavaScriptException();
      return;
    }
    options.level = U32(o, "level", PI_LEVEL_OP);
    options.sample_every = U32(o, "sampleEvery", 1);
    options.window_first = U32(o, "windowFirst", 0);
    options.window_last = U32(o, "windowLast", 0);
    options.ops_without_tokens = o.Get("opsWithoutTokens").ToBoolean();
    options.moe = o.Get("moe").ToBoolean();
    options.uprobe_multi = o.Get("uprobeMulti").ToBoolean();
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

  Napi::Value AttachSched(const Napi::CallbackInfo& info) {
    if (!tracer_) return Napi::String::New(info.Env(), "the tracer is closed");
    return Napi::String::New(info.Env(), tracer_->AttachSchedTracepoints());
  }

  // start(onBatch: (batch: Buffer | null) => void): null once, after the last batch
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
            fn.Call({env.Null()});
            return;
          }
          // zero copy: the Buffer owns the batch and frees it when collected
          Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(
              env, b->data(), b->size(), [](Napi::Env, uint8_t*, Batch* owned) { delete owned; }, b);
          fn.Call({buffer});
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
  return exports;
}

}  // namespace

NODE_API_MODULE(profinfer_native, Init)
