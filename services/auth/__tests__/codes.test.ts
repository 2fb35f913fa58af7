/** auth magic codes: requestCode (mailed through the mailer to a real SMTP server), verifyCode, limits. */
import type { VerificationCodeInfo } from "../../../shared/contracts/auth";
import { uuidv7 } from "../../../shared/ids";
import { startSmtpServer, type SmtpTestServer } from "../../../test/harness/smtp";
import { codeIn, dumpAuthDb, lastMailTo, rejection, startAuth, type AuthHarness } from "./support";

let sink: SmtpTestServer;
let h: AuthHarness;
const call = <T>(action: string, params: unknown) => h.broker.call<T, unknown>(`auth.${action}`, params);

beforeAll(async () => {
  sink = await startSmtpServer();
  h = await startAuth({ smtpUrl: sink.url });
});
afterAll(async () => {
  await h.broker.stop();
  await sink.close();
});

let n = 0;
const freshEmail = () => `user${++n}-${Date.now()}@example.com`;

async function requestCode(storeId: string, email: string, ip?: string): Promise<string> {
  await expect(call("requestCode", { store_id: storeId, email, ip })).resolves.toEqual({ sent: true });
  return codeIn(lastMailTo(sink.messages, email));
}

/** Moves the clock forward to the start of the next hour, so a test's fixed windows do not roll over midway. */
const alignToHour = () => h.clock.set(Math.ceil((h.clock.now() + 1) / 3600) * 3600);

/** A 6-digit code that is not `code`. */
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");

describe("auth.requestCode", () => {
  it("mails a 6-digit code to any address and answers { sent: true }", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    expect(code).toMatch(/^\d{6}$/);
    const mail = lastMailTo(sink.messages, email)!;
    expect(mail.raw).toMatch(/^Subject: Your login code\r?$/m);
    expect(mail.raw).toMatch(/expires in 10 minutes/);
  });

  it("stores the code only as a keyed hash", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    const [doc] = await h.db().collection("codes").find({ store_id: storeId });
    expect(doc.code_hash).toEqual(expect.any(String));
    expect(JSON.stringify(doc)).not.toContain(`"${code}"`);
    expect(await dumpAuthDb(h.db())).not.toMatch(new RegExp(`"${code}"`));
  });

  it("refuses a new code for the same e-mail within 60 s with 429 and retryAfter", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    await requestCode(storeId, email);
    h.clock.advance(20);
    const err = await rejection(call("requestCode", { store_id: storeId, email }));
    expect(err).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { retryAfter: 40, reason: "LIMIT_COOLDOWN" } });
    expect(err.message).toBe("A code was sent to this e-mail moments ago: use it, or ask again after the wait");
    // The cooldown is per store and per e-mail (case-insensitive).
    await expect(call("requestCode", { store_id: uuidv7(), email })).resolves.toEqual({ sent: true });
    expect(await rejection(call("requestCode", { store_id: storeId, email: email.toUpperCase() }))).toMatchObject({ type: "RATE_LIMITED" });
    h.clock.advance(40);
    await expect(call("requestCode", { store_id: storeId, email })).resolves.toEqual({ sent: true });
  });

  it("caps sends per IP (20 an hour)", async () => {
    alignToHour();
    const storeId = uuidv7();
    for (let i = 0; i < 20; i++) await expect(call("requestCode", { store_id: storeId, email: freshEmail(), ip: "203.0.113.7" })).resolves.toEqual({ sent: true });
    const err = await rejection(call("requestCode", { store_id: storeId, email: freshEmail(), ip: "203.0.113.7" }));
    expect(err).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { reason: "LIMIT_SEND_IP" } });
    expect(err.message).toMatch(/^Too many login codes were asked for from this network/);
    expect(err.data!.retryAfter).toBeGreaterThan(0);
    expect(err.data!.retryAfter).toBeLessThanOrEqual(3600);
    await expect(call("requestCode", { store_id: storeId, email: freshEmail(), ip: "203.0.113.8" })).resolves.toEqual({ sent: true });
  });

  it("answers 503 when the e-mail cannot be sent, and the code is unusable", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    sink.failNext(1);
    const err = await rejection(call("requestCode", { store_id: storeId, email }));
    expect(err).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
    // The SMTP server received the message in full before refusing it: read the code it carried.
    const unsent = codeIn(lastMailTo(sink.refused, email));
    expect(await rejection(call("verifyCode", { store_id: storeId, email, code: unsent }))).toMatchObject({ type: "UNAUTHENTICATED" });
    await expect(call("listCodes", { store_id: storeId, email })).resolves.toEqual([]);
    // No cooldown is left behind by a send that did not happen.
    await expect(call("requestCode", { store_id: storeId, email })).resolves.toEqual({ sent: true });
  });

  it("answers 400 on the email field when the mail server refuses the address for good, and keeps no code", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    sink.refuseRecipient(email);
    try {
      const err = await rejection(call("requestCode", { store_id: storeId, email }));
      expect(err).toMatchObject({ type: "VALIDATION_ERROR", code: 400, data: { validationErrors: [{ field: "email" }] } });
      await expect(call("listCodes", { store_id: storeId, email })).resolves.toEqual([]);
    } finally {
      sink.clear();
    }
    // The corrected (here: now accepted) address can ask again at once: no cooldown was left behind.
    await expect(call("requestCode", { store_id: storeId, email })).resolves.toEqual({ sent: true });
  });

  it("rejects values of the wrong type as a validation error", async () => {
    for (const params of [
      { store_id: uuidv7(), email: { $ne: null } },
      { store_id: uuidv7(), email: "not-an-email" },
      { store_id: "not-a-uuid", email: "a@example.com" },
      { store_id: { $gt: "" }, email: "a@example.com" },
    ]) {
      expect(await rejection(call("requestCode", params))).toMatchObject({ type: "VALIDATION_ERROR" });
    }
    expect(await rejection(call("verifyCode", { store_id: uuidv7(), email: "a@example.com", code: { $ne: null } }))).toMatchObject({ type: "VALIDATION_ERROR" });
    expect(await rejection(call("verifyCode", { store_id: uuidv7(), email: { $ne: null }, code: "123456" }))).toMatchObject({ type: "VALIDATION_ERROR" });
  });
});

