// SPDX-License-Identifier: Apache-2.0
// The BPF side of profinfer, without any Node.js: open/configure/load the skeleton, attach
// probes, poll the ring buffer on a thread of its own and hand out batches of records.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "profinfer.h"
}

struct profinfer_bpf;
struct bpf_link;
struct bpf_program;
struct ring_buffer;

namespace profinfer {

// One perf event as perf_event_open takes it; `name` is what the user wrote.
struct CounterSpec {
  std::string name;
  uint32_t type = 0;
  uint64_t config = 0;
  uint64_t config1 = 0;
  uint64_t config2 = 0;
};

// What became of one requested counter: opened on every CPU, or the reason it was not.
struct CounterStatus {
  std::string name;
  bool opened = false;
  std::string error;
};

// The in-kernel aggregates (bpf/profinfer.h pi_token_agg, pi_op_agg), summed over CPUs.
struct Aggregates {
  std::vector<pi_token_agg> tokens;  // by enum pi_phase
  std::vector<std::pair<uint32_t, pi_op_agg>> ops;  // by cookie (PI_AGG_UNPROBED: barrier-timed)
  std::vector<std::pair<pi_layer_key, pi_layer_agg>> layers;  // when aggregate_layers
  std::vector<std::pair<pi_moe_key, uint64_t>> moe;           // when aggregate_moe
  std::vector<std::pair<pi_backend_key, pi_backend_agg>> backends;  // by device (bpf/backends.bpf.h)
};

// The requests the kernel follows (bpf/requests.bpf.h): each sequence's current one, those
// replaced by a new one since the last read (taken off the queue: each is handed out once), and
// the llama_decode calls in flight.
struct Requests {
  std::vector<pi_request> active;
  std::vector<pi_request> finished;
  std::vector<pi_call_start> in_flight;  // only ts, ctx, tgid and n_tokens are filled in
};

// Upper bounds of the aggregate histograms' buckets: 1-2-5 steps from 1 us to 10 s.
std::vector<uint64_t> AggregateBoundsNs();

struct TracerOptions {
  uint32_t tgid = 0;
  uint32_t level = PI_LEVEL_OP;
  uint32_t sample_every = 1;
  uint32_t window_first = 0;
  uint32_t window_last = 0;
  // nothing of the calls after window_last streams (the host agent's windows)
  bool window_only = false;
  bool ops_without_tokens = true;
  bool moe = true;
  uint64_t ring_buffer_bytes = 64ull << 20;
  // Attach per-operator probes as uprobe_multi links (kernel 6.6+): one link per library and
  // direction instead of one per function, which makes detaching take one RCU grace period
  // rather than one per probe.
  bool uprobe_multi = true;
  // perf events to read at operator and barrier boundaries (at most PI_MAX_COUNTERS open)
  std::vector<CounterSpec> counters;
  // false: --level metrics, nothing per event leaves the kernel
  bool stream = true;
  // tokens of a llama_decode batch read at most (PI_MAX_BATCH_TOKENS at most)
  uint32_t batch_tokens = PI_MAX_BATCH_TOKENS;
  // keep the in-kernel aggregates the metrics exporter reads
  bool aggregate = false;
  // ...per layer and operator function too (reads each operator's tensor name)
  bool aggregate_layers = false;
  // ...and MoE expert selections per layer (where expert ids are read: levels that stream)
  bool aggregate_moe = false;
  // the host agent: probes go on files for every process that maps them (tgid is 0), the
  // processes followed are those AddTarget() names, and exec, exit and the dynamic linker's
  // activity of every process come as control events
  bool multi = false;
};

// Event types counted per batch (pi_event_type values below this; bpf/profinfer.h).
constexpr size_t kEventTypes = 32;

// Records as the raw file stores them (u32 length followed by the event bytes, concatenated),
// with how many records of each event type the batch holds: the JavaScript side learns the token
// and event counts without walking tens of thousands of records a second.
struct Batch {
  std::vector<uint8_t> bytes;
  std::array<uint32_t, kEventTypes> counts{};
};

class Tracer {
 public:
  // Opens, configures and loads the BPF object. Throws std::runtime_error with the reason.
  explicit Tracer(const TracerOptions& options);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // Attaches one of the program's uprobe handlers to `symbol` in `binary` for the target
  // process. Returns an empty string on success, else a message naming the symbol and errno.
  // A non-zero `file_offset` places the probe there instead of at the symbol's first byte.
  std::string AttachUprobe(const std::string& program, const std::string& binary,
                           const std::string& symbol, uint64_t cookie, uint64_t file_offset = 0);
  // Attaches `program` (op_enter, op_method_enter, op_exit or step_site) at many file offsets of `binary` in one
  // link; each offset gets the cookie of the same index. Needs TracerOptions::uprobe_multi.
  std::string AttachUprobeMulti(const std::string& program, const std::string& binary,
                                const std::vector<uint64_t>& offsets, const std::vector<uint64_t>& cookies);
  // Closes the most recent uprobe_multi link (its return twin could not be attached).
  void DropLastMultiLink();
  std::string AttachSchedTracepoints();
  // multi: exec and exit of processes as control events (PI_EV_PROCESS_EXEC, PI_EV_PROCESS_EXIT).
  std::string AttachProcessTracepoints();
  // multi: follow process `tgid` from now on (its state starts empty), or forget it and every
  // map entry it left (its aggregates, requests and calls in flight). "" or an error message.
  std::string AddTarget(uint32_t tgid);
  void RemoveTarget(uint32_t tgid);
  // Sets the ggml field offsets the handlers read with (once the library defining them is known).
  std::string SetLayout(const pi_layout& layout);

