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
 *
 * Every render (preview, send, the trial render when saved) runs on a budget (RenderBudget): `{{#each}}`
 * iterations, steps (text pieces and values written, helper calls) and the characters written per part.
 * Nested loops multiply (7 nested `{{#each}}` over 10 items are 10 million iterations), and handlebars
 * renders synchronously, so an unbounded render would stall every request of the process: the budget
 * is charged as the render goes (by the compiled code and the built-in helpers) and stops it at once.
 */
import Handlebars from "handlebars";
import type { RenderedTemplate } from "../../shared/contracts/mailer";

const env = Handlebars.create();
env.unregisterHelper("log");

/** How deep `{{#if}}`, `{{#each}}` and the like may nest in a template. */
const MAX_BLOCK_DEPTH = 32;
/**
 * The most `{{...}}` one part may hold. handlebars compiles about 70 µs of CPU per expression, on the event
 * loop (50,000 `{{x}}` in a 256 KB html took 3 s to save); a rich real newsletter holds a few hundred.
 */
export const MAX_TEMPLATE_EXPRESSIONS = 2_000;

/** Unknown helpers fail when a template is saved, not at every send. */
const COMPILE_OPTIONS = { knownHelpers: { log: false }, knownHelpersOnly: true } as const;
const RUNTIME_OPTIONS = { allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false } as const;

/**
 * The most `{{#each}}` iterations (over arrays, objects, or `{{#items}}` sections over arrays) one render
 * may run, all parts together. An e-mail lists tens to a few hundred things (order lines, products): 10,000
 * is far above that, and still renders in milliseconds. Nested loops multiply, which is what this stops.
 */
export const MAX_RENDER_ITERATIONS = 10_000;
/**
 * The most steps one render may take, all parts together: text pieces and values written plus helper
 * calls (`{{#if}}`, `{{lookup}}`...). Bounds the work a loop body of many expressions repeats (a 256 KB
 * body holds 15,000 `{{#if}}`s): a large real template (a few hundred loop rows of ~50 expressions each)
 * takes tens of thousands; 200,000 helper calls take about 0.2 s at worst.
 */
export const MAX_RENDER_STEPS = 200_000;
/**
 * The most characters one part (subject, html or text) may render to. A real e-mail's html is tens of
 * KB (mail clients clip messages past ~100 KB); 1,000,000 characters is ten times the largest sensible
 * mail, and stops a small template that repeats a large value from building a huge string.
 */
export const MAX_RENDERED_CHARS = 1_000_000;

/** A render that went over its budget: the message says which limit, and what to change. */
class RenderBudgetExceeded extends Error {}

const thousands = (n: number) => n.toLocaleString("en-US");

/** What one render has spent; the limits above. `chars` is per part (reset as each part starts). */
class RenderBudget {
  iterations = 0;
  steps = 0;
  chars = 0;

  iterate(): void {
    if (++this.iterations > MAX_RENDER_ITERATIONS) {
      throw new RenderBudgetExceeded(`over ${thousands(MAX_RENDER_ITERATIONS)} loop iterations (nested {{#each}} over these vars); simplify the loops or the vars`);
    }
    this.step();
  }

  step(): void {
    if (++this.steps > MAX_RENDER_STEPS) {
      throw new RenderBudgetExceeded(`over ${thousands(MAX_RENDER_STEPS)} steps (values and text written, helper calls) with these vars; simplify the loops or the vars`);
    }
  }

  write(text: string): string {
    this.step();
    this.chars += text.length;
    if (this.chars > MAX_RENDERED_CHARS) {
      throw new RenderBudgetExceeded(`over ${thousands(MAX_RENDERED_CHARS)} characters; shorten the loops, the text or the values in vars`);
    }
    return text;
  }
}

/** The budget of the render under way (handlebars renders synchronously: one at a time). */
let activeBudget: RenderBudget | null = null;

/** Runs `render` on the budget under way, or on a new one (a render of a whole template shares one). */
function withinBudget<T>(render: (budget: RenderBudget) => T): T {
  if (activeBudget) return render(activeBudget);
  activeBudget = new RenderBudget();
  try {
    return render(activeBudget);
  } finally {
    activeBudget = null;
  }
}

function spend(): RenderBudget {
  if (!activeBudget) throw new Error("a template rendered outside of a render budget");
  return activeBudget;
}

/**
 * What the compiled code calls as it writes (see BudgetJavaScriptCompiler). Kept among the helpers of
 * `env` under a name no template can reach: with `knownHelpersOnly`, a name that is not a known helper is
 * always read from the vars, never from the helpers.
 */
const BUDGET_HOOKS = "$mailer_render_budget";
const budgetHooks = {
  text: (content: string): string => spend().write(content),
  value: (value: unknown): string => spend().write(value == null ? "" : `${value}`),
  escaped: (value: unknown): string => spend().write(env.escapeExpression(value as string)),
};
(env.helpers as Record<string, unknown>)[BUDGET_HOOKS] = budgetHooks;

