/**
 * Training data, from text files to batches:
 *
 *   1. Sources: a file, or a folder's .txt and .jsonl files (recursively, in sorted order of their
 *      paths). A .jsonl file holds one JSON object per line with a string "text" field (blank
 *      lines skipped); any other file is one document of UTF-8 text.
 *   2. A tokenizer: 'char' (CharTokenizer: the corpus's sorted characters, as nanoGPT's
 *      shakespeare_char) or any file loadTokenizer reads (a tokenizer.json from `smallmind
 *      tokenizer train`, a GGUF, ...).
 *   3. Tokenized once into a binary cache file: documents in order, each encoded without BOS/EOS,
 *      with a separator between two documents (the tokenizer's EOS where it has one, as nanoGPT's
 *      openwebtext preparation appends its end-of-text token; a "\n" for the character tokenizer).
 *      The file name carries a hash of the sources' bytes and the tokenizer, so changing either
 *      tokenizes again; it is written atomically. Tokens are uint16 when the vocabulary fits, else
 *      uint32.
 *   4. A split by tokens: the first (1 − val_fraction) train, the rest validation (nanoGPT's
 *      `data[:int(n*0.9)]` for the default 0.1).
 *   5. Batches [B, T] of inputs and targets (the same windows shifted by one token), Int32Array
 *      row-major. 'random' sampling is nanoGPT's get_batch: B random starts in
 *      [0, len − T) per batch. 'shuffle' cuts the split into non-overlapping windows and visits
 *      them in a fresh seeded order each epoch. Samplers use our deterministic RNG and their state
 *      is plain JSON, so a resumed run draws exactly the batches the uninterrupted run would have.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FormatError, RequestError } from '../errors.js';
import { describeIoError, openForRead, readFully, writeFully } from '../formats/file.js';
import { readTokenizerJson } from '../formats/tokenizer-json.js';
import { readGGUF } from '../formats/gguf.js';
import { isGGUFFile, loadTokenizer, tokenizerFromGGUF, type Tokenizer } from '../tokenizers/index.js';
import { Xoshiro128 } from '../tensor/random.js';
import { CharTokenizer, charTokenizerFromJson } from './char-tokenizer.js';

// ---------------------------------------------------------------------------------------------
// Sources

/** File kinds a folder contributes; a file named directly is read whatever its extension. */
export const DATA_EXTENSIONS = ['.txt', '.jsonl'] as const;

/** The files a data path names: the file itself, or the folder's .txt/.jsonl files, recursively, sorted by path. */
export function listDataFiles(dataPath: string): string[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dataPath);
  } catch (err) {
    throw new FormatError('cannot_open', dataPath, describeIoError(err));
  }
  if (stat.isFile()) return [dataPath];
  const files = (fs.readdirSync(dataPath, { recursive: true }) as string[])
    .filter((rel) => DATA_EXTENSIONS.some((ext) => rel.endsWith(ext)))
    .map((rel) => path.join(dataPath, rel))
    .filter((file) => fs.statSync(file).isFile())
    .sort(); // code unit order: the same on every platform, whatever readdir returns
  if (files.length === 0) throw new RequestError('empty_dataset', 'data', `${dataPath}: the folder has no ${DATA_EXTENSIONS.join(' or ')} files`);
  return files;
}

function readText(file: string): string {
  const { fd, size } = openForRead(file);
  try {
    const bytes = Buffer.allocUnsafe(size);
    readFully(fd, file, bytes, 0);
    return bytes.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** A .jsonl file's lines with their 1-based numbers, read in chunks (the file need not fit in one string). */
function* fileLines(file: string): Generator<[lineNumber: number, line: string]> {
  const { fd, size } = openForRead(file);
  const chunk = Buffer.allocUnsafe(1 << 20);
  let carry = Buffer.alloc(0);
  let lineNumber = 0;
  try {
    for (let pos = 0; pos < size; ) {
      const n = Math.min(chunk.length, size - pos);
      readFully(fd, file, chunk.subarray(0, n), pos);
      pos += n;
      let data = Buffer.concat([carry, chunk.subarray(0, n)]);
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a)) {
        yield [++lineNumber, data.toString('utf8', 0, nl)];
        data = data.subarray(nl + 1);
      }
      carry = Buffer.from(data);
    }
    if (carry.length > 0) yield [++lineNumber, carry.toString('utf8')];
  } finally {
    fs.closeSync(fd);
  }
}

