/**
 * The auth service's collections and indexes, through the storage port. Every document carries
 * `store_id`, and every query of the logic filters on it. Secrets are stored only as hashes
 * (refresh tokens, API keys: SHA-256; magic codes: HMAC-SHA256 with a server key).
 */
import type { Collection, Database, Doc, Filter } from "../../shared/storage/port";

/** A profile session: what a refresh token chain and its access tokens belong to. */
export interface SessionDoc extends Doc {
  store_id: string;
  profile_id: string;
  is_verified: boolean;
  /** The profile's e-mail when the session was issued (normalized; null: a guest). Absent on sessions issued without it. */
  email?: string | null;
  created_at: number;
  /** Slides with every refresh: the expiry of the newest refresh token. */
  expires_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** AES-256-GCM ciphertext of the pair a rotation answered, kept only during the reuse grace. */
export interface SealedPair {
  kid: string;
  iv: string;
  data: string;
  tag: string;
}

/** One refresh token of a session (rotated: each is used once). */
export interface RefreshTokenDoc extends Doc {
  store_id: string;
  session_id: string;
  profile_id: string;
  /** SHA-256 (base64url) of the token. */
  hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** Until when a reuse answers the same new pair instead of revoking the session. */
  grace_until: number | null;
  next: SealedPair | null;
}

export interface CodeDoc extends Doc {
  store_id: string;
  /** Normalized (lower-case) e-mail. */
  email: string;
  /** HMAC-SHA256 (base64url) of the code under the key named by `kid`. */
  code_hash: string;
  kid: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** Verification tries made on this code; at the limit the code is burnt. */
  attempts: number;
}

/** A fixed-window counter or a cooldown mark; `_id` is a deterministic key (see limits.ts). */
export interface LimitDoc extends Doc {
  store_id: string;
  count: number;
  /** Counters: start of the window; cooldowns: when it was set. */
  window_start: number;
  expires_at: number;
}

export interface ApiKeyDoc extends Doc {
  store_id: string;
  name: string | null;
  prefix: string;
  /** SHA-256 (base64url) of the whole key. */
  hash: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface AuthStore {
  sessions: Collection<SessionDoc>;
  refreshTokens: Collection<RefreshTokenDoc>;
  codes: Collection<CodeDoc>;
  limits: Collection<LimitDoc>;
  apiKeys: Collection<ApiKeyDoc>;
}

/** The collections of the auth database, with their indexes created (idempotent). */
export async function openAuthStore(db: Database): Promise<AuthStore> {
  const store: AuthStore = {
    sessions: db.collection<SessionDoc>("sessions"),
    refreshTokens: db.collection<RefreshTokenDoc>("refresh_tokens"),
    codes: db.collection<CodeDoc>("codes"),
    limits: db.collection<LimitDoc>("limits"),
    apiKeys: db.collection<ApiKeyDoc>("api_keys"),
  };
  await Promise.all([
    store.sessions.createIndexes([
      { name: "store_profile_created", keys: { store_id: 1, profile_id: 1, created_at: -1 } },
      { name: "expires_at", keys: { expires_at: 1 } },
    ]),
    store.refreshTokens.createIndexes([
      { name: "hash_unique", keys: { hash: 1 }, unique: true },
      { name: "store_session", keys: { store_id: 1, session_id: 1 } },
      { name: "store_profile", keys: { store_id: 1, profile_id: 1 } },
      { name: "expires_at", keys: { expires_at: 1 } },
      { name: "grace_until", keys: { grace_until: 1 } },
    ]),
    store.codes.createIndexes([
      { name: "store_email_created", keys: { store_id: 1, email: 1, created_at: -1 } },
      { name: "expires_at", keys: { expires_at: 1 } },
    ]),
    store.limits.createIndexes([{ name: "expires_at", keys: { expires_at: 1 } }]),
    store.apiKeys.createIndexes([
      { name: "hash_unique", keys: { hash: 1 }, unique: true },
      { name: "store_created", keys: { store_id: 1, created_at: -1 } },
    ]),
  ]);
  return store;
}

/** The most documents one `find` answers (the port's cap). */
const FIND_LIMIT = 1000;

/**
 * Every document matching `filter`, a filter on an index's leading fields (so every document read is one
 * that matches): one `find` when they are fewer than its cap, as they nearly always are (the embedded store
 * answers a small read by `find` for less than by `stream`), else a `stream` of them all.
 */
export async function everyMatching<T extends Doc>(collection: Collection<T>, filter: Filter): Promise<T[]> {
  const found = await collection.find(filter, { limit: FIND_LIMIT });
  if (found.length < FIND_LIMIT) return found;
  const all: T[] = [];
  for await (const doc of collection.stream(filter)) all.push(doc);
  return all;
}
