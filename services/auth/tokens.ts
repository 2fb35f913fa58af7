/**
 * Token primitives: HS256 access tokens (jose), opaque refresh tokens and their hashes, and the
 * AES-256-GCM sealing of the pair a rotation answered (kept only for the reuse grace).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from "node:crypto";
import { SignJWT, jwtVerify } from "jose";
import { isUuid } from "../../shared/ids";
import type { AuthKey, KeyRing } from "./keys";
import type { SealedPair } from "./auth.store";

export const ISSUER = "crm";

export const audienceOf = (storeId: string) => `store:${storeId}`;

export interface AccessClaims {
  store_id: string;
  profile_id: string;
  session_id: string;
}

/**
 * A signed access token for a session, valid until `expiresAt` (unix seconds). Each carries its own
 * `jti` (RFC 9068), so two tokens issued in the same second for one session still differ.
 */
export function signAccessToken(keys: KeyRing, claims: AccessClaims, issuedAt: number, expiresAt: number): Promise<string> {
  return new SignJWT({ sid: claims.session_id })
    .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: keys.current.kid })
    .setJti(randomUUID())
    .setSubject(claims.profile_id)
    .setAudience(audienceOf(claims.store_id))
    .setIssuer(ISSUER)
    .setIssuedAt(issuedAt)
    .setExpirationTime(expiresAt)
    .sign(keys.current.jwt);
}

/**
 * Verifies access tokens and remembers, per process, the claims of the tokens it verified until they
 * expire: a session asks with the same token on every request, and the HMAC check through WebCrypto is
 * the dearest part of it. Only the signature check is remembered; the caller still checks the session
 * (revocation) every time. Keys change only with a restart, so a remembered answer stays true.
 */
export class AccessTokenVerifier {
  private readonly verified = new Map<string, { claims: AccessClaims; exp: number }>();

  constructor(
    private readonly keys: KeyRing,
    private readonly capacity = 10_000,
  ) {}

  async verify(token: string, storeId: string, now: number): Promise<AccessClaims | null> {
    const known = this.verified.get(token);
    if (known && now < known.exp) return known.claims.store_id === storeId ? known.claims : null;
    if (known) this.verified.delete(token);
    const result = await verifyWithExpiry(this.keys, token, storeId, now);
    if (!result) return null;
    // Oldest first out (a Map keeps insertion order).
    if (this.verified.size >= this.capacity) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(token, result);
    return result.claims;
  }
}

/** The claims of a valid access token for `storeId` at time `now`, or null (any failure). */
export async function verifyAccessToken(keys: KeyRing, token: string, storeId: string, now: number): Promise<AccessClaims | null> {
  return (await verifyWithExpiry(keys, token, storeId, now))?.claims ?? null;
}

async function verifyWithExpiry(keys: KeyRing, token: string, storeId: string, now: number): Promise<{ claims: AccessClaims; exp: number } | null> {
  try {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        const key = header.kid ? keys.byKid.get(header.kid) : undefined;
        if (!key) throw new Error("unknown key id");
        return key.jwt;
      },
      { algorithms: ["HS256"], issuer: ISSUER, audience: audienceOf(storeId), currentDate: new Date(now * 1000), requiredClaims: ["exp", "sub", "sid"] },
    );
    if (!isUuid(payload.sub) || !isUuid(payload.sid) || typeof payload.exp !== "number") return null;
    return { claims: { store_id: storeId, profile_id: payload.sub, session_id: payload.sid }, exp: payload.exp };
  } catch {
    return null;
  }
}

/** A new opaque refresh token: 256 random bits, base64url (43 characters). */
export function newRefreshToken(): string {
  return randomBytes(32).toString("base64url");
}

export function sha256(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("base64url");
}

/** Seals `value` (JSON) under the current key; `context` binds it to where it is stored. */
export function seal(keys: KeyRing, value: unknown, context: string): SealedPair {
  const key: AuthKey = keys.current;
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key.seal, iv);
  cipher.setAAD(Buffer.from(context, "utf8"));
  const data = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
  return { kid: key.kid, iv: iv.toString("base64url"), data: data.toString("base64url"), tag: cipher.getAuthTag().toString("base64url") };
}

/** The sealed value, or null when the key is gone or the ciphertext/context does not match. */
export function unseal<T>(keys: KeyRing, sealed: SealedPair, context: string): T | null {
  const key = keys.byKid.get(sealed.kid);
  if (!key) return null;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.seal, Buffer.from(sealed.iv, "base64url"));
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(Buffer.from(sealed.tag, "base64url"));
    const plain = Buffer.concat([decipher.update(Buffer.from(sealed.data, "base64url")), decipher.final()]);
    return JSON.parse(plain.toString("utf8")) as T;
  } catch {
    return null;
  }
}
