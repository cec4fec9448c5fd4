// node encrypt.mjs PUBLIC_KEY_PEM ALG ENC KID < PLAINTEXT: writes a compact JWE.
import { readFileSync } from 'node:fs';
import { importSPKI, CompactEncrypt } from 'jose';

const [pemFile, alg, enc, kid] = process.argv.slice(2);
const key = await importSPKI(readFileSync(pemFile, 'utf8'), alg);
const header = { alg, enc };
if (kid) header.kid = kid;
const jwe = await new CompactEncrypt(readFileSync(0)).setProtectedHeader(header).encrypt(key);
process.stdout.write(jwe + '\n');
