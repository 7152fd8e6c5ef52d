// Starts the Node reference Durable Streams server on loopback and prints its URL;
// stops on SIGTERM. In memory on an ephemeral port unless PEER_DATA_DIR (file-backed
// storage) and PEER_PORT are set; PEER_LONG_POLL_MS sets the long-poll time-out.
import { DurableStreamTestServer } from "@durable-streams/server";

const env = process.env;
const server = new DurableStreamTestServer({
  port: Number(env.PEER_PORT ?? 0),
  host: "127.0.0.1",
  longPollTimeout: Number(env.PEER_LONG_POLL_MS ?? 1000),
  ...(env.PEER_DATA_DIR ? { dataDir: env.PEER_DATA_DIR } : {}),
});
await server.start();
console.log(`peer listening on ${server.url}`);
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
