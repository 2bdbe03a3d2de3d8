#!/usr/bin/env node
// The `paycli` executable (package.json "bin"): runs the TypeScript entry point through tsx.
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
