/**
 * /dev/iommu (drivers/iommu/iommufd/main.c): the file of an iommufd context and the generic
 * ioctl path every command goes through (semantics.md 7.1):
 *
 * 1. nr outside the command table -> the VFIO compat layer (vfio-compat.ts), ENOTTY if unknown;
 * 2. read the u32 `size` (EFAULT);
 * 3. the full request must equal the table's ioctl number (ENOTTY);
 * 4. size < the command's minimum (offsetofend of its last required field) -> EINVAL;
 * 5. copy_struct_from_user: bytes past the kernel struct must be zero (E2BIG), missing bytes
 *    read as zero;
 * 6. the handler, which answers with min(size, sizeof) bytes copied back.
 *
 * The object table and the context live in object.ts; each object kind in its own module.
 */
import { fail } from '../../uapi/errno.js';
import {
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMUFD_CMD_BASE,
  IOMMUFD_CMD_HW_QUEUE_ALLOC,
  iommu_option,
  iommufdIoctlOps,
  type IommufdIoctlOp,
  type IommuDestroy,
  type IommuOption,
} from '../../uapi/iommufd.js';
import { iocNr } from '../../uapi/ioctl.js';
import type { Kernel } from '../kernel.js';
import { VFIO_GROUP_IOMMUFD, type VfioGroupIommufd, type VfioGroupIommufdFile } from '../vfio/group.js';
import { File, type FileMapping, type MmapRequest } from '../vfs/file.js';
import { MAP_SHARED, PROT_EXEC } from '../vfs/mm.js';
import type { Task } from '../vfs/task.js';
import { iommufdGetHwInfo } from './device.js';
import { iommufdFaultAlloc } from './eventq.js';
import {
  iommufdHwptAlloc,
  iommufdHwptGetDirtyBitmap,
  iommufdHwptInvalidate,
  iommufdHwptSetDirtyTracking,
} from './hw-pagetable.js';
import {
  iommufdIoasAlloc,
  iommufdIoasAllowIovas,
  iommufdIoasChangeProcess,
  iommufdIoasCopy,
  iommufdIoasIovaRanges,
  iommufdIoasMap,
  iommufdIoasMapFile,
  iommufdIoasOption,
  iommufdIoasUnmap,
  iommufdOptionRlimitMode,
} from './ioas.js';
import { codecOf } from './codec.js';
import { checkZeroedUser, copyFromUserInto, IommufdCtx, Ucmd } from './object.js';
import { IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, type AccountMode } from './pages.js';
import { IommufdVfioHandle, iommufdVfioIoas, iommufdVfioIoctl } from './vfio-compat.js';
import { iommufdHwQueueAlloc, iommufdVdeviceAlloc, iommufdVeventqAlloc, iommufdViommuAlloc } from './viommu.js';

export const IOMMUFD_PATH = '/dev/iommu';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Handler = (ucmd: Ucmd<any>) => number;

interface TableEntry {
  readonly op: IommufdIoctlOp;
  readonly execute: Handler;
}

/** IOMMU_DESTROY (7.2). */
function iommufdDestroy(ucmd: Ucmd<IommuDestroy>): number {
  ucmd.ctx.destroyId(ucmd.cmd.id);
  return 0;
}

/**
 * IOMMU_OPTION (7.9): __reserved and unknown options are EOPNOTSUPP before any lookup. On
 * success only val64 is written back (also for SET).
 */
function iommufdOption(ucmd: Ucmd<IommuOption>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.__reserved) return fail('EOPNOTSUPP');
  if (cmd.option_id === IOMMU_OPTION_RLIMIT_MODE) iommufdOptionRlimitMode(ctx, task, cmd);
  else if (cmd.option_id === IOMMU_OPTION_HUGE_PAGES) iommufdIoasOption(ctx, cmd);
  else return fail('EOPNOTSUPP');
  const val = new Uint8Array(8);
  new DataView(val.buffer).setBigUint64(0, cmd.val64, true);
  task.copyToUser(ucmd.arg + BigInt(iommu_option.offsetof('val64')), val);
  return 0;
}

