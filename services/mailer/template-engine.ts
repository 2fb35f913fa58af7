/**
 * Store e-mail templates on handlebars, in a private environment (`Handlebars.create()`: nothing another
 * module registers reaches it, and nothing here leaks out). Only the built-in block helpers and `lookup`
 * exist: no `log` (a template must not write to the server's log), no partials, no decorators, checked
 * when a template is saved. Prototype access stays off (handlebars' defaults, also passed explicitly at
 * each render), so `{{constructor.name}}` and the like render nothing. `html` escapes values;
 * `subject` and `text` are plain text and do not.
 *
 * Two modes: "strict" (previews: a missing variable is an error naming it) and "lenient" (real sends: a
 * missing variable is an empty string). Each version of a template is compiled once per mode and kept
 * (TemplateCache), keyed by template id and version; a newer version or a delete drops it.
 */
import Handlebars from "handlebars";
import type { RenderedTemplate } from "../../shared/contracts/mailer";

const env = Handlebars.create();
env.unregisterHelper("log");

/** How deep `{{#if}}`, `{{#each}}` and the like may nest in a template. */
const MAX_BLOCK_DEPTH = 32;

/** Unknown helpers fail when a template is saved, not at every send. */
const COMPILE_OPTIONS = { knownHelpers: { log: false }, knownHelpersOnly: true } as const;
const RUNTIME_OPTIONS = { allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false } as const;

export type RenderMode = "strict" | "lenient";

export interface TemplateSources {
  subject: string;
  html: string;
  text: string | null;
}

/** What the cache needs of a stored template. */
export interface TemplateVersion extends TemplateSources {
  _id: string;
  version: number;
}

type CompiledPart = (vars: Record<string, unknown>) => string;

interface CompiledTemplate {
  subject: CompiledPart;
  html: CompiledPart;
  text: CompiledPart | null;
}

/** A render that failed: `missing` names the variable a strict render did not find. */
export class TemplateRenderError extends Error {
  constructor(
    message: string,
    readonly missing?: string,
  ) {
    super(message);
    this.name = "TemplateRenderError";
  }
}

/**
 * The first problem of a template source that cannot be saved (syntax, unknown helper, partial, a helper
 * misused so that it throws whatever the vars), or null.
 */
export function sourceProblem(source: string): string | null {
  try {
    refuseDeepNesting(source);
    refuseUnsupported(env.parse(source));
    // Compiled (which refuses unknown helpers) and rendered once without vars, as a real send renders
    // (lenient): what compiles may still throw at every render ({{helperMissing}}, {{#with}} without its
    // argument), and must fail here, not at each send.
    compilePart(source, "lenient", false)({});
    return null;
  } catch (err) {
    return oneLine((err as Error).message);
  }
}

/** A parse error spans lines (the source, a caret, what was expected): keep its first and last. */
function oneLine(message: string): string {
  const lines = message.split("\n").filter((line) => line.trim() && !/^[-^ ]+$/.test(line));
  const text = lines.length > 2 ? `${lines[0]} ${lines[lines.length - 1]}` : lines.join(" ");
  return text.slice(0, 500);
}

