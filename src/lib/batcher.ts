/**
 * Groups calls made close together into one: items queue up while a batch is in flight (or
 * until `maxSize`), then `run` handles them together. `run` returns one result per item, in
 * order; if it throws, every item of that batch is rejected with the error.
 */
export function createBatcher<In, Out>(
  run: (items: In[]) => Promise<Out[]>,
  options: { maxSize: number; maxInFlight?: number },
): (item: In) => Promise<Out> {
  let pending: Array<{ item: In; resolve: (out: Out) => void; reject: (error: unknown) => void }> = [];
  let inFlight = 0;
  const maxInFlight = options.maxInFlight ?? 1;
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    while (pending.length > 0 && inFlight < maxInFlight) {
      const batch = pending.slice(0, options.maxSize);
      pending = pending.slice(batch.length);
      inFlight += 1;
      run(batch.map((p) => p.item))
        .then(
          (results) => batch.forEach((p, i) => p.resolve(results[i] as Out)),
          (error: unknown) => batch.forEach((p) => p.reject(error)),
        )
        .finally(() => {
          inFlight -= 1;
          flush();
        });
    }
  }

  return (item) =>
    new Promise<Out>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      if (!scheduled && inFlight < maxInFlight) {
        scheduled = true;
        setImmediate(flush);
      }
    });
}
