// SPDX-License-Identifier: Apache-2.0
// The compute loop's own barrier calls ("step sites"). ggml's CPU loop (ggml_graph_compute_thread)
// computes a node, or a fused group of nodes, and then calls ggml_barrier unless the node was the
// last one:
//
//     for (node_n = 0; node_n < cgraph->n_nodes ...; node_n++) {
//         ...compute node_n (node_n += n_fused)...
//         if (node_n + 1 < cgraph->n_nodes) ggml_barrier(tp);
//     }
//     ggml_barrier(tp);
//
// A probe on that `call` instruction fires exactly once per computed step and thread, and the
// kernel emulates a call (no single-step), so it is the cheapest way to time every operator on
// every thread: one hit per step instead of entry and return of the operator function plus entry
// and return of every ggml_barrier (operators call it too). The register the compiler compared
// with cgraph->n_nodes just before the call holds node_n + 1: the index of the first node after
// the step, which names the step's nodes exactly, fusion included. The conditional branch after
// the comparison tells the two calls apart: compilers lay the loop out either way, with the branch
// skipping the loop's call when the loop is done (and leading to the final barrier), or jumping
// to the loop's call while nodes remain (and falling through to the final barrier). Which one it
// is follows from the branch's condition and the comparison's operand order.
//
// Found by decoding machine code (iced-x86), never by fixed addresses: the call's target is
// ggml_barrier itself or its PLT stub (resolved through .rela.plt), the comparison is
// `cmp REG32, [BASE + n_nodes offset]`, and nothing between it and the call may write REG.
// x86-64 only; elsewhere, or when the pattern is absent, the caller falls back to operator
// function probes.
import { createRequire } from "node:module";
import type * as Iced from "iced-x86";
import { STEP_REGISTERS, type StepRegister } from "../abi/constants.js";
import type { ElfFile } from "./elf.js";
import { WRITES } from "./probeSite.js";

const iced = createRequire(import.meta.url)("iced-x86") as typeof Iced;
const {
  ConditionCode,
  Decoder,
  DecoderOptions,
  FlowControl,
  InstructionInfoFactory,
  Mnemonic,
  OpKind,
  Register,
  RegisterExt,
} = iced;

export interface StepSite {
  /** virtual address and file offset of the `call ggml_barrier` */
  address: number;
  fileOffset: number;
  /** the loop's barrier (register holds node_n + 1) or the final one after the loop */
  final: boolean;
  /** where node_n + 1 is at the call; null for the final barrier */
  register: StepRegister | null;
  /** the function it was found in, when the symbol table names it */
  function: string | null;
}

const MAX_LOOKBACK = 12;
const MAX_FUNCTION_BYTES = 256 * 1024;
const RELA_SIZE = 24;
const SYMBOL_SIZE = 24;
const R_X86_64_JUMP_SLOT = 7;
const R_X86_64_GLOB_DAT = 6;

/** Addresses a call to `symbol` can target: the function itself and its PLT stubs. */
export function callTargetsOf(elf: ElfFile, symbol: string): Set<number> {
  const targets = new Set<number>();
  const own = elf.symbols.get(symbol);
  if (own?.isFunction) targets.add(own.address);
  const slots = gotSlotsOf(elf, symbol);
  if (slots.size === 0) return targets;
  for (const section of elf.sections) {
    if (!/^\.plt(\.sec|\.got)?$/.test(section.name) || section.size === 0) continue;
    const bytes = elf.bytesAt(section.address, section.size);
    if (!bytes) continue;
    const decoder = new Decoder(64, bytes, DecoderOptions.None);
    decoder.ip = BigInt(section.address);
    let stubStart = section.address;
    while (decoder.canDecode) {
      const ins = decoder.decode();
      const ip = Number(ins.ip);
      // PLT stubs are 16 bytes (8 in .plt.got); a stub starts where an endbr64 or the jump is
      if (ins.mnemonic === Mnemonic.Endbr64) stubStart = ip;
      else if (
        ins.mnemonic === Mnemonic.Jmp &&
        ins.op0Kind === OpKind.Memory &&
        ins.memoryBase === Register.RIP
      ) {
        // iced resolves a RIP-relative displacement to the absolute address
        const slot = Number(ins.memoryDisplacement);
        const start = stubStart > ip - 8 && stubStart <= ip ? stubStart : ip;
        if (slots.has(slot)) targets.add(start);
      }
      ins.free();
    }
    decoder.free();
  }
  return targets;
}

