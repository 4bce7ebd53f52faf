// The openai Node SDK's stream helpers against a guardproxy URL: prints what they assembled as JSON.
// Usage: node stream_helpers.mjs <base-url>. Any throw (e.g. "missing role for choice 0") exits 1.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "k", maxRetries: 0, timeout: 10000 });
const tools = ["read_inbox", "send_email"].map((name) => ({
  type: "function",
  function: { name, parameters: { type: "object", properties: {} } },
}));
const messages = [{ role: "user", content: "hi" }];

const stream = client.beta.chat.completions.stream({ model: "m", messages, tools });
const completion = await stream.finalChatCompletion();

const ran = [];
const runner = client.beta.chat.completions.runTools({
  model: "m", messages, stream: true, max_tokens: 50,
  tools: tools.map((t) => ({
    type: "function",
    function: { ...t.function, function: () => { ran.push(t.function.name); return "done"; }, parse: JSON.parse },
  })),
});
const final = await runner.finalChatCompletion();

console.log(JSON.stringify({
  stream: completion.choices[0].message,
  runTools: final.choices[0].message,
  ran,
}));
