// Vitest settings for the conformance run: one file, default time-outs of the suite.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["conformance.test.mjs"],
  },
});
