/**
 * Proves the uapi declarations against the real headers: a generated C program that includes
 * linux/vfio.h and linux/iommufd.h prints sizeof/offsetof/type of every declared struct field
 * and the value of every declared constant and ioctl number, and the headers are parsed for
 * every struct, member, macro and enum value so nothing can be left undeclared.
 * Skips only when the reference headers (../shared/reference) or gcc are absent.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Struct, type Field } from '../../src/uapi/layout.js';
import * as vfio from '../../src/uapi/vfio.js';
import * as iommufd from '../../src/uapi/iommufd.js';
import * as capability from '../../src/uapi/capability.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const referenceDir = resolve(repoRoot, '../shared/reference');
const HEADERS = ['vfio.h', 'iommufd.h'] as const;

/** Declared in vfio.ts from the vfio-pci driver (vfio_pci_core.h); the uapi headers must not have them. */
const NOT_IN_HEADERS = new Set([
  'VFIO_PCI_OFFSET_SHIFT',
  'VFIO_PCI_OFFSET_MASK',
  'VFIO_PCI_INDEX_TO_OFFSET',
  'VFIO_PCI_OFFSET_TO_INDEX',
]);
const INCLUDE_GUARDS = new Set(['_UAPIVFIO_H', '_UAPI_IOMMUFD_H']);
/** Function-like macros of vfio.h (migration v1), declared as functions and evaluated on these inputs. */
const FUNCTION_MACROS = ['VFIO_DEVICE_STATE_VALID', 'VFIO_DEVICE_STATE_IS_ERROR', 'VFIO_DEVICE_STATE_SET_ERROR'];

const modules = { vfio, iommufd } as const;
type Exports = Record<string, unknown>;

interface Declared {
  structs: Map<string, Struct<object>>;
  constants: Map<string, number | bigint | string>;
  functions: Map<string, (...args: never[]) => unknown>;
}

function declared(): Declared {
  const out: Declared = { structs: new Map(), constants: new Map(), functions: new Map() };
  for (const mod of Object.values(modules) as Exports[]) {
    for (const [name, value] of Object.entries(mod)) {
      if (value instanceof Struct) out.structs.set(name, value as Struct<object>);
      else if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') {
        out.constants.set(name, value);
      } else if (typeof value === 'function' && /^[A-Z_][A-Za-z0-9_]*$/.test(name)) {
        out.functions.set(name, value as (...args: never[]) => unknown);
      }
    }
  }
  return out;
}

// ---- header parsing (for coverage: what the headers declare that we must declare too) ----

interface HeaderFacts {
  structs: Map<string, { members: string[]; flexible: string[] }>;
  objectMacros: Set<string>;
  functionMacros: Set<string>;
  enumValues: Set<string>;
}

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
}

