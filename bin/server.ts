#!/usr/bin/env node
/**
 * Starts the system with Moleculer's runner (config loading, SIGTERM/SIGINT handling, graceful stop).
 *   npm start                          every service and the gateway in one process (embedded defaults)
 *   SERVICES=gateway,profiles npm start   only those; with TRANSPORTER set they join the others over NATS
 */
import path from "node:path";
import { Runner } from "moleculer";
import { config } from "../shared/config";

export const SERVICE_FILES: Record<string, string> = {
  gateway: "gateway/gateway.service.js",
  auth: "services/auth/auth.service.js",
  profiles: "services/profiles/profiles.service.js",
  "profile-lists": "services/profile-lists/profile-lists.service.js",
  campaigns: "services/campaigns/campaigns.service.js",
  mailer: "services/mailer/mailer.service.js",
  billing: "services/billing/billing.service.js",
};

export function selectServices(list: string | undefined): string[] {
  const names = (list ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return Object.keys(SERVICE_FILES);
  const unknown = names.filter((n) => !(n in SERVICE_FILES));
  if (unknown.length) {
    throw new Error(`SERVICES names unknown service(s): ${unknown.join(", ")}. Known: ${Object.keys(SERVICE_FILES).join(", ")}`);
  }
  return names;
}

function main(): void {
  const distRoot = path.resolve(__dirname, "..");
  let names: string[];
  try {
    config(); // a bad setting stops here, with a message naming it (not deep inside a service's start)
    names = selectServices(process.env.SERVICES);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  // The runner would read SERVICES itself (as file patterns); we pass resolved files instead.
  delete process.env.SERVICES;
  const files = names.map((n) => path.join(distRoot, SERVICE_FILES[n]));
  const runner = new Runner();
  runner.start([process.argv[0], __filename, "--config", path.join(distRoot, "moleculer.config.js"), ...files]).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

if (require.main === module) main();
