#!/usr/bin/env node
/**
 * The operator CLI: admin API keys, and the dead letters of durable events.
 *   npm run cli -- keys create --store <uuid> [--name <text>]
 *   npm run cli -- keys list [--store <uuid>]
 *   npm run cli -- keys revoke <key-id>
 *   npm run cli -- events dead-letters list
 *   npm run cli -- events dead-letters replay <seq>... | --all
 * keys: with TRANSPORTER set it joins the bus and calls the running auth service; otherwise it starts the
 * auth service itself on the same storage (MONGO_URL, or the embedded store under DATA_DIR, which only
 * one process may hold at a time). events: it talks to NATS JetStream at TRANSPORTER directly (see
 * shared/events/dead-letters.ts). Exit codes: 0 done, 1 failed, 2 usage.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import { resolve } from "node:path";
import { ServiceBroker, type BrokerOptions } from "moleculer";
import { connect, type NatsConnection } from "nats";
import type { z } from "zod";
import { config, ConfigError, type PlatformConfig } from "../shared/config";
import { AuthActions, type ApiKeyCreated, type ApiKeyInfo } from "../shared/contracts/auth";
import { natsUrlOf } from "../shared/events/channels";
import { DeadLetterError, deadLetterStream, listDeadLetters, replayDeadLetter, type DeadLetter } from "../shared/events/dead-letters";
import { ZodValidator } from "../shared/validation";
import AuthService from "../services/auth/auth.service";

export const USAGE = `Usage: npm run cli -- <command>

Commands:
  keys create --store <store-id> [--name <text>]   create an admin API key for a store (shown once)
  keys list [--store <store-id>]                    list API keys (of one store, or all)
  keys revoke <key-id>                              revoke an API key
  events dead-letters list                          list the durable events in DEAD_LETTER, and why
  events dead-letters replay <seq>... | --all       publish dead letters to their event again, then remove them
  --help                                            show this help

With TRANSPORTER set, the CLI talks to the running auth service over the bus; otherwise it opens the
local storage itself (the same DATA_DIR or MONGO_URL as the server; it may run while the server does).
The events commands read NATS JetStream at TRANSPORTER (nats://host:4222) and need it, with the
system's EVENTS_PREFIX when it has one.
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
  | { kind: "revoke"; params: z.infer<typeof AuthActions.revokeApiKey> }
  | { kind: "dead-letters-list" }
  | { kind: "dead-letters-replay"; all: boolean; seqs: number[] };

type EventsCommand = Extract<Command, { kind: "dead-letters-list" | "dead-letters-replay" }>;

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

function parseEventsArgs(words: string[]): EventsCommand {
  const [what, action, ...rest] = words;
  if (what !== "dead-letters") throw new UsageError(what ? `unknown events command "${what}"` : "events needs a command: dead-letters");
  switch (action) {
    case "list":
      if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
      return { kind: "dead-letters-list" };
    case "replay": {
      const all = rest.includes("--all");
      const words = rest.filter((w) => w !== "--all");
      const unknown = words.find((w) => w.startsWith("-"));
      if (unknown) throw new UsageError(`unknown option ${unknown}`);
      const bad = words.find((w) => !/^[1-9]\d{0,15}$/.test(w));
      if (bad !== undefined) throw new UsageError(`"${bad}" is not a dead-letter sequence number`);
      if (all && words.length) throw new UsageError("give either --all or sequence numbers, not both");
      if (!all && !words.length) throw new UsageError("events dead-letters replay needs <seq>... or --all");
      return { kind: "dead-letters-replay", all, seqs: [...new Set(words.map(Number))] };
    }
    default:
      throw new UsageError(action ? `unknown dead-letters command "${action}"` : "events dead-letters needs a command: list or replay");
  }
}

export function parseArgs(argv: string[]): Command {
  if (argv.length === 0) throw new UsageError("no command given");
  if (argv.some((a) => a === "--help" || a === "-h") || argv[0] === "help") return { kind: "help" };
  const [area, action, ...rest] = argv;
  if (area === "events") return parseEventsArgs(argv.slice(1));
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

/** A header and rows as plain-text lines, each column as wide as its widest cell. */
function tableLines(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** API keys as a plain-text table. */
export function formatKeyTable(keys: ApiKeyInfo[]): string {
  if (keys.length === 0) return "No API keys.";
  const header = ["ID", "STORE", "NAME", "PREFIX", "CREATED (UTC)", "LAST USED", "STATUS"];
  const rows = keys.map((k) => [
    k.id,
    k.store_id,
    k.name ?? "-",
    `${k.prefix}…`,
    isoMinute(k.created_at),
    isoMinute(k.last_used_at),
    k.revoked_at === null ? "active" : `revoked ${isoMinute(k.revoked_at)}`,
  ]);
  return tableLines(header, rows).join("\n");
}

/** `text` on one line and at most `max` characters (no control characters reach the terminal). */
function clip(text: string, max: number): string {
  const line = text.replace(/\p{Cc}/gu, " ");
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** The payload as compact JSON, or its size when it is not JSON. */
function payloadSummary(data: Uint8Array): string {
  const text = Buffer.from(data).toString("utf8");
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return `<${data.length} bytes, not JSON>`;
  }
}

/** Dead letters as a plain-text table (errors and payloads cut to fit a line). */
export function formatDeadLetterTable(letters: DeadLetter[], stream: string): string {
  if (letters.length === 0) return `No dead letters in ${stream}.`;
  const header = ["SEQ", "DEAD-LETTERED (UTC)", "EVENT", "GROUP", "REDELIVERED", "ERROR", "PAYLOAD"];
  const rows = letters.map((l) => [
    String(l.seq),
    l.time.toISOString().slice(0, 19).replace("T", " "),
    clip(l.event ?? "-", 40),
    clip(l.group ?? "-", 30),
    l.redelivered === undefined ? "-" : String(l.redelivered),
    clip(l.error ?? "-", 60),
    clip(payloadSummary(l.data), 80),
  ]);
  const count = `${letters.length} dead letter${letters.length === 1 ? "" : "s"} in ${stream}.`;
  return [...tableLines(header, rows), "", `${count} Replay with: npm run cli -- events dead-letters replay <seq>... | --all`].join("\n");
}

/** A connection to NATS at `url`, or null once it has said why not (within 5 s: a bad address never hangs the CLI). */
async function reachNats(url: string, io: CliIO): Promise<NatsConnection | null> {
  try {
    return await connect({ servers: url, name: `crm-cli-${process.pid}`, timeout: 5000 });
  } catch (err) {
    io.err(`Could not reach NATS at ${url}: ${String((err as ErrorLike).message ?? err)}`);
    return null;
  }
}

async function runEvents(command: EventsCommand, url: string, prefix: string, io: CliIO): Promise<number> {
  const nc = await reachNats(url, io);
  if (!nc) return 1;
  const stream = deadLetterStream(prefix);
  try {
    if (command.kind === "dead-letters-list") {
      io.out(formatDeadLetterTable(await listDeadLetters(nc, prefix), stream));
      return 0;
    }
    const seqs = command.all ? (await listDeadLetters(nc, prefix)).map((l) => l.seq) : command.seqs;
    if (seqs.length === 0) {
      io.out(`No dead letters in ${stream}.`);
      return 0;
    }
    let replayed = 0;
    for (const seq of seqs) {
      try {
        const done = await replayDeadLetter(nc, seq, prefix);
        replayed++;
        io.out(
          done.stored
            ? `Replayed dead letter ${seq} to ${done.channel} (message ${done.streamSeq}).`
            : `Dead letter ${seq} had been replayed to ${done.channel} already (message ${done.streamSeq}); removed.`,
        );
      } catch (err) {
        if (!(err instanceof DeadLetterError) || err.code === "NO_STREAM") throw err;
        io.err(err.message);
      }
    }
    io.out(`Replayed ${replayed} of ${seqs.length} dead letter${seqs.length === 1 ? "" : "s"}.`);
    return replayed === seqs.length ? 0 : 1;
  } catch (err) {
    io.err(err instanceof DeadLetterError ? err.message : `Failed: ${String((err as ErrorLike).message ?? err)}`);
    return 1;
  } finally {
    await nc.close().catch(() => undefined);
  }
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
    "Check that DATA_DIR is the server's and that this user may read and write it,",
    "or set TRANSPORTER (e.g. nats://127.0.0.1:4222) to go through the running system instead.",
  ].join("\n");
}

