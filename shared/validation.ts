/**
 * Zod validation for Moleculer actions.
 *
 * Moleculer deep-clones action definitions, which breaks a zod schema placed directly in `params`, so
 * an action declares `params: zodParams(Schema)`: the schema travels inside a closure. The broker's
 * validator (`ZodValidator`, set in moleculer.config.ts) parses `ctx.params` with it and writes the
 * parsed value back, so defaults and coercions reach the handler. Issues are returned, never thrown
 * (a throw would escape `broker.call()` synchronously).
 */
import { Validators, type Context } from "moleculer";
import type { z } from "zod";

const ZOD_KEY = "$zod";

// A type alias, not an interface: Moleculer's `ActionParams` index signature accepts only the former.
export type ZodParams<S extends z.ZodType = z.ZodType> = {
  [ZOD_KEY]: () => S;
};

/** The `params` value of an action validated by `schema`. */
export function zodParams<S extends z.ZodType>(schema: S): ZodParams<S> {
  return { [ZOD_KEY]: () => schema };
}

/** The zod schema behind an action's `params`, if it has one (used by the OpenAPI generator). */
export function schemaOf(params: unknown): z.ZodType | undefined {
  const getter = (params as Partial<ZodParams> | undefined)?.[ZOD_KEY];
  return typeof getter === "function" ? getter() : undefined;
}

export interface ValidationIssue {
  type: string;
  field: string;
  message: string;
  error: string;
}

/** Zod issues as the contract's `validationErrors` entries (`field` is a dotted path). */
export function issuesOf(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({
    type: issue.code,
    field: issue.path.map(String).join("."),
    message: issue.message,
    error: issue.message,
  }));
}

// Moleculer's typings say a checker returns a boolean and receives `{ meta: { ctx } }`; at run time it is
// called with `{ meta: ctx }` and may return the list of issues (see moleculer/src/validators/base.js).
type Checker = Validators.Base.CheckerFunction;
type RuntimeChecker = (params: unknown, opts: { meta: Context }) => true | ValidationIssue[];

export class ZodValidator extends Validators.Base {
  compile(params: Record<string, unknown>): Checker {
    const schema = schemaOf(params);
    if (!schema) return () => true; // a plain (non-zod) params object: nothing to check
    const check: RuntimeChecker = (value, { meta: ctx }) => {
      const result = schema.safeParse(value);
      if (!result.success) return issuesOf(result.error);
      ctx.params = result.data as typeof ctx.params;
      return true;
    };
    return check as unknown as Checker;
  }

  validate(params: Record<string, unknown>, schema: Record<string, unknown>): boolean {
    const zod = schemaOf(schema);
    if (!zod) return true;
    const result = zod.safeParse(params);
    if (!result.success) throw new Error(result.error.message);
    return true;
  }

  convertSchemaToMoleculer(): Record<string, unknown> {
    return {};
  }
}
