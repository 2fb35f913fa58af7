/**
 * The rows of an import, read one at a time whatever they came as: JSON `rows`, `csv` text, or a
 * `text/csv` body streamed from the gateway. CSV goes through csv-parse (quoted fields, embedded commas
 * and newlines, a BOM, CRLF); a record it cannot read is reported with its row number and the rest go on.
 * Each row is checked on its own and turned into what profiles.upsertMany takes.
 */
import { Readable } from "node:stream";
import { parse, type CsvError } from "csv-parse";
import type { z } from "zod";
import { IMPORT_TAXONOMY_ID, type ImportError, ImportRow } from "../../shared/contracts/profile-lists";
import type { TaxonomyEntryInput } from "../../shared/contracts/profiles";
import { ProfileListsErrors } from "./profile-lists.errors";

/** A row ready for profiles.upsertMany, with its number (from 1; the CSV header not counted). */
export interface ValidRow {
  row: number;
  email: string;
  taxonomies: TaxonomyEntryInput[];
}

export type ReadRow = ValidRow | { row: number; error: ImportError };

export interface ImportSource {
  rows?: unknown[];
  csv?: string;
  email_column?: string;
  /** A `text/csv` body (ctx.stream). */
  stream?: NodeJS.ReadableStream;
}

/**
 * The CSV cannot be read from `row` on: csv-parse lost track of where records start. The import engine
 * writes what it read before and answers ProfileListsErrors.csvUnreadable with its counts.
 */
export class CsvUnreadable extends Error {
  constructor(
    readonly row: number,
    readonly reason: string,
  ) {
    super(`the CSV cannot be read from row ${row} on: ${reason}`);
  }
}

/** Records csv-parse can skip and then go on with the next one exactly. */
const SKIPPABLE = new Set(["INVALID_OPENING_QUOTE"]);

/** The longest CSV record read (a quote left open would otherwise swallow the rest of the file). */
const MAX_RECORD_CHARS = 256 * 1024;
const DEFAULT_EMAIL_COLUMN = "email";
// csv-parse decodes bytes that are not UTF-8 as U+FFFD (which a UTF-8 file could hold too, but hardly in an e-mail list).
const NOT_UTF8 = 'the row is not valid UTF-8: save the file as UTF-8 (in Excel, "CSV UTF-8") and import it again';
const NOT_UTF8_HEADER = 'it is not valid UTF-8: save the file as UTF-8 (in Excel, "CSV UTF-8") and import it again';

/** Every row of the source, checked, in order. */
export function readRows(source: ImportSource): AsyncIterable<ReadRow> {
  if (source.rows) return jsonRows(source.rows);
  const text = source.stream ?? (source.csv !== undefined ? Readable.from([source.csv]) : undefined);
  if (!text) throw ProfileListsErrors.importSourceMissing();
  return csvRows(text, source.email_column ?? DEFAULT_EMAIL_COLUMN);
}

async function* jsonRows(rows: unknown[]): AsyncIterable<ReadRow> {
  for (const [i, value] of rows.entries()) yield checkRow(i + 1, value);
}

async function* csvRows(input: NodeJS.ReadableStream, emailColumn: string): AsyncIterable<ReadRow> {
  const parser = parse({
    bom: true,
    skip_empty_lines: true,
    skip_records_with_empty_values: true,
    relax_column_count: true,
    skip_records_with_error: true,
    info: true,
    max_record_size: MAX_RECORD_CHARS,
  });
  // Records csv-parse skipped, by how many good records (the header included) came before each.
  const skipped: Array<{ after: number; message: string }> = [];
  // Past a quote that never closes properly, or a record over the size limit, the parser cannot tell
  // where the next record starts: what it reads after that is not imported (it would be garbage, or
  // rows silently lost), and the import answers which row to fix.
  let unreadable: { after: number; row: number; message: string } | undefined;
  parser.on("skip", (err: CsvError & { records?: number }) => {
    const after = err.records ?? 0;
    if (unreadable) return;
    if (SKIPPABLE.has(err.code)) skipped.push({ after, message: parserMessage(err) });
    else {
      unreadable = { after, row: after + skipped.length, message: parserMessage(err) };
      input.unpipe(parser);
      parser.end();
    }
  });
  input.on("error", (err) => parser.destroy(err));
  input.pipe(parser);

  let header: string[] | undefined;
  let emailAt = -1;
  let skipsBefore = 0;
  const reportSkipsBefore = function* (records: number): Generator<ReadRow> {
    while (skipsBefore < skipped.length && skipped[skipsBefore].after < records) {
      const skip = skipped[skipsBefore++];
      yield { row: skip.after + skipsBefore - 1, error: { row: skip.after + skipsBefore - 1, field: "csv", message: skip.message } };
    }
  };
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { records: number } }>) {
      if (unreadable && info.records > unreadable.after) break;
      if (!header) {
        header = checkHeader(record);
        emailAt = columnOf(header, emailColumn);
        if (emailAt === -1) throw ProfileListsErrors.emailColumnMissing(emailColumn);
        checkFieldColumns(header.filter((_, i) => i !== emailAt));
        continue;
      }
      yield* reportSkipsBefore(info.records);
      const row = info.records - 1 + skipsBefore;
      yield csvRecordRow(row, header, emailAt, record);
    }
  } catch (err) {
    if (!header) throw err;
    // A record that could not be read and could not be skipped, or the stream itself failed: the rows
    // read so far are imported (the engine writes its last batch), and the failure is the answer.
    yield* reportSkipsBefore(Number.POSITIVE_INFINITY);
    throw err;
  }
  if (unreadable && unreadable.after === 0) throw ProfileListsErrors.csvHeaderInvalid(unreadable.message);
  if (!header) throw ProfileListsErrors.csvHeaderInvalid("the CSV is empty: it needs a header row");
  yield* reportSkipsBefore(Number.POSITIVE_INFINITY);
  if (unreadable) throw new CsvUnreadable(unreadable.row, unreadable.message);
}

