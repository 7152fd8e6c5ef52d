// Starts the Node reference Durable Streams server on an ephemeral loopback port
// (in memory) and prints its URL; stops on SIGTERM.
import { DurableStreamTestServer } from "@durable-streams/server";

const server = new DurableStreamTestServer({ port: 0, host: "127.0.0.1", longPollTimeout: 1000 });
await server.start();
console.log(`peer listening on ${server.url}`);
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
