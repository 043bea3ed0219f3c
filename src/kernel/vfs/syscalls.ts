/**
 * The system calls, kernel side: argument checks the VFS makes before a driver sees anything,
 * then the file operation. Every function takes the calling task first.
 */
import { fail } from '../../uapi/errno.js';
import { EventFd, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE } from './eventfd.js';
import { MemfdFile } from './memfd.js';
import {
  anonymousMemory,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  pageAlignUp,
  PROT_WRITE,
  TASK_SIZE,
} from './mm.js';
import { PAGE_SIZE } from '../../hw/memory.js';
import type { File } from './file.js';
import type { Task } from './task.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0x800;
export const O_CLOEXEC = 0x80000;

const MAP_TYPE = 0x0f;
const MAP_SHARED_VALIDATE = 0x03;
/** Every mmap flag of the x86-64 uapi, hugetlb page-size bits (26..31) included. */
const KNOWN_MAP_FLAGS = 0x1ff973 | (0x3f << 26);

/** read/write never move more than this in one call (MAX_RW_COUNT). */
export const MAX_RW_COUNT = 0x7ffff000;

export function sysOpen(task: Task, path: string, flags: number): number {
  const file = task.kernel.openNode(task, path, flags);
  file.flags = flags;
  file.positional = true;
  return task.files.install(file);
}

export function sysClose(task: Task, fd: number): void {
  task.files.close(fd);
}

export function sysDup(task: Task, fd: number): number {
  return task.files.install(task.files.get(fd).get());
}

export function sysIoctl(task: Task, fd: number, request: number, arg: bigint): number {
  return task.files.get(fd).ioctl(task, request >>> 0, arg);
}

/** vfs_read(): EBADF unless the file was opened for reading. */
export function sysRead(task: Task, fd: number, length: number): Uint8Array {
  const file = task.files.get(fd);
  if (!file.fmodeRead) return fail('EBADF');
  return file.read(task, rwCount(length));
}

/** vfs_write(): EBADF unless the file was opened for writing. */
export function sysWrite(task: Task, fd: number, data: Uint8Array): number {
  const file = task.files.get(fd);
  if (!file.fmodeWrite) return fail('EBADF');
  return file.write(task, data.length > MAX_RW_COUNT ? data.subarray(0, MAX_RW_COUNT) : data);
}

/**
 * ksys_pread64(): a negative position (a u64 offset past LLONG_MAX is one) is EINVAL before the
 * fd is even looked up; a file without positions is ESPIPE; then vfs_read(): EBADF unless open
 * for reading, and rw_verify_area() refuses a range whose end passes LLONG_MAX (EINVAL).
 */
export function sysPread(task: Task, fd: number, length: number, offset: bigint): Uint8Array {
  const file = positionalFile(task, fd, offset);
  if (!file.fmodeRead) return fail('EBADF');
  if (offset + BigInt(length) > LLONG_MAX) return fail('EINVAL');
  return file.pread(task, rwCount(length), offset);
}

/** ksys_pwrite64(): the checks of sysPread, with vfs_write()'s FMODE_WRITE. */
export function sysPwrite(task: Task, fd: number, data: Uint8Array, offset: bigint): number {
  const file = positionalFile(task, fd, offset);
  if (!file.fmodeWrite) return fail('EBADF');
  if (offset + BigInt(data.length) > LLONG_MAX) return fail('EINVAL');
  return file.pwrite(task, data.length > MAX_RW_COUNT ? data.subarray(0, MAX_RW_COUNT) : data, offset);
}

const LLONG_MAX = 0x7fff_ffff_ffff_ffffn;

function positionalFile(task: Task, fd: number, offset: bigint): File {
  if (offset < 0n || offset > LLONG_MAX) return fail('EINVAL');
  const file = task.files.get(fd);
  return file.positional ? file : fail('ESPIPE');
}

