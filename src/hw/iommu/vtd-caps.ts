/**
 * VT-d capability (CAP_REG, offset 0x08) and extended capability (ECAP_REG, offset 0x10) register
 * values derived from the IOMMU model's options; iommufd's IOMMU_GET_HW_INFO hands them to
 * userspace (struct iommu_hw_info_vtd) and the kernel side reads them the way intel-iommu does.
 *
 * Bits we set (VT-d spec, chapter 11 "Register Descriptions"):
 * CAP_REG
 *   2:0   ND     number of domain ids: 6 = 16-bit ids (65536 domains)
 *   12:8  SAGAW  supported adjusted guest address widths: bit 1 = 39-bit (3-level tables),
 *                bit 2 = 48-bit (4-level), bit 3 = 57-bit (5-level); we report every level up to
 *                the one the address width needs, as QEMU's VT-d does
 *   21:16 MGAW   maximum guest address width - 1
 *   33:24 FRO    fault recording register offset / 16 (0x22: at 0x220, as on the reference guest)
 *   37:34 SLLPS  second-level large pages: bit 34 = 2 MiB, bit 35 = 1 GiB (from `pageSizes`)
 *   39    PSI    page-selective invalidation
 *   47:40 NFR    number of fault recording registers - 1 (our fault log ring size, at most 256)
 *   53:48 MAMV   maximum address mask value for page-selective invalidation (18, as reference)
 *   54    DWD, 55 DRD  write / read draining
 * ECAP_REG
 *   1     QI     queued invalidation
 *   3     IR     interrupt remapping (the MSI window is remapped, see irq-remap.ts)
 *   6     PT     pass-through
 *   17:8  IRO    IOTLB register offset / 16 (0xf: at 0xf0, as reference)
 *   23:20 MHMV   maximum handle mask value (0xf, as reference)
 *   43    SMTS   scalable mode, 46 SLTS second-level translation, 45 SLADS second-level
 *                accessed/dirty bits: set together when dirty tracking is supported, since Linux
 *                only uses SLADS in scalable mode (ssads_supported = sm_supported && ecap_slads)
 *
 * The reference 6.12 guest (QEMU's VT-d, 39 bits) reported cap 0xd2008c22260286 and ecap
 * 0xf00f4a. We differ in CM (bit 7, caching mode: a property of virtual IOMMUs, not set here),
 * NFR (ours reflects the fault ring), and the dirty-tracking bits above.
 */

export interface VtdCapabilityInputs {
  readonly addressWidth: number;
  readonly pageSizes: bigint;
  readonly dirtyTracking: boolean;
  readonly faultRecords: number;
}

export const PAGE_SIZE_4K = 1n << 12n;
export const PAGE_SIZE_2M = 1n << 21n;
export const PAGE_SIZE_1G = 1n << 30n;
/** Every page size the model can advertise: 4 KiB | 2 MiB | 1 GiB. */
export const VTD_PAGE_SIZES = PAGE_SIZE_4K | PAGE_SIZE_2M | PAGE_SIZE_1G;

function field(value: number | bigint, shift: number): bigint {
  return BigInt(value) << BigInt(shift);
}

export function vtdCapReg(inputs: VtdCapabilityInputs): bigint {
  const width = inputs.addressWidth;
  const sagaw = width <= 39 ? 0b0010 : width <= 48 ? 0b0110 : 0b1110;
  let sllps = 0;
  if (inputs.pageSizes & PAGE_SIZE_2M) sllps |= 1;
  if (inputs.pageSizes & PAGE_SIZE_1G) sllps |= 2;
  const nfr = Math.min(inputs.faultRecords, 256) - 1;
  return (
    field(6, 0) |
    field(sagaw, 8) |
    field(width - 1, 16) |
    field(0x22, 24) |
    field(sllps, 34) |
    field(1, 39) |
    field(nfr, 40) |
    field(18, 48) |
    field(1, 54) |
    field(1, 55)
  );
}

export function vtdEcapReg(inputs: VtdCapabilityInputs): bigint {
  let ecap = field(1, 1) | field(1, 3) | field(1, 6) | field(0xf, 8) | field(0xf, 20);
  if (inputs.dirtyTracking) ecap |= field(1, 43) | field(1, 45) | field(1, 46);
  return ecap;
}
