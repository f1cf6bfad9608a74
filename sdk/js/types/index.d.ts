/* The SDK's classes; the API's shapes come from schemas.d.ts, generated from schemas/. */
import type {
  CallerSessionToken,
  CallerSessionView,
  Desk,
  EventType,
  ImpactEvent,
} from './schemas.js';

export * from './schemas.js';

export interface RequestOptions {
  /** An Idempotency-Key of your own (POST, PATCH); false: none, and no retries. */
  idempotencyKey?: string | false;
  signal?: AbortSignal;
}

export interface ClientOptions {
  baseUrl: string;
  fetch?: typeof fetch;
  /** Attempts after the first, for requests that may be retried (default 4). */
  retries?: number;
  /** First back-off in ms, doubling up to 10 s, with jitter (default 250). */
  retryBaseMs?: number;
}

export interface Page<T> {
  items: T[];
  total?: number;
  page?: number;
  per_page?: number;
  next_page: string | null;
  prev_page?: string | null;
  [field: string]: unknown;
}

/** A refusal: the RFC 9457 problem document the server answered. */
export class ProblemError extends Error {
  status: number;
  type: string | null;
  title: string | null;
  detail: string | null;
  errors: Array<{ field: string; message: string }>;
  problem: Record<string, unknown> | null;
}

export class NetworkError extends Error {}

export class Transport {
  constructor(options: ClientOptions & { headers?: () => Record<string, string> });
  baseUrl: string;
  url(pathOrUrl: string, query?: Record<string, unknown>): string;
  request<T = any>(method: string, path: string, options?: RequestOptions & {
    body?: unknown;
    contentType?: string;
    query?: Record<string, unknown>;
    raw?: boolean;
  }): Promise<T>;
}

export function idempotencyKey(): string;

export class Collection<T = Record<string, any>> {
  constructor(transport: Transport, path: string);
  path: string;
  list(filters?: Record<string, unknown>, options?: { signal?: AbortSignal }): AsyncGenerator<T, void, undefined>;
  page(filters?: Record<string, unknown>, options?: { signal?: AbortSignal }): Promise<Page<T>>;
  all(filters?: Record<string, unknown>, options?: { signal?: AbortSignal }): Promise<T[]>;
  get(id: number | string, options?: { signal?: AbortSignal }): Promise<T>;
  create(fields: Record<string, unknown>, options?: RequestOptions): Promise<T>;
  update(id: number | string, fields: Record<string, unknown>, options?: RequestOptions): Promise<T>;
  delete(id: number | string, options?: { signal?: AbortSignal }): Promise<null>;
  action(id: number | string, name: string, body?: unknown, options?: RequestOptions): Promise<T>;
  nested<U = Record<string, any>>(id: number | string, name: string): Collection<U>;
}

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StreamOptions {
  /** Resume after this event id (default: from now on). */
  after?: number | string;
  minDelayMs?: number;
  maxDelayMs?: number;
  start?: boolean;
}

/** A live stream that reconnects, resumes from its last event id and drops duplicates. */
export class EventStream extends EventTarget implements AsyncIterable<ImpactEvent> {
  constructor(transport: Transport, path: string, options?: StreamOptions & { query?: Record<string, unknown> });
  state: StreamState;
  lastEventId: string | null;
  reconnects: number;
  error: (Error & { status?: number }) | null;
  start(): void;
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<ImpactEvent>;
}

export function parseSseBlock(block: string): { id: string | null; type: string; data: unknown; hasData: boolean; retry: number | null };

export class ImpactAdmin {
  constructor(options: ClientOptions & { apiKey: string; apiAuth: string });
  transport: Transport;
  resource<T = Record<string, any>>(path: string): Collection<T>;
  root(): Promise<Record<string, any>>;
  readonly campaigns: Collection;
  readonly lists: Collection;
  readonly numbers: Collection;
  readonly leads: Collection;
  readonly messages: Collection;
  readonly scripts: Collection;
  readonly customFields: Collection;
  readonly callers: Collection;
  readonly callerGroups: Collection;
  readonly callerSessions: Collection;
  readonly blockedNumbers: Collection;
  readonly calls: Collection;
  readonly events: Collection<ImpactEvent>;
  readonly webhookEndpoints: Collection;
  readonly webhookSecrets: Collection;
  script(id: number | string): {
    texts: Collection;
    questions: Collection;
    possibleResponses(questionId: number | string): Collection;
    notes: Collection;
    transfers: Collection;
  };
  uploadMessage(name: string, audio: Uint8Array, contentType?: string, options?: RequestOptions): Promise<Record<string, any>>;
  uploadList(listId: number | string, csv: string | Uint8Array, options?: RequestOptions & { part?: number }): Promise<Record<string, any>>;
  campaignStats(id: number | string, options?: { signal?: AbortSignal }): Promise<Record<string, any>>;
  eventStream(options?: StreamOptions & { campaignId?: number; callerId?: number; types?: EventType[] }): EventStream;
}

export interface SurveyResults {
  answers?: Array<{ questionId: number; possibleResponseId: number }>;
  notes?: Array<{ noteId: number; text: string }>;
  leadId?: number;
  machine?: boolean;
  then: 'continue' | 'stop';
}

export class CallerSession {
  id: number;
  callerId: number;
  campaignId: number;
  token: string;
  deskUri: string;
  eventsUri: string;
  heartbeatTimeoutSeconds: number;
  session(): Promise<CallerSessionView>;
  heartbeat(): Promise<null>;
  keepAlive(options?: { onError?: (error: Error) => void }): this;
  stopKeepAlive(): void;
  logout(): Promise<void>;
  desk(): Promise<Desk>;
  start(): Promise<Desk>;
  dial(): Promise<Desk>;
  skip(): Promise<Desk>;
  hangUp(): Promise<Desk>;
  dropVoicemail(): Promise<Desk>;
  stop(): Promise<Desk>;
  leaveTransfer(): Promise<Desk>;
  transfer(transferId: number): Promise<Desk>;
  submitResults(results: SurveyResults): Promise<Desk>;
  events(options?: StreamOptions & { types?: EventType[] }): EventStream;
}

export class ImpactCaller {
  static login(options: ClientOptions & { accountId: number } & ({ username: string; password: string } | { pin: string })): Promise<CallerSession>;
  static resume(options: ClientOptions & { token: string; deskUri: string; eventsUri: string; heartbeatTimeoutSeconds?: number }): CallerSession;
}

export type { CallerSessionToken };

export class WebhookVerificationError extends Error {}

export function verifyWebhook(options: {
  secret: string | string[];
  headers: Headers | Record<string, string | string[] | undefined>;
  body: string | Uint8Array;
  toleranceSeconds?: number;
  now?: number;
}): Promise<ImpactEvent>;