/** The documents of one file: each line's "text" of a .jsonl file; the whole text of any other file. */
export function* readDocuments(file: string): Generator<string> {
  if (!file.endsWith('.jsonl')) {
    yield readText(file);
    return;
  }
  for (const [lineNumber, line] of fileLines(file)) {
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new FormatError('bad_jsonl', file, `line ${lineNumber}: not valid JSON: ${(err as Error).message}`);
    }
    const text = typeof record === 'object' && record !== null && !Array.isArray(record) ? (record as Record<string, unknown>).text : undefined;
    if (typeof text !== 'string') throw new FormatError('bad_jsonl', file, `line ${lineNumber}: expected an object with a string field "text"`);
    yield text;
  }
}

function* allDocuments(files: readonly string[]): Generator<string> {
  for (const file of files) yield* readDocuments(file);
}

// ---------------------------------------------------------------------------------------------
// Tokenizers

/** A tokenizer for training, with a key that changes whenever its encoding could (part of the cache key). */
export interface TrainingTokenizer {
  tokenizer: Tokenizer;
  key: string;
  /** The separator put between two documents. */
  separator: number[];
}

function sha256(...parts: (string | Uint8Array)[]): string {
  const hash = crypto.createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/** The character tokenizer over these files' documents (their characters, and the "\n" that separates documents). */
export function charTokenizerForFiles(files: readonly string[]): TrainingTokenizer {
  const chars = new Set<string>();
  let documents = 0;
  for (const text of allDocuments(files)) {
    documents++;
    for (const ch of text) chars.add(ch);
  }
  if (chars.size === 0) throw new RequestError('empty_dataset', 'data', `${files.join(', ')}: no text (the data is empty)`);
  if (documents > 1) chars.add('\n');
  return charTraining(CharTokenizer.fromTexts(chars));
}

function charTraining(tokenizer: CharTokenizer): TrainingTokenizer {
  const separator = tokenizer.chars.includes('\n') ? tokenizer.encode('\n') : [];
  return { tokenizer, key: sha256('char\0', tokenizer.chars.join('')), separator };
}

/** Hugging Face tokenizer files: what loadTokenizer reads from a folder, or beside a tokenizer.json / vocab.json. */
const HF_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt'];

/**
 * The tokenizer a path names. A tokenizer.json that CharTokenizer wrote comes back as one;
 * anything else goes through loadTokenizer. The key hashes what decides the encoding: a GGUF
 * file's tokenizer.* metadata (not its weights), else the bytes of the tokenizer files.
 */
export function loadTrainingTokenizer(tokenizerPath: string): TrainingTokenizer {
  let isFolder: boolean;
  try {
    isFolder = fs.statSync(tokenizerPath).isDirectory();
  } catch (err) {
    throw new FormatError('cannot_open', tokenizerPath, describeIoError(err));
  }
  if (!isFolder && isGGUFFile(tokenizerPath)) {
    const file = readGGUF(tokenizerPath);
    const metadata = [...file.metadata].filter(([key]) => key.startsWith('tokenizer.')).sort(([a], [b]) => (a < b ? -1 : 1));
    const text = JSON.stringify(metadata, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v));
    return withSeparator(tokenizerFromGGUF(file), sha256('gguf\0', text));
  }
  const folder = isFolder ? tokenizerPath : path.dirname(tokenizerPath);
  const jsonPath = isFolder ? path.join(folder, 'tokenizer.json') : tokenizerPath;
  if (jsonPath.endsWith('.json') && path.basename(jsonPath) !== 'vocab.json' && fs.existsSync(jsonPath)) {
    const char = charTokenizerFromJson(readTokenizerJson(jsonPath));
    if (char) return charTraining(char);
  }
  const tokenizer = loadTokenizer(tokenizerPath);
  const files = [...new Set([...(isFolder ? [] : [tokenizerPath]), ...HF_TOKENIZER_FILES.map((f) => path.join(folder, f))])].filter((f) => fs.existsSync(f));
  return withSeparator(tokenizer, sha256('file\0', ...files.flatMap((f) => [path.basename(f), '\0', fs.readFileSync(f)])));
}

