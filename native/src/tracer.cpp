// SPDX-License-Identifier: Apache-2.0
#include "tracer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "profinfer.skel.h"

namespace profinfer {

namespace {

// Batches are handed over when they reach this size or when a poll returns. Events are
// submitted without a wakeup (bpf/common.bpf.h submit()), so the poll times out: every
// timeout wakes this thread and the JavaScript thread on a machine whose cores the target
// keeps busy, and at op level the wakeups cost more than the events they carry, hence a long
// timeout. The kernel forces a wakeup when the ring is a quarter full; Stop() wakes the poll.
constexpr size_t kBatchBytes = 1 << 20;
constexpr int kPollMs = 500;

std::string ErrnoText(int err) {
  if (err < 0) err = -err;
  return std::string(strerror(err)) + " (errno " + std::to_string(err) + ")";
}

int SilentLibbpf(enum libbpf_print_level level, const char* format, va_list args) {
  // libbpf's own warnings go to stderr only when asked for: our errors carry the reason.
  if (level == LIBBPF_WARN && getenv("PROFINFER_LIBBPF_DEBUG")) return vfprintf(stderr, format, args);
  if (level == LIBBPF_DEBUG && getenv("PROFINFER_LIBBPF_DEBUG")) return vfprintf(stderr, format, args);
  return 0;
}

// Any program of the object by its name: the handler names user space attaches are the BPF
// function names (exporter/src/record/nativeTracer.ts ProbeHandler).
bpf_program* ProgramByName(profinfer_bpf* skel, const std::string& name) {
  return bpf_object__find_program_by_name(skel->obj, name.c_str());
}

bool IsReturnProbe(const std::string& name) {
  return name.size() > 5 && name.compare(name.size() - 5, 5, "_exit") == 0;
}

// The kernel's uprobe_multi link (6.6+). Debian 12's libbpf 1.1 and uapi headers predate it, so
// the attach type and the link_create attributes are spelled out here from the kernel's uapi.
constexpr uint32_t kTraceUprobeMulti = 48;  // BPF_TRACE_UPROBE_MULTI
constexpr uint32_t kUprobeMultiReturn = 1;  // BPF_F_UPROBE_MULTI_RETURN

struct UprobeMultiLinkAttr {
  uint32_t prog_fd;
  uint32_t target_fd;
  uint32_t attach_type;
  uint32_t flags;
  uint64_t path;
  uint64_t offsets;
  uint64_t ref_ctr_offsets;
  uint64_t cookies;
  uint32_t cnt;
  uint32_t multi_flags;
  uint32_t pid;
  uint32_t pad;
  uint8_t rest[64];  // the rest of union bpf_attr, zeroed
};

// perf_event_open has no libc wrapper.
int PerfEventOpen(perf_event_attr* attr, pid_t pid, int cpu, int group, unsigned long flags) {
  return static_cast<int>(syscall(__NR_perf_event_open, attr, pid, cpu, group, flags));
}

// Why an event did not open, in words a user can act on.
std::string PerfOpenError(int err, uint32_t type) {
  std::string text = ErrnoText(err);
  if (err == ENOENT || err == EOPNOTSUPP || err == ENODEV) {
    if (type == PERF_TYPE_HARDWARE || type == PERF_TYPE_HW_CACHE || type == PERF_TYPE_RAW)
      return text + ": this CPU exposes no such hardware counter (a virtual machine without a virtual PMU?)";
    return text + ": the kernel does not support this event here";
  }
  if (err == EACCES || err == EPERM) return text + ": system-wide counters need root or CAP_PERFMON";
  if (err == EINVAL) return text + ": the kernel rejected the event's settings";
  return text;
}

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds)
    if (fd >= 0) close(fd);
  fds.clear();
}

}  // namespace

std::vector<uint64_t> AggregateBoundsNs() {
  std::vector<uint64_t> bounds;
  const uint64_t steps[3] = {1, 2, 5};
  for (uint32_t i = 0; i < PI_AGG_BUCKETS - 1; i++) {
    uint64_t ns = steps[i % 3] * 1000;
    for (uint32_t k = 0; k < i / 3; k++) ns *= 10;
    bounds.push_back(ns);
  }
  return bounds;
}

