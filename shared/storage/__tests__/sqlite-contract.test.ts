/** The storage contract on the SQLite adapter, in memory and in a file. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeAllSqliteDatabases, openSqliteDatabase } from "../sqlite/database";
import { describeStorageContract } from "./contract";

const root = mkdtempSync(join(tmpdir(), "crm-sqlite-contract-"));

afterAll(async () => {
  await closeAllSqliteDatabases();
  rmSync(root, { recursive: true, force: true });
});

describeStorageContract("sqlite (memory)", () => openSqliteDatabase("contract_memory"));
describeStorageContract("sqlite (file)", () => openSqliteDatabase("contract_file", { file: join(root, "contract.sqlite") }));