/**
 * The command table, indexed by nr - IOMMUFD_CMD_BASE. It ends at HW_QUEUE_ALLOC: the no-iommu
 * IOAS_NOIOMMU_GET_PA command only exists in kernels built for no-iommu, which this is not, so
 * it falls through to the compat layer like any unknown number.
 */
const TABLE: ReadonlyArray<TableEntry | undefined> = buildTable([
  [iommufdIoctlOps.IOMMU_DESTROY, iommufdDestroy],
  [iommufdIoctlOps.IOMMU_IOAS_ALLOC, iommufdIoasAlloc],
  [iommufdIoctlOps.IOMMU_IOAS_ALLOW_IOVAS, iommufdIoasAllowIovas],
  [iommufdIoctlOps.IOMMU_IOAS_COPY, iommufdIoasCopy],
  [iommufdIoctlOps.IOMMU_IOAS_IOVA_RANGES, iommufdIoasIovaRanges],
  [iommufdIoctlOps.IOMMU_IOAS_MAP, iommufdIoasMap],
  [iommufdIoctlOps.IOMMU_IOAS_UNMAP, iommufdIoasUnmap],
  [iommufdIoctlOps.IOMMU_OPTION, iommufdOption],
  [iommufdIoctlOps.IOMMU_VFIO_IOAS, iommufdVfioIoas],
  [iommufdIoctlOps.IOMMU_HWPT_ALLOC, iommufdHwptAlloc],
  [iommufdIoctlOps.IOMMU_GET_HW_INFO, iommufdGetHwInfo],
  [iommufdIoctlOps.IOMMU_HWPT_SET_DIRTY_TRACKING, iommufdHwptSetDirtyTracking],
  [iommufdIoctlOps.IOMMU_HWPT_GET_DIRTY_BITMAP, iommufdHwptGetDirtyBitmap],
  [iommufdIoctlOps.IOMMU_HWPT_INVALIDATE, iommufdHwptInvalidate],
  [iommufdIoctlOps.IOMMU_FAULT_QUEUE_ALLOC, iommufdFaultAlloc],
  [iommufdIoctlOps.IOMMU_IOAS_MAP_FILE, iommufdIoasMapFile],
  [iommufdIoctlOps.IOMMU_VIOMMU_ALLOC, iommufdViommuAlloc],
  [iommufdIoctlOps.IOMMU_VDEVICE_ALLOC, iommufdVdeviceAlloc],
  [iommufdIoctlOps.IOMMU_IOAS_CHANGE_PROCESS, iommufdIoasChangeProcess],
  [iommufdIoctlOps.IOMMU_VEVENTQ_ALLOC, iommufdVeventqAlloc],
  [iommufdIoctlOps.IOMMU_HW_QUEUE_ALLOC, iommufdHwQueueAlloc],
]);

function buildTable(entries: ReadonlyArray<readonly [IommufdIoctlOp, Handler]>): Array<TableEntry | undefined> {
  const table: Array<TableEntry | undefined> = new Array(IOMMUFD_CMD_HW_QUEUE_ALLOC - IOMMUFD_CMD_BASE + 1).fill(
    undefined,
  );
  for (const [op, execute] of entries) table[iocNr(op.ioctl) - IOMMUFD_CMD_BASE] = { op, execute };
  return table;
}

/** The command names by table index, for tracing (`iommufdIoctlName`). */
export function iommufdIoctlName(request: number): string | undefined {
  const entry = TABLE[iocNr(request) - IOMMUFD_CMD_BASE];
  return entry && entry.op.ioctl === request >>> 0 ? entry.op.name : undefined;
}

/** iommufd_fops_ioctl(). */
export function iommufdFopsIoctl(ctx: IommufdCtx, task: Task, request: number, arg: bigint): number {
  const nr = iocNr(request);
  const entry = nr >= IOMMUFD_CMD_BASE ? TABLE[nr - IOMMUFD_CMD_BASE] : undefined;
  if (nr < IOMMUFD_CMD_BASE || nr - IOMMUFD_CMD_BASE >= TABLE.length) return iommufdVfioIoctl(ctx, task, request, arg);
  const userSize = getU32(task, arg);
  // An unassigned slot, or a number with size/direction bits: -ENOIOCTLCMD, seen as ENOTTY.
  if (!entry || entry.op.ioctl !== request >>> 0) return fail('ENOTTY');
  const op = entry.op;
  if (userSize < op.minSize) return fail('EINVAL');
  // copy_struct_from_user() into the command's scratch buffer: the tail check, the copy of
  // min(size, sizeof) bytes, zeros for the rest.
  const codec = codecOf(op.struct);
  const input = codec.input;
  if (userSize > op.size) checkZeroedUser(task, arg + BigInt(op.size), userSize - op.size);
  if (userSize >= op.size) {
    copyFromUserInto(task, arg, input);
  } else {
    copyFromUserInto(task, arg, input.subarray(0, userSize));
    input.fill(0, userSize);
  }
  return entry.execute(new Ucmd(ctx, task, arg, userSize, op.struct, codec.decodeInput()));
}

