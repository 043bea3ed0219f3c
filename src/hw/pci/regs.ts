/**
 * PCI configuration-space register offsets and bits (the PCI Local Bus / PCIe Base specs; Linux
 * names them in include/uapi/linux/pci_regs.h). Only what the machine and its users need.
 */

export const PCI_CONFIG_SPACE_SIZE = 256;
export const PCIE_CONFIG_SPACE_SIZE = 4096;

// Type 0 header.
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;
export const PCI_STD_HEADER_SIZEOF = 0x40;
export const PCI_NUM_BARS = 6;

// COMMAND bits.
export const PCI_COMMAND_IO = 0x0001;
export const PCI_COMMAND_MEMORY = 0x0002;
export const PCI_COMMAND_MASTER = 0x0004;
export const PCI_COMMAND_PARITY = 0x0040;
export const PCI_COMMAND_SERR = 0x0100;
export const PCI_COMMAND_INTX_DISABLE = 0x0400;

// STATUS bits.
export const PCI_STATUS_INTERRUPT = 0x0008;
export const PCI_STATUS_CAP_LIST = 0x0010;

// BAR low bits.
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;

// Capability ids (standard list) and the first extended capability.
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_CFG_SPACE_EXP_START = 0x100;

// MSI capability.
export const PCI_MSI_FLAGS = 0x02;
export const PCI_MSI_FLAGS_ENABLE = 0x0001;
export const PCI_MSI_FLAGS_QMASK = 0x000e;
export const PCI_MSI_FLAGS_QSIZE = 0x0070;
export const PCI_MSI_FLAGS_64BIT = 0x0080;
export const PCI_MSI_FLAGS_MASKBIT = 0x0100;
export const PCI_MSI_ADDRESS_LO = 0x04;
export const PCI_MSI_ADDRESS_HI = 0x08;
export const PCI_MSI_DATA_32 = 0x08;
export const PCI_MSI_DATA_64 = 0x0c;
export const PCI_MSI_MASK_32 = 0x0c;
export const PCI_MSI_MASK_64 = 0x10;
export const PCI_MSI_PENDING_32 = 0x10;
export const PCI_MSI_PENDING_64 = 0x14;
