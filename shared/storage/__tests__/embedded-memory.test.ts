/** The storage contract on the embedded adapter in memory, plus what only the embedded engine promises. */
import { openEmbeddedDatabase } from "../embedded";
import { describeStorageContract } from "./contract";

describeStorageContract("embedded (memory)", () => openEmbeddedDatabase("contract_memory"));
