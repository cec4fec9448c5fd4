// node decrypt.mjs PRIVATE_KEY_PEM < JWE: writes the plaintext to stdout.
// The JWE may be compact or flattened JSON, with or without jwe:.
import { readFileSync } from 'node:fs';
import { importPKCS8, compactDecrypt, flattenedDecrypt } from 'jose';

const pem = readFileSync(process.argv[2], 'utf8');
let jwe = readFileSync(0, 'utf8').trim().replace(/^jwe:/, '');
const alg = JSON.parse(Buffer.from((jwe.startsWith('{') ? JSON.parse(jwe).protected : jwe.split('.')[0]), 'base64url')).alg;
const key = await importPKCS8(pem, alg);
const opts = { keyManagementAlgorithms: [alg] };
const { plaintext, protectedHeader } = jwe.startsWith('{')
  ? await flattenedDecrypt(JSON.parse(jwe), key, opts)
  : await compactDecrypt(jwe, key, opts);
process.stderr.write(`kid=${protectedHeader.kid ?? ''} alg=${protectedHeader.alg} enc=${protectedHeader.enc}\n`);
process.stdout.write(plaintext);
