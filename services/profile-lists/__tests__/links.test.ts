/** The links list mail carries: allowed origins, confirm_url checks, unsubscribe tokens; the LINK_ORIGINS setting. */
import { ProfileListsSettings } from "../../../shared/config";
import { allowedOrigins, checkLink, confirmLink, hashToken, newConfirmToken, UnsubscribeLinks } from "../links";

describe("allowed link origins", () => {
  it("are LINK_ORIGINS when set, else PUBLIC_URL's origin (default http://localhost:$PORT) plus CORS_ORIGINS", () => {
    expect([...allowedOrigins({ LINK_ORIGINS: "https://a.example, https://b.example/", PORT: 3000 })]).toEqual(["https://a.example", "https://b.example"]);
    expect([...allowedOrigins({ PUBLIC_URL: "https://crm.example/base", CORS_ORIGINS: "https://shop.example,*", PORT: 3000 })]).toEqual([
      "https://crm.example",
      "https://shop.example",
    ]);
    expect([...allowedOrigins({ PORT: 4000 })]).toEqual(["http://localhost:4000"]);
  });

  it("LINK_ORIGINS must be a list of origins", () => {
    const ok = (value: string) => ProfileListsSettings.safeParse({ LINK_ORIGINS: value }).success;
    expect(ok("https://a.example,http://localhost:5173")).toBe(true);
    expect(ok("https://a.example/path")).toBe(false);
    expect(ok("shop.example")).toBe(false);
  });
});

describe("confirm_url", () => {
  const origins = new Set(["https://shop.example", "http://localhost:5173"]);
  it("is https (http on localhost) on an allowed origin, without credentials", () => {
    expect(checkLink("https://shop.example/confirm?x=1", origins, "confirm_url").href).toBe("https://shop.example/confirm?x=1");
    expect(() => checkLink("http://localhost:5173/c", origins, "confirm_url")).not.toThrow();
    for (const bad of [
      "http://shop.example/c",
      "https://evil.example/c",
      "https://shop.example.evil.example/c",
      "https://u:p@shop.example/c",
      "ftp://shop.example/c",
      "//shop.example",
    ]) {
      expect(() => checkLink(bad, origins, "confirm_url")).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR" }));
    }
  });

  it("gets token and profile_list_id added to its query", () => {
    const link = new URL(confirmLink(new URL("https://shop.example/c?utm=1&token=old"), "tok", "list-1"));
    expect(Object.fromEntries(link.searchParams)).toEqual({ utm: "1", token: "tok", profile_list_id: "list-1" });
  });
});

describe("tokens", () => {
  it("confirm tokens are random and stored as a hash", () => {
    const a = newConfirmToken();
    const b = newConfirmToken();
    expect(a.token).not.toBe(b.token);
    expect(a.hash).toBe(hashToken(a.token));
    expect(a.hash).not.toContain(a.token);
  });

  it("an unsubscribe token names its membership only for its store and list, and cannot be forged", () => {
    const links = new UnsubscribeLinks("secret-1");
    const token = links.token("store-a", "list-1", "m-1");
    expect(links.membershipOf(token, "store-a", "list-1")).toBe("m-1");
    expect(links.membershipOf(token, "store-b", "list-1")).toBeNull();
    expect(links.membershipOf(token, "store-a", "list-2")).toBeNull();
    expect(links.membershipOf(token.replace("m-1", "m-2"), "store-a", "list-1")).toBeNull();
    expect(new UnsubscribeLinks("secret-2").membershipOf(token, "store-a", "list-1")).toBeNull();
  });
});