/** Documents are separated by the tokenizer's EOS (nanoGPT's openwebtext preparation appends one to each). */
function withSeparator(tokenizer: Tokenizer, key: string): TrainingTokenizer {
  return { tokenizer, key, separator: tokenizer.eos >= 0 ? [tokenizer.eos] : [] };
}

// ---------------------------------------------------------------------------------------------
// Token streams and the cache file

/** A read-only sequence of token ids. */
export interface TokenStream {
  readonly length: number;
  /** Copy tokens [start, start + dest.length) into dest. */
  read(start: number, dest: Int32Array): void;
}

/** Tokens held in memory. */
export class MemoryTokens implements TokenStream {
  constructor(private readonly tokens: Uint16Array | Uint32Array | Int32Array) {}
  get length(): number {
    return this.tokens.length;
  }
  read(start: number, dest: Int32Array): void {
    checkRange(start, dest.length, this.length);
    for (let i = 0; i < dest.length; i++) dest[i] = this.tokens[start + i];
  }
}

function checkRange(start: number, count: number, length: number): void {
  if (!Number.isInteger(start) || start < 0 || start + count > length) {
    throw new RequestError('out_of_range', 'start', `tokens [${start}, ${start + count}) are outside the stream of ${length} tokens`);
  }
}

/** A window [offset, offset + length) of another stream (the train and validation splits). */
export class TokenSlice implements TokenStream {
  constructor(private readonly source: TokenStream, private readonly offset: number, readonly length: number) {
    checkRange(offset, length, source.length);
  }
  read(start: number, dest: Int32Array): void {
    checkRange(start, dest.length, this.length);
    this.source.read(this.offset + start, dest);
  }
}

/**
 * The cache file: a 32-byte header, then the tokens little-endian.
 *   0  "SMTOKENS"   8  u32 version (1)   12 u32 bytes per token (2 or 4)   16 u32 vocabulary size
 *   20 u32 0        24 u64 token count (as two u32: low, high)
 */
const CACHE_MAGIC = 'SMTOKENS';
const CACHE_VERSION = 1;
const HEADER_BYTES = 32;
/** Bump when the tokenization rules change (separators, what counts as a document). */
const RULES_VERSION = 'smallmind-tokens-1';

/** Cache files are little-endian and viewed directly as typed arrays, which needs a little-endian host. */
function checkLittleEndian(file: string): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new FormatError('unsupported_platform', file, 'token caches need a little-endian machine');
}

/** A cache file read by pread per window, for corpora too large to hold (nanoGPT memory-maps them). */
export class FileTokens implements TokenStream {
  readonly length: number;
  readonly bytesPerToken: 2 | 4;
  readonly vocabSize: number;
  private readonly fd: number;
  private scratch = new Uint8Array(0);