type HelperFn = (this: unknown, ...args: unknown[]) => unknown;
interface HelperOptions {
  fn?: ((context: unknown, options?: unknown) => string) & Record<string, unknown>;
}

// Every built-in helper call is a step; every `{{#each}}` iteration is an iteration (`{{#items}}` over an
// array goes through `each` too). `{{#lookup}}` as a block writes its value, not a block body: charged here.
for (const name of ["each", "if", "unless", "with", "lookup", "blockHelperMissing"]) {
  const helper = env.helpers[name] as HelperFn;
  env.registerHelper(name, function (this: unknown, ...args: unknown[]) {
    const budget = spend();
    budget.step();
    const options = args[args.length - 1] as HelperOptions | undefined;
    if (name === "each" && typeof options?.fn === "function") {
      const fn = options.fn;
      options.fn = Object.assign((context: unknown, frame?: unknown) => {
        spend().iterate();
        return fn(context, frame);
      }, fn);
    }
    const result = helper.apply(this, args);
    if (name === "lookup" && options?.fn) return budget.write(result == null ? "" : `${result}`);
    return result;
  });
}

/** What the subclasses below use of handlebars' (untyped) compilers. */
interface CompilerLike {
  opcodes: Array<{ opcode: string }>;
  MustacheStatement(mustache: hbs.AST.MustacheStatement): void;
}
interface JavaScriptCompilerLike {
  aliasable(name: string): unknown;
  quotedString(text: string): unknown;
  popStack(): unknown;
  pushSource(source: unknown): void;
  appendToBuffer(source: unknown[]): unknown;
}
type Constructor<T> = new () => T;
const internals = env as unknown as { Compiler: Constructor<CompilerLike>; JavaScriptCompiler: Constructor<JavaScriptCompilerLike> };

/** Marks a mustache's value (`{{x}}` unescaped, in subject and text) apart from a block's result, which is not charged twice. */
class BudgetCompiler extends internals.Compiler {
  override MustacheStatement(mustache: hbs.AST.MustacheStatement): void {
    super.MustacheStatement(mustache);
    const last = this.opcodes[this.opcodes.length - 1];
    if (last?.opcode === "append") last.opcode = "appendValue";
  }
}

/**
 * Generates code that charges the budget for every piece of text and every value it writes, before the
 * piece joins the output: the render stops as soon as it goes over. A block's result is made of its body's
 * writes, already charged; the block's helper call is charged as a step.
 */
class BudgetJavaScriptCompiler extends internals.JavaScriptCompiler {
  private hook(name: keyof typeof budgetHooks): unknown {
    return this.aliasable(`helpers["${BUDGET_HOOKS}"].${name}`);
  }

  appendContent(content: string): void {
    this.pushSource(this.appendToBuffer([this.hook("text"), "(", this.quotedString(content), ")"]));
  }

  appendValue(): void {
    this.pushSource(this.appendToBuffer([this.hook("value"), "(", this.popStack(), ")"]));
  }

  appendEscaped(): void {
    this.pushSource(this.appendToBuffer([this.hook("escaped"), "(", this.popStack(), ")"]));
  }
}
// Child programs (block bodies) are compiled by `new this.compiler()`.
Object.assign(BudgetCompiler.prototype, { compiler: BudgetCompiler });
Object.assign(BudgetJavaScriptCompiler.prototype, { compiler: BudgetJavaScriptCompiler });
internals.Compiler = BudgetCompiler;
internals.JavaScriptCompiler = BudgetJavaScriptCompiler;

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

/**
 * A render that failed: `missing` names the variable a strict render did not find; `tooMuch` says the
 * render went over its budget (MAX_RENDER_ITERATIONS, MAX_RENDER_STEPS, MAX_RENDERED_CHARS).
 */
export class TemplateRenderError extends Error {
  constructor(
    message: string,
    readonly missing?: string,
    readonly tooMuch = false,
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
    refuseTooManyExpressions(source);
    refuseUnsupported(env.parse(source));
    // Compiled (which refuses unknown helpers) and rendered once without vars, as a real send renders
    // (lenient, on a render budget): what compiles may still throw at every render ({{#with}} without its
    // argument), and must fail here, not at each send.
    compilePart(source, "lenient", false)({});
    return null;
  } catch (err) {
    return describeFailure(err);
  }
}

/** handlebars' words for a call of a helper that does not exist (compiled with `knownHelpersOnly`). */
const UNKNOWN_HELPER = /^You specified knownHelpersOnly, but used the unknown helper (\S+) - (\d+:\d+)$/;

/** A TypeError of a helper call that has no function to call (`{{each items}}` calls an `options.fn` it was not given). */
const HELPER_CALL_FAILED = /\(reading 'call'\)|is not a function/;

/**
 * A failure in words about the template: handlebars' own errors (syntax, a misused helper) as they are,
 * on one line; a TypeError from inside handlebars (a built-in helper called in a way it cannot take,
 * such as `{{each items}}` without its block) without its internals.
 */
