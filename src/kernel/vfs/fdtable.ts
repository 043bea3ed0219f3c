/**
 * The per-process fd table: lowest free number first, as POSIX requires.
 */
import { fail } from '../../uapi/errno.js';
import type { File } from './file.js';

/** RLIMIT_NOFILE's usual soft limit. */
export const NR_OPEN_DEFAULT = 1024;

export class FdTable {
  private readonly slots: (File | undefined)[] = [];
  private openCount = 0;

  constructor(private readonly limit = NR_OPEN_DEFAULT) {}

  /** Installs the three standard streams, so the first file a program opens is fd 3. */
  installStdio(open: () => File): void {
    for (let fd = 0; fd < 3; fd++) this.install(open());
  }

  get size(): number {
    return this.openCount;
  }

  /** Installs `file` (taking over the caller's reference) at the lowest free fd. */
  install(file: File): number {
    let fd = this.slots.indexOf(undefined);
    if (fd < 0) fd = this.slots.length;
    if (fd >= this.limit) {
      file.put();
      return fail('EMFILE');
    }
    this.slots[fd] = file;
    this.openCount++;
    return fd;
  }

  /** fdget(): the file behind `fd`, or EBADF. */
  get(fd: number): File {
    const file = Number.isInteger(fd) && fd >= 0 ? this.slots[fd] : undefined;
    return file ?? fail('EBADF');
  }

  lookup(fd: number): File | undefined {
    return Number.isInteger(fd) && fd >= 0 ? this.slots[fd] : undefined;
  }

  close(fd: number): void {
    const file = this.get(fd);
    this.slots[fd] = undefined;
    this.openCount--;
    while (this.slots.length && this.slots[this.slots.length - 1] === undefined) this.slots.pop();
    file.put();
  }

  closeAll(): void {
    for (let fd = this.slots.length - 1; fd >= 0; fd--) if (this.slots[fd]) this.close(fd);
  }

  *entries(): IterableIterator<[number, File]> {
    for (let fd = 0; fd < this.slots.length; fd++) {
      const file = this.slots[fd];
      if (file) yield [fd, file];
    }
  }
}
