/**
 * Order linking, fed by the durable `order.created` event: an order is linked to its profile_id (or to
 * the profile that id was merged into), else to the profile with its e-mail (created when absent).
 * The same order_id twice changes nothing (unique { store_id, order_id }).
 */
import type { DurableEventPayload } from "../../shared/contracts/events";
import { uuidv7 } from "../../shared/ids";
import { UnprocessableEvent } from "../../shared/events/durable";
import { isDuplicateKey } from "../../shared/storage/port";
import { findOrCreateByEmail } from "./profiles.logic";
import { resolveProfileId } from "./profiles.merge";
import type { ProfilesDeps } from "./profiles.ports";
import type { OrderLinkDoc } from "./profiles.store";

export type OrderCreated = DurableEventPayload<"order.created">;

/**
 * Links the order and answers its link. An event naming no profile that exists and no e-mail is
 * UnprocessableEvent (dead-lettered, so a corrected event for the same order still links).
 */
export async function linkOrder(deps: ProfilesDeps, event: OrderCreated): Promise<OrderLinkDoc> {
  const { orderLinks } = deps.store;
  const storeId = event.store_id;
  const existing = await orderLinks.findOne({ store_id: storeId, order_id: event.order_id });
  if (existing) return existing;

  let profileId = event.profile_id ? await resolveProfileId(deps, storeId, event.profile_id) : null;
  if (!profileId && event.email) profileId = (await findOrCreateByEmail(deps, storeId, event.email)).doc._id;
  if (!profileId) {
    throw new UnprocessableEvent(`order ${event.order_id}: profile ${event.profile_id} does not exist in store ${storeId} and the order has no e-mail`);
  }

  const now = deps.now();
  const link: OrderLinkDoc = {
    _id: uuidv7(),
    store_id: storeId,
    order_id: event.order_id,
    profile_id: profileId,
    total: event.total ?? null,
    currency: event.currency ?? null,
    created_at: event.created_at ?? now,
    linked_at: now,
  };
  try {
    await orderLinks.insertOne(link);
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    const winner = await orderLinks.findOne({ store_id: storeId, order_id: event.order_id });
    if (!winner) throw err; // removed again in between: let the event be redelivered
    return winner;
  }
  // A merge may have removed the profile while we linked: follow it to where it went.
  const current = await resolveProfileId(deps, storeId, profileId);
  if (current && current !== profileId) {
    await orderLinks.updateOne({ _id: link._id, store_id: storeId }, { $set: { profile_id: current } });
    link.profile_id = current;
  }
  return link;
}
