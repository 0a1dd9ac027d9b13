import { EVENT_CATALOG, EVENT_TYPES } from "../events/catalog.ts";
import { builder } from "./builder.ts";

export const EventTypeEnum = builder.enumType("EventType", {
  values: Object.fromEntries(
    EVENT_TYPES.map((type) => [type, { value: type, description: EVENT_CATALOG[type].description }]),
  ) as Record<(typeof EVENT_TYPES)[number], { value: (typeof EVENT_TYPES)[number]; description: string }>,
});

export const WebhookStatusEnum = builder.enumType("WebhookStatus", {
  values: ["active", "disabled"] as const,
});

export const DeliveryStatusEnum = builder.enumType("DeliveryStatus", {
  values: ["pending", "succeeded", "failed"] as const,
});
