/** What every mail provider implements, and what it is given and answers. */
export interface OutgoingMail {
  from: string;
  to: string;
  subject: string;
  /** The plain-text part; none when a template has no text. */
  text?: string;
  html: string;
  /** RFC 5322 Message-ID, angle brackets included. */
  messageId: string;
  headers?: Record<string, string>;
}

export interface SendReceipt {
  messageId: string;
  /** Where the message went, safe to log (never the content). */
  destination: string;
}

export interface MailTransport {
  readonly name: string;
  /** True when mail stays on this machine (the outbox): each send is logged at info for the developer. */
  readonly local: boolean;
  /** Where mail goes, safe to log (an outbox folder, or the SMTP host without credentials). */
  readonly destination: string;
  send(mail: OutgoingMail): Promise<SendReceipt>;
  close(): Promise<void>;
}
