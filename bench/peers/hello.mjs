// Peer: the framework ceiling. A bare route on the same NestJS + @nestjs/platform-fastify adapter
// Tollgate uses, in its own process, with logging off.
//
//   PORT=... node bench/peers/hello.mjs      then      GET /hello  ->  {"hello":"world"}
//
// Plain JavaScript, so the decorators are applied by hand (what TypeScript would emit).
import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';

class HelloController {
  hello() {
    return { hello: 'world' };
  }
}
Get('hello')(HelloController.prototype, 'hello', Object.getOwnPropertyDescriptor(HelloController.prototype, 'hello'));
Controller()(HelloController);

class HelloModule {}
Module({ controllers: [HelloController] })(HelloModule);

const port = Number(process.env.PORT);
const app = await NestFactory.create(HelloModule, new FastifyAdapter({ logger: false }), { logger: false });
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`hello peer on http://127.0.0.1:${port}\n`);
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close().finally(() => process.exit(0)));
