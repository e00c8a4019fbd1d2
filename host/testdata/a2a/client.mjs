// Drives an agenthost agent with the A2A JavaScript SDK (@a2a-js/sdk):
//   node client.mjs roundtrip URL   send, stream, resubscribe, cancel
//   AGENTHOST_TOKEN=<token> node client.mjs platform URL/
//                                   a platform agent (URL: …/api/v1/agents/{id}/)
//   A2A_SEED=<hex> node client.mjs signed URL
//                                   with a fetch that signs as the identity
//                                   of that seed, and once without
// Prints one JSON line with what it saw; host/a2a_sdkjs_test.go checks it.
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } from '@a2a-js/sdk/client';

const [mode, url] = process.argv.slice(2);

function message(text, extra = {}) {
  return { kind: 'message', role: 'user', messageId: randomUUID(), parts: [{ kind: 'text', text }], ...extra };
}

function resultText(task) {
  return (task.artifacts ?? []).flatMap((a) => a.parts).map((p) => p.text ?? '').join('');
}

// signingFetch signs each POST with the A2A signing extension of
// docs/a2a.md: the Ed25519 key whose 32-byte seed is seedHex (an
// agenthost identity), the envelope in X-Co-A2A-Envelope.
function signingFetch(seedHex, agentAddress) {
  const privateKey = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]),
    format: 'der', type: 'pkcs8',
  });
  const raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x, 'base64url');
  const from = '0x' + raw.toString('hex');
  const fetchSigned = async (input, init = {}) => {
    if ((init.method ?? 'GET').toUpperCase() !== 'POST') return fetch(input, init);
    const body = typeof init.body === 'string' ? init.body : new TextDecoder().decode(init.body);
    // Keys in sorted order: JSON.stringify then gives the canonical form.
    const payload = {
      a2a_body: createHash('sha256').update(body, 'utf8').digest('hex'),
      nonce: randomBytes(12).toString('hex'),
      timestamp: Math.floor(Date.now() / 1000),
      to: agentAddress,
    };
    const signature = sign(null, Buffer.from(JSON.stringify(payload), 'utf8'), privateKey).toString('hex');
    const headers = new Headers(init.headers);
    headers.set('X-Co-A2A-Envelope', JSON.stringify({ payload, from, signature }));
    headers.append('X-A2A-Extensions', 'https://github.com/agenthost/agenthost/blob/main/docs/a2a.md#signed-requests');
    return fetch(input, { ...init, body, headers });
  };
  return { fetchSigned, from };
}

async function roundtrip(client) {
  const out = {};
  const card = await client.getAgentCard();
  out.card = { name: card.name, url: card.url, streaming: card.capabilities.streaming };

  // message/send, blocking.
  const t1 = await client.sendMessage({ message: message('my name is Ada') });
  out.send = { state: t1.status.state, contextId: t1.contextId, text: resultText(t1) };

  // message/stream in the same context.
  const kinds = [];
  let last;
  let artifact = '';
  for await (const ev of client.sendMessageStream({ message: message('what is my name?', { contextId: t1.contextId }) })) {
    kinds.push(ev.kind);
    if (ev.kind === 'artifact-update') artifact += ev.artifact.parts.map((p) => p.text ?? '').join('');
    last = ev;
  }
  out.stream = { kinds: [...new Set(kinds)], final: last.final, state: last.status.state, text: artifact };

  // A non-blocking send, then tasks/resubscribe to its end.
  const t3 = await client.sendMessage({ message: message('tell me about yourself'), configuration: { blocking: false } });
  let resub;
  for await (const ev of client.resubscribeTask({ id: t3.id })) resub = ev;
  out.resubscribe = { started: t3.status.state, state: resub.status?.state, final: resub.final };

  // tasks/cancel of a running task; tasks/get sees it canceled.
  const t4 = await client.sendMessage({ message: message('tell me a long story'), configuration: { blocking: false } });
  const c = await client.cancelTask({ id: t4.id });
  const g = await client.getTask({ id: t4.id });
  out.cancel = { started: t4.status.state, state: c.status.state, get: g.status.state };
  return out;
}

const plain = new ClientFactory();
if (mode === 'roundtrip') {
  const client = await plain.createFromUrl(url);
  console.log(JSON.stringify(await roundtrip(client)));
} else if (mode === 'signed') {
  const out = {};
  const card = await (await fetch(url + '/.well-known/agent-card.json')).json();
  const ext = card.capabilities.extensions.find((e) => e.uri.endsWith('#signed-requests'));
  out.required = ext.required;
  try {
    const anon = await plain.createFromUrl(url);
    await anon.sendMessage({ message: message('hello') });
    out.anonymous = 'admitted';
  } catch (e) {
    out.anonymous = String(e.message ?? e);
  }
  const { fetchSigned, from } = signingFetch(process.env.A2A_SEED, ext.params.address);
  out.from = from;
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: fetchSigned })],
  }));
  const client = await factory.createFromUrl(url);
  const t = await client.sendMessage({ message: message('my name is Ada') });
  out.signed = { state: t.status.state, contextId: t.contextId, text: resultText(t) };
  console.log(JSON.stringify(out));
} else if (mode === 'platform') {
  // A platform agent: URL is .../api/v1/agents/{agentId}/ (the trailing
  // slash keeps the id when the SDK resolves the card's path), the token in
  // AGENTHOST_TOKEN.
  const token = process.env.AGENTHOST_TOKEN;
  const authFetch = (u, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return fetch(u, { ...init, headers });
  };
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: authFetch })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl: authFetch }),
  }));
  const client = await factory.createFromUrl(url);
  const t = await client.sendMessage({ message: message('my name is Ada') });
  const kinds = [];
  let last;
  for await (const ev of client.sendMessageStream({ message: message('what is my name?', { contextId: t.contextId }) })) {
    kinds.push(ev.kind);
    last = ev;
  }
  const g = await client.getTask({ id: t.id });
  console.log(JSON.stringify({ send: t.status.state, contextId: t.contextId, text: resultText(t), stream: last.status.state, final: last.final, get: g.status.state }));
} else {
  console.error('usage: node client.mjs roundtrip|signed URL');
  process.exit(2);
}
