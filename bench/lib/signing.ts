import { createHmac } from "node:crypto";

/** The same two signatures the service puts on every webhook request (README "What a webhook receiver gets"). */
export function signedHeaders(secret: string, key: Buffer, msgId: string, body: string): Record<string, string> {
  const timestamp = Math.floor(Date.now() / 1000);
  return {
    "content-type": "application/json",
    "user-agent": "Spawn-Webhooks-Bench/1.0",
    "spawn-signature": `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`,
    "webhook-id": msgId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": `v1,${createHmac("sha256", key).update(`${msgId}.${timestamp}.${body}`, "utf8").digest("base64")}`,
  };
}

export const BENCH_SECRET = "whsec_" + Buffer.from("bench-secret-bench-secret-32byte").toString("base64");
export const BENCH_KEY = Buffer.from(BENCH_SECRET.slice("whsec_".length), "base64");

/** A webhook body like the service's: {"event","timestamp","data"} with data.sent_at. */
export function webhookBody(n: number, sentAt: number): string {
  return JSON.stringify({
    event: "agent_created",
    timestamp: Math.floor(sentAt / 1000),
    data: {
      agent_id: `agent_ceiling_${n}`,
      name: "Benchmark assistant with a name of ordinary length",
      created_by: `user_${n % 1000}`,
      sent_at: sentAt,
    },
  });
}
