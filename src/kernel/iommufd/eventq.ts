/**
 * Fault queues (drivers/iommu/iommufd/eventq.c): IOMMU_FAULT_QUEUE_ALLOC makes a FAULT object
 * and an fd through which I/O page faults of HWPTs allocated with FAULT_ID_VALID would be read
 * and answered (semantics.md 7.15).
 *
 * In this machine no device can raise a page request: edu has no PRI capability, so attaching
 * it to a HWPT with a fault queue fails as intel-iommu's IOPF enabling does (ENODEV), and the
 * queue never has anything to read. The fd's read/write checks are the kernel's.
 */
import { fail } from '../../uapi/errno.js';
import {
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  IOMMUFD_PAGE_RESP_INVALID,
  IOMMUFD_PAGE_RESP_SUCCESS,
  type IommuFaultAlloc,
} from '../../uapi/iommufd.js';
import { File } from '../vfs/file.js';
import { O_CLOEXEC, O_RDWR } from '../vfs/syscalls.js';
import type { Task } from '../vfs/task.js';
import { type IommufdCtx, IommufdObject, type Ucmd } from './object.js';

const FAULT_SIZE = iommu_hwpt_pgfault.size;
const RESPONSE_SIZE = iommu_hwpt_page_response.size;

export class IommufdFault extends IommufdObject {
  readonly type = 'FAULT' as const;
  file: FaultFile | null = null;

  destroy(): void {}
}

/** The "[iommufd-pgfault]" file: holds the FAULT object and the context while open. */
export class FaultFile extends File {
  readonly path = 'anon_inode:[iommufd-pgfault]';

  constructor(readonly fault: IommufdFault) {
    super();
    // iommufd_eventq_init(): the file is a user of the object and holds the context.
    fault.users++;
    fault.ctx.file.get();
  }

  /** Whole iommu_hwpt_pgfault records only (ESPIPE); nothing is ever pending here. */
  override read(_task: Task, length: number): Uint8Array {
    if (length % FAULT_SIZE) return fail('ESPIPE');
    return new Uint8Array(0);
  }

  /**
   * Whole iommu_hwpt_page_response records (ESPIPE); a code other than SUCCESS/INVALID is EINVAL,
   * and so is a cookie no delivered fault carries - which is every cookie here.
   */
  override write(_task: Task, data: Uint8Array): number {
    if (data.length % RESPONSE_SIZE) return fail('ESPIPE');
    if (data.length === 0) return 0;
    const response = iommu_hwpt_page_response.decode(data.subarray(0, RESPONSE_SIZE));
    if (response.code !== IOMMUFD_PAGE_RESP_SUCCESS && response.code !== IOMMUFD_PAGE_RESP_INVALID)
      return fail('EINVAL');
    return fail('EINVAL');
  }

  protected override release(): void {
    this.fault.users--;
    this.fault.file = null;
    this.fault.ctx.file.put();
  }
}

/** IOMMU_FAULT_QUEUE_ALLOC (7.15): flags must be 0 (EOPNOTSUPP). */
export function iommufdFaultAlloc(ucmd: Ucmd<IommuFaultAlloc>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.flags) return fail('EOPNOTSUPP');
  const fault = ctx.allocObject(new IommufdFault(ctx));
  const file = new FaultFile(fault);
  file.flags = O_RDWR | O_CLOEXEC;
  fault.file = file;
  let fd: number;
  try {
    fd = task.files.install(file);
  } catch (err) {
    ctx.abortAndDestroy(fault);
    throw err;
  }
  cmd.out_fault_id = fault.id;
  cmd.out_fault_fd = fd;
  try {
    ucmd.respond();
  } catch (err) {
    task.files.close(fd);
    ctx.abortAndDestroy(fault);
    throw err;
  }
  ctx.finalize(fault);
  return 0;
}

/** Whether the context has a fault object (for tests of HWPT fault wiring). */
export function getFault(ctx: IommufdCtx, id: number): IommufdFault {
  return ctx.getObject(id, 'FAULT') as IommufdFault;
}
