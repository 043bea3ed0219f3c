// Flat ESLint config: typescript-eslint's recommended rules without type information, so a
// lint of the whole tree stays fast. Identifiers may be snake_case: src/uapi declares every
// struct and constant under its kernel name.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: {
        console: 'readonly',
        process: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setImmediate: 'readonly',
      },
    },
    rules: {
      camelcase: 'off',
      '@typescript-eslint/naming-convention': 'off',
      // Unused arguments are part of an interface's shape; mark them with a leading underscore.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      // Emulated hardware is full of bit twiddling on purpose.
      'no-bitwise': 'off',
      // `while (true)` loops that return from inside are the clearest form for walkers.
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
);
