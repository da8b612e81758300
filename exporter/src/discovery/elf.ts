// SPDX-License-Identifier: Apache-2.0
// ELF64 reading: section headers (is there debug info?) and symbol tables (which functions can
// a uprobe attach to, and where). Hand-written because only a few fields of two tables are
// needed and the maintained npm ELF parsers read whole files into memory.
import { closeSync, openSync, readSync } from "node:fs";

export interface ElfSection {
  name: string;
  /** sh_type: 1 PROGBITS, 2 SYMTAB, 8 NOBITS, 11 DYNSYM ... */
  type: number;
  offset: number;
  size: number;
  /** sh_link: for symbol tables, the index of their string table */
  link: number;
  /** sh_addr: the section's virtual address */
  address: number;
}

export class ElfFormatError extends Error {
  override name = "ElfFormatError";
}

/** Reads `length` bytes at `offset`; throws when the file is shorter. */
export type ByteReader = (offset: number, length: number) => Buffer;

const ELF_HEADER_SIZE = 64;
const SECTION_HEADER_SIZE = 64;
const SHN_XINDEX = 0xffff;
const MAX_SECTIONS = 1_000_000;

function toSafeNumber(value: bigint, what: string, label: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ElfFormatError(`${label}: ${what} ${value} is beyond any real file size`);
  }
  return Number(value);
}

/**
 * Section headers of an ELF64 little-endian file (every target we profile is x86-64 or
 * aarch64 Linux). Reads only the header, the section header table and the section name table,
 * so it stays cheap on libraries carrying hundreds of megabytes of DWARF.
 */
export function parseElfSections(read: ByteReader, label = "file"): ElfSection[] {
  const header = read(0, ELF_HEADER_SIZE);
  if (header.readUInt32BE(0) !== 0x7f454c46) throw new ElfFormatError(`${label}: not an ELF file`);
  if (header[4] !== 2) throw new ElfFormatError(`${label}: not a 64-bit ELF file`);
  if (header[5] !== 1) throw new ElfFormatError(`${label}: not a little-endian ELF file`);
  const sectionTableOffset = toSafeNumber(header.readBigUInt64LE(0x28), "e_shoff", label);
  const entrySize = header.readUInt16LE(0x3a);
  let sectionCount = header.readUInt16LE(0x3c);
  let namesIndex = header.readUInt16LE(0x3e);
  if (sectionTableOffset === 0) return [];
  if (entrySize < SECTION_HEADER_SIZE) {
    throw new ElfFormatError(
      `${label}: section header size ${entrySize} is below ${SECTION_HEADER_SIZE}`,
    );
  }
  // With 0xff00 sections or more, the real count and name-table index live in section 0.
  if (sectionCount === 0 || namesIndex === SHN_XINDEX) {
    const first = read(sectionTableOffset, SECTION_HEADER_SIZE);
    if (sectionCount === 0)
      sectionCount = toSafeNumber(first.readBigUInt64LE(32), "section count", label);
    if (namesIndex === SHN_XINDEX) namesIndex = first.readUInt32LE(40);
  }
  // A corrupt count would otherwise size one enormous read; real files have a few hundred.
  if (sectionCount > MAX_SECTIONS) {
    throw new ElfFormatError(`${label}: ${sectionCount} sections is not a plausible ELF file`);
  }
  const table = read(sectionTableOffset, sectionCount * entrySize);
  const raw = Array.from({ length: sectionCount }, (_, index) => {
    const at = index * entrySize;
    return {
      nameOffset: table.readUInt32LE(at),
      type: table.readUInt32LE(at + 4),
      address: toSafeNumber(table.readBigUInt64LE(at + 16), "sh_addr", label),
      link: table.readUInt32LE(at + 40),
      offset: toSafeNumber(table.readBigUInt64LE(at + 24), "sh_offset", label),
      size: toSafeNumber(table.readBigUInt64LE(at + 32), "sh_size", label),
    };
  });
  const namesSection = raw[namesIndex];
  if (!namesSection) {
    throw new ElfFormatError(
      `${label}: e_shstrndx ${namesIndex} is not among ${sectionCount} sections`,
    );
  }
  const names = read(namesSection.offset, namesSection.size);
  return raw.map(({ nameOffset, type, offset, size, link, address }) => {
    const end = names.indexOf(0, nameOffset);
    return {
      name: names.toString("latin1", nameOffset, end < 0 ? names.length : end),
      type,
      offset,
      size,
      link,
      address,
    };
  });
}

function fileReader(fd: number, path: string): ByteReader {
  return (offset, length) => {
    const buffer = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const bytes = readSync(fd, buffer, filled, length - filled, offset + filled);
      if (bytes === 0) {
        throw new ElfFormatError(`${path}: truncated (wanted ${length} bytes at offset ${offset})`);
      }
      filled += bytes;
    }
    return buffer;
  };
}

