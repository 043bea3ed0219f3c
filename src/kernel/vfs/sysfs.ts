/**
 * The read-only slice of sysfs the contract exposes: symlinks and directory listings, computed
 * from live kernel state on every call.
 */
import { fail } from '../../uapi/errno.js';

type Provider<T> = () => T;

export class Sysfs {
  private readonly links = new Map<string, Provider<string | undefined>>();
  private readonly dirs = new Map<string, Provider<string[] | undefined>>();

  link(path: string, target: Provider<string | undefined>): void {
    this.links.set(path, target);
  }

  dir(path: string, entries: Provider<string[] | undefined>): void {
    this.dirs.set(path, entries);
  }

  readlink(path: string): string {
    const target = this.links.get(normalize(path))?.();
    if (target !== undefined) return target;
    // A directory or a file that is not a link answers EINVAL, like readlink(2).
    return this.dirs.get(normalize(path))?.() ? fail('EINVAL') : fail('ENOENT');
  }

  readdir(path: string): string[] {
    const entries = this.dirs.get(normalize(path))?.();
    if (entries) return [...entries];
    return this.links.get(normalize(path))?.() !== undefined ? fail('ENOTDIR') : fail('ENOENT');
  }
}

function normalize(path: string): string {
  const trimmed = path.replace(/\/+/g, '/');
  return trimmed.length > 1 ? trimmed.replace(/\/$/, '') : trimmed;
}
