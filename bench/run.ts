console.log("npm run bench: the benchmark harness is not written yet (see the performance issue).");