/** parseElfSections on a file on disk. */
export function readElfSections(path: string): ElfSection[] {
  const fd = openSync(path, "r");
  try {
    return parseElfSections(fileReader(fd, path), path);
  } finally {
    closeSync(fd);
  }
}

const SHT_STRTAB = 3;
const NAME_SCAN_CHUNK = 1 << 20;

/**
 * Whether a symbol table of the file names `name` (its string tables hold "\0name\0"): a check
 * that reads the string tables in chunks of 1 MiB, never the symbols, so that the host agent can
 * ask it of every program it sees (some carry hundreds of thousands of symbols) without holding
 * them. A true answer is a candidate for readElf, not a symbol of a given kind.
 */
export function namesSymbol(path: string, name: string): boolean {
  const needle = Buffer.from(`\0${name}\0`, "latin1");
  const fd = openSync(path, "r");
  try {
    const read = fileReader(fd, path);
    const tables = parseElfSections(read, path).filter(
      (s) => s.type === SHT_STRTAB && (s.name === ".dynstr" || s.name === ".strtab"),
    );
    for (const table of tables) {
      // chunks overlap by the needle's length, so that a name across two chunks is found
      for (let at = 0; at < table.size; at += NAME_SCAN_CHUNK - needle.length) {
        const length = Math.min(NAME_SCAN_CHUNK, table.size - at);
        if (read(table.offset + at, length).includes(needle)) return true;
        if (at + length >= table.size) break;
      }
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const SYMBOL_SIZE = 24;

export interface ElfSymbol {
  name: string;
  /** st_value: the symbol's virtual address */
  address: number;
  size: number;
  /** exported (.dynsym) as opposed to only in .symtab */
  exported: boolean;
  isFunction: boolean;
}

export interface ElfFile {
  path: string;
  sections: ElfSection[];
  hasDebugInfo: boolean;
  hasSymbolTable: boolean;
  /** defined symbols by name (.dynsym first, .symtab adds the local ones) */
  symbols: Map<string, ElfSymbol>;
  /** bytes of the file at a virtual address (function entries, to see the probed instruction) */
  bytesAt(address: number, length: number): Buffer | null;
  /** the file offset of a virtual address, or null when no loaded section holds it */
  fileOffsetOf(address: number): number | null;
}

/** Sections and defined symbols of an ELF file. */
export function readElf(path: string): ElfFile {
  const fd = openSync(path, "r");
  try {
    const read = fileReader(fd, path);
    const sections = parseElfSections(read, path);
    const symbols = new Map<string, ElfSymbol>();
    for (const type of [SHT_DYNSYM, SHT_SYMTAB]) {
      for (const table of sections.filter((s) => s.type === type)) {
        const strings = sections[table.link];
        if (!strings || table.size === 0) continue;
        const names = read(strings.offset, strings.size);
        const entries = read(table.offset, table.size);
        for (let at = 0; at + SYMBOL_SIZE <= entries.length; at += SYMBOL_SIZE) {
          const nameOffset = entries.readUInt32LE(at);
          const info = entries[at + 4]!;
          const sectionIndex = entries.readUInt16LE(at + 6);
          const address = Number(entries.readBigUInt64LE(at + 8));
          if (nameOffset === 0 || sectionIndex === 0 || address === 0) continue; // undefined
          const end = names.indexOf(0, nameOffset);
          const name = names.toString("latin1", nameOffset, end < 0 ? names.length : end);
          if (symbols.has(name)) continue;
          const kind = info & 0xf;
          symbols.set(name, {
            name,
            address,
            size: Number(entries.readBigUInt64LE(at + 16)),
            exported: type === SHT_DYNSYM,
            isFunction: kind === STT_FUNC || kind === STT_GNU_IFUNC,
          });
        }
      }
    }
    const loaded = sections.filter((s) => s.address !== 0 && s.type !== 8 /* NOBITS */);
    return {
      path,
      sections,
      hasDebugInfo: sections.some((s) => s.name === ".debug_info"),
      hasSymbolTable: sections.some((s) => s.name === ".symtab"),
      symbols,
      fileOffsetOf(address) {
        const section = loaded.find((s) => address >= s.address && address < s.address + s.size);
        return section ? section.offset + (address - section.address) : null;
      },
      bytesAt(address, length) {
        const section = loaded.find(
          (s) => address >= s.address && address + length <= s.address + s.size,
        );
        if (!section) return null;
        const fd2 = openSync(path, "r");
        try {
          return fileReader(fd2, path)(section.offset + (address - section.address), length);
        } finally {
          closeSync(fd2);
        }
      },
    };
  } finally {
    closeSync(fd);
  }
}
