/** GET_DEVICE_FD name matching and VF tokens (semantics.md §6.11). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { vfioPciCoreMatch } from '../../src/kernel/vfio/pci/vfio-pci-core.js';
import {
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_GROUP_GET_DEVICE_FD,
  vfio_device_bind_iommufd,
} from '../../src/uapi/vfio.js';
import { BDF, Env, exitAndCheck } from './helpers.js';

const UUID = 'bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3';

test('vfioPciCoreMatch: the name, then optional spaces and one vf_token', () => {
  assert.deepEqual(vfioPciCoreMatch(BDF, BDF), { match: true, token: false });
  assert.deepEqual(vfioPciCoreMatch(BDF, `${BDF}   `), { match: true, token: false });
  assert.deepEqual(vfioPciCoreMatch(BDF, `${BDF} vf_token=${UUID}`), { match: true, token: true });
  assert.deepEqual(vfioPciCoreMatch(BDF, `${BDF}  vf_token=${UUID.toUpperCase()}  `), { match: true, token: true });
  assert.deepEqual(vfioPciCoreMatch(BDF, '0000:00:04.0'), { match: false, token: false });
  assert.deepEqual(vfioPciCoreMatch(BDF, `${BDF}x`), { match: false, token: false });
  assert.deepEqual(vfioPciCoreMatch(BDF, `${BDF}\tvf_token=${UUID}`), { match: false, token: false });
  assert.deepEqual(vfioPciCoreMatch(BDF, '0000:00:03'), { match: false, token: false });
  assert.throws(() => vfioPciCoreMatch(BDF, `${BDF} foo`), { code: 'EINVAL' });
  assert.throws(() => vfioPciCoreMatch(BDF, `${BDF} vf_token=${UUID} vf_token=${UUID}`), { code: 'EINVAL' });
  assert.throws(() => vfioPciCoreMatch(BDF, `${BDF} vf_token=${UUID.slice(0, 35)}`), { code: 'EINVAL' });
  assert.throws(() => vfioPciCoreMatch(BDF, `${BDF} vf_token=${UUID.replace('-', 'x')}`), { code: 'EINVAL' });
  assert.throws(() => vfioPciCoreMatch(BDF, `${BDF} vf_token=${UUID}x`), { code: 'EINVAL' });
});

test('GET_DEVICE_FD: a token for a non-SR-IOV device is EINVAL, malformed options EINVAL, no match ENODEV', () => {
  const env = Env.create();
  const { group } = env.containerWithGroup(3);
  const open = (name: string) => env.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.putString(name));
  assert.throws(() => open(`${BDF} vf_token=${UUID}`), { code: 'EINVAL' });
  assert.throws(() => open(`${BDF} bogus=1`), { code: 'EINVAL' });
  assert.throws(() => open(`${BDF}x`), { code: 'ENODEV' });
  assert.throws(() => open('nonexistent'), { code: 'ENODEV' });
  const fd = open(`${BDF}  `);
  assert.ok(fd >= 0);
  exitAndCheck(env);
});

test('BIND_IOMMUFD with a token flag on a non-SR-IOV device is EINVAL', () => {
  const env = Env.create();
  const iommufd = env.proc.open('/dev/iommu');
  const cdev = env.proc.open('/dev/vfio/devices/vfio0');
  const uuid = env.scratch + 512n;
  env.proc.memory.write(uuid, new Uint8Array(16).fill(7));
  const bind = (flags: number) =>
    env.proc.ioctl(
      cdev,
      VFIO_DEVICE_BIND_IOMMUFD,
      env.put(vfio_device_bind_iommufd, { argsz: 24, flags, iommufd, token_uuid_ptr: uuid }),
    );
  assert.throws(() => bind(VFIO_DEVICE_BIND_FLAG_TOKEN), { code: 'EINVAL' });
  assert.equal(bind(0), 0);
  exitAndCheck(env);
});
