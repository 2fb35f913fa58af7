/**
 * The bench's baseline: a bare `node:http` server answering a fixed JSON body on PORT. It runs in a process of
 * its own, as the servers it is compared with do. Inside the bench's process it would share autocannon's event
 * loop, and it answered there only about 40% of what it answers alone.
 */
import http from "node:http";

const body = JSON.stringify({ status: "ok" });

http
  .createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