Tracer::Tracer(const TracerOptions& o) : tgid_(o.multi ? 0 : o.tgid), multi_(o.multi) {
  libbpf_set_print(SilentLibbpf);
  /* open: nothing is in the kernel yet, so rodata and map sizes can still change */
  skel_ = profinfer_bpf__open();
  if (!skel_) throw std::runtime_error("cannot open the BPF object: " + ErrnoText(errno));

  /* configure through rodata, which the verifier then treats as constants */
  skel_->rodata->target_tgid = tgid_;
  skel_->rodata->multi = o.multi ? 1 : 0;
  skel_->rodata->level = o.level;
  skel_->rodata->sample_every = o.sample_every;
  skel_->rodata->window_first = o.window_first;
  skel_->rodata->window_last = o.window_last;
  skel_->rodata->window_only = o.window_only ? 1 : 0;
  skel_->rodata->ops_without_tokens = o.ops_without_tokens ? 1 : 0;
  skel_->rodata->moe_enabled = o.moe ? 1 : 0;

  /* the ring buffer must be a power-of-two number of pages */
  uint64_t ring = 4096;
  while (ring < o.ring_buffer_bytes) ring <<= 1;
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) ncpus_ = 1;

  /* counters: one system-wide event per CPU each; a counter missing on any CPU is left out */
  for (const CounterSpec& spec : o.counters) {
    CounterStatus status{spec.name, false, ""};
    if (counter_fds_.size() / ncpus_ >= PI_MAX_COUNTERS) {
      status.error = "at most " + std::to_string(PI_MAX_COUNTERS) + " counters can be read at once";
      counter_status_.push_back(status);
      continue;
    }
    std::vector<int> fds;
    for (int cpu = 0; cpu < ncpus_; cpu++) {
      perf_event_attr attr{};
      attr.size = sizeof(attr);
      attr.type = spec.type;
      attr.config = spec.config;
      attr.config1 = spec.config1;
      attr.config2 = spec.config2;
      int fd = PerfEventOpen(&attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        /* an offline CPU cannot count, nor run the target: leave its slot empty */
        if (err == ENODEV && access(("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/online").c_str(), F_OK) == 0) {
          FILE* f = fopen(("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/online").c_str(), "r");
          int online = 1;
          if (f) {
            if (fscanf(f, "%d", &online) != 1) online = 1;
            fclose(f);
          }
          if (!online) {
            fds.push_back(-1);
            continue;
          }
        }
        status.error = PerfOpenError(err, spec.type);
        break;
      }
      fds.push_back(fd);
    }
    if (!status.error.empty()) {
      CloseAll(fds);
    } else {
      status.opened = true;
      counter_fds_.insert(counter_fds_.end(), fds.begin(), fds.end());
    }
    counter_status_.push_back(status);
  }
  uint32_t n_counters = static_cast<uint32_t>(counter_fds_.size() / ncpus_);
  skel_->rodata->n_counters = n_counters;
  skel_->rodata->n_cpus = static_cast<uint32_t>(ncpus_);
  skel_->rodata->stream = o.stream ? 1 : 0;
  skel_->rodata->batch_tokens_max = std::min<uint32_t>(o.batch_tokens, PI_MAX_BATCH_TOKENS);
  skel_->rodata->aggregate = o.aggregate ? 1 : 0;
  skel_->rodata->aggregate_layers = o.aggregate && o.aggregate_layers ? 1 : 0;
  skel_->rodata->aggregate_moe = o.aggregate && o.aggregate_moe ? 1 : 0;
  std::vector<uint64_t> bounds = AggregateBoundsNs();
  for (size_t i = 0; i < bounds.size(); i++) skel_->rodata->agg_bounds_ns[i] = bounds[i];

  int err = bpf_map__set_max_entries(skel_->maps.events, static_cast<uint32_t>(ring));
  if (!err) err = bpf_map__set_max_entries(skel_->maps.scratch, static_cast<uint32_t>(ncpus_));
  if (!err)
    err = bpf_map__set_max_entries(skel_->maps.pmc, static_cast<uint32_t>(n_counters > 0 ? n_counters * ncpus_ : 1));
  if (err) {
    profinfer_bpf__destroy(skel_);
    skel_ = nullptr;
    CloseAll(counter_fds_);
    throw std::runtime_error("cannot size the BPF maps: " + ErrnoText(err));
  }

  if (o.uprobe_multi) {
    bpf_program__set_expected_attach_type(skel_->progs.op_enter, static_cast<bpf_attach_type>(kTraceUprobeMulti));
    bpf_program__set_expected_attach_type(skel_->progs.op_method_enter, static_cast<bpf_attach_type>(kTraceUprobeMulti));
    bpf_program__set_expected_attach_type(skel_->progs.op_exit, static_cast<bpf_attach_type>(kTraceUprobeMulti));
    bpf_program__set_expected_attach_type(skel_->progs.step_site, static_cast<bpf_attach_type>(kTraceUprobeMulti));
  }

  /* load: the verifier runs here; permission problems show up as EPERM */
  err = profinfer_bpf__load(skel_);
  if (err) {
    profinfer_bpf__destroy(skel_);
    skel_ = nullptr;
    CloseAll(counter_fds_);
    std::string hint = (err == -EPERM || err == -EACCES)
                           ? ": loading BPF programs needs root or CAP_BPF and CAP_PERFMON"
                           : "";
    throw std::runtime_error("cannot load the BPF programs: " + ErrnoText(err) + hint);
  }

  /* the program reads counter i on cpu c at index i * ncpus + c */
  int pmc_fd = bpf_map__fd(skel_->maps.pmc);
  for (size_t index = 0; index < counter_fds_.size(); index++) {
    if (counter_fds_[index] < 0) continue;
    uint32_t key = static_cast<uint32_t>(index);
    uint32_t fd = static_cast<uint32_t>(counter_fds_[index]);
    if (bpf_map_update_elem(pmc_fd, &key, &fd, BPF_ANY)) {
      int e = errno;
      profinfer_bpf__destroy(skel_);
      skel_ = nullptr;
      CloseAll(counter_fds_);
      throw std::runtime_error("cannot hand the perf events to the BPF program: " + ErrnoText(e));
    }
  }
}

