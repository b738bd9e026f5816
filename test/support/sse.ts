/** One Server-Sent Event as a test reads it. */
export interface SseEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

/**
 * Reads a `text/event-stream` body and hands each event (a block with `data`) to `onEvent`;
 * comments (keep-alives) are skipped. Ends when the body does; an abort ends it quietly.
 */
export async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (event: SseEvent) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((line) => !line.startsWith(':') && line.includes(': '))
            .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
        );
        if (fields.data) onEvent({ id: fields.id!, event: fields.event!, data: JSON.parse(fields.data) as Record<string, unknown> });
      }
    }
  } catch (error) {
    if (!(error instanceof Error && error.name === 'AbortError')) throw error;
  }
}
