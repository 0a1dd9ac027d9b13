import type { Ctx } from "../lib/context.ts";
import { gqlOk } from "../lib/http.ts";
import { deliveryFields, publishAndCount, warmUp } from "../lib/publish.ts";
import type { Account, Service } from "../lib/service.ts";

/** Counts the account's deliveries in `status` through the API (pages of 100, bounded). */
async function countDeliveries(service: Service, account: Account, status: "failed" | "pending"): Promise<number> {
  let count = 0;
  let after: string | null = null;
  for (let page = 0; page < 500; page++) {
    const data: { deliveries: { edges: unknown[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await gqlOk(
      service.setup,
      account.apiKey,
      `query($status: DeliveryStatus, $after: String) { deliveries(status: $status, first: 100, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`,
      { status, after },
    );
    count += data.deliveries.edges.length;
    if (!data.deliveries.pageInfo.hasNextPage) break;
    after = data.deliveries.pageInfo.endCursor;
  }
  return count;
}

/**
 * A receiver that fails half of all requests with 500 (each delivery's first 0, 1 or 2 attempts,
 * chosen by a hash: one failure per delivery on average, so none runs out of its 4 attempts), with
 * a short WEBHOOK_RETRY_SCHEDULE. Deliveries/s until every delivery succeeded (or stalled).
 */
export async function retryStorm(ctx: Ctx): Promise<void> {
  const { opts } = ctx;
  const service = await ctx.shared("embedded");
  await warmUp(ctx, service, 20);
  const run = await publishAndCount(ctx, service, {
    tag: "retry-storm",
    events: opts.retryEvents,
    webhooks: opts.webhooks,
    mode: "flaky",
    concurrency: opts.concurrency,
  });
  const fields = deliveryFields(run);
  const [failed, pending, disabled] = await Promise.all([
    countDeliveries(service, run.account, "failed"),
    countDeliveries(service, run.account, "pending"),
    gqlOk<{ webhooks: { edges: unknown[] } }>(
      service.setup,
      run.account.apiKey,
      `{ webhooks(status: disabled, first: 100) { edges { node { id } } } }`,
    ).then((d) => d.webhooks.edges.length),
  ]);
  ctx.emit({
    scenario: "retry-storm",
    ...fields,
    retry_schedule: opts.retrySchedule,
    attempts_per_s: run.stats.requests / fields.duration_s,
    receiver_requests: run.stats.requests,
    receiver_500s: run.stats.failed,
    receiver_200s: run.stats.ok,
    failed_500_share: run.stats.requests ? run.stats.failed / run.stats.requests : null,
    failed,
    pending,
    webhooks_disabled: disabled,
  });
  await ctx.receiver.forget("retry-storm");
}
