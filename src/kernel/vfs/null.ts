/**
 * /dev/null: what a spawned process has on fds 0-2 (the emulation has no terminal).
 */
import { File } from './file.js';
import type { Task } from './task.js';

export class NullFile extends File {
  readonly path = '/dev/null';

  constructor() {
    super();
    this.flags = 2; // O_RDWR, as a terminal on the standard streams would be
  }

  override read(_task: Task, _length: number): Uint8Array {
    return new Uint8Array(0);
  }

  override write(_task: Task, data: Uint8Array): number {
    return data.length;
  }
}
