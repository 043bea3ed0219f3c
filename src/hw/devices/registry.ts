/**
 * Device models by name: the machine builder looks a topology entry's `model` up here. Each
 * machine gets its own registry (no shared mutable table), so tests and hosts can add models
 * without affecting each other.
 */
import type { DmaBus, PciFunction } from '../pci/function.js';
import { EduDevice, parseEduOptions } from './edu.js';

export interface DeviceModelContext {
  /** Canonical 'DDDD:BB:DD.F'. */
  readonly bdf: string;
  readonly bus: DmaBus;
  /** The topology entry's `options`, as given (plain data). */
  readonly options: Readonly<Record<string, unknown>>;
}

export type DeviceModelFactory = (context: DeviceModelContext) => PciFunction;

/** Thrown when a topology names a model no factory is registered for. */
export class UnknownDeviceModelError extends Error {
  readonly code = 'UNKNOWN_DEVICE_MODEL';

  constructor(
    readonly model: string,
    readonly known: readonly string[],
  ) {
    super(`unknown device model '${model}' (known models: ${known.join(', ') || 'none'})`);
    this.name = 'UnknownDeviceModelError';
  }
}

export class DeviceModelRegistry {
  private readonly factories = new Map<string, DeviceModelFactory>();

  register(name: string, factory: DeviceModelFactory): this {
    if (this.factories.has(name)) throw new Error(`device model '${name}' is already registered`);
    this.factories.set(name, factory);
    return this;
  }

  has(name: string): boolean {
    return this.factories.has(name);
  }

  names(): string[] {
    return [...this.factories.keys()].sort();
  }

  create(name: string, context: DeviceModelContext): PciFunction {
    const factory = this.factories.get(name);
    if (!factory) throw new UnknownDeviceModelError(name, this.names());
    return factory(context);
  }
}

/** A fresh registry holding the built-in models. */
export function defaultDeviceModels(): DeviceModelRegistry {
  return new DeviceModelRegistry().register(
    'edu',
    ({ bdf, bus, options }) => new EduDevice({ bdf, bus, options: parseEduOptions(options) }),
  );
}
