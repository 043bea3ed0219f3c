// HW page tables and dirty tracking (semantics.md 7.11-7.13, 7.15, 7.16): HWPT_ALLOC, NEST_PARENT
// on a paging-only VT-d, SET_DIRTY_TRACKING / GET_DIRTY_BITMAP backed by device writes,
// HWPT_INVALIDATE, fault queues and the vIOMMU commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EduDriver, EDU_DMA_BUFFER } from '../../src/cli/edu-driver.js';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from '../../src/hw/pci/regs.js';
import { MAP_SHARED } from '../../src/kernel/vfs/mm.js';
import {
  IOMMU_DESTROY,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_HW_QUEUE_ALLOC,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_VDEVICE_ALLOC,
  IOMMU_VEVENTQ_ALLOC,
  IOMMU_VIOMMU_ALLOC,
  iommu_destroy,
  iommu_fault_alloc,
  iommu_hw_queue_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_set_dirty_tracking,
  iommu_vdevice_alloc,
  iommu_veventq_alloc,
  iommu_viommu_alloc,
} from '../../src/uapi/iommufd.js';
import { VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INDEX_TO_OFFSET } from '../../src/uapi/vfio.js';
import type { EncodeValue } from '../../src/uapi/layout.js';
import type { IommuHwptAlloc } from '../../src/uapi/iommufd.js';
import { Env, PAGE, RW, U64_MAX } from './helpers.js';

function alloc(env: Env, value: EncodeValue<IommuHwptAlloc>): number {
  return env.call(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, value).out_hwpt_id;
}

test('HWPT_ALLOC: reserved, data checks, dev_id ENOENT, pt_id EINVAL, flags, nesting refused', () => {
  const env = Env.create();
  const cdev = env.openCdev(0);
  const devid = env.bind(cdev);
  const ioas = env.ioasAlloc();
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas, __reserved: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas, data_len: 24 }), { code: 'EINVAL' });
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas, data_type: IOMMU_HWPT_DATA_VTD_S1 }), {
    code: 'EINVAL',
  });
  assert.throws(() => alloc(env, { dev_id: ioas, pt_id: ioas }), { code: 'ENOENT' });
  assert.throws(() => alloc(env, { dev_id: 99, pt_id: ioas }), { code: 'ENOENT' });
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: 99 }), { code: 'EINVAL' });
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: 0 }), { code: 'EINVAL' });
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: devid }), { code: 'EINVAL' });
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas, flags: 0x10 }), { code: 'EOPNOTSUPP' });
  // The VT-d model has no nesting (ECAP.NEST clear), like the reference guest.
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }), {
    code: 'EOPNOTSUPP',
  });
  assert.throws(
    () => alloc(env, { dev_id: devid, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_FAULT_ID_VALID }),
    { code: 'EOPNOTSUPP' },
  );
  // Paging domains take no driver data.
  assert.throws(
    () =>
      alloc(env, {
        dev_id: devid,
        pt_id: ioas,
        data_type: IOMMU_HWPT_DATA_VTD_S1,
        data_len: 24,
        data_uptr: env.scratch,
      }),
    { code: 'EOPNOTSUPP' },
  );
  const hwpt = alloc(env, { dev_id: devid, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_PASID });
  // A nested HWPT needs data and a NEST_PARENT parent.
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: hwpt }), { code: 'EOPNOTSUPP' });
  assert.throws(
    () =>
      alloc(env, {
        dev_id: devid,
        pt_id: hwpt,
        flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        data_type: 1,
        data_len: 24,
        data_uptr: env.scratch,
      }),
    { code: 'EOPNOTSUPP' },
  );
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: hwpt, data_type: 1, data_len: 24, data_uptr: env.scratch }), {
    code: 'EINVAL',
  });
  // FAULT_ID_VALID needs a FAULT object.
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, fault_id: ioas }), {
    code: 'ENOENT',
  });
  // The id of a failed allocation is free again.
  assert.equal(alloc(env, { dev_id: devid, pt_id: ioas }), hwpt + 1);
  env.leakCheck();
});

