import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host.js';
import { StraceTracer, fdKind, ioctlSpec } from '../../src/cli/trace.js';
import { IoctlCaller } from '../../src/cli/ioctl-caller.js';
import { containerTable, deviceTable, groupTable, migrationTable } from '../../src/cli/ioctl-vfio.js';
import { iommufdCommandsCovered } from '../../src/cli/ioctl-iommufd.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../src/kernel/vfs/mm.js';
import { O_RDWR } from '../../src/kernel/vfs/syscalls.js';
import * as uapiVfio from '../../src/uapi/vfio.js';
import * as v from '../../src/uapi/vfio.js';
import * as u from '../../src/uapi/iommufd.js';

function traced() {
  const host = Host.create();
  const proc = host.spawn();
  const lines: string[] = [];
  proc.tracer = new StraceTracer((l) => lines.push(l));
  return { host, proc, lines, io: new IoctlCaller(proc) };
}

test('fd kinds come from the /proc/self/fd link targets', () => {
  assert.equal(fdKind('/dev/vfio/vfio'), 'container');
  assert.equal(fdKind('/dev/vfio/12'), 'group');
  assert.equal(fdKind('/dev/vfio/noiommu-0'), 'group');
  assert.equal(fdKind('anon_inode:[vfio-device]'), 'device');
  assert.equal(fdKind('/dev/vfio/devices/vfio3'), 'device');
  assert.equal(fdKind('/dev/iommu'), 'iommufd');
  assert.equal(fdKind('anon_inode:[eventfd]'), 'eventfd');
  assert.equal(fdKind('/dev/null'), 'other');
});

