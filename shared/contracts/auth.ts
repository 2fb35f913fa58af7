/**
 * The auth service's actions (sessions, access/refresh tokens, magic codes, admin API keys): their
 * params schemas and result types. Other services call them with these names and shapes.
 */
import { z } from "zod";
import { Email, StoreId, Uuid, type AuthPrincipal } from "./common";

export const AuthToken = z.object({
  id: Uuid.describe("session id"),
  profile_id: Uuid,
  access_token: z.string(),
  refresh_token: z.string(),
  token_type: z.literal("Bearer"),
  access_expires_at: z.number().int(),
  refresh_expires_at: z.number().int(),
  created_at: z.number().int(),
  is_verified: z.boolean(),
});
export type AuthToken = z.infer<typeof AuthToken>;

/** Session metadata as shown in `Profile.auth_tokens` (never a token value). */
export const SessionInfo = z.object({
  id: Uuid,
  created_at: z.number().int(),
  expires_at: z.number().int(),
  last_used_at: z.number().int().nullable(),
  is_verified: z.boolean(),
});
export type SessionInfo = z.infer<typeof SessionInfo>;

/** Code metadata as shown in `Profile.verification_codes` (never a code value). `attempts` counts verification tries, the successful one included; 5 burn the code. */
export const VerificationCodeInfo = z.object({
  id: Uuid,
  created_at: z.number().int(),
  expires_at: z.number().int(),
  used: z.boolean(),
  attempts: z.number().int(),
});
export type VerificationCodeInfo = z.infer<typeof VerificationCodeInfo>;

export const ProfileAuthInfo = z.object({ sessions: z.array(SessionInfo), codes: z.array(VerificationCodeInfo) });
export type ProfileAuthInfo = z.infer<typeof ProfileAuthInfo>;

/** An authenticated profile session (what `auth.authenticate` answers). */
export const SessionPrincipal = z.object({
  store_id: StoreId,
  profile_id: Uuid,
  session_id: Uuid,
  is_verified: z.boolean(),
});
export type SessionPrincipal = z.infer<typeof SessionPrincipal>;

/**
 * The session's profile as auth knows it: the e-mail the session was issued for (normalized; null for a
 * guest), the profile's sessions and that e-mail's codes (what `describeProfiles` answers for it). Its
 * reader checks that the profile still has that e-mail before it trusts the codes.
 */
export const DescribedProfile = ProfileAuthInfo.extend({ email: z.string().nullable() });
export type DescribedProfile = z.infer<typeof DescribedProfile>;

/**
 * What `auth.authenticate` with `describe: true` answers: the principal, plus `described_profile` when the
 * session is verified and was issued with its profile's e-mail (an unverified session is never shown them).
 */
export const DescribedSessionPrincipal = SessionPrincipal.extend({ described_profile: DescribedProfile.optional() });
export type DescribedSessionPrincipal = z.infer<typeof DescribedSessionPrincipal>;

/** A profile principal; as `profiles.me` reads it (`describe: true`), with its profile described. */
export type DescribedProfileSession = Extract<AuthPrincipal, { kind: "profile" }> & Pick<DescribedSessionPrincipal, "described_profile">;

