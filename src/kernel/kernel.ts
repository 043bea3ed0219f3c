/**
 * The emulated kernel: device nodes, sysfs, users and tasks over one machine. Subsystems
 * (vfio, iommufd) register their nodes here when the host is built.
 */
import { fail } from '../uapi/errno.js';
import type { Machine } from '../hw/machine.js';
import { UserStruct, type Cred } from './vfs/cred.js';
import type { File } from './vfs/file.js';
import { Sysfs } from './vfs/sysfs.js';
import { Task } from './vfs/task.js';

/** Opens a character device node for a task: the driver's ->open(). */
export type NodeOpener = (task: Task, flags: number) => File;

export class Kernel {
  readonly sysfs = new Sysfs();
  readonly tasks = new Set<Task>();
  /** Exited tasks whose mm still carries locked/pinned pages: leaks, kept visible. */
  readonly zombies = new Set<Task>();
  /**
   * Internal errors caught at the system-call boundary (the emulation's own bugs, the kernel's
   * WARN/oops). The caller saw EFAULT; tests assert this stays empty.
   */
  readonly oopses: Error[] = [];
  private readonly nodes = new Map<string, NodeOpener>();
  private readonly users = new Map<number, UserStruct>();
  private nextPid = 1000;

  constructor(readonly machine: Machine) {}

  registerNode(path: string, open: NodeOpener): void {
    this.nodes.set(path, open);
  }

  nodePaths(): string[] {
    return [...this.nodes.keys()];
  }

  openNode(task: Task, path: string, flags: number): File {
    const open = this.nodes.get(path) ?? fail('ENOENT');
    return open(task, flags);
  }

  user(uid: number): UserStruct {
    let user = this.users.get(uid);
    if (!user) {
      user = new UserStruct(uid);
      this.users.set(uid, user);
    }
    return user;
  }

  allUsers(): IterableIterator<UserStruct> {
    return this.users.values();
  }

  spawn(cred: Cred, rlimitMemlock: bigint): Task {
    const task = new Task(this, this.nextPid++, cred, this.user(cred.uid), rlimitMemlock);
    this.tasks.add(task);
    return task;
  }
}
