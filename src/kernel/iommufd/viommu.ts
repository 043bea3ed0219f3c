/**
 * vIOMMU objects (drivers/iommu/iommufd/viommu.c, eventq.c): VIOMMU_ALLOC, VDEVICE_ALLOC,
 * VEVENTQ_ALLOC and HW_QUEUE_ALLOC (semantics.md 7.16).
 *
 * intel-iommu implements no vIOMMU (no get_viommu_size / viommu_init), and this VT-d model has
 * no nesting parent to build one on, so no VIOMMU object can exist: each command answers with
 * the checks it makes before needing one, then the error its missing vIOMMU produces.
 */
import { fail } from '../../uapi/errno.js';
import {
  IOMMU_HW_QUEUE_TYPE_DEFAULT,
  IOMMU_VEVENTQ_TYPE_DEFAULT,
  IOMMU_VIOMMU_TYPE_DEFAULT,
  type IommuHwQueueAlloc,
  type IommuVdeviceAlloc,
  type IommuVeventqAlloc,
  type IommuViommuAlloc,
} from '../../uapi/iommufd.js';
import { getDevice } from './device.js';
import { ULONG_MAX } from './io-pagetable.js';
import type { IommufdCtx, Ucmd } from './object.js';

/** iommufd_get_viommu(): ENOENT - there are none. */
function getViommu(ctx: IommufdCtx, id: number): never {
  ctx.getObject(id, 'VIOMMU');
  return fail('ENOENT');
}

/** IOMMU_VIOMMU_ALLOC: the device's IOMMU driver has no vIOMMU ops (EOPNOTSUPP). */
export function iommufdViommuAlloc(ucmd: Ucmd<IommuViommuAlloc>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.flags || cmd.type === IOMMU_VIOMMU_TYPE_DEFAULT) return fail('EOPNOTSUPP');
  getDevice(ctx, cmd.dev_id);
  return fail('EOPNOTSUPP');
}

/** IOMMU_VDEVICE_ALLOC. */
export function iommufdVdeviceAlloc(ucmd: Ucmd<IommuVdeviceAlloc>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.virt_id > ULONG_MAX) return fail('EINVAL');
  return getViommu(ctx, cmd.viommu_id);
}

/** IOMMU_VEVENTQ_ALLOC. */
export function iommufdVeventqAlloc(ucmd: Ucmd<IommuVeventqAlloc>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.flags || cmd.__reserved || cmd.type === IOMMU_VEVENTQ_TYPE_DEFAULT) return fail('EOPNOTSUPP');
  if (!cmd.veventq_depth) return fail('EINVAL');
  return getViommu(ctx, cmd.viommu_id);
}

/** IOMMU_HW_QUEUE_ALLOC. */
export function iommufdHwQueueAlloc(ucmd: Ucmd<IommuHwQueueAlloc>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.flags || cmd.type === IOMMU_HW_QUEUE_TYPE_DEFAULT) return fail('EOPNOTSUPP');
  if (!cmd.length) return fail('EINVAL');
  if (cmd.nesting_parent_iova + cmd.length - 1n > ULONG_MAX) return fail('EOVERFLOW');
  return getViommu(ctx, cmd.viommu_id);
}
