// Streams through Parley's /v1/chat/completions with the Vercel AI SDK's OpenAI-compatible
// provider: text, then a tool the SDK runs itself before the model's next step answers.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { jsonSchema, stepCountIs, streamText, tool } from "ai";

const [baseURL, apiKey, textModel, toolModel] = process.argv.slice(2);
const parley = createOpenAICompatible({ name: "parley", baseURL, apiKey, includeUsage: true });

async function text() {
  const result = streamText({ model: parley.chatModel(textModel), prompt: "Say something." });
  const deltas: string[] = [];
  for await (const delta of result.textStream) deltas.push(delta);
  const usage = await result.usage;
  return { deltas, finishReason: await result.finishReason, outputTokens: usage.outputTokens };
}

async function withTool() {
  const calls: unknown[] = [];
  const result = streamText({
    model: parley.chatModel(toolModel),
    prompt: "What is the weather in Paris?",
    stopWhen: stepCountIs(2),
    tools: {
      get_weather: tool({
        description: "The weather in a city.",
        inputSchema: jsonSchema<{ city: string }>({
          type: "object",
          properties: { city: { type: "string" } },
          required: ["city"],
        }),
        execute: async (input: { city: string }) => {
          calls.push(input);
          return "22 C and sunny";
        },
      }),
    },
  });
  const parts: string[] = [];
  for await (const part of result.fullStream) parts.push(part.type);
  const steps = await result.steps;
  return { calls, parts, text: await result.text, steps: steps.length };
}

console.log(JSON.stringify({ text: await text(), tool: await withTool() }));
