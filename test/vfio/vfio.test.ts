/**
 * The VFIO registry of a host (vfio.ts): which nodes exist, cdev numbering, lookups.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host.js';
import { VfioContainerFile } from '../../src/kernel/vfio/container.js';
import { VfioDeviceFile } from '../../src/kernel/vfio/vfio-main.js';
import { assertHostClean } from './legacy-helpers.js';

const TOPOLOGY = {
  devices: [
    { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 },
    { bdf: '0000:00:04.0', model: 'edu', iommuGroup: 4, driver: 'host' as const },
    { bdf: '0000:00:05.0', model: 'edu', iommuGroup: 5 },
    { bdf: '0000:00:05.1', model: 'edu', iommuGroup: 5 },
    { bdf: '0000:00:06.0', model: 'edu', iommuGroup: 6, driver: null },
  ],
};

test('nodes: one per vfio group, one cdev per vfio device in topology order, the container', () => {
  const host = Host.create(TOPOLOGY);
  const nodes = host.kernel
    .nodePaths()
    .filter((p) => p.startsWith('/dev/vfio/'))
    .sort();
  assert.deepEqual(nodes, [
    '/dev/vfio/3',
    '/dev/vfio/5',
    '/dev/vfio/devices/vfio0',
    '/dev/vfio/devices/vfio1',
    '/dev/vfio/devices/vfio2',
    '/dev/vfio/vfio',
  ]);
  assert.deepEqual(
    host.vfio.devices().map((d) => [d.name, d.cdevIndex]),
    [
      ['0000:00:03.0', 0],
      ['0000:00:05.0', 1],
      ['0000:00:05.1', 2],
    ],
  );
  assert.deepEqual(
    host.vfio.groups().map((g) => [g.id, g.devices.map((d) => d.name)]),
    [
      [3, ['0000:00:03.0']],
      [5, ['0000:00:05.0', '0000:00:05.1']],
    ],
  );
  assert.equal(host.vfio.deviceByName('0000:00:04.0'), undefined);
  assert.equal(host.vfio.group(4), undefined);
  const dev = host.vfio.deviceByName('0000:00:05.1')!;
  assert.equal(host.vfio.groupOf(dev), host.vfio.group(5));
  assert.equal(dev.group, host.vfio.group(5));
});

test('a cdev open hands out an unbound device file; the group path and devices stay independent', () => {
  const host = Host.create(TOPOLOGY);
  const proc = host.spawn();
  const fd = proc.open('/dev/vfio/devices/vfio1');
  assert.equal(proc.readlink(`/proc/self/fd/${fd}`), '/dev/vfio/devices/vfio1');
  const file = proc.task.files.get(fd);
  assert.ok(file instanceof VfioDeviceFile);
  assert.equal(file.origin.kind, 'cdev');
  assert.equal(file.accessGranted, false);
  // Opening the cdev does not keep the group from opening; only a bind does.
  const group = proc.open('/dev/vfio/5');
  proc.close(group);
  proc.exit();
  assertHostClean(host);
});

test('the legacy container is not what /dev/vfio/vfio opens when the host uses iommufd for it', () => {
  const host = Host.create({ ...TOPOLOGY, vfioContainer: 'iommufd' });
  const proc = host.spawn();
  let file: unknown = null;
  try {
    file = proc.task.files.get(proc.open('/dev/vfio/vfio'));
  } catch {
    // Not registered at all (yet): not ours either.
  }
  assert.ok(!(file instanceof VfioContainerFile));
  proc.exit();
});
