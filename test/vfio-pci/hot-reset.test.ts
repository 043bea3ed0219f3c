/**
 * PCI hot reset (semantics.md §6.10) on a machine where two functions share bus 1, which the
 * bridge above it can reset; functions on the root bus have no reset (ENODEV).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Host } from '../../src/host.js';
import type { Topology } from '../../src/topology.js';
import {
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_PCI_DEVID_NOT_OWNED,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  vfio_device_bind_iommufd,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
} from '../../src/uapi/vfio.js';
import { decodeArray } from '../../src/uapi/layout.js';
import { Env, exitAndCheck, s32s } from './helpers.js';

const A = '0000:01:00.0';
const B = '0000:01:00.1';

function topology(bDriver: 'vfio-pci' | 'host' = 'vfio-pci', sameGroup = false): Topology {
  return {
    devices: [
      { bdf: A, model: 'edu', iommuGroup: 10 },
      { bdf: B, model: 'edu', iommuGroup: sameGroup ? 10 : 11, driver: bDriver },
      { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 },
    ],
  };
}

/** Counts secondary bus resets per function. */
function spyResets(host: Host): Map<string, number> {
  const counts = new Map<string, number>();
  for (const fn of host.machine.functions) {
    const reset = fn.busReset.bind(fn);
    fn.busReset = () => {
      counts.set(fn.bdf, (counts.get(fn.bdf) ?? 0) + 1);
      reset();
    };
  }
  return counts;
}

function info(env: Env, device: number, slots: number) {
  const argsz = vfio_pci_hot_reset_info.size + slots * vfio_pci_dependent_device.size;
  const at = env.put(vfio_pci_hot_reset_info, { argsz });
  env.proc.ioctl(device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, at);
  const hdr = env.get(vfio_pci_hot_reset_info);
  const raw = env.proc.memory.read(
    at + BigInt(vfio_pci_hot_reset_info.size),
    hdr.count * vfio_pci_dependent_device.size,
  );
  return { hdr, devices: decodeArray(vfio_pci_dependent_device, raw, 0, hdr.count) };
}

function hotReset(
  env: Env,
  device: number,
  fds: number[],
  extra: { argsz?: number; flags?: number; count?: number } = {},
): number {
  const at = env.put(
    vfio_pci_hot_reset,
    { argsz: 12 + 4 * fds.length, count: fds.length, ...extra },
    env.scratch,
    s32s(fds),
  );
  return env.proc.ioctl(device, VFIO_DEVICE_PCI_HOT_RESET, at);
}

/** Both groups in one container; device A open. */
function groupSetup(topo: Topology) {
  const env = Env.create(topo);
  const resets = spyResets(env.host);
  const { container, group: g10 } = env.containerWithGroup(10);
  let g11 = -1;
  if (topo.devices[1]!.driver !== 'host' && topo.devices[1]!.iommuGroup === 11) {
    g11 = env.proc.open('/dev/vfio/11');
    env.proc.memory.write(env.scratch, s32s([container]));
    env.proc.ioctl(g11, VFIO_GROUP_SET_CONTAINER, env.scratch);
  }
  const device = env.proc.ioctl(g10, VFIO_GROUP_GET_DEVICE_FD, env.putString(A));
  return { env, resets, container, g10, g11, device };
}

test('GET_PCI_HOT_RESET_INFO (group path): ENOSPC with the count, then the group ids', () => {
  const { env, device } = groupSetup(topology());
  const at = env.put(vfio_pci_hot_reset_info, { argsz: 12, flags: 0x55, count: 0 });
  assert.throws(() => env.proc.ioctl(device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, at), { code: 'ENOSPC' });
  assert.deepEqual(env.get(vfio_pci_hot_reset_info), { argsz: 12, flags: 0, count: 2 });
  assert.throws(() => info(env, device, 1), { code: 'ENOSPC' });
  const { hdr, devices } = info(env, device, 2);
  assert.deepEqual(hdr, { argsz: 28, flags: 0, count: 2 });
  assert.deepEqual(
    devices.map((d) => [d.group_id, d.segment, d.bus, d.devfn]),
    [
      [10, 0, 1, 0],
      [11, 0, 1, 1],
    ],
  );
  exitAndCheck(env);
});

