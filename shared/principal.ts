/**
 * A profile principal from a bearer access token, checked by `auth.authenticate`: the gateway uses it for the
 * routes it authenticates, and an action that checks its caller's token itself (`profiles.me`, see the route
 * table's `tokenCheckedByAction`) uses it in its own process. Any refusal is 401; an outage of auth is 503.
 */
import { SessionPrincipal, type DescribedProfile, type DescribedProfileSession } from "./contracts/auth";
import { crmError, toErrorBody } from "./errors";

export const PrincipalMessages = {
  invalidAccessToken: "Invalid or expired access token",
  authUnavailable: "Authentication is temporarily unavailable",
} as const;

export type Authenticate = (params: { store_id: string; access_token: string; describe?: boolean }) => Promise<unknown>;

/**
 * The profile session of `accessToken` for this store. With `describe`, auth also describes the session's
 * profile when it may (`described_profile`), for a route that shows that profile.
 */
export async function profilePrincipal(
  storeId: unknown,
  accessToken: string,
  authenticate: Authenticate,
  { describe = false }: { describe?: boolean } = {},
): Promise<DescribedProfileSession> {
  if (typeof storeId !== "string") throw invalidAccessToken();
  let answer: unknown;
  try {
    answer = await authenticate({ store_id: storeId, access_token: accessToken, ...(describe ? { describe } : {}) });
  } catch (err) {
    throw authFailure(err, PrincipalMessages.invalidAccessToken);
  }
  // The principal is checked; the description (lists of sessions and codes that the view shows as auth
  // wrote them) is passed on as it came: checking it too cost about 4% of a verified GET /profiles/me.
  const parsed = SessionPrincipal.safeParse(answer);
  if (!parsed.success) throw crmError("INTERNAL", "auth.authenticate answered an unexpected shape");
  // A token is bound to its store: used on another store it is 401, whatever the auth service says.
  if (parsed.data.store_id !== storeId) throw invalidAccessToken();
  const described = describe ? (answer as { described_profile?: DescribedProfile }).described_profile : undefined;
  return { kind: "profile", ...parsed.data, ...(described ? { described_profile: described } : {}) };
}

/**
 * A refusal by the auth service is 401. An outage (auth down, timeout, 5xx) is 503 instead: a client
 * told 401 would drop its tokens and log its user out because of our outage.
 */
export function authFailure(err: unknown, message: string): Error {
  const type = (err as { type?: unknown } | undefined)?.type;
  const status = toErrorBody(err).statusCode;
  if (type === "SERVICE_NOT_FOUND" || type === "SERVICE_NOT_AVAILABLE" || status >= 500) {
    return crmError("SERVICE_UNAVAILABLE", PrincipalMessages.authUnavailable, { retryAfter: 5 });
  }
  return crmError("UNAUTHENTICATED", message);
}

const invalidAccessToken = () => crmError("UNAUTHENTICATED", PrincipalMessages.invalidAccessToken);