test('HWPT_ALLOC pins the IOAS now; an unmapped VA is EFAULT; destroy unpins', () => {
  const env = Env.create();
  const cdev = env.openCdev(0);
  const devid = env.bind(cdev);
  const ioas = env.ioasAlloc();
  env.map(ioas, { iova: 0x100000n, length: 4 * PAGE, va: env.buffer(4 * PAGE) });
  const hwpt = alloc(env, { dev_id: devid, pt_id: ioas });
  // Root has CAP_IPC_LOCK: nothing charged as locked, but mm->pinned_vm counts the pins.
  assert.equal(env.host.usage().lockedPages, 4);
  env.call(IOMMU_DESTROY, iommu_destroy, { id: hwpt });
  assert.equal(env.host.usage().lockedPages, 0);
  env.map(ioas, { iova: 0x200000n, length: PAGE, va: 0x10000n });
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas }), { code: 'EFAULT' });
  env.leakCheck();
});

test('DIRTY_TRACKING: EOPNOTSUPP without hardware support (the reference guest)', () => {
  const env = Env.create({ iommu: { dirtyTracking: false }, devices: [{ bdf: '0000:00:03.0', model: 'edu' }] });
  const { devid, ioas, hwpt } = env.device(0);
  assert.throws(() => alloc(env, { dev_id: devid, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }), {
    code: 'EOPNOTSUPP',
  });
  assert.throws(
    () => env.call(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, { hwpt_id: hwpt, flags: 1 }),
    { code: 'EOPNOTSUPP' },
  );
  env.leakCheck();
});

