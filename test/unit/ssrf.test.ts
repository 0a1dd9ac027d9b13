import { describe, expect, it } from "vitest";
import {
  blockedAddressReason,
  BlockedAddressError,
  createDestinationGuard,
  createLiteralGuard,
  guardedLookup,
  literalAddress,
  type LookupAll,
} from "../../src/delivery/ssrf.ts";

/** Addresses that must never be called, with the kind of range the reason should name. */
const BLOCKED_ADDRESSES: Array<[string, RegExp]> = [
  ["127.0.0.1", /loopback/],
  ["127.255.255.254", /loopback/],
  ["::1", /loopback/],
  ["::ffff:7f00:1", /loopback/],
  ["::ffff:127.0.0.1", /loopback/],
  ["64:ff9b::7f00:1", /NAT64/],
  ["0.0.0.0", /unspecified/],
  ["::", /unspecified/],
  ["100.64.0.1", /carrier-grade NAT/],
  ["169.254.169.254", /link-local/],
  ["::ffff:169.254.169.254", /link-local/],
  ["fe80::1", /link-local/],
  ["fc00::1", /unique-local/],
  ["fd12:3456:789a::1", /unique-local/],
  ["224.0.0.1", /multicast/],
  ["ff02::1", /multicast/],
  ["255.255.255.255", /broadcast/],
  ["10.0.0.1", /private/],
  ["172.16.0.1", /private/],
  ["172.31.255.255", /private/],
  ["192.168.1.1", /private/],
  ["::ffff:10.0.0.1", /private/],
  ["192.0.2.1", /documentation|reserved/],
  ["2001:db8::1", /documentation|reserved/],
  ["[::1]", /loopback/],
  ["fe80::1%eth0", /link-local/],
];

const PUBLIC_ADDRESSES = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34", "2001:4860:4860::8888"];

/** Every spelling of a non-public destination a webhook URL may use, and the address it names. */
const LITERAL_URLS: Array<[string, string]> = [
  ["http://[::1]/", "::1"],
  ["http://[::ffff:7f00:1]/", "::ffff:7f00:1"],
  ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"],
  ["http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"],
  ["http://0.0.0.0/", "0.0.0.0"],
  ["http://100.64.0.1/", "100.64.0.1"],
  ["http://169.254.169.254/latest/meta-data/", "169.254.169.254"],
  ["http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe"],
  ["http://[fe80::1]/", "fe80::1"],
  ["http://[fc00::1]/", "fc00::1"],
  ["http://224.0.0.1/", "224.0.0.1"],
  ["http://255.255.255.255/", "255.255.255.255"],
  ["http://10.0.0.1/", "10.0.0.1"],
  ["http://172.16.0.1/", "172.16.0.1"],
  ["http://192.168.1.1/", "192.168.1.1"],
  ["http://192.0.2.1/", "192.0.2.1"],
  ["http://[2001:db8::1]/", "2001:db8::1"],
  ["http://127.1/", "127.0.0.1"],
  ["http://0x7f000001/", "127.0.0.1"],
  ["http://2130706433/", "127.0.0.1"],
  ["http://017700000001/", "127.0.0.1"],
  ["http://0177.0.0.1/", "127.0.0.1"],
  ["http://127.0.0.1:8080/x", "127.0.0.1"],
];

type Callback = Parameters<ReturnType<typeof guardedLookup>>[2];

/** Calls a guardedLookup and collects what its callback got. */
function runLookup(lookup: ReturnType<typeof guardedLookup>, hostname: string, all: boolean) {
  return new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family: unknown }>((resolve) => {
    const callback: Callback = (error, address, family) => resolve({ error, address, family });
    lookup(hostname, { all }, callback);
  });
}

const answering =
  (table: Record<string, Array<{ address: string; family: number }>>): LookupAll =>
  async (hostname) => {
    const answer = table[hostname];
    if (!answer) {
      const error: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      error.code = "ENOTFOUND";
      throw error;
    }
    return answer;
  };

