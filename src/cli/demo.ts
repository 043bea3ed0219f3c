/**
 * `vfio-ts demo`: drives the default machine end to end as a userspace driver would, narrating
 * each step: the legacy container/group path (or, with --iommufd, /dev/iommu and the device
 * cdev), BAR0 mmap, DMA mappings, an edu DMA round trip checked byte for byte, an MSI delivered
 * to an eventfd, and a DMA to an unmapped IOVA stopped by the IOMMU. Everything goes through the
 * system-call contract; only the IOMMU fault record is read from the host side, since a real
 * system shows it in the kernel log rather than to the process.
 */
import { Host, type HostUsage } from '../host.js';
import type { Process } from '../sys/process.js';
import type { Topology } from '../topology.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/vfs/mm.js';
import { SyscallError } from '../uapi/errno.js';
import * as v from '../uapi/vfio.js';
import { EDU_DMA_BUFFER, EDU_ID_VALUE, EDU_IRQ_DMA, EduDriver } from './edu-driver.js';
import { IoctlCaller } from './ioctl-caller.js';
import { openIommufdPath, openLegacyPath, type DmaSpace } from './demo-paths.js';
import { StraceTracer } from './trace.js';
import { hex } from './struct-format.js';

export interface DemoOptions {
  /** Use /dev/iommu and the device cdev instead of the container and group. */
  readonly iommufd?: boolean;
  /** Print every system call, strace-style, between the narration lines. */
  readonly trace?: boolean;
  readonly topology?: Topology;
  readonly out?: (line: string) => void;
}

export interface DemoReport {
  readonly bdf: string;
  readonly path: 'legacy' | 'iommufd';
  /** The second buffer matched the first after RAM -> device -> RAM. */
  readonly dmaVerified: boolean;
  /** eventfd counter read after the edu interrupt. */
  readonly interrupts: bigint;
  /** The DMA to the unmapped IOVA changed nothing and the IOMMU recorded a fault. */
  readonly faultStopped: boolean;
  /** What the host still held after the process exited (all zero when nothing leaked). */
  readonly leftover: HostUsage;
}

const SRC_IOVA = 0x100000n;
const DST_IOVA = 0x200000n;
const BUF_SIZE = 4096;
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;

export function runDemo(options: DemoOptions = {}): DemoReport {
  const out = options.out ?? ((line: string) => console.log(line));
  let n = 0;
  const say = (text: string): void => out(`[${String(++n).padStart(2)}] ${text}`);

  const host = Host.create(options.topology);
  const dev = host.devices().find((d) => d.driver === 'vfio-pci' && d.model === 'edu');
  if (!dev) throw new Error('the machine has no edu device bound to vfio-pci');
  say(`machine: ${host.devices().length} PCI devices; driving edu ${dev.bdf} (IOMMU group ${dev.iommuGroup})`);

  const proc = host.spawn();
  if (options.trace) proc.tracer = new StraceTracer(out);
  const io = new IoctlCaller(proc);
  const path = options.iommufd ? openIommufdPath(proc, io, dev, say) : openLegacyPath(proc, io, dev, say);

  const { deviceFd, dma } = path;
  const bar0 = mapBar0(proc, io, deviceFd, say);
  const edu = new EduDriver(proc, bar0.addr);
  const id = edu.id();
  say(`edu identification register: ${hex(id)} (${id === EDU_ID_VALUE ? 'edu v1.0, as expected' : 'UNEXPECTED'})`);
  const live = edu.liveness(0x12345678);
  say(
    `liveness check: wrote 0x12345678, read back ${hex(live)} (${live === ~0x12345678 >>> 0 ? 'inverted: alive' : 'WRONG'})`,
  );
  enableBusMaster(proc, deviceFd, say);

  const { dmaVerified, src, dst } = dmaRoundTrip(proc, edu, dma, say);
  const interrupts = interruptViaMsi(proc, io, deviceFd, edu, say);
  const faultStopped = unmappedDmaFaults(host, proc, edu, dma, dst, say);

  dma.unmap(SRC_IOVA, BUF_SIZE);
  say(`unmapped IOVA ${hex(SRC_IOVA)}`);
  proc.munmap(bar0.addr, bar0.size);
  proc.munmap(src, BUF_SIZE);
  proc.munmap(dst, BUF_SIZE);
  io.dispose();
  path.close();
  say('closed the device, the DMA space and every other fd');
  proc.exit();
  const leftover = host.usage();
  const clean = Object.values(leftover).every((x) => x === 0);
  say(
    clean
      ? 'process exited; the host holds nothing: no pinned pages, no locked memory, no open files, no IOMMU mappings'
      : `process exited; the host still holds ${JSON.stringify(leftover)}`,
  );
  return {
    bdf: dev.bdf,
    path: options.iommufd ? 'iommufd' : 'legacy',
    dmaVerified,
    interrupts,
    faultStopped,
    leftover,
  };
}

