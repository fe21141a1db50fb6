'use strict';
/**
 * A small voxgate client for Node.js, built on @grpc/grpc-js and the repository's protos,
 * loaded at run time by @grpc/proto-loader (no generated JavaScript).
 *
 *   const { VoxgateClient } = require('voxgate-client');
 *   const client = new VoxgateClient('127.0.0.1:50051');
 *   const result = await client.synthesizeToFile({ text: 'Hello' }, 'hello.wav');
 *   console.log(result.summary.firstPacketDelayMs);
 *   for await (const item of client.speak({ messages: [{ role: 'user', content: 'Hi' }] })) { ... }
 *   client.close();
 *
 * A voxgate with TLS or caller keys (docs/security.md):
 *   new VoxgateClient('voxgate.internal:50051', { token: process.env.VOXGATE_TOKEN, caFile: 'ca.crt' });
 *
 * Messages are plain objects with camelCase field names (`sampleRate`, `maxTokens`); enums are
 * their names (`'AUDIO_FORMAT_WAV'`), 64-bit integers are Numbers. Every call has a deadline
 * (`timeoutMs`, default 60 s). Failures reject with grpc-js's ServiceError (`code`, `details`,
 * `metadata`); `describeError` turns one into `"INVALID_ARGUMENT: text: must not be empty"`.
 */

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const DEFAULT_PROTOS_DIR = path.join(REPO_ROOT, 'protos');
const DEFAULT_SERVICE_CONFIG = path.join(REPO_ROOT, 'clients', 'service_config.json');
const PROTO_FILES = [
  'voxgate/speech/v1/speech.proto',
  'voxgate/generation/v1/generation.proto',
  'voxgate/voice/v1/voice.proto',
];
const DEFAULT_TIMEOUT_MS = 60_000;
const WAV_HEADER_BYTES = 44;

/** The stream ended with OK but without its final message: the result may be incomplete. */
class IncompleteStreamError extends Error {}

/** `"CODE_NAME: details"` for a grpc-js ServiceError, the message otherwise. */
function describeError(error) {
  if (error && typeof error.code === 'number' && grpc.status[error.code] !== undefined) {
    return `${grpc.status[error.code]}: ${error.details}`;
  }
  return String(error && error.message ? error.message : error);
}

function loadServices(protosDir) {
  const definition = protoLoader.loadSync(PROTO_FILES, {
    includeDirs: [protosDir],
    longs: Number, // audio_bytes (uint64) stays far below 2^53
    enums: String,
    defaults: true,
    oneofs: true, // SynthesizeResponse.content names the field that is set: 'audio' or 'summary'
  });
  const root = grpc.loadPackageDefinition(definition);
  return {
    SpeechService: root.voxgate.speech.v1.SpeechService,
    GenerationService: root.voxgate.generation.v1.GenerationService,
    VoiceService: root.voxgate.voice.v1.VoiceService,
  };
}

function deadline(timeoutMs) {
  return { deadline: Date.now() + (timeoutMs ?? DEFAULT_TIMEOUT_MS) };
}

function readOptional(file) {
  return file ? fs.readFileSync(file) : null;
}

/** TLS credentials when tls, caFile or certFile asks for them; plaintext otherwise. */
function channelCredentials({ tls, caFile, certFile, keyFile }) {
  if (!tls && !caFile && !certFile) return grpc.credentials.createInsecure();
  if (Boolean(certFile) !== Boolean(keyFile)) throw new Error('a client certificate needs both certFile and keyFile');
  return grpc.credentials.createSsl(readOptional(caFile), readOptional(keyFile), readOptional(certFile));
}