describe("auth.requestCode without a mailer", () => {
  it("answers 503 and leaves no usable code when the mailer service is down", async () => {
    const solo = await startAuth({ mailer: false });
    try {
      const storeId = uuidv7();
      const err = await rejection(solo.broker.call("auth.requestCode", { store_id: storeId, email: "x@example.com" }));
      expect(err).toMatchObject({ type: "SERVICE_UNAVAILABLE", code: 503 });
      await expect(solo.broker.call("auth.listCodes", { store_id: storeId, email: "x@example.com" })).resolves.toEqual([]);
    } finally {
      await solo.broker.stop();
    }
  });
});

describe("auth.verifyCode", () => {
  it("accepts the right code once and marks it used", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    await expect(call("verifyCode", { store_id: storeId, email: email.toUpperCase(), code })).resolves.toEqual({ verified: true });
    expect(await rejection(call("verifyCode", { store_id: storeId, email, code }))).toMatchObject({
      type: "UNAUTHENTICATED",
      code: 401,
      message: "invalid or expired code",
    });
    const [info] = await call<VerificationCodeInfo[]>("listCodes", { store_id: storeId, email });
    expect(info).toEqual({ id: expect.any(String), created_at: expect.any(Number), expires_at: info.created_at + 600, used: true, attempts: 1 });
  });

  it("refuses a code after 10 minutes", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    h.clock.advance(600);
    expect(await rejection(call("verifyCode", { store_id: storeId, email, code }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });

  it("refuses a code on another store", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    expect(await rejection(call("verifyCode", { store_id: uuidv7(), email, code }))).toMatchObject({ type: "UNAUTHENTICATED" });
    await expect(call("verifyCode", { store_id: storeId, email, code })).resolves.toEqual({ verified: true });
  });

  it("burns a code after 5 wrong tries", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    for (let i = 0; i < 5; i++) {
      expect(await rejection(call("verifyCode", { store_id: storeId, email, code: wrong(code) }))).toMatchObject({ type: "UNAUTHENTICATED" });
    }
    expect(await rejection(call("verifyCode", { store_id: storeId, email, code }))).toMatchObject({ type: "UNAUTHENTICATED" });
    const [info] = await call<VerificationCodeInfo[]>("listCodes", { store_id: storeId, email });
    expect(info).toMatchObject({ used: false, attempts: 5 });
  });

  it("lets parallel guesses spend at most 5 tries of a code", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    await Promise.allSettled(Array.from({ length: 9 }, () => call("verifyCode", { store_id: storeId, email, code: wrong(code) })));
    const [info] = await call<VerificationCodeInfo[]>("listCodes", { store_id: storeId, email });
    expect(info.attempts).toBe(5);
    expect(await rejection(call("verifyCode", { store_id: storeId, email, code }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });

  it("accepts only the newest code: a new code supersedes older unused ones", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const first = await requestCode(storeId, email);
    h.clock.advance(61);
    const second = await requestCode(storeId, email);
    if (first !== second) {
      expect(await rejection(call("verifyCode", { store_id: storeId, email, code: first }))).toMatchObject({ type: "UNAUTHENTICATED" });
    }
    await expect(call("verifyCode", { store_id: storeId, email, code: second })).resolves.toEqual({ verified: true });
    expect(await call<VerificationCodeInfo[]>("listCodes", { store_id: storeId, email })).toHaveLength(1);
  });

  it("counts failures per e-mail and client across new codes: 10 in an hour -> 429 for that client until the window passes", async () => {
    alignToHour();
    const storeId = uuidv7();
    const email = freshEmail();
    const ip = "192.0.2.10";
    const failures = async (code: string, times: number) => {
      for (let i = 0; i < times; i++) await rejection(call("verifyCode", { store_id: storeId, email, code: wrong(code), ip }));
    };
    await failures(await requestCode(storeId, email), 4);
    h.clock.advance(61);
    await failures(await requestCode(storeId, email), 4);
    h.clock.advance(61);
    const third = await requestCode(storeId, email);
    await failures(third, 2);
    const err = await rejection(call("verifyCode", { store_id: storeId, email, code: third, ip }));
    expect(err).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { reason: "LIMIT_VERIFY_FAIL_IP" } });
    expect(err.message).toMatch(/^Too many wrong codes for this e-mail from this network/);
    expect(err.data!.retryAfter).toBeGreaterThan(0);

    // Someone else's failures neither stop the owner (another client) nor block asking for a code.
    await expect(call("verifyCode", { store_id: storeId, email, code: third, ip: "198.51.100.77" })).resolves.toEqual({ verified: true });
    h.clock.advance(61);
    const next = await requestCode(storeId, email);
    expect((await rejection(call("verifyCode", { store_id: storeId, email, code: next, ip }))).type).toBe("RATE_LIMITED");
    h.clock.advance(err.data!.retryAfter as number);
    const fresh = await requestCode(storeId, email);
    await expect(call("verifyCode", { store_id: storeId, email, code: fresh, ip })).resolves.toEqual({ verified: true });
  });

  it("pauses verification of an e-mail after 50 failures from anywhere in an hour (distributed guessing), never code requests", async () => {
    alignToHour();
    const storeId = uuidv7();
    const email = freshEmail();
    for (let i = 0; i < 50; i++) {
      if (i % 5 === 0) {
        if (i > 0) h.clock.advance(61);
        await requestCode(storeId, email);
      }
      await rejection(call("verifyCode", { store_id: storeId, email, code: "000000", ip: `203.0.113.${i}` }));
    }
    h.clock.advance(61);
    const code = await requestCode(storeId, email);
    const err = await rejection(call("verifyCode", { store_id: storeId, email, code, ip: "198.51.100.200" }));
    expect(err).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { reason: "LIMIT_VERIFY_FAIL" } });
  });

  it("caps verifications per IP (60 an hour)", async () => {
    alignToHour();
    const storeId = uuidv7();
    const email = freshEmail();
    for (let i = 0; i < 60; i++) await rejection(call("verifyCode", { store_id: storeId, email: `${i}-${email}`, code: "000000", ip: "198.51.100.4" }));
    const err = await rejection(call("verifyCode", { store_id: storeId, email, code: "000000", ip: "198.51.100.4" }));
    expect(err).toMatchObject({ type: "RATE_LIMITED", code: 429, data: { reason: "LIMIT_VERIFY_IP" } });
    expect(await rejection(call("verifyCode", { store_id: storeId, email, code: "000000", ip: "198.51.100.5" }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });
});

describe("auth.listCodes / deleteCodes", () => {
  it("lists code metadata only and deletes an e-mail's codes", async () => {
    const storeId = uuidv7();
    const email = freshEmail();
    const code = await requestCode(storeId, email);
    const list = await call<VerificationCodeInfo[]>("listCodes", { store_id: storeId, email });
    expect(list).toHaveLength(1);
    expect(Object.keys(list[0]).sort()).toEqual(["attempts", "created_at", "expires_at", "id", "used"]);
    expect(JSON.stringify(list)).not.toContain(code);
    await expect(call("deleteCodes", { store_id: uuidv7(), email })).resolves.toEqual({ deleted: 0 });
    await expect(call("deleteCodes", { store_id: storeId, email })).resolves.toEqual({ deleted: 1 });
    expect(await rejection(call("verifyCode", { store_id: storeId, email, code }))).toMatchObject({ type: "UNAUTHENTICATED" });
  });
});

describe("per-store send cap", () => {
  it("refuses sends past the store's hourly cap with 429", async () => {
    const capped = await startAuth({ smtpUrl: sink.url, limits: { sendsPerStore: { limit: 3, windowSeconds: 3600 } } });
    try {
      const storeId = uuidv7();
      for (let i = 0; i < 3; i++) await capped.broker.call("auth.requestCode", { store_id: storeId, email: freshEmail() });
      expect(await rejection(capped.broker.call("auth.requestCode", { store_id: storeId, email: freshEmail() }))).toMatchObject({ type: "RATE_LIMITED" });
      await expect(capped.broker.call("auth.requestCode", { store_id: uuidv7(), email: freshEmail() })).resolves.toEqual({ sent: true });
    } finally {
      await capped.broker.stop();
    }
  });
});

describe("per-store verification cap", () => {
  it("refuses verifications past the store's hourly cap with 429, from any client, and not in other stores", async () => {
    const capped = await startAuth({ smtpUrl: sink.url, limits: { verifiesPerStore: { limit: 3, windowSeconds: 3600 } } });
    try {
      const storeId = uuidv7();
      for (let i = 0; i < 3; i++) {
        const err = await rejection(capped.broker.call("auth.verifyCode", { store_id: storeId, email: freshEmail(), code: "000000", ip: `192.0.2.${i}` }));
        expect(err).toMatchObject({ type: "UNAUTHENTICATED" });
      }
      const capErr = await rejection(capped.broker.call("auth.verifyCode", { store_id: storeId, email: freshEmail(), code: "000000", ip: "192.0.2.99" }));
      expect(capErr).toMatchObject({ type: "RATE_LIMITED", code: 429 });
      const elsewhere = await rejection(capped.broker.call("auth.verifyCode", { store_id: uuidv7(), email: freshEmail(), code: "000000" }));
      expect(elsewhere).toMatchObject({ type: "UNAUTHENTICATED" });
    } finally {
      await capped.broker.stop();
    }
  });
});
