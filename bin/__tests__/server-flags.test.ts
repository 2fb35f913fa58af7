/**
 * Every way the README and deploy/ start the server passes SERVER_NODE_FLAGS (the benches import them).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { SERVER_NODE_FLAGS } from "../server-flags";

const ROOT = path.resolve(__dirname, "../..");
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

/** Each command in `text` that runs the server with node: what stands between `node` and `dist/bin/server.js`. */
function serverCommands(text: string): string[] {
  return [...text.matchAll(/node((?:\s+--[\w-]+(?:=\S+)?)*)\s+dist\/bin\/server\.js/g)].map((m) => m[1]);
}

function serverCommandsOfJsonArray(text: string): string[] {
  return [...text.matchAll(/\["node",((?:\s*"--[^"]+",)*)\s*"dist\/bin\/server\.js"\]/g)].map((m) => m[1].replace(/[",]/g, " "));
}

describe("the server's Node flags", () => {
  it.each([
    ["package.json (npm start)", serverCommands(JSON.parse(read("package.json")).scripts.start)],
    ["README.md", serverCommands(read("README.md"))],
    ["deploy/README.md", serverCommands(read("deploy/README.md"))],
    ["deploy/Dockerfile", serverCommandsOfJsonArray(read("deploy/Dockerfile"))],
  ])("%s starts the server with them", (_where, commands) => {
    expect(commands.length).toBeGreaterThan(0);
    for (const flags of commands) expect(flags.trim().split(/\s+/)).toEqual([...SERVER_NODE_FLAGS]);
  });
});
