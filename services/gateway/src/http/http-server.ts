import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ErrorCode } from '@ferry/contracts';
import { type Logger, newId } from '@ferry/platform';
import { getRequestListener, RequestError } from '@hono/node-server';
import type { Hono } from 'hono';
import { answerClientErrors } from './client-errors.js';
import { problemBody, problemResponse } from './problem.js';

export interface HttpServerOptions {
  logger: Logger;
  /**
   * The host an HTTP/1.0 request without a Host header is taken to address (HTTP/1.1 requires the
   * header: without it, 400). Default none: such a request is refused too.
   */
  hostname?: string;
}

/** Writes a problem on a response no route will see, and closes the connection (nothing of the request is trusted). */
function writeProblem(res: ServerResponse, code: ErrorCode, detail: string, logger: Logger): void {
  const requestId = newId();
  const problem = problemBody(code, detail, requestId);
  const body = JSON.stringify(problem);
  logger.debug({ request_id: requestId, detail }, 'refused HTTP request');
  res.writeHead(problem.status, {
    'Content-Type': 'application/problem+json',
    'Content-Length': Buffer.byteLength(body),
    'X-Request-Id': requestId,
    Connection: 'close',
  });
  res.end(body);
}

/**
 * What @hono/node-server answers when it cannot turn a request into a web Request (a backslash in the
 * path, an invalid Host header, an unusable absolute-form target): by default an empty-bodied 400
 * with no Content-Type. Ours is problem+json like every other error.
 */
function refusedRequest(err: unknown, logger: Logger): Response {
  const requestId = newId();
  const headers = { 'X-Request-Id': requestId, Connection: 'close' };
  if (err instanceof RequestError) {
    // The library's own words ("Invalid host header"): they name the fault and carry nothing of the request.
    const detail = `the request target or Host header cannot be used: ${err.message.toLowerCase()}`;
    logger.debug({ request_id: requestId, detail }, 'refused HTTP request');
    return problemResponse(problemBody('bad_request', detail, requestId), headers);
  }
  logger.error({ err, request_id: requestId }, 'unhandled error');
  return problemResponse(
    problemBody('internal', 'an unexpected error occurred; quote the request id when reporting it', requestId),
    headers,
  );
}

/**
 * The gateway's HTTP server around the Hono app. Every answer given before a route runs is
 * problem+json with a code, like every other error: the parser's refusals (client-errors.ts), the
 * adapter's, an HTTP/1.1 request without Host (Node's own check would answer an empty 400) and an
 * unsupported `Expect` (Node's empty 417).
 */
export function createHttpServer(app: Hono, options: HttpServerOptions): Server {
  const { logger } = options;
  const listener = getRequestListener(app.fetch, {
    hostname: options.hostname,
    errorHandler: (err) => refusedRequest(err, logger),
  });
  const server = createServer({ requireHostHeader: false }, (req: IncomingMessage, res: ServerResponse) => {
    if (req.httpVersion === '1.1' && req.headers.host === undefined) {
      writeProblem(res, 'bad_request', 'an HTTP/1.1 request must carry a Host header', logger);
      return;
    }
    void listener(req, res);
  });
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    writeProblem(res, 'expectation_failed', 'the only expectation this server meets is Expect: 100-continue', logger);
  });
  answerClientErrors(server, logger);
  return server;
}
