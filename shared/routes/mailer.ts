/**
 * The mailer's admin routes: a store's e-mail templates (CRUD and preview). One line per route (method,
 * path, action, who may call it; then its documentation).
 */
import { Deleted } from "../contracts/common";
import { EmailTemplate, EmailTemplateList, MailerActions, RenderedTemplate } from "../contracts/mailer";
import { routesOf, type RouteDef } from "./types";

const base = "/v1/stores/{storeId}/email-templates";
const route = routesOf("Email templates");

// biome-ignore format: one route per line, so the table reads as a table
export const mailerRoutes: RouteDef[] = [
  route("POST", base, "mailer.createTemplate", "admin", { summary: "Create an e-mail template (handlebars subject, html and text)", params: MailerActions.createTemplate, response: EmailTemplate, errors: [409] }),
  route("GET", base, "mailer.findTemplates", "admin", { summary: "List and search e-mail templates, newest first", params: MailerActions.findTemplates, response: EmailTemplateList }),
  route("GET", `${base}/{id}`, "mailer.getTemplate", "admin", { summary: "Get an e-mail template", params: MailerActions.getTemplate, response: EmailTemplate }),
  route("PUT", `${base}/{id}`, "mailer.updateTemplate", "admin", { summary: "Update an e-mail template's key, name, sources or status", params: MailerActions.updateTemplate, response: EmailTemplate, errors: [409] }),
  route("DELETE", `${base}/{id}`, "mailer.deleteTemplate", "admin", { summary: "Delete an e-mail template (lists that used it fall back to single opt-in)", params: MailerActions.deleteTemplate, response: Deleted }),
  route("POST", `${base}/{id}/preview`, "mailer.previewTemplate", "admin", { summary: "Render a template with the given vars (strict: a missing variable is a 400 naming vars)", params: MailerActions.previewTemplate, response: RenderedTemplate }),
];