test('PCI_HOT_RESET (group path): every affected group must be given; then the bus resets', () => {
  const { env, resets, container, g10, g11, device } = groupSetup(topology());
  assert.throws(() => hotReset(env, device, [g10]), { code: 'EINVAL' });
  assert.throws(() => hotReset(env, device, [g10, g11, g11]), { code: 'EINVAL' }, 'more fds than affected devices');
  assert.throws(() => hotReset(env, device, [g10, 999]), { code: 'EBADF' });
  assert.throws(() => hotReset(env, device, [g10, container]), { code: 'EINVAL' });
  assert.throws(() => hotReset(env, device, [g10, g11], { flags: 1 }), { code: 'EINVAL' });
  assert.throws(() => hotReset(env, device, [], { count: 0 }), { code: 'EINVAL' });
  assert.throws(() => hotReset(env, device, [g10, g11], { argsz: 11 }), { code: 'EINVAL' });
  // The fd array is read from after the header whatever argsz says: unreadable is EFAULT.
  const end = env.scratch + 4n * 4096n - 12n;
  env.proc.memory.write(end, vfio_pci_hot_reset.encode({ argsz: 12, flags: 0, count: 2 }).subarray(0, 12));
  assert.throws(() => env.proc.ioctl(device, VFIO_DEVICE_PCI_HOT_RESET, end), { code: 'EFAULT' });
  assert.equal(resets.size, 0);
  assert.equal(hotReset(env, device, [g10, g11]), 0);
  assert.deepEqual([...resets.entries()].sort(), [
    [A, 1],
    [B, 1],
  ]);
  // The config state survived (BAR, decode) and the device answers.
  const fn = env.host.machine.function(A);
  assert.equal(fn.bar(0)!.address !== 0n, true);
  assert.equal(env.barRead32(device, 0), 0x010000ed);
  exitAndCheck(env);
});

test('a function of the bus on a host driver makes the bus unresettable (EINVAL)', () => {
  const { env, g10, device } = groupSetup(topology('host'));
  assert.equal(info(env, device, 2).hdr.count, 2);
  assert.throws(() => hotReset(env, device, [g10]), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('functions on the root bus: no slot or bus reset (ENODEV)', () => {
  const env = Env.create(topology());
  const { device } = env.openDevice('0000:00:03.0', 3);
  assert.throws(() => info(env, device, 4), { code: 'ENODEV' });
  assert.throws(() => hotReset(env, device, [0]), { code: 'ENODEV' });
  exitAndCheck(env);
});

test('the last close of an idle reset domain resets the bus (vfio_pci_dev_set_try_reset)', () => {
  const { env, resets, g10, g11, device } = groupSetup(topology());
  const other = env.proc.ioctl(g11, VFIO_GROUP_GET_DEVICE_FD, env.putString(B));
  env.proc.close(device);
  assert.equal(resets.size, 0, 'B is still open');
  env.proc.close(other);
  assert.deepEqual([...resets.entries()].sort(), [
    [A, 1],
    [B, 1],
  ]);
  void g10;
  exitAndCheck(env);
});

function bind(env: Env, cdev: number, iommufd: number): number {
  env.proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, env.put(vfio_device_bind_iommufd, { argsz: 24, iommufd }));
  return env.get(vfio_device_bind_iommufd).out_devid;
}

test('cdev path: devids and ownership flags; count must be 0; every device owned', () => {
  const env = Env.create(topology());
  const resets = spyResets(env.host);
  const iommufd = env.proc.open('/dev/iommu');
  const a = env.proc.open('/dev/vfio/devices/vfio0');
  const devA = bind(env, a, iommufd);
  let r = info(env, a, 2);
  assert.equal(r.hdr.flags, VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
  assert.deepEqual(
    r.devices.map((d) => d.devid),
    [devA, VFIO_PCI_DEVID_NOT_OWNED],
  );
  assert.throws(() => hotReset(env, a, [], { count: 0 }), { code: 'EINVAL' }, 'B not owned');
  assert.throws(() => hotReset(env, a, [iommufd]), { code: 'EINVAL' }, 'cdev opened: count must be 0');
  const b = env.proc.open('/dev/vfio/devices/vfio1');
  const devB = bind(env, b, iommufd);
  r = info(env, a, 2);
  assert.equal(r.hdr.flags, VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
  assert.deepEqual(
    r.devices.map((d) => d.devid),
    [devA, devB],
  );
  assert.equal(hotReset(env, a, [], { count: 0 }), 0);
  assert.equal(resets.get(A), 1);
  exitAndCheck(env);
});

test('cdev path: an unbound device in a group the iommufd owns counts as owned (devid 0)', () => {
  const env = Env.create(topology('vfio-pci', true));
  const iommufd = env.proc.open('/dev/iommu');
  const a = env.proc.open('/dev/vfio/devices/vfio0');
  const devA = bind(env, a, iommufd);
  const r = info(env, a, 2);
  assert.equal(r.hdr.flags, VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
  assert.deepEqual(
    r.devices.map((d) => d.devid),
    [devA, 0],
  );
  assert.equal(hotReset(env, a, [], { count: 0 }), 0);
  exitAndCheck(env);
});
