// Moved to src/formats/x509.ts (a backup verifier below the hsm layer needs it); kept for imports.
export * from '../formats/x509.js';
