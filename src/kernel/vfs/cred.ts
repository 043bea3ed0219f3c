/**
 * Credentials and the per-user state that outlives any one process (user_struct).
 */

export const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_IPC_LOCK',
  'CAP_NET_ADMIN',
  'CAP_SYS_ADMIN',
  'CAP_SYS_RAWIO',
  'CAP_SYS_RESOURCE',
] as const;

export interface Cred {
  readonly uid: number;
  readonly caps: ReadonlySet<string>;
}

/** user_struct: locked memory is charged here when accounting is per user. */
export class UserStruct {
  /** Pages charged (user->locked_vm). */
  lockedVm = 0;

  constructor(readonly uid: number) {}
}