Tracer::~Tracer() {
  Stop();
  Detach();
  if (skel_) profinfer_bpf__destroy(skel_);
  CloseAll(counter_fds_);
}

std::string Tracer::AttachUprobe(const std::string& program, const std::string& binary,
                                 const std::string& symbol, uint64_t cookie, uint64_t file_offset) {
  if (!skel_) return "the tracer is closed";
  bpf_program* prog = ProgramByName(skel_, program);
  if (!prog) return "unknown probe handler '" + program + "'";
  LIBBPF_OPTS(bpf_uprobe_opts, opts);
  opts.func_name = file_offset ? nullptr : symbol.c_str();
  opts.retprobe = IsReturnProbe(program);
  opts.bpf_cookie = cookie;
  /* multi: every process that maps the file (-1); else the target alone */
  pid_t pid = multi_ ? -1 : static_cast<pid_t>(tgid_);
  bpf_link* link = bpf_program__attach_uprobe_opts(prog, pid,
                                                   binary.c_str(), static_cast<size_t>(file_offset), &opts);
  if (!link) {
    int err = errno;
    return std::string(opts.retprobe ? "uretprobe" : "uprobe") + " on " + symbol + " in " + binary +
           ": " + ErrnoText(err);
  }
  links_.push_back(link);
  link_programs_.push_back(prog);
  link_binaries_.push_back(binary);
  return "";
}

std::string Tracer::AttachUprobeMulti(const std::string& program, const std::string& binary,
                                      const std::vector<uint64_t>& offsets, const std::vector<uint64_t>& cookies) {
  if (!skel_) return "the tracer is closed";
  bpf_program* prog = ProgramByName(skel_, program);
  if (!prog) return "unknown probe handler '" + program + "'";
  if (offsets.empty() || offsets.size() != cookies.size()) return "offsets and cookies must be non-empty and of one length";
  UprobeMultiLinkAttr attr{};
  attr.prog_fd = static_cast<uint32_t>(bpf_program__fd(prog));
  attr.attach_type = kTraceUprobeMulti;
  attr.path = reinterpret_cast<uint64_t>(binary.c_str());
  attr.offsets = reinterpret_cast<uint64_t>(offsets.data());
  attr.cookies = reinterpret_cast<uint64_t>(cookies.data());
  attr.cnt = static_cast<uint32_t>(offsets.size());
  attr.multi_flags = IsReturnProbe(program) ? kUprobeMultiReturn : 0;
  attr.pid = skel_->rodata->target_tgid;
  long fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
  if (fd < 0) {
    int err = errno;
    return "uprobe_multi (" + std::to_string(offsets.size()) + " functions) in " + binary + ": " + ErrnoText(err);
  }
  multi_link_fds_.push_back(static_cast<int>(fd));
  multi_link_programs_.push_back(prog);
  return "";
}

