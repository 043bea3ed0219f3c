/**
 * VT-d interrupt remapping: MSIs are DMA writes into the interrupt window 0xfee00000-0xfeefffff,
 * which the IOMMU intercepts before any translation; such writes are interrupt requests, never
 * memory. In remappable format the address names an entry of the interrupt remapping table (IRTE)
 * and the entry says what to deliver; here an entry holds the handler to call.
 *
 * Address layout we produce and decode (VT-d spec, "Interrupt Requests in Remappable Format"):
 *   bits 31:20 0xFEE, bits 19:5 handle[14:0], bit 4 interrupt format (1 = remappable),
 *   bit 3 SHV (subhandle valid), bit 2 handle[15].
 * With SHV set the entry index is handle + data[15:0] (the subhandle), which is how one handle
 * serves a block of multi-message MSI vectors. `allocate` hands out handle = index, SHV = 1,
 * data = 0, so both the address and the data written must match.
 */

export const MSI_WINDOW_START = 0xfee00000n;
export const MSI_WINDOW_LAST = 0xfeefffffn;

const FORMAT_REMAPPABLE = 1 << 4;
const SUBHANDLE_VALID = 1 << 3;

export interface RemappedInterrupt {
  /** Entry index in the remapping table. */
  readonly index: number;
  /** MSI address to program into the device (upper 32 bits are 0). */
  readonly address: bigint;
  /** MSI data to program into the device. */
  readonly data: number;
}

export interface InterruptRemapOptions {
  /** Source-id validation: only this requester may trigger the entry (default: any). */
  readonly requesterId?: number;
}

interface RemapEntry {
  readonly handler: () => void;
  readonly requesterId: number | undefined;
  deliveries: number;
}

/** Why an interrupt request was not delivered; null means delivered. */
export type InterruptRemapFailure = 'format' | 'not-present' | 'source-id' | null;

export class InterruptRemapTable {
  private readonly table: (RemapEntry | undefined)[] = [];
  private used = 0;
  private searchFrom = 0;

  constructor(readonly capacity = 65536) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65536) {
      throw new RangeError(`interrupt remapping table size ${capacity} not in [1, 65536]`);
    }
  }

  /** Entries in use. */
  get allocated(): number {
    return this.used;
  }

  /** Installs an entry calling `handler`; returns the MSI address/data that reach it. */
  allocate(handler: () => void, options: InterruptRemapOptions = {}): RemappedInterrupt {
    let index = this.searchFrom;
    while (index < this.capacity && this.table[index]) index++;
    if (index >= this.capacity) throw new Error('interrupt remapping table full');
    this.table[index] = { handler, requesterId: options.requesterId, deliveries: 0 };
    this.used++;
    this.searchFrom = index + 1;
    return { index, address: encodeAddress(index), data: 0 };
  }

  free(index: number): void {
    if (!this.table[index]) throw new Error(`interrupt remapping entry ${index} is not allocated`);
    this.table[index] = undefined;
    this.used--;
    if (index < this.searchFrom) this.searchFrom = index;
  }

  isAllocated(index: number): boolean {
    return this.table[index] !== undefined;
  }

  /** Interrupts delivered through entry `index` so far (for tests and tracing). */
  deliveries(index: number): number {
    return this.table[index]?.deliveries ?? 0;
  }

  /**
   * Handles a 4-byte write of `data` at `address` (inside the interrupt window) from
   * `requesterId`: calls the entry's handler, or returns why it could not.
   */
  deliver(requesterId: number, address: bigint, data: number): InterruptRemapFailure {
    const low = Number(address & 0xffffffffn);
    if ((low & FORMAT_REMAPPABLE) === 0) return 'format';
    let index = ((low >>> 5) & 0x7fff) | (((low >>> 2) & 1) << 15);
    if (low & SUBHANDLE_VALID) index += data & 0xffff;
    const entry = index < this.capacity ? this.table[index] : undefined;
    if (!entry) return 'not-present';
    if (entry.requesterId !== undefined && entry.requesterId !== requesterId) return 'source-id';
    entry.deliveries++;
    entry.handler();
    return null;
  }
}

function encodeAddress(index: number): bigint {
  const low = 0xfee00000 | ((index & 0x7fff) << 5) | FORMAT_REMAPPABLE | SUBHANDLE_VALID | (((index >>> 15) & 1) << 2);
  return BigInt(low >>> 0);
}
