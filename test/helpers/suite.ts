import { afterAll, beforeAll } from "vitest";
import { startTestApp, type TestApp } from "./app.ts";
import { createBackend, type Backend, type Mode } from "./backends.ts";
import { startRoutedReceiver, type Responder, type RoutedReceiver } from "./receiver.ts";

/** What a delivery suite works with; filled in by its `beforeAll`. */
export interface DeliverySuite {
  app: TestApp;
  receiver: RoutedReceiver;
  /** Each webhook's path on the one receiver, and how it answers. */
  routes: Map<string, Responder>;
}

/**
 * A backend of `mode`, the app on it (with `env`) and one routed receiver, started before the
 * suite's tests and stopped after them. Call it inside the suite's describe block.
 */
export function useDeliverySuite(mode: Mode, env: Record<string, string> = {}): DeliverySuite {
  const suite = {} as DeliverySuite;
  let backend: Backend | undefined;
  beforeAll(async () => {
    backend = await createBackend(mode);
    suite.app = await startTestApp(backend, env);
    suite.receiver = await startRoutedReceiver();
    suite.routes = suite.receiver.routes;
  });
  afterAll(async () => {
    await suite.app?.stop();
    await suite.receiver?.close();
    await backend?.dispose();
  });
  return suite;
}
