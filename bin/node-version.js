#!/usr/bin/env node
/**
 * Runs a command under a Node that can run this project: 22.13 or newer, for the built-in `node:sqlite`.
 *   node bin/node-version.js <command> [args...]          (what `npm start` and `npm test` do)
 *
 * With a new enough Node it runs the command (a leading `node` means this very Node). With an older one it
 * gets Node 24 from the npm registry through npx (as `.ci/run` does), says so in one line on stderr, and runs
 * the command with that Node first on PATH, so `node` and `#!/usr/bin/env node` scripts (jest) use it. If npx
 * cannot give it one, it prints one line saying what to install and run, and exits 1.
 * SIGINT, SIGTERM and SIGHUP are passed on to the command; it exits with the command's code (or signal). Run by
 * npm, it also stops the command (SIGTERM) when the shell npm started it through goes away.
 *
 * Plain CommonJS, no dependencies, nothing newer than Node 8 syntax: it must run on the Node it replaces.
 */
"use strict";

var childProcess = require("child_process");
var path = require("path");

var NEEDED = "22.13";
var FETCH_SPEC = "node@24"; // the same as .nvmrc and .ci/run
var SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"];
var WINDOWS = process.platform === "win32";

/** node:sqlite needs no flag from 22.13 on the 22 line and from 23.4 on the 23 line. */
function canRun(version) {
  var parts = String(version).replace(/^v/, "").split(".").map(Number);
  var major = parts[0];
  var minor = parts[1];
  if (major === 22) return minor >= 13;
  if (major === 23) return minor >= 4;
  return major > 23;
}

/** What the user typed, for the message: `npm start`, `npm test`, `npm run x`, or the command itself. */
function rerunCommand(command) {
  var event = process.env.npm_lifecycle_event;
  if (event === "start" || event === "test") return "npm " + event;
  if (event) return "npm run " + event;
  return command.join(" ");
}

function fail(line) {
  console.error(line);
  process.exit(1);
}

/** The reason npx gave, in a few words: npm's error code, else its last line. */
function npxReason(err, stderr) {
  if (err && err.code === "ENOENT") return "npx was not found on PATH";
  var code = /npm (?:error|ERR!) code (\S+)/.exec(stderr || "");
  if (code) return "npm error code " + code[1];
  var lines = String(stderr || "")
    .split(/\r?\n/)
    .map(function (l) {
      return l.trim();
    })
    .filter(Boolean);
  var last = lines.length ? lines[lines.length - 1] : String((err && err.message) || "no output").split("\n")[0];
  return last.length > 160 ? last.slice(0, 157) + "..." : last;
}

/** Asks npx for FETCH_SPEC and calls back with the path of its node binary (or the reason it has none). */
function fetchNode(callback) {
  var env = Object.assign({}, process.env);
  // npx exports its own arguments to what it runs; if we run inside an outer `npx -c`, ours would be ignored.
  delete env.npm_config_call;
  delete env.npm_config_package;
  // A cached copy is used without asking the registry again (0.8 s instead of 1.9 s here); none → download.
  if (env.npm_config_prefer_online === undefined) env.npm_config_prefer_offline = "true";
  env.npm_config_update_notifier = "false";
  var args = ["-y", "-p", FETCH_SPEC, "-c", "node -p process.execPath"];
  childProcess.execFile("npx", args, { env: env, shell: WINDOWS, windowsHide: true }, function (err, stdout, stderr) {
    if (err) return callback(npxReason(err, stderr));
    var lines = String(stdout).trim().split(/\r?\n/);
    var nodePath = lines[lines.length - 1].trim();
    var version;
    try {
      version = childProcess.execFileSync(nodePath, ["--version"], { encoding: "utf8" }).trim();
    } catch (e) {
      return callback("npx gave no usable node (" + (nodePath || "empty output") + ")");
    }
    if (!canRun(version)) return callback("npx gave Node " + version);
    callback(null, nodePath, version);
  });
}

/** Runs the command with nodePath as `node`, passing signals on, and exits as it exits. */
function run(command, nodePath, env) {
  var file = command[0] === "node" ? nodePath : command[0];
  var child = childProcess.spawn(file, command.slice(1), { stdio: "inherit", env: env, shell: WINDOWS });
  var forward = function (signal) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  SIGNALS.forEach(function (signal) {
    process.on(signal, forward);
  });
  // A SIGTERM to npm reaches only the shell npm runs us through (dash does not pass it on): we see that shell
  // go (our parent changes) and stop the command the same way, instead of leaving it running with the port.
  var parent = process.ppid;
  var watch = setInterval(function () {
    if (process.ppid !== parent) {
      clearInterval(watch);
      forward("SIGTERM");
    }
  }, 200);
  if (!process.env.npm_lifecycle_event || WINDOWS) clearInterval(watch);
  child.on("error", function (err) {
    fail("Could not run `" + command.join(" ") + "`: " + err.message);
  });
  child.on("exit", function (code, signal) {
    clearInterval(watch);
    SIGNALS.forEach(function (s) {
      process.removeListener(s, forward);
    });
    if (signal) {
      process.kill(process.pid, signal); // die the same way, so whoever started us sees the signal
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

function main() {
  var command = process.argv.slice(2);
  if (command.length === 0) fail("Usage: node bin/node-version.js <command> [args...]");
  if (canRun(process.version)) return run(command, process.execPath, process.env);

  var needed = /^v23\./.test(process.version) ? "23.4" : NEEDED;
  var old = "Node " + process.version + " is older than " + needed + " (this project uses node:sqlite)";
  var install = "Install Node 24 (https://nodejs.org, or `nvm install 24`) and run `" + rerunCommand(command) + "` again.";
  // A first download takes a while; on a terminal, say what the wait is.
  var notice = setTimeout(function () {
    if (process.stderr.isTTY) console.error(old + ": fetching Node 24 from the npm registry (npx " + FETCH_SPEC + ")...");
  }, 3000);
  fetchNode(function (reason, nodePath, version) {
    clearTimeout(notice);
    if (reason) fail(old + " and npx could not fetch Node 24 from the npm registry (" + reason + "). " + install);
    console.error(old + ": running under Node " + version + " from the npm registry (npx " + FETCH_SPEC + "). Install Node 24 to skip this.");
    var env = Object.assign({}, process.env);
    var pathKey =
      Object.keys(env).filter(function (k) {
        return k.toUpperCase() === "PATH";
      })[0] || "PATH";
    env[pathKey] = path.dirname(nodePath) + path.delimiter + (env[pathKey] || "");
    if (env.NODE) env.NODE = nodePath; // npm sets NODE to the node that runs it
    delete env.npm_config_call;
    delete env.npm_config_package;
    run(command, nodePath, env);
  });
}

main();
