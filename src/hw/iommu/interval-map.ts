/**
 * An ordered map of non-overlapping closed intervals [start, last] over bigint keys (IO virtual
 * addresses), each carrying a value.
 *
 * This is the structure behind every IOVA space in vfio-ts: the hardware domain's page tables,
 * and (reused by the kernel side) type1's dma list and iommufd's io_pagetable areas. It is an AVL
 * tree ordered by `start`; because intervals never overlap, ordering by start also orders by last,
 * so "which interval contains x" is a floor search. Every operation is O(log n), whatever the
 * interval lengths: a 1 GiB interval costs the same as a 4 KiB one.
 *
 * Entries handed out are the tree's own nodes (typed read-only except `value`): keep them only
 * while they are in the map. Iteration (`overlapping`, `entries`) looks up each successor afresh,
 * so removing the entry just visited, or inserting outside the part still to be visited, during
 * iteration is safe.
 */

export interface IntervalEntry<V> {
  readonly start: bigint;
  /** Inclusive end. */
  readonly last: bigint;
  value: V;
}

class Node<V> implements IntervalEntry<V> {
  left: Node<V> | null = null;
  right: Node<V> | null = null;
  height = 1;

  constructor(
    readonly start: bigint,
    readonly last: bigint,
    public value: V,
  ) {}
}

function heightOf<V>(node: Node<V> | null): number {
  return node ? node.height : 0;
}

function update<V>(node: Node<V>): void {
  const l = heightOf(node.left);
  const r = heightOf(node.right);
  node.height = (l > r ? l : r) + 1;
}

function rotateRight<V>(node: Node<V>): Node<V> {
  const pivot = node.left!;
  node.left = pivot.right;
  pivot.right = node;
  update(node);
  update(pivot);
  return pivot;
}

function rotateLeft<V>(node: Node<V>): Node<V> {
  const pivot = node.right!;
  node.right = pivot.left;
  pivot.left = node;
  update(node);
  update(pivot);
  return pivot;
}

function rebalance<V>(node: Node<V>): Node<V> {
  update(node);
  const balance = heightOf(node.left) - heightOf(node.right);
  if (balance > 1) {
    if (heightOf(node.left!.left) < heightOf(node.left!.right)) node.left = rotateLeft(node.left!);
    return rotateRight(node);
  }
  if (balance < -1) {
    if (heightOf(node.right!.right) < heightOf(node.right!.left)) node.right = rotateRight(node.right!);
    return rotateLeft(node);
  }
  return node;
}

export class IntervalMap<V> {
  private root: Node<V> | null = null;
  private count = 0;
  /** Set by the recursive remove to hand the detached node back without allocating. */
  private removed: Node<V> | null = null;

  get size(): number {
    return this.count;
  }

  /**
   * Adds [start, last]. Throws RangeError when start > last and Error when the interval
   * overlaps one already present (callers decide what an overlap means, e.g. EEXIST, first).
   */
  insert(start: bigint, last: bigint, value: V): IntervalEntry<V> {
    if (start > last)
      throw new RangeError(`interval start 0x${start.toString(16)} is after last 0x${last.toString(16)}`);
    const clash = this.firstOverlapping(start, last);
    if (clash) {
      throw new Error(
        `interval [0x${start.toString(16)}, 0x${last.toString(16)}] overlaps ` +
          `[0x${clash.start.toString(16)}, 0x${clash.last.toString(16)}]`,
      );
    }
    const node = new Node(start, last, value);
    this.root = this.insertNode(this.root, node);
    this.count++;
    return node;
  }

  /** Removes the interval that starts exactly at `start`; returns it, or undefined if none does. */
  remove(start: bigint): IntervalEntry<V> | undefined {
    this.removed = null;
    this.root = this.removeNode(this.root, start);
    const node = this.removed as Node<V> | null;
    this.removed = null;
    if (!node) return undefined;
    this.count--;
    node.left = node.right = null;
    return node;
  }

  clear(): void {
    this.root = null;
    this.count = 0;
  }

  /** The interval containing `point`. */
  find(point: bigint): IntervalEntry<V> | undefined {
    const floor = this.floor(point);
    return floor && floor.last >= point ? floor : undefined;
  }

  /** The lowest interval that ends at or after `point` (the one containing it, else the next). */
  firstEndingAtOrAfter(point: bigint): IntervalEntry<V> | undefined {
    const floor = this.floor(point);
    if (floor && floor.last >= point) return floor;
    return this.ceiling(point);
  }

