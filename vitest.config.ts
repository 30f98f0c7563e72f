import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two shared cores: run test files one or two at a time so wasm worker pools do not fight.
    maxWorkers: 2,
  },
});
