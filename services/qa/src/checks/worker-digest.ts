import { Worker } from 'node:worker_threads';
import type { DigestResult, StreamDigest } from './stream-digest.js';

// Control words (Int32) shared with the worker. Byte positions wrap modulo 2^32; (w - r) >>> 0 is the gap.
const WRITE = 0;
const READ = 1;
const DONE = 2;
const NOTIFY_BYTES = 1 << 20;

/**
 * The worker: hashes (sha256) and CRCs (bytes below the DataEnd offset) whatever the ring holds, then frees it.
 * Kept as source text run with `eval`, so it works the same from the TypeScript sources (tests) and from the
 * built JavaScript, with no file to locate.
 */
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { crc32 } = require('node:zlib');
const { ring, control, dataEnd } = workerData;
const bytes = new Uint8Array(ring);
const ctrl = new Int32Array(control);
const end = new Float64Array(dataEnd);
const size = bytes.byteLength;
const hash = createHash('sha256');
let crc = 0;
let total = 0;
let r = 0;
for (;;) {
  const w = Atomics.load(ctrl, ${WRITE});
  if (w === r) {
    if (Atomics.load(ctrl, ${DONE}) === 1 && Atomics.load(ctrl, ${WRITE}) === r) break;
    Atomics.wait(ctrl, ${WRITE}, w, 100);
    continue;
  }
  const at = r & (size - 1);
  const n = Math.min((w - r) >>> 0, size - at);
  const view = bytes.subarray(at, at + n);
  hash.update(view);
  const limit = end[0];
  if (total < limit) {
    const k = Math.min(n, limit - total);
    crc = crc32(k === n ? view : view.subarray(0, k), crc);
  }
  total += n;
  r = (r + n) | 0;
  Atomics.store(ctrl, ${READ}, r);
  Atomics.notify(ctrl, ${READ});
}
parentPort.postMessage({ sha256: hash.digest('hex'), dataSectionCrc: crc >>> 0, bytes: total });
`;

export interface WorkerDigestOptions {
  /** Ring buffer between the parser and the worker, a power of two. Default 16 MiB. */
  ringBytes?: number;
}

type WaitAsync = (
  arr: Int32Array,
  index: number,
  value: number,
  timeout?: number,
) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * sha256 and the data-section CRC on a second core. The pieces are copied once into a shared ring (memcpy is an
 * order of magnitude cheaper than hashing them); when the ring is full, update() waits for the worker, so memory
 * stays bounded whatever the source's pace.
 */
export class WorkerDigest implements StreamDigest {
  readonly #ring: Buffer;
  readonly #ctrl: Int32Array;
  readonly #end: Float64Array;
  readonly #worker: Worker;
  readonly #result: Promise<DigestResult>;
  #failure: Error | null = null;
  #w = 0;
  #unnotified = 0;

  constructor(options: WorkerDigestOptions = {}) {
    const size = options.ringBytes ?? 16 << 20;
    if (size & (size - 1) || size > 2 ** 30) throw new RangeError('ringBytes must be a power of two up to 1 GiB');
    const ring = new SharedArrayBuffer(size);
    const control = new SharedArrayBuffer(16);
    const dataEnd = new SharedArrayBuffer(8);
    this.#ring = Buffer.from(ring);
    this.#ctrl = new Int32Array(control);
    this.#end = new Float64Array(dataEnd);
    this.#end[0] = Number.POSITIVE_INFINITY;
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ring, control, dataEnd } });
    this.#result = new Promise<DigestResult>((resolve, reject) => {
      const fail = (err: Error) => {
        this.#failure = err;
        reject(err);
      };
      this.#worker.once('message', resolve);
      this.#worker.once('error', fail);
      this.#worker.once('exit', (code) => fail(new Error(`digest worker exited (code ${code}) before its result`)));
    });
    // finish() may never be awaited if the caller fails first; the rejection is surfaced there, not globally.
    this.#result.catch(() => {});
  }

  update(piece: Uint8Array, dataEnd: number): void | Promise<void> {
    if (this.#failure) throw this.#failure;
    this.#end[0] = dataEnd;
    // Buffer.copy is a plain memcpy; TypedArray.set into shared memory is slower.
    const source = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    const copied = this.#copy(source, 0);
    return copied === source.byteLength ? undefined : this.#copyWaiting(source, copied);
  }

  /** Copies what fits in the ring; returns the new offset in `source`. */
  #copy(source: Buffer, off: number): number {
    const size = this.#ring.byteLength;
    while (off < source.byteLength) {
      const free = size - ((this.#w - Atomics.load(this.#ctrl, READ)) >>> 0);
      if (free === 0) break;
      const at = this.#w & (size - 1);
      const n = Math.min(free, source.byteLength - off, size - at);
      source.copy(this.#ring, at, off, off + n);
      off += n;
      this.#w = (this.#w + n) | 0;
      this.#unnotified += n;
      Atomics.store(this.#ctrl, WRITE, this.#w);
    }
    // Waking the worker costs a futex call and a context switch: do it per MiB, not per piece.
    if (this.#unnotified >= NOTIFY_BYTES) this.#notify();
    return off;
  }

  #notify(): void {
    this.#unnotified = 0;
    Atomics.notify(this.#ctrl, WRITE);
  }

  /** The ring is full: wake the worker and wait for it to free space. */
  async #copyWaiting(source: Buffer, off: number): Promise<void> {
    while (off < source.byteLength) {
      if (this.#failure) throw this.#failure;
      this.#notify();
      const read = Atomics.load(this.#ctrl, READ);
      if (this.#ring.byteLength - ((this.#w - read) >>> 0) === 0) {
        const wait = waitAsync(this.#ctrl, READ, read, 200);
        if (wait.async) await wait.value;
        continue;
      }
      off = this.#copy(source, off);
    }
  }

  async finish(): Promise<DigestResult> {
    Atomics.store(this.#ctrl, DONE, 1);
    Atomics.notify(this.#ctrl, WRITE);
    try {
      return await this.#result;
    } finally {
      void this.#worker.terminate();
    }
  }

  abort(): void {
    void this.#worker.terminate();
  }
}
