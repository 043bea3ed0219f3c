import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/cli.js';
import { runDemo } from '../../src/cli/demo.js';

function run(argv: string[]): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = runCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

const has = (lines: string[], pattern: RegExp): boolean => lines.some((l) => pattern.test(l));

test('demo narrates a verified DMA round trip, an MSI on an eventfd, an IOMMU-stopped DMA, and a clean exit', () => {
  const { code, out } = run(['demo']);
  assert.equal(code, 0, out.join('\n'));
  assert.ok(has(out, /VFIO_GET_API_VERSION = 0; type1v2 IOMMU supported/));
  assert.ok(has(out, /group is viable/));
  assert.ok(has(out, /IOVA ranges \[0x0-0xfedfffff\] \[0xfef00000-0x7fffffffff\]/));
  assert.ok(has(out, /identification register: 0x10000ed/));
  assert.ok(has(out, /liveness check: .* read back 0xedcba987/));
  assert.ok(has(out, /matches the first, byte for byte/));
  assert.ok(has(out, /read eventfd \d+: 1 interrupt\(s\)/));
  assert.ok(has(out, /unmapped IOVA .*: nothing moved/));
  assert.ok(has(out, /IOMMU fault recorded .*write at IOVA 0x200000/));
  assert.ok(has(out, /the host holds nothing/));
  // One short line per step.
  assert.ok(out.every((l) => l.length < 200));
});

test('demo report: the same facts as data, and nothing left on the host', () => {
  const report = runDemo({ out: () => {} });
  assert.equal(report.path, 'legacy');
  assert.equal(report.dmaVerified, true);
  assert.equal(report.interrupts, 1n);
  assert.equal(report.faultStopped, true);
  assert.ok(
    Object.values(report.leftover).every((x) => x === 0),
    JSON.stringify(report.leftover),
  );
});

test('demo --iommufd runs the same round trip through /dev/iommu and the cdev', () => {
  const { code, out, err } = run(['demo', '--iommufd']);
  assert.equal(code, 0, [...out, ...err].join('\n'));
  assert.ok(has(out, /VFIO_DEVICE_BIND_IOMMUFD: bound to the iommufd as device object \d+/));
  assert.ok(has(out, /IOMMU_IOAS_ALLOC: IO address space \d+/));
  assert.ok(has(out, /matches the first, byte for byte/));
  assert.ok(has(out, /nothing moved/));
  assert.ok(has(out, /the host holds nothing/));
});