function parseHeader(text: string, facts: HeaderFacts): void {
  const code = stripComments(text);
  for (const m of code.matchAll(/^[ \t]*#[ \t]*define[ \t]+(\w+)(\()?/gm)) {
    if (INCLUDE_GUARDS.has(m[1]!)) continue;
    (m[2] ? facts.functionMacros : facts.objectMacros).add(m[1]!);
  }
  // Drop preprocessor lines (with continuations) so struct bodies only hold declarations.
  const body = code.replace(/^[ \t]*#(?:[^\n]*\\\n)*[^\n]*$/gm, ' ');
  for (const m of body.matchAll(/\benum\b\s*\w*\s*\{([^}]*)\}/g)) {
    for (const item of m[1]!.split(',')) {
      const id = /^\s*([A-Za-z_]\w*)/.exec(item);
      if (id) facts.enumValues.add(id[1]!);
    }
  }
  for (const m of body.matchAll(/^struct\s+(\w+)\s*\{/gm)) {
    let depth = 1;
    let i = m.index! + m[0].length;
    const start = i;
    for (; depth > 0; i++) depth += body[i] === '{' ? 1 : body[i] === '}' ? -1 : 0;
    const members: string[] = [];
    const flexible: string[] = [];
    for (const raw of body.slice(start, i - 1).split(';')) {
      const decl = raw
        .replace(/\b(?:union|struct)\s*\{/g, ' ')
        .replace(/[{}]/g, ' ')
        .replace(/__counted_by\s*\([^)]*\)/g, ' ')
        .trim();
      if (!decl) continue;
      const name = /(\w+)\s*(\[\s*(\w*)\s*\])?\s*$/.exec(decl);
      assert.ok(name, `cannot parse member "${decl}" of struct ${m[1]}`);
      (name[2] !== undefined && name[3] === '' ? flexible : members).push(name[1]!);
    }
    facts.structs.set(m[1]!, { members, flexible });
  }
}

// ---- the generated C program ----

function cString(s: string): string {
  return JSON.stringify(s);
}

function fieldLines(struct: Struct<object>, f: Field): string[] {
  const S = struct.name;
  const member = `(((struct ${S} *)0)->${f.name})`;
  const head = `${cString(S)}, ${cString(f.name)}, offsetof(struct ${S}, ${f.name}), sizeof(${member})`;
  if (f.struct) {
    const same = `__builtin_types_compatible_p(__typeof__(${member}), struct ${f.struct.name})`;
    return [`printf("field\\t%s\\t%s\\t%zu\\t%zu\\tstruct:%d\\n", ${head}, ${same});`];
  }
  const elem = f.count ? `${member}[0]` : member;
  return [
    `printf("field\\t%s\\t%s\\t%zu\\t%zu\\t%s:%zu:%d\\n", ${head}, KIND(${elem}), sizeof(${elem}), __builtin_classify_type(${elem}));`,
  ];
}

/** The flexible array member's offset and element type, printed under the key `S.name[]`. */
function flexibleLines(struct: Struct<object>): string[] {
  const flex = struct.flexible;
  if (!flex) return [];
  const S = struct.name;
  const elem = `(((struct ${S} *)0)->${flex.name}[0])`;
  const head = `${cString(S)}, ${cString(flex.name + '[]')}, offsetof(struct ${S}, ${flex.name}), sizeof(${elem})`;
  const type = flex.struct
    ? `printf("struct:%d\\n", __builtin_types_compatible_p(__typeof__(${elem}), struct ${flex.struct.name}));`
    : `printf("%s:%zu:%d\\n", KIND(${elem}), sizeof(${elem}), __builtin_classify_type(${elem}));`;
  return [`printf("field\\t%s\\t%s\\t%zu\\t%zu\\t", ${head});`, type];
}

/** Only members the header has are printed, so a stray declaration fails one assertion, not the compile. */
function buildProgram(d: Declared, header: HeaderFacts): string {
  const lines: string[] = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    '#include <linux/vfio.h>',
    '#include <linux/iommufd.h>',
    '#define KIND(x) _Generic((x), __u8: "u8", __s8: "s8", __u16: "u16", __s16: "s16", __u32: "u32", \\',
    '  __s32: "s32", __u64: "u64", __s64: "s64", default: "other")',
    'int main(void) {',
  ];
  for (const s of d.structs.values()) {
    const c = header.structs.get(s.name);
    if (!c) continue;
    lines.push(
      `printf("struct\\t%s\\t%zu\\t%zu\\n", ${cString(s.name)}, sizeof(struct ${s.name}), _Alignof(struct ${s.name}));`,
    );
    for (const f of s.fields) if (c.members.includes(f.name)) lines.push(...fieldLines(s, f));
    if (s.flexible && c.flexible.includes(s.flexible.name)) lines.push(...flexibleLines(s));
  }
  for (const [name, value] of d.constants) {
    if (NOT_IN_HEADERS.has(name)) continue;
    if (typeof value === 'string') lines.push(`printf("string\\t%s\\t%s\\n", ${cString(name)}, ${name});`);
    else lines.push(`printf("const\\t%s\\t%zu\\t%lld\\n", ${cString(name)}, sizeof(${name}), (long long)(${name}));`);
  }
  for (const name of NOT_IN_HEADERS) {
    lines.push(`#ifdef ${name}`, `printf("defined\\t%s\\n", ${cString(name)});`, '#endif');
  }
  for (const name of FUNCTION_MACROS) {
    for (let state = 0; state < 16; state++) {
      lines.push(`printf("fn\\t%s\\t%d\\t%lld\\n", ${cString(name)}, ${state}, (long long)${name}(${state}));`);
    }
  }
  const minsz = (label: string, struct: string, last: string): string =>
    `printf("minsz\\t%s\\t%zu\\n", ${cString(label)}, offsetof(struct ${struct}, ${last}) + sizeof(((struct ${struct} *)0)->${last}));`;
  for (const [key, rule] of Object.entries(vfio.vfioMinsz)) lines.push(minsz(key, rule.struct.name, rule.last));
  for (const [key, op] of Object.entries(iommufd.iommufdIoctlOps)) lines.push(minsz(key, op.struct.name, op.last));
  lines.push('return 0;', '}');
  return lines.join('\n') + '\n';
}

// ---- compile, run, parse ----

interface CFacts {
  structs: Map<string, { size: number; align: number }>;
  fields: Map<string, { offset: number; size: number; type: string }>;
  constants: Map<string, { size: number; value: bigint }>;
  strings: Map<string, string>;
  defined: Set<string>;
  fn: Map<string, bigint>;
  minsz: Map<string, number>;
}

type Outcome = { skip: string } | { header: HeaderFacts; c: CFacts; d: Declared };

function run(): Outcome {
  for (const h of HEADERS) {
    if (!existsSync(join(referenceDir, h))) return { skip: `reference header ${join(referenceDir, h)} not found` };
  }
  const gcc = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  if (gcc.error || gcc.status !== 0) return { skip: 'gcc not available' };

  const header: HeaderFacts = {
    structs: new Map(),
    objectMacros: new Set(),
    functionMacros: new Set(),
    enumValues: new Set(),
  };
  for (const h of HEADERS) parseHeader(readFileSync(join(referenceDir, h), 'utf8'), header);

  const d = declared();
  const dir = mkdtempSync(join(tmpdir(), 'vfio-ts-c-layout-'));
  try {
    mkdirSync(join(dir, 'linux'));
    for (const h of HEADERS) copyFileSync(join(referenceDir, h), join(dir, 'linux', h));
    writeFileSync(join(dir, 'check.c'), buildProgram(d, header));
    const exe = join(dir, 'check');
    const cc = spawnSync('gcc', ['-std=gnu11', `-I${dir}`, '-D__counted_by(x)=', '-D__user=', 'check.c', '-o', exe], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(cc.status, 0, `gcc failed:\n${cc.stderr.slice(0, 4000)}`);
    const out = spawnSync(exe, { encoding: 'utf8' });
    assert.equal(out.status, 0, `check program failed:\n${out.stderr}`);
    return { header, c: parseOutput(out.stdout), d };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseOutput(stdout: string): CFacts {
  const c: CFacts = {
    structs: new Map(),
    fields: new Map(),
    constants: new Map(),
    strings: new Map(),
    defined: new Set(),
    fn: new Map(),
    minsz: new Map(),
  };
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    const [kind, a, b, x, y, z] = line.split('\t') as [string, string, string, string, string, string];
    if (kind === 'struct') c.structs.set(a, { size: Number(b), align: Number(x) });
    else if (kind === 'field') c.fields.set(`${a}.${b}`, { offset: Number(x), size: Number(y), type: z });
    else if (kind === 'const') c.constants.set(a, { size: Number(b), value: BigInt(x) });
    else if (kind === 'string') c.strings.set(a, b);
    else if (kind === 'defined') c.defined.add(a);
    else if (kind === 'fn') c.fn.set(`${a}(${b})`, BigInt(x));
    else if (kind === 'minsz') c.minsz.set(a, Number(b));
  }
  return c;
}

let outcome: Outcome | undefined;
function facts(t: TestContext): Extract<Outcome, { c: CFacts }> | undefined {
  outcome ??= run();
  if ('skip' in outcome) {
    t.skip(outcome.skip);
    return undefined;
  }
  return outcome;
}

// ---- the checks ----

test('every struct of the headers is declared, with exactly the C members', (t) => {
  const f = facts(t);
  if (!f) return;
  assert.deepEqual([...f.d.structs.keys()].sort(), [...f.header.structs.keys()].sort());
  for (const [exportName, s] of f.d.structs) {
    assert.equal(s.name, exportName, `export ${exportName} names struct ${s.name}`);
    const c: { members: string[]; flexible: string[] } = f.header.structs.get(s.name)!;
    assert.deepEqual(s.fields.map((x) => x.name).sort(), [...c.members].sort(), `${s.name}: fields vs C members`);
    assert.deepEqual(s.flexible ? [s.flexible.name] : [], c.flexible, `${s.name}: flexible array member`);
  }
});

/** Checks a C member's element type against a declared field or flexible array element. */
function assertType(
  where: string,
  declared: { type: string; struct?: Struct<object> },
  elementSize: number,
  cType: string,
): void {
  if (declared.struct) {
    assert.equal(cType, 'struct:1', `${where} is a struct ${declared.struct.name}`);
    return;
  }
  const [kind, cElementSize, typeClass] = cType.split(':') as [string, string, string];
  assert.equal(elementSize, Number(cElementSize), `element size of ${where}`);
  if (kind === 'other') {
    // A user pointer (vfio_bitmap.data): 8 bytes on x86-64, carried as a u64.
    assert.equal(Number(typeClass), 5, `${where} is neither a fixed-width integer nor a pointer`);
    assert.equal(declared.type, 'u64', `${where} is a pointer`);
  } else {
    assert.equal(declared.type, kind, `type of ${where}`);
  }
}

test('every declared struct matches C byte for byte: sizeof, alignment, offsets, sizes, types', (t) => {
  const f = facts(t);
  if (!f) return;
  for (const s of f.d.structs.values()) {
    const cs = f.c.structs.get(s.name);
    assert.ok(cs, `struct ${s.name} missing from C output`);
    assert.equal(s.size, cs.size, `sizeof(struct ${s.name})`);
    assert.equal(s.align, cs.align, `_Alignof(struct ${s.name})`);
    for (const field of s.fields) {
      const where = `${s.name}.${field.name}`;
      const cf = f.c.fields.get(where);
      assert.ok(cf, `${where} missing from C output`);
      assert.equal(field.offset, cf.offset, `offsetof(${where})`);
      assert.equal(field.size, cf.size, `sizeof(${where})`);
      assertType(where, field, field.count ? field.size / field.count : field.size, cf.type);
    }
    if (s.flexible) {
      const where = `${s.name}.${s.flexible.name}[]`;
      const cf = f.c.fields.get(where);
      assert.ok(cf, `${where} missing from C output`);
      assert.equal(s.flexible.offset, cf.offset, `offsetof(${where})`);
      assert.equal(s.flexible.elementSize, cf.size, `element size of ${where}`);
      assertType(where, s.flexible, s.flexible.elementSize, cf.type);
    }
  }
});

test('every macro and enum value of the headers is declared', (t) => {
  const f = facts(t);
  if (!f) return;
  const missing = [...f.header.objectMacros, ...f.header.enumValues].filter((n) => !f.d.constants.has(n));
  assert.deepEqual(missing, []);
  const missingFns = [...f.header.functionMacros].filter((n) => !f.d.functions.has(n));
  assert.deepEqual(missingFns, []);
  assert.deepEqual([...f.header.functionMacros].sort(), [...FUNCTION_MACROS].sort());
});

test('every declared constant and ioctl number has its C value', (t) => {
  const f = facts(t);
  if (!f) return;
  let checked = 0;
  for (const [name, value] of f.d.constants) {
    if (NOT_IN_HEADERS.has(name)) continue;
    if (typeof value === 'string') {
      assert.equal(value, f.c.strings.get(name), name);
      checked++;
      continue;
    }
    const c: { size: number; value: bigint } | undefined = f.c.constants.get(name);
    assert.ok(c, `${name} missing from C output`);
    const bits: number = c.size * 8;
    const v = BigInt(value);
    assert.ok(v >= -(1n << BigInt(bits - 1)) && v < 1n << BigInt(bits), `${name} = ${v} does not fit its C type`);
    // Same bits in the C type's width: (1 << 31) and -1 are declared as the u32 values fields hold.
    assert.equal(BigInt.asUintN(bits, v), BigInt.asUintN(bits, c.value), `${name}: ${v} vs C ${c.value}`);
    checked++;
  }
  assert.ok(checked > 300, `only ${checked} constants checked`);
});

test('function-like macros agree with C on every state', (t) => {
  const f = facts(t);
  if (!f) return;
  for (const name of FUNCTION_MACROS) {
    const fn = f.d.functions.get(name) as (state: number) => number | boolean;
    for (let state = 0; state < 16; state++) {
      const ts = fn(state);
      const c: bigint = f.c.fn.get(`${name}(${state})`)!;
      assert.equal(BigInt.asUintN(32, BigInt(Number(ts))), BigInt.asUintN(32, c), `${name}(${state})`);
    }
  }
});

test('constants taken from the vfio-pci driver are not in the uapi headers', (t) => {
  const f = facts(t);
  if (!f) return;
  assert.deepEqual([...f.c.defined], []);
  for (const name of NOT_IN_HEADERS) assert.ok(f.d.constants.has(name) || f.d.functions.has(name), name);
});

test('minsz tables are offsetofend of the named field in C', (t) => {
  const f = facts(t);
  if (!f) return;
  for (const [key, rule] of Object.entries(vfio.vfioMinsz)) assert.equal(rule.minsz, f.c.minsz.get(key), key);
  for (const [key, op] of Object.entries(iommufd.iommufdIoctlOps)) {
    assert.equal(op.minSize, f.c.minsz.get(key), `${key} min_size`);
    assert.equal(op.size, f.c.structs.get(op.struct.name)!.size, `${key} size`);
  }
});

test('capability.ts re-exports the very same layouts', () => {
  for (const [name, value] of Object.entries(capability)) {
    if (value instanceof Struct) assert.equal(value, (vfio as Exports)[name], name);
  }
});
