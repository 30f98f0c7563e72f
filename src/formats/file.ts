/**
 * Low-level file I/O shared by the format readers and the writer: a bounds-checked little-endian
 * reader over a file descriptor, and loops around readSync/writeSync that cope with short counts
 * and files larger than 2 GiB.
 *
 * Every length or count that comes from a file is checked against the bytes that remain before
 * anything is allocated, so a corrupt header fails with a FormatError instead of exhausting memory.
 */
import fs from 'node:fs';
import { FormatError } from '../errors.js';

/** readSync/writeSync take at most ~2 GiB per call; stay well under it. */
export const IO_CHUNK = 1 << 30;

/** How much of the file the reader pulls in per refill. Headers are usually far smaller. */
const READ_AHEAD = 1 << 16;

/** Open a file for reading, turning the usual failures into a FormatError naming the file. */
export function openForRead(path: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new FormatError('cannot_open', path, describeIoError(err));
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new FormatError('cannot_open', path, 'not a regular file');
    return { fd, size: stat.size };
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof FormatError) throw err;
    throw new FormatError('cannot_open', path, describeIoError(err));
  }
}

export function describeIoError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return err instanceof Error ? err.message : String(err);
}

/**
 * Fill `dest` with the file's bytes starting at `position`. Loops because readSync may return
 * fewer bytes than asked; a read of 0 bytes means the file ended early.
 */
export function readFully(fd: number, path: string, dest: Uint8Array, position: number): void {
  let done = 0;
  while (done < dest.byteLength) {
    const want = Math.min(dest.byteLength - done, IO_CHUNK);
    let got: number;
    try {
      got = fs.readSync(fd, dest, done, want, position + done);
    } catch (err) {
      throw new FormatError('io_error', path, `read at offset ${position + done} failed: ${describeIoError(err)}`);
    }
    if (got === 0) {
      throw new FormatError(
        'truncated',
        path,
        `file ended at offset ${position + done} while reading ${dest.byteLength} bytes from offset ${position}`,
      );
    }
    done += got;
  }
}

/** Write all of `data` at the fd's current position, looping over short writes and 1 GiB chunks. */
export function writeFully(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) {
    done += fs.writeSync(fd, data, done, Math.min(data.byteLength - done, IO_CHUNK));
  }
}

/**
 * A forward-only, buffered, bounds-checked little-endian reader over an open file. Every read
 * names what it was reading (`what`) so a truncation error says where the file went wrong.
 */
export class FileReader {
  /** Absolute file offset of the next byte to read. */
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  /** Absolute file offset of buf[0]. */
  private bufStart = 0;
  /** How many bytes of buf hold file data from bufStart on. */
  private bufLen = 0;

  constructor(
    readonly fd: number,
    readonly path: string,
    readonly size: number,
  ) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  /**
   * Make the next `n` bytes available in `buf` and step past them; returns their index in buf.
   * It may replace `buf`, so call it before reading `this.buf` (not inside `this.buf.readX(...)`).
   */
  private take(n: number, what: string): number {
    if (n > this.remaining) {
      throw new FormatError(
        'truncated',
        this.path,
        `${what} at offset ${this.pos} needs ${n} bytes but only ${this.remaining} remain (file size ${this.size})`,
      );
    }
    let at = this.pos - this.bufStart;
    if (at < 0 || at + n > this.bufLen) {
      // Refill from pos. n is bounded by the file size (checked above), so this allocation is too.
      const len = Math.min(Math.max(n, READ_AHEAD), this.remaining);
      if (this.buf.byteLength < len) this.buf = Buffer.allocUnsafe(len);
      readFully(this.fd, this.path, this.buf.subarray(0, len), this.pos);
      this.bufStart = this.pos;
      this.bufLen = len;
      at = 0;
    }
    this.pos += n;
    return at;
  }

  u8(what: string): number {
    const at = this.take(1, what);
    return this.buf[at]!;
  }
  i8(what: string): number {
    const at = this.take(1, what);
    return this.buf.readInt8(at);
  }
  u16(what: string): number {
    const at = this.take(2, what);
    return this.buf.readUInt16LE(at);
  }
  i16(what: string): number {
    const at = this.take(2, what);
    return this.buf.readInt16LE(at);
  }
  u32(what: string): number {
    const at = this.take(4, what);
    return this.buf.readUInt32LE(at);
  }
  i32(what: string): number {
    const at = this.take(4, what);
    return this.buf.readInt32LE(at);
  }
  f32(what: string): number {
    const at = this.take(4, what);
    return this.buf.readFloatLE(at);
  }
  f64(what: string): number {
    const at = this.take(8, what);
    return this.buf.readDoubleLE(at);
  }
  u64(what: string): bigint {
    const at = this.take(8, what);
    return this.buf.readBigUInt64LE(at);
  }
  i64(what: string): bigint {
    const at = this.take(8, what);
    return this.buf.readBigInt64LE(at);
  }

  /**
   * A u64 as a number without going through BigInt (hot: every string length). Exact up to 2^53;
   * above that only approximately right, which is enough for "more than the file holds" checks.
   */
  u64Number(what: string): number {
    const at = this.take(8, what);
    return this.buf.readUInt32LE(at + 4) * 2 ** 32 + this.buf.readUInt32LE(at);
  }

  /** The next n bytes, copied (the internal buffer is reused). */
  bytes(n: number, what: string): Uint8Array {
    const at = this.take(n, what);
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(at, at + n));
    return out;
  }

  /** Decode the next n bytes as UTF-8 (invalid sequences become U+FFFD, as TextDecoder does). */
  utf8(n: number, what: string): string {
    const at = this.take(n, what);
    if (n <= 16) {
      // Most keys and tokens are short ASCII: build them directly, skipping the decoder's overhead.
      let s = '';
      for (let i = at; i < at + n; i++) {
        const c = this.buf[i]!;
        if (c >= 0x80) return this.buf.toString('utf8', at, at + n);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.buf.toString('utf8', at, at + n);
  }

  skip(n: number, what: string): void {
    if (n > this.remaining) this.take(n, what); // throws 'truncated'
    this.pos += n;
  }
}

/**
 * Write `data` to `${path}.tmp-<pid>`, then rename it over `path`: a crash or an error never leaves
 * a half-written file under the real name. Failures are FormatErrors naming `path`.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, path);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    const missingFolder = (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    throw new FormatError('cannot_write', path, missingFolder ? 'its folder does not exist' : describeIoError(err));
  }
}

/**
 * writeFileAtomic for data too large for one buffer: `write(fd)` writes the file's contents to a
 * temp file, which is renamed over `path` once complete (removed on any error).
 */
export function writeFileAtomicWith(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    write(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (err instanceof Error && 'family' in err) throw err; // our own errors, from `write`
    const missingFolder = (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    throw new FormatError('cannot_write', path, missingFolder ? 'its folder does not exist' : describeIoError(err));
  }
}
