/** The mailer's system templates, compiled once (compiling per message is ~70x slower). */
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

export function compileSystemTemplates(): SystemTemplates {
  return { magicCode: compile<MagicCodeView>(magicCode) };
}
