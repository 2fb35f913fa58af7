/**
 * The auth service's public error catalog: stable contract codes with the messages clients see.
 * Messages are deliberately generic (no hint whether a token, code, session or e-mail exists).
 */
import { crmError, validationError } from "../../shared/errors";

export const AuthMessages = {
  invalidToken: "Invalid or expired token",
  invalidRefreshToken: "Invalid or expired refresh token",
  invalidCode: "invalid or expired code",
  invalidApiKey: "Invalid API key",
  /** Which limit a 429 met, and what to do about it (see RateLimiter). */
  rateLimited: {
    "send-ip": "Too many login codes were asked for from this network; try again after the wait",
    "send-store": "This store has sent as many login codes as it may this hour; try again after the wait",
    cooldown: "A code was sent to this e-mail moments ago: use it, or ask again after the wait",
    "verify-ip": "Too many codes were tried from this network; try again after the wait",
    "verify-store": "Too many codes were tried at this store this hour; try again after the wait",
    "verify-fail-ip": "Too many wrong codes for this e-mail from this network: try again after the wait (a new code does not lift it)",
    "verify-fail": "Too many wrong codes for this e-mail: its login is paused; try again after the wait",
  },
  sessionNotFound: "Session not found",
  apiKeyNotFound: "API key not found",
  mailUnavailable: "The e-mail could not be sent, try again later",
  recipientRefused: "The mail server refused this address; check it for typos",
} as const;

export const AuthErrors = {
  invalidToken: () => crmError("UNAUTHENTICATED", AuthMessages.invalidToken),
  invalidRefreshToken: () => crmError("UNAUTHENTICATED", AuthMessages.invalidRefreshToken),
  invalidCode: () => crmError("UNAUTHENTICATED", AuthMessages.invalidCode),
  invalidApiKey: () => crmError("UNAUTHENTICATED", AuthMessages.invalidApiKey),
  /** 429 with the seconds to wait (the gateway turns it into `Retry-After`). */
  rateLimited: (limit: keyof typeof AuthMessages.rateLimited, retryAfter: number) =>
    crmError("RATE_LIMITED", AuthMessages.rateLimited[limit], {
      reason: `LIMIT_${limit.toUpperCase().replaceAll("-", "_")}`,
      retryAfter: Math.max(1, Math.ceil(retryAfter)),
    }),
  sessionNotFound: () => crmError("NOT_FOUND", AuthMessages.sessionNotFound),
  apiKeyNotFound: () => crmError("NOT_FOUND", AuthMessages.apiKeyNotFound),
  mailUnavailable: () => crmError("SERVICE_UNAVAILABLE", AuthMessages.mailUnavailable),
  /** 400 on `email`: the mail server refused the address for good (a corrected one may ask at once). */
  recipientRefused: () => validationError("email", AuthMessages.recipientRefused, AuthMessages.recipientRefused),
};
