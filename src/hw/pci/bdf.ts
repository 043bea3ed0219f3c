/**
 * PCI function addresses: 'DDDD:BB:DD.F' (segment, bus, device, function), as sysfs spells them,
 * and the 16-bit requester id (bus << 8 | device << 3 | function) the IOMMU sees on every DMA.
 */

export interface PciAddress {
  readonly segment: number;
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}

const BDF_PATTERN = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i;

/** Parses '0000:00:03.0' (the segment may be omitted: '00:03.0'). Throws on anything else. */
export function parseBdf(bdf: string): PciAddress {
  const match = BDF_PATTERN.exec(bdf);
  if (!match) throw new Error(`'${bdf}' is not a PCI address like 0000:00:03.0`);
  const device = parseInt(match[3]!, 16);
  if (device > 0x1f) throw new Error(`'${bdf}': device number 0x${device.toString(16)} is above 0x1f`);
  return {
    segment: parseInt(match[1] ?? '0', 16),
    bus: parseInt(match[2]!, 16),
    device,
    function: parseInt(match[4]!, 10),
  };
}

/** The canonical, lower-case, segment-qualified spelling. */
export function formatBdf(address: PciAddress): string {
  const hex = (value: number, digits: number) => value.toString(16).padStart(digits, '0');
  return `${hex(address.segment, 4)}:${hex(address.bus, 2)}:${hex(address.device, 2)}.${address.function}`;
}

export function requesterIdOf(address: PciAddress): number {
  return (address.bus << 8) | (address.device << 3) | address.function;
}