void Tracer::DropLastMultiLink() {
  if (multi_link_fds_.empty()) return;
  close(multi_link_fds_.back());
  multi_link_fds_.pop_back();
  multi_link_programs_.pop_back();
}

std::string Tracer::AttachSchedTracepoints() {
  if (!skel_) return "the tracer is closed";
  for (bpf_program* prog : {skel_->progs.on_sched_switch, skel_->progs.on_sched_wakeup}) {
    bpf_link* link = bpf_program__attach(prog);
    if (!link) return std::string(bpf_program__name(prog)) + ": " + ErrnoText(errno);
    links_.push_back(link);
    link_programs_.push_back(prog);
    link_binaries_.push_back("");
  }
  return "";
}

std::string Tracer::AttachProcessTracepoints() {
  if (!skel_) return "the tracer is closed";
  if (!multi_) return "process tracepoints serve the host agent's tracer only";
  for (bpf_program* prog : {skel_->progs.on_process_exec, skel_->progs.on_process_exit}) {
    bpf_link* link = bpf_program__attach(prog);
    if (!link) return std::string(bpf_program__name(prog)) + ": " + ErrnoText(errno);
    links_.push_back(link);
    link_programs_.push_back(prog);
    link_binaries_.push_back("");
  }
  return "";
}

std::string Tracer::AddTarget(uint32_t tgid) {
  if (!skel_) return "the tracer is closed";
  if (!multi_) return "targets are added to the host agent's tracer only";
  RemoveTarget(tgid);
  /* a fresh state (struct run_state of bpf/common.bpf.h: all zeros) */
  std::vector<uint8_t> state(bpf_map__value_size(skel_->maps.targets), 0);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.targets), &tgid, state.data(), BPF_ANY)) {
    int err = errno;
    return "cannot follow process " + std::to_string(tgid) + ": " + ErrnoText(err) +
           (err == E2BIG ? " (at most " + std::to_string(PI_MAX_TARGETS) + " processes at once)" : "");
  }
  return "";
}

// Every key of map `fd` whose value or key `belongs` says is the process's, deleted.
template <typename Key, typename Value, typename Belongs>
static void DeleteWhere(int fd, size_t value_size, Belongs belongs) {
  std::vector<Key> doomed;
  std::vector<uint8_t> value(std::max(value_size, sizeof(Value)));
  Key key{}, next{};
  Key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, value.data()) == 0 &&
        belongs(key, *reinterpret_cast<const Value*>(value.data())))
      doomed.push_back(key);
  }
  for (const Key& k : doomed) bpf_map_delete_elem(fd, &k);
}

void Tracer::RemoveTarget(uint32_t tgid) {
  if (!skel_ || !multi_) return;
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.targets), &tgid);
  int fd = bpf_map__fd(skel_->maps.token_agg);
  for (uint32_t phase = 0; phase < PI_PHASES; phase++) {
    pi_token_agg_key key{tgid, phase};
    bpf_map_delete_elem(fd, &key);
  }
  DeleteWhere<pi_request_key, pi_request>(bpf_map__fd(skel_->maps.requests), sizeof(pi_request),
                                          [tgid](const pi_request_key& k, const pi_request&) { return k.tgid == tgid; });
  DeleteWhere<uint32_t, pi_call_start>(bpf_map__fd(skel_->maps.decode_starts), sizeof(pi_call_start),
                                       [tgid](uint32_t, const pi_call_start& c) { return c.tgid == tgid; });
}

std::string Tracer::SetLayout(const pi_layout& layout) {
  if (!skel_) return "the tracer is closed";
  struct {
    pi_layout l;
    uint32_t valid;
  } slot{};
  slot.l = layout;
  slot.valid = 1;
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.layout_map), &zero, &slot, BPF_ANY))
    return "cannot set the ggml layout: " + ErrnoText(errno);
  return "";
}