async function run(command: Exclude<Command, { kind: "help" } | EventsCommand>, broker: ServiceBroker, io: CliIO): Promise<number> {
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
        const answer = await broker.call<{ revoked_at: number; already_revoked: boolean }, typeof command.params>("auth.revokeApiKey", command.params);
        const id = command.params.id;
        io.out(answer.already_revoked ? `API key ${id} was already revoked (${isoMinute(answer.revoked_at)} UTC).` : `API key ${id} revoked.`);
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

  let cfg: PlatformConfig;
  try {
    cfg = config();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(err.message);
    return 2;
  }
  if (command.kind === "dead-letters-list" || command.kind === "dead-letters-replay") {
    const url = natsUrlOf(cfg.TRANSPORTER);
    if (!url) {
      io.err("The events commands need TRANSPORTER=nats://host:4222, the NATS server of the running system.");
      return 2;
    }
    return runEvents(command, url, cfg.EVENTS_PREFIX, io);
  }
  const remote = Boolean(cfg.TRANSPORTER);
  if (remote) {
    // Moleculer's transporter retries an unreachable bus for ever: the CLI first checks it answers at all.
    const url = natsUrlOf(cfg.TRANSPORTER);
    if (!url) {
      io.err(`TRANSPORTER must be the system's NATS server, nats://host:4222 (got ${JSON.stringify(cfg.TRANSPORTER)}).`);
      return 2;
    }
    const probe = await reachNats(url, io);
    if (!probe) return 1;
    await probe.close();
  }
  // A mistyped DATA_DIR must not read as "no keys" or "no such key": only `create` starts a new store.
  const storeFile = remote || cfg.MONGO_URL || cfg.STORAGE === "memory" ? undefined : resolve(cfg.DATA_DIR, "auth.sqlite");
  const newStore = storeFile !== undefined && !existsSync(storeFile);
  if (newStore && command.kind !== "create") {
    io.err(`No embedded store in ${resolve(cfg.DATA_DIR)} (it has no auth.sqlite).`);
    io.err("Set DATA_DIR to the server's, or TRANSPORTER (e.g. nats://127.0.0.1:4222) to go through the running system.");
    return 1;
  }
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
    const code = await run(command, broker, io);
    if (newStore && code === 0) {
      io.err(`Note: there was no store in ${resolve(cfg.DATA_DIR)}; a new one holds this key. The server accepts it only with the same DATA_DIR.`);
    }
    return code;
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
