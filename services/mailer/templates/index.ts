/** The mailer's system templates, compiled once at start-up (compiling per message is ~70x slower). */
import Handlebars from "handlebars";
import * as magicCode from "./magic-code";

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

export interface MagicCodeView {
  code: string;
  expires_in_minutes: number;
}

export type Template<V> = (view: V) => RenderedMail;

function compile<V>(source: { subject: string; text: string; html: string }): Template<V> {
  // strict: a missing variable is a bug, not an empty string in someone's inbox.
  const subject = Handlebars.compile<V>(source.subject, { strict: true, noEscape: true });
  const text = Handlebars.compile<V>(source.text, { strict: true, noEscape: true });
  const html = Handlebars.compile<V>(source.html, { strict: true });
  return (view) => ({ subject: subject(view), text: text(view), html: html(view) });
}

export interface SystemTemplates {
  magicCode: Template<MagicCodeView>;
}

/** Compiles every system template; a broken one fails here, at start-up, not on someone's login. */
export function compileSystemTemplates(): SystemTemplates {
  const templates = { magicCode: compile<MagicCodeView>(magicCode) };
  templates.magicCode({ code: "000000", expires_in_minutes: 10 });
  return templates;
}