int Tracer::OnEvent(void* ctx, void* data, size_t size) {
  auto* self = static_cast<Tracer*>(ctx);
  if (!self->pending_) self->NewBatch();
  uint32_t type = 0;
  if (size >= sizeof(type)) memcpy(&type, data, sizeof(type));
  self->Append(data, size, type);
  if (self->pending_->bytes.size() >= kBatchBytes) self->Deliver();
  return 0;
}

void Tracer::Append(const void* data, size_t size, uint32_t type) {
  std::vector<uint8_t>& out = pending_->bytes;
  uint32_t length = static_cast<uint32_t>(size);
  size_t at = out.size();
  out.resize(at + sizeof(length) + size);
  memcpy(out.data() + at, &length, sizeof(length));
  memcpy(out.data() + at + sizeof(length), data, size);
  // the counts are of events: a batch of steps counts as its steps
  if (type == PI_EV_STEPS && size == sizeof(pi_steps))
    pending_->counts[PI_EV_STEP] += std::min<uint32_t>(static_cast<const pi_steps*>(data)->count, PI_STEPS_PER_BATCH);
  else if (type < kEventTypes)
    pending_->counts[type]++;
}

// Steps still waiting in the threads' batches when tracing stops (a graph cut short by the stop
// or by the target's exit): sent like any batch, so that nothing recorded is lost. Each value of
// the "threads" map starts with its thread's pi_steps (bpf/threads.bpf.h, bpf/steps.bpf.h).
void Tracer::DrainStepBatches() {
  int fd = bpf_map__fd(skel_->maps.threads);
  size_t value_size = bpf_map__value_size(skel_->maps.threads);
  if (fd < 0 || value_size < sizeof(pi_steps)) return;
  std::vector<uint8_t> value(value_size);
  uint32_t key = 0, next_key = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next_key) == 0) {
    key = next_key;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, value.data()) != 0) continue;
    pi_steps batch;
    memcpy(&batch, value.data(), sizeof(batch));
    if (batch.count == 0 || batch.count > PI_STEPS_PER_BATCH) continue;
    // the header is the last flush's, or zeros before the thread's first: name the thread again
    batch.h.type = PI_EV_STEPS;
    batch.h.tgid = tgid_;
    batch.h.tid = key;
    batch.h.cpu = batch.steps[batch.count - 1].cpu;
    batch.h.ts = batch.steps[batch.count - 1].ts;
    if (!pending_) NewBatch();
    Append(&batch, sizeof(batch), PI_EV_STEPS);
  }
}

void Tracer::NewBatch() {
  pending_ = std::make_unique<Batch>();
  // about what the last poll brought: a fresh 1 MiB per batch would fault in pages each time
  pending_->bytes.reserve(std::min(kBatchBytes, last_batch_bytes_ + last_batch_bytes_ / 4) + 16384);
}

void Tracer::Deliver() {
  last_batch_bytes_ = pending_->bytes.size();
  deliver_(std::move(pending_));
}

void Tracer::Start(std::function<void(std::unique_ptr<Batch>)> deliver) {
  if (running_ || !skel_) return;
  deliver_ = std::move(deliver);
  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), OnEvent, this, nullptr);
  if (!ring_) throw std::runtime_error("cannot open the ring buffer: " + ErrnoText(errno));
  // the ring's own epoll set and an eventfd by which Stop() ends the wait at once
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  poll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (wake_fd_ < 0 || poll_fd_ < 0) throw std::runtime_error("cannot poll the ring buffer: " + ErrnoText(errno));
  for (int fd : {ring_buffer__epoll_fd(ring_), wake_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(poll_fd_, EPOLL_CTL_ADD, fd, &ev))
      throw std::runtime_error("cannot poll the ring buffer: " + ErrnoText(errno));
  }
  running_ = true;
  thread_ = std::thread([this] {
    while (running_) {
      epoll_event ev[2];
      int n = epoll_wait(poll_fd_, ev, 2, kPollMs);
      if (n < 0 && errno != EINTR) break;
      /* events are submitted without a wakeup: take what is there even when the wait timed out */
      ring_buffer__consume(ring_);
      if (pending_) Deliver();
    }
    /* drain what arrived before the stop and the threads' unsent steps, then mark the end */
    ring_buffer__consume(ring_);
    DrainStepBatches();
    if (pending_) Deliver();
    deliver_(nullptr);
  });
}

