/**
 * An Intel VT-d-like IOMMU: the hardware between PCI requesters and memory.
 *
 * - Each requester id (bus << 8 | devfn) is attached to one domain (its context entry) or to none
 *   (blocked: every DMA faults). Domains hold the translation tables (domain.ts).
 * - Every device DMA goes through `dmaRead` / `dmaWrite` (or `translate`): interrupt window
 *   first, then the aperture, then the attached domain's tables. A failed request is recorded in
 *   the fault log and moves nothing; nothing else changes.
 * - Writes into the interrupt window 0xfee00000-0xfeefffff are interrupt requests handled by the
 *   remapping table (irq-remap.ts), never memory; this range is a reserved region software must
 *   not use as IOVA.
 * - Translation always uses the current tables: we model an IOTLB that software always
 *   invalidates correctly, so there are no stale-translation effects.
 */
import type { MemoryObject } from '../memory.js';
import { safeNumber } from '../../uapi/u64.js';
import { type DmaSegment, IommuDomain } from './domain.js';
import { FaultLog, type FaultReason, type IommuFault } from './fault-log.js';
import { InterruptRemapTable, MSI_WINDOW_LAST, MSI_WINDOW_START } from './irq-remap.js';
import { VTD_PAGE_SIZES, PAGE_SIZE_4K, vtdCapReg, vtdEcapReg } from './vtd-caps.js';

export interface VtdOptions {
  /** IOVA width in bits (default 39: IOVA space [0, 2^39 - 1]); 32 to 57. */
  readonly addressWidth?: number;
  /** Supported page sizes as a bitmap (default 0x40201000: 4 KiB | 2 MiB | 1 GiB). */
  readonly pageSizes?: number | bigint;
  /** Whether second-level dirty tracking is supported (default true). */
  readonly dirtyTracking?: boolean;
  /** Fault log ring size (default 256). */
  readonly faultLogSize?: number;
  /** Interrupt remapping table entries (default 65536). */
  readonly interruptRemapEntries?: number;
}

export interface ReservedRegion {
  readonly start: bigint;
  /** Inclusive end. */
  readonly last: bigint;
  readonly kind: 'msi';
}

export type TranslateResult =
  { readonly ok: true; readonly segments: DmaSegment[] } | { readonly ok: false; readonly fault: IommuFault };

export interface IommuSnapshot {
  readonly domains: ReturnType<IommuDomain['snapshot']>[];
  readonly attachments: { readonly requesterId: number; readonly domainId: number }[];
  readonly faultCount: number;
  readonly interruptEntries: number;
}

const MAX_DOMAINS = 65535;
const MSI_WINDOW_START_NUMBER = Number(MSI_WINDOW_START);
const MSI_WINDOW_LAST_NUMBER = Number(MSI_WINDOW_LAST);
const EMPTY = new Uint8Array(0);

export class VtdIommu {
  readonly addressWidth: number;
  readonly pageSizes: bigint;
  readonly supportsDirtyTracking: boolean;
  /** IOVA space the tables can hold: [0, 2^addressWidth - 1]. */
  readonly aperture: { readonly start: bigint; readonly last: bigint };
  /** Ranges inside the aperture that are never memory (the interrupt window). */
  readonly reservedRegions: readonly ReservedRegion[];
  /** CAP_REG / ECAP_REG as IOMMU_GET_HW_INFO reports them (see vtd-caps.ts for the bits). */
  readonly capReg: bigint;
  readonly ecapReg: bigint;
  readonly faults: FaultLog;
  readonly irqRemap: InterruptRemapTable;

  private readonly domainsById = new Map<number, IommuDomain>();
  private readonly contexts = new Map<number, IommuDomain>();
  /** The context entry the last request used (a one-entry context cache); cleared on attach. */
  private cachedRequester = -1;
  private cachedDomain: IommuDomain | undefined;
  private nextDomainId = 1;
  /** aperture.last as a number, rounded down to stay exact (only compared against exact values). */
  private readonly apertureLastNumber: number;
  /** The buffer of the DMA in progress, for the preallocated copy visitors below. */
  private ioBuffer: Uint8Array = EMPTY;
  private readonly msiScratch = new DataView(new ArrayBuffer(4));

  private readonly readVisitor = (object: MemoryObject, offset: number, length: number, done: number): void => {
    const buffer = this.ioBuffer;
    object.read(offset, length === buffer.length ? buffer : buffer.subarray(done, done + length));
  };

  private readonly writeVisitor = (object: MemoryObject, offset: number, length: number, done: number): void => {
    const buffer = this.ioBuffer;
    object.write(offset, length === buffer.length ? buffer : buffer.subarray(done, done + length));
  };