/** Adds the caller key to every call's metadata. */
function bearer(token) {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/**
 * One channel to a voxgate server (or, with a `dns:///` target and the service config's
 * round_robin policy, to every address the name resolves to). Call `close()` when done.
 */
class VoxgateClient {
  /**
   * @param {string} target  e.g. '127.0.0.1:50051' or 'dns:///voxgate-headless.ns.svc:50051'
   * @param {object} [options]
   * @param {string} [options.serviceConfigPath]  gRPC service config JSON (default: clients/service_config.json)
   * @param {string} [options.protosDir]  directory holding voxgate/**.proto (default: the repository's protos/)
   * @param {string} [options.token]  caller key, sent as 'authorization: Bearer <token>' on every call
   * @param {boolean} [options.tls]  connect with TLS (the system's roots unless caFile)
   * @param {string} [options.caFile]  PEM CA of the server certificate (implies tls)
   * @param {string} [options.certFile]  PEM client certificate for mutual TLS, with keyFile (implies tls)
   * @param {string} [options.keyFile]  PEM private key of certFile
   * @param {grpc.ChannelCredentials} [options.credentials]  overrides tls/caFile/certFile; default: plaintext
   */
  constructor(target, options = {}) {
    const services = loadServices(options.protosDir ?? DEFAULT_PROTOS_DIR);
    const serviceConfig = fs.readFileSync(options.serviceConfigPath ?? DEFAULT_SERVICE_CONFIG, 'utf8');
    const credentials = options.credentials ?? channelCredentials(options);
    // An interceptor rather than call credentials: grpc-js sends those over TLS only, and a token
    // also goes to a plaintext loopback voxgate (tests) or a TLS-terminating proxy.
    const interceptors = options.token ? [bearer(options.token)] : [];
    // One channel for both services: they share the HTTP/2 connection(s) and the service config.
    this.speech = new services.SpeechService(target, credentials, {
      'grpc.service_config': JSON.stringify(JSON.parse(serviceConfig)),
      interceptors,
    });
    this.generation = new services.GenerationService(target, credentials, {
      channelOverride: this.speech.getChannel(),
      interceptors,
    });
    this.voice = new services.VoiceService(target, credentials, {
      channelOverride: this.speech.getChannel(),
      interceptors,
    });
  }

  close() {
    this.speech.close();
  }

  /**
   * Yield `{ audio: Buffer }` for each chunk as it arrives, then `{ summary }` once.
   * Throws a ServiceError on an error status, IncompleteStreamError if the summary is missing.
   */
  async *synthesizeStream(request, { timeoutMs } = {}) {
    const call = this.speech.Synthesize(request, deadline(timeoutMs));
    let gotSummary = false;
    try {
      for await (const response of call) {
        if (response.content === 'summary') {
          gotSummary = true;
          yield { summary: response.summary };
        } else {
          yield { audio: response.audio };
        }
      }
    } finally {
      call.cancel(); // a no-op once the call ended; releases the server's work if the caller stopped early
    }
    if (!gotSummary) throw new IncompleteStreamError('stream ended without a summary');
  }

  /**
   * Stream the audio into `filePath`, writing each chunk as it arrives. A WAV file gets the
   * sizes of its streaming header (0xFFFFFFFF while streaming) patched at the end. If the call
   * fails, the file is removed: a short clip never stays behind looking whole.
   * Resolves to `{ summary, audioBytes, clientFirstPacketMs, totalMs }`.
   */
  async synthesizeToFile(request, filePath, { timeoutMs } = {}) {
    const started = performance.now();
    const file = await fs.promises.open(filePath, 'w');
    let done = false;
    try {
      let audioBytes = 0;
      let clientFirstPacketMs = 0;
      let summary = null;
      for await (const item of this.synthesizeStream(request, { timeoutMs })) {
        if (item.summary) {
          summary = item.summary;
          continue;
        }
        if (audioBytes === 0) clientFirstPacketMs = performance.now() - started;
        await file.write(item.audio);
        audioBytes += item.audio.length;
      }
      if (summary.format === 'AUDIO_FORMAT_WAV' && audioBytes >= WAV_HEADER_BYTES) {
        await patchWavSizes(file, audioBytes);
      }
      done = true;
      return { summary, audioBytes, clientFirstPacketMs, totalMs: performance.now() - started };
    } finally {
      await file.close();
      if (!done) await fs.promises.rm(filePath, { force: true });
    }
  }

  /**
   * SynthesizeStream: send `config` (a SynthesisConfig), then each string `pieces` (any async
   * iterable, e.g. a model's tokens) yields, as it comes; closing ends the text. Yields
   * `{ audio: Buffer }` while the text is still arriving, then `{ summary }` once.
   */
  async *synthesizeTextStream(config, pieces, { timeoutMs } = {}) {
    const call = this.speech.SynthesizeStream(deadline(timeoutMs));
    const writing = (async () => {
      call.write({ config });
      for await (const text of pieces) {
        if (!call.write({ text })) await new Promise((resolve) => call.once('drain', resolve));
      }
      call.end();
    })();
    writing.catch(() => call.cancel()); // a failing source ends the call; its error surfaces below
    let gotSummary = false;
    try {
      for await (const response of call) {
        if (response.content === 'summary') {
          gotSummary = true;
          yield { summary: response.summary };
        } else {
          yield { audio: response.audio };
        }
      }
      await writing;
    } finally {
      call.cancel();
    }
    if (!gotSummary) throw new IncompleteStreamError('stream ended without a summary');
  }

  /**
   * Speak: yield `{ text }` for each delta of the model's answer and `{ audio: Buffer }` for each
   * chunk of its speech, interleaved as they come, then `{ summary }` once.
   */
  async *speak(request, { timeoutMs } = {}) {
    const call = this.voice.Speak(request, deadline(timeoutMs));
    let gotSummary = false;
    try {
      for await (const response of call) {
        if (response.kind === 'summary') gotSummary = true;
        yield { [response.kind]: response[response.kind] };
      }
    } finally {
      call.cancel();
    }
    if (!gotSummary) throw new IncompleteStreamError('stream ended without a summary');
  }

  /**
   * Yield each GenerateStreamResponse as it arrives: `delta` is the new text; the last one also
   * has `finishReason`, `usage` and `timeToFirstTokenMs`. Throws like synthesizeStream.
   */
  async *generateStream(request, { timeoutMs } = {}) {
    const call = this.generation.GenerateStream(request, deadline(timeoutMs));
    let finished = false;
    try {
      for await (const response of call) {
        finished = response.finishReason !== '';
        yield response;
      }
    } finally {
      call.cancel();
    }
    if (!finished) throw new IncompleteStreamError('stream ended without a finish_reason');
  }

  /** The whole answer at once: resolves to a GenerateResponse. */
  generate(request, { timeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      this.generation.Generate(request, deadline(timeoutMs), (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }
}

/** Replace the 0xFFFFFFFF sizes of a streamed RIFF/WAVE header with the real ones. */
async function patchWavSizes(file, totalBytes) {
  const size = Buffer.alloc(4);
  size.writeUInt32LE(totalBytes - 8);
  await file.write(size, 0, 4, 4); // RIFF chunk size
  const dataSize = Buffer.alloc(4);
  dataSize.writeUInt32LE(totalBytes - WAV_HEADER_BYTES);
  await file.write(dataSize, 0, 4, 40); // data chunk size
}

module.exports = { VoxgateClient, IncompleteStreamError, describeError, DEFAULT_TIMEOUT_MS };
