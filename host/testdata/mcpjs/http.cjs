// Drives an agent's /mcp with the MCP TypeScript SDK's client over
// Streamable HTTP: lists the tools, asks twice in one session (the first
// time with a progress callback), lists and reads its sessions as
// resources, and prints one JSON line with what it got. With MCP_SEED (a
// hex Ed25519 seed) and MCP_TO (the agent's address) every HTTP request is
// signed as docs/mcp.md says: trust's X-Co headers over the method and
// "/mcp#sha256=<hex SHA-256 of the body>". A failure to connect is printed
// as {"error": ...}.
// Usage: node http.cjs URL
const crypto = require('crypto');
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');

function signingFetch(seedHex, to) {
  const key = crypto.createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]),
    format: 'der',
    type: 'pkcs8',
  });
  const pub = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32);
  const from = '0x' + pub.toString('hex');
  return async (url, init = {}) => {
    const body = init.body ? Buffer.from(init.body) : Buffer.alloc(0);
    const path = '/mcp#sha256=' + crypto.createHash('sha256').update(body).digest('hex');
    const timestamp = Math.floor(Date.now() / 1000);
    const nonce = crypto.randomBytes(12).toString('hex');
    const method = (init.method || 'GET').toUpperCase();
    // Canonical JSON: sorted keys, no spaces.
    const signed = JSON.stringify({ method, nonce, path, timestamp, to });
    const headers = new Headers(init.headers);
    headers.set('X-Co-From', from);
    headers.set('X-Co-To', to);
    headers.set('X-Co-Timestamp', String(timestamp));
    headers.set('X-Co-Nonce', nonce);
    headers.set('X-Co-Signature', crypto.sign(null, Buffer.from(signed), key).toString('hex'));
    return fetch(url, { ...init, headers });
  };
}

async function main() {
  const url = new URL(process.argv[2]);
  const opts = {};
  if (process.env.MCP_SEED) opts.fetch = signingFetch(process.env.MCP_SEED, process.env.MCP_TO);
  const client = new Client({ name: 'agenthost-mcpjs-http-test', version: '1.0.0' });
  try {
    await client.connect(new StreamableHTTPClientTransport(url, opts));
  } catch (e) {
    console.log(JSON.stringify({ error: String(e && e.message || e) }));
    return;
  }
  const { tools } = await client.listTools();
  const progress = [];
  const first = await client.callTool(
    { name: 'ask', arguments: { prompt: 'My name is Ada Lovelace' } },
    undefined,
    { onprogress: (p) => progress.push(p), timeout: 60000 },
  );
  const sid = first.structuredContent && first.structuredContent.session_id;
  const second = await client.callTool({ name: 'ask', arguments: { prompt: 'Who am I?', session_id: sid } });
  let resources, read;
  try {
    resources = (await client.listResources()).resources;
    read = (await client.readResource({ uri: 'agenthost://sessions/' + sid })).contents;
  } catch (e) {
    resources = { error: String(e && e.message || e) };
  }
  console.log(JSON.stringify({ tools, first, second, progress, resources, read }));
  await client.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
