/**
 * Linux x86-64 errno numbers and the one error type that crosses the system-call boundary.
 */

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  ERANGE: 34,
  ENOMSG: 42,
  EOVERFLOW: 75,
  EBADFD: 77,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
} as const;

export type ErrnoCode = keyof typeof Errno;

const codeByNumber = new Map<number, ErrnoCode>(Object.entries(Errno).map(([code, n]) => [n, code as ErrnoCode]));

const messages: Partial<Record<ErrnoCode, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  EMFILE: 'Too many open files',
  ENOTTY: 'Inappropriate ioctl for device',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  ESPIPE: 'Illegal seek',
  ERANGE: 'Numerical result out of range',
  ENOMSG: 'No message of desired type',
  EOVERFLOW: 'Value too large for defined data type',
  EBADFD: 'File descriptor in bad state',
  EMSGSIZE: 'Message too long',
  EOPNOTSUPP: 'Operation not supported',
  EADDRINUSE: 'Address already in use',
};

export function errnoName(errno: number): string {
  return codeByNumber.get(errno) ?? `E${errno}`;
}

export function errnoMessage(errno: number): string {
  const code = codeByNumber.get(errno);
  return (code && messages[code]) ?? `Unknown error ${errno}`;
}

const brand = Symbol.for('vfio-ts.SyscallError');

/**
 * A failed system call: what userspace sees as -1 with errno set.
 * `instanceof` works across copies of the package through the shared symbol brand.
 */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;

  constructor(errno: number, syscall = '', detail?: string) {
    const code = errnoName(errno);
    super(`${syscall ? syscall + ': ' : ''}${code} (${errnoMessage(errno)})${detail ? ': ' + detail : ''}`);
    this.name = 'SyscallError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }

  get [brand](): true {
    return true;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }
}

/** Throws the errno: the kernel side's `return -EINVAL`. */
export function fail(code: ErrnoCode, detail?: string): never {
  throw new SyscallError(Errno[code], '', detail);
}
