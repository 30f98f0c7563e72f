/**
 * The wasm backend's heap: one shared WebAssembly.Memory holding every tensor (weights, KV cache,
 * activations, scratch), carved up by a small first-fit allocator written in JS.
 *
 * - Blocks are 64-byte aligned (a cache line; also what SIMD loads like best).
 * - Free blocks live in an address-sorted list and merge with free neighbours, so freeing the
 *   activations of a big batch gives back one big block.
 * - The memory grows on demand, up to 65536 pages (4 GiB, the wasm32 limit). Shared buffers never
 *   detach when the memory grows, so views made before stay valid; each growth gives a new
 *   SharedArrayBuffer object, and `owns` recognises all of them.
 * - Memory past the highest address ever handed out is still zero (fresh pages), so allocations
 *   there skip the zero-fill; reused blocks are cleared.
 */
import { ResourceError } from '../../errors.js';
import { wasmApi, type WasmMemory } from './wasm-api.js';

const PAGE = 65536;
export const MAX_PAGES = 65536;
/** The most bytes a wasm32 memory can have: 4 GiB. */
export const MAX_BYTES = MAX_PAGES * PAGE;
const ALIGN = 64;
/** Addresses below this are never handed out, so a 0 pointer is always a bug. */
const BASE = 1024;

interface Block {
  addr: number;
  size: number;
}

const alignUp = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export class WasmHeap {
  readonly memory: WasmMemory;
  private buffer: SharedArrayBuffer;
  private readonly buffers = new Set<ArrayBufferLike>();
  /** Free blocks below `top`, sorted by address, never adjacent (they merge) and never touching top. */
  private readonly free: Block[] = [];
  /** Sizes of live allocations by address. */
  private readonly live = new Map<number, number>();
  /** Everything at or above top is unallocated. */
  private top = BASE;
  /** Everything at or above clean has never been handed out, so it is still zero. */
  private clean = BASE;

  constructor(initialBytes = 16 * 2 ** 20) {
    const initial = Math.max(1, Math.ceil(initialBytes / PAGE));
    this.memory = new wasmApi.Memory({ initial, maximum: MAX_PAGES, shared: true });
    this.buffer = this.memory.buffer as SharedArrayBuffer;
    this.buffers.add(this.buffer);
  }

  /** Bytes the memory has now. */
  get byteLength(): number {
    return this.buffer.byteLength;
  }

  /** Bytes in live allocations (aligned sizes). */
  get usedBytes(): number {
    let n = 0;
    for (const size of this.live.values()) n += size;
    return n;
  }

  /** Is this buffer one of this memory's (any growth generation)? */
  owns(buffer: ArrayBufferLike): boolean {
    return this.buffers.has(buffer);
  }

  /** A zero-filled byte range of at least `bytes` bytes; returns its address. */
  alloc(bytes: number): number {
    const size = alignUp(Math.max(bytes, 1));
    const addr = this.takeFree(size) ?? this.takeTop(size);
    this.live.set(addr, size);
    const dirtyEnd = Math.min(addr + size, this.clean);
    if (addr < dirtyEnd) new Uint8Array(this.buffer, addr, dirtyEnd - addr).fill(0);
    this.clean = Math.max(this.clean, addr + size);
    return addr;
  }

  /** Give back the block at `addr` (an address `alloc` returned). */
  release(addr: number): void {
    const size = this.live.get(addr);
    if (size === undefined) throw new Error(`wasm heap: free of address ${addr}, which is not the start of a live allocation (views cannot be freed)`);
    this.live.delete(addr);
    this.insertFree({ addr, size });
  }

  /** Copy `bytes` bytes from address src to address dst (the ranges may overlap). */
  copy(dst: number, src: number, bytes: number): void {
    const lo = Math.min(dst, src);
    const span = new Uint8Array(this.buffer, lo, Math.max(dst, src) + bytes - lo);
    span.copyWithin(dst - lo, src - lo, src - lo + bytes);
  }

  /** A Uint8Array on [addr, addr + length) of the current buffer. */
  view(addr: number, length: number): Uint8Array {
    return new Uint8Array(this.buffer, addr, length);
  }

  private takeFree(size: number): number | undefined {
    for (let i = 0; i < this.free.length; i++) {
      const block = this.free[i]!;
      if (block.size < size) continue;
      const addr = block.addr;
      if (block.size === size) this.free.splice(i, 1);
      else {
        block.addr += size;
        block.size -= size;
      }
      return addr;
    }
    return undefined;
  }

  private takeTop(size: number): number {
    const addr = this.top;
    this.ensure(addr + size, size);
    this.top = addr + size;
    return addr;
  }

  /** Grow the memory to hold `end` bytes (by at least half again, to keep growth rare). */
  private ensure(end: number, request: number): void {
    const have = this.buffer.byteLength;
    if (end <= have) return;
    const limit = MAX_PAGES * PAGE;
    if (end > limit) {
      throw new ResourceError(
        'out_of_memory',
        `wasm backend: allocating ${mib(request)} needs ${mib(end)} of wasm memory, over the 4096 MiB limit of wasm32 (${mib(this.usedBytes)} in use)`,
      );
    }
    const want = Math.min(limit, Math.max(end, Math.floor(have * 1.5)));
    const pages = Math.ceil(want / PAGE) - have / PAGE;
    try {
      this.memory.grow(pages);
    } catch {
      // the bigger step failed: try exactly what is needed
      try {
        this.memory.grow(Math.ceil(end / PAGE) - have / PAGE);
      } catch (err) {
        throw new ResourceError(
          'out_of_memory',
          `wasm backend: cannot grow wasm memory from ${mib(have)} to ${mib(end)} for an allocation of ${mib(request)}: ${(err as Error).message}`,
        );
      }
    }
    this.buffer = this.memory.buffer as SharedArrayBuffer;
    this.buffers.add(this.buffer);
  }

  private insertFree(block: Block): void {
    // binary search for the first free block after this one
    let lo = 0;
    let hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid]!.addr < block.addr) lo = mid + 1;
      else hi = mid;
    }
    const prev = this.free[lo - 1];
    const next = this.free[lo];
    if (prev && prev.addr + prev.size === block.addr) {
      prev.size += block.size;
      if (next && prev.addr + prev.size === next.addr) {
        prev.size += next.size;
        this.free.splice(lo, 1);
      }
    } else if (next && block.addr + block.size === next.addr) {
      next.addr = block.addr;
      next.size += block.size;
    } else {
      this.free.splice(lo, 0, block);
    }
    // a free block touching top goes back to the unallocated tail
    const last = this.free[this.free.length - 1];
    if (last && last.addr + last.size === this.top) {
      this.top = last.addr;
      this.free.pop();
    }
  }
}
