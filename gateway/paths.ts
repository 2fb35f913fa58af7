/**
 * Route paths as the spec writes them (`/v1/stores/{storeId}/profiles/{id}`) and as moleculer-web
 * matches them (`/v1/stores/:store_id/profiles/:id`): path parameters reach actions in snake_case.
 */

export interface PathParam {
  /** As written in the documented path: `storeId`. */
  name: string;
  /** As the action receives it: `store_id`. */
  param: string;
}

export const snakeCase = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export function pathParams(path: string): PathParam[] {
  return [...path.matchAll(/\{([A-Za-z][A-Za-z0-9]*)\}/g)].map((m) => ({ name: m[1], param: snakeCase(m[1]) }));
}

/** The moleculer-web alias path (path-to-regexp syntax) of a documented path. */
export function toAliasPath(path: string): string {
  return path.replace(/\{([A-Za-z][A-Za-z0-9]*)\}/g, (_m, name: string) => `:${snakeCase(name)}`);
}
