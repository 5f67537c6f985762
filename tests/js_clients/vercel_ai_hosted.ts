// Drives Parley's /v1/responses with the Vercel AI SDK's OpenAI provider (@ai-sdk/openai)
// and the tools the server runs: hosted MCP without approval (generateText and streamText),
// with approval (the tool-approval-request part, then a second call with the approval),
// file search over a vector store, and the code interpreter; after a turn with a hosted
// call, a second turn that sends the first back as the AI SDK does (item_references). Each
// run is reported on its own: one that throws gives its error, and the others still run.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, type ModelMessage, streamText } from "ai";

const [baseURL, apiKey, mcpURL, storeId, withCode] = process.argv.slice(2);
const parley = createOpenAI({ baseURL, apiKey });
const LABEL = "tests";

function echoTool(requireApproval: "always" | "never") {
  return parley.tools.mcp({
    serverLabel: LABEL,
    serverUrl: mcpURL,
    requireApproval,
    allowedTools: ["echo"],
  });
}

// What a step's parts hold, without the ids each run makes up.
function described(parts: ReadonlyArray<unknown>) {
  return parts.map((given) => {
    const part = given as Record<string, unknown>;
    switch (part.type) {
      case "tool-call":
        return { type: part.type, toolName: part.toolName, input: part.input };
      case "tool-result":
        return { type: part.type, toolName: part.toolName, output: part.output };
      case "tool-error":
        return { type: part.type, toolName: part.toolName, error: String(part.error) };
      case "tool-approval-request":
        return { type: part.type, approvalId: part.approvalId };
      case "text":
        return { type: part.type, text: part.text };
      case "source":
        return { type: part.type, sourceType: part.sourceType, title: part.title };
      default:
        return { type: part.type };
    }
  });
}

// A first turn, then a second one after it: the AI SDK sends the first turn's output back
// as item_references (its text, its hosted calls' results), which Parley must find.
type Call = Pick<Parameters<typeof generateText>[0], "tools" | "providerOptions">;

async function twoTurns(model: string, prompt: string, call: Call) {
  const messages: ModelMessage[] = [{ role: "user", content: prompt }];
  const asked = { model: parley.responses(model), ...call };
  const first = await generateText({ ...asked, messages });
  messages.push(...first.response.messages, { role: "user", content: "Thanks." });
  const second = await generateText({ ...asked, messages });
  return {
    content: described(first.content),
    text: first.text,
    again: described(second.content),
  };
}

async function mcpGenerate() {
  return twoTurns("fake/auto:2", "say it", { tools: { tests: echoTool("never") } });
}

async function mcpStream() {
  const result = streamText({
    model: parley.responses("fake/auto:2"),
    prompt: "say it",
    tools: { tests: echoTool("never") },
  });
  const parts: string[] = [];
  const errors: string[] = [];
  for await (const part of result.fullStream) {
    parts.push(part.type);
    if (part.type === "error") errors.push(String(part.error));
  }
  return {
    parts,
    errors,
    content: described(await result.content),
    text: await result.text,
  };
}

// The approval flow: the first call ends with a tool-approval-request; the second sends
// the history, the approval after it (an item_reference to the request, then the
// mcp_approval_response), and gets the call's result and the answer. The approval is
// marked providerExecuted, as the AI SDK's convertToModelMessages marks a hosted tool's:
// without it the AI SDK does not send it.
async function mcpApproved(streamed: boolean) {
  const tools = { tests: echoTool("always") };
  const model = parley.responses("fake/auto:2");
  const messages: ModelMessage[] = [{ role: "user", content: "say it" }];
  const asked = await generateText({ model, messages, tools });
  const request = asked.content.find((part) => part.type === "tool-approval-request");
  if (request === undefined || request.type !== "tool-approval-request") {
    return { asked: described(asked.content) };
  }
  messages.push(...asked.response.messages, {
    role: "tool",
    content: [
      {
        type: "tool-approval-response",
        approvalId: request.approvalId,
        approved: true,
        providerExecuted: true,
      },
    ],
  });
  let content: unknown;
  let text: string;
  if (streamed) {
    const result = streamText({ model, messages, tools });
    for await (const part of result.fullStream) {
      if (part.type === "error") throw part.error;
    }
    content = described(await result.content);
    text = await result.text;
  } else {
    const result = await generateText({ model, messages, tools });
    content = described(result.content);
    text = result.text;
  }
  return {
    asked: described(asked.content),
    approvalId: request.approvalId,
    answered: content,
    text,
  };
}

async function fileSearch() {
  return twoTurns("demo/parley", "file_search how do owls hunt?", {
    tools: { file_search: parley.tools.fileSearch({ vectorStoreIds: [storeId] }) },
    providerOptions: { openai: { include: ["file_search_call.results"] } },
  });
}

async function codeInterpreter() {
  return twoTurns("demo/parley", "python print(6 * 7)", {
    tools: { code_interpreter: parley.tools.codeInterpreter({}) },
  });
}

async function outcome(run: () => Promise<unknown>) {
  try {
    return { ok: await run() };
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    return { error: String(error), cause: cause === undefined ? undefined : String(cause) };
  }
}

const runs: Record<string, () => Promise<unknown>> = {
  mcp_generate: mcpGenerate,
  mcp_stream: mcpStream,
  mcp_approved: () => mcpApproved(false),
  mcp_approved_streamed: () => mcpApproved(true),
  file_search: fileSearch,
};
if (withCode === "yes") runs.code_interpreter = codeInterpreter;
const report: Record<string, unknown> = {};
for (const [name, run] of Object.entries(runs)) report[name] = await outcome(run);
console.log(JSON.stringify(report));