const sizeScratch = new Uint8Array(4);
const sizeView = new DataView(sizeScratch.buffer);

/** get_user() of the leading u32 `size`. */
function getU32(task: Task, arg: bigint): number {
  copyFromUserInto(task, arg, sizeScratch);
  return sizeView.getUint32(0, true);
}

/** An open /dev/iommu (or /dev/vfio/vfio when iommufd provides it). */
export class IommufdFile extends File implements VfioGroupIommufdFile {
  readonly ctx: IommufdCtx;
  declare [VFIO_GROUP_IOMMUFD]: VfioGroupIommufd;

  constructor(
    kernel: Kernel,
    readonly path: string,
    accountMode: AccountMode,
  ) {
    super();
    this.ctx = new IommufdCtx(kernel, this, accountMode);
    // How VFIO_GROUP_SET_CONTAINER and BIND_IOMMUFD recognise an iommufd (iommufd_ctx_from_file).
    Object.defineProperty(this, VFIO_GROUP_IOMMUFD, { value: new IommufdVfioHandle(this.ctx) });
  }

  override ioctl(task: Task, request: number, arg: bigint): number {
    return iommufdFopsIoctl(this.ctx, task, request, arg);
  }

  /** No read/write ops: EINVAL for read, write, pread and pwrite alike (not ESPIPE). */
  override pread(): Uint8Array {
    return fail('EINVAL');
  }

  override pwrite(): number {
    return fail('EINVAL');
  }

  /**
   * iommufd_fops_mmap(): only offsets handed out for HW queues, of which this IOMMU has none:
   * MAP_PRIVATE is EINVAL, PROT_EXEC EPERM, anything else ENXIO (semantics.md 7.17).
   */
  override mmap(_task: Task, request: MmapRequest): FileMapping {
    if (!(request.flags & MAP_SHARED)) return fail('EINVAL');
    if (request.prot & PROT_EXEC) return fail('EPERM');
    return fail('ENXIO');
  }

  /** iommufd_fops_release(): every object goes, leaves first. */
  protected override release(): void {
    this.ctx.release();
  }
}

/** iommufd_fops_open() for /dev/iommu: per-user accounting by default. */
export function openIommufd(kernel: Kernel): IommufdFile {
  return new IommufdFile(kernel, IOMMUFD_PATH, IOPT_PAGES_ACCOUNT_USER);
}

/**
 * iommufd_fops_open() for /dev/vfio/vfio (CONFIG_IOMMUFD_VFIO_CONTAINER): the context starts in
 * the VFIO-compatible per-mm accounting mode. For Topology.vfioContainer === 'iommufd'.
 */
export function openIommufdVfioContainer(kernel: Kernel): IommufdFile {
  return new IommufdFile(kernel, '/dev/vfio/vfio', IOPT_PAGES_ACCOUNT_MM);
}

/** Registers /dev/iommu on the kernel. */
export function registerIommufd(kernel: Kernel): void {
  kernel.registerNode(IOMMUFD_PATH, () => openIommufd(kernel));
}

/** Registers /dev/vfio/vfio as iommufd's VFIO compat container. */
export function registerIommufdVfioContainer(kernel: Kernel): void {
  kernel.registerNode('/dev/vfio/vfio', () => openIommufdVfioContainer(kernel));
}

/** iommufd_ctx_from_file(): the context behind an open iommufd, or null for any other file. */
export function iommufdCtxFromFile(file: File): IommufdCtx | null {
  return file instanceof IommufdFile ? file.ctx : null;
}
