/**
 * Routes the auth service answers itself (the gateway calls it directly; no other service relays
 * them): the magic-code request and the token refresh of the spec's "Profile Endpoints".
 */
import { AuthActions, AuthToken } from "../contracts/auth";
import { SentResult } from "../contracts/profiles";
import { routesOf, type RouteDef } from "./types";

const base = "/v1/stores/{storeId}/profiles";
const route = routesOf("Profiles");

// biome-ignore format: one route per line, so the table reads as a table
export const authRoutes: RouteDef[] = [
  route("POST", `${base}/auth/code`, "auth.requestCode", "optional-profile", { summary: "E-mail a login code (answers sent: true whether or not the e-mail is known)", sdk: "sdk.crm.requestCode()", params: AuthActions.requestCodeBody, response: SentResult }),
  route("POST", `${base}/auth/refresh`, "auth.refreshSession", "public", { summary: "Exchange a refresh token for a new token pair (refresh tokens rotate)", sdk: "sdk.crm.refreshToken()", params: AuthActions.refreshSession, response: AuthToken, errors: [401] }),
];
