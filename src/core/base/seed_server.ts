/**
 * A cloud-init NoCloud seed served over HTTP on host loopback for the
 * length of an install. The guest reaches it through SLIRP's gateway
 * (10.0.2.2), so no ISO tool or extra package is needed.
 *
 * @module
 */

/** The SLIRP gateway address under which the guest sees host loopback. */
export const slirpHostAddress = "10.0.2.2";

/** A running seed server. */
export interface SeedServer extends AsyncDisposable {
  /** The loopback port it listens on. */
  readonly port: number;
  /** The SMBIOS serial that points cloud-init at this seed. */
  readonly smbiosSerial: string;
  /** Resolves when the guest has fetched its user-data. */
  readonly userDataFetched: Promise<void>;
  /** Stops serving. */
  close(): Promise<void>;
}

/** Serves `files` (e.g. `meta-data`, `user-data`) until closed. */
export function startSeedServer(files: Readonly<Record<string, string>>): SeedServer {
  const fetched = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const name = new URL(request.url).pathname.replace(/^\/+/, "");
    const body = files[name];
    if (request.method !== "GET" || body === undefined) return new Response("not found\n", { status: 404 });
    if (name === "user-data") fetched.resolve();
    return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
  });
  const port = server.addr.port;
  const close = async (): Promise<void> => {
    await server.shutdown().catch(() => {});
  };
  return {
    port,
    // cloud-init 22.x and older only fetch a network seed as "nocloud-net".
    smbiosSerial: `ds=nocloud-net;s=http://${slirpHostAddress}:${port}/`,
    userDataFetched: fetched.promise,
    close,
    [Symbol.asyncDispose]: close,
  };
}
