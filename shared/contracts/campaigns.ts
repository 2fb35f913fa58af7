/** The campaigns service's actions (their params schemas), the one place callers and the service agree on. */
export const CampaignsActions = {} as const;
