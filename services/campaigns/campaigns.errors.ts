/**
 * The campaigns service's error catalog: a stable `reason` per failure (in `data.reason`) and its public
 * message (see shared/errors.ts). Empty until its issue adds its rules.
 */
export const CampaignsErrors = {} as const;
