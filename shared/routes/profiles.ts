/**
 * The spec's "Profile Endpoints" served by the profiles service: one line per route (method, path,
 * action, who may call it; then its documentation). The magic-code request and the token refresh of
 * the same area are auth's own routes (shared/routes/auth.ts).
 */
import { AuthToken } from "../contracts/auth";
import { Deleted } from "../contracts/common";
import { ConnectResult, OrderLinkList, Profile, ProfileActions, ProfileList, RevokeAllResult } from "../contracts/profiles";
import { routesOf, type RouteDef } from "./types";

const base = "/v1/stores/{storeId}/profiles";
const route = routesOf("Profiles");

// biome-ignore format: one route per line, so the table reads as a table
export const profileRoutes: RouteDef[] = [
  route("POST", `${base}/initialize`, "profiles.initialize", "public", { summary: "Initialize a guest profile and get a session", sdk: "sdk.crm.initialize()", params: ProfileActions.initialize, response: AuthToken }),
  route("POST", `${base}/connect`, "profiles.connect", "optional-profile", { summary: "Attach an e-mail to the current session (or find/create its profile); returns a fresh unverified session", sdk: "sdk.crm.connect()", params: ProfileActions.connect, response: ConnectResult, errors: [409] }),
  route("POST", `${base}/auth/verify`, "profiles.verify", "optional-profile", { summary: "Exchange a login code for a verified session (a guest session is upgraded)", sdk: "sdk.crm.verify()", params: ProfileActions.verify, response: AuthToken, errors: [409] }),
  route("GET", `${base}/me`, "profiles.me", "profile", { summary: "The profile of the current session", sdk: "sdk.crm.getMe()", params: ProfileActions.me, response: Profile, tokenCheckedByAction: true }),
  route("POST", base, "profiles.create", "admin", { summary: "Create a profile (idempotent by e-mail: an existing profile is returned)", sdk: "sdk.crm.create()", params: ProfileActions.create, response: Profile }),
  route("GET", base, "profiles.find", "admin", { summary: "Search and list profiles", sdk: "sdk.crm.find()", params: ProfileActions.find, response: ProfileList }),
  route("GET", `${base}/{id}`, "profiles.get", "admin", { summary: "Get a profile", sdk: "sdk.crm.get()", params: ProfileActions.get, response: Profile }),
  route("PUT", `${base}/{id}`, "profiles.update", "admin", { summary: "Update a profile's e-mail, taxonomies or status", sdk: "sdk.crm.update()", params: ProfileActions.update, response: Profile, errors: [409] }),
  route("POST", `${base}/{id}/merge`, "profiles.merge", "admin", { summary: "Merge the source profile into this one; the source is permanently deleted", sdk: "sdk.crm.merge()", params: ProfileActions.merge, response: Profile, errors: [409] }),
  route("GET", `${base}/{id}/orders`, "profiles.listOrders", "admin", { summary: "Orders linked to a profile, newest first", params: ProfileActions.listOrders, response: OrderLinkList }),
  route("DELETE", `${base}/{id}/sessions/{tokenId}`, "profiles.revokeSession", "admin", { summary: "Revoke one session of a profile", sdk: "sdk.crm.revokeToken()", params: ProfileActions.revokeSession, response: Deleted }),
  route("DELETE", `${base}/{id}/sessions`, "profiles.revokeAllSessions", "admin", { summary: "Revoke every session of a profile (logout everywhere)", sdk: "sdk.crm.revokeAllTokens()", params: ProfileActions.revokeAllSessions, response: RevokeAllResult }),
];
