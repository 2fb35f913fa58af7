/**
 * The Node flags the server runs with: `npm start`, the Docker image, the README's split deployment and the
 * benches all pass these (bin/__tests__/server-flags.test.ts keeps them in step).
 *
 * --max-semi-space-size=16 (MB): under load V8 grows each of the young generation's two semi-spaces to 32 MB
 * and keeps what it committed for the old generation after a collection, so the server's RSS reached
 * 389–412 MB after the storage bench's pages and searches at 1,000,000 profiles, with 30 MB of live heap. With
 * 16 MB it peaked at 292–316 MB on the same data, pages as fast (p99 1.4–5 ms); with 8 MB, 275 MB, but the
 * searches that read ~2,000 documents in one call took a third more CPU (more scavenges copying them).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=16"];
