/**
 * Composition of the auth service's rules: builds sessions, magic codes and API keys from one object
 * of dependencies (database, configuration, clock, limits), so tests can hand in a fake clock or
 * tighter limits. The rules themselves live in sessions.ts, codes.ts, api-keys.ts and limits.ts.
 */
import type { Config } from "../../shared/config";
import type { DescribedSessionPrincipal, ProfileAuthInfo } from "../../shared/contracts/auth";
import { normalizeEmail } from "../../shared/contracts/common";
import { nowSeconds } from "../../shared/ids";
import type { Database } from "../../shared/storage/port";
import { ApiKeys } from "./api-keys";
import { openAuthStore, type AuthStore } from "./auth.store";
import { MagicCodes } from "./codes";
import { loadKeyRing, type KeyRing } from "./keys";
import { DEFAULT_LIMITS, RateLimiter, type AuthLimits } from "./limits";
import { Sessions, toPrincipal } from "./sessions";

export interface AuthDeps {
  db: Database;
  config: Pick<Config, "NODE_ENV" | "JWT_KEYS" | "JWT_SECRET" | "ACCESS_TOKEN_TTL" | "REFRESH_TOKEN_TTL" | "CRM_ADMIN_API_KEY"> &
    Partial<Pick<Config, "DATA_DIR" | "STORAGE" | "MONGO_URL">>;
  /** Unix seconds; tests pass a fake. */
  now?: () => number;
  limits?: Partial<AuthLimits>;
  warn?: (message: string) => void;
}

export interface Auth {
  store: AuthStore;
  keys: KeyRing;
  limits: AuthLimits;
  sessions: Sessions;
  codes: MagicCodes;
  apiKeys: ApiKeys;
  /**
   * The principal of an access token (401 unless its session is live). With `describe`, a verified session
   * issued with its profile's e-mail also gets that profile described, so the caller need not ask again.
   */
  authenticate(input: { store_id: string; access_token: string; describe?: boolean }): Promise<DescribedSessionPrincipal>;
  /** Sessions and codes of several profiles of one store, keyed by profile id. */
  describeProfiles(input: { store_id: string; profiles: ProfileToDescribe[] }): Promise<Record<string, ProfileAuthInfo>>;
  /** Maintenance: drops expired codes, counters, refresh tokens and grace pairs past their grace. */
  purgeExpired(): Promise<void>;
}

interface ProfileToDescribe {
  profile_id: string;
  email: string | null;
}

export async function createAuth(deps: AuthDeps): Promise<Auth> {
  const now = deps.now ?? nowSeconds;
  const limits: AuthLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const store = await openAuthStore(deps.db);
  const keys = await loadKeyRing(deps.config, deps.warn ?? (() => {}));
  const limiter = new RateLimiter(store.limits, now);
  const sessions = new Sessions({
    store,
    keys,
    limits,
    now,
    accessTokenTtl: deps.config.ACCESS_TOKEN_TTL,
    refreshTokenTtl: deps.config.REFRESH_TOKEN_TTL,
  });
  const codes = new MagicCodes({ store, keys, limits, limiter, now });
  const apiKeys = new ApiKeys({ store, limits, now, platformKey: deps.config.CRM_ADMIN_API_KEY });

  async function describeProfiles(storeId: string, profiles: ProfileToDescribe[]): Promise<Record<string, ProfileAuthInfo>> {
    const emails = profiles.flatMap((p) => (p.email ? [p.email] : []));
    const [sessionsByProfile, codesByEmail] = await Promise.all([
      sessions.listForProfiles(
        storeId,
        profiles.map((p) => p.profile_id),
      ),
      codes.listForEmails(storeId, emails),
    ]);
    return Object.fromEntries(
      profiles.map((p) => [
        p.profile_id,
        {
          sessions: sessionsByProfile.get(p.profile_id) ?? [],
          codes: p.email ? (codesByEmail.get(normalizeEmail(p.email)) ?? []) : [],
        },
      ]),
    );
  }

  return {
    store,
    keys,
    limits,
    sessions,
    codes,
    apiKeys,
    async authenticate({ describe, ...token }) {
      if (!describe) return toPrincipal(await sessions.sessionOfToken(token));
      const { session, profileSessions } = await sessions.sessionOfTokenWithProfileSessions(token);
      const principal = toPrincipal(session);
      // An unverified session is never shown its profile's sessions and codes; one issued without its
      // e-mail (before sessions kept it) cannot be described: its reader asks describeProfiles instead.
      if (!session.is_verified || session.email === undefined) return principal;
      const { email } = session;
      const codesOfEmail = email === null ? [] : ((await codes.listForEmails(session.store_id, [email])).get(normalizeEmail(email)) ?? []);
      return { ...principal, described_profile: { email, sessions: profileSessions, codes: codesOfEmail } };
    },
    describeProfiles: ({ store_id, profiles }) => describeProfiles(store_id, profiles),
    async purgeExpired() {
      await sessions.purgeExpired();
      await codes.purgeExpired();
      await store.limits.deleteMany({ expires_at: { $lt: now() } });
    },
  };
}