  constructor(options: VtdOptions = {}) {
    const width = options.addressWidth ?? 39;
    if (!Number.isInteger(width) || width < 32 || width > 57) {
      throw new RangeError(`IOMMU addressWidth ${width} is not an integer in [32, 57]`);
    }
    const pageSizes = BigInt(options.pageSizes ?? 0x40201000);
    if ((pageSizes & PAGE_SIZE_4K) === 0n || (pageSizes & ~VTD_PAGE_SIZES) !== 0n) {
      throw new RangeError(
        `IOMMU pageSizes 0x${pageSizes.toString(16)} must include 4 KiB and only use 4 KiB, 2 MiB and 1 GiB`,
      );
    }
    this.addressWidth = width;
    this.pageSizes = pageSizes;
    this.supportsDirtyTracking = options.dirtyTracking ?? true;
    this.aperture = { start: 0n, last: (1n << BigInt(width)) - 1n };
    this.apertureLastNumber = width >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** width - 1;
    this.reservedRegions = Object.freeze([{ start: MSI_WINDOW_START, last: MSI_WINDOW_LAST, kind: 'msi' as const }]);
    this.faults = new FaultLog(options.faultLogSize ?? 256);
    this.irqRemap = new InterruptRemapTable(options.interruptRemapEntries ?? 65536);
    const inputs = {
      addressWidth: width,
      pageSizes,
      dirtyTracking: this.supportsDirtyTracking,
      faultRecords: this.faults.capacity,
    };
    this.capReg = vtdCapReg(inputs);
    this.ecapReg = vtdEcapReg(inputs);
  }

  /** A new, empty domain (no mappings, no devices). */
  allocDomain(): IommuDomain {
    if (this.domainsById.size >= MAX_DOMAINS) throw new Error('IOMMU out of domain ids');
    while (this.domainsById.has(this.nextDomainId)) this.nextDomainId = (this.nextDomainId % MAX_DOMAINS) + 1;
    const domain = new IommuDomain(this.nextDomainId, this.aperture.last, this.supportsDirtyTracking);
    this.domainsById.set(domain.id, domain);
    this.nextDomainId = (this.nextDomainId % MAX_DOMAINS) + 1;
    return domain;
  }

  /** Frees a domain; it must have no device attached (a kernel-side bug otherwise). */
  freeDomain(domain: IommuDomain): void {
    this.checkOwned(domain);
    const users = this.devicesAttachedTo(domain);
    if (users.length > 0) {
      throw new Error(`IOMMU domain ${domain.id} freed while attached to requester(s) ${users.join(', ')}`);
    }
    this.domainsById.delete(domain.id);
    domain.release();
  }

  get domainCount(): number {
    return this.domainsById.size;
  }

  domains(): IommuDomain[] {
    return [...this.domainsById.values()];
  }

  /** Points the requester's context entry at `domain`; null blocks all its DMA. */
  attachDevice(requesterId: number, domain: IommuDomain | null): void {
    checkRequesterId(requesterId);
    this.cachedRequester = -1;
    this.cachedDomain = undefined;
    if (domain === null) {
      this.contexts.delete(requesterId);
      return;
    }
    this.checkOwned(domain);
    this.contexts.set(requesterId, domain);
  }

  attachedDomain(requesterId: number): IommuDomain | null {
    return this.contexts.get(requesterId) ?? null;
  }

  devicesAttachedTo(domain: IommuDomain): number[] {
    const out: number[] = [];
    for (const [requesterId, attached] of this.contexts) if (attached === domain) out.push(requesterId);
    return out.sort((a, b) => a - b);
  }

  /**
   * The IOMMU's view of a DMA of `length` bytes at `iova`: the memory pieces it reaches, or the
   * fault (recorded in the fault log). Like a real request it sets dirty bits for writes.
   */
  translate(requesterId: number, iova: bigint, length: number, write: boolean): TranslateResult {
    const segments: DmaSegment[] = [];
    const fault = this.walk(requesterId, iova, safeNumber(iova), length, write, (object, offset, n) => {
      segments.push({ object, offset, length: n });
    });
    return fault ? { ok: false, fault } : { ok: true, segments };
  }

  /** A device read of `dst.length` bytes at `iova` into `dst`. False (and a fault) if refused. */
  dmaRead(requesterId: number, iova: bigint, dst: Uint8Array, iovaNumber = safeNumber(iova)): boolean {
    return this.iotlbCopy(requesterId, iovaNumber, dst, false) || this.walkRead(requesterId, iova, iovaNumber, dst);
  }

  private walkRead(requesterId: number, iova: bigint, iovaNumber: number, dst: Uint8Array): boolean {
    // Saved and restored for a nested DMA (a peer BAR's handler starting one); no finally
    // needed, since every request sets the buffer before using it.
    const saved = this.ioBuffer;
    this.ioBuffer = dst;
    const ok = this.walk(requesterId, iova, iovaNumber, dst.length, false, this.readVisitor) === null;
    this.ioBuffer = saved;
    return ok;
  }

  /**
   * A device write of `src` at `iova`. A 4-byte write into the interrupt window is an interrupt
   * request for the remapping table. False (and a fault) if refused.
   */
  dmaWrite(requesterId: number, iova: bigint, src: Uint8Array, iovaNumber = safeNumber(iova)): boolean {
    const at = iovaNumber; // -1 past 2^53, far from the window
    if (src.length > 0 && at <= MSI_WINDOW_LAST_NUMBER && at + src.length > MSI_WINDOW_START_NUMBER) {
      return this.interruptRequest(requesterId, iova, src);
    }
    return this.iotlbCopy(requesterId, at, src, true) || this.walkWrite(requesterId, iova, at, src);
  }