export const AuthActions = {
  /**
   * `auth.issueSession`: a new session for a profile -> AuthToken. `email`: the profile's e-mail now (null for
   * a guest), kept on the session so `authenticate` can describe its profile; a session issued without it is
   * never described.
   */
  issueSession: z.object({ store_id: StoreId, profile_id: Uuid, is_verified: z.boolean(), email: Email.nullable().optional() }),
  /** `auth.refreshSession`: rotate a refresh token -> AuthToken (401 when invalid, reused or revoked). */
  refreshSession: z.object({ store_id: StoreId, refresh_token: z.string().min(1).max(512) }),
  /**
   * `auth.authenticate`: an access token -> SessionPrincipal (401 when invalid, expired, revoked or for another
   * store). With `describe: true` -> DescribedSessionPrincipal: a route that shows the caller's own profile gets
   * its sessions and codes in the same call.
   */
  authenticate: z.object({ store_id: StoreId, access_token: z.string().min(1).max(4096), describe: z.boolean().optional() }),
  /** `auth.listSessions` -> SessionInfo[] (active sessions of one profile, newest first; `expires_at` = refresh expiry). */
  listSessions: z.object({ store_id: StoreId, profile_id: Uuid }),
  /** `auth.revokeSession` -> { deleted: true } (404 when the profile has no such session). */
  revokeSession: z.object({ store_id: StoreId, profile_id: Uuid, session_id: Uuid }),
  /** `auth.revokeProfileSessions` -> { revoked: number } (logout everywhere; also used by merge). */
  revokeProfileSessions: z.object({ store_id: StoreId, profile_id: Uuid }),
  /**
   * `auth.requestCode` -> { sent: true } whether or not the e-mail is known; mails the code via `mailer.sendMagicCode`.
   * 429 RATE_LIMITED (data.retryAfter seconds) within 60 s of the last code, past the per-IP/per-store send caps, or while
   * the e-mail is locked by failed verifications; 503 SERVICE_UNAVAILABLE when the mail cannot be sent (no code is left).
   * Served to HTTP directly (POST .../profiles/auth/code): the client's address comes from the gateway
   * (`meta.ip`), which wins over an `ip` param (for callers on the bus) so the per-IP caps apply.
   */
  requestCode: z.object({ store_id: StoreId, email: Email, ip: z.string().max(64).optional() }),
  /** The body of POST .../profiles/auth/code (what a client sends; `auth.requestCode` answers it). */
  requestCodeBody: z.object({ store_id: StoreId, email: Email }),
  /** `auth.verifyCode` -> { verified: true } (401 when wrong, used, expired or burnt; 429 when capped). Issue the session with `auth.issueSession` after it. */
  verifyCode: z.object({ store_id: StoreId, email: Email, code: z.string().regex(/^\d{6}$/, "must be 6 digits"), ip: z.string().max(64).optional() }),
  /**
   * `auth.describeProfiles` -> ProfileAuthInfo keyed by profile_id: the sessions and codes of up to 100
   * profiles in one call (what a page of `profiles.find` shows).
   */
  describeProfiles: z.object({
    store_id: StoreId,
    profiles: z.array(z.object({ profile_id: Uuid, email: Email.nullable() })).max(100),
  }),
  /** `auth.listCodes` -> VerificationCodeInfo[] for an e-mail, newest first. */
  listCodes: z.object({ store_id: StoreId, email: Email }),
  /** `auth.deleteCodes` -> { deleted: number } (merge and profile deletion). */
  deleteCodes: z.object({ store_id: StoreId, email: Email }),
  /** `auth.createApiKey` -> ApiKeyCreated (the key is shown once). */
  createApiKey: z.object({
    store_id: StoreId,
    // Shown in `keys list` tables and logs: printable text only.
    name: z
      .string()
      .trim()
      .max(100)
      .regex(/^[^\p{Cc}\p{Cf}]*$/u, "must not contain control characters")
      .optional(),
  }),
  /** `auth.listApiKeys` -> ApiKeyInfo[], newest first, revoked ones included (every store's when `store_id` is absent: operator CLI). */
  listApiKeys: z.object({ store_id: StoreId.optional() }),
  /**
   * `auth.revokeApiKey` -> { deleted: true, revoked_at, already_revoked } (an already revoked key answers the time
   * it was revoked and `already_revoked: true`; 404 for an unknown id).
   */
  revokeApiKey: z.object({ id: Uuid }),
  /** `auth.verifyApiKey` -> { key_id, store_id } (401 when unknown or revoked); CRM_ADMIN_API_KEY -> { key_id: "platform", store_id: "*" }. */
  verifyApiKey: z.object({ key: z.string().min(1).max(256) }),
} as const;

export const ApiKeyInfo = z.object({
  id: Uuid,
  store_id: StoreId,
  name: z.string().nullable(),
  prefix: z.string().describe("first characters of the key, to recognise it"),
  created_at: z.number().int(),
  last_used_at: z.number().int().nullable(),
  revoked_at: z.number().int().nullable(),
});
export type ApiKeyInfo = z.infer<typeof ApiKeyInfo>;

export const ApiKeyCreated = ApiKeyInfo.extend({ key: z.string() });
export type ApiKeyCreated = z.infer<typeof ApiKeyCreated>;
