/**
 * Admin API keys: random `crm_sk_...` keys scoped to one store, shown once, stored as SHA-256 hashes
 * with a short prefix to recognise them; verified on each admin request. The platform key
 * (CRM_ADMIN_API_KEY), when configured, verifies as `{ key_id: "platform", store_id: "*" }`.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { ApiKeyCreated, ApiKeyInfo } from "../../shared/contracts/auth";
import { uuidv7 } from "../../shared/ids";
import type { ApiKeyDoc, AuthStore } from "./auth.store";
import { AuthErrors } from "./auth.errors";
import type { AuthLimits } from "./limits";
import { sha256 } from "./tokens";

export const API_KEY_PREFIX = "crm_sk_";
const API_KEY_RE = /^crm_sk_[A-Za-z0-9_-]{43}$/;
/** Characters of the key kept in clear (the fixed prefix + 6 random ones, ~36 of 256 bits). */
const SHOWN_PREFIX_LENGTH = API_KEY_PREFIX.length + 6;

export const PLATFORM_KEY_ID = "platform";

export interface ApiKeyDeps {
  store: AuthStore;
  limits: AuthLimits;
  now: () => number;
  /** CRM_ADMIN_API_KEY, valid for every store. */
  platformKey?: string;
}

export function toApiKeyInfo(doc: ApiKeyDoc): ApiKeyInfo {
  return {
    id: doc._id,
    store_id: doc.store_id,
    name: doc.name,
    prefix: doc.prefix,
    created_at: doc.created_at,
    last_used_at: doc.last_used_at,
    revoked_at: doc.revoked_at,
  };
}

export function newApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString("base64url");
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(sha256(a));
  const y = Buffer.from(sha256(b));
  return timingSafeEqual(x, y);
}

export class ApiKeys {
  constructor(private readonly deps: ApiKeyDeps) {}

  /** A new key for a store; the only time the key itself is answered. */
  async create(input: { store_id: string; name?: string }): Promise<ApiKeyCreated> {
    const key = newApiKey();
    const doc: ApiKeyDoc = {
      _id: uuidv7(),
      store_id: input.store_id,
      name: input.name ? input.name : null,
      prefix: key.slice(0, SHOWN_PREFIX_LENGTH),
      hash: sha256(key),
      created_at: this.deps.now(),
      last_used_at: null,
      revoked_at: null,
    };
    await this.deps.store.apiKeys.insertOne(doc);
    return { ...toApiKeyInfo(doc), key };
  }

  /** Keys of one store, or of every store (operator CLI), newest first; revoked ones included. */
  async list(input: { store_id?: string }): Promise<ApiKeyInfo[]> {
    const filter = input.store_id ? { store_id: input.store_id } : {};
    const docs = await this.deps.store.apiKeys.find(filter, { sort: { created_at: -1, _id: -1 }, limit: 1000 });
    return docs.map(toApiKeyInfo);
  }

  /** Revokes a key by id; a key revoked before answers when that was (`already_revoked`); 404 when there is no such key. */
  async revoke(input: { id: string }): Promise<{ deleted: true; revoked_at: number; already_revoked: boolean }> {
    const doc = await this.deps.store.apiKeys.findOne({ _id: input.id });
    if (!doc) throw AuthErrors.apiKeyNotFound();
    if (doc.revoked_at !== null) return { deleted: true, revoked_at: doc.revoked_at, already_revoked: true };
    const now = this.deps.now();
    const revoked = await this.deps.store.apiKeys.findOneAndUpdate({ _id: doc._id, store_id: doc.store_id, revoked_at: null }, { $set: { revoked_at: now } });
    if (revoked) return { deleted: true, revoked_at: now, already_revoked: false };
    // Revoked meanwhile by another call: answer its time.
    const again = await this.deps.store.apiKeys.findOne({ _id: doc._id });
    return { deleted: true, revoked_at: again?.revoked_at ?? now, already_revoked: true };
  }

  /** The key's id and store; 401 when unknown or revoked. */
  async verify(input: { key: string }): Promise<{ key_id: string; store_id: string }> {
    if (this.deps.platformKey && sameSecret(input.key, this.deps.platformKey)) return { key_id: PLATFORM_KEY_ID, store_id: "*" };
    if (!API_KEY_RE.test(input.key)) throw AuthErrors.invalidApiKey();
    const doc = await this.deps.store.apiKeys.findOne({ hash: sha256(input.key) });
    if (!doc || doc.revoked_at !== null) throw AuthErrors.invalidApiKey();
    const now = this.deps.now();
    const staleBefore = now - this.deps.limits.lastUsedResolutionSeconds;
    if (doc.last_used_at === null || doc.last_used_at <= staleBefore) {
      await this.deps.store.apiKeys.updateOne(
        { _id: doc._id, store_id: doc.store_id, $or: [{ last_used_at: null }, { last_used_at: { $lte: staleBefore } }] },
        { $set: { last_used_at: now } },
      );
    }
    return { key_id: doc._id, store_id: doc.store_id };
  }
}
