export * from './errors.js';
export * as libc from './libc.js';
export * from './children.js';
