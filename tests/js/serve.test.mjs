// serve.test.mjs - drives a running `moestream serve` (started by
// tests/test_server.c on the tinymoe fixture, with --api-key and the Qwen3
// chat template) with the real client libraries agents use: `openai` and the
// Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`). Environment:
// MOESTREAM_URL (http://127.0.0.1:PORT/v1), MOESTREAM_API_KEY, MOESTREAM_MODEL.
// tinymoe is a small base model, not a chat model: answers are checked for
// shape and determinism (temperature 0), not for sense.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, streamText, tool } from 'ai';
import { z } from 'zod';

const baseURL = process.env.MOESTREAM_URL;
const apiKey = process.env.MOESTREAM_API_KEY;
const model = process.env.MOESTREAM_MODEL;
assert.ok(baseURL && apiKey && model, 'MOESTREAM_URL, MOESTREAM_API_KEY and MOESTREAM_MODEL must be set');

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const messages = [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', content: 'Write a Python function that adds two numbers.' },
];

test('openai: models.list names the served model', async () => {
  const page = await client.models.list();
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].id, model);
  assert.equal(page.data[0].object, 'model');
});

test('openai: chat non-streaming and streaming agree at temperature 0', async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  const m = r.choices[0].message;
  assert.equal(m.role, 'assistant');
  assert.equal(typeof m.content, 'string');
  assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 12);
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '', role = null, finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    assert.equal(c.object, 'chat.completion.chunk');
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.delta.role) role = ch.delta.role;
      if (ch.delta.content) text += ch.delta.content;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.ok(chunks >= 3);
  assert.equal(role, 'assistant');
  assert.equal(finish, r.choices[0].finish_reason);
  assert.equal(text, m.content, 'streamed text equals the non-streamed text');
  assert.ok(usage, 'include_usage gives a usage chunk');
  assert.equal(usage.completion_tokens, r.usage.completion_tokens);
  // the follow-up shares the conversation prefix: the slot's tokens are reused
  assert.ok(usage.prompt_tokens_details.cached_tokens > 0, 'prompt prefix reused');
});

test('openai: completions non-streaming and streaming agree at temperature 0', async () => {
  const prompt = 'def fibonacci(n):';
  const r = await client.completions.create({ model, prompt, max_tokens: 10, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  assert.equal(r.usage.completion_tokens, 10);
  const s = await client.completions.create({ model, prompt, max_tokens: 10, temperature: 0, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('openai: stop strings end the text before the match', async () => {
  const prompt = 'def fibonacci(n):';
  const full = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0 });
  const t = full.choices[0].text;
  const stop = t.trim().slice(0, 3);
  assert.ok(stop.length > 0);
  const r = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0, stop: [stop] });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].text, t.slice(0, t.indexOf(stop)));
});

test('openai: errors are OpenAI-shaped', async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: [], max_tokens: 4 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /messages/.test(e.message),
  );
  const bad = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});

const sent = [];
const provider = createOpenAICompatible({
  name: 'moestream',
  baseURL,
  apiKey,
  // records what the SDK sends, to check how the server renders it
  fetch: async (url, init) => {
    if (init?.body) sent.push(JSON.parse(init.body));
    return fetch(url, init);
  },
});

test('ai: generateText and streamText agree at temperature 0', async () => {
  const g = await generateText({ model: provider(model), messages, maxTokens: 10, temperature: 0 });
  assert.equal(typeof g.text, 'string');
  assert.ok(g.usage.completionTokens > 0 && g.usage.completionTokens <= 10);
  const s = streamText({ model: provider(model), messages, maxTokens: 10, temperature: 0 });
  let text = '';
  for await (const d of s.textStream) text += d;
  assert.equal(text, g.text);
  assert.ok(['length', 'stop'].includes(await s.finishReason));
});

test('ai: a tool definition and a tool-result turn round-trip through the chat template', async () => {
  let executed = 0;
  const tools = {
    get_weather: tool({
      description: 'Current weather of a city',
      parameters: z.object({ city: z.string().describe('the city') }),
      execute: async ({ city }) => { executed++; return `sunny in ${city}`; },
    }),
  };
  sent.length = 0;
  const r = await generateText({
    model: provider(model),
    tools,
    maxTokens: 8,
    temperature: 0,
    messages: [
      { role: 'user', content: 'What is the weather in Paris?' },
      { role: 'assistant', content: [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'get_weather', args: { city: 'Paris' } }] },
      { role: 'tool', content: [{ type: 'tool-result', toolCallId: 'call_1', toolName: 'get_weather', result: 'sunny, 21 C' }] },
    ],
  });
  assert.equal(typeof r.text, 'string');
  assert.ok(['length', 'stop', 'tool-calls'].includes(r.finishReason));
  // tinymoe never emits a well-formed <tool_call>, so execute is not expected to run
  assert.equal(executed, r.toolCalls.length);
  // what the SDK sent: the tool schema and the tool turn, OpenAI-shaped
  assert.equal(sent.length, 1);
  const body = sent[0];
  assert.equal(body.tools[0].function.name, 'get_weather');
  assert.equal(body.messages[1].tool_calls[0].function.name, 'get_weather');
  assert.equal(body.messages[2].role, 'tool');
  // the server's rendering of that same request with the model's template
  const res = await fetch(baseURL.replace(/\/v1$/, '') + '/apply-template', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  const { prompt } = await res.json();
  assert.match(prompt, /<tools>[\s\S]*"name": ?"get_weather"[\s\S]*<\/tools>/, 'the tool schema is in the system turn');
  assert.match(prompt, /<tool_call>[\s\S]*get_weather[\s\S]*Paris[\s\S]*<\/tool_call>/, 'the earlier call is rendered');
  assert.match(prompt, /<tool_response>\s*"?sunny, 21 C"?\s*<\/tool_response>/, 'the tool result is rendered');
  assert.match(prompt, /<\|im_start\|>assistant\n$/, 'ends with the generation prompt');
});
