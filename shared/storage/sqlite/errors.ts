/** SQLite's errors as the port's: a full disk, an I/O error or a busy database is UNAVAILABLE (503). */
import { StorageError } from "../port";

/** Primary result codes (the low byte of an extended code) that mean "storage cannot be used now". */
const UNAVAILABLE_CODES = new Set([
  5, // SQLITE_BUSY: another process holds the write lock past the busy timeout
  6, // SQLITE_LOCKED
  7, // SQLITE_NOMEM
  8, // SQLITE_READONLY
  10, // SQLITE_IOERR
  11, // SQLITE_CORRUPT
  13, // SQLITE_FULL
  14, // SQLITE_CANTOPEN
  26, // SQLITE_NOTADB
]);

/** Extended result codes of a unique or primary-key violation (the only constraints that mean "duplicate"). */
const SQLITE_CONSTRAINT_UNIQUE = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;

interface SqliteError {
  code?: string;
  errcode?: number;
  errstr?: string;
  message?: string;
}

export function isDuplicateError(err: unknown): boolean {
  const e = err as SqliteError;
  return e?.code === "ERR_SQLITE_ERROR" && (e.errcode === SQLITE_CONSTRAINT_UNIQUE || e.errcode === SQLITE_CONSTRAINT_PRIMARYKEY);
}

export function asStorageError(err: unknown): unknown {
  if (err instanceof StorageError) return err;
  const e = err as SqliteError;
  if (e?.code === "ERR_SQLITE_ERROR" && typeof e.errcode === "number" && UNAVAILABLE_CODES.has(e.errcode & 0xff)) {
    return new StorageError("UNAVAILABLE", `storage unavailable: ${e.message ?? e.errstr}`);
  }
  if (e?.code === "ERR_INVALID_STATE") return new StorageError("UNAVAILABLE", `storage unavailable: ${e.message}`);
  return err;
}
