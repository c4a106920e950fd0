import addFormats from 'ajv-formats';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { OpenAPIBackend, SetMatchType } from 'openapi-backend';

/**
 * Every answer a test gets from the API is checked against the OpenAPI document that the service
 * serves (the public one for `/api/`, the operator one for `/internal/`): its status is one the
 * operation documents, its JSON body matches that status's schema, and the headers the document
 * requires are there and match theirs. A mismatch fails the request, naming the operation, so
 * the document cannot drift from the service. Paths that no operation names (a 404 for an unknown
 * path, a 405) and routes outside both documents (`/healthz`, `/metrics`, the portal's files) are
 * left alone.
 */

type Operation = NonNullable<ReturnType<OpenAPIBackend['matchOperation']>>;
type HeaderSpec = { required?: boolean };

export async function documentBackend(definition: object): Promise<OpenAPIBackend> {
  const api = new OpenAPIBackend({
    definition: definition as ConstructorParameters<typeof OpenAPIBackend>[0]['definition'],
    strict: true,
    // `quick`: the document's own validity is the linter's test (test/api/openapi.test.ts).
    quick: true,
    customizeAjv: (ajv) => {
      addFormats.default(ajv as unknown as Parameters<typeof addFormats.default>[0]);
      return ajv;
    },
  });
  await api.init();
  return api;
}

function describe(errors: unknown[] | null | undefined): string {
  return JSON.stringify(errors ?? [], null, 1).slice(0, 2000);
}

/** The problems of one answer to one operation; empty when it matches the document. */
export function problemsOf(api: OpenAPIBackend, operation: Operation, res: LightMyRequestResponse): string[] {
  const status = String(res.statusCode);
  const response = operation.responses?.[status] as
    | { headers?: Record<string, HeaderSpec>; content?: Record<string, unknown> }
    | undefined;
  if (!response) {
    return [
      `status ${status} is not documented (documented: ${Object.keys(operation.responses ?? {}).join(', ')})`,
    ];
  }
  const problems: string[] = [];
  for (const [name, header] of Object.entries(response.headers ?? {})) {
    if (header.required && res.headers[name.toLowerCase()] === undefined) {
      problems.push(`the required header ${name} is missing`);
    }
  }
  const headers = api.validator.validateResponseHeaders(res.headers, operation, {
    statusCode: res.statusCode,
    setMatchType: SetMatchType.Any,
  });
  if (headers.errors) problems.push(`headers: ${describe(headers.errors)}`);

  const type = String(res.headers['content-type'] ?? '');
  if (response.content) {
    if (!type.startsWith('application/json')) {
      problems.push(
        `the body is ${type || 'absent'}, documented as ${Object.keys(response.content).join(', ')}`,
      );
    } else {
      const body = api.validator.validateResponse(res.json(), operation, res.statusCode);
      if (body.errors) problems.push(`body: ${describe(body.errors)}`);
    }
  } else if (res.body !== '') {
    problems.push(`a body (${type}) where the document has none`);
  }
  return problems;
}

/** Replaces `app.inject` with one that checks every answer against the documents. */
export async function checkAnswersAgainstDocuments(app: FastifyInstance, adminToken: string): Promise<void> {
  const inject = app.inject.bind(app) as (options: InjectOptions) => Promise<LightMyRequestResponse>;
  const load = async (url: string) => {
    const res = await inject({ method: 'GET', url, headers: { authorization: `Bearer ${adminToken}` } });
    if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
    return documentBackend(res.json());
  };
  const documents = [
    { prefix: '/api/', api: await load('/api/v1/openapi.json') },
    { prefix: '/internal/', api: await load('/internal/v1/openapi.json') },
  ];

  const checked = async (options: InjectOptions | string): Promise<LightMyRequestResponse> => {
    const res = await inject(typeof options === 'string' ? { method: 'GET', url: options } : options);
    const url = new URL(
      typeof options === 'string' ? options : String(options.url ?? options.path ?? '/'),
      'http://localhost',
    );
    const method = (typeof options === 'string' ? 'GET' : (options.method ?? 'GET')).toLowerCase();
    const document = documents.find((d) => url.pathname.startsWith(d.prefix));
    if (!document || method === 'head' || method === 'options') return res;
    const operation = document.api.matchOperation({ method, path: url.pathname, headers: {} });
    if (!operation) return res;
    const problems = problemsOf(document.api, operation, res);
    if (problems.length > 0) {
      throw new Error(
        `The answer to ${method.toUpperCase()} ${url.pathname} (${operation.operationId}) does not match the OpenAPI document:\n- ${problems.join('\n- ')}\nIts body: ${res.body.slice(0, 500)}`,
      );
    }
    return res;
  };
  (app as unknown as { inject: typeof checked }).inject = checked;
}
