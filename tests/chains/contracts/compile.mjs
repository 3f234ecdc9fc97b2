// Compiles TestToken.sol with the solc pinned in tools/package.json and writes TestToken.json
// (ABI and creation bytecode) beside it. The artifact is committed, so the tests need no
// compiler: run this only after changing the contract.
//
//   npm ci --prefix tools && node tests/chains/contracts/compile.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = (name) => fileURLToPath(new URL(name, import.meta.url));
// Resolve solc from tools/node_modules, whatever the current directory is.
const require = createRequire(new URL("../../../tools/package.json", import.meta.url));
const solc = require("solc");

const SOURCE = "TestToken.sol";
const CONTRACT = "TestToken";

const input = {
  language: "Solidity",
  // A bare file name (not a path) keeps the bytecode's metadata free of local paths.
  sources: { [SOURCE]: { content: readFileSync(here(SOURCE), "utf8") } },
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { [SOURCE]: { [CONTRACT]: ["abi", "evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const problems = output.errors ?? [];
for (const problem of problems) {
  console.error(problem.formattedMessage ?? problem.message);
}
if (problems.some((problem) => problem.severity === "error")) {
  process.exit(1);
}

const contract = output.contracts[SOURCE][CONTRACT];
const artifact = {
  contractName: CONTRACT,
  compiler: `solc ${solc.version()}`,
  abi: contract.abi,
  bytecode: `0x${contract.evm.bytecode.object}`,
};
writeFileSync(here(`${CONTRACT}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
console.log(`wrote ${CONTRACT}.json (${contract.evm.bytecode.object.length / 2} bytes of bytecode)`);
