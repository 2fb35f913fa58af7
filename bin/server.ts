#!/usr/bin/env node
/**
 * Starts the system with Moleculer's runner (config loading, SIGTERM/SIGINT handling, graceful stop).
 *   npm start                          every service and the gateway in one process (embedded defaults)
 *   SERVICES=gateway,profiles npm start   only those; with TRANSPORTER set they join the others over NATS
 */
import path from "node:path";
import { Runner } from "moleculer";
import { checkSettings, selectServices, serviceDefinition, type ServiceName } from "../shared/registry";

function main(): void {
  const distRoot = path.resolve(__dirname, "..");
  let names: ServiceName[];
  try {
    names = selectServices(process.env.SERVICES);
    checkSettings(names); // a bad setting stops here, naming each variable (not deep inside a service's start)
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  // The runner would read SERVICES itself (as file patterns); we pass resolved files instead.
  delete process.env.SERVICES;
  const files = names.map((n) => path.join(distRoot, `${serviceDefinition(n).module}.js`));
  const runner = new Runner();
  runner.start([process.argv[0], __filename, "--config", path.join(distRoot, "moleculer.config.js"), ...files]).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

if (require.main === module) main();
