/**
 * The profiles service's error catalog: a stable `reason` per failure (in `data.reason`, for callers
 * that need finer than the contract code) and its public message. Nothing internal goes in a message.
 */
import { crmError, validationError } from "../../shared/errors";

export const ProfileErrors = {
  profileNotFound: () => crmError("NOT_FOUND", "Profile not found", { reason: "PROFILE_NOT_FOUND" }),
  sourceNotFound: () => crmError("NOT_FOUND", "Source profile not found", { reason: "MERGE_SOURCE_NOT_FOUND" }),
  emailTaken: () => crmError("CONFLICT", "Another profile of this store already uses this e-mail", { reason: "EMAIL_TAKEN" }),
  mergeIntoItself: () => validationError("source_id", "cannot merge a profile into itself", "A profile cannot be merged into itself"),
  mergeInProgress: () => crmError("CONFLICT", "The profile is being merged; try again shortly", { reason: "MERGE_IN_PROGRESS" }),
  concurrentUpdate: () => crmError("CONFLICT", "The profile changed concurrently; try again", { reason: "CONCURRENT_UPDATE" }),
  mergeUnfinished: () =>
    crmError("SERVICE_UNAVAILABLE", "The merge could not finish now; it will be completed automatically", { reason: "MERGE_PENDING", retryAfter: 30 }),
  notAuthenticated: () => crmError("UNAUTHENTICATED", "Authentication required", { reason: "SESSION_REQUIRED" }),
  sessionProfileGone: () => crmError("UNAUTHENTICATED", "Session is no longer valid", { reason: "SESSION_PROFILE_GONE" }),
} as const;
