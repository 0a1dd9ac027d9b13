/**
 * The event catalog (CONTRACT §5): every event type with its category, description and the fields
 * its `data` must contain. It drives the GraphQL enum, validation of published events and the
 * README's event table.
 */
export const EVENT_CATALOG = {
  agent_created: {
    category: "Agent",
    description: "An agent was created.",
    required: ["agent_id", "name", "created_by"],
  },
  agent_updated: { category: "Agent", description: "An agent's settings were modified.", required: ["agent_id"] },
  agent_deleted: { category: "Agent", description: "An agent was removed.", required: ["agent_id"] },
  message_received: {
    category: "Message & Conversation",
    description: "An agent received a new message.",
    required: ["agent_id", "user_id", "message", "conversation_id"],
  },
  conversation_updated: {
    category: "Message & Conversation",
    description: "A conversation's state was modified.",
    required: ["conversation_id"],
  },
  conversation_closed: {
    category: "Message & Conversation",
    description: "A conversation (session) was completed.",
    required: ["conversation_id"],
  },
  user_signed_up: { category: "User & Authentication", description: "A new user registered.", required: ["user_id"] },
  user_logged_in: { category: "User & Authentication", description: "A user logged in.", required: ["user_id"] },
  user_logged_out: { category: "User & Authentication", description: "A user logged out.", required: ["user_id"] },
  rate_limit_exceeded: {
    category: "Error & System",
    description: "An API key of the account hit the API rate limit (emitted by the service, at most once a minute per key).",
    required: ["limit", "window"],
  },
  server_error: {
    category: "Error & System",
    description: "A request of the account failed unexpectedly (emitted by the service; no internals).",
    required: ["error_id", "message"],
  },
} as const satisfies Record<string, { category: string; description: string; required: readonly string[] }>;

export type EventType = keyof typeof EVENT_CATALOG;

export const EVENT_TYPES = Object.keys(EVENT_CATALOG) as EventType[];

export function isEventType(value: unknown): value is EventType {
  return typeof value === "string" && Object.hasOwn(EVENT_CATALOG, value);
}
