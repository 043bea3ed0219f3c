/**
 * The read-only slice of sysfs the contract exposes: symlinks and directory listings, computed
 * from live kernel state on every call. Paths are walked as the kernel walks them: a symlink in
 * the middle of a path is followed (so `<bdf>/iommu_group/devices` is the group's listing), and
 * readdir follows a final symlink too; readlink does not.
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
    const at = this.walk(path, false);
    const target = this.linkTarget(at);
    if (target !== undefined) return target;
    // A directory or a file that is not a link answers EINVAL, like readlink(2).
    return this.dirs.get(at)?.() ? fail('EINVAL') : fail('ENOENT');
  }

  readdir(path: string): string[] {
    const at = this.walk(path, false);
    const entries = this.dirs.get(this.walk(path, true))?.();
    if (entries) return [...entries];
    // A link whose target lies outside the modelled view (a driver directory) is not listed.
    return this.linkTarget(at) !== undefined ? fail('ENOTDIR') : fail('ENOENT');
  }

  private linkTarget(path: string): string | undefined {
    return this.links.get(path)?.();
  }

  /** The path with every symlink component resolved (the last one only if `followLast`). */
  private walk(path: string, followLast: boolean): string {
    const parts = normalize(path).split('/').filter(Boolean);
    let current = '';
    while (parts.length) {
      const next = `${current}/${parts.shift()!}`;
      const target = parts.length || followLast ? this.linkTarget(next) : undefined;
      if (target === undefined) {
        current = next;
        continue;
      }
      // Relative targets resolve against the link's directory; the rest of the path follows.
      const base = target.startsWith('/') ? [] : current.split('/').filter(Boolean);
      const resolved: string[] = [];
      for (const part of [...base, ...target.split('/')]) {
        if (part === '..') resolved.pop();
        else if (part && part !== '.') resolved.push(part);
      }
      parts.unshift(...resolved);
      current = '';
    }
    return current || '/';
  }
}

function normalize(path: string): string {
  const trimmed = path.replace(/\/+/g, '/');
  return trimmed.length > 1 ? trimmed.replace(/\/$/, '') : trimmed;
}
