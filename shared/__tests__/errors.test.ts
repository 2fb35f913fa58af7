import { Errors } from "moleculer";
import { crmError, toErrorBody } from "../errors";

describe("toErrorBody", () => {
  it("keeps a service's contract code, message and field errors", () => {
    const err = crmError("VALIDATION_ERROR", "Request validation failed", { validationErrors: [{ field: "email", error: "required" }] });
    expect(toErrorBody(err)).toEqual({
      statusCode: 400,
      error: "VALIDATION_ERROR",
      message: "Request validation failed",
      validationErrors: [{ field: "email", error: "required" }],
    });
  });

  it("maps Moleculer's parameter validation error to the contract body with a plain message", () => {
    const err = new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [{ field: "limit", message: "Too big" }]);
    expect(toErrorBody(err)).toEqual({
      statusCode: 400,
      error: "VALIDATION_ERROR",
      message: "Request validation failed",
      validationErrors: [{ field: "limit", error: "Too big" }],
    });
  });

  it("answers 503 for a timeout, an open circuit or a call skipped for lack of time", () => {
    for (const type of ["REQUEST_TIMEOUT", "CIRCUIT_BREAKER_OPEN", "REQUEST_SKIPPED", "SERVICE_NOT_FOUND"]) {
      const body = toErrorBody(new Errors.MoleculerRetryableError("internal detail", 500, type));
      expect(body).toMatchObject({ statusCode: 503, error: "SERVICE_UNAVAILABLE", message: "Service temporarily unavailable" });
    }
  });

  it("never passes on the message of an unexpected error", () => {
    expect(toErrorBody(new Error("db password is hunter2"))).toEqual({ statusCode: 500, error: "INTERNAL", message: "Internal server error" });
    expect(toErrorBody(undefined)).toMatchObject({ statusCode: 500 });
  });

  it("carries retryAfter for 429", () => {
    expect(toErrorBody(crmError("RATE_LIMITED", "Slow down", { retryAfter: 42 }))).toMatchObject({ statusCode: 429, retryAfter: 42 });
  });
});
