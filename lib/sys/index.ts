export * from './errors.js';
export * as libc from './libc.js';
