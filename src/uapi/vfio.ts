/**
 * linux/vfio.h as data: every ioctl number, flag, constant and struct layout, under the kernel's
 * names. Constants are SCREAMING_CASE as in C, layouts are `Struct`s named as the C struct, and
 * each layout's value type is the PascalCase form of that name.
 *
 * Several ioctl numbers are shared between fd types (VFIO_IOMMU_GET_INFO ==
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, ...): dispatch by fd type, never by number alone.
 */
export * from './vfio/container.js';
export * from './vfio/device.js';
export * from './vfio/feature.js';
export * from './vfio/type1.js';
export * from './vfio/spapr.js';
export * from './vfio/minsz.js';
