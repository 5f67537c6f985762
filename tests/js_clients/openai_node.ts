// OpenAI's own Node SDK on Parley's /v1/responses: the responses.stream() helper, which
// builds the response from the events and throws on an event it does not know, over a
// model that streams its reasoning.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

async function main() {
  const types: string[] = [];
  let reasoning = "";
  const stream = client.responses.stream({ model, input: "Think, then answer." });
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === "response.reasoning_text.delta") reasoning += event.delta;
  }
  const final = await stream.finalResponse();
  const parts = final.output.flatMap((item) =>
    item.type === "reasoning" ? (item.content ?? []).map((c) => c.text) : [],
  );
  return { types, reasoning, finalReasoning: parts.join(""), text: final.output_text };
}

main().then(
  (report) => console.log(JSON.stringify(report)),
  (error) => console.log(JSON.stringify({ error: String(error) })),
);
