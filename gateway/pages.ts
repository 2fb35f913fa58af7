/**
 * The few HTML pages the gateway answers to a browser: the page a list mail's unsubscribe link opens
 * (`GET .../unsubscribe?token=`), and the page its button's form post gets back. Self-contained: no script,
 * no external assets, one inline style allowed by its hash; never cached, never framed.
 */
import { createHash } from "node:crypto";

/**
 * The form field (`answer=html`) by which the unsubscribe page's own form asks a one-click unsubscribe
 * route for an HTML answer instead of JSON. Mail clients' RFC 8058 posts and API clients never send it.
 */
export const HTML_ANSWER_FIELD = "answer";
export const HTML_ANSWER_VALUE = "html";

const STYLE =
  "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;padding:3rem 1rem;background:#f6f7f9;color:#1f2328}" +
  "main{max-width:28rem;margin:0 auto;background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:2rem}" +
  "h1{font-size:1.4rem;margin:0 0 1rem}p{line-height:1.5}" +
  "button{font:inherit;padding:.6rem 1.4rem;border:0;border-radius:6px;background:#1f6feb;color:#fff;cursor:pointer}";

const STYLE_HASH = createHash("sha256").update(STYLE, "utf8").digest("base64");

/** Headers of every page: HTML in UTF-8, never cached (the URL carries a token), never framed, no script. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/html; charset=utf-8",
  "Cache-Control": "no-store",
  "X-Frame-Options": "DENY",
  "Content-Security-Policy": `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
};

/** Text for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>` +
    `<body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>\n`
  );
}

/**
 * The page an unsubscribe link opens: it changes nothing; its button posts the token (as the form field
 * `token`, the link's query string kept: a form without `action` posts to the page's own URL) with
 * `answer=html`, so the answer is the "You are unsubscribed" page.
 */
export function unsubscribePage(token: string): string {
  return page(
    "Unsubscribe",
    "<p>Do you want to stop receiving e-mails from this list?</p>" +
      `<form method="post"><input type="hidden" name="token" value="${escapeHtml(token)}">` +
      `<input type="hidden" name="${HTML_ANSWER_FIELD}" value="${HTML_ANSWER_VALUE}">` +
      '<button type="submit">Unsubscribe</button></form>',
  );
}

/** What the unsubscribe page's form post gets back once the unsubscribe is done. */
export function unsubscribedPage(): string {
  return page("You are unsubscribed", "<p>You will no longer receive e-mails from this list. You can close this page.</p>");
}
