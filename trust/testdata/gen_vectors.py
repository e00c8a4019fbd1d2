#!/usr/bin/env python3
"""Regenerates canonical_vectors.json: the canonical forms of each input as
real Python (json.dumps) and real JavaScript (node, JSON.stringify) write them,
and Ed25519 signatures over each form made by node's crypto module.

    python3 trust/testdata/gen_vectors.py > trust/testdata/canonical_vectors.json
"""
import json
import random
import struct
import subprocess

SEED = bytes(range(32))  # test key: 000102…1f

inputs = [
    ("empty object", '{}'),
    ("flat ascii", '{"prompt":"hello","to":"0xabc","timestamp":1700000000}'),
    ("unsorted nested", '{"z":{"b":1,"a":[{"y":2,"x":1}]},"a":null,"m":[true,false]}'),
    ("whitespace", ' { "b" : [ 1 , 2 ] ,\n\t"a" : { } , "c" : [ ] } '),
    ("html characters", '{"prompt":"<script>alert(\'x\')</script> & <b>","k<>&":"a&b"}'),
    ("non-ascii latin", '{"prompt":"café naïve façade","name":"Zoë"}'),
    ("cjk", '{"prompt":"翻译成中文：你好，世界","lang":"中文"}'),
    ("emoji astral", '{"prompt":"hi 😀👍🏽 🇫🇷","skin":"\\ud83d\\udc4d"}'),
    ("escaped non-ascii in input", '{"prompt":"caf\\u00e9 \\u4f60\\u597d \\ud83d\\ude00"}'),
    ("control characters", '{"s":"tab\\tnl\\ncr\\rbs\\bff\\fnul\\u0000us\\u001fdel\\u007f"}'),
    ("quotes and backslashes", '{"s":"say \\"hi\\" \\\\ path\\/to"}'),
    ("line separators", '{"s":"a\\u2028b\\u2029c\\u00a0d\\ufeffe"}'),
    ("lone surrogates", '{"hi":"\\ud800x","lo":"\\udfff","pair":"\\ud834\\udd1e"}'),
    ("non-ascii keys", '{"é":1,"z":2,"a":3,"中":4,"😀":5,"ｚ":6}'),
    ("astral vs bmp key order", '{"\\uff5a":1,"\\ud83d\\ude00":2,"\\ue000":3}'),
    ("integer-like keys", '{"b":1,"10":2,"2":3,"a":4,"01":5,"-1":6,"4294967295":7,"4294967294":8}'),
    ("integers", '{"a":0,"b":-0,"c":123456789,"d":-42,"e":9007199254740993,"f":12345678901234567890123}'),
    ("floats", '{"a":1.0,"b":-0.0,"c":0.1,"d":1.5e-5,"e":1e16,"f":1e15,"g":123.456,"h":1E400,"i":-1e-400,"j":0.0001,"k":0.00001,"l":1e21,"m":1e22,"n":5e-324,"o":1.7976931348623157e308,"p":2.5E+3,"q":100.0,"r":1234567890123456789.0,"s":0.000001,"t":1e-7}'),
    ("arrays", '{"a":[],"b":[[]],"c":[1,"two",{"d":3,"c":4},[null]],"d":[{}]}'),
    ("deep nesting", '{"a":{"b":{"c":{"d":{"e":{"f":{"g":"h"}}}}}}}'),
    ("top-level array", '[3,{"b":1,"a":2},"x"]'),
    ("top-level string", '"caf\\u00e9"'),
    ("announce", '{"type":"ANNOUNCE","address":"0x03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8","timestamp":1700000000,"summary":"I translate text — 100+ languages","endpoints":["http://10.0.0.2:8000","ws://10.0.0.2:8000/ws"],"relay":null,"profile":{"alias":"translator","tools":["translate"],"model":"offline/demo"}}'),
]

rng = random.Random(4)
alphabet = ['a', 'Z', ' ', '"', '\\', '/', '<', '>', '&', '\n', '\t', '\x00', '\x1f', '\x7f', 'é', 'ß', '€', '中',
            '\u2028', '\ufeff', '\uffff', '😀', '\U0001d11e', '\U0010ffff', '\ud800', '\udc00']

use_surrogates = False

def rand_str(n):
    letters = alphabet if use_surrogates else alphabet[:-2]
    return ''.join(rng.choice(letters) for _ in range(n))

def rand_number():
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randrange(-10**6, 10**6)
    if kind == 1:
        return rng.randrange(-10**25, 10**25)
    if kind == 2:
        return struct.unpack('<d', struct.pack('<Q', rng.getrandbits(64)))[0]
    if kind == 3:
        return rng.uniform(-1000, 1000)
    return float(rng.choice(['1e-5', '1e-4', '123e15', '1e16', '9.999999999999999e15', '1e21', '1e-6', '1e-7']))

def rand_value(depth):
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rand_str(rng.randrange(6))
    if kind == 1:
        v = rand_number()
        return v if v == v and abs(v) != float('inf') else 0
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rand_str(rng.randrange(3))
    if kind in (4, 5):
        return {rand_str(rng.randrange(1, 4)): rand_value(depth + 1) for _ in range(rng.randrange(5))}
    return [rand_value(depth + 1) for _ in range(rng.randrange(4))]

for i in range(40):
    use_surrogates = i % 4 == 3
    v = {rand_str(rng.randrange(1, 4)): rand_value(1) for _ in range(rng.randrange(1, 6))}
    # Escaped input so lone surrogates survive; the key order is random.
    inputs.append((f"random {i}", json.dumps(v)))

def py_forms(text):
    v = json.loads(text)
    out = {"python": json.dumps(v, sort_keys=True, separators=(',', ':'))}
    try:
        out["python_utf8"] = json.dumps(v, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8').decode('utf-8')
    except UnicodeEncodeError:
        out["python_utf8"] = None  # lone surrogates: Python cannot produce these bytes
    out["relay"] = json.dumps(v, sort_keys=True)
    return out

JS = r'''
const crypto = require('crypto');
const seed = Buffer.from(process.argv[1], 'hex');
const key = crypto.createPrivateKey({key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8'});
const pub = crypto.createPublicKey(key).export({format: 'der', type: 'spki'}).subarray(12);
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {address: '0x' + pub.toString('hex'), cases: []};
const sign = s => s === null ? null : crypto.sign(null, Buffer.from(s, 'utf8'), key).toString('hex');
for (const c of cases) {
  const v = JSON.parse(c.input);
  let js;
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const sorted = {};
    for (const k of Object.keys(v).sort()) sorted[k] = v[k];
    js = JSON.stringify(sorted);
  } else {
    js = JSON.stringify(v);
  }
  c.javascript = js;
  c.signatures = {python: sign(c.python), python_utf8: sign(c.python_utf8), javascript: sign(js), relay: sign(c.relay)};
  out.cases.push(c);
}
process.stdout.write(JSON.stringify(out, null, 1));
'''

cases = []
for name, text in inputs:
    c = {"name": name, "input": text}
    c.update(py_forms(text))
    cases.append(c)
res = subprocess.run(["node", "-e", JS, SEED.hex()], input=json.dumps(cases).encode(), capture_output=True, check=True)
data = json.loads(res.stdout)
data["seed"] = SEED.hex()
print(json.dumps(data, indent=1, ensure_ascii=True))
