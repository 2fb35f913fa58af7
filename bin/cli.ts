#!/usr/bin/env node
/**
 * The operator CLI: admin API keys.
 *   npm run cli -- keys create --store <uuid> [--name <text>]
 *   npm run cli -- keys list [--store <uuid>]
 *   npm run cli -- keys revoke <key-id>
 * With TRANSPORTER set it joins the bus and calls the running auth service; otherwise it starts the
 * auth service itself on the same storage (MONGO_URL, or the embedded store under DATA_DIR, which only
 * one process may hold at a time). Exit codes: 0 done, 1 failed, 2 usage.
 */
import os from "node:os";
import { ServiceBroker, type BrokerOptions } from "moleculer";
import type { z } from "zod";
import { config, ConfigError, type Config } from "../shared/config";
import { AuthActions, type ApiKeyCreated, type ApiKeyInfo } from "../shared/contracts/auth";
import { ZodValidator } from "../shared/validation";
import AuthService from "../services/auth/auth.service";

export const USAGE = `Usage: npm run cli -- <command>

Commands:
  keys create --store <store-id> [--name <text>]   create an admin API key for a store (shown once)
  keys list [--store <store-id>]                    list API keys (of one store, or all)
  keys revoke <key-id>                              revoke an API key
  --help                                            show this help

With TRANSPORTER set, the CLI talks to the running auth service over the bus; otherwise it opens the
local storage itself (stop the server first when it uses the embedded store under DATA_DIR).
Exit codes: 0 done, 1 failed, 2 usage error.`;

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

export interface CliOptions {
  io?: CliIO;
  /** Overrides of the CLI broker (tests use their own namespace). */
  broker?: Partial<BrokerOptions>;
  /** How long to wait for a remote auth service (ms). */
  waitForAuthMs?: number;
}

type Command =
  | { kind: "help" }
  | { kind: "create"; params: z.infer<typeof AuthActions.createApiKey> }
  | { kind: "list"; params: z.infer<typeof AuthActions.listApiKeys> }
  | { kind: "revoke"; params: z.infer<typeof AuthActions.revokeApiKey> };

class UsageError extends Error {}

/** Splits `--flag value` / `--flag=value` options from positional words. */
function parseFlags(words: string[], allowed: string[]): { flags: Record<string, string>; positional: string[] } {
  const flags: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (!word.startsWith("--")) {
      positional.push(word);
      continue;
    }
    const eq = word.indexOf("=");
    const name = word.slice(2, eq === -1 ? undefined : eq);
    if (!allowed.includes(name)) throw new UsageError(`unknown option --${name}`);
    const value = eq === -1 ? words[++i] : word.slice(eq + 1);
    if (value === undefined || value === "") throw new UsageError(`--${name} needs a value`);
    flags[name] = value;
  }
  return { flags, positional };
}

function validated<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const first = result.error.issues[0];
    const field = first.path.map(String).join(".") || "input";
    throw new UsageError(`${field === "store_id" ? "--store" : field === "id" ? "<key-id>" : field}: ${first.message}`);
  }
  return result.data as z.infer<S>;
}

export function parseArgs(argv: string[]): Command {
  if (argv.length === 0) throw new UsageError("no command given");
  if (argv.some((a) => a === "--help" || a === "-h") || argv[0] === "help") return { kind: "help" };
  const [area, action, ...rest] = argv;
  if (area !== "keys") throw new UsageError(`unknown command "${area}"`);
  switch (action) {
    case "create": {
      const { flags, positional } = parseFlags(rest, ["store", "name"]);
      if (positional.length) throw new UsageError(`unexpected argument "${positional[0]}"`);
      if (!flags.store) throw new UsageError("keys create needs --store <store-id>");
      return { kind: "create", params: validated(AuthActions.createApiKey, { store_id: flags.store, name: flags.name }) };
    }
    case "list": {
      const { flags, positional } = parseFlags(rest, ["store"]);
      if (positional.length) throw new UsageError(`unexpected argument "${positional[0]}"`);
      return { kind: "list", params: validated(AuthActions.listApiKeys, { store_id: flags.store }) };
    }
    case "revoke": {
      const { positional } = parseFlags(rest, []);
      if (positional.length !== 1) throw new UsageError("keys revoke needs exactly one <key-id>");
      return { kind: "revoke", params: validated(AuthActions.revokeApiKey, { id: positional[0] }) };
    }
    default:
      throw new UsageError(action ? `unknown keys command "${action}"` : "keys needs a command: create, list or revoke");
  }
}

