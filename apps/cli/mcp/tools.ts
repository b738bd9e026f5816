import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Unreachable } from '../errors.js';

/** What an import needs of one MCP tool: its name (an action) and its input schema (the action's params schema). */
export interface McpTool {
  name: string;
  inputSchema: Record<string, unknown>;
}

/** Enough pages for any real server; a server that keeps answering a cursor is not listing tools. */
const MAX_PAGES = 100;

/**
 * The tools an MCP server offers (`tools/list`, every page), asked over Streamable HTTP with the
 * official SDK client: what any MCP client would see.
 */
export async function listTools(url: URL, version: string): Promise<McpTool[]> {
  const client = new Client({ name: 'tollgate-cli', version });
  const transport = new StreamableHTTPClientTransport(url);
  try {
    await client.connect(transport);
    const tools: McpTool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const answer = await client.listTools(cursor === undefined ? {} : { cursor });
      for (const tool of answer.tools) tools.push({ name: tool.name, inputSchema: tool.inputSchema as Record<string, unknown> });
      cursor = answer.nextCursor;
      if (cursor === undefined) return tools;
    }
    throw new Unreachable(`the MCP server at ${url.href} lists more than ${MAX_PAGES} pages of tools`);
  } catch (error) {
    if (error instanceof Unreachable) throw error;
    throw new Unreachable(
      `cannot list the tools of the MCP server at ${url.href}: ${error instanceof Error ? error.message : String(error)}`,
    );
  } finally {
    await client.close().catch(() => {});
  }
}
