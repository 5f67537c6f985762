// OpenAI's Node SDK on Parley's Assistants API: what the AssistantStream helper's events
// (toolCallCreated, toolCallDelta, toolCallDone, messageCreated, textCreated, textDelta,
// textDone, imageFileDone, messageDone) hand an application, as OpenAI's quickstart
// listens to them. Each is recorded as it fires, as JSON (the helper's snapshots change
// as later deltas come).
//
//   bun run openai_node_assistants.ts BASE_URL API_KEY function MODEL   a function call,
//       its output sent with submitToolOutputsStream, then the answer
//   bun run openai_node_assistants.ts BASE_URL API_KEY code MODEL CODE  a code interpreter
//       call, then the answer showing its figure
import OpenAI from "openai";
import type { AssistantStream } from "openai/lib/AssistantStream";

const [baseURL, apiKey, scenario, model, code] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

type Seen = [string, unknown][];

const copy = (value: unknown) => JSON.parse(JSON.stringify(value));

function listen(stream: AssistantStream, seen: Seen): AssistantStream {
  return stream
    .on("toolCallCreated", (call) => seen.push(["toolCallCreated", copy(call)]))
    .on("toolCallDelta", (delta) => seen.push(["toolCallDelta", copy(delta)]))
    .on("toolCallDone", (call) => seen.push(["toolCallDone", copy(call)]))
    .on("messageCreated", (message) => seen.push(["messageCreated", message.id]))
    .on("textCreated", (text) => seen.push(["textCreated", text.value]))
    .on("textDelta", (delta) => seen.push(["textDelta", delta.value ?? ""]))
    .on("textDone", (text) => seen.push(["textDone", text.value]))
    .on("imageFileDone", (image) => seen.push(["imageFileDone", image.file_id]))
    .on("messageDone", (message) =>
      seen.push(["messageDone", message.content.map((part) => part.type)]),
    );
}

async function functionCall() {
  const weather = {
    type: "function" as const,
    function: {
      name: "get_weather",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      },
    },
  };
  const assistant = await client.beta.assistants.create({ model, tools: [weather] });
  const thread = await client.beta.threads.create({
    messages: [{ role: "user", content: "Paris?" }],
  });
  const asked: Seen = [];
  const run = await listen(
    client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }),
    asked,
  ).finalRun();
  const calls = run.required_action?.submit_tool_outputs.tool_calls ?? [];
  const answered: Seen = [];
  const final = await listen(
    client.beta.threads.runs.submitToolOutputsStream(run.id, {
      thread_id: thread.id,
      tool_outputs: calls.map((call) => ({ tool_call_id: call.id, output: "22 C" })),
    }),
    answered,
  ).finalRun();
  return { asked, answered, status: final.status, required: calls.map((call) => call.id) };
}

async function codeCall() {
  const assistant = await client.beta.assistants.create({
    model,
    tools: [{ type: "code_interpreter" }],
  });
  const thread = await client.beta.threads.create({
    messages: [{ role: "user", content: code }],
  });
  const seen: Seen = [];
  const final = await listen(
    client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }),
    seen,
  ).finalRun();
  const listed = await client.beta.threads.messages.list(thread.id, { order: "desc" });
  return { seen, status: final.status, answer: copy(listed.data[0].content) };
}

(scenario === "code" ? codeCall() : functionCall()).then(
  (report) => console.log(JSON.stringify(report)),
  (error) => console.log(JSON.stringify({ error: String(error) })),
);
