import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine } from '../../src/hw/machine.js';
import { DeviceModelRegistry, UnknownDeviceModelError, defaultDeviceModels } from '../../src/hw/devices/registry.js';
import { EduDevice } from '../../src/hw/devices/edu.js';

test('builds functions with host-assigned, non-overlapping BARs', () => {
  const machine = new Machine({
    devices: [
      { bdf: '0000:00:03.0', model: 'edu' },
      { bdf: '0000:00:04.0', model: 'edu', options: { dmaMask: 32 } },
      { bdf: '00:05.0', model: 'edu' },
    ],
  });
  assert.deepEqual(
    machine.functions.map((fn) => [fn.bdf, fn.bar(0)!.address]),
    [
      ['0000:00:03.0', 0xfea00000n],
      ['0000:00:04.0', 0xfe900000n],
      ['0000:00:05.0', 0xfe800000n],
    ],
  );
  assert.equal(machine.function('00:04.0').requesterId, 0x20);
  assert.equal((machine.function('0000:00:04.0') as EduDevice).dmaMaskBits, 32);
  assert.equal(machine.findFunction('0000:00:09.0'), undefined);
  assert.equal(machine.findFunction('garbage'), undefined);
  assert.throws(() => machine.function('0000:00:09.0'), /no PCI function/);
  assert.equal(machine.functionByRequesterId(0x28)?.bdf, '0000:00:05.0');
  assert.equal(machine.functions[0]!.configRead(0x3c, 1), 11);
  machine.settle();
  assert.deepEqual(machine.snapshot().functions[0], { bdf: '0000:00:03.0', model: 'edu', bars: [0xfea00000n] });
});

test('IOMMU options come from the topology', () => {
  const machine = new Machine({ iommu: { addressWidth: 48, dirtyTracking: false }, devices: [] });
  assert.equal(machine.iommu.addressWidth, 48);
  assert.equal(machine.iommu.supportsDirtyTracking, false);
  assert.throws(() => new Machine({ iommu: { model: 'amd' as 'vtd' }, devices: [] }), /unknown IOMMU model/);
});

test('unknown models, duplicates and bad addresses are clear errors', () => {
  assert.throws(
    () => new Machine({ devices: [{ bdf: '0000:00:03.0', model: 'nvme' }] }),
    (error: unknown) =>
      error instanceof UnknownDeviceModelError &&
      error.model === 'nvme' &&
      /unknown device model 'nvme'/.test(error.message),
  );
  assert.throws(
    () =>
      new Machine({
        devices: [
          { bdf: '0000:00:03.0', model: 'edu' },
          { bdf: '00:03.0', model: 'edu' },
        ],
      }),
    /two devices at 0000:00:03.0/,
  );
  assert.throws(
    () =>
      new Machine({
        devices: [
          { bdf: '0000:00:03.0', model: 'edu' },
          { bdf: '0001:00:03.0', model: 'edu' },
        ],
      }),
    /share requester id/,
  );
  assert.throws(() => new Machine({ devices: [{ bdf: '0000:00:3.0', model: 'edu' }] }), /not a PCI address/);
});

test('registries are per machine and extensible', () => {
  const models = defaultDeviceModels();
  let built = 0;
  models.register('edu2', (context) => {
    built++;
    return new EduDevice({ bdf: context.bdf, bus: context.bus });
  });
  assert.throws(() => models.register('edu', () => null as never), /already registered/);
  const machine = new Machine({ devices: [{ bdf: '0000:00:03.0', model: 'edu2' }] }, { models });
  assert.equal(built, 1);
  assert.equal(machine.functions.length, 1);
  assert.deepEqual(defaultDeviceModels().names(), ['edu']);
  assert.throws(
    () => new DeviceModelRegistry().create('edu', { bdf: 'x', bus: machine.iommu, options: {} }),
    /known models: none/,
  );
});
