import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorCode } from '@ferry/contracts';
import { type Logger, newId } from '@ferry/platform';
import { problemBody } from './problem.js';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

function codeOf(err: NodeJS.ErrnoException): { code: ErrorCode; detail: string } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { code: 'headers_too_large', detail: 'the request headers exceed the server limit (16 KiB)' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'request_timeout', detail: 'the request was not received completely in time' };
    default:
      return { code: 'bad_request', detail: 'the HTTP request is malformed' };
  }
}

/**
 * Errors Node's HTTP parser meets before any route runs (oversized headers, broken framing, a request
 * that never finishes) get a problem+json answer like every other error, instead of Node's empty-bodied
 * default; then the connection closes, since its framing can no longer be trusted.
 */
export function answerClientErrors(server: Server, logger: Logger): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const requestId = newId();
    const { code, detail } = codeOf(err);
    const problem = problemBody(code, detail, requestId);
    const body = JSON.stringify(problem);
    const status = problem.status;
    logger.debug({ request_id: requestId, err: err.message, parser_code: err.code }, 'malformed HTTP request');
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
        'Content-Type: application/problem+json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  });
}