test('colliding request numbers are decoded per fd type (semantics.md §0)', () => {
  assert.equal(v.VFIO_IOMMU_MAP_DMA, v.VFIO_DEVICE_PCI_HOT_RESET);
  assert.equal(ioctlSpec('container', v.VFIO_IOMMU_MAP_DMA)?.name, 'VFIO_IOMMU_MAP_DMA');
  assert.equal(ioctlSpec('device', v.VFIO_IOMMU_MAP_DMA)?.name, 'VFIO_DEVICE_PCI_HOT_RESET');
  assert.equal(ioctlSpec('container', v.VFIO_IOMMU_GET_INFO)?.name, 'VFIO_IOMMU_GET_INFO');
  assert.equal(ioctlSpec('device', v.VFIO_IOMMU_GET_INFO)?.name, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO');
  assert.equal(ioctlSpec('container', v.VFIO_IOMMU_UNMAP_DMA)?.name, 'VFIO_IOMMU_UNMAP_DMA');
  assert.equal(ioctlSpec('device', v.VFIO_IOMMU_UNMAP_DMA)?.name, 'VFIO_DEVICE_QUERY_GFX_PLANE');
  assert.equal(ioctlSpec('container', v.VFIO_DEVICE_FEATURE)?.name, 'VFIO_IOMMU_DIRTY_PAGES');
  assert.equal(ioctlSpec('device', v.VFIO_DEVICE_FEATURE)?.name, 'VFIO_DEVICE_FEATURE');
  assert.equal(ioctlSpec('group', v.VFIO_DEVICE_FEATURE), undefined);
});

test('every VFIO and iommufd ioctl of the uapi has a decoder', () => {
  const named = new Set(
    [containerTable, groupTable, deviceTable, migrationTable].flatMap((t) => [...t.values()].map((s) => s.name)),
  );
  // The sPAPR numbers that coincide with type1 ones on the same container fd are decoded as
  // type1, which is what /dev/vfio/vfio is on x86.
  const shadowed = new Set(['VFIO_IOMMU_SPAPR_TCE_GET_INFO', 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY']);
  const ioctls = Object.entries(uapiVfio).filter(
    ([name, value]) =>
      typeof value === 'number' && value >= 0x3b64 && value <= 0x3b7f && /^VFIO_/.test(name) && !shadowed.has(name),
  );
  assert.ok(ioctls.length >= 30);
  for (const [name] of ioctls) assert.ok(named.has(name), `${name} has no decoder`);
  assert.deepEqual(iommufdCommandsCovered(), []);
});

test('success and failure lines: integer args, errno names, argsz growth, capability chains', () => {
  const { host, proc, lines, io } = traced();
  const container = proc.open('/dev/vfio/vfio', O_RDWR);
  proc.ioctl(container, v.VFIO_GET_API_VERSION);
  proc.ioctl(container, v.VFIO_CHECK_EXTENSION, v.VFIO_TYPE1v2_IOMMU);
  assert.throws(() => proc.ioctl(container, v.VFIO_SET_IOMMU, v.VFIO_TYPE1v2_IOMMU), { code: 'EINVAL' });
  const group = proc.open('/dev/vfio/3', O_RDWR);
  io.s32ptr(group, v.VFIO_GROUP_SET_CONTAINER, container);
  proc.ioctl(container, v.VFIO_SET_IOMMU, v.VFIO_TYPE1v2_IOMMU);
  const probe = io.struct(container, v.VFIO_IOMMU_GET_INFO, v.vfio_iommu_type1_info, { argsz: 24 });
  io.struct(
    container,
    v.VFIO_IOMMU_GET_INFO,
    v.vfio_iommu_type1_info,
    { argsz: probe.value.argsz },
    { size: probe.value.argsz },
  );
  const tail = lines.slice(-1)[0]!;
  proc.exit();

  assert.equal(
    lines[0],
    'mmap(NULL, 0x10000, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = ' + hexOf(io.address),
  );
  const c = container;
  assert.equal(lines[1], `open("/dev/vfio/vfio", O_RDWR) = ${c}`);
  assert.equal(lines[2], `ioctl(${c}, VFIO_GET_API_VERSION) = 0`);
  assert.equal(lines[3], `ioctl(${c}, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) = 1`);
  assert.equal(lines[4], `ioctl(${c}, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) = -1 EINVAL (Invalid argument)`);
  assert.equal(lines[6], `ioctl(${group}, VFIO_GROUP_SET_CONTAINER, [${c}]) = 0`);
  assert.match(
    lines[8]!,
    /^ioctl\(\d+, VFIO_IOMMU_GET_INFO, \{argsz=24 => (\d+), flags=0 => PGSIZES\|CAPS, iova_pgsizes=0x0 => 0x40201000, cap_offset=0\}\) = 0$/,
  );
  assert.match(
    tail,
    /caps=\[MIGRATION\{flags=0, pgsize_bitmap=0x1000, max_dirty_bitmap_size=0x10000000\}, DMA_AVAIL\{avail=65535\}, IOVA_RANGE\{nr_iovas=2, iova_ranges=\[\[0x0, 0xfedfffff\], \[0xfef00000, 0x7fffffffff\]\]\}\]/,
  );
  assert.equal(lines.at(-1), 'exit_group(0) = ?');
  assert.equal(host.kernel.oopses.length, 0);
});

test('bad pointers are shown as addresses, and the tracer never reads device memory', () => {
  const { proc, lines, io } = traced();
  const container = proc.open('/dev/vfio/vfio', O_RDWR);
  const group = proc.open('/dev/vfio/3', O_RDWR);
  io.s32ptr(group, v.VFIO_GROUP_SET_CONTAINER, container);
  proc.ioctl(container, v.VFIO_SET_IOMMU, v.VFIO_TYPE1v2_IOMMU);
  const device = io.string(group, v.VFIO_GROUP_GET_DEVICE_FD, '0000:00:03.0');
  assert.throws(() => proc.ioctl(container, v.VFIO_IOMMU_MAP_DMA, 0x1000n), { code: 'EFAULT' });
  assert.equal(lines.at(-1), `ioctl(${container}, VFIO_IOMMU_MAP_DMA, 0x1000) = -1 EFAULT (Bad address)`);
  const bar = proc.mmap(0x100000, PROT_READ | PROT_WRITE, MAP_SHARED, device, 0);
  try {
    proc.ioctl(device, v.VFIO_DEVICE_GET_INFO, bar);
  } catch {
    // Whatever the kernel answers, the argument must not be decoded from the BAR.
  }
  assert.match(lines.at(-1)!, new RegExp(`^ioctl\\(${device}, VFIO_DEVICE_GET_INFO, ${hexOf(bar)}\\) = `));
  proc.exit();
});

test('unknown requests and non-VFIO fds: _IOC rendering and ENOTTY', () => {
  const { proc, lines } = traced();
  const efd = proc.eventfd(0, 0x800);
  assert.throws(() => proc.ioctl(efd, 0x3b7f, 0), { code: 'ENOTTY' });
  assert.equal(lines.at(-2), `eventfd2(0, EFD_NONBLOCK) = ${efd}`);
  assert.equal(
    lines.at(-1),
    `ioctl(${efd}, _IOC(_IOC_NONE, 0x3b, 0x7f, 0x0), 0) = -1 ENOTTY (Inappropriate ioctl for device)`,
  );
  assert.throws(() => proc.read(efd, 8), { code: 'EAGAIN' });
  assert.equal(lines.at(-1), `read(${efd}, ?, 8) = -1 EAGAIN (Resource temporarily unavailable)`);
  proc.write(efd, Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0));
  assert.equal(lines.at(-1), `write(${efd}, "\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00", 8) = 8`);
  assert.throws(() => proc.open('/dev/nope'), { code: 'ENOENT' });
  assert.equal(lines.at(-1), 'open("/dev/nope", O_RDWR) = -1 ENOENT (No such file or directory)');
  const m = proc.mmap(4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  proc.munmap(m, 4096);
  assert.equal(lines.at(-1), `munmap(${hexOf(m)}, 0x1000) = 0`);
  proc.exit();
});

test('iommufd ioctls are decoded with their out fields', () => {
  const { proc, lines, io } = traced();
  const iommufd = proc.open('/dev/iommu', O_RDWR);
  const alloc = io.struct(iommufd, u.IOMMU_IOAS_ALLOC, u.iommu_ioas_alloc, { size: u.iommu_ioas_alloc.size });
  const ioas = alloc.value.out_ioas_id;
  assert.equal(lines.at(-1), `ioctl(${iommufd}, IOMMU_IOAS_ALLOC, {size=12, flags=0, out_ioas_id=0 => ${ioas}}) = 0`);
  assert.throws(() => io.struct(iommufd, u.IOMMU_IOAS_ALLOC, u.iommu_ioas_alloc, { size: 8 }), { code: 'EINVAL' });
  assert.equal(lines.at(-1), `ioctl(${iommufd}, IOMMU_IOAS_ALLOC, {size=8, flags=0}) = -1 EINVAL (Invalid argument)`);
  const buf = proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  io.struct(iommufd, u.IOMMU_IOAS_MAP, u.iommu_ioas_map, {
    size: u.iommu_ioas_map.size,
    flags: u.IOMMU_IOAS_MAP_READABLE | u.IOMMU_IOAS_MAP_WRITEABLE,
    ioas_id: ioas,
    user_va: buf,
    length: 4096n,
  });
  assert.equal(
    lines.at(-1),
    `ioctl(${iommufd}, IOMMU_IOAS_MAP, {size=40, flags=WRITEABLE|READABLE, ioas_id=${ioas}, user_va=${hexOf(buf)}, length=0x1000, iova=0x0 => 0x1000}) = 0`,
  );
  const ranges = io.struct(
    iommufd,
    u.IOMMU_IOAS_IOVA_RANGES,
    u.iommu_ioas_iova_ranges,
    { size: u.iommu_ioas_iova_ranges.size, ioas_id: ioas, num_iovas: 2, allowed_iovas: io.address + 64n },
    { size: 128 },
  );
  assert.equal(ranges.value.num_iovas, 1);
  assert.match(
    lines.at(-1)!,
    /num_iovas=2 => 1, allowed_iovas=0x[0-9a-f]+, out_iova_alignment=0x0 => 0x1, ranges=\[\[0x0, 0xffffffffffffffff\]\]\}\) = 0$/,
  );
  assert.throws(() => io.struct(iommufd, u.IOMMU_DESTROY, u.iommu_destroy, { size: 8, id: 999 }), { code: 'ENOENT' });
  assert.equal(
    lines.at(-1),
    `ioctl(${iommufd}, IOMMU_DESTROY, {size=8, id=999}) = -1 ENOENT (No such file or directory)`,
  );
  proc.exit();
});

function hexOf(n: bigint): string {
  return `0x${n.toString(16)}`;
}