/** csv-parse's message, its line number said to count the file's lines (rows are counted without the header and empty lines). */
function parserMessage(err: CsvError): string {
  return err.message.replace(/\bat line (\d+)/, "at line $1 of the file (counting every line)");
}

function checkHeader(record: string[]): string[] {
  const names = record.map((name) => name.trim());
  if (names.some((name) => name.includes("\uFFFD"))) throw ProfileListsErrors.csvHeaderInvalid(NOT_UTF8_HEADER);
  if (names.some((name) => name === "")) throw ProfileListsErrors.csvHeaderInvalid("a column has no name");
  const seen = new Set<string>();
  for (const name of names) {
    if (name === "__proto__") throw ProfileListsErrors.csvHeaderInvalid('a column may not be named "__proto__"');
    if (seen.has(name)) throw ProfileListsErrors.csvHeaderInvalid(`the column "${name}" appears twice`);
    seen.add(name);
  }
  return names;
}

/** Where the column is: its exact name, else the one column named so in another case ("Email" from a spreadsheet's export). */
function columnOf(header: string[], name: string): number {
  const exact = header.indexOf(name);
  if (exact !== -1) return exact;
  const folded = header.flatMap((column, i) => (column.toLowerCase() === name.toLowerCase() ? [i] : []));
  return folded.length === 1 ? folded[0] : -1;
}

/** Longest field key and taxonomy id a column may name (the profiles contract's limits). */
const MAX_FIELD_KEY = 100;
const MAX_TAXONOMY_ID = 128;

/** Every column but the e-mail names a field ("<field>" or "<taxonomy>.<field>"), or the whole file is refused at its header. */
function checkFieldColumns(columns: string[]): void {
  for (const column of columns) {
    const { taxonomyId, key } = fieldPathOf(column);
    if (key.trim() === "" || key.length > MAX_FIELD_KEY || taxonomyId.length > MAX_TAXONOMY_ID) {
      throw ProfileListsErrors.csvHeaderInvalid(
        `the column "${column}" names no field: name it "<field>" or "<taxonomy>.<field>" (a field of 1 to ${MAX_FIELD_KEY} characters, a taxonomy of at most ${MAX_TAXONOMY_ID})`,
      );
    }
  }
}

/** Where a flat field goes: `"<taxonomy_id>.<key>"` to that taxonomy, a bare `"<key>"` to the IMPORT_TAXONOMY_ID one. */
function fieldPathOf(name: string): { taxonomyId: string; key: string } {
  const dot = name.indexOf(".");
  return dot > 0 ? { taxonomyId: name.slice(0, dot), key: name.slice(dot + 1) } : { taxonomyId: IMPORT_TAXONOMY_ID, key: name };
}

/** A CSV record as an import row: the e-mail column, and every other non-empty cell as a text field. */
function csvRecordRow(row: number, header: string[], emailAt: number, record: string[]): ReadRow {
  // A Latin-1 export's accented letters: refused, not stored garbled.
  if (record.some((cell) => cell.includes("\uFFFD"))) return { row, error: { row, field: "csv", message: NOT_UTF8 } };
  const extra = record.slice(header.length).filter((cell) => cell.trim() !== "");
  if (extra.length > 0) return { row, error: { row, field: "csv", message: `the row has ${record.length} cells and the header ${header.length}` } };
  const fields: Record<string, string> = {};
  header.forEach((name, i) => {
    const cell = (record[i] ?? "").trim();
    if (i !== emailAt && cell !== "") fields[name] = cell;
  });
  return checkRow(row, { email: record[emailAt] ?? "", fields });
}

/**
 * A row checked against ImportRow, its flat fields folded into its taxonomy entries. Whether the folded
 * taxonomies keep a profile's limits (fields per entry, key lengths, 64 KB) is checked once, by
 * profiles.upsertMany, whose error result for the row is reported like these.
 */
function checkRow(row: number, value: unknown): ReadRow {
  const parsed = ImportRow.safeParse(value);
  if (!parsed.success) return { row, error: firstIssue(row, parsed.error) };
  return { row, email: parsed.data.email, taxonomies: withFields(parsed.data.taxonomies ?? [], parsed.data.fields ?? {}) };
}

/** Flat fields as taxonomy fields (see fieldPathOf); a field overrides the same key given in `taxonomies`. */
function withFields(entries: TaxonomyEntryInput[], fields: Record<string, string | number | boolean>): TaxonomyEntryInput[] {
  const out = entries.map((entry) => ({ taxonomy_id: entry.taxonomy_id, fields: [...entry.fields] }));
  for (const [name, value] of Object.entries(fields)) {
    const { taxonomyId, key } = fieldPathOf(name);
    let entry = out.find((e) => e.taxonomy_id === taxonomyId);
    if (!entry) {
      entry = { taxonomy_id: taxonomyId, fields: [] };
      out.push(entry);
    }
    const field = (
      typeof value === "string" ? { key, type: "text", value } : typeof value === "number" ? { key, type: "number", value } : { key, type: "boolean", value }
    ) as TaxonomyEntryInput["fields"][number];
    const at = entry.fields.findIndex((f) => f.key === key);
    if (at === -1) entry.fields.push(field);
    else entry.fields[at] = field;
  }
  return out;
}

function firstIssue(row: number, error: z.ZodError): ImportError {
  const issue = error.issues[0];
  return { row, field: issue.path.map(String).join(".") || "row", message: issue.message };
}