void Tracer::Stop() {
  running_ = false;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof(one)) < 0) { /* the poll ends at its timeout instead */ }
  }
  if (thread_.joinable()) thread_.join();
  for (int* fd : {&wake_fd_, &poll_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  if (ring_) {
    ring_buffer__free(ring_);
    ring_ = nullptr;
  }
}

size_t Tracer::DetachProgram(const std::string& program) {
  bpf_program* prog = skel_ ? ProgramByName(skel_, program) : nullptr;
  size_t closed = 0;
  for (size_t i = links_.size(); prog && i-- > 0;) {
    if (link_programs_[i] != prog) continue;
    bpf_link__destroy(links_[i]);
    EraseLink(i);
    closed++;
  }
  for (size_t i = multi_link_fds_.size(); prog && i-- > 0;) {
    if (multi_link_programs_[i] != prog) continue;
    close(multi_link_fds_[i]);
    multi_link_fds_.erase(multi_link_fds_.begin() + static_cast<std::ptrdiff_t>(i));
    multi_link_programs_.erase(multi_link_programs_.begin() + static_cast<std::ptrdiff_t>(i));
    closed++;
  }
  return closed;
}

size_t Tracer::DetachBinary(const std::string& binary) {
  size_t closed = 0;
  for (size_t i = links_.size(); i-- > 0;) {
    if (link_binaries_[i] != binary) continue;
    bpf_link__destroy(links_[i]);
    EraseLink(i);
    closed++;
  }
  return closed;
}

void Tracer::EraseLink(size_t i) {
  links_.erase(links_.begin() + static_cast<std::ptrdiff_t>(i));
  link_programs_.erase(link_programs_.begin() + static_cast<std::ptrdiff_t>(i));
  link_binaries_.erase(link_binaries_.begin() + static_cast<std::ptrdiff_t>(i));
}

void Tracer::Detach() {
  for (bpf_link* link : links_) bpf_link__destroy(link);
  links_.clear();
  link_programs_.clear();
  link_binaries_.clear();
  for (int fd : multi_link_fds_) close(fd);
  multi_link_fds_.clear();
  multi_link_programs_.clear();
}

std::vector<uint64_t> Tracer::SumPerCpu(int map_fd, uint32_t entries) const {
  std::vector<uint64_t> totals(entries, 0);
  std::vector<uint64_t> values(static_cast<size_t>(ncpus_));
  for (uint32_t key = 0; key < entries; key++) {
    if (bpf_map_lookup_elem(map_fd, &key, values.data()) == 0) {
      for (uint64_t v : values) totals[key] += v;
    }
  }
  return totals;
}

Aggregates Tracer::ReadAggregates(uint32_t tgid) const {
  Aggregates out;
  if (!skel_) return out;
  if (tgid == 0) tgid = tgid_;
  /* per-CPU maps hand back one value per possible CPU, each rounded up to 8 bytes */
  std::vector<pi_token_agg> tokens(static_cast<size_t>(ncpus_));
  int fd = bpf_map__fd(skel_->maps.token_agg);
  for (uint32_t phase = 0; phase < PI_PHASES; phase++) {
    pi_token_agg sum{};
    pi_token_agg_key key{tgid, phase};
    if (bpf_map_lookup_elem(fd, &key, tokens.data()) == 0) {
      for (const pi_token_agg& t : tokens) {
        sum.calls += t.calls;
        sum.tokens += t.tokens;
        sum.ns += t.ns;
        sum.prompt_tokens += t.prompt_tokens;
        sum.generated_tokens += t.generated_tokens;
        sum.sequences += t.sequences;
        for (int b = 0; b < PI_AGG_BUCKETS; b++) sum.buckets[b] += t.buckets[b];
        for (int b = 0; b < PI_BATCH_TOKEN_BUCKETS; b++) sum.token_buckets[b] += t.token_buckets[b];
        for (int b = 0; b < PI_BATCH_SEQ_BUCKETS; b++) sum.seq_buckets[b] += t.seq_buckets[b];
      }
    }
    out.tokens.push_back(sum);
  }
  std::vector<pi_op_agg> ops(static_cast<size_t>(ncpus_));
  fd = bpf_map__fd(skel_->maps.op_agg);
  uint32_t key = 0, next = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, ops.data())) continue;
    pi_op_agg sum{};
    for (const pi_op_agg& a : ops) {
      sum.count += a.count;
      sum.ns += a.ns;
      sum.barrier_ns += a.barrier_ns;
      sum.runs += a.runs;
      sum.bytes += a.bytes;
      for (int i = 0; i < PI_MAX_COUNTERS; i++) sum.counters[i] += a.counters[i];
      for (int b = 0; b < PI_AGG_BUCKETS; b++) sum.buckets[b] += a.buckets[b];
    }
    out.ops.emplace_back(key, sum);
  }
  std::vector<pi_layer_agg> layers(static_cast<size_t>(ncpus_));
  fd = bpf_map__fd(skel_->maps.layer_agg);
  pi_layer_key lkey{}, lnext{};
  pi_layer_key* lprev = nullptr;
  while (bpf_map_get_next_key(fd, lprev, &lnext) == 0) {
    lkey = lnext;
    lprev = &lkey;
    if (bpf_map_lookup_elem(fd, &lkey, layers.data())) continue;
    pi_layer_agg sum{};
    for (const pi_layer_agg& a : layers) {
      sum.count += a.count;
      sum.ns += a.ns;
    }
    out.layers.emplace_back(lkey, sum);
  }
  std::vector<uint64_t> selections(static_cast<size_t>(ncpus_));
  fd = bpf_map__fd(skel_->maps.moe_agg);
  pi_moe_key mkey{}, mnext{};
  pi_moe_key* mprev = nullptr;
  while (bpf_map_get_next_key(fd, mprev, &mnext) == 0) {
    mkey = mnext;
    mprev = &mkey;
    if (bpf_map_lookup_elem(fd, &mkey, selections.data())) continue;
    uint64_t sum = 0;
    for (uint64_t v : selections) sum += v;
    out.moe.emplace_back(mkey, sum);
  }
  std::vector<pi_backend_agg> backends(static_cast<size_t>(ncpus_));
  fd = bpf_map__fd(skel_->maps.backend_agg);
  pi_backend_key bkey{}, bnext{};
  pi_backend_key* bprev = nullptr;
  while (bpf_map_get_next_key(fd, bprev, &bnext) == 0) {
    bkey = bnext;
    bprev = &bkey;
    if (bpf_map_lookup_elem(fd, &bkey, backends.data())) continue;
    pi_backend_agg sum{};
    for (const pi_backend_agg& a : backends) {
      sum.splits += a.splits;
      sum.submit_ns += a.submit_ns;
      sum.syncs += a.syncs;
      sum.sync_ns += a.sync_ns;
      sum.copies += a.copies;
      sum.copy_bytes += a.copy_bytes;
      sum.copy_ns += a.copy_ns;
    }
    out.backends.emplace_back(bkey, sum);
  }
  return out;
}

