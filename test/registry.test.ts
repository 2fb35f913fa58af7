/**
 * The service registry is the one list of services: every service it names has the same shape on disk
 * (a thin schema, a composition root, its store, its errors, its contract), and the compose file runs
 * exactly its services, one container each.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { BACKEND_SERVICES, SERVICE_REGISTRY } from "../shared/registry";
import { loadService } from "./harness";

const ROOT = path.resolve(__dirname, "..");
const pascal = (name: string) => name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());

describe("service registry", () => {
  it.each(BACKEND_SERVICES)("%s has the one shape: <name>.service.ts, a create<Name> composition root, store, errors, contract", (name) => {
    const dir = path.join(ROOT, "services", name);
    for (const file of [`${name}.service.ts`, `${name}.logic.ts`, `${name}.store.ts`, `${name}.errors.ts`]) expect(existsSync(path.join(dir, file))).toBe(true);
    expect(existsSync(path.join(ROOT, "shared/contracts", `${name}.ts`))).toBe(true);
    const logic = require(path.join(dir, `${name}.logic`)) as Record<string, unknown>;
    expect(typeof logic[`create${pascal(name)}`]).toBe("function");
  });

  it("names each service's schema module, and its routes point at its own actions", () => {
    for (const service of SERVICE_REGISTRY) {
      const schema = loadService(service.name);
      expect(schema.name).toBe(service.name);
      for (const route of service.routes) {
        expect(route.action.startsWith(`${service.name}.`)).toBe(true);
        expect(Object.keys(schema.actions ?? {})).toContain(route.action.slice(service.name.length + 1));
      }
    }
  });

  it("is what deploy/compose.yaml runs: one container per service, each with SERVICES=<name>", () => {
    const compose = readFileSync(path.join(ROOT, "deploy/compose.yaml"), "utf8");
    const served = [...compose.matchAll(/^\s+SERVICES:\s*(\S+)\s*$/gm)].map((m) => m[1]);
    expect(served.sort()).toEqual(SERVICE_REGISTRY.map((s) => s.name).sort());
  });
});
