/**
 * Readiness: the gateway is ready when every service behind it answers its `health` action (which
 * answers only when that service's storage answers). Asked in parallel, each with a short timeout. A
 * service that answers `{ status: "not_configured" }` (billing without its Stripe keys) is reported as
 * such and does not fail readiness: everything else works without it.
 */
import { BACKEND_SERVICES } from "../shared/registry";

export const READINESS_SERVICES = BACKEND_SERVICES;

export type ServiceState = "ok" | "not_configured" | "unavailable";

export interface Readiness {
  ready: boolean;
  services: Record<string, ServiceState>;
}

export async function checkReadiness(askHealth: (service: string) => Promise<unknown>, services: readonly string[] = READINESS_SERVICES): Promise<Readiness> {
  const answers = await Promise.allSettled(services.map((name) => askHealth(name)));
  const states: Record<string, ServiceState> = {};
  services.forEach((name, i) => {
    const answer = answers[i];
    states[name] = answer.status === "rejected" ? "unavailable" : stateOf(answer.value);
  });
  return { ready: Object.values(states).every((s) => s !== "unavailable"), services: states };
}

function stateOf(answer: unknown): ServiceState {
  return (answer as { status?: unknown } | null)?.status === "not_configured" ? "not_configured" : "ok";
}

/**
 * Coalesces readiness checks: callers within `ttlMs` of a check share its answer, so a flood of
 * unauthenticated `/health/ready` requests costs one round of health calls per interval.
 */
export class ReadinessProbe {
  private last?: { at: number; answer: Promise<Readiness> };

  constructor(
    private readonly ttlMs = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  check(askHealth: (service: string) => Promise<unknown>): Promise<Readiness> {
    const at = this.now();
    if (this.last && at - this.last.at < this.ttlMs) return this.last.answer;
    const answer = checkReadiness(askHealth);
    this.last = { at, answer };
    return answer;
  }
}
