/**
 * The login-code e-mail (handlebars sources for subject, text and HTML). Kept as TypeScript strings so
 * the build carries them into dist/ without a copy step; compiled once in templates/index.ts.
 */
// The code stays out of the subject: subjects end up in logs and lock-screen previews.
export const subject = "Your login code";

export const text = `Hello,

Your login code is:

    {{code}}

It expires in {{expires_in_minutes}} minutes and can be used once.

If you did not ask for it, you can ignore this e-mail: nobody can log in without the code.
`;

export const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Your login code</title>
  </head>
  <body style="margin:0;padding:24px;background:#f6f7f9;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328">
    <table role="presentation" width="100%" cellspacing="0" cellpadding="0" style="max-width:480px;margin:0 auto;background:#ffffff;border-radius:8px">
      <tr>
        <td style="padding:32px">
          <p style="margin:0 0 16px">Hello,</p>
          <p style="margin:0 0 16px">Your login code is:</p>
          <p style="margin:0 0 24px;font-size:32px;font-weight:700;letter-spacing:6px;font-family:Menlo,Consolas,monospace">{{code}}</p>
          <p style="margin:0 0 16px">It expires in {{expires_in_minutes}} minutes and can be used once.</p>
          <p style="margin:0;color:#656d76;font-size:13px">If you did not ask for it, you can ignore this e-mail: nobody can log in without the code.</p>
        </td>
      </tr>
    </table>
  </body>
</html>
`;
