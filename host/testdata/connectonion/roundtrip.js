// The reference TypeScript client (npm "connectonion") talking to an
// agenthost agent exactly as its README shows, with only the URL changed:
// directly (directUrl) or through a relay (relayUrl). Two inputs on one
// connection: the second must remember the first. Prints one JSON line.
//
//   NODE_PATH=<dir>/node_modules node roundtrip.js direct http://127.0.0.1:PORT 0xADDRESS
//   NODE_PATH=<dir>/node_modules node roundtrip.js relay ws://127.0.0.1:PORT 0xADDRESS
const { connect } = require('connectonion');

const [mode, url, address] = process.argv.slice(2);

(async () => {
  const options = mode === 'direct' ? { directUrl: url } : { relayUrl: url };
  const agent = connect(address, options);
  const first = await agent.input('My name is John', { timeoutMs: 30000 });
  const second = await agent.input('What is my name?', { timeoutMs: 30000 });
  const session = agent.currentSession && agent.currentSession.session_id;
  console.log(JSON.stringify({ first: first.text, second: second.text, session }));
  process.exit(0);
})().catch((err) => {
  console.error(String((err && err.stack) || err));
  process.exit(1);
});
