/** Identifiers: UUIDv7 (time-ordered, so ids sort by creation and index well). */
import { randomBytes } from "node:crypto";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

let lastMs = 0;
let sequence = 0;

// Random bytes drawn 4 KiB at a time: a system call per id was the largest cost of bulk inserts.
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let poolOffset = 0;

function randomChunk(size: number): Buffer {
  if (poolOffset + size > pool.length) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  const chunk = Buffer.from(pool.subarray(poolOffset, poolOffset + size));
  poolOffset += size;
  return chunk;
}

/** A RFC 9562 UUIDv7; ids made in the same millisecond stay ordered by a 12-bit counter. */
export function uuidv7(): string {
  let ms = Date.now();
  if (ms <= lastMs) {
    sequence = (sequence + 1) & 0xfff;
    if (sequence === 0) lastMs += 1;
    ms = lastMs;
  } else {
    lastMs = ms;
    sequence = randomChunk(2).readUInt16BE(0) & 0x7ff;
  }
  const bytes = randomChunk(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = 0x70 | (sequence >> 8);
  bytes[7] = sequence & 0xff;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID_RE.test(value);
}

/** Unix seconds, the wire format of every timestamp. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
