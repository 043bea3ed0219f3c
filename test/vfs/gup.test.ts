/**
 * Pinning and locked-memory accounting helpers (kernel/vfs/gup.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host.js';
import { MmioObject, PAGE_SIZE } from '../../src/hw/memory.js';
import {
  accountLockedVm,
  decUserLockedVm,
  incUserLockedVm,
  lockedVmWouldExceed,
  pinnableVma,
  pinUserPages,
} from '../../src/kernel/vfs/gup.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../src/kernel/vfs/mm.js';

const PAGE = PAGE_SIZE;

function pieces(mm: Parameters<typeof pinUserPages>[0], addr: number, length: number, write: boolean): string[] {
  const out: string[] = [];
  pinUserPages(mm, addr, length, write, (object, offset, len, pfnmap, at) => {
    out.push(`${object.kind}@${offset}+${len}${pfnmap ? ' pfnmap' : ''} at ${at - addr}`);
  });
  return out;
}

test('pinUserPages walks VMAs in order and names the objects behind them', () => {
  const proc = Host.create().spawn();
  const mm = proc.task.mm;
  const base = Number(proc.mmap(3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS));
  const window = new MmioObject(PAGE, { mmioRead: () => {}, mmioWrite: () => {} });
  mm.map(base + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | 0x10, window, 0);
  assert.deepEqual(pieces(mm, base, 3 * PAGE, true), [
    `ram@0+${PAGE} at 0`,
    `mmio@0+${PAGE} pfnmap at ${PAGE}`,
    `ram@${2 * PAGE}+${PAGE} at ${2 * PAGE}`,
  ]);
  proc.exit();
});

test('pinUserPages faults: holes, missing permission (write looks at VM_WRITE only), outside user space, past the object', () => {
  const proc = Host.create().spawn();
  const mm = proc.task.mm;
  const ro = Number(proc.mmap(PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS));
  const wo = Number(proc.mmap(PAGE, PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS));
  assert.throws(() => pieces(mm, ro, PAGE, true), { code: 'EFAULT' });
  assert.equal(pieces(mm, ro, PAGE, false).length, 1);
  assert.equal(pieces(mm, wo, PAGE, true).length, 1);
  assert.throws(() => pieces(mm, wo, PAGE, false), { code: 'EFAULT' });
  assert.throws(() => pieces(mm, 0x1000, PAGE, false), { code: 'EFAULT' });
  assert.throws(() => pieces(mm, 0x7ffffffff000, 2 * PAGE, false), { code: 'EFAULT' });
  assert.throws(() => pieces(mm, -PAGE, PAGE, false), { code: 'EFAULT' });
  assert.throws(() => pieces(mm, ro + 1, PAGE, false), RangeError, 'unaligned is a caller bug');

  const memfd = proc.memfdCreate('m');
  proc.ftruncate(memfd, 2 * PAGE);
  const shared = Number(proc.mmap(2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
  proc.ftruncate(memfd, PAGE);
  const seen: number[] = [];
  assert.throws(() => pinUserPages(mm, shared, 2 * PAGE, true, (_o, _off, len) => void seen.push(len)), {
    code: 'EFAULT',
  });
  assert.deepEqual(seen, [PAGE], 'the page inside the object is visited before the fault');
  assert.equal(pinnableVma(mm, shared, 2 * PAGE, true), undefined);
  assert.ok(pinnableVma(mm, shared, PAGE, true));
  assert.equal(pinnableVma(mm, ro, PAGE, true), undefined);
  assert.equal(pinnableVma(mm, ro, 2 * PAGE, false), undefined);
  proc.exit();
});

test('accountLockedVm: ENOMEM past RLIMIT_MEMLOCK unless bypassed, uncharge never goes negative', () => {
  const host = Host.create();
  const proc = host.spawn({ capabilities: [], rlimitMemlock: 2 * PAGE });
  const { task } = proc;
  accountLockedVm(task.mm, 2, task, false);
  assert.equal(lockedVmWouldExceed(task.mm, 1, task), true);
  assert.throws(() => accountLockedVm(task.mm, 1, task, false), { code: 'ENOMEM' });
  assert.equal(task.mm.lockedVm, 2);
  accountLockedVm(task.mm, 5, task, true);
  assert.equal(task.mm.lockedVm, 7);
  accountLockedVm(task.mm, -10, task, false);
  assert.equal(task.mm.lockedVm, 0);
  proc.exit();
});

test('incUserLockedVm / decUserLockedVm charge the user', () => {
  const host = Host.create();
  const user = host.kernel.user(1000);
  incUserLockedVm(user, 3, 4);
  assert.throws(() => incUserLockedVm(user, 2, 4), { code: 'ENOMEM' });
  assert.equal(user.lockedVm, 3);
  decUserLockedVm(user, 5);
  assert.equal(user.lockedVm, 0);
});