test('demo --trace interleaves decoded system calls with the narration', () => {
  const { code, out } = run(['demo', '--trace']);
  assert.equal(code, 0);
  const c = out.find((l) => l.startsWith('open("/dev/vfio/vfio", O_RDWR) = '))?.split(' = ')[1] ?? '';
  assert.match(c, /^\d+$/);
  assert.ok(out.includes(`ioctl(${c}, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) = 1`));
  assert.ok(out.some((l) => /^ioctl\(\d+, VFIO_GROUP_SET_CONTAINER, \[(\d+)\]\) = 0$/.exec(l)?.[1] === c));
  assert.ok(has(out, /^ioctl\(\d+, VFIO_GROUP_GET_DEVICE_FD, "0000:00:03\.0"\) = \d+$/));
  assert.ok(has(out, /^ioctl\(\d+, VFIO_IOMMU_GET_INFO, \{argsz=24 => 120, flags=0 => PGSIZES\|CAPS/));
  assert.ok(
    has(
      out,
      /^ioctl\(\d+, VFIO_IOMMU_MAP_DMA, \{argsz=32, flags=READ\|WRITE, vaddr=0x[0-9a-f]+, iova=0x100000, size=0x1000\}\) = 0$/,
    ),
  );
  assert.ok(
    has(
      out,
      /^ioctl\(\d+, VFIO_DEVICE_SET_IRQS, \{argsz=24, flags=DATA_EVENTFD\|ACTION_TRIGGER, index=MSI, start=0, count=1, data=\[\d+\]\}\) = 0$/,
    ),
  );
  assert.ok(has(out, /^mmap\(NULL, 0x100000, PROT_READ\|PROT_WRITE, MAP_SHARED, \d+, 0\) = 0x[0-9a-f]+$/));
  assert.ok(has(out, /^read\(\d+, "\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00", 8\) = 8$/));
  assert.ok(has(out, /^exit_group\(0\) = \?$/));
  // The tracer's own /proc/self/fd look-ups are not traced.
  assert.ok(!has(out, /readlink\("\/proc\/self\/fd/));
});

test('ls shows the IOMMU, the groups with their devices, regions and IRQs', () => {
  const { code, out } = run(['ls']);
  assert.equal(code, 0, out.join('\n'));
  assert.ok(has(out, /^machine: 4 PCI devices in 3 IOMMU groups$/));
  assert.ok(
    has(out, /model +Intel VT-d \(IOMMU_GET_HW_INFO type INTEL_VTD, cap_reg 0x[0-9a-f]+, ecap_reg 0x[0-9a-f]+\)/),
  );
  assert.ok(has(out, /dirty tracking +supported/));
  assert.ok(has(out, /address width +39 bits/));
  assert.ok(has(out, /page sizes +4K 2M 1G \(iova_pgsizes 0x40201000\)/));
  assert.ok(has(out, /^IOMMU group 3 \(\/dev\/vfio\/3, viable\)$/));
  assert.ok(has(out, /^IOMMU group 5 /));
  assert.ok(has(out, /0000:00:03\.0 +edu \[1234:11e8\] +driver vfio-pci +cdev vfio0/));
  assert.ok(has(out, /0000:00:05\.1 +edu \[1234:11e8\] +driver vfio-pci +cdev vfio3/));
  assert.ok(has(out, /^ +0 +BAR0 +READ\|WRITE\|MMAP +0x100000 +0x0$/));
  assert.ok(has(out, /^ +7 +CONFIG +READ\|WRITE +0x100 +0x70000000000$/));
  assert.ok(has(out, /^ +8 +VGA +unavailable \(EINVAL\)$/));
  assert.ok(has(out, /^ +0 +INTX +EVENTFD\|MASKABLE\|AUTOMASKED +1$/));
  assert.ok(has(out, /^ +1 +MSI +EVENTFD\|NORESIZE +1$/));
});

test('ls --topology: a group with a host-driver device is not viable and its devices are listed from sysfs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-ts-'));
  const file = join(dir, 'machine.json');
  writeFileSync(
    file,
    JSON.stringify({
      devices: [
        { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 1 },
        { bdf: '0000:00:04.0', model: 'edu', iommuGroup: 2 },
        { bdf: '0000:00:04.1', model: 'edu', iommuGroup: 2, driver: 'host' },
      ],
    }),
  );
  const { code, out } = run(['ls', '--topology', file]);
  assert.equal(code, 0, out.join('\n'));
  assert.ok(has(out, /^IOMMU group 2 \(\/dev\/vfio\/2, not viable: a device uses a host driver\)$/));
  assert.ok(has(out, /0000:00:04\.1 +edu +driver host +cdev -/));
});

test('ls --trace shows failing ioctls with their errno names', () => {
  const { code, out } = run(['ls', '--trace']);
  assert.equal(code, 0);
  assert.ok(
    has(
      out,
      /^ioctl\(\d+, VFIO_DEVICE_GET_REGION_INFO, \{argsz=32, flags=0, index=8, .*\}\) = -1 EINVAL \(Invalid argument\)$/,
    ),
  );
  assert.ok(has(out, /^getdents64\("\/sys\/kernel\/iommu_groups"\) = \["3", "4", "5"\]$/));
  assert.ok(has(out, /^pread64\(\d+, "4\\x12\\xe8\\x11", 4, 0x70000000000\) = 4$/));
});

test('usage: help, unknown commands and options, bad topology files', () => {
  assert.equal(run(['help']).code, 0);
  assert.ok(has(run([]).out, /usage: vfio-ts/));
  assert.equal(run(['frobnicate']).code, 2);
  assert.equal(run(['demo', '--bogus']).code, 2);
  assert.equal(run(['ls', 'extra']).code, 2);
  const missing = run(['ls', '--topology', '/nonexistent/x.json']);
  assert.equal(missing.code, 1);
  assert.ok(has(missing.err, /cannot read topology/));
});

test('the bin runs as a child process', () => {
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const result = spawnSync(process.execPath, [main, 'demo'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /matches the first, byte for byte/);
});

test('a failing system call ends the command with its errno and status 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-ts-'));
  const file = join(dir, 'machine.json');
  // The edu shares its group with a device a host driver owns: the group is not viable.
  writeFileSync(
    file,
    JSON.stringify({
      devices: [
        { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 1 },
        { bdf: '0000:00:03.1', model: 'edu', iommuGroup: 1, driver: 'host' },
      ],
    }),
  );
  const { code, out, err } = run(['demo', '--topology', file]);
  assert.equal(code, 1);
  assert.ok(has(out, /group is NOT viable/));
  assert.deepEqual(err, ['vfio-ts: ioctl: EPERM (Operation not permitted)']);
});
