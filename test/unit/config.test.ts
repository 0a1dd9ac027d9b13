import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

/** Loads a configuration from exactly these variables (nothing from the real environment). */
const load = (env: Record<string, string> = {}) => loadConfig(env);

function configError(env: Record<string, string>): ConfigError {
  try {
    load(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(env)}`);
}

describe("loadConfig defaults (CONTRACT §1)", () => {
  const config = load();

  it("PORT 4000, HOST 0.0.0.0", () => {
    expect(config.PORT).toBe(4000);
    expect(config.HOST).toBe("0.0.0.0");
  });

  it("embedded database in ./.data, no Redis", () => {
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.DATA_DIR).toBe("./.data");
    expect(config.REDIS_URL).toBeUndefined();
  });

  it("ROLE all, no ADMIN_API_KEY, LOG_LEVEL info", () => {
    expect(config.ROLE).toBe("all");
    expect(config.ADMIN_API_KEY).toBeUndefined();
    expect(config.LOG_LEVEL).toBe("info");
  });

  it("retries after 10s, 30s, 2m; 10s timeout; private networks refused", () => {
    expect(config.WEBHOOK_RETRY_SCHEDULE).toEqual([10_000, 30_000, 120_000]);
    expect(config.WEBHOOK_TIMEOUT).toBe(10_000);
    expect(config.WEBHOOK_ALLOW_PRIVATE_NETWORKS).toBe(false);
  });

  it("100 requests per second per key", () => {
    expect(config.API_RATE_LIMIT).toMatchObject({ points: 100, windowMs: 1_000 });
  });

  it("empty values count as unset", () => {
    const config = load({ PORT: "", WEBHOOK_TIMEOUT: " ", ADMIN_API_KEY: "" });
    expect(config.PORT).toBe(4000);
    expect(config.WEBHOOK_TIMEOUT).toBe(10_000);
    expect(config.ADMIN_API_KEY).toBeUndefined();
  });
});

describe("loadConfig reads every variable", () => {
  it("takes the values it is given", () => {
    const config = load({
      PORT: "8080",
      HOST: "127.0.0.1",
      DATABASE_URL: "postgresql://u:p@db.example.com:5432/spawn?schema=s",
      DATA_DIR: "/var/lib/spawn",
      REDIS_URL: "redis://cache:6379/2",
      ROLE: "worker",
      ADMIN_API_KEY: "sk_admin_0123456789abcdef",
      WEBHOOK_RETRY_SCHEDULE: "1s,5s",
      WEBHOOK_TIMEOUT: "3s",
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
      API_RATE_LIMIT: "6000/m",
      LOG_LEVEL: "warn",
    });
    expect(config).toMatchObject({
      PORT: 8080,
      HOST: "127.0.0.1",
      DATABASE_URL: "postgresql://u:p@db.example.com:5432/spawn?schema=s",
      DATA_DIR: "/var/lib/spawn",
      REDIS_URL: "redis://cache:6379/2",
      ROLE: "worker",
      ADMIN_API_KEY: "sk_admin_0123456789abcdef",
      WEBHOOK_RETRY_SCHEDULE: [1_000, 5_000],
      WEBHOOK_TIMEOUT: 3_000,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: true,
      API_RATE_LIMIT: { points: 6000, windowMs: 60_000 },
      LOG_LEVEL: "warn",
    });
  });

  it.each(["all", "api", "worker"])("ROLE=%s", (role) => {
    expect(load({ ROLE: role }).ROLE).toBe(role);
  });

  it.each([
    ["postgres://localhost/db"],
    ["postgresql://localhost/db"],
  ])("DATABASE_URL=%s", (url) => {
    expect(load({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
  });

  it.each([["redis://localhost:6379"], ["rediss://secure.example.com:6380"]])("REDIS_URL=%s", (url) => {
    expect(load({ REDIS_URL: url }).REDIS_URL).toBe(url);
  });

  it.each([
    ["true", true],
    ["false", false],
  ])("WEBHOOK_ALLOW_PRIVATE_NETWORKS=%s", (text, value) => {
    expect(load({ WEBHOOK_ALLOW_PRIVATE_NETWORKS: text }).WEBHOOK_ALLOW_PRIVATE_NETWORKS).toBe(value);
  });
});

describe("durations accept ms, s, m and h", () => {
  it.each([
    ["250ms", 250],
    ["1ms", 1],
    ["10s", 10_000],
    ["1.5s", 1_500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    [" 5s ", 5_000],
  ])("WEBHOOK_TIMEOUT=%j is %i ms", (text, ms) => {
    expect(load({ WEBHOOK_TIMEOUT: text }).WEBHOOK_TIMEOUT).toBe(ms);
  });
});

describe("WEBHOOK_RETRY_SCHEDULE", () => {
  it.each([
    ["10s,30s,2m", [10_000, 30_000, 120_000]],
    ["100ms, 1s , 1h", [100, 1_000, 3_600_000]],
    ["5s", [5_000]],
    ["1m,1m,1m,1m,1m", [60_000, 60_000, 60_000, 60_000, 60_000]],
  ])("%j", (text, schedule) => {
    expect(load({ WEBHOOK_RETRY_SCHEDULE: text }).WEBHOOK_RETRY_SCHEDULE).toEqual(schedule);
  });
});

describe("API_RATE_LIMIT", () => {
  it.each([
    ["100/s", 100, 1_000],
    ["6000/m", 6_000, 60_000],
    ["10/5s", 10, 5_000],
    ["500/h", 500, 3_600_000],
    [" 20 / s ", 20, 1_000],
  ])("%j is %i per %i ms", (text, points, windowMs) => {
    expect(load({ API_RATE_LIMIT: text }).API_RATE_LIMIT).toMatchObject({ points, windowMs });
  });
});

describe("a bad value throws a one-line ConfigError naming the variable", () => {
  const cases: Array<[string, string]> = [
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["PORT", "-1"],
    ["PORT", "80.5"],
    ["HOST", "not a host name"],
    ["DATABASE_URL", "mysql://localhost/db"],
    ["DATABASE_URL", "not a url"],
    ["REDIS_URL", "http://localhost:6379"],
    ["ROLE", "both"],
    ["ADMIN_API_KEY", "short"],
    ["WEBHOOK_RETRY_SCHEDULE", "10s,banana"],
    ["WEBHOOK_RETRY_SCHEDULE", "10s,-5s"],
    ["WEBHOOK_RETRY_SCHEDULE", "10 seconds"],
    ["WEBHOOK_TIMEOUT", "banana"],
    ["WEBHOOK_TIMEOUT", "0s"],
    ["WEBHOOK_TIMEOUT", "10d"],
    ["WEBHOOK_TIMEOUT", "-1s"],
    ["WEBHOOK_ALLOW_PRIVATE_NETWORKS", "maybe"],
    ["API_RATE_LIMIT", "fast"],
    ["API_RATE_LIMIT", "0/s"],
    ["API_RATE_LIMIT", "100"],
    ["API_RATE_LIMIT", "100/d"],
    ["API_RATE_LIMIT", "100/0s"],
    ["WEBHOOK_MAX_IN_FLIGHT", "0"],
    ["WEBHOOK_MAX_IN_FLIGHT", "many"],
    ["API_KEY_RECHECK_INTERVAL", "0s"],
    ["API_KEY_RECHECK_INTERVAL", "soon"],
    ["LOG_LEVEL", "verbose"],
    ["ROLE", "api\nworker"],
  ];

  it.each(cases)("%s=%j", (name, value) => {
    const error = configError({ [name]: value });
    expect(error.message).toContain(name);
    expect(error.message).not.toMatch(/[\r\n]/);
    expect(error.message.length).toBeGreaterThan(name.length);
  });

  it("names the bad variable, not a good one next to it", () => {
    const error = configError({ PORT: "8080", WEBHOOK_TIMEOUT: "banana", ROLE: "api" });
    expect(error.message).toContain("WEBHOOK_TIMEOUT");
    expect(error.message).not.toContain("PORT");
    expect(error.message).not.toContain("ROLE");
  });
});
