/**
 * What the profiles rules depend on, handed in explicitly: this service's store, the auth service
 * (called through its actions, never imported), the durable event publisher, a logger and a clock.
 * The service builds one `ProfilesDeps` per request from `ctx` (so calls carry the caller's meta).
 */
import type { z } from "zod";
import type { AuthActions, AuthToken, ProfileAuthInfo, VerificationCodeInfo } from "../../shared/contracts/auth";
import type { DurableEventPayload } from "../../shared/contracts/events";
import type { ProfilesStore } from "./profiles.store";

type Params<K extends keyof typeof AuthActions> = z.input<(typeof AuthActions)[K]>;

/** Anything that can call an action: a Context or the broker. */
export interface ActionCaller {
  call(action: string, params?: unknown): Promise<unknown>;
}

export interface AuthClient {
  authenticate(p: Params<"authenticate">): Promise<unknown>;
  issueSession(p: Params<"issueSession">): Promise<AuthToken>;
  revokeSession(p: Params<"revokeSession">): Promise<{ deleted: true }>;
  revokeProfileSessions(p: Params<"revokeProfileSessions">): Promise<{ revoked: number }>;
  verifyCode(p: Params<"verifyCode">): Promise<{ verified: true }>;
  listCodes(p: Params<"listCodes">): Promise<VerificationCodeInfo[]>;
  describeProfiles(p: Params<"describeProfiles">): Promise<Record<string, ProfileAuthInfo>>;
  deleteCodes(p: Params<"deleteCodes">): Promise<{ deleted: number }>;
}

/** The auth service's actions as typed functions (names and shapes from shared/contracts/auth.ts). */
export function authClient(caller: ActionCaller): AuthClient {
  const call =
    <R>(name: string) =>
    (params: unknown) =>
      caller.call(`auth.${name}`, params) as Promise<R>;
  return {
    authenticate: call("authenticate"),
    issueSession: call("issueSession"),
    revokeSession: call("revokeSession"),
    revokeProfileSessions: call("revokeProfileSessions"),
    verifyCode: call("verifyCode"),
    listCodes: call("listCodes"),
    describeProfiles: call("describeProfiles"),
    deleteCodes: call("deleteCodes"),
  };
}

export interface ProfileEvents {
  /** Publishes `profile.merged` durably (other services re-point what they own). */
  profileMerged(payload: DurableEventPayload<"profile.merged">): Promise<void>;
}

export interface Logger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface ProfilesDeps {
  store: ProfilesStore;
  auth: AuthClient;
  events: ProfileEvents;
  logger: Logger;
  /** Unix seconds. */
  now: () => number;
}