  constructor(readonly path: string) {
    const { fd, size } = openForRead(path);
    this.fd = fd;
    try {
      const header = readCacheHeader(fd, path, size);
      this.length = header.count;
      this.bytesPerToken = header.bytesPerToken;
      this.vocabSize = header.vocabSize;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  read(start: number, dest: Int32Array): void {
    checkRange(start, dest.length, this.length);
    const bytes = dest.length * this.bytesPerToken;
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(bytes);
    const raw = this.scratch.subarray(0, bytes);
    readFully(this.fd, this.path, raw, HEADER_BYTES + start * this.bytesPerToken);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < dest.length; i++) dest[i] = this.bytesPerToken === 2 ? view.getUint16(2 * i, true) : view.getUint32(4 * i, true);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** All tokens in memory (the stream's `read` is then a plain copy). */
  loadAll(): MemoryTokens {
    const raw = new Uint8Array(this.length * this.bytesPerToken);
    checkLittleEndian(this.path);
    readFully(this.fd, this.path, raw, HEADER_BYTES);
    return new MemoryTokens(this.bytesPerToken === 2 ? new Uint16Array(raw.buffer) : new Uint32Array(raw.buffer));
  }
}

function readCacheHeader(fd: number, file: string, size: number): { count: number; bytesPerToken: 2 | 4; vocabSize: number } {
  if (size < HEADER_BYTES) throw new FormatError('truncated', file, `a token cache needs a ${HEADER_BYTES}-byte header, the file has ${size} bytes`);
  const header = Buffer.alloc(HEADER_BYTES);
  readFully(fd, file, header, 0);
  if (header.toString('latin1', 0, 8) !== CACHE_MAGIC) throw new FormatError('bad_magic', file, `not a token cache (no ${CACHE_MAGIC} header)`);
  const version = header.readUInt32LE(8);
  if (version !== CACHE_VERSION) throw new FormatError('unsupported_version', file, `token cache version ${version} (supported: ${CACHE_VERSION})`);
  const bytesPerToken = header.readUInt32LE(12);
  if (bytesPerToken !== 2 && bytesPerToken !== 4) throw new FormatError('bad_header', file, `${bytesPerToken} bytes per token (expected 2 or 4)`);
  const count = header.readUInt32LE(24) + header.readUInt32LE(28) * 2 ** 32;
  if (HEADER_BYTES + count * bytesPerToken !== size) {
    throw new FormatError('truncated', file, `the header says ${count} tokens of ${bytesPerToken} bytes, the file has ${size - HEADER_BYTES} bytes of tokens`);
  }
  return { count, bytesPerToken, vocabSize: header.readUInt32LE(16) };
}

/** Collects tokens into the cache file being written, a chunk at a time. */
class CacheWriter {
  private readonly buffer: Uint16Array | Uint32Array;
  private filled = 0;
  count = 0;

  constructor(private readonly fd: number, readonly bytesPerToken: 2 | 4, private readonly vocabSize: number) {
    this.buffer = bytesPerToken === 2 ? new Uint16Array(1 << 20) : new Uint32Array(1 << 20);
    writeFully(fd, new Uint8Array(HEADER_BYTES)); // the real header is written at the end
  }

  push(ids: readonly number[]): void {
    for (const id of ids) {
      if (this.filled === this.buffer.length) this.flush();
      this.buffer[this.filled++] = id;
    }
    this.count += ids.length;
  }

  private flush(): void {
    const part = this.buffer.subarray(0, this.filled);
    writeFully(this.fd, new Uint8Array(part.buffer, 0, part.byteLength));
    this.filled = 0;
  }

  finish(): void {
    this.flush();
    const header = Buffer.alloc(HEADER_BYTES);
    header.write(CACHE_MAGIC, 0, 'latin1');
    header.writeUInt32LE(CACHE_VERSION, 8);
    header.writeUInt32LE(this.bytesPerToken, 12);
    header.writeUInt32LE(this.vocabSize, 16);
    header.writeUInt32LE(this.count % 2 ** 32, 24);
    header.writeUInt32LE(Math.floor(this.count / 2 ** 32), 28);
    fs.writeSync(this.fd, header, 0, HEADER_BYTES, 0);
  }
}

/** The cache key: the rules, each file's kind and bytes in order, and the tokenizer. */
export function dataCacheKey(files: readonly string[], tokenizer: TrainingTokenizer): string {
  const hash = crypto.createHash('sha256');
  hash.update(`${RULES_VERSION}\0${tokenizer.key}\0`);
  for (const file of files) {
    hash.update(`${file.endsWith('.jsonl') ? 'jsonl' : 'text'}\0`);
    const { fd, size } = openForRead(file);
    try {
      const chunk = Buffer.allocUnsafe(Math.min(size, 1 << 22));
      for (let pos = 0; pos < size; pos += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, size - pos));
        readFully(fd, file, part, pos);
        hash.update(part);
      }
    } finally {
      fs.closeSync(fd);
    }
    hash.update(`\0${size}\0`);
  }
  return hash.digest('hex');
}

export interface TokenizeOptions {
  files: readonly string[];
  tokenizer: TrainingTokenizer;
  /** The folder that holds cache files (created if missing). */
  cacheDir: string;
  /** Bytes of source text done / total, once per document. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Tokenize the files into `cacheDir/tokens-<key>.bin` unless that file exists; returns its path,
 * and whether it was reused. An empty result is an error naming the data.
 */
export function tokenizeToCache(opts: TokenizeOptions): { path: string; reused: boolean } {
  const { files, tokenizer } = opts;
  const cachePath = path.join(opts.cacheDir, `tokens-${dataCacheKey(files, tokenizer).slice(0, 32)}.bin`);
  if (fs.existsSync(cachePath)) return { path: cachePath, reused: true };
  try {
    fs.mkdirSync(opts.cacheDir, { recursive: true });
  } catch (err) {
    throw new FormatError('cannot_write', opts.cacheDir, `cannot create the cache folder: ${describeIoError(err)}`);
  }
  const totalBytes = files.reduce((sum, f) => sum + fs.statSync(f).size, 0);
  const vocabSize = tokenizer.tokenizer.vocabSize;
  const tmp = `${cachePath}.tmp-${process.pid}`;
  checkLittleEndian(cachePath);
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'w');
  } catch (err) {
    throw new FormatError('cannot_write', cachePath, describeIoError(err));
  }
  try {
    const writer = new CacheWriter(fd, vocabSize <= 0x10000 ? 2 : 4, vocabSize);
    let documents = 0;
    let doneBytes = 0;
    for (const file of files) {
      for (const text of readDocuments(file)) {
        if (documents++ > 0) writer.push(tokenizer.separator);
        writer.push(tokenizer.tokenizer.encode(text, { addSpecial: false }));
        doneBytes += Buffer.byteLength(text);
        opts.onProgress?.(Math.min(doneBytes, totalBytes), totalBytes);
      }
    }
    if (writer.count === 0) throw new RequestError('empty_dataset', 'data', `${files.join(', ')}: no tokens (the data is empty)`);
    writer.finish();
    fs.closeSync(fd);
    fs.renameSync(tmp, cachePath);
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return { path: cachePath, reused: false };
}

// ---------------------------------------------------------------------------------------------
// Split and batches

/** Caches up to this size are read into memory; larger ones are read window by window. */
export const IN_MEMORY_LIMIT = 256 * 2 ** 20;

export interface DataSplits {
  train: TokenStream;
  val: TokenStream;
}

/** First (1 − valFraction) of the tokens for training, the rest for validation; `valFraction` in [0, 1). */
export function splitTokens(tokens: TokenStream, valFraction: number): DataSplits {
  if (!(valFraction >= 0 && valFraction < 1)) throw new RequestError('invalid_option', 'val_fraction', `must be in [0, 1), got ${valFraction}`);
  const trainLength = Math.floor(tokens.length * (1 - valFraction));
  return { train: new TokenSlice(tokens, 0, trainLength), val: new TokenSlice(tokens, trainLength, tokens.length - trainLength) };
}

export interface PrepareDataOptions {
  /** A file or folder (see listDataFiles). */
  data: string;
  /** 'char', or a path loadTrainingTokenizer reads. */
  tokenizer: string;
  cacheDir: string;
  /** Default 0.1 (nanoGPT). */
  valFraction?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PreparedData extends DataSplits {
  tokenizer: TrainingTokenizer;
  tokens: TokenStream;
  cachePath: string;
  /** The cache file existed (nothing was tokenized). */
  reused: boolean;
}

/** Sources → tokenizer → cache → splits: everything the trainer needs before its first batch. */
export function prepareData(opts: PrepareDataOptions): PreparedData {
  const files = listDataFiles(opts.data);
  const tokenizer = opts.tokenizer === 'char' ? charTokenizerForFiles(files) : loadTrainingTokenizer(opts.tokenizer);
  const { path: cachePath, reused } = tokenizeToCache({ files, tokenizer, cacheDir: opts.cacheDir, onProgress: opts.onProgress });
  const file = new FileTokens(cachePath);
  let tokens: TokenStream = file;
  if (file.length * file.bytesPerToken <= IN_MEMORY_LIMIT) {
    tokens = file.loadAll();
    file.close();
  }
  return { tokenizer, tokens, cachePath, reused, ...splitTokens(tokens, opts.valFraction ?? 0.1) };
}

export const SAMPLING_MODES = ['random', 'shuffle'] as const;
export type SamplingMode = (typeof SAMPLING_MODES)[number];

/** What a sampler needs to continue where it was: plain JSON. */
export type SamplerState =
  | { mode: 'random'; rng: [number, number, number, number] }
  | { mode: 'shuffle'; seed: number; epoch: number; index: number };

export interface Batch {
  /** [batchSize, blockSize] row-major. */
  inputs: Int32Array;
  /** inputs shifted by one token: targets[b, t] is the token after inputs[b, t]. */
  targets: Int32Array;
}

export interface SamplerOptions {
  batchSize: number;
  blockSize: number;
  seed: number;
  mode?: SamplingMode;
  /** Names the split in errors ('train', 'val'). */
  split?: string;
}

/** Batches of windows of one split (see the file header for the two modes). */
export class BatchSampler {
  private readonly window: Int32Array;
  private readonly windows: number;
  private rng: Xoshiro128;
  private epoch = 0;
  private index = 0;
  private order: Uint32Array | undefined;

