/**
 * GET_INFO, GET_REGION_INFO, GET_IRQ_INFO and the misc device ioctls, replaying the "== device",
 * "== regions", "== irqs" and "== misc device ioctls" sections of probe-612-edu.txt.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Host } from '../../src/host.js';
import { describeVfioPciFunction } from '../../src/kernel/vfio/pci/vfio-pci-core.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  vfio_device_attach_iommufd_pt,
  vfio_device_feature,
  vfio_device_info,
  vfio_irq_info,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfio_region_info,
} from '../../src/uapi/vfio.js';
import { Env, exitAndCheck } from './helpers.js';

test('GET_INFO: PCI without RESET, 9 regions, 5 IRQs; argsz rules', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const info = env.call(device, VFIO_DEVICE_GET_INFO, vfio_device_info, {});
  assert.deepEqual(info, { argsz: 24, flags: 0x2, num_regions: 9, num_irqs: 5, cap_offset: 0, pad: 0 });

  // The probe's 20-byte struct: 20 bytes back, nothing past them.
  env.proc.memory.write(env.scratch, new Uint8Array(32).fill(0xaa));
  env.proc.memory.write(env.scratch, vfio_device_info.encode({ argsz: 20 }).subarray(0, 16));
  env.proc.ioctl(device, VFIO_DEVICE_GET_INFO, env.scratch);
  const raw = env.proc.memory.read(env.scratch, 24);
  assert.deepEqual([...raw.subarray(0, 20)], [20, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...raw.subarray(20)], [0xaa, 0xaa, 0xaa, 0xaa]);

  assert.throws(() => env.call(device, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: 8 }), { code: 'EINVAL' });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: 15 }), { code: 'EINVAL' });
  assert.throws(() => env.proc.ioctl(device, VFIO_DEVICE_GET_INFO, 0n), { code: 'EFAULT' });
  exitAndCheck(env);
});

/** probe-612-edu.txt "== regions": [flags, size, offset] per index. */
const REGIONS: [number, bigint, bigint][] = [
  [0x7, 0x100000n, 0x0n],
  [0x0, 0x0n, 0x10000000000n],
  [0x0, 0x0n, 0x20000000000n],
  [0x0, 0x0n, 0x30000000000n],
  [0x0, 0x0n, 0x40000000000n],
  [0x0, 0x0n, 0x50000000000n],
  [0x0, 0x0n, 0x60000000000n],
  [0x3, 0x100n, 0x70000000000n],
];

test('GET_REGION_INFO: the edu region table; VGA and out-of-range are EINVAL', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  REGIONS.forEach(([flags, size, offset], index) => {
    const info = env.call(device, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { index });
    assert.deepEqual(info, { argsz: 32, flags, index, cap_offset: 0, size, offset }, `region ${index}`);
  });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { index: 8 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { index: 9 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { index: 0xffffffff }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { argsz: 31, index: 0 }), {
    code: 'EINVAL',
  });
  // Without capabilities the user's cap_offset travels back untouched.
  const info = env.call(device, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { index: 7, cap_offset: 0x1234 });
  assert.equal(info.cap_offset, 0x1234);
  exitAndCheck(env);
});

/** "== irqs": [flags, count] per index, ERR (3) absent on conventional PCI. */
const IRQS: [number, number, number][] = [
  [0, 0x7, 1],
  [1, 0x9, 1],
  [2, 0x9, 0],
  [4, 0x9, 1],
];

test('GET_IRQ_INFO: INTX 0x7/1, MSI 0x9/1, MSIX 0x9/0, ERR EINVAL, REQ 0x9/1', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  for (const [index, flags, count] of IRQS) {
    assert.deepEqual(env.call(device, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { index }), {
      argsz: 16,
      flags,
      index,
      count,
    });
  }
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { index: 3 }), { code: 'EINVAL' });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { index: 5 }), { code: 'EINVAL' });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { argsz: 15, index: 0 }), {
    code: 'EINVAL',
  });
  exitAndCheck(env);
});

test('misc: RESET EINVAL, hot reset ENODEV without copy-back, features, unknown ioctls ENOTTY', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  assert.throws(() => env.proc.ioctl(device, VFIO_DEVICE_RESET), { code: 'EINVAL' });

  env.put(vfio_pci_hot_reset_info, { argsz: 12, flags: 0x77, count: 0x55 });
  assert.throws(() => env.proc.ioctl(device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, env.scratch), { code: 'ENODEV' });
  assert.deepEqual(env.get(vfio_pci_hot_reset_info), { argsz: 12, flags: 0x77, count: 0x55 });
  assert.throws(() => env.call(device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, vfio_pci_hot_reset_info, { argsz: 11 }), {
    code: 'EINVAL',
  });

  // PCI_HOT_RESET: flags first, then the array form (group fd: count must be > 0), then ENODEV.
  assert.throws(() => env.call(device, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { flags: 1, count: 1 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.call(device, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { count: 0 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.call(device, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { count: 1 }), {
    code: 'ENODEV',
  });
  assert.throws(() => env.call(device, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { argsz: 8, count: 1 }), {
    code: 'EINVAL',
  });

  const feature = (flags: number) => env.call(device, VFIO_DEVICE_FEATURE, vfio_device_feature, { flags });
  assert.throws(() => feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION), {
    code: 'ENOTTY',
  });
  assert.throws(() => feature(VFIO_DEVICE_FEATURE_PROBE | 0x99), { code: 'ENOTTY' });

  assert.throws(() => env.proc.ioctl(device, 0x3b99, env.scratch), { code: 'ENOTTY' });
  // A group-obtained fd has no cdev ioctls: ATTACH falls through to vfio-pci (ENOTTY).
  assert.throws(() => env.call(device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { pt_id: 1 }), {
    code: 'ENOTTY',
  });
  exitAndCheck(env);
});

test('describeVfioPciFunction: the region and IRQ tables without opening the device', () => {
  const host = Host.create();
  const d = describeVfioPciFunction(host.machine.function('0000:00:03.0'));
  assert.deepEqual(
    d.regions.map((r) => [r.name, r.flags, r.size, r.offset]),
    REGIONS.map(([flags, size, offset], i) => [
      ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG'][i],
      flags,
      size,
      offset,
    ]),
  );
  assert.deepEqual(
    d.irqs.map((i) => [i.index, i.flags, i.count]),
    IRQS,
  );
});
