/** The auth key ring and access tokens: key configuration, rotation, and what a token must carry. */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { uuidv7 } from "../../../shared/ids";
import { keySources, loadKeyRing } from "../keys";
import { AccessTokenVerifier, seal, signAccessToken, unseal, verifyAccessToken } from "../tokens";

const claims = { store_id: uuidv7(), profile_id: uuidv7(), session_id: uuidv7() };
const quiet = () => {};

describe("key configuration", () => {
  it("reads JWT_KEYS as kid:secret pairs (the first signs) and JWT_SECRET as kid k1", () => {
    expect(keySources({ JWT_KEYS: "new:s3cr:et, old:older", JWT_SECRET: "ignored" })).toEqual([
      { kid: "new", secret: "s3cr:et" },
      { kid: "old", secret: "older" },
    ]);
    expect(keySources({ JWT_SECRET: "only" })).toEqual([{ kid: "k1", secret: "only" }]);
    expect(keySources({})).toBeUndefined();
  });

  it("refuses malformed JWT_KEYS", () => {
    for (const bad of ["nocolon", ":secret", "kid:", "a:1,a:2"]) expect(() => keySources({ JWT_KEYS: bad })).toThrow(/JWT_KEYS/);
  });

  it("warns about a secret shorter than 32 bytes", async () => {
    const warnings: string[] = [];
    await loadKeyRing({ NODE_ENV: "test", JWT_KEYS: `long:${"x".repeat(32)},short:abc` }, (m) => warnings.push(m));
    expect(warnings).toEqual([expect.stringMatching(/"short" is shorter than 32 bytes/)]);
  });

  it("makes a random key with a warning outside production, and refuses to in production", async () => {
    const warnings: string[] = [];
    const ring = await loadKeyRing({ NODE_ENV: "development" }, (m) => warnings.push(m));
    expect(ring.ephemeral).toBe(true);
    expect(warnings.join(" ")).toMatch(/restart/);
    expect(warnings.join(" ")).toMatch(/JWT_SECRET/);
    await expect(loadKeyRing({ NODE_ENV: "production" }, quiet)).rejects.toThrow(/JWT_SECRET/);
  });

  it("keeps the development key beside the embedded file store, so tokens survive an npm start restart", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "crm-keys-"));
    try {
      const warnings: string[] = [];
      const first = await loadKeyRing({ NODE_ENV: "development", DATA_DIR: dataDir }, (m) => warnings.push(m));
      const token = await signAccessToken(first, claims, 1000, 1900);
      const second = await loadKeyRing({ NODE_ENV: "development", DATA_DIR: dataDir }, quiet);
      await expect(verifyAccessToken(second, token, claims.store_id, 1500)).resolves.toEqual(claims);
      expect(warnings.join(" ")).toContain(path.join(dataDir, "dev-signing-key"));
      expect(statSync(path.join(dataDir, "dev-signing-key")).mode & 0o077).toBe(0);

      const inMemory = await loadKeyRing({ NODE_ENV: "development", DATA_DIR: dataDir, STORAGE: "memory" }, quiet);
      await expect(verifyAccessToken(inMemory, token, claims.store_id, 1500)).resolves.toBeNull(); // a fresh key per process
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("access tokens", () => {
  it("verify under every configured key: a rotated-out signer still verifies until removed", async () => {
    const before = await loadKeyRing({ NODE_ENV: "test", JWT_KEYS: "old:secret-one" }, quiet);
    const after = await loadKeyRing({ NODE_ENV: "test", JWT_KEYS: "new:secret-two,old:secret-one" }, quiet);
    const removed = await loadKeyRing({ NODE_ENV: "test", JWT_KEYS: "new:secret-two" }, quiet);
    const token = await signAccessToken(before, claims, 1000, 1900);
    await expect(verifyAccessToken(after, token, claims.store_id, 1500)).resolves.toEqual(claims);
    await expect(verifyAccessToken(removed, token, claims.store_id, 1500)).resolves.toBeNull();
  });

  it("are refused after exp, for another audience, and when signed with another secret under the same kid", async () => {
    const ring = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "a" }, quiet);
    const impostor = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "b" }, quiet);
    const token = await signAccessToken(ring, claims, 1000, 1900);
    await expect(verifyAccessToken(ring, token, claims.store_id, 1900)).resolves.toBeNull();
    await expect(verifyAccessToken(ring, token, uuidv7(), 1500)).resolves.toBeNull();
    await expect(verifyAccessToken(ring, await signAccessToken(impostor, claims, 1000, 1900), claims.store_id, 1500)).resolves.toBeNull();
  });

  it("are unique: two tokens for one session in the same second differ by their jti", async () => {
    const ring = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "a" }, quiet);
    const tokens = await Promise.all([1, 2, 3].map(() => signAccessToken(ring, claims, 1000, 1900)));
    expect(new Set(tokens).size).toBe(3);
    const jtis = tokens.map((token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString()).jti as string);
    expect(new Set(jtis).size).toBe(3);
    for (const jti of jtis) expect(jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses alg none", async () => {
    const ring = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "a" }, quiet);
    const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const unsigned = `${part({ alg: "none", kid: "k1" })}.${part({ sub: claims.profile_id, sid: claims.session_id, aud: `store:${claims.store_id}`, iss: "crm", exp: 2000 })}.`;
    await expect(verifyAccessToken(ring, unsigned, claims.store_id, 1500)).resolves.toBeNull();
  });
});

describe("AccessTokenVerifier", () => {
  it("remembers a verified token only until its exp, only for its store, and never a refused one", async () => {
    const ring = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "a" }, quiet);
    const impostor = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "b" }, quiet);
    const verifier = new AccessTokenVerifier(ring, 2);
    const token = await signAccessToken(ring, claims, 1000, 1900);
    await expect(verifier.verify(token, claims.store_id, 1500)).resolves.toEqual(claims);
    await expect(verifier.verify(token, claims.store_id, 1899)).resolves.toEqual(claims); // remembered
    await expect(verifier.verify(token, uuidv7(), 1500)).resolves.toBeNull(); // another store, even remembered
    await expect(verifier.verify(token, claims.store_id, 1900)).resolves.toBeNull(); // expired, even remembered
    const forged = await signAccessToken(impostor, claims, 1000, 1900);
    await expect(verifier.verify(forged, claims.store_id, 1500)).resolves.toBeNull();
    await expect(verifier.verify(forged, claims.store_id, 1500)).resolves.toBeNull();
    // Bounded: the oldest answers go first, and a forgotten token is simply verified again.
    const others = await Promise.all([1, 2, 3].map(() => signAccessToken(ring, claims, 1000, 1900)));
    for (const t of others) await expect(verifier.verify(t, claims.store_id, 1500)).resolves.toEqual(claims);
    await expect(verifier.verify(token, claims.store_id, 1500)).resolves.toEqual(claims);
  });
});

describe("sealing the grace pair", () => {
  it("round-trips only under the same key and context", async () => {
    const ring = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "a" }, quiet);
    const other = await loadKeyRing({ NODE_ENV: "test", JWT_SECRET: "b" }, quiet);
    const sealed = seal(ring, { refresh_token: "secret-value" }, "ctx-1");
    expect(JSON.stringify(sealed)).not.toContain("secret-value");
    expect(unseal(ring, sealed, "ctx-1")).toEqual({ refresh_token: "secret-value" });
    expect(unseal(ring, sealed, "ctx-2")).toBeNull();
    expect(unseal(other, sealed, "ctx-1")).toBeNull();
  });
});
