// Vite (build and dev server) and Vitest for the React kit. The hook runs on the service's own client,
// streaming/dashboard/static/stream.js, imported as "websocket-streaming/stream": in your app, copy that file
// next to usePriceStream.js and change this alias (or the import) to point at it.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here("."),
  resolve: { alias: { "websocket-streaming/stream": here("../../../streaming/dashboard/static/stream.js") } },
  esbuild: { jsx: "automatic" },
  server: { fs: { allow: [here("../../..")] } },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.jsx"],
    testTimeout: 30000,
    hookTimeout: 30000,
    fileParallelism: false,
  },
});
