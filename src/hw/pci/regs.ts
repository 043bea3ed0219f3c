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

// Registers inside further capabilities (offsets from the capability start), as pci_regs.h names them.
export const PCI_CAP_LIST_ID = 0;
export const PCI_CAP_LIST_NEXT = 1;
export const PCI_CAP_FLAGS = 2;
export const PCI_PM_PMC = 2;
export const PCI_PM_CAP_PME_MASK = 0xf800;
export const PCI_PM_CTRL = 4;
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
export const PCI_PM_CTRL_PME_ENABLE = 0x0100;
export const PCI_PM_CTRL_PME_STATUS = 0x8000;
export const PCI_VPD_ADDR = 2;
export const PCI_VPD_DATA = 4;
export const PCI_X_CMD = 2;
export const PCI_X_ECC_CSR = 4;
export const PCI_EXP_FLAGS = 2;
export const PCI_EXP_FLAGS_VERS = 0x000f;
export const PCI_EXP_FLAGS_TYPE = 0x00f0;
export const PCI_EXP_TYPE_RC_END = 0x9;
export const PCI_EXP_DEVCAP = 4;
export const PCI_EXP_DEVCAP_FLR = 0x10000000;
export const PCI_EXP_DEVCTL = 8;
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
export const PCI_EXP_DEVCTL_PHANTOM = 0x0200;
export const PCI_EXP_DEVCTL_READRQ = 0x7000;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
export const PCI_EXP_DEVCTL2 = 0x28;
export const PCI_EXP_DEVCTL2_ARI = 0x0020;
export const PCI_AF_CAP = 3;
export const PCI_AF_CAP_TP = 0x01;
export const PCI_AF_CAP_FLR = 0x02;
export const PCI_AF_CTRL = 4;
export const PCI_AF_CTRL_FLR = 0x01;
export const PCI_ERR_UNCOR_STATUS = 0x04;
export const PCI_ERR_UNCOR_MASK = 0x08;
export const PCI_ERR_UNCOR_SEVER = 0x0c;
export const PCI_ERR_COR_STATUS = 0x10;
export const PCI_ERR_COR_MASK = 0x14;
export const PCI_ERR_CAP = 0x18;
export const PCI_ERR_ROOT_COMMAND = 0x2c;
export const PCI_PWR_DATA = 4;
export const PCI_CAP_ID_AF = 0x13;
export const PCI_CAP_ID_MAX = 0x14;
export const PCI_EXT_CAP_ID_ERR = 0x01;
export const PCI_EXT_CAP_ID_PWR = 0x04;
export const PCI_EXT_CAP_ID_VNDR = 0x0b;
export const PCI_EXT_CAP_ID_DVSEC = 0x23;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_TABLE_BIR = 0x7;
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
