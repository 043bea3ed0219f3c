/**
 * memfd_create(2): an anonymous shmem file. Its pages are a RamObject shared by every mapping
 * of the file and by anyone who pins it (iommufd MAP_FILE).
 */
import { fail } from '../../uapi/errno.js';
import { RamObject } from '../../hw/memory.js';
import { File, type FileMapping, type MmapRequest } from './file.js';
import type { Task } from './task.js';

export const MFD_CLOEXEC = 0x1;
export const MFD_ALLOW_SEALING = 0x2;
export const MFD_HUGETLB = 0x4;
export const MFD_NOEXEC_SEAL = 0x8;
export const MFD_EXEC = 0x10;
const MFD_ALL = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
/** NAME_MAX less the "memfd:" prefix. */
const MFD_NAME_MAX = 249;
/** MAX_LFS_FILESIZE on 64-bit. */
const MAX_FILESIZE = 0x7fffffffffffffffn;

export class MemfdFile extends File {
  readonly path: string;
  readonly pages = new RamObject(0);
  private position = 0;

  constructor(name: string, flags: number) {
    super();
    if (flags & ~MFD_ALL || (flags & MFD_NOEXEC_SEAL && flags & MFD_EXEC)) fail('EINVAL');
    if (Buffer.byteLength(name) > MFD_NAME_MAX) fail('EINVAL');
    this.path = `/memfd:${name} (deleted)`;
    this.positional = true;
  }

  get size(): number {
    return this.pages.size;
  }

  override ftruncate(_task: Task, length: bigint): void {
    if (length < 0n || length > MAX_FILESIZE) fail('EINVAL');
    // Larger than this machine could ever back: the emulation's own limit, not the kernel's.
    if (length > BigInt(Number.MAX_SAFE_INTEGER)) fail('EFBIG');
    this.pages.resize(Number(length));
  }

  override pread(_task: Task, length: number, offset: bigint): Uint8Array {
    if (offset < 0n) return fail('EINVAL');
    const at = Number(offset);
    const n = Math.max(0, Math.min(length, this.size - at));
    const out = new Uint8Array(n);
    if (n) this.pages.read(at, out);
    return out;
  }

  override pwrite(_task: Task, data: Uint8Array, offset: bigint): number {
    if (offset < 0n) return fail('EINVAL');
    const at = Number(offset);
    if (at + data.length > Number.MAX_SAFE_INTEGER) return fail('EINVAL');
    if (at + data.length > this.size) this.pages.resize(at + data.length);
    this.pages.write(at, data);
    return data.length;
  }

  override read(task: Task, length: number): Uint8Array {
    const out = this.pread(task, length, BigInt(this.position));
    this.position += out.length;
    return out;
  }

  override write(task: Task, data: Uint8Array): number {
    const n = this.pwrite(task, data, BigInt(this.position));
    this.position += n;
    return n;
  }

  override mmap(_task: Task, request: MmapRequest): FileMapping {
    // MAP_PRIVATE would need copy-on-write; the emulation maps the shared pages either way.
    return { object: this.pages, offset: Number(request.offset) };
  }
}