  /** The lowest interval that shares at least one point with [start, last]. */
  firstOverlapping(start: bigint, last: bigint): IntervalEntry<V> | undefined {
    const candidate = this.firstEndingAtOrAfter(start);
    return candidate && candidate.start <= last ? candidate : undefined;
  }

  /** The interval right after `entry` in order. */
  next(entry: IntervalEntry<V>): IntervalEntry<V> | undefined {
    return this.ceiling(entry.last + 1n);
  }

  first(): IntervalEntry<V> | undefined {
    let node = this.root;
    if (!node) return undefined;
    while (node.left) node = node.left;
    return node;
  }

  lastEntry(): IntervalEntry<V> | undefined {
    let node = this.root;
    if (!node) return undefined;
    while (node.right) node = node.right;
    return node;
  }

  /** Intervals sharing a point with [start, last], in order. */
  *overlapping(start: bigint, last: bigint): IterableIterator<IntervalEntry<V>> {
    let entry = this.firstOverlapping(start, last);
    while (entry && entry.start <= last) {
      const current = entry;
      yield current;
      entry = current.last >= last ? undefined : this.ceiling(current.last + 1n);
    }
  }

  /** All intervals ending at or after `from` (default: all), in order. */
  *entries(from?: bigint): IterableIterator<IntervalEntry<V>> {
    let entry = from === undefined ? this.first() : this.firstEndingAtOrAfter(from);
    while (entry) {
      const current = entry;
      yield current;
      entry = this.ceiling(current.last + 1n);
    }
  }

  [Symbol.iterator](): IterableIterator<IntervalEntry<V>> {
    return this.entries();
  }

  /** Checks the AVL and ordering invariants; for tests. Throws on the first violation. */
  checkInvariants(): void {
    let seen = 0;
    let previousLast: bigint | null = null;
    const walk = (node: Node<V> | null): number => {
      if (!node) return 0;
      const l = walk(node.left);
      if (previousLast !== null && node.start <= previousLast) throw new Error('intervals out of order or overlapping');
      if (node.start > node.last) throw new Error('interval with start > last');
      previousLast = node.last;
      seen++;
      const r = walk(node.right);
      if (Math.abs(l - r) > 1) throw new Error('AVL balance violated');
      if (node.height !== Math.max(l, r) + 1) throw new Error('AVL height stale');
      return node.height;
    };
    walk(this.root);
    if (seen !== this.count) throw new Error(`size ${this.count} but ${seen} nodes`);
  }

  /** Greatest interval with start <= key. */
  private floor(key: bigint): Node<V> | undefined {
    let node = this.root;
    let best: Node<V> | undefined;
    while (node) {
      if (node.start <= key) {
        best = node;
        node = node.right;
      } else {
        node = node.left;
      }
    }
    return best;
  }

  /** Least interval with start >= key. */
  private ceiling(key: bigint): Node<V> | undefined {
    let node = this.root;
    let best: Node<V> | undefined;
    while (node) {
      if (node.start >= key) {
        best = node;
        node = node.left;
      } else {
        node = node.right;
      }
    }
    return best;
  }

  private insertNode(node: Node<V> | null, fresh: Node<V>): Node<V> {
    if (!node) return fresh;
    if (fresh.start < node.start) node.left = this.insertNode(node.left, fresh);
    else node.right = this.insertNode(node.right, fresh);
    return rebalance(node);
  }

  private removeNode(node: Node<V> | null, start: bigint): Node<V> | null {
    if (!node) return null;
    if (start < node.start) {
      node.left = this.removeNode(node.left, start);
    } else if (start > node.start) {
      node.right = this.removeNode(node.right, start);
    } else {
      this.removed = node;
      if (!node.left) return node.right;
      if (!node.right) return node.left;
      // Two children: the in-order successor takes this node's place.
      let successor = node.right;
      while (successor.left) successor = successor.left;
      const rest = this.detachMin(node.right);
      successor.right = rest;
      successor.left = node.left;
      return rebalance(successor);
    }
    return rebalance(node);
  }

  /** Removes the leftmost node of the subtree (the caller already holds it); returns the new subtree. */
  private detachMin(node: Node<V>): Node<V> | null {
    if (!node.left) return node.right;
    node.left = this.detachMin(node.left);
    return rebalance(node);
  }
}