export function sysMmap(
  task: Task,
  addr: bigint,
  length: bigint,
  prot: number,
  flags: number,
  fd: number,
  offset: bigint,
): bigint {
  // do_mmap(): the checks made before any driver is asked.
  if (length === 0n) return fail('EINVAL');
  if (length < 0n || length > BigInt(TASK_SIZE)) return fail('ENOMEM');
  if (offset < 0n || offset % BigInt(PAGE_SIZE)) return fail('EINVAL');
  // do_mmap(): MAP_TYPE must be SHARED, PRIVATE or SHARED_VALIDATE (which also refuses
  // flags the kernel does not know with EOPNOTSUPP); other prot bits are not looked at.
  const type = flags & MAP_TYPE;
  if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return fail('EINVAL');
  if (type === MAP_SHARED_VALIDATE && flags & ~KNOWN_MAP_FLAGS) return fail('EOPNOTSUPP');
  const len = pageAlignUp(Number(length));
  if (offset + BigInt(len) > 0xffffffffffffffffn) return fail('EOVERFLOW');
  const hint = flags & MAP_FIXED ? Number(addr) : 0;
  if (flags & MAP_FIXED && (addr < 0n || addr >= BigInt(TASK_SIZE))) return fail('ENOMEM');

  if (flags & MAP_ANONYMOUS) {
    return BigInt(task.mm.map(hint, len, prot, flags, anonymousMemory(len), 0));
  }
  const file = task.files.get(fd);
  // do_mmap(): a shared writable mapping needs a file open for writing; any mapping one open
  // for reading.
  if (type !== MAP_PRIVATE && prot & PROT_WRITE && !file.fmodeWrite) return fail('EACCES');
  if (!file.fmodeRead) return fail('EACCES');
  const mapping = file.mmap(task, { length: len, prot, flags, offset });
  return BigInt(task.mm.map(hint, len, prot, flags, mapping.object, mapping.offset, file));
}

export function sysMunmap(task: Task, addr: bigint, length: bigint): void {
  if (addr < 0n || addr % BigInt(PAGE_SIZE) || length <= 0n) return fail('EINVAL');
  if (addr + length > BigInt(TASK_SIZE)) return fail('EINVAL');
  task.mm.unmap(Number(addr), Number(length));
}

export function sysEventfd(task: Task, initval: number, flags: number): number {
  if (flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC)) return fail('EINVAL');
  if (!Number.isInteger(initval) || initval < 0 || initval > 0xffffffff) return fail('EINVAL');
  const file = new EventFd(initval, (flags & EFD_SEMAPHORE) !== 0);
  file.flags = O_RDWR | (flags & (EFD_NONBLOCK | EFD_CLOEXEC));
  return task.files.install(file);
}

export function sysMemfdCreate(task: Task, name: string, flags: number): number {
  const file = new MemfdFile(name, flags);
  file.flags = O_RDWR;
  return task.files.install(file);
}

export function sysFtruncate(task: Task, fd: number, length: bigint): void {
  if (length < 0n) return fail('EINVAL');
  task.files.get(fd).ftruncate(task, length);
}

export function sysReadlink(task: Task, path: string): string {
  const fdLink = /^\/proc\/self\/fd\/(\d+)$/.exec(path);
  if (fdLink) return task.files.get(Number(fdLink[1])).path;
  return task.kernel.sysfs.readlink(path);
}

export function sysReaddir(task: Task, path: string): string[] {
  if (path === '/dev' || path.startsWith('/dev/')) return devtmpfsReaddir(task, path);
  return task.kernel.sysfs.readdir(path);
}

/** /dev and its subdirectories, listed from the registered device nodes. */
function devtmpfsReaddir(task: Task, path: string): string[] {
  const dir = path.replace(/\/+$/, '') + '/';
  const entries = new Set<string>();
  for (const node of task.kernel.nodePaths()) {
    if (node === dir.slice(0, -1)) return fail('ENOTDIR');
    if (node.startsWith(dir)) entries.add(node.slice(dir.length).split('/')[0]!);
  }
  if (entries.size === 0) return fail('ENOENT');
  return [...entries].sort();
}

/** do_exit(): every fd closed, every mapping released. */
export function sysExit(task: Task): void {
  if (task.exited) return;
  task.exited = true;
  task.files.closeAll();
  task.mm.unmapAll();
  task.kernel.tasks.delete(task);
  if (task.mm.lockedVm || task.mm.pinnedVm) task.kernel.zombies.add(task);
}

function rwCount(length: number): number {
  if (!Number.isInteger(length) || length < 0) return fail('EINVAL');
  return Math.min(length, MAX_RW_COUNT);
}
