/**
 * The IOMMU's fault recording: a ring of the most recent faults plus a running count, like VT-d's
 * fault recording registers (which are also used as a ring, with an overflow flag when software
 * does not keep up). Recording a fault changes nothing else in the machine.
 */

/**
 * Why a request was refused:
 * - `blocked`: the requester is attached to no domain (DMA is blocked).
 * - `aperture`: the address is beyond the IOMMU's address width.
 * - `unmapped`: no mapping covers the address.
 * - `permission`: a mapping covers it but lacks read (for a read) or write (for a write) permission.
 * - `interrupt-remap`: a write into the interrupt window that names no valid remapping entry
 *   (or a malformed interrupt request: wrong size, wrong requester for the entry).
 * - `interrupt-read`: a read of the interrupt window, which is never memory.
 */
export type FaultReason = 'blocked' | 'aperture' | 'unmapped' | 'permission' | 'interrupt-remap' | 'interrupt-read';

export interface IommuFault {
  /** 1 for the first fault ever recorded, then counting up; identifies a fault across ring wrap. */
  readonly sequence: number;
  readonly requesterId: number;
  /** First address of the request that could not be translated. */
  readonly iova: bigint;
  readonly write: boolean;
  readonly reason: FaultReason;
  /** Domain the requester was attached to, or null. */
  readonly domainId: number | null;
}

export class FaultLog {
  private readonly ring: (IommuFault | undefined)[];
  private total = 0;
  /** Sequence number up to which software has consumed (cleared) the records. */
  private consumed = 0;
  private readonly listeners = new Set<(fault: IommuFault) => void>();

  constructor(readonly capacity = 256) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`fault log capacity ${capacity}`);
    this.ring = new Array<IommuFault | undefined>(capacity);
  }

  /** Faults recorded since the machine was built (including those the ring has dropped). */
  get count(): number {
    return this.total;
  }

  /** True when more faults happened since the last clear than the ring holds (VT-d's fault overflow). */
  get overflowed(): boolean {
    return this.total - this.consumed > this.capacity;
  }

  record(requesterId: number, iova: bigint, write: boolean, reason: FaultReason, domainId: number | null): IommuFault {
    const fault: IommuFault = { sequence: this.total + 1, requesterId, iova, write, reason, domainId };
    this.ring[this.total % this.capacity] = fault;
    this.total++;
    for (const listener of this.listeners) listener(fault);
    return fault;
  }

  /** The faults still in the ring, oldest first. */
  entries(): IommuFault[] {
    const out: IommuFault[] = [];
    for (let i = Math.max(this.total - this.capacity, this.consumed); i < this.total; i++) {
      out.push(this.ring[i % this.capacity]!);
    }
    return out;
  }

  /** The most recent fault, if any. */
  get last(): IommuFault | undefined {
    return this.total === this.consumed ? undefined : this.ring[(this.total - 1) % this.capacity];
  }

  /** Empties the ring (software consumed the records); the running count stays. */
  clear(): void {
    this.ring.fill(undefined);
    this.consumed = this.total;
  }

  /** Calls `listener` for every fault recorded from now on; returns the unsubscribe function. */
  subscribe(listener: (fault: IommuFault) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
