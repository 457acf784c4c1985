// Bundles the SDK's ESM `lib/` (extensionless imports Node cannot load) into one CJS file.
const esbuild = require("esbuild");
const path = require("path");
esbuild.buildSync({
  entryPoints: [require.resolve("wukongimjssdk/lib/sdk.js")],
  bundle: true,
  platform: "node",
  format: "cjs",
  outfile: path.join(__dirname, "dist", "sdk.cjs"),
  logLevel: "warning",
});
