/**
 * The spec's "Profile Lists" routes, served by the profile-lists service, and the routes it implies (confirm,
 * unsubscribe): one line per route (method, path, action, who may call it; then its documentation).
 */
import { Deleted } from "../contracts/common";
import {
  AccessResult,
  ImportResult,
  IMPORT_TIMEOUT_MS,
  Membership,
  ProfileList,
  ProfileListMemberPage,
  ProfileListPage,
  ProfileListsActions as A,
  SubscribeResult,
  UnsubscribeResult,
} from "../contracts/profile-lists";
import { routesOf, type RouteDef } from "./types";

const admin = "/v1/stores/{storeId}/profile-lists";
const storefront = "/v1/storefront/{storeId}/profile-lists";
const route = routesOf("Profile lists");
/** The list-less import is documented with the profiles; the import engine that serves it is this service's. */
const profilesRoute = routesOf("Profiles");

// biome-ignore format: one route per line, so the table reads as a table
export const profileListRoutes: RouteDef[] = [
  route("POST", admin, "profile-lists.create", "admin", { summary: "Create a profile list (key unique per store)", sdk: "sdk.crm.profileList.create()", params: A.create, response: ProfileList, errors: [409] }),
  route("GET", admin, "profile-lists.find", "admin", { summary: "Find profile lists by ids, status, or a key/name prefix", sdk: "sdk.crm.profileList.find()", params: A.find, response: ProfileListPage }),
  route("GET", `${admin}/{id}`, "profile-lists.get", "admin", { summary: "Get a profile list", sdk: "sdk.crm.profileList.get()", params: A.get, response: ProfileList }),
  route("PUT", `${admin}/{id}`, "profile-lists.update", "admin", { summary: "Update a list's key, name, description, status (and a paid list's prices); the type's kind never changes", sdk: "sdk.crm.profileList.update()", params: A.update, response: ProfileList, errors: [409] }),
  route("GET", `${admin}/{id}/profiles`, "profile-lists.members", "admin", { summary: "Profiles in a profile list, with their memberships", sdk: "sdk.crm.profileList.profiles.find()", params: A.members, response: ProfileListMemberPage }),
  route("POST", `${admin}/{id}/profiles/{profileId}`, "profile-lists.addMember", "admin", { summary: "Add a profile to a list (active, source admin); an existing membership is answered unchanged", sdk: "sdk.crm.profileList.profiles.add()", params: A.addMember, response: Membership, errors: [409] }),
  route("DELETE", `${admin}/{id}/profiles/{profileId}`, "profile-lists.removeMember", "admin", { summary: "Remove a profile from a list; its access ends at once", sdk: "sdk.crm.profileList.profiles.remove()", params: A.removeMember, response: Deleted, errors: [409] }),
  route("POST", `${admin}/{id}/profiles/import`, "profile-lists.importProfiles", "admin", { summary: "Import profiles into a list: upsert each row's profile by e-mail, make it an active member (JSON rows, csv text, or a text/csv body)", sdk: "sdk.crm.profileList.importProfiles()", params: A.importProfiles, query: ["email_column"], response: ImportResult, timeoutMs: IMPORT_TIMEOUT_MS }),
  profilesRoute("POST", "/v1/stores/{storeId}/profiles/import", "profile-lists.importProfiles", "admin", { summary: "Import profiles: upsert each row's profile by e-mail (JSON rows, csv text, or a text/csv body); the same engine as a list import, without a list", sdk: "sdk.crm.importProfiles()", params: A.importProfiles.omit({ id: true }), query: ["email_column"], response: ImportResult, timeoutMs: IMPORT_TIMEOUT_MS }),
  route("POST", `${storefront}/{id}/subscribe`, "profile-lists.subscribe", "profile", { summary: "Subscribe the session's profile (double opt-in lists e-mail a confirmation link)", sdk: "sdk.crm.profileList.subscribe()", params: A.subscribe, response: SubscribeResult, errors: [403, 409] }),
  route("POST", `${storefront}/{id}/confirm`, "profile-lists.confirm", "public", { summary: "Confirm a double opt-in subscription with the e-mailed token", params: A.confirm, query: ["token"], response: Membership }),
  route("GET", `${storefront}/{id}/access`, "profile-lists.access", "profile", { summary: "Whether the session's profile has access to the list", sdk: "sdk.crm.profileList.checkAccess()", params: A.access, response: AccessResult }),
  route("POST", `${storefront}/{id}/unsubscribe`, "profile-lists.unsubscribe", "optional-profile", { summary: "Unsubscribe: the session's own profile, or the token of a list e-mail (no session); RFC 8058 one-click form posts too", params: A.unsubscribe, query: ["token"], response: UnsubscribeResult, errors: [403, 409] }),
];
