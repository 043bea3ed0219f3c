/**
 * The vfio-ts package entry (CONTRACT.md "Package"): the host, the one error type that crosses
 * the system-call boundary, the Linux constants a caller passes to those calls, and the uapi
 * (ioctl numbers, struct layouts, capability chains) under `uapi`.
 */
export { Host } from './host.js';
export type { HostDevice, HostUsage, SpawnOptions } from './host.js';
export type { Topology } from './topology.js';
export { DEFAULT_TOPOLOGY } from './topology.js';
export type { Process, ProcessMemory } from './sys/process.js';
export type { SyscallTracer } from './sys/trace-hook.js';
export { SyscallError, Errno, errnoName, errnoMessage } from './uapi/errno.js';
export type { ErrnoCode } from './uapi/errno.js';
export { StraceTracer } from './cli/trace.js';

export { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK, O_CLOEXEC } from './kernel/vfs/syscalls.js';
export {
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  PROT_EXEC,
  MAP_SHARED,
  MAP_PRIVATE,
  MAP_FIXED,
  MAP_ANONYMOUS,
} from './kernel/vfs/mm.js';
export { EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC } from './kernel/vfs/eventfd.js';

export * as uapi from './uapi/index.js';