function mapBar0(
  proc: Process,
  io: IoctlCaller,
  deviceFd: number,
  say: (t: string) => void,
): { addr: bigint; size: bigint } {
  const info = io.struct(deviceFd, v.VFIO_DEVICE_GET_INFO, v.vfio_device_info, {
    argsz: v.vfio_device_info.size,
  }).value;
  say(`VFIO_DEVICE_GET_INFO: ${info.num_regions} regions, ${info.num_irqs} IRQ indexes`);
  const region = io.struct(deviceFd, v.VFIO_DEVICE_GET_REGION_INFO, v.vfio_region_info, {
    argsz: v.vfio_region_info.size,
    index: v.VFIO_PCI_BAR0_REGION_INDEX,
  }).value;
  if (!(region.flags & v.VFIO_REGION_INFO_FLAG_MMAP)) throw new Error('BAR0 is not mmap-able');
  say(`BAR0: ${region.size / 1024n} KiB at device-fd offset ${hex(region.offset)}, mmap-able`);
  const addr = proc.mmap(region.size, PROT_READ | PROT_WRITE, MAP_SHARED, deviceFd, region.offset);
  say(`mmap'ed BAR0 at ${hex(addr)}: loads and stores there reach the device`);
  return { addr, size: region.size };
}

/** Sets COMMAND.MEMORY|MASTER through the config region, as a driver does before DMA. */
function enableBusMaster(proc: Process, deviceFd: number, say: (t: string) => void): void {
  const at = v.VFIO_PCI_INDEX_TO_OFFSET(v.VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(PCI_COMMAND);
  const cmd = proc.pread(deviceFd, 2, at);
  const value = cmd[0]! | (cmd[1]! << 8) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  proc.pwrite(deviceFd, Uint8Array.of(value & 0xff, value >> 8), at);
  say(`config space: COMMAND = ${hex(value)} (memory decode and bus mastering on)`);
}

function dmaRoundTrip(
  proc: Process,
  edu: EduDriver,
  dma: DmaSpace,
  say: (t: string) => void,
): { dmaVerified: boolean; src: bigint; dst: bigint } {
  const src = proc.mmap(BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const dst = proc.mmap(BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  dma.map(src, SRC_IOVA, BUF_SIZE);
  say(`mapped a 4 KiB buffer at ${hex(src)} to IOVA ${hex(SRC_IOVA)} (pinned, device may read and write it)`);
  dma.map(dst, DST_IOVA, BUF_SIZE);
  say(`mapped a second 4 KiB buffer at ${hex(dst)} to IOVA ${hex(DST_IOVA)}`);

  const pattern = new Uint8Array(BUF_SIZE);
  const text = Buffer.from('hello from vfio-ts DMA! ', 'latin1');
  for (let i = 0; i < BUF_SIZE; i++) pattern[i] = text[i % text.length]!;
  proc.memory.write(src, pattern);
  say(`filled the first buffer: "${text.toString('latin1').trim()}" repeated`);

  edu.dma(SRC_IOVA, EDU_DMA_BUFFER, BUF_SIZE, false);
  say(`edu DMA: 4 KiB from IOVA ${hex(SRC_IOVA)} into the device buffer at ${hex(EDU_DMA_BUFFER)}`);
  edu.dma(DST_IOVA, EDU_DMA_BUFFER, BUF_SIZE, true);
  say(`edu DMA: 4 KiB from the device buffer back out to IOVA ${hex(DST_IOVA)}`);

  const copy = proc.memory.read(dst, BUF_SIZE);
  const dmaVerified = copy.every((b, i) => b === pattern[i]);
  say(
    dmaVerified
      ? 'compared: the second buffer matches the first, byte for byte'
      : 'compared: MISMATCH after the round trip',
  );
  return { dmaVerified, src, dst };
}

function interruptViaMsi(
  proc: Process,
  io: IoctlCaller,
  deviceFd: number,
  edu: EduDriver,
  say: (t: string) => void,
): bigint {
  const msi = io.struct(deviceFd, v.VFIO_DEVICE_GET_IRQ_INFO, v.vfio_irq_info, {
    argsz: v.vfio_irq_info.size,
    index: v.VFIO_PCI_MSI_IRQ_INDEX,
  }).value;
  say(`MSI: ${msi.count} vector(s)`);
  const efd = proc.eventfd(0, 0);
  const fds = new Uint8Array(4);
  new DataView(fds.buffer).setInt32(0, efd, true);
  io.struct(
    deviceFd,
    v.VFIO_DEVICE_SET_IRQS,
    v.vfio_irq_set,
    {
      argsz: v.vfio_irq_set.size + 4,
      flags: v.VFIO_IRQ_SET_DATA_EVENTFD | v.VFIO_IRQ_SET_ACTION_TRIGGER,
      index: v.VFIO_PCI_MSI_IRQ_INDEX,
      start: 0,
      count: 1,
    },
    { tail: fds },
  );
  say(`VFIO_DEVICE_SET_IRQS: MSI vector 0 now signals eventfd ${efd}`);

  edu.dma(SRC_IOVA, EDU_DMA_BUFFER, BUF_SIZE, false, true);
  say('edu DMA with the "raise interrupt when done" bit set');
  let count = 0n;
  try {
    const b = proc.read(efd, 8);
    count = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'EAGAIN')) throw err;
  }
  const status = edu.irqStatus();
  say(
    count > 0n
      ? `read eventfd ${efd}: ${count} interrupt(s); edu interrupt status ${hex(status)} (DMA done)`
      : 'eventfd read would block: NO interrupt arrived',
  );
  edu.ackIrq(status & EDU_IRQ_DMA ? EDU_IRQ_DMA : status);
  io.struct(deviceFd, v.VFIO_DEVICE_SET_IRQS, v.vfio_irq_set, {
    argsz: v.vfio_irq_set.size,
    flags: v.VFIO_IRQ_SET_DATA_NONE | v.VFIO_IRQ_SET_ACTION_TRIGGER,
    index: v.VFIO_PCI_MSI_IRQ_INDEX,
    start: 0,
    count: 0,
  });
  proc.close(efd);
  say('acknowledged the interrupt, disabled MSI, closed the eventfd');
  return count;
}

function unmappedDmaFaults(
  host: Host,
  proc: Process,
  edu: EduDriver,
  dma: DmaSpace,
  dst: bigint,
  say: (t: string) => void,
): boolean {
  const removed = dma.unmap(DST_IOVA, BUF_SIZE);
  say(`unmapped IOVA ${hex(DST_IOVA)} (${removed} bytes): the device may no longer touch the second buffer`);
  const marker = new Uint8Array(BUF_SIZE).fill(0xee);
  proc.memory.write(dst, marker);
  const faultsBefore = host.machine.iommu.faults.count;
  edu.dma(DST_IOVA, EDU_DMA_BUFFER, BUF_SIZE, true);
  const untouched = proc.memory.read(dst, BUF_SIZE).every((b) => b === 0xee);
  const fault = host.machine.iommu.faults.count > faultsBefore ? host.machine.iommu.faults.last : undefined;
  say(
    `edu DMA to the unmapped IOVA ${hex(DST_IOVA)}: ${untouched ? 'nothing moved, the buffer is unchanged' : 'THE BUFFER CHANGED'}`,
  );
  if (fault) {
    say(
      `IOMMU fault recorded (host view): ${fault.write ? 'write' : 'read'} at IOVA ${hex(fault.iova)} by requester ${hex(fault.requesterId)}: ${fault.reason}`,
    );
  } else {
    say('no IOMMU fault was recorded');
  }
  return untouched && fault !== undefined;
}