describe("blockedAddressReason", () => {
  it.each(BLOCKED_ADDRESSES)("blocks %s", (address, kind) => {
    const reason = blockedAddressReason(address);
    expect(reason).not.toBeNull();
    expect(reason).toMatch(kind);
  });

  it.each(PUBLIC_ADDRESSES)("allows the public address %s", (address) => {
    expect(blockedAddressReason(address)).toBeNull();
  });

  it("blocks what is not an IP address at all", () => {
    expect(blockedAddressReason("example.com")).toMatch(/not an IP address/);
    expect(blockedAddressReason("")).not.toBeNull();
  });

  it("judges IPv4-mapped IPv6 as the IPv4 address it carries", () => {
    expect(blockedAddressReason("::ffff:8.8.8.8")).toBeNull();
    expect(blockedAddressReason("::ffff:192.168.0.1")).toMatch(/private/);
  });

  it("blocks IPv6 outside global unicast and the tunnelling ranges", () => {
    for (const address of ["2002:7f00:1::1", "2001::1", "fec0::1", "::7f00:1", "100::1"]) {
      expect(blockedAddressReason(address), address).not.toBeNull();
    }
  });
});

describe("literalAddress", () => {
  it.each(LITERAL_URLS)("finds the address named by %s", (url, address) => {
    const found = literalAddress(new URL(url));
    expect(found).toBe(address);
    expect(blockedAddressReason(found!)).not.toBeNull();
  });

  it("is null for host names", () => {
    for (const url of ["http://localhost/", "https://example.com/", "http://rebind.test:8080/hook", "http://127.0.0.1.nip.io/"]) {
      expect(literalAddress(new URL(url)), url).toBeNull();
    }
  });

  it("finds public literals too (and does not block them)", () => {
    expect(literalAddress(new URL("https://8.8.8.8/"))).toBe("8.8.8.8");
    expect(literalAddress(new URL("https://[2606:4700:4700::1111]/"))).toBe("2606:4700:4700::1111");
    expect(blockedAddressReason("2606:4700:4700::1111")).toBeNull();
  });
});

describe("createDestinationGuard", () => {
  const lookup = answering({
    "public.test": [{ address: "93.184.216.34", family: 4 }],
    "public6.test": [{ address: "2606:4700:4700::1111", family: 6 }],
    "private.test": [{ address: "10.0.0.5", family: 4 }],
    "mixed.test": [
      { address: "93.184.216.34", family: 4 },
      { address: "127.0.0.1", family: 4 },
    ],
    "metadata.test": [{ address: "::ffff:169.254.169.254", family: 6 }],
  });
  const guard = createDestinationGuard({ allowPrivate: false, lookup });

  it.each(LITERAL_URLS)("refuses %s", async (url) => {
    expect(await guard(new URL(url))).not.toBeNull();
  });

  it("refuses localhost and *.localhost without asking the resolver", async () => {
    let asked = 0;
    const counting = createDestinationGuard({
      allowPrivate: false,
      lookup: async () => {
        asked += 1;
        return [{ address: "93.184.216.34", family: 4 }];
      },
    });
    expect(await counting(new URL("http://localhost/"))).toMatch(/loopback/);
    expect(await counting(new URL("http://localhost:4000/x"))).toMatch(/loopback/);
    expect(await counting(new URL("http://api.localhost/"))).toMatch(/loopback/);
    expect(asked).toBe(0);
  });

  it("refuses a name when any of its addresses is not public, naming the name and the address", async () => {
    const reason = await guard(new URL("https://private.test/hook"));
    expect(reason).toContain("private.test");
    expect(reason).toContain("10.0.0.5");
    expect(await guard(new URL("https://mixed.test/hook"))).toContain("127.0.0.1");
    expect(await guard(new URL("https://metadata.test/hook"))).toContain("169.254.169.254");
  });

  it("accepts names resolving only to public addresses, public literals, and names that do not resolve yet", async () => {
    expect(await guard(new URL("https://public.test/hook"))).toBeNull();
    expect(await guard(new URL("https://public6.test/hook"))).toBeNull();
    expect(await guard(new URL("https://8.8.8.8/hook"))).toBeNull();
    expect(await guard(new URL("https://[2606:4700:4700::1111]/hook"))).toBeNull();
    expect(await guard(new URL("https://unknown.test/hook"))).toBeNull();
  });

  it("allows everything when private networks are allowed", async () => {
    const open = createDestinationGuard({ allowPrivate: true, lookup });
    for (const [url] of LITERAL_URLS) expect(await open(new URL(url)), url).toBeNull();
    expect(await open(new URL("http://localhost/"))).toBeNull();
    expect(await open(new URL("https://private.test/"))).toBeNull();
  });
});