Requests Tracer::ReadRequests() {
  Requests out;
  if (!skel_) return out;
  int fd = bpf_map__fd(skel_->maps.requests);
  pi_request_key key{}, next{};
  pi_request_key* prev = nullptr;
  pi_request value{};
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, &value) == 0) out.active.push_back(value);
  }
  // a queue pops with a NULL key; ENOENT when empty
  fd = bpf_map__fd(skel_->maps.finished_requests);
  while (bpf_map_lookup_and_delete_elem(fd, nullptr, &value) == 0) out.finished.push_back(value);
  fd = bpf_map__fd(skel_->maps.decode_starts);
  uint32_t tid = 0, next_tid = 0;
  uint32_t* prev_tid = nullptr;
  auto call = std::make_unique<pi_call_start>();
  while (bpf_map_get_next_key(fd, prev_tid, &next_tid) == 0) {
    tid = next_tid;
    prev_tid = &tid;
    if (bpf_map_lookup_elem(fd, &tid, call.get()) == 0) {
      pi_call_start c{};
      c.ts = call->ts;
      c.ctx = call->ctx;
      c.tgid = call->tgid;
      c.n_tokens = call->n_tokens;
      out.in_flight.push_back(c);
    }
  }
  return out;
}

std::vector<uint64_t> Tracer::Drops() const {
  if (!skel_) return {};
  return SumPerCpu(bpf_map__fd(skel_->maps.drops), PI_DROP_REASONS);
}

std::vector<uint64_t> Tracer::Hits() const {
  if (!skel_) return {};
  return SumPerCpu(bpf_map__fd(skel_->maps.hits), PI_HIT_KINDS);
}

}  // namespace profinfer
