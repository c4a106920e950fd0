// The API's ceiling: Fastify, as the service uses it, answering one route with the bytes of a real
// response (read from the file named first), with no authentication, database or serialization.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const [file, port] = process.argv.slice(2);
const body = readFileSync(file);
const app = Fastify({ logger: false });
app.get('/api/v1/webhooks', (_request, reply) => reply.type('application/json; charset=utf-8').send(body));
await app.listen({ port: Number(port), host: '127.0.0.1' });
console.log('api ceiling is listening');