  private walkWrite(requesterId: number, iova: bigint, at: number, src: Uint8Array): boolean {
    const saved = this.ioBuffer; // as in walkRead
    this.ioBuffer = src;
    const ok = this.walk(requesterId, iova, at, src.length, true, this.writeVisitor) === null;
    this.ioBuffer = saved;
    return ok;
  }

  snapshot(): IommuSnapshot {
    return {
      domains: this.domains().map((domain) => domain.snapshot()),
      attachments: [...this.contexts]
        .map(([requesterId, domain]) => ({ requesterId, domainId: domain.id }))
        .sort((a, b) => a.requesterId - b.requesterId),
      faultCount: this.faults.count,
      interruptEntries: this.irqRemap.allocated,
    };
  }

  private walk(
    requesterId: number,
    iova: bigint,
    at: number,
    length: number,
    write: boolean,
    visit: (object: MemoryObject, offset: number, length: number, done: number) => void,
  ): IommuFault | null {
    if (length <= 0) return null;
    const domain = this.contextEntry(requesterId);
    if (!this.ordinary(at, length) || domain === undefined) {
      const refused = this.refuse(requesterId, iova, length, write, domain);
      if (refused !== null || domain === undefined) return refused;
    }
    const failed = domain.access(iova, length, write, visit, at);
    return failed ? this.fault(requesterId, failed.iova, write, failed.reason, domain) : null;
  }

  /** The fast path of a device copy: an ordinary request that hits its domain's IOTLB entry. */
  private iotlbCopy(requesterId: number, at: number, buffer: Uint8Array, write: boolean): boolean {
    const domain = this.contextEntry(requesterId);
    return domain !== undefined && this.ordinary(at, buffer.length) && domain.copyOnHit(at, buffer, write);
  }

  /**
   * Whether a request of `length` (> 0) bytes at `at` (safeNumber of its IOVA) is inside the
   * aperture and outside the interrupt window, decided in plain numbers; false also when it
   * cannot be decided that way (past 2^53), for refuse() to settle in bigint.
   */
  private ordinary(at: number, length: number): boolean {
    const end = at + length - 1;
    return at >= 0 && end <= this.apertureLastNumber && (at > MSI_WINDOW_LAST_NUMBER || end < MSI_WINDOW_START_NUMBER);
  }

  /** The fault for a request off the fast path, or null if it is fine after all (IOVAs past 2^53). */
  private refuse(
    requesterId: number,
    iova: bigint,
    length: number,
    write: boolean,
    domain: IommuDomain | undefined,
  ): IommuFault | null {
    const last = iova + BigInt(length - 1);
    if (iova <= MSI_WINDOW_LAST && last >= MSI_WINDOW_START) {
      return this.fault(requesterId, iova, write, write ? 'interrupt-remap' : 'interrupt-read', domain);
    }
    if (iova < 0n || last > this.aperture.last) return this.fault(requesterId, iova, write, 'aperture', domain);
    if (!domain) return this.fault(requesterId, iova, write, 'blocked', domain);
    return null;
  }

  private contextEntry(requesterId: number): IommuDomain | undefined {
    if (requesterId === this.cachedRequester) return this.cachedDomain;
    const domain = this.contexts.get(requesterId);
    this.cachedRequester = requesterId;
    this.cachedDomain = domain;
    return domain;
  }

  private interruptRequest(requesterId: number, iova: bigint, src: Uint8Array): boolean {
    const inside = iova >= MSI_WINDOW_START && iova + BigInt(src.length) - 1n <= MSI_WINDOW_LAST;
    if (inside && src.length === 4 && (iova & 3n) === 0n) {
      const scratch = this.msiScratch;
      for (let i = 0; i < 4; i++) scratch.setUint8(i, src[i]!);
      if (this.irqRemap.deliver(requesterId, iova, scratch.getUint32(0, true)) === null) return true;
    }
    this.fault(requesterId, iova, true, 'interrupt-remap', this.contexts.get(requesterId));
    return false;
  }

  private fault(
    requesterId: number,
    iova: bigint,
    write: boolean,
    reason: FaultReason,
    domain: IommuDomain | undefined,
  ): IommuFault {
    return this.faults.record(requesterId, iova, write, reason, domain ? domain.id : null);
  }

  private checkOwned(domain: IommuDomain): void {
    if (this.domainsById.get(domain.id) !== domain) {
      throw new Error(`IOMMU domain ${domain.id} does not belong to this IOMMU (or was freed)`);
    }
  }
}

function checkRequesterId(requesterId: number): void {
  if (!Number.isInteger(requesterId) || requesterId < 0 || requesterId > 0xffff) {
    throw new RangeError(`requester id ${requesterId} is not a 16-bit bus/devfn`);
  }
}