  constructor(private readonly data: TokenStream, private readonly opts: SamplerOptions) {
    const { batchSize, blockSize } = opts;
    for (const [key, value] of [['batch_size', batchSize], ['block_size', blockSize]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new RequestError('invalid_option', key, `must be a positive integer, got ${value}`);
    }
    if (data.length < blockSize + 1) {
      throw new RequestError('dataset_too_small', 'block_size', `the ${opts.split ?? 'data'} split has ${data.length} tokens, fewer than block_size + 1 = ${blockSize + 1}`);
    }
    this.window = new Int32Array(blockSize + 1);
    this.windows = Math.floor((data.length - 1) / blockSize);
    this.rng = Xoshiro128.fromSeed(opts.seed);
  }

  get mode(): SamplingMode {
    return this.opts.mode ?? 'random';
  }

  next(): Batch {
    const { batchSize: B, blockSize: T } = this.opts;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      this.data.read(this.nextStart(), this.window);
      inputs.set(this.window.subarray(0, T), b * T);
      targets.set(this.window.subarray(1), b * T);
    }
    return { inputs, targets };
  }

  private nextStart(): number {
    const T = this.opts.blockSize;
    if (this.mode === 'random') return Math.floor(this.rng.nextFloat() * (this.data.length - T));
    if (this.index === this.windows) {
      this.epoch++;
      this.index = 0;
      this.order = undefined;
    }
    this.order ??= shuffledOrder(this.windows, this.opts.seed, this.epoch);
    return this.order[this.index++] * T;
  }