/** GOT slots the dynamic linker fills with `symbol`'s address (.rela.plt and .rela.dyn). */
function gotSlotsOf(elf: ElfFile, symbol: string): Set<number> {
  const slots = new Set<number>();
  const dynsym = elf.sections.find((s) => s.name === ".dynsym");
  const dynstr = dynsym ? elf.sections[dynsym.link] : undefined;
  if (!dynsym || !dynstr || dynsym.address === 0) return slots;
  const symbols = elf.bytesAt(dynsym.address, dynsym.size);
  const names = elf.bytesAt(dynstr.address, dynstr.size);
  if (!symbols || !names) return slots;
  const nameOf = (index: number): string | null => {
    const at = index * SYMBOL_SIZE;
    if (at + SYMBOL_SIZE > symbols.length) return null;
    const offset = symbols.readUInt32LE(at);
    const end = names.indexOf(0, offset);
    return names.toString("latin1", offset, end < 0 ? names.length : end);
  };
  for (const section of elf.sections) {
    if (section.name !== ".rela.plt" && section.name !== ".rela.dyn") continue;
    const entries = section.address ? elf.bytesAt(section.address, section.size) : null;
    if (!entries) continue;
    for (let at = 0; at + RELA_SIZE <= entries.length; at += RELA_SIZE) {
      const info = entries.readBigUInt64LE(at + 8);
      const type = Number(info & 0xffffffffn);
      if (type !== R_X86_64_JUMP_SLOT && type !== R_X86_64_GLOB_DAT) continue;
      if (nameOf(Number(info >> 32n)) === symbol) slots.add(Number(entries.readBigUInt64LE(at)));
    }
  }
  return slots;
}

function writesRegister(
  factory: Iced.InstructionInfoFactory,
  ins: Iced.Instruction,
  full: number,
): boolean {
  const info = factory.info(ins);
  let written = false;
  for (const used of info.usedRegisters() as Iced.UsedRegister[]) {
    if (WRITES.has(used.access) && RegisterExt.fullRegister(used.register) === full) written = true;
    used.free();
  }
  info.free();
  return written;
}

interface NNodesComparison {
  /** the 64-bit register compared with cgraph->n_nodes */
  register: number;
  /** `cmp REG, [n_nodes]` (true) or `cmp [n_nodes], REG` (false): which way the flags read */
  registerFirst: boolean;
}

/** `cmp REG32, [BASE + off]` or `cmp [BASE + off], REG32`, or null. */
function comparedWithNNodes(ins: Iced.Instruction, nNodesOffset: number): NNodesComparison | null {
  if (ins.mnemonic !== Mnemonic.Cmp || ins.opCount !== 2) return null;
  let reg: number | null = null;
  let regAt = -1;
  let memory = false;
  for (let i = 0; i < 2; i++) {
    const kind = ins.opKind(i);
    if (kind === OpKind.Register) [reg, regAt] = [ins.opRegister(i), i];
    else if (kind === OpKind.Memory) memory = true;
  }
  if (reg === null || !memory || ins.memoryIndex !== Register.None) return null;
  if (Number(ins.memoryDisplacement) !== nNodesOffset || ins.memorySize !== 3 /* DWord */)
    return null;
  if (!RegisterExt.isGPR32(reg)) return null;
  return { register: RegisterExt.fullRegister(reg), registerFirst: regAt === 0 };
}

