import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as pkg from '../../src/index.js';

const { Host, SyscallError, uapi } = pkg;

test('the package entry exports the contract constants with their Linux x86-64 values', () => {
  assert.deepEqual(
    [pkg.O_RDWR, pkg.O_NONBLOCK, pkg.O_CLOEXEC, pkg.PROT_READ, pkg.PROT_WRITE],
    [2, 0x800, 0x80000, 1, 2],
  );
  assert.deepEqual([pkg.MAP_SHARED, pkg.MAP_PRIVATE, pkg.MAP_FIXED, pkg.MAP_ANONYMOUS], [1, 2, 0x10, 0x20]);
  assert.deepEqual([pkg.EFD_SEMAPHORE, pkg.EFD_NONBLOCK], [1, 0x800]);
  assert.equal(uapi.VFIO_IOMMU_MAP_DMA, 0x3b71);
  assert.equal(uapi.IOMMU_IOAS_MAP, 0x3b85);
  assert.equal(uapi.vfio_iommu_type1_dma_map.size, 32);
});

test('the README library example runs as written', () => {
  const { O_RDWR, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } = pkg;
  const host = Host.create();
  const proc = host.spawn();
  const scratch = proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

  const container = proc.open('/dev/vfio/vfio', O_RDWR);
  const group = proc.open('/dev/vfio/3', O_RDWR);
  proc.memory.write(scratch, Uint8Array.of(container, 0, 0, 0));
  proc.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, scratch);
  proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);

  const buffer = proc.mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const map = uapi.vfio_iommu_type1_dma_map;
  proc.memory.write(
    scratch,
    map.encode({
      argsz: map.size,
      flags: uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE,
      vaddr: buffer,
      iova: 0x100000n,
      size: 4096n,
    }),
  );
  proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, scratch);
  assert.throws(
    () => proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, scratch),
    (err: unknown) =>
      err instanceof SyscallError && err.code === 'EEXIST' && err.errno === 17 && err.syscall === 'ioctl',
  );
  proc.exit();
  assert.ok(Object.values(host.usage()).every((n) => n === 0));
});

test("`import { Host, SyscallError } from 'vfio-ts'` resolves through package.json exports", () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const script =
    "import('vfio-ts').then((m) => { const h = m.Host.create(); const p = h.spawn(); " +
    'try { p.close(99); } catch (e) { console.log(e instanceof m.SyscallError, e.code); } })';
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), 'true EBADF');
});