describe("createLiteralGuard (attempt time)", () => {
  it("refuses literal non-public addresses and localhost, leaves names to the connect-time lookup", async () => {
    const guard = createLiteralGuard({ allowPrivate: false });
    for (const [url] of LITERAL_URLS) expect(await guard(new URL(url)), url).not.toBeNull();
    expect(await guard(new URL("http://localhost:3000/"))).not.toBeNull();
    expect(await guard(new URL("https://8.8.8.8/"))).toBeNull();
    expect(await guard(new URL("https://private.test/"))).toBeNull();
    const open = createLiteralGuard({ allowPrivate: true });
    expect(await open(new URL("http://127.0.0.1/"))).toBeNull();
  });
});

describe("guardedLookup (connect time)", () => {
  const lookup = guardedLookup(
    answering({
      "public.test": [
        { address: "93.184.216.34", family: 4 },
        { address: "2606:4700:4700::1111", family: 6 },
      ],
      "private.test": [{ address: "10.0.0.5", family: 4 }],
      "loopback6.test": [{ address: "::1", family: 6 }],
      "mixed.test": [
        { address: "8.8.8.8", family: 4 },
        { address: "169.254.169.254", family: 4 },
      ],
      "mapped.test": [{ address: "::ffff:127.0.0.1", family: 6 }],
      "empty.test": [],
    }),
  );

  it("with all: true, returns every address of a public name", async () => {
    const result = await runLookup(lookup, "public.test", true);
    expect(result.error).toBeNull();
    expect(result.address).toEqual([
      { address: "93.184.216.34", family: 4 },
      { address: "2606:4700:4700::1111", family: 6 },
    ]);
  });

  it("without all, returns the first address and its family", async () => {
    const result = await runLookup(lookup, "public.test", false);
    expect(result.error).toBeNull();
    expect(result.address).toBe("93.184.216.34");
    expect(result.family).toBe(4);
  });

  it.each(["private.test", "loopback6.test", "mixed.test", "mapped.test"])(
    "fails %s with ERR_WEBHOOK_ADDRESS_BLOCKED (all: true and false)",
    async (hostname) => {
      for (const all of [true, false]) {
        const result = await runLookup(lookup, hostname, all);
        expect(result.error).toBeInstanceOf(BlockedAddressError);
        expect(result.error!.code).toBe("ERR_WEBHOOK_ADDRESS_BLOCKED");
        expect(result.error!.message).toMatch(/^blocked: /);
        expect(result.error!.message).toContain(hostname);
        // No address is handed to the socket.
        expect(result.address).toEqual([]);
      }
    },
  );

  it("names the blocked address in the error", async () => {
    expect((await runLookup(lookup, "private.test", true)).error!.message).toContain("10.0.0.5");
    expect((await runLookup(lookup, "mixed.test", true)).error!.message).toContain("169.254.169.254");
  });

  it("passes resolver failures through and treats no address as ENOTFOUND", async () => {
    const missing = await runLookup(lookup, "nowhere.test", true);
    expect(missing.error?.code).toBe("ENOTFOUND");
    const empty = await runLookup(lookup, "empty.test", true);
    expect(empty.error?.code).toBe("ENOTFOUND");
  });

  it("asks the resolver on every call (no cached answer to rebind around)", async () => {
    let calls = 0;
    const rebinding = guardedLookup(async () => {
      calls += 1;
      return calls === 1 ? [{ address: "93.184.216.34", family: 4 }] : [{ address: "127.0.0.1", family: 4 }];
    });
    expect((await runLookup(rebinding, "rebind.test", true)).error).toBeNull();
    const second = await runLookup(rebinding, "rebind.test", true);
    expect(second.error?.code).toBe("ERR_WEBHOOK_ADDRESS_BLOCKED");
    expect(second.error?.message).toContain("127.0.0.1");
    expect(calls).toBe(2);
  });
});