/**
 * Whether a conditional branch after the comparison is taken while nodes remain (REG, which holds
 * node_n + 1, below n_nodes), taken when the loop is done, or neither for certain (null).
 */
function takenWhileNodesRemain(condition: number, registerFirst: boolean): boolean | null {
  // flags of REG - n_nodes (register first) or n_nodes - REG
  const below = registerFirst
    ? [ConditionCode.l, ConditionCode.b]
    : [ConditionCode.g, ConditionCode.a];
  const notBelow = registerFirst
    ? [ConditionCode.ge, ConditionCode.ae]
    : [ConditionCode.le, ConditionCode.be];
  if (below.includes(condition)) return true;
  if (notBelow.includes(condition)) return false;
  return null;
}

function stepRegisterName(full: number): StepRegister | null {
  const name = Register[full] as string | undefined;
  return (STEP_REGISTERS as readonly string[]).includes(name ?? "") ? (name as StepRegister) : null;
}

interface Code {
  name: string | null;
  start: number;
  size: number;
}

/** The functions to search: the compute loop by name, else every executable section. */
function codeToSearch(elf: ElfFile): Code[] {
  const named = [...elf.symbols.values()]
    .filter((s) => s.isFunction && /^ggml_graph_compute_thread(\.|$)/.test(s.name) && s.size > 0)
    .map((s) => ({ name: s.name, start: s.address, size: Math.min(s.size, MAX_FUNCTION_BYTES) }));
  if (named.length > 0) return named;
  return elf.sections
    .filter((s) => s.name === ".text" && s.address !== 0)
    .map((s) => ({ name: null, start: s.address, size: s.size }));
}

export function findStepSites(elf: ElfFile, nNodesOffset: number): StepSite[] {
  // an OpenMP build that inlines ggml_barrier calls GOMP_barrier there, behind a check for one thread
  const barrier = new Set([
    ...callTargetsOf(elf, "ggml_barrier"),
    ...callTargetsOf(elf, "GOMP_barrier"),
  ]);
  if (barrier.size === 0) return [];
  const sites = new Map<number, StepSite>();
  const factory = new InstructionInfoFactory();
  for (const code of codeToSearch(elf)) {
    const bytes = elf.bytesAt(code.start, code.size);
    if (!bytes) continue;
    const decoder = new Decoder(64, bytes, DecoderOptions.None);
    decoder.ip = BigInt(code.start);
    const window: Iced.Instruction[] = [];
    const loops: LoopSite[] = [];
    while (decoder.canDecode) {
      const ins = decoder.decode();
      if (ins.flowControl === FlowControl.ConditionalBranch) {
        const found = loopSite(elf, window, ins, nNodesOffset, barrier, code, factory);
        if (found) loops.push(found);
      }
      window.push(ins);
      if (window.length > MAX_LOOKBACK) window.shift()!.free();
    }
    for (const ins of window) ins.free();
    decoder.free();
    const add = (address: number, final: boolean, register: StepRegister | null): void => {
      const fileOffset = elf.fileOffsetOf(address);
      if (fileOffset === null || sites.has(address)) return;
      sites.set(address, { address, fileOffset, final, register, function: code.name });
    };
    for (const loop of loops) {
      add(loop.loopCall, false, loop.register);
      if (!sites.get(loop.finalCall)) add(loop.finalCall, true, null);
    }
  }
  factory.free();
  const found = [...sites.values()].sort((a, b) => a.address - b.address);
  // Without the function's name, a lone match in all of .text could be something else: only an
  // unambiguous one (one loop site) is trusted.
  const unnamed = found.filter((s) => s.function === null);
  if (unnamed.filter((s) => !s.final).length > 1) return found.filter((s) => s.function !== null);
  return found;
}

/** A comparison with n_nodes and its branch, and which barrier call each way leads to. */
interface LoopSite {
  /** the call made while nodes remain: node_n + 1 is in `register` there */
  loopCall: number;
  /** the call the loop's exit leads to */
  finalCall: number;
  register: StepRegister;
}

