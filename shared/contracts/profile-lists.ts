/** The profile-lists service's actions (their params schemas), the one place callers and the service agree on. */
export const ProfileListsActions = {} as const;
