/** Configuration from the environment: defaults, what a bad value says, and production's stricter rules. */
import { config, ConfigError, resetConfig } from "../config";
import { checkSettings, SERVICE_NAMES, settingsOf } from "../registry";

const saved = { ...process.env };
const KNOWN = ["NODE_ENV", "PORT", "DATA_DIR", "SMTP_URL", "MAIL_FROM", "CORS_ORIGINS", "CRM_ADMIN_API_KEY", "JWT_SECRET", "JWT_KEYS", "CURSOR_SECRET", "LOG_LEVEL"];

function withEnv(vars: Record<string, string>) {
  for (const name of KNOWN) delete process.env[name];
  Object.assign(process.env, vars);
  resetConfig();
}

/** The problems the start-up check of every service reports. */
function problemsOf(vars: Record<string, string>): string[] {
  withEnv(vars);
  try {
    checkSettings(SERVICE_NAMES);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

afterAll(() => {
  process.env = saved;
  resetConfig();
});

describe("config()", () => {
  it("treats an empty value as unset (PORT= in a compose file means the default)", () => {
    withEnv({ PORT: "", DATA_DIR: "  ", SMTP_URL: "" });
    expect(settingsOf("gateway")).toMatchObject({ PORT: 3000, DATA_DIR: "./data" });
    expect(settingsOf("mailer").SMTP_URL).toBeUndefined();
  });

  it("checks only the settings of the services a process runs (and the platform's)", () => {
    withEnv({ SMTP_URL: "notaurl", PORT: "http" });
    expect(() => checkSettings(["auth", "profiles"])).not.toThrow();
    expect(() => checkSettings(["gateway"])).toThrow(/PORT: /);
    expect(() => settingsOf("mailer")).toThrow(/SMTP_URL: /);
    expect(config().DATA_DIR).toBe("./data");
    withEnv({ LOG_LEVEL: "loud" });
    expect(() => checkSettings(["profiles"])).toThrow(/LOG_LEVEL: /);
  });

  it("names each bad variable and says what it should be, all at once", () => {
    const problems = problemsOf({ PORT: "http", SMTP_URL: "notaurl", MAIL_FROM: "garbage", CORS_ORIGINS: "example.com", LOG_LEVEL: "loud" });
    expect(problems).toHaveLength(5);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^SMTP_URL: must be an smtp:\/\/ or smtps:\/\/ URL/),
        expect.stringMatching(/^MAIL_FROM: must be an address/),
        expect.stringMatching(/^LOG_LEVEL: /),
        expect.stringMatching(/^CORS_ORIGINS: "example.com" is not an origin with its scheme, e.g. \* or https:\/\/shop.example/),
      ]),
    );
    withEnv({ SMTP_URL: "notaurl" });
    expect(() => settingsOf("mailer")).toThrow(/^Invalid configuration \(see README "Configuration"\):\n {2}SMTP_URL: /);
  });

  it("takes the usual good values", () => {
    expect(
      problemsOf({
        SMTP_URL: "smtps://user:p%40ss@mail.example.com:465",
        MAIL_FROM: "Shop <no-reply@shop.example>",
        CORS_ORIGINS: "https://shop.example, http://localhost:5173",
      }),
    ).toEqual([]);
    expect(problemsOf({ MAIL_FROM: "no-reply@shop.example", CORS_ORIGINS: "*" })).toEqual([]);
    // Spellings that name an origin all the same (the gateway compares normalised origins).
    expect(problemsOf({ CORS_ORIGINS: "https://Shop.Example/, https://shop.example:443,https://admin.example," })).toEqual([]);
  });

  it("refuses a malformed JWT_KEYS in every environment, and takes a trailing comma", () => {
    expect(problemsOf({ JWT_KEYS: "k2:" })).toEqual([expect.stringMatching(/^JWT_KEYS: .*kid:secret/)]);
    expect(problemsOf({ JWT_KEYS: "a:1,a:2" })).toEqual([expect.stringMatching(/^JWT_KEYS: .*duplicate kid/)]);
    expect(problemsOf({ JWT_KEYS: "k2:secret-two,k1:secret-one," })).toEqual([]);
  });

  it("refuses a header break in MAIL_FROM", () => {
    expect(problemsOf({ MAIL_FROM: "Shop <a@b.example>\r\nBcc: x@evil.example" })).toEqual([expect.stringMatching(/^MAIL_FROM/)]);
  });

  it("refuses short secrets in production only", () => {
    const short = { CRM_ADMIN_API_KEY: "x", JWT_SECRET: "short", JWT_KEYS: "k2:also-short", CURSOR_SECRET: "tiny" };
    expect(problemsOf(short)).toEqual([]);
    expect(problemsOf({ NODE_ENV: "production", ...short })).toEqual([
      expect.stringMatching(/^JWT_KEYS: each secret/), // JWT_KEYS wins over JWT_SECRET, as in auth
      expect.stringMatching(/^CURSOR_SECRET: /),
      expect.stringMatching(/^CRM_ADMIN_API_KEY: must be at least 32 bytes in production/),
    ]);
    expect(problemsOf({ NODE_ENV: "production", JWT_SECRET: "short" })).toEqual([expect.stringMatching(/^JWT_SECRET: /)]);
    expect(problemsOf({ NODE_ENV: "production" })).toEqual([expect.stringMatching(/^JWT_SECRET: must be set in production \(or JWT_KEYS\)/)]);
    // The CLI reads the platform settings alone and signs nothing: it runs without a key.
    withEnv({ NODE_ENV: "production" });
    expect(config().NODE_ENV).toBe("production");
    const long = "k".repeat(32);
    expect(problemsOf({ NODE_ENV: "production", CRM_ADMIN_API_KEY: long, JWT_KEYS: `new:${long},old:${long}` })).toEqual([]);
  });
});