function describeFailure(err: unknown): string {
  const message = oneLine(String((err as Error)?.message ?? err));
  if (err instanceof RenderBudgetExceeded) return `renders too much: ${message}`;
  const unknown = UNKNOWN_HELPER.exec(message);
  if (unknown) return `unknown helper or misused built-in helper: ${unknown[1]} (at ${unknown[2]})`;
  if (!(err instanceof TypeError && HELPER_CALL_FAILED.test(message))) return message;
  return "unknown helper or misused built-in helper (a helper called that does not exist, or a block helper used without its block)";
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

/** Refuses a part with more than MAX_TEMPLATE_EXPRESSIONS `{{`, counted in the text before handlebars compiles it. */
function refuseTooManyExpressions(source: string): void {
  let count = 0;
  for (let at = source.indexOf("{{"); at !== -1; at = source.indexOf("{{", at + 2)) {
    if (++count > MAX_TEMPLATE_EXPRESSIONS) throw new Error(`at most ${thousands(MAX_TEMPLATE_EXPRESSIONS)} {{...}} expressions a part`);
  }
}

/**
 * handlebars' fallbacks for a missing helper: known to its compiler, so `{{helperMissing}}` compiles, but
 * not callable from a template (they only exist as hooks at run time).
 */
const HOOK_ONLY_HELPERS = new Set(["helperMissing", "blockHelperMissing"]);

function refuseUnsupported(ast: hbs.AST.Program): void {
  const visitor = new Handlebars.Visitor();
  const refuse = (what: string) => () => {
    throw new Error(`${what} are not supported`);
  };
  visitor.PartialStatement = refuse("partials");
  visitor.PartialBlockStatement = refuse("partials");
  visitor.Decorator = refuse("decorators");
  visitor.DecoratorBlock = refuse("decorators");
  // A call of helperMissing / blockHelperMissing: `{{helperMissing}}`, `{{#blockHelperMissing}}`, `(helperMissing x)`.
  const refuseHookCall = <N extends hbs.AST.MustacheStatement | hbs.AST.BlockStatement | hbs.AST.SubExpression>(visit: (node: N) => void) =>
    function (this: unknown, node: N) {
      // What handlebars' compiler takes for a helper name (its simpleId): one segment, no `../`, `./` or `this.`;
      // `@helperMissing`, `[helperMissing]` and `"helperMissing"` (a literal, made a path when compiled) are ones too.
      const path = node.path as Partial<hbs.AST.PathExpression> & { original: unknown };
      const parts = path.parts ?? [String(path.original)];
      const simple = parts.length === 1 && !path.depth && !/^\.|this\b/.test(String(path.original));
      const name = simple ? parts[0] : undefined;
      if (name !== undefined && HOOK_ONLY_HELPERS.has(name)) {
        const at = node.loc ? ` (at ${node.loc.start.line}:${node.loc.start.column})` : "";
        throw new Error(`unknown helper or misused built-in helper: ${name}${at}`);
      }
      visit.call(this, node);
    };
  const base = Handlebars.Visitor.prototype;
  visitor.MustacheStatement = refuseHookCall(base.MustacheStatement);
  visitor.BlockStatement = refuseHookCall(base.BlockStatement);
  visitor.SubExpression = refuseHookCall(base.SubExpression);
  visitor.accept(ast);
}

function compilePart(source: string, mode: RenderMode, escapesHtml: boolean): CompiledPart {
  // handlebars < 4.7.10 could be fed an AST object in place of text: only strings are ever compiled.
  if (typeof source !== "string") throw new TypeError("a template source must be a string");
  const template = env.compile<Record<string, unknown>>(source, { ...COMPILE_OPTIONS, strict: mode === "strict", noEscape: !escapesHtml });
  return (vars) =>
    withinBudget((budget) => {
      budget.chars = 0; // the character limit is per part
      return template(vars, RUNTIME_OPTIONS);
    });
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
    if (err instanceof RenderBudgetExceeded) throw new TemplateRenderError(`${field} renders too much: ${err.message}`, undefined, true);
    const message = String((err as Error)?.message ?? err);
    const missing = MISSING_VARIABLE.exec(message);
    if (missing) throw new TemplateRenderError(`${field} uses "${missing[1]}" (at ${missing[2]}), which vars do not hold`, missing[1]);
    throw new TemplateRenderError(`${field} could not be rendered: ${describeFailure(err)}`);
  }
}

/** The three parts on one budget: their iterations and steps add up (characters count per part). */
function render(compiled: CompiledTemplate, vars: Record<string, unknown>): RenderedTemplate {
  return withinBudget(() => ({
    // A value with a line break must not start a new header (or break the subject line).
    subject: renderPart(compiled.subject, "subject", vars).replace(/[\r\n]+/g, " "),
    html: renderPart(compiled.html, "html", vars),
    text: compiled.text && renderPart(compiled.text, "text", vars),
  }));
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