/** A block's opening (`{{#if`, `{{^items`, `{{~#each`) or closing (`{{/if`) tag; `{{^}}` alone is an else. */
const BLOCK_TAG = /\{\{~?\s*([#/]|\^(?=\s*[^\s~}]))/g;

/**
 * Refuses blocks nested deeper than MAX_BLOCK_DEPTH, read off the text before handlebars parses it: its
 * parser took 15 s over 5,000 nested blocks, then overflowed its stack.
 */
function refuseDeepNesting(source: string): void {
  let depth = 0;
  for (const [, tag] of source.matchAll(BLOCK_TAG)) {
    depth += tag === "/" ? -1 : 1;
    if (depth > MAX_BLOCK_DEPTH) throw new Error(`blocks may not nest deeper than ${MAX_BLOCK_DEPTH} levels`);
  }
}

function refuseUnsupported(ast: hbs.AST.Program): void {
  const visitor = new Handlebars.Visitor();
  const refuse = (what: string) => () => {
    throw new Error(`${what} are not supported`);
  };
  visitor.PartialStatement = refuse("partials");
  visitor.PartialBlockStatement = refuse("partials");
  visitor.Decorator = refuse("decorators");
  visitor.DecoratorBlock = refuse("decorators");
  visitor.accept(ast);
}

function compilePart(source: string, mode: RenderMode, escapesHtml: boolean): CompiledPart {
  // handlebars < 4.7.10 could be fed an AST object in place of text: only strings are ever compiled.
  if (typeof source !== "string") throw new TypeError("a template source must be a string");
  const template = env.compile<Record<string, unknown>>(source, { ...COMPILE_OPTIONS, strict: mode === "strict", noEscape: !escapesHtml });
  return (vars) => template(vars, RUNTIME_OPTIONS);
}

function compileTemplate(sources: TemplateSources, mode: RenderMode): CompiledTemplate {
  return {
    subject: compilePart(sources.subject, mode, false),
    html: compilePart(sources.html, mode, true),
    text: sources.text === null ? null : compilePart(sources.text, mode, false),
  };
}

/** A strict render's "missing variable" error: `"name" not defined in [object Object] - 1:7`. */
const MISSING_VARIABLE = /^"([^"]*)" not defined in .* - (\d+:\d+)$/;

function renderPart(part: CompiledPart, field: keyof TemplateSources, vars: Record<string, unknown>): string {
  try {
    return part(vars);
  } catch (err) {
    const message = String((err as Error)?.message ?? err);
    const missing = MISSING_VARIABLE.exec(message);
    if (missing) throw new TemplateRenderError(`${field} uses "${missing[1]}" (at ${missing[2]}), which vars do not hold`, missing[1]);
    throw new TemplateRenderError(`${field} could not be rendered: ${oneLine(message)}`);
  }
}

function render(compiled: CompiledTemplate, vars: Record<string, unknown>): RenderedTemplate {
  return {
    // A value with a line break must not start a new header (or break the subject line).
    subject: renderPart(compiled.subject, "subject", vars).replace(/[\r\n]+/g, " "),
    html: renderPart(compiled.html, "html", vars),
    text: compiled.text && renderPart(compiled.text, "text", vars),
  };
}

interface CacheEntry {
  version: number;
  modes: Partial<Record<RenderMode, CompiledTemplate>>;
}

/**
 * Compiled templates by id, each for one version; at most `maxEntries` templates (least recently used
 * go first). `compilations` counts the compiles: once per template version and mode.
 */
export class TemplateCache {
  private readonly entries = new Map<string, CacheEntry>();
  compilations = 0;

  constructor(private readonly maxEntries = 1000) {}

  /** Renders `template` with `vars`; throws TemplateRenderError when it cannot. */
  render(template: TemplateVersion, mode: RenderMode, vars: Record<string, unknown>): RenderedTemplate {
    return render(this.compiled(template, mode), vars);
  }

  /** Forgets a template (it changed or was deleted). */
  drop(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  private compiled(template: TemplateVersion, mode: RenderMode): CompiledTemplate {
    let entry = this.entries.get(template._id);
    // A reader that fetched the template before a change must not evict the newer version.
    if (entry && entry.version > template.version) return this.compile(template, mode);
    if (entry && entry.version !== template.version) entry = undefined;
    if (!entry) entry = { version: template.version, modes: {} };
    // Re-inserted on every use: the Map's first key is the least recently used.
    this.entries.delete(template._id);
    this.entries.set(template._id, entry);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    let compiled = entry.modes[mode];
    if (!compiled) {
      compiled = this.compile(template, mode);
      entry.modes[mode] = compiled;
    }
    return compiled;
  }

  private compile(template: TemplateVersion, mode: RenderMode): CompiledTemplate {
    this.compilations++;
    return compileTemplate(template, mode);
  }
}
