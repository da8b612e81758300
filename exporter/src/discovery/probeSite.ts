// SPDX-License-Identifier: Apache-2.0
// Where a uprobe on a function goes. The x86 kernel emulates a few instructions at a probe (push
// reg, jmp, nop) and single-steps every other one out of line, at many times the cost a hit
// (docs/cli.md "Functions" has both measured). The entry
// of a function is not always such an instruction (endbr64 in CET builds, a mov or lea in others),
// so the probe moves to the first emulated instruction on the entry's straight path, provided that
// every instruction before it leaves the argument registers and the stack pointer as they were
// (the BPF handlers read the arguments, a return probe hijacks the return address at [rsp]) and
// that nothing else branches to it. A conditional branch may be passed over only when it is an
// early return. x86 decoding is done by iced-x86: instruction lengths and register effects are
// not something to guess.
import { createRequire } from "node:module";
import type * as Iced from "iced-x86";
import type { ElfFile } from "./elf.js";

const iced = createRequire(import.meta.url)("iced-x86") as typeof Iced;
const {
  Decoder,
  DecoderOptions,
  FlowControl,
  InstructionInfoFactory,
  Mnemonic,
  OpAccess,
  OpKind,
  Register,
  RegisterExt,
} = iced;

export interface ProbeSite {
  /** file offset of the probed instruction */
  fileOffset: number;
  /** bytes from the function's entry to the probed instruction */
  delta: number;
  /** the kernel emulates the probed instruction (cheap) rather than single-stepping it */
  emulated: boolean;
  /** the probed instruction's mnemonic, for diagnostics */
  instruction: string;
}

/** How far into a function to look for an emulated instruction. */
const MAX_SKIPPED = 8;
const MAX_DECODE_BYTES = 64 * 1024;

const ARGUMENT_REGISTERS = new Set<number>([
  Register.RDI,
  Register.RSI,
  Register.RDX,
  Register.RCX,
  Register.R8,
  Register.R9,
  Register.RSP,
]);
/** Operand accesses that change a register (iced OpAccess). */
export const WRITES: ReadonlySet<number> = new Set<number>([
  OpAccess.Write,
  OpAccess.CondWrite,
  OpAccess.ReadWrite,
  OpAccess.ReadCondWrite,
]);

function isEmulated(ins: Iced.Instruction): boolean {
  if (ins.mnemonic === Mnemonic.Push) return ins.op0Kind === OpKind.Register;
  if (ins.mnemonic === Mnemonic.Nop) return true;
  return ins.mnemonic === Mnemonic.Jmp && ins.flowControl === FlowControl.UnconditionalBranch;
}

function writesArgumentsOrStack(info: Iced.InstructionInfo): boolean {
  for (const used of info.usedRegisters() as Iced.UsedRegister[]) {
    const written =
      WRITES.has(used.access) && ARGUMENT_REGISTERS.has(RegisterExt.fullRegister(used.register));
    used.free();
    if (written) return true;
  }
  return false;
}

/** The probe site of `symbol` in `elf`, or null when it is not a function with bytes in the file. */
export function findProbeSite(elf: ElfFile, symbol: string): ProbeSite | null {
  const s = elf.symbols.get(symbol);
  if (!s || !s.isFunction) return null;
  const entryOffset = elf.fileOffsetOf(s.address);
  const size = Math.min(s.size > 0 ? s.size : 64, MAX_DECODE_BYTES);
  const bytes = elf.bytesAt(s.address, size) ?? elf.bytesAt(s.address, 16);
  if (!bytes || entryOffset === null) return null;

  const decoder = new Decoder(64, bytes, DecoderOptions.None);
  decoder.ip = BigInt(s.address);
  const instructions: Iced.Instruction[] = [];
  while (decoder.canDecode) instructions.push(decoder.decode());
  decoder.free();
  const branchTargets = new Set<bigint>();
  for (const ins of instructions) {
    if (
      ins.flowControl === FlowControl.ConditionalBranch ||
      ins.flowControl === FlowControl.UnconditionalBranch
    ) {
      branchTargets.add(ins.nearBranchTarget);
    }
  }
  const byIp = new Map(instructions.map((ins) => [ins.ip, ins]));
  const factory = new InstructionInfoFactory();
  const site = (ins: Iced.Instruction, emulated: boolean): ProbeSite => {
    const delta = Number(ins.ip - BigInt(s.address));
    return {
      fileOffset: entryOffset + delta,
      delta,
      emulated,
      instruction: Mnemonic[ins.mnemonic] ?? "?",
    };
  };
  let chosen: ProbeSite | null = null;
  for (let i = 0; i < Math.min(instructions.length, MAX_SKIPPED); i++) {
    const ins = instructions[i]!;
    if (isEmulated(ins) && (i === 0 || !branchTargets.has(ins.ip))) {
      chosen = site(ins, true);
      break;
    }
    // may the probe move past this instruction?
    if (ins.flowControl === FlowControl.ConditionalBranch) {
      const target = byIp.get(ins.nearBranchTarget);
      if (target?.flowControl !== FlowControl.Return) break; // only early returns
      continue;
    }
    if (ins.flowControl !== FlowControl.Next) break;
    const info = factory.info(ins);
    const clobbers = ins.isStackInstruction || writesArgumentsOrStack(info);
    info.free();
    if (clobbers) break;
  }
  chosen ??= instructions[0] ? site(instructions[0], false) : null;
  factory.free();
  for (const ins of instructions) ins.free();
  return chosen;
}
