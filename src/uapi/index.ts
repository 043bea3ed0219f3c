/** The uAPI shared by the userspace and kernel sides: one module per header, plus codecs. */
export * from './errno.js';
export * from './ioctl.js';
export * from './layout.js';
export * from './vfio.js';
export * from './iommufd.js';
export * from './capability.js';
