/**
 * The cross-service test harness. Each export in one line:
 *   startBroker(opts)        a started broker from moleculer.config.ts with services by name or schema (STORAGE=memory, logger off)
 *   createBroker(opts)       the same, not started (to create more services first, or to time the start)
 *   startCluster(services)   one broker per service over real NATS in a namespace of its own; { brokers, url?, stop() }
 *   loadService(name)        a service schema from source (services/<n>/<n>.service.ts, gateway/gateway.service.ts)
 *   setEnv(vars)             set/delete env vars and reset the cached config()
 *   startGateway(opts)       a broker with the real gateway on a free port: { broker, url, http, stop() }
 *   gatewayUrl(broker)       the base URL of the gateway running on a broker
 *   httpClient(url)          tiny JSON client: get/post/put/delete -> { status, headers, body, text }
 *   startSmtpServer()        real SMTP on 127.0.0.1: { url (SMTP_URL), messages, waitForMessage(), failNext(), close() }
 *   startStripeStandIn()     Stripe API stand-in: { url (STRIPE_API_URL), clientOptions, requests, signWebhook(), ... }
 *   freePort()               a free TCP port on 127.0.0.1 (for servers started as separate processes)
 *   NATS_URL, assertNatsUp(), uniqueName(), deleteStreams(prefix), listStreams(prefix)   the test bus, its streams and clean-up
 *   errorOf(promise)         the error a promise rejects with (fails when it resolves)
 *   waitFor(probe, what)     polls until a condition holds (deadline, then "timed out waiting for <what>"): no fixed sleeps
 */
export * from "./broker";
export * from "./gateway";
export * from "./smtp";
export * from "./stripe";
export * from "./nats";
export * from "./ports";
export * from "./wait";
export * from "./errors";