  getState(): SamplerState {
    if (this.mode === 'random') return { mode: 'random', rng: this.rng.getState() };
    return { mode: 'shuffle', seed: this.opts.seed, epoch: this.epoch, index: this.index };
  }

  /** Continue from a state getState() returned (for a sampler over the same data and options). */
  setState(state: SamplerState): void {
    if (state.mode !== this.mode) throw new RequestError('invalid_state', 'sampler', `the saved sampler is '${state.mode}', this one '${this.mode}'`);
    if (state.mode === 'random') {
      this.rng = Xoshiro128.fromState(...state.rng);
      return;
    }
    if (state.seed !== this.opts.seed || state.index > this.windows) {
      throw new RequestError('invalid_state', 'sampler', `the saved shuffle (seed ${state.seed}, index ${state.index}) does not fit this data (seed ${this.opts.seed}, ${this.windows} windows)`);
    }
    this.epoch = state.epoch;
    this.index = state.index;
    this.order = undefined;
  }
}

/** A seeded permutation of 0..n-1 for one epoch (Fisher–Yates). */
function shuffledOrder(n: number, seed: number, epoch: number): Uint32Array {
  const rng = Xoshiro128.fromSeed((seed % 2 ** 32) * 2 ** 20 + (epoch % 2 ** 20));
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.nextFloat() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
