/**
 * The auth service's key ring, built once at start-up: the HS256 signing keys of access tokens
 * (imported once as CryptoKeys: jose 6 is much slower with raw secrets) and, per key, the keys
 * derived from it with HKDF for sealing refresh-grace pairs (AES-256-GCM) and hashing magic codes.
 *
 *   JWT_KEYS="kid1:secret1,kid0:secret0"   the first signs, all verify (rotation)
 *   JWT_SECRET="secret"                     one key, kid "k1"
 *   neither (not production)                a development key: kept in DATA_DIR/dev-signing-key with the
 *                                           embedded file store (tokens survive `npm start` restarts),
 *                                           random per process otherwise; with a warning either way
 */
import { hkdfSync, randomBytes, webcrypto } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { keySources, type Config, type KeySource } from "../../shared/config";

export interface AuthKey {
  kid: string;
  /** HS256 key for jose. */
  jwt: webcrypto.CryptoKey;
  /** AES-256-GCM key that seals the pair answered during the refresh reuse grace. */
  seal: Buffer;
  /** HMAC-SHA256 key of magic codes. */
  codes: Buffer;
}

export interface KeyRing {
  /** The key that signs, seals and hashes new things. */
  current: AuthKey;
  /** Every key that may still verify (by kid). */
  byKid: ReadonlyMap<string, AuthKey>;
  /** True when the key is random for this process (development only). */
  ephemeral: boolean;
}

export { keySources, type KeySource };

async function deriveKey(kid: string, secret: Buffer): Promise<AuthKey> {
  const jwt = await webcrypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  const derive = (info: string) => Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), info, 32));
  return { kid, jwt, seal: derive("crm-auth refresh-grace v1"), codes: derive("crm-auth magic-code v1") };
}

/**
 * Builds the key ring from the configuration. Outside production, with no key configured, a random
 * key is made and `warn` is told; in production that is an error.
 */
type KeyConfig = Pick<Config, "JWT_KEYS" | "JWT_SECRET" | "NODE_ENV"> & Partial<Pick<Config, "DATA_DIR" | "STORAGE" | "MONGO_URL">>;

/** Where the development key is kept: beside the embedded file store only (not in memory mode, not with MongoDB). */
function developmentKeyFile(cfg: KeyConfig): string | null {
  if (!cfg.DATA_DIR || cfg.STORAGE === "memory" || cfg.MONGO_URL) return null;
  return path.join(cfg.DATA_DIR, "dev-signing-key");
}

function developmentSecret(file: string | null): Buffer {
  if (!file) return randomBytes(32);
  try {
    const kept = Buffer.from(readFileSync(file, "utf8").trim(), "base64url");
    if (kept.length >= 32) return kept;
  } catch {
    // not made yet
  }
  const secret = randomBytes(32);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, secret.toString("base64url"), { mode: 0o600 });
  return secret;
}

export async function loadKeyRing(cfg: KeyConfig, warn: (message: string) => void): Promise<KeyRing> {
  const sources = keySources(cfg);
  if (!sources) {
    if (cfg.NODE_ENV === "production") throw new Error("JWT_SECRET or JWT_KEYS must be set in production");
    const file = developmentKeyFile(cfg);
    warn(
      file
        ? `No JWT_SECRET or JWT_KEYS set: using the development signing key in ${file}. Set JWT_SECRET in production; ` +
            "several auth instances need the same JWT_SECRET."
        : "No JWT_SECRET or JWT_KEYS set: using a random signing key for this process. Tokens will not survive a restart, " +
            "and several auth instances need the same JWT_SECRET.",
    );
    const key = await deriveKey("dev", developmentSecret(file));
    return { current: key, byKid: new Map([[key.kid, key]]), ephemeral: true };
  }
  for (const s of sources) {
    if (Buffer.byteLength(s.secret, "utf8") < 32) warn(`The JWT secret of key "${s.kid}" is shorter than 32 bytes; use a long random secret.`);
  }
  const keys = await Promise.all(sources.map((s) => deriveKey(s.kid, Buffer.from(s.secret, "utf8"))));
  return { current: keys[0], byKid: new Map(keys.map((k) => [k.kid, k])), ephemeral: false };
}
