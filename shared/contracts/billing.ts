/** The billing service's actions (their params schemas), the one place callers and the service agree on. */
export const BillingActions = {} as const;