  // Starts the polling thread; `deliver` is called from that thread with each batch, and once
  // with nullptr after the last one when polling stops.
  void Start(std::function<void(std::unique_ptr<Batch>)> deliver);
  // Stops polling after draining what the ring buffer still holds; joins the thread.
  void Stop();
  // Detaches every probe (the process keeps running unaffected). Idempotent.
  void Detach();
  // Detaches the links of `program`, single and uprobe_multi; returns how many closed.
  size_t DetachProgram(const std::string& program);
  // Detaches the single uprobes attached to `binary` (as AttachUprobe was given it); returns how
  // many closed: the host agent's probe set of one library file, once no process maps it.
  size_t DetachBinary(const std::string& binary);

  const std::vector<CounterStatus>& Counters() const { return counter_status_; }
  // The aggregates; the token aggregates are process `tgid`'s (0: the one target's).
  Aggregates ReadAggregates(uint32_t tgid = 0) const;
  Requests ReadRequests();

  std::vector<uint64_t> Drops() const;
  std::vector<uint64_t> Hits() const;
  size_t AttachedCount() const { return links_.size() + multi_link_fds_.size(); }

 private:
  static int OnEvent(void* ctx, void* data, size_t size);
  void NewBatch();
  void Append(const void* data, size_t size, uint32_t type);
  void DrainStepBatches();
  void EraseLink(size_t i);
  void Deliver();
  std::vector<uint64_t> SumPerCpu(int map_fd, uint32_t entries) const;

  profinfer_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  std::vector<bpf_link*> links_;
  std::vector<bpf_program*> link_programs_;  // the program of each of links_
  std::vector<std::string> link_binaries_;   // the file of each of links_ ("" for tracepoints)
  std::vector<int> multi_link_fds_;
  std::vector<bpf_program*> multi_link_programs_;  // the program of each of multi_link_fds_
  std::thread thread_;
  uint32_t tgid_ = 0;
  bool multi_ = false;
  int wake_fd_ = -1;
  int poll_fd_ = -1;
  std::atomic<bool> running_{false};
  std::function<void(std::unique_ptr<Batch>)> deliver_;
  std::unique_ptr<Batch> pending_;
  size_t last_batch_bytes_ = 0;
  int ncpus_ = 1;
  std::vector<CounterStatus> counter_status_;
  // open perf event fds, counter-major (counter i on cpu c at i * ncpus_ + c)
  std::vector<int> counter_fds_;
};

}  // namespace profinfer