/** A cdev attached to a DIRTY_TRACKING HWPT with 16 pages mapped at 0x100000, and an edu driver. */
function dirtySetup(env: Env) {
  const cdev = env.openCdev(0);
  const devid = env.bind(cdev);
  const ioas = env.ioasAlloc();
  const hwpt = alloc(env, { dev_id: devid, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
  env.attach(cdev, hwpt);
  const buf = env.buffer(16 * PAGE);
  env.map(ioas, { iova: 0x100000n, length: 16 * PAGE, va: buf });
  const config = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(PCI_COMMAND);
  const command = env.proc.pread(cdev, 2, config);
  command[0] = command[0]! | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  env.proc.pwrite(cdev, command, config);
  const driver = new EduDriver(env.proc, env.proc.mmap(PAGE, RW, MAP_SHARED, cdev, 0));
  return { cdev, devid, ioas, hwpt, driver };
}

test('dirty tracking: device writes set dirty bits; NO_CLEAR keeps them; reads do not dirty', () => {
  const env = Env.create();
  const { hwpt, ioas, driver } = dirtySetup(env);
  const bitmap = env.scratch + 2048n;
  const setTracking = (flags: number) =>
    env.call(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, { hwpt_id: hwpt, flags });
  const get = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuHwptGetDirtyBitmap> = {}): bigint => {
    env.proc.memory.write(bitmap, new Uint8Array(8));
    env.call(IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, {
      hwpt_id: hwpt,
      iova: 0x100000n,
      length: BigInt(16 * PAGE),
      page_size: BigInt(PAGE),
      data: bitmap,
      ...value,
    });
    return new DataView(env.proc.memory.read(bitmap, 8).buffer).getBigUint64(0, true);
  };
  // Not tracking: writes leave no trace.
  driver.dma(0x103000n, EDU_DMA_BUFFER, 16, true);
  setTracking(IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
  assert.equal(get(), 0n);
  driver.dma(0x105000n, EDU_DMA_BUFFER, 16, true);
  // 32 bytes across a page boundary dirty both pages.
  driver.dma(0x10aff0n, EDU_DMA_BUFFER, 32, true);
  driver.dma(0x100000n, EDU_DMA_BUFFER, 16, false);
  const expected = (1n << 5n) | (1n << 10n) | (1n << 11n);
  assert.equal(get({ flags: IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR }), expected);
  assert.equal(get(), expected);
  assert.equal(get(), 0n);
  // Bits are OR-ed into what the user buffer held.
  driver.dma(0x105000n, EDU_DMA_BUFFER, 16, true);
  env.proc.memory.write(bitmap, new Uint8Array([0, 0x80, 0, 0, 0, 0, 0, 0]));
  env.call(IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, {
    hwpt_id: hwpt,
    iova: 0x100000n,
    length: BigInt(16 * PAGE),
    page_size: BigInt(PAGE),
    data: bitmap,
  });
  assert.equal(new DataView(env.proc.memory.read(bitmap, 8).buffer).getBigUint64(0, true), (1n << 15n) | (1n << 5n));
  // A bigger page size folds pages: 8 KiB per bit.
  driver.dma(0x105000n, EDU_DMA_BUFFER, 16, true);
  assert.equal(get({ page_size: 8192n }), 1n << 2n);
  // Disabling keeps later writes out; enabling again starts clean.
  driver.dma(0x101000n, EDU_DMA_BUFFER, 16, true);
  setTracking(0);
  driver.dma(0x102000n, EDU_DMA_BUFFER, 16, true);
  setTracking(IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
  assert.equal(get(), 0n);
  void ioas;
  env.leakCheck();
});

test('GET_DIRTY_BITMAP walk errors end the walk silently: holes, unpinnable bitmap, tracking off', () => {
  const env = Env.create();
  const { hwpt, driver } = dirtySetup(env);
  const bitmap = env.scratch + 2048n;
  const get = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuHwptGetDirtyBitmap> = {}): bigint => {
    env.proc.memory.write(bitmap, new Uint8Array(8));
    env.call(IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, {
      hwpt_id: hwpt,
      iova: 0x100000n,
      length: BigInt(16 * PAGE),
      page_size: BigInt(PAGE),
      data: bitmap,
      ...value,
    });
    return new DataView(env.proc.memory.read(bitmap, 8).buffer).getBigUint64(0, true);
  };
  const setTracking = (flags: number) =>
    env.call(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, { hwpt_id: hwpt, flags });
  setTracking(IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
  driver.dma(0x102000n, EDU_DMA_BUFFER, 16, true);
  driver.dma(0x10f000n, EDU_DMA_BUFFER, 16, true);
  // The range runs past the last area: the covered head is reported (and cleared), then the
  // hole ends the walk - still success.
  assert.equal(get({ length: BigInt(32 * PAGE) }), (1n << 2n) | (1n << 15n));
  assert.equal(get(), 0n);
  // A range starting in a hole reports nothing and clears nothing.
  driver.dma(0x102000n, EDU_DMA_BUFFER, 16, true);
  assert.equal(get({ iova: 0x0ff000n, length: BigInt(17 * PAGE) }), 0n);
  // An unpinnable bitmap: success, nothing read, the dirty bits stay.
  env.call(IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, {
    hwpt_id: hwpt,
    iova: 0x100000n,
    length: BigInt(16 * PAGE),
    page_size: BigInt(PAGE),
    data: 0n,
  });
  assert.equal(get(), 1n << 2n);
  // Tracking off: intel's read_and_clear_dirty refuses (ignored), so nothing is reported and the
  // bits left from the tracking period stay until tracking is enabled again (which clears them).
  setTracking(0);
  assert.equal(get(), 0n);
  setTracking(IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
  assert.equal(get(), 0n);
  driver.dma(0x102000n, EDU_DMA_BUFFER, 16, true);
  setTracking(0);
  setTracking(IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
  assert.equal(get(), 0n);
  env.leakCheck();
});

test('GET_DIRTY_BITMAP and SET_DIRTY_TRACKING argument checks', () => {
  const env = Env.create();
  const { hwpt, ioas, cdev } = dirtySetup(env);
  const bitmap = env.scratch + 2048n;
  const get = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuHwptGetDirtyBitmap>) =>
    env.call(IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, {
      hwpt_id: hwpt,
      iova: 0x100000n,
      length: BigInt(16 * PAGE),
      page_size: BigInt(PAGE),
      data: bitmap,
      ...value,
    });
  assert.throws(() => get({ flags: 2 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => get({ __reserved: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => get({ hwpt_id: ioas }), { code: 'ENOENT' });
  assert.throws(() => get({ iova: U64_MAX - 0xfffn, length: 0x2000n }), { code: 'EOVERFLOW' });
  assert.throws(() => get({ iova: 0x100800n }), { code: 'EINVAL' });
  assert.throws(() => get({ length: 0x800n }), { code: 'EINVAL' });
  assert.throws(() => get({ page_size: 0n }), { code: 'EINVAL' });
  assert.throws(() => get({ page_size: 0x10000n, length: BigInt(8 * PAGE) }), { code: 'EINVAL' });
  // Past the checks the kernel ignores what the bitmap walk returns (iommu_read_and_clear_dirty):
  // outside the mapped areas, or a bitmap that cannot be pinned, is success with nothing read.
  assert.equal(get({ iova: 0x200000n }).size, iommu_hwpt_get_dirty_bitmap.size);
  assert.equal(get({ length: BigInt(32 * PAGE) }).size, iommu_hwpt_get_dirty_bitmap.size);
  assert.equal(get({ data: 8n }).size, iommu_hwpt_get_dirty_bitmap.size);
  const set = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuHwptSetDirtyTracking>) =>
    env.call(IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, value);
  assert.throws(() => set({ hwpt_id: hwpt, flags: 2 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => set({ hwpt_id: 99, flags: 1 }), { code: 'ENOENT' });
  // A HWPT allocated without DIRTY_TRACKING has no dirty ops.
  env.detach(cdev);
  const plain = alloc(env, { dev_id: 1, pt_id: ioas });
  assert.throws(() => set({ hwpt_id: plain, flags: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => get({ hwpt_id: plain }), { code: 'EOPNOTSUPP' });
  env.leakCheck();
});

test('HWPT_INVALIDATE: entry_num written back (0) on every outcome', () => {
  const env = Env.create();
  const { hwpt, ioas } = env.device(0);
  const inv = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuHwptInvalidate>) =>
    env.call(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
      entry_num: 5,
      entry_len: 16,
      data_uptr: env.scratch,
      ...value,
    });
  assert.throws(() => inv({ hwpt_id: hwpt, __reserved: 1 }), { code: 'EOPNOTSUPP' });
  assert.equal(env.last(iommu_hwpt_invalidate).entry_num, 0);
  assert.throws(() => inv({ hwpt_id: hwpt, data_uptr: 0n }), { code: 'EINVAL' });
  assert.throws(() => inv({ hwpt_id: hwpt, entry_len: 0 }), { code: 'EINVAL' });
  assert.throws(() => inv({ hwpt_id: 99 }), { code: 'ENOENT' });
  assert.throws(() => inv({ hwpt_id: hwpt }), { code: 'EINVAL' });
  assert.throws(() => inv({ hwpt_id: ioas }), { code: 'EINVAL' });
  assert.equal(env.last(iommu_hwpt_invalidate).entry_num, 0);
  env.leakCheck();
});

test('fault queues: an object and an fd; record-sized I/O; a faultable HWPT cannot take edu (no PRI)', () => {
  const env = Env.create();
  const { proc } = env;
  assert.throws(() => env.call(IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, { flags: 1 }), { code: 'EOPNOTSUPP' });
  const out = env.call(IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, {});
  assert.equal(out.out_fault_id, 1);
  const fd = out.out_fault_fd;
  assert.deepEqual(proc.read(fd, 80), new Uint8Array(0));
  assert.throws(() => proc.read(fd, 41), { code: 'ESPIPE' });
  assert.throws(() => proc.write(fd, new Uint8Array(7)), { code: 'ESPIPE' });
  assert.throws(() => proc.write(fd, new Uint8Array([1, 0, 0, 0, 9, 0, 0, 0])), { code: 'EINVAL' });
  assert.throws(() => proc.write(fd, new Uint8Array(8)), { code: 'EINVAL' });
  assert.equal(proc.write(fd, new Uint8Array(0)), 0);
  const cdev = env.openCdev(0);
  const devid = env.bind(cdev);
  const ioas = env.ioasAlloc();
  const hwpt = alloc(env, { dev_id: devid, pt_id: ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, fault_id: 1 });
  assert.throws(() => env.attach(cdev, hwpt), { code: 'ENODEV' });
  // Replacing an attachment with it fails the same way (intel_iommu_attach_device enables IOPF
  // on replace too), and the device stays on its automatic HWPT.
  const auto = env.attach(cdev, ioas);
  assert.throws(() => env.attach(cdev, hwpt), { code: 'ENODEV' });
  assert.throws(() => env.call(IOMMU_DESTROY, iommu_destroy, { id: auto }), { code: 'EBUSY' });
  assert.equal(env.attach(cdev, ioas), auto);
  env.detach(cdev);
  // The fault object is held by its fd and by the HWPT.
  assert.throws(() => env.call(IOMMU_DESTROY, iommu_destroy, { id: 1 }), { code: 'EBUSY' });
  env.call(IOMMU_DESTROY, iommu_destroy, { id: hwpt });
  proc.close(fd);
  env.call(IOMMU_DESTROY, iommu_destroy, { id: 1 });
  env.leakCheck();
});

test('vIOMMU commands: no vIOMMU can exist on this VT-d (EOPNOTSUPP / ENOENT after the checks)', () => {
  const env = Env.create();
  const { devid, hwpt } = env.device(0);
  const viommu = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuViommuAlloc>) =>
    env.call(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, value);
  assert.throws(() => viommu({ type: 1, flags: 1, dev_id: devid, hwpt_id: hwpt }), { code: 'EOPNOTSUPP' });
  assert.throws(() => viommu({ type: 0, dev_id: devid, hwpt_id: hwpt }), { code: 'EOPNOTSUPP' });
  assert.throws(() => viommu({ type: 1, dev_id: 99, hwpt_id: hwpt }), { code: 'ENOENT' });
  assert.throws(() => viommu({ type: 1, dev_id: devid, hwpt_id: hwpt }), { code: 'EOPNOTSUPP' });
  assert.throws(() => env.call(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, { viommu_id: hwpt, dev_id: devid }), {
    code: 'ENOENT',
  });
  const veventq = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuVeventqAlloc>) =>
    env.call(IOMMU_VEVENTQ_ALLOC, iommu_veventq_alloc, value);
  assert.throws(() => veventq({ type: 1, flags: 1, veventq_depth: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => veventq({ type: 1, __reserved: 1, veventq_depth: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => veventq({ type: 0, veventq_depth: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => veventq({ type: 1, veventq_depth: 0 }), { code: 'EINVAL' });
  assert.throws(() => veventq({ type: 1, veventq_depth: 1, viommu_id: hwpt }), { code: 'ENOENT' });
  const queue = (value: EncodeValue<import('../../src/uapi/iommufd.js').IommuHwQueueAlloc>) =>
    env.call(IOMMU_HW_QUEUE_ALLOC, iommu_hw_queue_alloc, value);
  assert.throws(() => queue({ type: 1, flags: 1, length: 1n }), { code: 'EOPNOTSUPP' });
  assert.throws(() => queue({ type: 0, length: 1n }), { code: 'EOPNOTSUPP' });
  assert.throws(() => queue({ type: 1, length: 0n }), { code: 'EINVAL' });
  assert.throws(() => queue({ type: 1, length: 2n, nesting_parent_iova: U64_MAX }), { code: 'EOVERFLOW' });
  assert.throws(() => queue({ type: 1, length: 1n, viommu_id: 99 }), { code: 'ENOENT' });
  env.leakCheck();
});
