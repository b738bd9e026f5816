import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { CONSOLE_ASSETS } from '../../tokens.js';
import { CONSOLE_HEADERS, type ConsoleAsset, type ConsoleFile } from './console-assets.js';
import { ApiRoute } from '../openapi.js';

/**
 * The review console: one page, its stylesheet and its script, served with a strict CSP. The page
 * has no authority of its own: the reviewer's API key is kept in the tab (sessionStorage) and the
 * script sends it to the JSON API, which checks it like any other caller's. So these routes need
 * none, and they are in /openapi.json like every route the broker serves.
 */
@Controller('console')
export class ConsoleController {
  constructor(@Inject(CONSOLE_ASSETS) private readonly assets: Record<ConsoleFile, ConsoleAsset>) {}

  @Get()
  @ApiRoute({
    summary: 'The review console (HTML): sign in with a reviewer or admin API key',
    responses: { 200: { description: 'The console page', contentType: 'text/html' } },
    security: [],
  })
  page(@Res() reply: FastifyReply) {
    this.send(reply, 'index.html');
  }

  @Get('console.css')
  @ApiRoute({
    summary: "The review console's stylesheet",
    responses: { 200: { description: 'CSS', contentType: 'text/css' } },
    security: [],
  })
  stylesheet(@Res() reply: FastifyReply) {
    this.send(reply, 'console.css');
  }

  @Get('console.js')
  @ApiRoute({
    summary: "The review console's script (an ES module)",
    responses: { 200: { description: 'JavaScript', contentType: 'text/javascript' } },
    security: [],
  })
  script(@Res() reply: FastifyReply) {
    this.send(reply, 'console.js');
  }

  private send(reply: FastifyReply, file: ConsoleFile): void {
    const asset = this.assets[file];
    void reply.code(200).headers(CONSOLE_HEADERS).type(asset.contentType).send(asset.body);
  }
}
