// Runs the official Durable Streams server conformance suite against the server
// whose base URL is in GAPLESS_URL (started by run.sh).
import { runConformanceTests } from "@durable-streams/server-conformance-tests";

runConformanceTests({
  baseUrl: process.env.GAPLESS_URL,
  subscriptions: process.env.GAPLESS_SUBSCRIPTIONS === "1",
});