const isoMinute = (seconds: number | null) => (seconds === null ? "-" : new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " "));

/** API keys as a plain-text table. */
export function formatKeyTable(keys: ApiKeyInfo[]): string {
  if (keys.length === 0) return "No API keys.";
  const header = ["ID", "STORE", "NAME", "PREFIX", "CREATED (UTC)", "LAST USED", "STATUS"];
  const rows = keys.map((k) => [k.id, k.store_id, k.name ?? "-", `${k.prefix}…`, isoMinute(k.created_at), isoMinute(k.last_used_at), k.revoked_at === null ? "active" : `revoked ${isoMinute(k.revoked_at)}`]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

interface ErrorLike {
  type?: unknown;
  code?: unknown;
  message?: unknown;
}

function storageHint(err: unknown): string {
  const cfg = config();
  const message = String((err as ErrorLike)?.message ?? err);
  if (cfg.MONGO_URL) return `Could not open the auth database on MONGO_URL: ${message}`;
  return [
    `Could not open the embedded store under ${cfg.DATA_DIR}: ${message}`,
    "It can be held by one process at a time: if the server is running, stop it first,",
    "or set TRANSPORTER (e.g. nats://127.0.0.1:4222) to go through the running system instead.",
  ].join("\n");
}

async function run(command: Exclude<Command, { kind: "help" }>, broker: ServiceBroker, io: CliIO): Promise<number> {
  try {
    switch (command.kind) {
      case "create": {
        const key = await broker.call<ApiKeyCreated, typeof command.params>("auth.createApiKey", command.params);
        io.out(`API key created for store ${key.store_id} (id ${key.id}${key.name ? `, name "${key.name}"` : ""}):`);
        io.out("");
        io.out(`    ${key.key}`);
        io.out("");
        io.out("Store it now in a safe place: it is shown only this once (the server keeps only a hash).");
        return 0;
      }
      case "list": {
        const keys = await broker.call<ApiKeyInfo[], typeof command.params>("auth.listApiKeys", command.params);
        io.out(formatKeyTable(keys));
        return 0;
      }
      case "revoke": {
        await broker.call("auth.revokeApiKey", command.params);
        io.out(`API key ${command.params.id} revoked.`);
        return 0;
      }
    }
  } catch (err) {
    const e = (err ?? {}) as ErrorLike;
    if (e.type === "NOT_FOUND" && command.kind === "revoke") {
      io.err(`No API key with id ${command.params.id}.`);
      return 1;
    }
    if (e.type === "VALIDATION_ERROR") {
      io.err(`Invalid input: ${String(e.message)}`);
      return 2;
    }
    io.err(`Failed: ${String(e.message ?? err)}`);
    return 1;
  }
}

/** Runs the CLI with `argv` (without node and script) and answers the exit code. */
export async function main(argv: string[], options: CliOptions = {}): Promise<number> {
  const io: CliIO = options.io ?? { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) };
  let command: Command;
  try {
    command = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`Error: ${err.message}\n`);
    io.err(USAGE);
    return 2;
  }
  if (command.kind === "help") {
    io.out(USAGE);
    return 0;
  }

  let cfg: Config;
  try {
    cfg = config();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(err.message);
    return 2;
  }
  const remote = Boolean(cfg.TRANSPORTER);
  const broker = new ServiceBroker({
    namespace: cfg.NAMESPACE,
    nodeID: `cli-${os.hostname()}-${process.pid}`,
    transporter: remote ? { type: "NATS", options: { url: cfg.TRANSPORTER } } : null,
    logger: false,
    validator: new ZodValidator({}),
    requestTimeout: cfg.REQUEST_TIMEOUT_MS,
    ...options.broker,
  });
  if (!remote) broker.createService(AuthService);
  try {
    try {
      await broker.start();
    } catch (err) {
      io.err(remote ? `Could not join the bus at ${cfg.TRANSPORTER}: ${String((err as ErrorLike).message ?? err)}` : storageHint(err));
      return 1;
    }
    if (remote) {
      try {
        await broker.waitForServices(["auth"], options.waitForAuthMs ?? 10_000);
      } catch {
        io.err(`No auth service answered on ${cfg.TRANSPORTER}. Is the system running with the same TRANSPORTER?`);
        return 1;
      }
    }
    return await run(command, broker, io);
  } finally {
    await broker.stop().catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`Failed: ${String((err as Error)?.message ?? err)}\n`);
      process.exit(1);
    },
  );
}
