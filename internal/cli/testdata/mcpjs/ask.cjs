// Drives `agenthost mcp` with the MCP TypeScript SDK's client over stdio:
// lists the tools, asks twice in one session (the first time with a
// progress callback) and prints one JSON line with what it got.
// Usage: node ask.cjs COMMAND ARGS...
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');

async function main() {
  const [command, ...args] = process.argv.slice(2);
  const transport = new StdioClientTransport({ command, args, env: { ...process.env }, stderr: 'inherit' });
  const client = new Client({ name: 'agenthost-mcpjs-test', version: '1.0.0' });
  await client.connect(transport);
  const { tools } = await client.listTools();
  const progress = [];
  const first = await client.callTool(
    { name: 'ask', arguments: { prompt: 'My name is Ada Lovelace' } },
    undefined,
    { onprogress: (p) => progress.push(p), timeout: 60000 },
  );
  const sid = first.structuredContent && first.structuredContent.session_id;
  const second = await client.callTool({ name: 'ask', arguments: { prompt: 'Who am I?', session_id: sid } });
  const empty = await client.callTool({ name: 'ask', arguments: { prompt: '' } });
  console.log(JSON.stringify({ tools, first, second, empty, progress }));
  await client.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
