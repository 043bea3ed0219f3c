import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host.js';

test('the default machine: four edu devices, group 5 holds two', () => {
  const host = Host.create();
  const devices = host.devices();
  assert.deepEqual(
    devices.map((d) => [d.bdf, d.model, d.iommuGroup, d.driver, d.cdev]),
    [
      ['0000:00:03.0', 'edu', 3, 'vfio-pci', 'vfio0'],
      ['0000:00:04.0', 'edu', 4, 'vfio-pci', 'vfio1'],
      ['0000:00:05.0', 'edu', 5, 'vfio-pci', 'vfio2'],
      ['0000:00:05.1', 'edu', 5, 'vfio-pci', 'vfio3'],
    ],
  );
});

test('sysfs view: iommu_group and driver links, group listings, vfio-dev', () => {
  const host = Host.create({
    devices: [
      { bdf: '0000:00:03.0', model: 'edu' },
      { bdf: '0000:00:04.0', model: 'edu', driver: 'host', iommuGroup: 7 },
      { bdf: '0000:00:05.0', model: 'edu', driver: null, iommuGroup: 7 },
    ],
  });
  const proc = host.spawn();
  assert.match(proc.readlink('/sys/bus/pci/devices/0000:00:03.0/iommu_group'), /\/0$/);
  assert.match(proc.readlink('/sys/bus/pci/devices/0000:00:04.0/iommu_group'), /\/7$/);
  assert.match(proc.readlink('/sys/bus/pci/devices/0000:00:03.0/driver'), /\/vfio-pci$/);
  assert.match(proc.readlink('/sys/bus/pci/devices/0000:00:04.0/driver'), /\/host$/);
  assert.throws(() => proc.readlink('/sys/bus/pci/devices/0000:00:05.0/driver'), { code: 'ENOENT' });
  assert.deepEqual(proc.readdir('/sys/kernel/iommu_groups'), ['0', '7']);
  assert.deepEqual(proc.readdir('/sys/kernel/iommu_groups/7/devices'), ['0000:00:04.0', '0000:00:05.0']);
  assert.deepEqual(proc.readdir('/sys/bus/pci/devices/0000:00:03.0/vfio-dev'), ['vfio0']);
  assert.throws(() => proc.readdir('/sys/bus/pci/devices/0000:00:04.0/vfio-dev'), { code: 'ENOENT' });
  assert.throws(() => proc.readlink('/sys/kernel/iommu_groups'), { code: 'EINVAL' });
  assert.deepEqual(proc.readdir('/sys/bus/pci/devices/0000:00:03.0/driver'), ['0000:00:03.0']);
  assert.throws(() => proc.readdir('/sys/bus/pci/devices/0000:00:03.0/iommu_group/devices/x'), { code: 'ENOENT' });
  // Only vfio-bound devices get cdevs; the host-driven device's group has no /dev/vfio node.
  assert.deepEqual(
    host.devices().map((d) => d.cdev),
    ['vfio0', null, null],
  );
});

test('topology validation', () => {
  assert.throws(() => Host.create({ devices: [{ bdf: 'zz', model: 'edu' }] }), RangeError);
  assert.throws(
    () =>
      Host.create({
        devices: [
          { bdf: '0000:00:03.0', model: 'edu' },
          { bdf: '0000:00:03.0', model: 'edu' },
        ],
      }),
    RangeError,
  );
  assert.throws(() => Host.create({ devices: [{ bdf: '0000:00:03.0', model: 'nope' }] }));
  assert.throws(() => Host.create({ iommu: { addressWidth: 99 }, devices: [] }), RangeError);
});

test('readdir of /dev lists the device nodes the kernel registered', () => {
  const proc = Host.create().spawn();
  assert.deepEqual(proc.readdir('/dev/vfio'), ['3', '4', '5', 'devices', 'vfio']);
  assert.deepEqual(proc.readdir('/dev/vfio/devices/'), ['vfio0', 'vfio1', 'vfio2', 'vfio3']);
  assert.deepEqual(proc.readdir('/dev'), ['iommu', 'vfio']);
  assert.throws(() => proc.readdir('/dev/iommu'), { code: 'ENOTDIR' });
  assert.throws(() => proc.readdir('/dev/nothing'), { code: 'ENOENT' });
});

test('sysfs paths are walked through their symlinks: <bdf>/iommu_group/devices lists the group', () => {
  const proc = Host.create().spawn();
  const dev = '/sys/bus/pci/devices/0000:00:05.1';
  assert.deepEqual(proc.readdir(`${dev}/iommu_group/devices`), ['0000:00:05.0', '0000:00:05.1']);
  assert.deepEqual(proc.readdir(`${dev}/iommu_group/`), proc.readdir('/sys/kernel/iommu_groups/5'));
  // readlink resolves the components before the last one, not the last one itself.
  assert.throws(() => proc.readlink(`${dev}/iommu_group/devices`), { code: 'EINVAL' });
  assert.match(proc.readlink(`${dev}//iommu_group`), /\/5$/);
  assert.throws(() => proc.readdir(`${dev}/iommu_group/nothing`), { code: 'ENOENT' });
});

test('sysfs links are relative to the device directory, as on a real machine', () => {
  const proc = Host.create().spawn();
  const dev = '/sys/bus/pci/devices/0000:00:05.1';
  assert.equal(proc.readlink(dev), '../../../devices/pci0000:00/0000:00:05.1');
  assert.equal(proc.readlink(`${dev}/iommu_group`), '../../../kernel/iommu_groups/5');
  assert.equal(proc.readlink(`${dev}/driver`), '../../../bus/pci/drivers/vfio-pci');
  assert.deepEqual(proc.readdir(`${dev}/iommu_group/devices`), ['0000:00:05.0', '0000:00:05.1']);
  assert.deepEqual(proc.readdir(`${dev}/driver`), ['0000:00:03.0', '0000:00:04.0', '0000:00:05.0', '0000:00:05.1']);
});
