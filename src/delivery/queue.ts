/**
 * One try of one delivery. `attempt` is how many attempts were made before this one, so the
 * job key `<deliveryId>-<attempt>` names exactly one try: enqueuing it twice is harmless.
 */
export interface DeliveryJob {
  deliveryId: string;
  attempt: number;
  /** The delivery's webhook, when the enqueuer knows it: the worker caps attempts per webhook before claiming. */
  webhookId?: string;
  /** Wait this long before the job becomes runnable. */
  delayMs?: number;
}

export type DeliveryHandler = (job: DeliveryJob) => Promise<void>;

/** Carries delivery ids to workers. Losing a job delays it: the sweeper finds it in the database. */
export interface DeliveryQueue {
  enqueue(jobs: DeliveryJob[]): Promise<void>;
  /** Starts handing jobs to `handler`, at most `concurrency` at a time (worker role). */
  consume(handler: DeliveryHandler, concurrency: number): Promise<void>;
  /** Stops taking jobs; resolves when the jobs in hand have finished. */
  stopConsuming(): Promise<void>;
  close(): Promise<void>;
}

export const jobKey = (job: Pick<DeliveryJob, "deliveryId" | "attempt">) => `${job.deliveryId}-${job.attempt}`;