/** How far a path from the branch may run, jumps included, before it reaches the call. */
const MAX_PATH = 8;

/**
 * The barrier call a path from `ip` reaches: straight-line instructions and unconditional jumps
 * within the code, none writing `register` (when given), then `call ggml_barrier` (or an inlined
 * ggml_barrier's `call GOMP_barrier`, which a conditional branch may skip, and nothing else).
 * Null when the path does anything else first.
 */
function followToBarrier(
  elf: ElfFile,
  ip: number,
  barrier: ReadonlySet<number>,
  code: Code,
  register: number | null,
  factory: Iced.InstructionInfoFactory,
): number | null {
  const skips: number[] = [];
  for (let step = 0; step < MAX_PATH; step++) {
    if (ip < code.start || ip >= code.start + code.size) return null;
    const bytes = elf.bytesAt(ip, Math.min(16, code.start + code.size - ip));
    if (!bytes) return null;
    const decoder = new Decoder(64, bytes, DecoderOptions.None);
    decoder.ip = BigInt(ip);
    const ins = decoder.decode();
    decoder.free();
    try {
      if (ins.flowControl === FlowControl.Call) {
        const isBarrier =
          ins.op0Kind === OpKind.NearBranch64 && barrier.has(Number(ins.nearBranchTarget));
        return isBarrier && skips.every((to) => to === Number(ins.nextIP)) ? ip : null;
      }
      if (
        ins.flowControl === FlowControl.UnconditionalBranch &&
        ins.op0Kind === OpKind.NearBranch64
      )
        ip = Number(ins.nearBranchTarget);
      else if (ins.flowControl === FlowControl.ConditionalBranch) {
        skips.push(Number(ins.nearBranchTarget));
        ip = Number(ins.nextIP);
      } else if (ins.flowControl !== FlowControl.Next) return null;
      else if (register !== null && writesRegister(factory, ins, register)) return null;
      else ip = Number(ins.nextIP);
    } finally {
      ins.free();
    }
  }
  return null;
}

/**
 * At a conditional branch: `cmp REG, [X + n_nodes]` shortly before it, with nothing between that
 * writes REG or leaves the straight line; then the way taken while nodes remain (REG, node_n + 1,
 * below n_nodes) must reach a barrier call without writing REG (the loop's call), and the other
 * way a barrier call too (the final one). Compilers lay this out either way round, with the calls
 * right after the branch or behind a jump.
 */
function loopSite(
  elf: ElfFile,
  window: readonly Iced.Instruction[],
  branch: Iced.Instruction,
  nNodesOffset: number,
  barrier: ReadonlySet<number>,
  code: Code,
  factory: Iced.InstructionInfoFactory,
): LoopSite | null {
  for (let i = window.length - 1; i >= 0; i--) {
    const compared = comparedWithNNodes(window[i]!, nNodesOffset);
    if (compared === null) continue;
    const between = window.slice(i + 1);
    if (between.some((ins) => ins.flowControl !== FlowControl.Next)) return null;
    if (between.some((ins) => writesRegister(factory, ins, compared.register))) return null;
    const remain = takenWhileNodesRemain(branch.conditionCode, compared.registerFirst);
    const register = stepRegisterName(compared.register);
    if (remain === null || register === null) return null;
    const [whileRemain, whenDone] = remain
      ? [Number(branch.nearBranchTarget), Number(branch.nextIP)]
      : [Number(branch.nextIP), Number(branch.nearBranchTarget)];
    const loopCall = followToBarrier(elf, whileRemain, barrier, code, compared.register, factory);
    const finalCall = followToBarrier(elf, whenDone, barrier, code, null, factory);
    if (loopCall === null || finalCall === null || loopCall === finalCall) return null;
    return { loopCall, finalCall, register };
  }
  return null;
}
