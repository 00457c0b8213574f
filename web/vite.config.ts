import { defineConfig } from "vite";

// The build is committed (web/dist) and embedded in the tessera binary, and
// .ci/run checks a rebuild gives the same bytes: no source maps, no
// timestamps, hashed asset names from content only.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
